"""Model-server start-up benchmark: how long until the server answers, for each way of starting it.

    .venv/bin/python -m bench.startup [--variants vllm,vllm-three-processes,engine] [--trials 3]

Each variant starts a real server on the bundled SmolLM2 through `model_server.launch` (the code
path of `chatbot model-server`), `--trials` times in a row, and measures:
  - ready_s: from the process start to GET /health answering 200;
  - first_answer_s: the first chat completion after that (16 tokens), as a user's first question;
  - single_tokens_per_s / aggregate_tokens_per_s_at_8: 64-token answers, one at a time and 8 at once,
    so that a faster start is never bought with slower answers unnoticed;
  - rag_single_s / rag_8_s: what the bot really sends, a prompt of about 850 tokens (a sample-wiki
    page, as retrieved passages) and a 32-token answer: one question alone, then 8 different ones at
    once (seconds until all 8 are answered);
  - adapter_rag_single_s / adapter_rag_8_s: the same through a LoRA adapter shaped as a retrain
    writes it (`retrain.train.TrainConfig`'s rank, on every layer it targets), loaded at run time, as the
    bot answers once an adapter is active and as the validation gate asks its candidate.
Variants: `vllm` is the product's command and environment as they stand (on a CPU without bfloat16
instructions that means `--dtype float32`, `launch.vllm_dtype`); `vllm-bfloat16` is the same with the
model's own bfloat16 and `vllm-float32` with float32; `vllm-stock-lora` runs vLLM's own CPU LoRA
ops instead of model_server/vllm_serve.py's; `vllm-three-processes` is vLLM's own default of a
separate worker process (VLLM_ENABLE_V1_MULTIPROCESSING=1); `engine` is the embedded engine. The
first vLLM start after installing may fill caches; later trials are what a second `make run` sees.
Figures are printed and saved to bench/results/startup.json.
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

from bench.machine import describe
from model_server import launch
from model_server.client import AsyncModelClient
from model_server.prepare import prepare_base_model
from retrain.train import TrainConfig
from tests.support.lora import make_lora
from tests.support.model_servers import SHORT_QUESTION, running_server, vllm_python, wiki_question

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "startup.json"
# variant -> (backend, environment overrides, ServerSpec overrides)
VARIANTS: dict[str, tuple[str, dict[str, str], dict[str, object]]] = {
    "vllm": ("vllm", {}, {}),
    "vllm-bfloat16": ("vllm", {}, {"dtype": "bfloat16"}),
    "vllm-float32": ("vllm", {}, {"dtype": "float32"}),
    "vllm-stock-lora": ("vllm", {}, {"grouped_lora_ops": False}),
    "vllm-three-processes": ("vllm", {"VLLM_ENABLE_V1_MULTIPROCESSING": "1"}, {}),
    "engine": ("transformers", {}, {}),
}
DEFAULT_VARIANTS = "vllm,vllm-bfloat16,engine"


async def rag_times(client: AsyncModelClient, model: str) -> tuple[float, float]:
    """Seconds for one wiki-sized question alone, then for 8 different ones at once."""
    started = time.perf_counter()
    await client.chat(wiki_question(0), model=model, max_tokens=32, temperature=0.0, logprobs=False)
    single = time.perf_counter() - started
    started = time.perf_counter()
    await asyncio.gather(
        *(
            client.chat(wiki_question(n), model=model, max_tokens=32, temperature=0.0, logprobs=False)
            for n in range(1, 9)
        )
    )
    return single, time.perf_counter() - started


async def answer_speed(url: str, adapter: Path | None) -> dict[str, float]:
    client = AsyncModelClient(url, timeout=600)
    started = time.perf_counter()
    await client.chat(SHORT_QUESTION, model="base", max_tokens=16, temperature=0.0, logprobs=False)
    first = time.perf_counter() - started

    started = time.perf_counter()
    one = await client.chat(SHORT_QUESTION, model="base", max_tokens=64, temperature=0.0, logprobs=False)
    single = one.completion_tokens / (time.perf_counter() - started)

    started = time.perf_counter()
    many = await asyncio.gather(
        *(
            client.chat(SHORT_QUESTION, model="base", max_tokens=64, temperature=0.0, logprobs=False)
            for _ in range(8)
        )
    )
    aggregate = sum(r.completion_tokens for r in many) / (time.perf_counter() - started)

    rag_single, rag_8 = await rag_times(client, "base")
    adapter_figures = {}
    if adapter is not None:
        await client.load_adapter("bench-adapter", str(adapter))
        adapter_single, adapter_8 = await rag_times(client, "bench-adapter")
        adapter_figures = {
            "adapter_rag_single_s": round(adapter_single, 2),
            "adapter_rag_8_s": round(adapter_8, 2),
        }
    await client.aclose()
    return {
        "first_answer_s": round(first, 2),
        "single_tokens_per_s": round(single, 1),
        "aggregate_tokens_per_s_at_8": round(aggregate, 1),
        "rag_single_s": round(rag_single, 2),
        "rag_8_s": round(rag_8, 2),
        **adapter_figures,
    }


def one_start(variant: str, model_dir: Path, log_path: Path, adapter: Path | None) -> dict[str, Any]:
    backend, env, spec = VARIANTS[variant]
    started = time.monotonic()
    with running_server(backend, model_dir, log_path, env=env, max_loras=3, **spec) as url:
        ready = time.monotonic() - started
        speed = asyncio.run(answer_speed(url, adapter))
    return {"ready_s": round(ready, 1), **speed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"any of {', '.join(VARIANTS)}")
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    model_dir = prepare_base_model(REPO / "data")
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    adapter = make_lora(model_dir, work / "adapter", target_modules=list(TrainConfig().target_modules))
    report: dict[str, Any] = {
        "benchmark": "startup",
        "machine": describe(),
        "settings": {
            "model": model_dir.name,
            "trials": args.trials,
            "max_loras": 3,
            "adapter": f"rank {TrainConfig().rank} on {', '.join(TrainConfig().target_modules)}",
            "vllm_dtype_auto_here": launch.vllm_dtype("auto"),  # what `vllm` runs with on this machine
        },
        "variants": {},
    }
    for variant in args.variants.split(","):
        if variant.startswith("vllm") and vllm_python() is None:
            report["variants"][variant] = {"skipped": "no .venv-vllm (run `make vllm`)"}
            continue
        trials = []
        for n in range(args.trials):
            row = one_start(variant, model_dir, work / f"{variant}-{n}.log", adapter)
            print(f"{variant} trial {n + 1}: {row}", flush=True)
            trials.append(row)
        report["variants"][variant] = {
            "trials": trials,
            "ready_s_last": trials[-1]["ready_s"],
            "ready_s_median": round(statistics.median(t["ready_s"] for t in trials), 1),
        }
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["variants"], indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
