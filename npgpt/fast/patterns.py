"""Every layer's attention pattern, and nothing else: what the attention view draws
(``viz/html.py``), computed with the fast functions of ``npgpt/fast/model.py``.

The reference way to get them is ``model.run_with_cache(ids)``, which records every activation
of ``npgpt/model.py`` (at 1,024 tokens of gpt2: q, k, v, scores, patterns, MLP activations,
logits, several gigabytes). Here only the patterns are kept, and what no pattern depends on is
skipped: the last block's MLP, the final layer norm and the LM head (a third of the forward
pass's multiplications at gpt2's size). The attention is ``fast.causal_attention``, asked to keep
each block's softmax: prompts run in blocks of queries, each against only the keys up to its
last query; the masked future is stored as 0, which is what the reference's softmax gives it.

Leaves out: padding, a KV cache and hooks (``npgpt/engine.py`` sends hooks to the reference).
``tests/test_fast_patterns.py`` checks the patterns against the reference's cache.
"""

from __future__ import annotations

import numpy as np

from ..config import GPT2Config
from ..model import causal_mask, embed, merge_heads, pos_embed, split_heads
from .model import causal_attention, ffn, layer_norm, linear


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
        z = causal_attention(q, k, v, mask, pattern=pattern)  # [batch, n_head, n_seq, d_head]; fills pattern
        patterns.append(pattern)
        if layer == len(params["h"]) - 1:
            break  # the rest of the model changes no pattern
        x = x + linear(merge_heads(z), **attn["c_proj"])  # resid_mid
        x += ffn(layer_norm(x, **block["ln_2"], eps=eps), **block["mlp"])  # resid_post
    return patterns
