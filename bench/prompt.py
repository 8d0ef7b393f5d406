"""Prompt tuning on the train and validation splits (never test): each system prompt variant asked the
same questions through the bot's pipeline, scored by key facts and refusals.

    .venv/bin/python -m bench.prompt --model qwen2.5-coder-1.5b-instruct            # starts vLLM
    .venv/bin/python -m bench.prompt --url http://127.0.0.1:8000 --variants v0,v2   # a running server

Questions: the validation split and the first `--train` train questions (covered), and
`quality.UNCOVERED_TUNING` (on-topic, not in the wiki). Writes bench/results/prompt_MODEL.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from bench.machine import describe
from bench.quality import UNCOVERED_TUNING, base_pipeline, measure
from bench.screening import open_sample_knowledge
from bot.knowledge import load_embedder
from bot.knowledge.evaluate import load_questions
from bot.prompts import SYSTEM
from chatbot.wiring import token_counter
from model_server.prepare import prepare_base_model
from tests.support.model_servers import running_server, vllm_python

REPO = Path(__file__).resolve().parent.parent
VARIANTS = {
    "v0": SYSTEM,
    "v1": (
        "You are the internal help assistant of {company}. Answer the employee's question from the "
        "documents below, which are excerpts of the company wiki. The answer is usually there, sometimes "
        "in a table or a list, or in other words than the question's. Reply in one to three short "
        "sentences with the exact figures, names, dates, addresses and tool names as the documents write "
        "them; to a yes/no question say yes or no and give the rule. Only if none of the documents is "
        'about the question, say "I couldn\'t find that in the company documents" and suggest asking '
        "{fallback}."
    ),
    "v2": (
        "You are the internal help assistant of {company}. Answer the employee's question from the "
        "documents below (excerpts of the company wiki). Reply in one to three short sentences. Quote "
        "the exact figures, names, dates, addresses, e-mail addresses and tool names the documents give; "
        "never invent one. To a yes/no question, say yes or no and give the rule. If the documents do "
        'not say, reply "I couldn\'t find that in the company documents" and suggest asking {fallback}.'
    ),
    "v3": (
        "You are the internal help assistant of {company}. Answer the employee's question using only the "
        "documents below, in one to three short sentences. Always give the specific facts that answer it: "
        "the exact numbers, durations, deadlines, names, tools and conditions, worded as the documents word "
        "them; to a yes/no question, say yes or no and then the figure or condition that applies. If the "
        'documents do not answer the question, say "I couldn\'t find that in the company documents" and '
        "suggest asking {fallback}."
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="", help="catalog name or model directory (default: BASE_MODEL's default)"
    )
    parser.add_argument("--url", default="", help="a running model server serving that model as 'base'")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--train", type=int, default=30, help="train questions besides validation")
    parser.add_argument("--data-dir", default=str(REPO / "data"))
    parser.add_argument("--index", default=str(REPO / "data" / "index"))
    args = parser.parse_args()

    model_dir = prepare_base_model(Path(args.data_dir), args.model)
    questions = load_questions(splits=["validation"]) + load_questions(splits=["train"])[: args.train]
    report: dict[str, Any] = {
        "benchmark": "prompt",
        "machine": describe(),
        "settings": {
            "model": model_dir.name,
            "questions": len(questions),
            "uncovered": len(UNCOVERED_TUNING),
        },
        "variants": {},
    }
    out = REPO / "bench" / "results" / f"prompt_{model_dir.name}.json"
    with tempfile.TemporaryDirectory() as tmp:
        kb = open_sample_knowledge(Path(tmp), args.index, load_embedder())
        count = token_counter(model_dir)

        def run(url: str) -> None:
            for name in args.variants.split(","):
                pipeline = base_pipeline(kb, url, count, VARIANTS[name])
                result = asyncio.run(measure(pipeline, questions, uncovered=UNCOVERED_TUNING))
                report["variants"][name] = {"system": VARIANTS[name], **result}
                print(name, json.dumps({k: v for k, v in result.items() if k != "rows"}), flush=True)
                out.write_text(json.dumps(report, indent=2, ensure_ascii=False))  # kept if a later one fails

        if args.url:
            run(args.url)
        else:
            backend = "vllm" if vllm_python() else "transformers"
            with running_server(backend, model_dir, Path(tmp) / "server.log") as url:
                run(url)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
