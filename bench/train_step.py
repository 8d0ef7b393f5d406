"""Training-step benchmark: seconds, tokens/s and peak memory of one LoRA optimiser step, per layout.

    .venv/bin/python -m bench.train_step [--steps 4] [--batch-size 4]

The retrain's own trainer (`retrain.train.make_trainer`: TRL's SFTTrainer, the product's LoRA and
settings) on served conversations of the sample question set (each question's prompt as the bot
would serve it today: system prompt with the retrieved passages, then the question; the reference
answer as the completion), `--steps` optimiser steps of `--batch-size` conversations, for each
layout of a batch:
  - `batched`: all of a batch's conversations in one forward pass (padded, with an attention mask);
  - `one-per-pass`: one conversation per forward pass, the batch by gradient accumulation;
  - `one-per-pass-trl-head`: the same with TRL's own loss, whose LM head on a CPU projects every
    position of the conversation, not just the answer's (`retrain.answer_loss`).
Each layout runs in a process of its own, so that its peak memory (ru_maxrss) is its own. The first
step (warm-up) is left out of the timings. Figures are printed and saved to
bench/results/train_step.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.machine import PeakRss, describe

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "train_step.json"
# name -> (rows per forward pass (0: the whole batch), training loss on the answer positions alone)
LAYOUTS = {"batched": (0, True), "one-per-pass": (1, True), "one-per-pass-trl-head": (1, False)}


def served_examples(count: int) -> list[Any]:
    from bot.knowledge.evaluate import load_questions
    from chatbot.retraining import prompt_builders
    from chatbot.settings import Settings
    from chatbot.wiring import open_knowledge, prompt_style
    from retrain.dataset import Example

    settings = Settings()
    prompt_for, _ = prompt_builders(
        open_knowledge(settings), prompt_style(settings), settings.max_model_len - 200
    )
    questions = load_questions(splits=["train"])[:count]
    return [Example(f"sample:{q['id']}", "sample", prompt_for(q["question"]), q["answer"]) for q in questions]


def one_layout(layout: str, examples: list[Any], steps: int, batch_size: int) -> dict[str, Any]:
    from transformers import TrainerCallback

    from chatbot.retraining import train_config
    from chatbot.settings import Settings
    from model_server.prepare import prepare_base_model
    from retrain.train import make_trainer

    settings = Settings()
    rows, answer_positions = LAYOUTS[layout]
    rows = rows or batch_size
    cfg = replace(
        train_config(settings), batch_size=batch_size, max_steps=steps, time_budget_s=0.0, rows_per_pass=rows
    )
    model_dir = prepare_base_model(settings.data_dir, settings.base_model, progress=False)
    step_seconds: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.started = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            step_seconds.append(time.perf_counter() - self.started)

    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(model_dir, examples, [], Path(tmp) / "adapter", cfg, progress=False)
        trainer.answer_positions_only = answer_positions
        trainer.add_callback(Clock())
        lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]  # type: ignore[index]
        trainer.train()
    timed = step_seconds[1:] or step_seconds
    tokens_per_step = statistics.mean(lengths) * batch_size
    return {
        "rows_per_pass": rows,
        "answer_positions_only": answer_positions,
        "step_seconds": [round(s, 2) for s in step_seconds],
        "median_step_s": round(statistics.median(timed), 2),
        "tokens_per_s": round(tokens_per_step / statistics.median(timed), 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
        "torch_threads": _threads(),
    }


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="optimiser steps per layout (1st: warm-up)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--server-pid", type=int, default=0, help="a model server running meanwhile: its peak memory is kept"
    )
    args = parser.parse_args()
    server = PeakRss(args.server_pid).start() if args.server_pid else None

    examples = served_examples(args.steps * args.batch_size)
    from chatbot.settings import Settings
    from model_server.prepare import prepare_base_model

    settings = Settings()
    model_dir = prepare_base_model(settings.data_dir, settings.base_model, progress=False)
    lengths = [sum(len(m["content"]) for m in e.prompt) for e in examples]
    report: dict[str, Any] = {
        "benchmark": "train_step",
        "machine": describe(),
        "settings": {
            "model": model_dir.name,
            "batch_size": args.batch_size,
            "steps": args.steps,
            "conversations": len(examples),
            "prompt_characters": {"min": min(lengths), "max": max(lengths)},
        },
        "layouts": {},
    }
    for layout in args.layouts.split(","):
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            row = pool.submit(one_layout, layout, examples, args.steps, args.batch_size).result()
        print(f"{layout}: {row}", flush=True)
        report["layouts"][layout] = row
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    if server is not None:
        server.stop()
        # what a retrain and the model server hold together at their peaks, beside the bot
        report["server_peak_rss_gb"] = round(server.peak / 1e9, 2)
        for row in report["layouts"].values():
            row["with_server_peak_gb"] = round(row["peak_rss_gb"] + server.peak / 1e9, 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
