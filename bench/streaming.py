"""How soon a person sees the answer in Slack and in Teams, streamed, with the default model.

    .venv/bin/python -m bench.streaming [--model NAME] [--questions 16]

The real bot (Bolt app, Teams endpoint, pipeline over the sample wiki, store) in this process,
answering with the base model on vLLM (the embedded engine where vLLM is not installed); this
process plays Slack (the local Web API of tests/support/slack_api.py) and Teams (the local Connector
of tests/support/teams_connector.py). Test-split questions go one at a time, on idle cores, the first
half as Slack mentions, the other half as Teams personal messages. For each it records, from the
moment the request was sent: the ack (the HTTP response), the status or informative update, the
first text of the answer (Slack's chat.startStream, Teams' first streaming update) and the whole
answer (chat.stopStream, the final message). Target: the first text within 2 s of the ack. Saved to
bench/results/streaming.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.machine import describe
from bench.quality import base_pipeline
from bench.screening import open_sample_knowledge
from bot.knowledge import load_embedder
from bot.knowledge.evaluate import load_questions
from bot.pipeline import Pipeline, Question
from bot.slack.deps import Deps
from chatbot.wiring import token_counter
from model_server import catalog
from model_server.prepare import prepare_base_model
from tests.support.model_servers import running_server, vllm_python
from tests.support.slack_harness import Bot, running_bot
from tests.support.slack_payloads import mention
from tests.support.teams_activities import message
from tests.support.teams_harness import TeamsBot, running_teams_bot

REPO = Path(__file__).resolve().parent.parent
TARGET_FIRST_TEXT_S = 2.0


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 2), "p95": round(p95, 2), "max": round(ordered[-1], 2)}


async def wait(check: Callable[[], object], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("no answer in time")
        await asyncio.sleep(0.01)


def real_pipeline(pipeline: Pipeline) -> Callable[[Deps], None]:
    def use(deps: Deps) -> None:
        pipeline.database = deps.records.database
        deps.pipeline = pipeline

    return use


async def slack_rounds(pipeline: Pipeline, texts: list[str], workdir: Path) -> list[dict[str, Any]]:
    rows = []
    workdir.mkdir()
    async with running_bot(workdir, configure=real_pipeline(pipeline)) as bot:
        for text in texts:
            rows.append(await _slack_one(bot, text))
    return rows


async def _slack_one(bot: Bot, text: str) -> dict[str, Any]:
    asked = bot.slack.add_message("C1", "U1", f"<@U0BOT> {text}")
    seen = len(bot.slack.calls)
    sent = time.monotonic()
    response, _ = await bot.send_event(mention(asked, "C1"))
    acked = time.monotonic()
    await wait(lambda: any(r.get("thread_ts") == asked["ts"] for r in bot.slack.replies))
    calls = bot.slack.calls[seen:]

    def first(method: str) -> float | None:
        return next((c.at - sent for c in calls if c.method == method and c.status == 200), None)

    start = next(c for c in calls if c.method in ("chat.startStream", "chat.postMessage") and c.status == 200)
    done = first("chat.stopStream") or first("chat.update") or start.at - sent
    return {
        "question": text,
        "http_status": response.status_code,
        "ack_s": round(acked - sent, 3),
        "status_s": first("assistant.threads.setStatus"),
        "first_text_s": round(start.at - sent, 2),
        "first_text_after_ack_s": round(start.at - acked, 2),
        "whole_s": round(done, 2),
        "streamed": start.method == "chat.startStream",
        "pieces": len(bot.slack.streams.get(bot.slack.replies[-1]["ts"], [])),
    }


async def teams_rounds(pipeline: Pipeline, texts: list[str], workdir: Path) -> list[dict[str, Any]]:
    rows = []
    workdir.mkdir()
    async with running_teams_bot(workdir) as bot:
        pipeline.database = bot.database
        bot.deps.pipeline = pipeline
        for text in texts:
            rows.append(await _teams_one(bot, text))
    return rows


async def _teams_one(bot: TeamsBot, text: str) -> dict[str, Any]:
    before = len(bot.connector.messages())
    streams_before = set(bot.connector.streams)
    sent = time.monotonic()
    response = await bot.send(message(text, service_url=bot.service_url))
    acked = time.monotonic()
    await wait(lambda: len(bot.connector.messages()) > before)
    [stream_id] = set(bot.connector.streams) - streams_before
    updates = bot.connector.streams[stream_id].updates  # informative, streaming..., final
    streaming = [at for at, _ in updates[1:-1]]
    first_text = streaming[0] if streaming else updates[-1][0]
    return {
        "question": text,
        "http_status": response.status_code,
        "ack_s": round(acked - sent, 3),
        "status_s": round(updates[0][0] - sent, 2),
        "first_text_s": round(first_text - sent, 2),
        "first_text_after_ack_s": round(first_text - acked, 2),
        "whole_s": round(updates[-1][0] - sent, 2),
        "streamed": bot.connector.streams[stream_id].final,
        "pieces": len(streaming),
    }


def figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "questions": len(rows),
        "streamed": sum(r["streamed"] for r in rows),
        "ack_s": summary([r["ack_s"] for r in rows]),
        "first_text_after_ack_s": summary([r["first_text_after_ack_s"] for r in rows]),
        "whole_s": summary([r["whole_s"] for r in rows]),
        "first_text_within_target": sum(r["first_text_after_ack_s"] <= TARGET_FIRST_TEXT_S for r in rows),
    }


async def measure(url: str, model_dir: Path, texts: list[str], index: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        kb = open_sample_knowledge(workdir, index, load_embedder())
        threshold = catalog.grounding_threshold(model_dir.name)

        def pipeline() -> Pipeline:  # one each side: the harness closes its pipeline's client when done
            made = base_pipeline(kb, url, token_counter(model_dir), grounding_threshold=threshold)
            made.answer_timeout = 30  # the bot's own default
            return made

        # vLLM's first request pays one-off costs: a train-split question takes them
        warm = pipeline()
        await warm.answer(Question(load_questions(splits=["train"])[0]["question"]))
        await warm.client.aclose()
        half = len(texts) // 2  # different questions each side: vLLM caches the prompts it saw
        slack = await slack_rounds(pipeline(), texts[:half], workdir / "slack")
        teams = await teams_rounds(pipeline(), texts[half:], workdir / "teams")
    return {"slack": {**figures(slack), "rows": slack}, "teams": {**figures(teams), "rows": teams}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="catalog name or model directory (default: BASE_MODEL's)")
    parser.add_argument("--questions", type=int, default=16, help="half asked in Slack, half in Teams")
    parser.add_argument("--data-dir", default=str(REPO / "data"))
    parser.add_argument("--index", default=str(REPO / "data" / "index"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "streaming.json")
    args = parser.parse_args()

    model_dir = prepare_base_model(Path(args.data_dir), args.model)
    texts = [q["question"] for q in load_questions(splits=["test"])[: args.questions]]
    backend = "vllm" if vllm_python() else "transformers"
    with (
        tempfile.TemporaryDirectory() as logs,
        running_server(backend, model_dir, Path(logs) / "server.log") as url,
    ):
        report = asyncio.run(measure(url, model_dir, texts, args.index))
    report = {
        "benchmark": "streaming",
        "machine": describe(),
        "settings": {
            "model": model_dir.name,
            "backend": backend,
            "questions": len(texts),
            "split": "test",
            "stream_interval_s": 1.0,
            "target_first_text_after_ack_s": TARGET_FIRST_TEXT_S,
        },
        **report,
    }
    for platform in ("slack", "teams"):
        shown = {k: v for k, v in report[platform].items() if k != "rows"}
        print(platform, json.dumps(shown))
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
