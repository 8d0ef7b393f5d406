"""Slack acknowledgement latency under load, and one answer per event.

    .venv/bin/python -m bench.slack_ack [--events 200] [--concurrency 20] [--retries 20] [--model-delay 0.2]

The bot runs in its own process, as in production: `bot.server.build_app` around the real Bolt app
and the real pipeline and store (SQLite), with a fake retriever and a fake model server (an
`httpx.MockTransport` that answers after `--model-delay` seconds). This process plays Slack: the local
Web API from tests/support/slack_api.py, and a client that sends signed `app_mention` events over HTTP to
/slack/events, `--concurrency` at a time, plus `--retries` re-deliveries of events already sent (same
event_id, `X-Slack-Retry-Num: 1`, sent while the original is still being answered).

It measures the time from sending each delivery to its HTTP response (the ack Slack waits 3 s for;
target p99 <= 100 ms), then waits for the bot to go idle and checks every event got exactly one
answer in its thread. Figures are printed and saved to bench/results/slack_ack.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.machine import describe
from bot.inflight import MAX_CONCURRENT_ANSWERS
from bot.server import build_app
from bot.slack import build_slack_app
from bot.slack.web import SlackRoutes
from tests.support.common import migrated_database
from tests.support.fakes import FakeModel
from tests.support.slack_api import BOT_TOKEN, SIGNING_SECRET, SlackServer
from tests.support.slack_harness import make_deps
from tests.support.slack_payloads import event_callback, mention, signature_headers

REPO = Path(__file__).resolve().parent.parent
TARGET_P99_MS = 100.0


def machine() -> dict[str, Any]:
    return {
        **describe(),
        "slack_bolt": version("slack_bolt"),
        "slack_sdk": version("slack_sdk"),
        "aiohttp": version("aiohttp"),
        # Other work on the machine competes for its cores; the 1-minute load average tells how much.
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "max": round(ordered[-1], 2),
        "mean": round(statistics.fmean(ordered), 2),
    }


# --- the bot's process --------------------------------------------------------------------------


async def serve_bot(api_url: str, db_path: Path, model_delay: float) -> None:
    """Serve the bot on a free port, print it, and run until SIGTERM."""
    database = migrated_database(db_path)
    model = FakeModel()
    model.delay = model_delay
    deps = make_deps(database, model)
    session = aiohttp.ClientSession()  # one keep-alive pool for Web API calls, as `serve` sets up
    slack = build_slack_app(
        deps, bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, api_url=api_url, session=session
    )
    runner = web.AppRunner(
        build_app(slack=SlackRoutes(slack, SIGNING_SECRET), inflight=deps.inflight), access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(json.dumps({"port": port}), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()
    await session.close()
    await deps.pipeline.client.aclose()
    database.dispose()


async def start_bot(
    api_url: str, db_path: Path, model_delay: float
) -> tuple[asyncio.subprocess.Process, int]:
    command = ["--serve-bot", api_url, "--db", str(db_path), "--model-delay", str(model_delay)]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.slack_ack", *command, cwd=REPO, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    line = await process.stdout.readline()
    if not line:
        raise SystemExit("the bot process did not start")
    return process, int(json.loads(line)["port"])


# --- Slack's side -----------------------------------------------------------------------------


async def wait_idle(http: aiohttp.ClientSession, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with http.get(f"{url}/healthz") as response:
            if (await response.json())["in_flight"] == 0:
                return
        await asyncio.sleep(0.05)
    raise SystemExit(f"the bot was still busy after {timeout} s")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(7)
    async with SlackServer() as slack:
        with tempfile.TemporaryDirectory() as tmp:
            bot, port = await start_bot(slack.api_url, Path(tmp) / "chatbot.db", args.model_delay)
            url = f"http://127.0.0.1:{port}"
            try:
                return await load(args, rng, slack, url)
            finally:
                bot.send_signal(signal.SIGTERM)
                await asyncio.wait_for(bot.wait(), timeout=60)


async def load(args: argparse.Namespace, rng: random.Random, slack: SlackServer, url: str) -> dict[str, Any]:
    envelopes: list[dict[str, Any]] = []
    sent_at: dict[str, float] = {}
    for i in range(args.events):
        message = slack.add_message(f"C{i % 10:02d}", f"U{i % 37:03d}", f"<@U0BOT> question {i}: leave?")
        envelopes.append(event_callback(mention(message, f"C{i % 10:02d}")))
    # Each retry goes out a little after its original, while that one is still being answered.
    deliveries: list[tuple[dict[str, Any], int]] = [(e, 0) for e in envelopes]
    for i in sorted(rng.sample(range(args.events), args.retries), reverse=True):
        deliveries.insert(min(i + args.concurrency, len(deliveries)), (envelopes[i], 1))

    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    gate = asyncio.Semaphore(args.concurrency)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def deliver(envelope: dict[str, Any], retry: int) -> None:
            body = json.dumps(envelope)
            headers = signature_headers(body, content_type="application/json")
            if retry:
                headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
            async with gate:
                started = time.perf_counter()
                async with http.post(f"{url}/slack/events", data=body.encode(), headers=headers) as response:
                    await response.read()
                    latencies.append((time.perf_counter() - started) * 1000)
                    statuses[response.status] += 1
                sent_at.setdefault(envelope["event"]["ts"], started)

        async with http.get(f"{url}/healthz") as warm:  # the server is up; Slack's first event is not special
            warm.raise_for_status()
        began = time.perf_counter()
        await asyncio.gather(*(deliver(e, r) for e, r in deliveries))
        sent_s = time.perf_counter() - began
        await slack.wait_for("chat.postMessage", count=args.events, timeout=args.timeout)
        await wait_idle(http, url, args.timeout)
        wall_s = time.perf_counter() - began

    posts = [c for c in slack.calls if c.method == "chat.postMessage" and c.status == 200]
    per_thread = Counter(c.args["thread_ts"] for c in posts)
    answer_ms = [(c.at - sent_at[c.args["thread_ts"]]) * 1000 for c in posts]
    # SlackServer's clock is time.monotonic(); sent_at is perf_counter(): both CLOCK_MONOTONIC on Linux.
    expected = {e["event"]["ts"] for e in envelopes}
    return {
        "ack_ms": percentiles(latencies),
        "target_p99_ms": TARGET_P99_MS,
        "target_met": percentiles(latencies)["p99"] <= TARGET_P99_MS,
        "deliveries": len(deliveries),
        "status_codes": dict(statuses),
        "answers": {
            "events": args.events,
            "answered_exactly_once": sum(1 for ts in expected if per_thread[ts] == 1),
            "missing": sum(1 for ts in expected if per_thread[ts] == 0),
            "duplicated": sum(1 for ts in expected if per_thread[ts] > 1),
            "unexpected_threads": len(set(per_thread) - expected),
        },
        "answer_latency_ms": percentiles(answer_ms),
        "send_s": round(sent_s, 2),
        "wall_s": round(wall_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--retries", type=int, default=20, help="re-deliveries of events already sent")
    parser.add_argument("--model-delay", type=float, default=0.2, help="seconds the fake model takes")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "slack_ack.json")
    parser.add_argument("--serve-bot", metavar="SLACK_API_URL", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bot:
        asyncio.run(serve_bot(args.serve_bot, args.db, args.model_delay))
        return

    load_before = round(os.getloadavg()[0], 2)
    figures = asyncio.run(run(args))
    result = {
        "benchmark": "slack_ack",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {**machine(), "load_average_1m_before": load_before},
        "settings": {
            "events": args.events,
            "concurrency": args.concurrency,
            "retries": args.retries,
            "model_delay_s": args.model_delay,
            "max_concurrent_answers": MAX_CONCURRENT_ANSWERS,
            "store": "sqlite (WAL)",
            "bot": "separate process: build_app + AsyncApp + Pipeline, fake retriever and model",
            "slack": "tests/support/slack_api.py in the load generator's process",
        },
        **figures,
    }
    text = json.dumps(result, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(text + "\n")
    tmp.replace(args.out)
    ack, answers = result["ack_ms"], result["answers"]
    print(
        f"ack p50 {ack['p50']} ms, p99 {ack['p99']} ms (target <= {TARGET_P99_MS:.0f} ms: "
        f"{'met' if result['target_met'] else 'MISSED'}); "
        f"{answers['answered_exactly_once']}/{answers['events']} events answered exactly once",
        file=sys.stderr,
    )
    if not result["target_met"] or answers["answered_exactly_once"] != answers["events"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
