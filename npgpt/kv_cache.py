"""The KV cache: keys and values of the tokens seen so far, so decoding does not redo the past.

Generation (``npgpt/decoding.py``) makes one and hands it to the forward pass, which appends each
call's keys and values (``mha``, through ``extend``; the threaded prefill's workers each write
their share of the positions through ``write``) and then commits the call's tokens (``advance``).
The reference forward pass and the fast one use it the same way.

Leaves out: paging, quantised or sliding-window caches (a GPT-2 context is at most 1024 tokens).
"""

from __future__ import annotations

import numpy as np

from .config import GPT2Config
from .errors import InputError


class KVCache:
    """Keys and values of the tokens seen so far, per layer, so decoding does not redo the past.

    Without it, generating token t recomputes attention inputs for all t earlier tokens; with it,
    each step computes K and V for the new token only and reads the rest from here. This object is
    the decoding state: ``gpt2(..., kv_cache=c)`` appends to it (the one argument npgpt functions
    change). ``copy()`` it to branch. Buffers are allocated once for ``capacity`` positions.

    keys, values: [n_layer, batch, n_head, capacity, d_head]; mask: [batch, capacity] (False = padding).
    """

    def __init__(self, config: GPT2Config, batch: int = 1, capacity: int | None = None, dtype=np.float32):
        capacity = config.n_ctx if capacity is None else int(capacity)
        if not 0 < capacity <= config.n_ctx:
            raise InputError(f"KV cache capacity must be in 1..n_ctx={config.n_ctx}, got {capacity}")
        shape = (config.n_layer, batch, config.n_head, capacity, config.d_head)
        self.keys = np.zeros(shape, dtype=dtype)
        self.values = np.zeros(shape, dtype=dtype)
        self.mask = np.zeros((batch, capacity), dtype=bool)
        self.length = 0

    @property
    def capacity(self) -> int:
        return self.keys.shape[3]

    @property
    def batch(self) -> int:
        return self.keys.shape[1]

    def extend(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Write this call's k, v [batch, n_head, n_seq, d_head] after the cached ones; return all."""
        end = self.write(layer, 0, k, v)
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]  # [batch, n_head, n_kv, d_head]

    def write(self, layer: int, offset: int, k: np.ndarray, v: np.ndarray) -> int:
        """Write k, v [batch, n_head, m, d_head] for this call's tokens offset .. offset+m-1 (a
        share of them, for a caller that computes them in parts); returns the position after them."""
        start = self.length + offset
        end = start + k.shape[2]
        if end > self.capacity:
            raise InputError(f"the KV cache holds {self.capacity} positions; writing up to position {end} does not fit"
                             " (make the cache larger, or feed fewer tokens)")
        self.keys[layer, :, :, start:end] = k
        self.values[layer, :, :, start:end] = v
        return end

    def advance(self, mask: np.ndarray) -> None:
        """Commit the tokens of the call that just ran (every layer has written them)."""
        n_seq = mask.shape[1]
        self.mask[:, self.length : self.length + n_seq] = mask
        self.length += n_seq

    def layer(self, layer: int) -> "LayerKV":
        """This cache as one layer's attention sees it: ``.extend(k, v)`` appends and returns all."""
        return LayerKV(self, layer)

    def copy(self) -> "KVCache":
        new = object.__new__(KVCache)
        new.keys, new.values, new.mask, new.length = self.keys.copy(), self.values.copy(), self.mask.copy(), self.length
        return new

    def select(self, rows) -> "KVCache":
        """A new cache holding only the given batch rows (in that order), e.g. to reorder beams."""
        new = object.__new__(KVCache)
        rows = np.asarray(rows)
        new.keys, new.values, new.mask = self.keys[:, rows], self.values[:, rows], self.mask[rows]
        new.length = self.length
        return new


class LayerKV:
    """One layer's view of a ``KVCache`` (what ``mha`` is handed)."""

    def __init__(self, cache: KVCache, layer: int):
        self.cache, self.index = cache, layer

    def extend(self, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.cache.extend(self.index, k, v)
