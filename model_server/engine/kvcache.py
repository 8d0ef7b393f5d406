"""The running batch's KV cache and attention mask, kept left-padded.

Every row's real tokens end at the right edge, so one new column per decode step serves all rows,
and rows can join (their cache padded on the left to the common width) or leave (their row
dropped, then any padding column no remaining row needs is cut) between steps. Padding positions
are masked out of attention, so a row's result does not depend on its neighbours.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class PaddedBatch:
    def __init__(self, cache: DynamicCache, mask: torch.Tensor) -> None:
        self.cache = cache
        self.mask = mask  # rows × columns, 1 where a real token is cached
        self._layers: list[DynamicLayer] = []
        for layer in cache.layers:
            # sliding-window and linear-attention caches are not plain per-token columns
            if type(layer) is not DynamicLayer:
                raise TypeError(f"only full-attention caches can be batched, not {type(layer).__name__}")
            self._layers.append(layer)

    @property
    def rows(self) -> int:
        return int(self.mask.shape[0])

    def add_column(self) -> torch.Tensor:
        """The mask for the next decode step: one more real token per row."""
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.rows, 1))], dim=1)
        return self.mask

    def extend(self, other: PaddedBatch) -> None:
        """Append `other`'s rows, left-padding whichever side is narrower."""
        width = max(self.mask.shape[1], other.mask.shape[1])
        for mine, theirs in zip(self._layers, other._layers, strict=True):
            (my_keys, my_values), (their_keys, their_values) = _states(mine), _states(theirs)
            mine.keys = torch.cat([_pad_left(my_keys, width), _pad_left(their_keys, width)])
            mine.values = torch.cat([_pad_left(my_values, width), _pad_left(their_values, width)])
        self.mask = torch.cat([_pad_left_2d(self.mask, width), _pad_left_2d(other.mask, width)])

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows (in this order), then cut the padding columns no row needs any more."""
        index = torch.tensor(rows, dtype=torch.long)
        self.mask = self.mask[index]
        cut = int(self.mask.shape[1] - self.mask.sum(dim=1).max()) if rows else 0
        self.mask = self.mask[:, cut:]
        for layer in self._layers:
            keys, values = _states(layer)
            layer.keys, layer.values = keys[index, :, cut:], values[index, :, cut:]


def _states(layer: DynamicLayer) -> tuple[torch.Tensor, torch.Tensor]:
    if layer.keys is None or layer.values is None:
        raise RuntimeError("the KV cache is empty; run a prefill before batching it")
    return layer.keys, layer.values


def _pad_left(states: torch.Tensor, width: int) -> torch.Tensor:
    # states: rows × heads × columns × head_dim; pad the columns dimension on the left
    return F.pad(states, (0, 0, width - states.shape[2], 0))


def _pad_left_2d(mask: torch.Tensor, width: int) -> torch.Tensor:
    return F.pad(mask, (width - mask.shape[1], 0))
