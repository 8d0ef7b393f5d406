"""Model-server benchmark: throughput, latency, and hot swaps under load, for each backend.

    .venv/bin/python -m bench.model_server [--backends engine,vllm] [--max-tokens 64]

For each backend it starts a real server (the code path of `chatbot model-server`) on the bundled
SmolLM2 and measures, through our client:
  - single-stream tokens/s, and aggregate tokens/s with p50/p95 latency at 1, 4, 8, 16 concurrent;
  - a swap-under-load run: 8 clients ask continuously while an adapter is loaded under a new name
    and traffic switched to it, 6 times; failed requests are counted, and the time from each switch
    to the first answer produced by the new adapter is recorded.
Figures are printed and saved to bench/results/model_server.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.machine import describe
from model_server.client import AsyncModelClient
from model_server.prepare import prepare_base_model
from tests.support.model_servers import running_server, vllm_python

REPO = Path(__file__).resolve().parent.parent
LEVELS = [1, 4, 8, 16]
QUESTION = [
    {"role": "user", "content": "Explain in a few sentences why regular backups matter for a company."}
]


def machine() -> dict[str, Any]:
    import torch

    return {**describe(), "torch": torch.__version__}


def make_adapter(model_dir: Path, out: Path, seed: int) -> Path:
    """A random rank-8 LoRA adapter: enough to tell which adapter answered and to exercise swaps."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], init_lora_weights=False
    )
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    model.save_pretrained(out)
    return out


async def one(client: AsyncModelClient, model: str, max_tokens: int) -> tuple[float, int, str]:
    started = time.perf_counter()
    result = await client.chat(QUESTION, model=model, max_tokens=max_tokens, temperature=0.0, logprobs=False)
    return time.perf_counter() - started, result.completion_tokens, result.model


async def load_levels(url: str, levels: list[int], max_tokens: int, rounds: int) -> list[dict[str, Any]]:
    client = AsyncModelClient(url, timeout=600)
    await one(client, "base", 8)  # warm-up
    rows = []
    for level in levels:
        latencies: list[float] = []
        tokens = 0
        started = time.perf_counter()
        for _ in range(rounds):
            results = await asyncio.gather(*(one(client, "base", max_tokens) for _ in range(level)))
            latencies += [r[0] for r in results]
            tokens += sum(r[1] for r in results)
        wall = time.perf_counter() - started
        ordered = sorted(latencies)
        rows.append(
            {
                "concurrency": level,
                "requests": len(latencies),
                "completion_tokens": tokens,
                "aggregate_tokens_per_s": round(tokens / wall, 1),
                "per_stream_tokens_per_s": round(tokens / sum(latencies), 1),
                "latency_p50_s": round(statistics.median(ordered), 3),
                "latency_p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
            }
        )
        print(f"  concurrency {level:>2}: {rows[-1]}")
    await client.aclose()
    return rows


async def streamed(http: httpx.AsyncClient, model: str, max_tokens: int) -> tuple[float, str]:
    """One streamed request: seconds to its first content token, and the model named in the chunks.

    Servers may send a role-only chunk before any token exists (the embedded engine does, at once),
    so the clock stops at the first chunk that carries text."""
    payload = {
        "model": model,
        "messages": QUESTION,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
    }
    started = time.perf_counter()
    first, answered_by = 0.0, ""
    async with http.stream("POST", "/v1/chat/completions", json=payload) as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
        async for line in response.aiter_lines():
            if not line.startswith("data: {") or first:
                continue
            chunk = json.loads(line[6:])
            if any((choice.get("delta") or {}).get("content") for choice in chunk.get("choices", [])):
                first, answered_by = time.perf_counter() - started, chunk.get("model", "")
    return first, answered_by


