"""The engine: the base model, its adapters by name, and the generation thread behind them.

The HTTP layer talks only to `Engine`: it resolves a request's `model` to the base or an adapter,
turns a chat request into a `Job` whose token events arrive on the event loop, and loads or unloads
adapters with vLLM's rules and messages. Everything that touches the model runs on the generation
thread (see generation.py); this class never does.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from model_server.engine.adapters import AdapterEntry, check_adapter, supported_modules
from model_server.engine.chat import render_prompt, sampling_params
from model_server.engine.errors import EngineError, InvalidUserInput, NotFound
from model_server.engine.generation import BatchWorker, GenRequest, TokenEvent, WorkerLimits
from model_server.engine.protocol import (
    ChatCompletionRequest,
    LoadLoRAAdapterRequest,
    UnloadLoRAAdapterRequest,
)
from model_server.engine.resident import ResidentAdapters
from model_server.engine.responses import completion_id, model_card
from model_server.engine.sampling import SamplingParams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    model: str  # a local model directory (safetensors + tokenizer)
    served_model_names: tuple[str, ...] = ()  # empty: the model path, as vLLM does
    max_loras: int = 1  # distinct adapters in one batch (vLLM's meaning)
    max_lora_rank: int = 16
    max_cpu_loras: int | None = None  # adapters kept in memory when idle; default max_loras
    max_batch: int = 16  # sequences decoded together (vLLM's --max-num-seqs)
    max_model_len: int | None = None  # default: the model's max_position_embeddings
    num_threads: int | None = None  # torch threads; default: default_threads()
    lora_modules: tuple[tuple[str, str], ...] = ()  # (name, path) loaded at start


class Job:
    """One chat request on its way through the generation thread; events arrive on the event loop."""

    def __init__(
        self, model: str, prompt: list[int], params: SamplingParams, adapter: AdapterEntry | None
    ) -> None:
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model
        self.prompt_tokens = len(prompt)
        self.params = params
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[TokenEvent | EngineError] = asyncio.Queue()
        self.request = GenRequest(prompt, params, adapter, self._deliver)

    def _deliver(self, item: TokenEvent | EngineError) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone (shutdown): nobody is listening any more
            self.request.cancelled = True

    async def events(self) -> AsyncIterator[TokenEvent]:
        """Token events until the one carrying finish_reason; raises the error that ended the job."""
        while True:
            item = await self._queue.get()
            if isinstance(item, EngineError):
                raise item
            yield item
            if item.finish_reason is not None:
                return

    def cancel(self) -> None:
        self.request.cancelled = True


class Engine:
    def __init__(self, config: EngineConfig, model: Any, tokenizer: Any, worker_tokenizer: Any) -> None:
        self.config = config
        self.served_names = config.served_model_names or (config.model,)
        self.max_model_len = config.max_model_len or int(model.config.max_position_embeddings)
        self.tokenizer = tokenizer
        self._modules = supported_modules(model)
        self._adapters: dict[str, AdapterEntry] = {}
        self._keys = (f"a{n}" for n in itertools.count(1))
        self._lock: asyncio.Lock | None = None
        resident = ResidentAdapters(model, max(config.max_cpu_loras or config.max_loras, 1))
        limits = WorkerLimits(
            max_batch=config.max_batch,
            max_loras=config.max_loras,
            max_model_len=self.max_model_len,
            eos=_eos_ids(model, tokenizer),
            pad=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
        )
        self.worker = BatchWorker(resident, worker_tokenizer, limits)
        self.worker.start()
        try:
            for name, path in config.lora_modules:  # --lora-modules: loaded before serving, like vLLM
                check_adapter(name, path, max_rank=config.max_lora_rank, modules=self._modules)
                entry = AdapterEntry(name, path, next(self._keys))
                self.worker.call(partial(resident.ensure, entry)).result()
                self._adapters[name] = entry
        except BaseException:
            self.worker.stop()
            raise

    @classmethod
    def load(cls, config: EngineConfig) -> Engine:
        """Load the model from disk (float32 on CPU) and start the generation thread."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(config.num_threads or default_threads())
        started = time.monotonic()
        model = AutoModelForCausalLM.from_pretrained(config.model, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(config.model)
        # the generation thread decodes with its own copy, so no tokenizer is shared across threads
        worker_tokenizer = AutoTokenizer.from_pretrained(config.model)
        log.info(
            "loaded %s in %.1f s (%d torch threads)",
            config.model,
            time.monotonic() - started,
            torch.get_num_threads(),
        )
        return cls(config, model, tokenizer, worker_tokenizer)

    def close(self) -> None:
        self.worker.stop()

    # -- models ------------------------------------------------------------------------------------

    def resolve(self, name: str | None) -> AdapterEntry | None:
        """The adapter a request's `model` names; None for the base model (also when omitted)."""
        if not name or name in self.served_names:
            return None
        if name in self._adapters:
            return self._adapters[name]
        raise NotFound(
            f"The model `{name}` does not exist. Valid aliases: {', '.join(self.served_names)}.",
            param="model",
        )

    def models(self) -> list[dict[str, Any]]:
        cards = [model_card(name, self.config.model, None, self.max_model_len) for name in self.served_names]
        parent = self.served_names[0]
        return cards + [model_card(a.name, a.path, parent, None) for a in self._adapters.values()]

    # -- generation --------------------------------------------------------------------------------

    def start(self, body: ChatCompletionRequest) -> Job:
        """Validate the request as vLLM does (model first), then queue it for the generation thread."""
        adapter = self.resolve(body.model)
        prompt = render_prompt(self.tokenizer, body.messages)
        params = sampling_params(body, len(prompt), self.max_model_len)
        job = Job(adapter.name if adapter else self.served_names[0], prompt, params, adapter)
        self.worker.submit(job.request)
        return job

    # -- adapters ----------------------------------------------------------------------------------

    async def load_adapter(self, body: LoadLoRAAdapterRequest) -> str:
        name, path = body.lora_name, body.lora_path
        async with self._adapter_lock():
            if not name or not path:
                raise InvalidUserInput("Both 'lora_name' and 'lora_path' must be provided.")
            if name in self.served_names:
                raise InvalidUserInput(f"The lora adapter '{name}' conflicts with a served base model.")
            if name in self._adapters and not body.load_inplace:
                raise InvalidUserInput(
                    f"The lora adapter '{name}' has already been loaded. If you want to load the adapter "
                    "in place, set 'load_inplace' to True."
                )
            await asyncio.to_thread(
                check_adapter, name, path, max_rank=self.config.max_lora_rank, modules=self._modules
            )
            entry = AdapterEntry(name, path, next(self._keys))
            resident = self.worker.adapters
            await asyncio.wrap_future(self.worker.call(partial(resident.ensure, entry)))
            previous = self._adapters.get(name)
            self._adapters[name] = entry
            if previous is not None:  # in place: running requests finish on the old version
                self.worker.call(partial(resident.retire, previous.key))
            log.info("loaded LoRA adapter %s from %s", name, path)
            return f"Success: LoRA adapter '{name}' added successfully."

    async def unload_adapter(self, body: UnloadLoRAAdapterRequest) -> str:
        name = body.lora_name
        async with self._adapter_lock():
            if not name:
                raise InvalidUserInput("'lora_name' needs to be provided to unload a LoRA adapter.")
            if name not in self._adapters:
                raise NotFound(f"The lora adapter '{name}' cannot be found.")
            entry = self._adapters.pop(name)
            resident = self.worker.adapters
            # new requests for the name get 404 from now on; running ones keep their weights to the end
            await asyncio.wrap_future(self.worker.call(partial(resident.retire, entry.key)))
            log.info("unloaded LoRA adapter %s", name)
            return f"Success: LoRA adapter '{name}' removed successfully."

    def _adapter_lock(self) -> asyncio.Lock:
        # created on first use so that it belongs to the event loop serving the requests
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock


def default_threads() -> int:
    """One CPU left for the event loop (and the bot beside us); more than 8 barely helps a small model.

    Oversubscribed OpenMP threads spin-wait on each other: with every CPU busy elsewhere too, a
    forward pass on as many threads as CPUs ran several times slower than on one fewer."""
    return max(1, min(8, len(os.sched_getaffinity(0)) - 1))


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return frozenset(ids)
