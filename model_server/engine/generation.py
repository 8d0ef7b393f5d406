"""The generation thread: one loop that batches every waiting request into shared forward passes.

Each turn of the loop (1) runs queued control commands (adapter load/unload) — the only moment
the model may change, so no forward pass ever sees a half-loaded adapter; (2) admits waiting
requests into the running batch: one left-padded prefill for the newcomers, whose KV cache is then
merged into the batch's (continuous batching: nobody waits for the batch to drain); (3) runs one
decode step for all rows and hands each row its token. A row leaves the batch on its own EOS,
stop string or max_tokens.

Adapters are isolated per row: the forward pass gets `adapter_names=[key per row]` (peft's
mixed-adapter batch inference), which applies each LoRA only to the rows of its own key, and a
row's key is fixed when it joins.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from transformers import DynamicCache

from model_server.engine.adapters import AdapterEntry
from model_server.engine.errors import EngineError, ServerError
from model_server.engine.kvcache import PaddedBatch
from model_server.engine.resident import BASE, ResidentAdapters
from model_server.engine.responses import TokenLogprob
from model_server.engine.sampling import Choice, SamplingParams, choose, make_generator
from model_server.engine.text import TextTracker

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class TokenEvent:
    """One generated token: its text delta ('' while text is held back) and, when asked, logprobs."""

    text: str
    logprob: TokenLogprob | None
    finish_reason: str | None = None
    stop_reason: str | int | None = None


@dataclass(eq=False)
class GenRequest:
    prompt: list[int]
    params: SamplingParams
    adapter: AdapterEntry | None
    # called on the generation thread with each event, or the error that ended the request
    deliver: Callable[[TokenEvent | EngineError], None]
    cancelled: bool = False  # set by the HTTP side when the client went away

    @property
    def key(self) -> str:
        return self.adapter.key if self.adapter else BASE


@dataclass(eq=False)
class _Row:
    request: GenRequest
    text: TextTracker
    generator: torch.Generator | None
    cached: int  # this row's real tokens in the KV cache
    pending: int = -1  # the last chosen token, fed in at the next step
    generated: int = 0


@dataclass
class WorkerStats:
    """Counters for logs and tests: how much batching and adapter mixing actually happened."""

    forward_passes: int = 0
    peak_rows: int = 0  # most sequences in one forward pass
    peak_adapters: int = 0  # most distinct adapters (the base counting as one) in one forward pass


@dataclass
class WorkerLimits:
    max_batch: int
    max_loras: int
    max_model_len: int
    prefill_tokens: int = 8192  # padded prompt tokens per prefill; longer queues prefill over several turns
    eos: frozenset[int] = field(default_factory=frozenset)
    pad: int = 0


class BatchWorker:
    def __init__(self, adapters: ResidentAdapters, tokenizer: Any, limits: WorkerLimits) -> None:
        self.adapters = adapters
        self._model_config: Any = getattr(adapters.base, "config", None)
        self.limits = limits
        self._tokenizer = tokenizer
        self._token_text: dict[int, str] = {}
        self._cv = threading.Condition()
        self._waiting: deque[GenRequest] = deque()
        self._commands: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._rows: list[_Row] = []
        self._batch: PaddedBatch | None = None
        self._stopping = False
        self.stats = WorkerStats()
        self._thread = threading.Thread(target=self._run, name="generation", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._thread.join()

    @property
    def running(self) -> int:
        """Sequences in the running batch (read from another thread, so only a hint)."""
        return len(self._rows)

    def submit(self, request: GenRequest) -> None:
        with self._cv:
            if self._stopping:
                raise ServerError("The engine is shutting down.")
            self._waiting.append(request)
            self._cv.notify()

    def call(self, command: Callable[[], T]) -> Future[T]:
        """Run `command` on the generation thread between two forward passes."""
        future: Future[T] = Future()
        with self._cv:
            self._commands.append((command, future))
            self._cv.notify()
        return future

    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                with self._cv:
                    while not (self._stopping or self._waiting or self._commands or self._rows):
                        self._cv.wait()
                    if self._stopping:
                        break
                    commands = list(self._commands)
                    self._commands.clear()
                for command, future in commands:
                    try:
                        future.set_result(command())
                    except BaseException as exc:
                        future.set_exception(exc)
                try:
                    self._admit()
                    if self._rows:
                        self._decode()
                except Exception as exc:
                    log.exception("generation failed; failing the %d requests in the batch", len(self._rows))
                    self._fail_all(ServerError(f"Generation failed: {exc}"))
        self._fail_all(ServerError("The engine is shutting down."))
        for request in self._waiting:
            request.deliver(ServerError("The engine is shutting down."))
        for _command, future in self._commands:
            future.set_exception(ServerError("The engine is shutting down."))

    def _take_waiting(self) -> list[GenRequest]:
        """Waiting requests that fit: free rows, at most max_loras adapters per batch, a prefill budget."""
        keys = {row.request.key for row in self._rows} - {BASE}
        taken: list[GenRequest] = []
        later: list[GenRequest] = []
        slot_wanted = False  # once a request waits for an adapter slot, no later adapter request overtakes it
        with self._cv:
            while self._waiting and len(self._rows) + len(taken) < self.limits.max_batch:
                request = self._waiting.popleft()
                if request.cancelled:
                    continue
                longest = max([len(request.prompt), *(len(t.prompt) for t in taken)])
                if taken and longest * (len(taken) + 1) > self.limits.prefill_tokens:
                    later.append(request)
                    break
                if request.key != BASE and (
                    slot_wanted or (request.key not in keys and len(keys) >= self.limits.max_loras)
                ):
                    # it gets a slot when a running adapter's rows finish, which they can only do if no
                    # newer request for them joins meanwhile; base requests need no slot and go ahead
                    slot_wanted = True
                    later.append(request)
                    continue
                keys.add(request.key)
                taken.append(request)
            self._waiting.extendleft(reversed(later))
        return taken

    def _admit(self) -> None:
        ready = []
        for request in self._take_waiting():
            if request.adapter is not None:
                try:
                    self.adapters.ensure(request.adapter)  # reloads it if it was evicted meanwhile
                except EngineError as exc:
                    request.deliver(exc)
                    continue
                self.adapters.acquire(request.key)
            ready.append(request)
        if not ready:
            return
        width = max(len(r.prompt) for r in ready)
        ids = torch.full((len(ready), width), self.limits.pad, dtype=torch.long)
        mask = torch.zeros((len(ready), width), dtype=torch.long)
        for i, request in enumerate(ready):
            ids[i, width - len(request.prompt) :] = torch.tensor(request.prompt)
            mask[i, width - len(request.prompt) :] = 1
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        cache = DynamicCache(config=self._model_config)
        rows = [
            _Row(r, TextTracker(self._tokenizer, r.params.stop), make_generator(r.params.seed), len(r.prompt))
            for r in ready
        ]
        try:
            logits = self._forward(rows, ids, mask, positions, cache, last_only=True)
        except Exception as exc:
            # the running batch has its own cache and is unharmed; only the newcomers fail
            log.exception("prefill of %d requests failed", len(rows))
            for row in rows:
                row.request.deliver(ServerError(f"Generation failed: {exc}"))
                if row.request.adapter is not None:
                    self.adapters.release(row.request.key)
            return
        new = PaddedBatch(cache, mask)
        if self._batch is None:
            self._batch = new
        else:
            self._batch.extend(new)
        self._rows.extend(rows)
        self._advance(rows, logits)

    def _decode(self) -> None:
        assert self._batch is not None
        self._drop([i for i, row in enumerate(self._rows) if not row.request.cancelled])
        if not self._rows:
            return
        ids = torch.tensor([[row.pending] for row in self._rows])
        positions = torch.tensor([[row.cached] for row in self._rows])
        mask = self._batch.add_column()
        logits = self._forward(self._rows, ids, mask, positions, self._batch.cache, last_only=False)
        for row in self._rows:
            row.cached += 1
        self._advance(self._rows, logits)

    def _forward(
        self,
        rows: list[_Row],
        ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: DynamicCache,
        *,
        last_only: bool,
    ) -> torch.Tensor:
        self.stats.forward_passes += 1
        self.stats.peak_rows = max(self.stats.peak_rows, len(rows))
        self.stats.peak_adapters = max(self.stats.peak_adapters, len({row.request.key for row in rows}))
        extra: dict[str, Any] = {}
        if last_only:
            extra["logits_to_keep"] = 1  # the prompt's other positions need no vocabulary projection
        out = self.adapters.forward(
            [row.request.key for row in rows],
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            **extra,
        )
        return out.logits[:, -1, :].float()

    def _advance(self, rows: list[_Row], logits: torch.Tensor) -> None:
        """Choose the next token of `rows` (one per logits row), hand it over, drop rows that finished."""
        choices = choose(logits, [row.request.params for row in rows], [row.generator for row in rows])
        finished = {id(row) for row, choice in zip(rows, choices, strict=True) if self._emit(row, choice)}
        if finished:
            self._drop([i for i, row in enumerate(self._rows) if id(row) not in finished])

    def _emit(self, row: _Row, choice: Choice) -> bool:
        """Record the row's new token and deliver it; True when the row is finished."""
        params = row.request.params
        row.pending = choice.token
        row.generated += 1
        stop_string = row.text.add(choice.token)
        finish: str | None = None
        reason: str | int | None = None
        if stop_string is not None:
            finish, reason = "stop", stop_string
        elif choice.token in params.stop_token_ids:
            finish, reason = "stop", choice.token
        elif choice.token in self.limits.eos and not params.ignore_eos:
            finish = "stop"
        elif row.generated >= params.max_tokens or row.cached + 1 >= self.limits.max_model_len:
            finish = "length"
        logprob = None
        if choice.logprob is not None:
            top = tuple((self._text_of(t), lp) for t, lp in choice.top)
            logprob = TokenLogprob(self._text_of(choice.token), choice.logprob, top)
        row.request.deliver(TokenEvent(row.text.delta(finished=finish is not None), logprob, finish, reason))
        return finish is not None

    def _text_of(self, token: int) -> str:
        # vLLM shows each token as decoded alone, special tokens included
        if token not in self._token_text:
            self._token_text[token] = self._tokenizer.decode([token])
        return self._token_text[token]

    def _drop(self, keep: list[int]) -> None:
        if len(keep) == len(self._rows):
            return
        kept = set(keep)
        for index, row in enumerate(self._rows):
            if index not in kept and row.request.adapter is not None:
                self.adapters.release(row.request.key)
        self._rows = [self._rows[i] for i in keep]
        if not self._rows:
            self._batch = None
        elif self._batch is not None:
            self._batch.keep(keep)

    def _fail_all(self, error: EngineError) -> None:
        for row in self._rows:
            row.request.deliver(error)
        self._drop([])
