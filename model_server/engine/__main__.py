"""Serve a model with the embedded engine. Flag names follow vLLM's where vLLM has them.

    python -m model_server.engine --model DIR --served-model-name base --host 127.0.0.1 --port 8000 \
        --max-loras 3 --max-lora-rank 16 [--lora-modules name=path ...] [--max-batch 16]

SIGINT/SIGTERM stop accepting connections, let running requests finish (up to
--shutdown-timeout seconds), then stop the generation thread.
"""

from __future__ import annotations

import argparse
import logging
import os

from aiohttp import web

from model_server.engine.app import create_app
from model_server.engine.core import Engine, EngineConfig
from model_server.engine.errors import EngineError, sanitize_message


def _lora_module(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected name=path, got {text!r}")
    return name, path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m model_server.engine", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", required=True, help="local model directory (safetensors + tokenizer)")
    parser.add_argument("--served-model-name", nargs="+", default=[], help="name(s) clients use for the base")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-loras", type=int, default=1, help="distinct adapters in one batch")
    parser.add_argument("--max-lora-rank", type=int, default=16, help="adapters of higher rank are refused")
    parser.add_argument("--max-cpu-loras", type=int, default=None, help="adapters kept in memory when idle")
    parser.add_argument("--lora-modules", nargs="+", type=_lora_module, default=[], metavar="NAME=PATH")
    parser.add_argument(
        "--max-batch",
        "--max-num-seqs",
        dest="max_batch",
        type=int,
        default=16,
        help="sequences decoded together",
    )
    parser.add_argument("--max-model-len", type=int, default=None, help="prompt + output tokens per request")
    parser.add_argument(
        "--num-threads", type=int, default=None, help="torch threads (default: usable CPUs - 1, at most 8)"
    )
    parser.add_argument("--shutdown-timeout", type=float, default=30.0, help="seconds to let requests finish")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument(
        "--api-key",
        default=os.environ.get("VLLM_API_KEY", ""),
        help="/v1 routes want this bearer token (default: VLLM_API_KEY, as vLLM reads it)",
    )
    # accepted so that a vLLM command line works unchanged; LoRA is always on here
    parser.add_argument("--enable-lora", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = EngineConfig(
        model=args.model,
        served_model_names=tuple(args.served_model_name),
        max_loras=args.max_loras,
        max_lora_rank=args.max_lora_rank,
        max_cpu_loras=args.max_cpu_loras,
        max_batch=args.max_batch,
        max_model_len=args.max_model_len,
        num_threads=args.num_threads,
        lora_modules=tuple(args.lora_modules),
    )
    try:
        engine = Engine.load(config)
    except EngineError as exc:  # e.g. a --lora-modules adapter that cannot be served
        raise SystemExit(f"Cannot start: {sanitize_message(exc.message)}") from None
    try:
        # run_app turns SIGINT/SIGTERM into a graceful stop: no new connections, running ones finish
        web.run_app(
            create_app(engine, api_key=args.api_key),
            host=args.host,
            port=args.port,
            shutdown_timeout=args.shutdown_timeout,
            access_log=None,  # one line per request comes from the chat route, with tokens and time
            print=None,
        )
    finally:
        engine.close()


if __name__ == "__main__":
    main()
