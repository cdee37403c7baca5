"""The ``GPT2`` class: a model's config, parameters and tokenizer, with the calls a user makes.

``model.logits(ids)``, ``model.run_with_cache(ids)``, ``model.generate(prompt)``,
``model.stream(prompt)``: each checks its input once and hands it to the functions that do the
work (``npgpt/engine.py``, ``npgpt/generate.py``). Nothing below this module imports it.

Leaves out: the math (``npgpt/model.py``) and loading (``npgpt.load``, ``npgpt/weights.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .activations import ActivationCache, Hooks
from .config import GPT2Config
from .errors import InputError
from .engine import attention_patterns, forward
from .kv_cache import KVCache
from .model import compute_dtype


@dataclass
class GPT2:
    """A GPT-2: its config, its parameters and (when known) its tokenizer.

    The math lives in ``npgpt/model.py``; this class only checks inputs and calls ``forward``
    (``npgpt/engine.py``, which picks the reference or the fast path).
    Methods accept ``ids`` as ``[n_seq]`` (one sequence) or ``[batch, n_seq]``; results keep that
    form (no batch axis in, none out).
    """

    config: GPT2Config
    params: dict
    tokenizer: object | None = None
    name: str | None = field(default=None, compare=False)

    def logits(self, ids, attention_mask=None, kv_cache: KVCache | None = None, hooks: Hooks | None = None, last_only: bool = False) -> np.ndarray:
        """Next-token logits at every position: [n_seq, n_vocab] or [batch, n_seq, n_vocab].

        ``last_only=True`` computes the last position's only ([1, n_vocab] / [batch, 1, n_vocab]).
        """
        batch_ids, batch_mask, squeeze = self._check(ids, attention_mask, kv_cache)
        logits = forward(batch_ids, self.params, self.config, attention_mask=batch_mask, kv_cache=kv_cache, hooks=hooks,
                         last_only=last_only)
        return logits[0] if squeeze else logits

    def run_with_cache(self, ids, hooks: Hooks | None = None, attention_mask=None, kv_cache: KVCache | None = None):
        """Logits and an ``ActivationCache`` of every intermediate (names: ``npgpt.activations.ACTIVATIONS``).

        For one sequence (``ids`` of shape [n_seq]) the cache's arrays drop the batch axis too, so
        ``cache["pattern", 0]`` is [n_head, n_seq, n_seq]. Hooks always see the batch axis.
        """
        batch_ids, batch_mask, squeeze = self._check(ids, attention_mask, kv_cache)
        cache = ActivationCache()
        logits = forward(batch_ids, self.params, self.config, attention_mask=batch_mask, kv_cache=kv_cache, hooks=hooks,
                         cache=cache)
        if squeeze:
            cache = ActivationCache({name: value[0] for name, value in cache.items()})
            logits = logits[0]
        return logits, cache

    def attention_patterns(self, ids, hooks: Hooks | None = None) -> list[np.ndarray]:
        """Each layer's attention pattern, ``run_with_cache(ids)[1]["pattern", l]`` for every l, computed
        without recording anything else: [n_head, n_seq, n_seq] per layer ([batch, ...] for a batch)."""
        batch_ids, _, squeeze = self._check(ids, None, None)
        patterns = attention_patterns(batch_ids, self.params, self.config, hooks=hooks)
        return [p[0] for p in patterns] if squeeze else patterns

    def generate(self, prompt_or_prompts, **settings):
        """Text generation; see ``npgpt.generate.generate`` for the settings."""
        from .generate import generate

        return generate(self, prompt_or_prompts, **settings)

    def stream(self, prompt, **settings):
        """An iterator of text pieces as they are generated; see ``npgpt.generate.stream``."""
        from .generate import stream

        return stream(self, prompt, **settings)

    def new_kv_cache(self, batch: int = 1, capacity: int | None = None) -> KVCache:
        return KVCache(self.config, batch=batch, capacity=capacity, dtype=compute_dtype(self.params["wte"]["weight"]))

    def _check(self, ids, attention_mask, kv_cache):
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            if ids.size == 0:
                ids = ids.astype(np.int64)
            else:
                raise InputError(f"token ids must be integers, got an array of {ids.dtype}; tokenize text first")
        squeeze = ids.ndim == 1
        if squeeze:
            ids = ids[None, :]
        if ids.ndim != 2:
            raise InputError(f"token ids must have shape [n_seq] or [batch, n_seq], got {ids.shape}")
        if ids.shape[1] == 0:
            raise InputError("no tokens given: the model needs at least one token id")
        self.config.check_ids(ids)
        n_past = 0
        if kv_cache is not None:
            if kv_cache.batch != ids.shape[0]:
                raise InputError(f"KV cache holds {kv_cache.batch} rows but ids have {ids.shape[0]}")
            n_past = kv_cache.length
            if n_past + ids.shape[1] > kv_cache.capacity:
                raise InputError(
                    f"{n_past} cached + {ids.shape[1]} new tokens exceed the KV cache capacity "
                    f"({kv_cache.capacity}); make a bigger cache with model.new_kv_cache(capacity=...)"
                )
        if n_past + ids.shape[1] > self.config.n_ctx:
            raise InputError(
                f"sequence of {n_past + ids.shape[1]} tokens is longer than the model's context "
                f"(n_ctx={self.config.n_ctx}); shorten the input or process it in windows"
            )
        if attention_mask is not None:
            attention_mask = np.asarray(attention_mask)
            if squeeze and attention_mask.ndim == 1:
                attention_mask = attention_mask[None, :]
            if attention_mask.shape != ids.shape:
                raise InputError(f"attention_mask has shape {attention_mask.shape}; it must match ids {ids.shape}")
        return ids, attention_mask, squeeze

    def __repr__(self) -> str:
        c = self.config
        name = f"{self.name!r}, " if self.name else ""
        return (
            f"GPT2({name}n_layer={c.n_layer}, n_embd={c.n_embd}, n_head={c.n_head}, "
            f"n_vocab={c.n_vocab}, n_ctx={c.n_ctx}, params={c.n_params() / 1e6:.1f}M)"
        )
