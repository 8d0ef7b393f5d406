"""Grounding-check tuning on the train and validation splits (never test): the check's score
(`bot.grounding.score`: the model's yes-share of `bot.grounding.CHECK` plus the closest passage's
similarity) for covered questions and for `quality.UNCOVERED_TUNING`, and for each threshold the
share of each that the check would refuse, alone and together with the answers the model refuses by
itself (`--answers`, a bench.prompt JSON with the same questions' answers).

    .venv/bin/python -m bench.grounding --model qwen2.5-coder-1.5b-instruct   # starts vLLM
    .venv/bin/python -m bench.grounding --url http://127.0.0.1:8000           # a running server

Writes bench/results/grounding_MODEL.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from bench.machine import describe
from bench.quality import UNCOVERED_TUNING, base_pipeline
from bench.screening import open_sample_knowledge
from bot import grounding
from bot.knowledge import load_embedder
from bot.knowledge.evaluate import load_questions
from bot.pipeline import Pipeline, Question
from chatbot.wiring import token_counter
from model_server.prepare import prepare_base_model
from tests.support.model_servers import running_server, vllm_python

REPO = Path(__file__).resolve().parent.parent
THRESHOLDS = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)


async def yes_shares(pipeline: Pipeline, texts: list[str]) -> list[dict[str, Any]]:
    """Each question's yes-share, closest similarity and score, asked as the pipeline would (one at
    a time: the timings are the check's own); None where nothing was retrieved (refused without a
    model)."""
    rows = []
    for text in tqdm(texts, desc="grounding check", unit="q"):
        prompt = await pipeline._prompt(Question(text, platform="cli", user_id="bench"), ())
        row: dict[str, Any] = {"question": text, "yes_share": None, "similarity": None, "score": None}
        row["seconds"] = 0.0
        if prompt.messages:
            started = time.perf_counter()
            share = await pipeline.grounding_share(prompt.messages, prompt.model)
            row.update(yes_share=share, seconds=round(time.perf_counter() - started, 2))
            row["similarity"] = max(p.similarity for p in prompt.passages)
            row["score"] = grounding.score(share, [p.similarity for p in prompt.passages])
        rows.append(row)
    return rows


def refused_by_itself(answers: Path | None) -> dict[str, bool]:
    """Question text -> the model's answer refused, from a bench.prompt JSON (its v0 variant)."""
    if answers is None:
        return {}
    variant = json.loads(answers.read_text())["variants"]["v0"]["rows"]
    texts = {q["id"]: q["question"] for q in load_questions()}
    refused = {texts[r["id"]]: bool(r["refused"]) for r in variant["covered"]}
    refused |= {r["question"]: bool(r["refused"]) for r in variant["uncovered"]}
    return refused


Rows = list[dict[str, Any]]


def sweep(covered: Rows, uncovered: Rows, itself: dict[str, bool]) -> list[dict[str, Any]]:
    def refused(row: dict[str, Any], threshold: float, with_answers: bool) -> bool:
        score, retrieved = row["score"], row["similarity"] is not None
        # nothing retrieved is refused anyway; neither word from the model is answered, as the bot does
        by_check = not retrieved or (score is not None and score < threshold)
        return by_check or (with_answers and itself.get(row["question"], False))

    def rate(rows: list[dict[str, Any]], threshold: float, with_answers: bool) -> float:
        return round(sum(refused(r, threshold, with_answers) for r in rows) / len(rows), 4)

    return [
        {
            "threshold": t,
            "covered_refused_by_check": rate(covered, t, False),
            "uncovered_refused_by_check": rate(uncovered, t, False),
            "covered_refused_with_answers": rate(covered, t, True),
            "uncovered_refused_with_answers": rate(uncovered, t, True),
        }
        for t in THRESHOLDS
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="catalog name or model directory (default: BASE_MODEL's)")
    parser.add_argument("--url", default="", help="a running model server serving that model as 'base'")
    parser.add_argument("--train", type=int, default=30, help="train questions besides validation")
    parser.add_argument("--answers", type=Path, default=None, help="bench.prompt JSON of the same model")
    parser.add_argument("--check", default=grounding.CHECK, help="the check's wording (default: the bot's)")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON path (default: bench/results/grounding_MODEL.json)"
    )
    parser.add_argument("--data-dir", default=str(REPO / "data"))
    parser.add_argument("--index", default=str(REPO / "data" / "index"))
    args = parser.parse_args()

    model_dir = prepare_base_model(Path(args.data_dir), args.model)
    covered_texts = [q["question"] for q in load_questions(splits=["validation"])]
    covered_texts += [q["question"] for q in load_questions(splits=["train"])[: args.train]]
    out = args.out or REPO / "bench" / "results" / f"grounding_{model_dir.name}.json"
    grounding.CHECK = args.check  # read by grounding.check_messages at each call
    with tempfile.TemporaryDirectory() as tmp:
        kb = open_sample_knowledge(Path(tmp), args.index, load_embedder())

        def run(url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            pipeline = base_pipeline(kb, url, token_counter(model_dir))

            async def both() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
                covered = await yes_shares(pipeline, covered_texts)
                uncovered = await yes_shares(pipeline, list(UNCOVERED_TUNING))
                await pipeline.client.aclose()
                return covered, uncovered

            return asyncio.run(both())

        if args.url:
            covered, uncovered = run(args.url)
        else:
            backend = "vllm" if vllm_python() else "transformers"
            with running_server(backend, model_dir, Path(tmp) / "server.log") as url:
                covered, uncovered = run(url)
    report = {
        "benchmark": "grounding",
        "machine": describe(),
        "settings": {
            "model": model_dir.name,
            "check": grounding.CHECK,
            "covered_questions": len(covered),
            "uncovered_questions": len(uncovered),
            "answers_from": str(args.answers) if args.answers else None,
        },
        "sweep": sweep(covered, uncovered, refused_by_itself(args.answers)),
        "rows": {"covered": covered, "uncovered": uncovered},
    }
    for row in report["sweep"]:
        print(json.dumps(row))
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
