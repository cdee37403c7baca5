"""The one place that chooses between the reference code and the fast code beside it.

The forward pass: a call that wants to see or change activations (an activation cache to fill,
hooks to run) gets the reference, ``npgpt/model.py``, which builds every intermediate; every other
call gets the fast path, ``npgpt/fast/model.py``, which computes the same logits with less time
and memory: ``decode_step`` for one new token per row after a KV cache (generation's steps after
the first; its first call lays the blocks' weight matrices out column-major, in place, for faster
matrix-vector products: ``npgpt/fast/layout.py``), ``gpt2_threaded`` for a prompt long enough to
share among threads of npgpt's own (``npgpt/fast/threads.py``), ``gpt2`` for the rest. The class
(``npgpt/gpt2.py``), generation and training all call ``forward``; none of them chooses again.

The tokenizer: ``tokenizer_class()`` is ``FastTokenizer`` (``npgpt/fast/tokenizer.py``), the
reference ``Tokenizer`` (``npgpt/tokenizer.py``) with faster paths and the same ids; it is what
``npgpt.Tokenizer`` names and what every model folder's tokenizer is loaded as.
``tokenizer_class("reference")`` is the reference. The tests prove each fast path equal to its
reference; a reference module never imports a fast one.
"""

from __future__ import annotations

import numpy as np

from . import model as reference
from .activations import Tap, check_names
from .config import GPT2Config
from .errors import InputError
from .fast import layout as fast_layout
from .fast import model as fast
from .fast import patterns as fast_patterns

ENGINES = ("fast", "reference")


def forward(ids: np.ndarray, params: dict, config: GPT2Config, *, attention_mask=None, kv_cache=None,
            last_only: bool = False, hooks=None, cache: dict | None = None) -> np.ndarray:
    """Logits [batch, n_seq, n_vocab] (or [batch, 1, n_vocab] with ``last_only``) for ids [batch, n_seq].

    ``hooks={name: fn}`` replaces the activation ``name`` by ``fn(activation)`` (names:
    ``npgpt.activations.ACTIVATIONS``; a name the model never produces is refused); ``cache``, a
    dict, receives every activation. Either one runs the reference.
    """
    if hooks or cache is not None:
        check_names(hooks or (), config.n_layer)
        return reference.gpt2(ids, params, config, attention_mask=attention_mask, kv_cache=kv_cache,
                              last_only=last_only, tap=Tap(hooks, cache))
    if kv_cache is not None and ids.shape[1] == 1 and attention_mask is None:  # last_only changes nothing here
        return fast.decode_step(ids, fast_layout.for_decode(params), config, kv_cache)
    logits = fast.gpt2_threaded(ids, params, config, attention_mask=attention_mask, kv_cache=kv_cache, last_only=last_only)
    if logits is not None:  # a long prompt, on npgpt's own threads (None: too short, or the threads not to be had)
        return logits
    return fast.gpt2(ids, params, config, attention_mask=attention_mask, kv_cache=kv_cache, last_only=last_only)


def attention_patterns(ids: np.ndarray, params: dict, config: GPT2Config, *, hooks=None) -> list[np.ndarray]:
    """Each layer's attention pattern [batch, n_head, n_seq, n_seq] for ids [batch, n_seq] (no
    padding). The fast path (``npgpt/fast/patterns.py``) records the patterns alone; hooks run the
    reference, which records every activation."""
    if hooks:
        cache = {}
        forward(ids, params, config, hooks=hooks, cache=cache)
        return [cache[f"blocks.{layer}.attn.pattern"] for layer in range(config.n_layer)]
    return fast_patterns.attention_patterns(ids, params, config)


def tokenizer_class(engine: str = "fast") -> type:
    """The tokenizer class to load with: ``"fast"`` (the default everywhere) or ``"reference"``.
    Their loaders (``gpt2()``, ``from_files``, ``from_folder``) build their own class. (Imported
    here, when first asked for, so that ``import npgpt`` does not load a tokenizer.)"""
    if engine == "reference":
        from .tokenizer import Tokenizer

        return Tokenizer
    if engine == "fast":
        from .fast.tokenizer import FastTokenizer

        return FastTokenizer
    raise InputError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