async def swap_under_load(url: str, adapters: list[Path], clients: int, max_tokens: int) -> dict[str, Any]:
    """Switch traffic to a freshly loaded adapter (new name each time) while clients keep asking."""
    client = AsyncModelClient(url, timeout=600)
    http = httpx.AsyncClient(base_url=url, timeout=600)
    current = {"model": "base"}
    first_token: dict[str, float] = {}
    first_answer: dict[str, float] = {}
    failures: list[str] = []
    done = asyncio.Event()
    completed = 0

    async def worker() -> None:
        nonlocal completed
        while not done.is_set():
            model = current["model"]
            sent = time.perf_counter()
            try:
                ttft, answered_by = await streamed(http, model, max_tokens)
            except (httpx.HTTPError, RuntimeError) as exc:
                failures.append(f"{model}: {exc}")
                continue
            completed += 1
            if answered_by == model != "base":
                first_token.setdefault(model, sent + ttft)
                first_answer.setdefault(model, time.perf_counter())

    workers = [asyncio.create_task(worker()) for _ in range(clients)]
    await asyncio.sleep(2.0)
    switches = []
    loaded: list[str] = []
    for i, path in enumerate(adapters, start=1):
        name = f"kb-v{i}"
        load_started = time.perf_counter()
        await client.load_adapter(name, str(path))
        loaded.append(name)
        switched = time.perf_counter()
        current["model"] = name  # every request from now on asks for the new adapter
        # A question arriving at the moment of the switch (the 8 clients only ask again once
        # their current answer is done, which would add a whole answer's time).
        probe_ttft, probe_model = await streamed(http, name, max_tokens)
        probe_done = time.perf_counter()
        while name not in first_answer:
            await asyncio.sleep(0.01)
        switches.append(
            {
                "adapter": name,
                "load_s": round(switched - load_started, 3),
                "probe_first_token_s": round(probe_ttft, 3),
                "probe_answer_s": round(probe_done - switched, 3),
                "probe_answered_by_new_adapter": probe_model == name,
                "clients_switch_to_first_token_s": round(first_token[name] - switched, 3),
                "clients_switch_to_first_answer_s": round(first_answer[name] - switched, 3),
            }
        )
        print(f"  swap {i}: {switches[-1]}")
        if len(loaded) > 2:  # keep active + previous loaded, like the retrain job does
            await client.unload_adapter(loaded.pop(0))
        await asyncio.sleep(1.0)
    done.set()
    await asyncio.gather(*workers)
    await client.aclose()
    await http.aclose()
    return {
        "clients": clients,
        "max_tokens": max_tokens,
        "swaps": switches,
        "requests_completed": completed,
        "failed_requests": len(failures),
        "failures": failures[:10],
        "max_probe_first_token_s": max(s["probe_first_token_s"] for s in switches),
        "max_probe_answer_s": max(s["probe_answer_s"] for s in switches),
        "max_clients_switch_to_first_answer_s": max(s["clients_switch_to_first_answer_s"] for s in switches),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="engine,vllm")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--swap-max-tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-levels", action="store_true", help="only the swap-under-load run")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "model_server.json")
    args = parser.parse_args()

    model_dir = prepare_base_model(REPO / "data" / "test-cache")
    work = Path(tempfile.mkdtemp(prefix="bench-adapters-"))
    adapters = [make_adapter(model_dir, work / f"a{i}", seed=i) for i in range(1, 7)]
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    report: dict[str, Any] = {
        "benchmark": "model_server",
        "machine": machine(),
        "settings": {"model": model_dir.name, "max_tokens": args.max_tokens, "rounds": args.rounds},
        "backends": {},
    }
    for backend in args.backends.split(","):
        if backend == "vllm" and vllm_python() is None:
            print("vllm: skipped, no .venv-vllm (run `make vllm`)")
            report["backends"][backend] = {"skipped": "no .venv-vllm"}
            continue
        print(f"== {backend}")
        with running_server(backend, model_dir, work / f"{backend}.log", max_loras=3) as url:
            levels = (
                None
                if args.skip_levels
                else asyncio.run(load_levels(url, LEVELS, args.max_tokens, args.rounds))
            )
            swap = asyncio.run(swap_under_load(url, adapters, 8, args.swap_max_tokens))
        if levels is None:  # keep the throughput figures of the last full run
            report["backends"][backend] = {
                **previous.get("backends", {}).get(backend, {}),
                "swap_under_load": swap,
            }
            continue
        single = levels[0]["aggregate_tokens_per_s"]
        report["backends"][backend] = {
            "levels": levels,
            "single_stream_tokens_per_s": single,
            "speedup_at_8": round(levels[2]["aggregate_tokens_per_s"] / single, 2),
            "speedup_at_16": round(levels[3]["aggregate_tokens_per_s"] / single, 2),
            "swap_under_load": swap,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(
        json.dumps(
            {k: {kk: vv for kk, vv in v.items() if kk != "levels"} for k, v in report["backends"].items()},
            indent=2,
        )
    )
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
