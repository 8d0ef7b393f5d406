"""The model and the LoRA adapters loaded into it, and the forward pass that mixes them per row.

Each adapter version gets an internal key ("a1", "a2", ...) that is never reused: a sequence is
bound to its key when it joins a batch, so reloading or unloading a name can never switch the
weights under a running request; a retired version is deleted when its last sequence finishes.

Per-row adapters use peft's mixed-batch inference: every LoRA layer gets `adapter_names` (one key
per row, "__base__" for none) and adds each adapter's update only to the rows carrying its key.
peft normally installs the hooks that pass `adapter_names` on every call, walking all modules each
time; we install them once per loaded layer instead, which is the same mechanism without that
per-token cost. Only the generation thread uses this class, between forward passes.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter, OrderedDict
from typing import Any

from torch import nn

from model_server.engine.adapters import AdapterEntry, worker_failure

log = logging.getLogger(__name__)

BASE = "__base__"  # peft's name for "no adapter" in adapter_names


class ResidentAdapters:
    """The base model plus the adapters loaded into it, at most `capacity` kept when idle."""

    def __init__(self, base: nn.Module, capacity: int) -> None:
        self.base = base  # peft injects its LoRA layers into this very model
        self.capacity = capacity
        self.peft: Any = None  # the PeftModel wrapper while any adapter is loaded
        self._resident: OrderedDict[str, AdapterEntry] = OrderedDict()  # least recently used first
        self._in_use: Counter[str] = Counter()
        self._retired: set[str] = set()
        self._hooked: set[nn.Module] = set()
        self._pass_keys: list[str] = []

    def forward(self, keys: list[str], **inputs: Any) -> Any:
        """One forward pass of the model in which row i uses adapter keys[i] (BASE: none)."""
        self._pass_keys = keys
        try:
            return self.base(**inputs)
        finally:
            self._pass_keys = []

    def _inject_keys(
        self, _module: nn.Module, args: Any, kwargs: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        if self._pass_keys:
            kwargs["adapter_names"] = self._pass_keys
        return args, kwargs

    def ensure(self, entry: AdapterEntry) -> None:
        """Make the adapter resident (loading it from disk if it was evicted), most recent first."""
        if entry.key in self._resident:
            self._resident.move_to_end(entry.key)
            return
        try:
            with warnings.catch_warnings():
                # transformers' deprecation notice about a name peft still calls, once per load
                warnings.filterwarnings(
                    "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
                )
                if self.peft is None:
                    from peft import PeftModel

                    self.peft = PeftModel.from_pretrained(self.base, entry.path, adapter_name=entry.key)
                else:
                    self.peft.load_adapter(entry.path, adapter_name=entry.key, is_trainable=False)
        except Exception as exc:
            log.exception("loading adapter %s from %s failed", entry.name, entry.path)
            self._drop_partial(entry.key)
            raise worker_failure(str(exc)) from exc
        self.peft.eval()
        self._hook_new_layers()
        self._resident[entry.key] = entry
        log.info("adapter %s resident as %s (%d resident)", entry.name, entry.key, len(self._resident))
        self._evict()

    def _hook_new_layers(self) -> None:
        from peft.tuners.lora import LoraLayer

        for module in self.base.modules():
            if isinstance(module, LoraLayer) and module not in self._hooked:
                module.register_forward_pre_hook(self._inject_keys, with_kwargs=True)
                self._hooked.add(module)

    def acquire(self, key: str) -> None:
        self._in_use[key] += 1

    def release(self, key: str) -> None:
        self._in_use[key] -= 1
        if self._in_use[key] <= 0:
            del self._in_use[key]
            if key in self._retired:
                self._delete(key)
        self._evict()

    def retire(self, key: str) -> None:
        """Forget this version once no running sequence uses it (vLLM also finishes in-flight ones)."""
        self._retired.add(key)
        if not self._in_use[key]:
            self._delete(key)

    def _evict(self) -> None:
        for key in list(self._resident):
            if len(self._resident) <= self.capacity:
                return
            if not self._in_use[key]:
                self._delete(key)

    def _delete(self, key: str) -> None:
        self._retired.discard(key)
        if self._resident.pop(key, None) is not None:
            with warnings.catch_warnings():
                # "adapter X was active, now Y is": rows name their adapter, so "active" means nothing here
                warnings.simplefilter("ignore", UserWarning)
                self.peft.delete_adapter(key)
            log.info("adapter %s released (%d resident)", key, len(self._resident))
        if not self._resident and self.peft is not None:
            # with no adapter left, the plain model (no LoRA layers to pass through) is the faster one
            self.base = self.peft.unload()
            self.peft = None
            self._hooked.clear()

    def _drop_partial(self, key: str) -> None:
        if self.peft is not None and key in getattr(self.peft, "peft_config", {}):
            try:
                self.peft.delete_adapter(key)
            except Exception:  # the adapter never fully loaded; nothing else to undo
                log.warning("could not remove partially loaded adapter %s", key)
