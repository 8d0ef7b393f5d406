"""Every catalog model measured on this machine in one run, to choose the default by measurement.

    .venv/bin/python -m bench.models                       # every catalog model, ~30 minutes on 2 cores
    .venv/bin/python -m bench.models --models smollm2-135m-instruct --timing 4

For each model, behind vLLM where .venv-vllm exists (else the embedded engine), with the bot's own
pipeline and prompt over the sample wiki:
  - quality: key-fact rate and token-F1 on the whole test split; refusals ("couldn't find") of the
    covered test questions, of `UNCOVERED` (the wiki does not say) and of `OFF_TOPIC`; answers that
    run to the token limit or repeat themselves;
  - speed on the cores as they are (the JSON records the load average): first token and whole answer,
    p50 and p95, one question at a time and 8 at once (`--timing` questions each);
  - memory: the model server's resident memory (its whole process tree) after the questions.
A retrain's peak memory comes from bench.train_step and correction recall and learning from their
own benches, per model: their JSON files are named in `related`.

Writes bench/results/models.json and prints a table (the README's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.machine import describe, tree_rss
from bench.quality import base_pipeline, measure
from bench.screening import open_sample_knowledge
from bot.knowledge import load_embedder
from bot.knowledge.evaluate import OFF_TOPIC, UNCOVERED, load_questions
from bot.pipeline import Delta, Pipeline, Question
from chatbot.wiring import token_counter
from model_server import catalog
from model_server.prepare import prepare_base_model
from tests.support.model_servers import running_server_process, vllm_python

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "models.json"


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 2), "p95": round(p95, 2), "n": len(ordered)}


async def timed(pipeline: Pipeline, texts: list[str], concurrency: int) -> dict[str, Any]:
    """Seconds to the first piece of text and to the whole answer, through the streaming path."""
    gate = asyncio.Semaphore(concurrency)

    async def one(text: str) -> tuple[float, float]:
        async with gate:
            started = time.perf_counter()
            first = 0.0
            async for item in pipeline.answer_stream(Question(text, platform="cli", user_id="bench")):
                if isinstance(item, Delta) and not first and item.text.strip():
                    first = time.perf_counter() - started
            whole = time.perf_counter() - started
            return first or whole, whole

    pairs = await asyncio.gather(*(one(t) for t in texts))
    return {
        "first_text_s": percentiles([p[0] for p in pairs]),
        "whole_answer_s": percentiles([p[1] for p in pairs]),
    }


def one_model(name: str, args: argparse.Namespace, kb: Any, tmp: Path) -> dict[str, Any]:
    entry = catalog.lookup(name)
    model_dir = prepare_base_model(Path(args.data_dir), name)
    backend = "vllm" if vllm_python() else "transformers"
    started = time.perf_counter()
    with running_server_process(backend, model_dir, tmp / f"{name}.log") as (url, process):
        ready = time.perf_counter() - started
        count = token_counter(model_dir)
        pipeline = base_pipeline(kb, url, count, grounding_threshold=entry.grounding_threshold)
        test = load_questions(splits=["test"])
        texts = [q["question"] for q in test]

        async def everything() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
            # one event loop for the one client: its pooled connections belong to the loop
            quality = await measure(
                pipeline, test, uncovered=UNCOVERED, off_topic=OFF_TOPIC, concurrency=args.concurrency
            )
            alone = await timed(pipeline, texts[: args.timing], 1)
            together = await timed(pipeline, texts[-2 * args.timing :], 8)
            await pipeline.client.aclose()
            return quality, alone, together

        quality, alone, together = asyncio.run(everything())
        rss = tree_rss(process.pid)
    return {
        "model": name,
        "parameters": entry.parameters,
        "backend": backend,
        "server_ready_s": round(ready, 1),
        "server_rss_gib": round(rss / 2**30, 2),
        **{k: v for k, v in quality.items() if k != "rows"},
        "one_at_a_time": alone,
        "eight_at_once": together,
        "related": {
            "retrain_memory": "bench/results/train_step_models.json",
            "correction_recall": f"bench/results/correction_recall_{name}.json",
            "learning": f"bench/results/learning_{name}.json",
        },
        "answers": quality["rows"],
    }


def table(models: list[dict[str, Any]]) -> str:
    lines = [
        "| model | key-fact | token-F1 | covered refused | uncovered refused | off-topic refused | "
        "1 at a time: first text / whole p50 (p95) | 8 at once: whole p50 (p95) | server RSS |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in models:
        one, eight = m["one_at_a_time"], m["eight_at_once"]
        lines.append(
            f"| {m['model']} | {m['covered']['key_fact_rate']:.2f} | {m['covered']['token_f1']:.2f} | "
            f"{m['covered']['refused']:.0%} | {m['uncovered']['refused']:.0%} | "
            f"{m['off_topic']['refused']:.0%} | "
            f"{one['first_text_s']['p50']} / {one['whole_answer_s']['p50']} s "
            f"({one['whole_answer_s']['p95']}) | {eight['whole_answer_s']['p50']} s "
            f"({eight['whole_answer_s']['p95']}) | {m['server_rss_gib']} GiB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(catalog.load_catalog()))
    parser.add_argument(
        "--timing", type=int, default=8, help="questions timed one at a time; twice that 8 at once"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="questions at once for the quality part")
    parser.add_argument("--data-dir", default=str(REPO / "data"))
    parser.add_argument("--index", default=str(REPO / "data" / "index"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    report: dict[str, Any] = {
        "benchmark": "models",
        "machine": describe(),
        "settings": {
            "split": "test",
            "timing_questions": args.timing,
            "quality_concurrency": args.concurrency,
        },
        "models": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        kb = open_sample_knowledge(Path(tmp), args.index, load_embedder())
        for name in args.models.split(","):
            result = one_model(name, args, kb, Path(tmp))
            report["models"].append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "answers"}, indent=1))
            # kept if a later model fails
            args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(table(report["models"]))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
