"""Every layer's attention pattern, and nothing else: what the attention view draws
(``viz/html.py``), computed with the fast functions of ``npgpt/fast/model.py``.

The reference way to get them is ``model.run_with_cache(ids)``, which records every activation
of ``npgpt/model.py`` (at 1,024 tokens of gpt2: q, k, v, scores, patterns, MLP activations,
logits, several gigabytes). Here only the patterns are kept, and what no pattern depends on is
skipped: the last block's MLP, the final layer norm and the LM head (a third of the forward
pass's multiplications at gpt2's size). Long prompts run in blocks of queries, each against only
the keys up to its last query, as ``fast.causal_attention``; the masked future is stored as 0,
which is what the reference's softmax gives it.

Leaves out: padding, a KV cache and hooks (``npgpt/engine.py`` sends hooks to the reference).
``tests/test_fast_patterns.py`` checks the patterns against the reference's cache.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import GPT2Config
from ..model import causal_mask, embed, merge_heads, pos_embed, split_heads
from .model import ATTENTION_BLOCK, ffn, layer_norm, linear, softmax_


def attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray, pattern: np.ndarray,
           block: int = ATTENTION_BLOCK) -> np.ndarray:
    """``fast.causal_attention`` that also writes each head's softmax into ``pattern``
    [batch, n_head, n_seq, n_seq] (zeros above the diagonal, left as they are). q, k, v:
    [batch, n_head, n_seq, d_head]; mask [batch, 1, n_seq, n_seq]. Returns z, the shape of q."""
    n_seq = q.shape[2]
    q = q * (1.0 / math.sqrt(q.shape[-1]))  # scaled once, as fast.attention does per call
    z = np.empty(q.shape, dtype=np.result_type(q, v))
    for start in range(0, n_seq, block):
        stop = min(start + block, n_seq)  # keys 0 .. stop-1: all any query of this block may look at
        scores = q[:, :, start:stop] @ k[:, :, :stop].swapaxes(-1, -2)  # [batch, n_head, stop-start, stop]
        scores += mask[:, :, start:stop, :stop]
        p = softmax_(scores)
        pattern[:, :, start:stop, :stop] = p
        z[:, :, start:stop] = p @ v[:, :, :stop]  # [batch, n_head, stop-start, d_head]
    return z


def attention_patterns(ids: np.ndarray, params: dict, config: GPT2Config) -> list[np.ndarray]:
    """``[cache[f"blocks.{l}.attn.pattern"] for l in range(n_layer)]`` of the reference's
    ``gpt2(ids, ..., tap=Tap(cache=cache))``: one [batch, n_head, n_seq, n_seq] array per layer,
    for ids [batch, n_seq] with no padding and no KV cache."""
    batch, n_seq = ids.shape
    eps, n_head = config.layer_norm_eps, config.n_head
    mask = causal_mask(np.ones((batch, n_seq), dtype=bool), n_seq)  # [batch, 1, n_seq, n_seq]
    x = embed(ids, params["wte"]["weight"]) + pos_embed(np.broadcast_to(np.arange(n_seq), ids.shape), params["wpe"]["weight"])
    patterns = []
    for layer, block in enumerate(params["h"]):
        attn = block["attn"]
        q, k, v = (split_heads(t, n_head) for t in np.split(linear(layer_norm(x, **block["ln_1"], eps=eps), **attn["c_attn"]), 3, axis=-1))
        pattern = np.zeros((batch, n_head, n_seq, n_seq), dtype=q.dtype)  # the future keeps its 0
        z = attend(q, k, v, mask, pattern)  # [batch, n_head, n_seq, d_head]
        patterns.append(pattern)
        if layer == len(params["h"]) - 1:
            break  # the rest of the model changes no pattern
        x = x + linear(merge_heads(z), **attn["c_proj"])  # resid_mid
        x += ffn(layer_norm(x, **block["ln_2"], eps=eps), **block["mlp"])  # resid_post
    return patterns
