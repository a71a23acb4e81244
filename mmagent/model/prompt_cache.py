"""Reuse of a fixed system prompt's KV cache across requests (transformers' prompt reuse).

Flows send the same system prompt with every request; prefilling it once per (prompt, adapter) and
starting each request from a copy of that cache leaves only the request's own tokens to prefill. Greedy
output is unchanged (benchmarks/decode_bench.py checks it and measures the first-token gain).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any, Hashable


class PrefixCache:
    """The KV caches of a few recent prompt prefixes, least recently used dropped first. Not thread-safe:
    the backend calls it under the lock that serialises generation (building an entry runs the model)."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._caches: OrderedDict[tuple, Any] = OrderedDict()

    def start(self, model: Any, input_ids: Any, prefix_ids: list[int], key: Hashable) -> Any | None:
        """A private copy of the cache of `prefix_ids` as computed by `model` (`key` names what else the
        cache depends on: the adapter), or None when the prompt does not begin with the prefix."""
        n = len(prefix_ids)
        if n == 0 or input_ids.shape[1] <= n or input_ids[0, :n].tolist() != prefix_ids:
            return None
        entry = (key, tuple(prefix_ids))
        if entry not in self._caches:
            self._caches[entry] = _prefill(model, input_ids[:, :n])
            while len(self._caches) > self.size:
                self._caches.popitem(last=False)
        self._caches.move_to_end(entry)
        return copy.deepcopy(self._caches[entry])  # generate() appends to the cache it is given


def _prefill(model: Any, ids: Any) -> Any:
    import torch
    from transformers import DynamicCache

    with torch.inference_mode():
        cache = DynamicCache(config=model.config.get_text_config())
        model(input_ids=ids, cache=cache, use_cache=True)  # fills `cache` in place
    return cache
