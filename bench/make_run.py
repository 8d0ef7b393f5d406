"""`make run` start-up benchmark: from the command to a question answered, on a first and a later start.

    .venv/bin/python -m bench.make_run [--starts 3]

Runs the README's `make run` (with .venv and .venv-vllm already built) in a fresh DATA_DIR on ports of
its own, `--starts` times in a row. The first start prepares the base model from its GGUF package,
migrates the database and embeds the sample knowledge base; the later ones are what a user's second
`make run` is. For each start it records, from the moment `make run` is launched:
  - scheduler_s, bot_s, model_s: when the scheduler's and the bot's /healthz and the model server's
    /health first answer 200;
  - answered_s: when the console's chat (the bot's /console/api/ask) has answered a sample-wiki
    question, and whether the answer cites the page it comes from;
  - stop_s: how long Ctrl-C (SIGINT to the process group, as a terminal sends it) takes to end
    `make run`, and how many of its processes are left after it.
Figures are printed and saved to bench/results/make_run.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.machine import describe

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "make_run.json"
QUESTION = "How many days of annual leave do I get?"
EXPECTED_SOURCE = "annual-leave"
PORTS = {"PORT": 3310, "SCHEDULER_PORT": 3410, "MODEL_PORT": 8310}


def environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "MODEL_SERVER_URL"}}
    return {
        **env,
        "DATA_DIR": str(data_dir),
        "PORT": str(PORTS["PORT"]),
        "SCHEDULER_PORT": str(PORTS["SCHEDULER_PORT"]),
        "MODEL_SERVER_URL": f"http://127.0.0.1:{PORTS['MODEL_PORT']}",
    }


def up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def ask(question: str) -> dict[str, Any] | None:
    """The console's answer event for `question`, or None when the bot gave none."""
    base = f"http://127.0.0.1:{PORTS['PORT']}"
    with httpx.stream(
        "POST",
        f"{base}/console/api/ask",
        json={"question": question, "user": "bench"},
        headers={"Origin": base},
        timeout=300,
    ) as response:
        event = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "answer":
                answer: dict[str, Any] = json.loads(line[6:])
                return answer
    return None


def one_start(data_dir: Path, log_path: Path, timeout: float) -> dict[str, Any]:
    checks = {
        "scheduler_s": f"http://127.0.0.1:{PORTS['SCHEDULER_PORT']}/healthz",
        "bot_s": f"http://127.0.0.1:{PORTS['PORT']}/healthz",
        "model_s": f"http://127.0.0.1:{PORTS['MODEL_PORT']}/health",
    }
    row: dict[str, Any] = {}
    with log_path.open("wb") as log:
        started = time.monotonic()
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=REPO,
            env=environment(data_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, which Ctrl-C reaches as a whole
        )
        try:
            while len(row) < len(checks) and time.monotonic() - started < timeout:
                if process.poll() is not None:
                    raise RuntimeError(f"make run exited with {process.returncode}; see {log_path}")
                for name, url in checks.items():
                    if name not in row and up(url):
                        row[name] = round(time.monotonic() - started, 1)
                time.sleep(0.25)
            answer = ask(QUESTION)
            row["answered_s"] = round(time.monotonic() - started, 1)
            sources = [s.get("source", "") + s.get("title", "") for s in (answer or {}).get("sources", [])]
            row["answer"] = (answer or {}).get("text", "")[:200]
            row["answer_cites_page"] = any(EXPECTED_SOURCE in s.lower() for s in sources)
            row["answered_by"] = (answer or {}).get("adapter")
        finally:
            stopping = time.monotonic()
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
            row["stop_s"] = round(time.monotonic() - stopping, 1)
            time.sleep(2)
            left = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True)
            row["processes_left"] = len(left.stdout.split())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for each start")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    report: dict[str, Any] = {
        "benchmark": "make_run",
        "machine": describe(),
        "settings": {"question": QUESTION, "ports": PORTS, "starts": args.starts},
        "starts": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-make-run-") as tmp:
        for n in range(args.starts):
            row = one_start(Path(tmp) / "data", Path(tmp) / f"make-run-{n}.log", args.timeout)
            row["kind"] = "first" if n == 0 else "again"
            print(f"start {n + 1} ({row['kind']}): {row}", flush=True)
            report["starts"].append(row)
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
