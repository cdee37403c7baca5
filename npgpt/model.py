"""GPT-2's forward pass as small NumPy functions, in the order of the math.

Read it from top to bottom beside the notebooks: each function is one step of the model, and the
last ones (``transformer_block``, ``gpt2``) stack them. Reference: Radford et al. 2019, "Language
Models are Unsupervised Multitask Learners", and Hugging Face ``transformers``'
``modeling_gpt2.py``, whose numbers the tests reproduce to 1e-4.

Dimension letters, used in every shape comment (see ``npgpt/config.py``):

    batch    rows processed together (left-padded to one length)
    n_seq    tokens fed in this call
    n_past   tokens already in the KV cache (0 without one)
    n_kv     keys each query can look at: n_past + n_seq
    n_ctx    the longest sequence the model knows positions for (1024)
    n_embd   width of the residual stream (768 for gpt2)
    n_head   attention heads; d_head = n_embd // n_head (64 for every GPT-2)
    d_mlp    hidden width of the MLP, 4 * n_embd
    n_vocab  vocabulary size (50257)

Parameters are one nested dict keyed by the checkpoint's own names (``npgpt/weights.py`` loads
it), so ``params["h"][3]["attn"]["c_attn"]["weight"]`` is the tensor stored as
``h.3.attn.c_attn.weight``. Each function takes its parameters as keyword arguments with those
names, so a call reads ``layer_norm(x, **block["ln_1"], eps=eps)``.

Activation cache: pass ``cache={}`` (any dict) and the forward pass stores every intermediate under
these names (TransformerLens's naming). ``l`` is the layer index; shapes always keep the batch axis.

    name                     shape                              what it is
    embed                    [batch, n_seq, n_embd]             token embeddings wte[ids]
    pos_embed                [batch, n_seq, n_embd]             positional embeddings wpe[positions]
    blocks.{l}.resid_pre     [batch, n_seq, n_embd]             residual stream entering block l
    blocks.{l}.ln1           [batch, n_seq, n_embd]             after ln_1, the attention's input
    blocks.{l}.attn.q        [batch, n_head, n_seq, d_head]     queries
    blocks.{l}.attn.k        [batch, n_head, n_seq, d_head]     keys of the tokens fed in this call
    blocks.{l}.attn.v        [batch, n_head, n_seq, d_head]     values of the tokens fed in this call
    blocks.{l}.attn.scores   [batch, n_head, n_seq, n_kv]       QK^T/sqrt(d_head), -inf where masked
    blocks.{l}.attn.pattern  [batch, n_head, n_seq, n_kv]       softmax(scores): each row sums to 1
    blocks.{l}.attn.z        [batch, n_head, n_seq, d_head]     pattern @ V, each head's output
    blocks.{l}.attn_out      [batch, n_seq, n_embd]             heads merged and projected (c_proj)
    blocks.{l}.resid_mid     [batch, n_seq, n_embd]             resid_pre + attn_out
    blocks.{l}.ln2           [batch, n_seq, n_embd]             after ln_2, the MLP's input
    blocks.{l}.mlp.pre       [batch, n_seq, d_mlp]              MLP hidden layer before GELU
    blocks.{l}.mlp.post      [batch, n_seq, d_mlp]              after GELU
    blocks.{l}.mlp_out       [batch, n_seq, n_embd]             MLP output (c_proj)
    blocks.{l}.resid_post    [batch, n_seq, n_embd]             resid_mid + mlp_out
    ln_final                 [batch, n_seq, n_embd]             after ln_f, the LM head's input
    logits                   [batch, n_seq, n_vocab]            ln_final @ wte^T

Hooks: ``hooks={name: fn}`` calls ``fn(activation)`` at that point of the forward pass and carries
on with what it returns (same shape), so a hook can read, ablate or patch any activation above.
Hooks see the batch axis too.

Leaves out: dropout (inference only) and training (``npgpt/backward.py`` has the backward pass, ``npgpt/train.py`` the loop).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from .config import GPT2Config, get_config
from .errors import InputError

Hooks = Mapping[str, Callable[[np.ndarray], np.ndarray]]


# ---- the math, one function per step ------------------------------------------------------------


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, in the tanh approximation GPT-2 was trained with ("gelu_new" in transformers):

        gelu(x) = 0.5 * x * (1 + tanh(u)),   u = sqrt(2/pi) * (x + 0.044715 * x^3)

    computed as the same number written another way: 0.5 * (1 + tanh(u)) = sigmoid(2u), so

        gelu(x) = x / (1 + exp(-2u))

    which NumPy evaluates 1.5x faster than tanh (its float32 exp is vectorised). Computed in place
    on one new array: the one-line form makes six temporaries of x's size, and the MLP's
    [n_seq, 4*n_embd] activations are the largest in the model.
    """
    c = math.sqrt(2.0 / math.pi)  # math, not np: a NumPy float64 scalar would promote float32 to float64
    t = np.asarray(x * x)  # x^2 (asarray: a 0-d input gives a scalar, which has no `out=`)
    t *= -2.0 * 0.044715 * c
    t -= 2.0 * c
    t *= x  # -2u = -2 * sqrt(2/pi) * (x + 0.044715 * x^3)
    with np.errstate(over="ignore"):  # exp(-2u) = inf for x below about -10: x / inf = -0, the right limit
        np.exp(t, out=t)
    t += 1.0
    return np.divide(x, t, out=t)  # x * sigmoid(2u)


def softmax(x: np.ndarray, axis: int = -1, out: np.ndarray | None = None) -> np.ndarray:
    """exp(x) / sum(exp(x)) along ``axis``; rows that are all -inf (fully masked) give all zeros.

    ``out=x`` overwrites x instead of making a new array (attention does, when nothing keeps its scores).
    """
    # Subtracting the row max changes nothing mathematically and keeps exp() from overflowing.
    x_max = np.max(x, axis=axis, keepdims=True)
    x_max[~np.isfinite(x_max)] = 0.0  # a fully masked row: exp(-inf - 0) = 0 everywhere
    e = np.subtract(x, x_max, out=out)
    np.exp(e, out=e)  # in place: attention patterns are [batch, n_head, n_seq, n_kv], the biggest arrays
    e *= 1.0 / np.maximum(np.sum(e, axis=axis, keepdims=True), np.finfo(e.dtype).tiny)  # one division per row
    return e


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log(softmax(logits)) along the last axis, computed stably in float64; -inf stays -inf.

    Generation, scoring and the inspection helpers read log-probabilities from it.

    >>> np.round(np.exp(log_softmax(np.array([0.0, np.log(3.0), -np.inf]))), 6)
    array([0.25, 0.75, 0.  ])
    """
    x = np.asarray(logits, dtype=np.float64)
    x_max = np.max(x, axis=-1, keepdims=True)
    x_max = np.where(np.isfinite(x_max), x_max, 0.0)
    shifted = x - x_max
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Normalise each position's vector to mean 0, variance 1, then scale and shift per feature."""
    mean = np.mean(x, axis=-1, keepdims=True)  # [..., n_embd] -> [..., 1]
    var = np.var(x, axis=-1, keepdims=True)  # biased variance, as torch.nn.LayerNorm
    return (x - mean) / np.sqrt(var + eps) * weight + bias  # [..., n_embd]


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """x @ weight + bias. GPT-2 stores weights as [n_in, n_out] (its "Conv1D"), so no transpose.

    Weights held in float16 (``npgpt.load(name, dtype="float16")``) are widened to x's float32
    here, one matrix at a time, so the arithmetic is float32 all the same.
    """
    y = x @ weight.astype(x.dtype, copy=False)  # [..., n_in] -> [..., n_out]; no copy when already float32
    y += bias  # in place: saves a copy of the output
    return y


def embed(ids: np.ndarray, wte: np.ndarray) -> np.ndarray:
    """Token embedding: row ``id`` of the embedding matrix for each token (float16 rows widened)."""
    return wte[ids].astype(compute_dtype(wte), copy=False)  # [batch, n_seq] -> [batch, n_seq, n_embd]


def pos_embed(positions: np.ndarray, wpe: np.ndarray) -> np.ndarray:
    """Learned positional embedding: row ``p`` of wpe for a token at position ``p``.

    Attention itself is blind to order; this is the only place the model learns where a token is.
    """
    return wpe[positions].astype(compute_dtype(wpe), copy=False)  # [batch, n_seq] -> [batch, n_seq, n_embd]


def unembed(x: np.ndarray, wte: np.ndarray) -> np.ndarray:
    """The LM head: a logit per token, the dot product of the final residual with its embedding.

    GPT-2 reuses ("ties") the token embedding as its output layer: logits = x @ wte^T.
    """
    if wte.dtype == x.dtype:
        return x @ wte.T  # [..., n_embd] @ [n_embd, n_vocab] -> [..., n_vocab]
    # Weights held in float16: widen 8192 token rows at a time, so that no float32 copy of the
    # whole matrix (a third of gpt2's weights) ever exists.
    logits = np.empty((*x.shape[:-1], wte.shape[0]), dtype=x.dtype)
    for start in range(0, wte.shape[0], 8192):
        rows = wte[start : start + 8192]
        logits[..., start : start + len(rows)] = x @ rows.astype(x.dtype).T
    return logits


def compute_dtype(weight: np.ndarray) -> np.dtype:
    """The dtype the math runs in for weights of this dtype: float32, or float64 when they are."""
    return np.promote_types(weight.dtype, np.float32)


def split_heads(x: np.ndarray, n_head: int) -> np.ndarray:
    """Cut the feature axis into ``n_head`` slices of d_head and move heads before positions."""
    batch, n_seq, n_embd = x.shape
    x = x.reshape(batch, n_seq, n_head, n_embd // n_head)  # [batch, n_seq, n_head, d_head]
    return x.transpose(0, 2, 1, 3)  # [batch, n_head, n_seq, d_head]


def merge_heads(x: np.ndarray) -> np.ndarray:
    """Undo ``split_heads``: lay the heads' outputs side by side again."""
    batch, n_head, n_seq, d_head = x.shape
    return x.transpose(0, 2, 1, 3).reshape(batch, n_seq, n_head * d_head)  # [batch, n_seq, n_embd]


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray, hooks=None, cache=None, prefix=""):
    """softmax(Q K^T / sqrt(d_head) + mask) V for every head at once: the only step that mixes positions.

    q: [batch, n_head, n_seq, d_head]; k, v: [batch, n_head, n_kv, d_head];
    mask: [batch, 1, n_seq, n_kv], 0 where a query may look and -inf where it may not (the future,
    padding): adding -inf before the softmax gives those keys probability exactly 0.
    Returns z: [batch, n_head, n_seq, d_head].
    """
    d_head = q.shape[-1]
    # Dividing by sqrt(d_head) keeps the scores' variance near 1 whatever the head size, so the
    # softmax does not saturate into a one-hot at initialisation. (Q / sqrt(d_head)) K^T is the same
    # number as Q K^T / sqrt(d_head), and q is n_kv / d_head times smaller than the scores.
    scores = (q * (1.0 / math.sqrt(d_head))) @ k.swapaxes(-1, -2)  # [.., n_seq, d_head] @ [.., d_head, n_kv] -> [.., n_seq, n_kv]
    scores += mask  # causal + padding mask
    scores = _tap(f"{prefix}attn.scores", scores, hooks, cache)
    kept = hooks is not None or cache is not None  # someone may hold on to the scores: leave them be
    pattern = softmax(scores, axis=-1, out=None if kept else scores)  # [batch, n_head, n_seq, n_kv], rows sum to 1
    pattern = _tap(f"{prefix}attn.pattern", pattern, hooks, cache)
    z = pattern @ v  # [batch, n_head, n_seq, n_kv] @ [batch, n_head, n_kv, d_head] -> [.., d_head]
    return _tap(f"{prefix}attn.z", z, hooks, cache)


ATTENTION_BLOCK = 128  # queries per block in causal_attention; longer prompts take that path


def causal_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray, block: int = ATTENTION_BLOCK) -> np.ndarray:
    """``attention``, the same numbers, computed for ``block`` queries at a time (a long prompt's fast path).

    Each block of queries attends only to the keys up to its own last one: every later key is in
    the future of all its queries, masked to probability 0 anyway. Skipping them skips almost half
    of a long prompt's attention work, and one block's scores stay small enough to sit in the CPU
    cache through the softmax. Shapes as ``attention``; k and v hold the cached past first.
    """
    n_seq, n_kv = q.shape[2], k.shape[2]
    n_past = n_kv - n_seq
    z = np.empty(q.shape, dtype=np.result_type(q, v))  # [batch, n_head, n_seq, d_head]
    for start in range(0, n_seq, block):
        stop = min(start + block, n_seq)
        seen = n_past + stop  # keys 0 .. seen-1: all any query of this block may look at
        z[:, :, start:stop] = attention(q[:, :, start:stop], k[:, :, :seen], v[:, :, :seen], mask[:, :, start:stop, :seen])
    return z


def mha(x, c_attn, c_proj, n_head, mask, kv_cache=None, layer=0, hooks=None, cache=None, prefix="", last_only=False):
    """Causal multi-head self-attention: project to Q, K, V, attend per head, project back.

    x: [batch, n_seq, n_embd] -> [batch, n_seq, n_embd]. With a ``kv_cache``, this call's keys and
    values are appended to the ones of earlier calls, so a new token attends to the whole past.
    """
    qkv = linear(x, **c_attn)  # [batch, n_seq, n_embd] -> [batch, n_seq, 3*n_embd]
    q, k, v = np.split(qkv, 3, axis=-1)  # 3 x [batch, n_seq, n_embd]
    q = _tap(f"{prefix}attn.q", split_heads(q, n_head), hooks, cache)  # [batch, n_head, n_seq, d_head]
    k = _tap(f"{prefix}attn.k", split_heads(k, n_head), hooks, cache)
    v = _tap(f"{prefix}attn.v", split_heads(v, n_head), hooks, cache)
    if kv_cache is not None:
        k, v = kv_cache.extend(layer, k, v)  # [batch, n_head, n_kv, d_head]
    if last_only:  # only the last position's output is wanted: one query, against every key
        q, mask = q[:, :, -1:], mask[:, :, -1:]  # [batch, n_head, 1, d_head], [batch, 1, 1, n_kv]
    if hooks is None and cache is None and q.shape[2] > ATTENTION_BLOCK:  # a long prompt, nothing to record
        z = causal_attention(q, k, v, mask)  # [batch, n_head, n_seq, d_head]
    else:
        z = attention(q, k, v, mask, hooks, cache, prefix)  # [batch, n_head, n_seq, d_head]
    return linear(merge_heads(z), **c_proj)  # [batch, n_seq, n_embd] -> [batch, n_seq, n_embd]


def mlp(x: np.ndarray, c_fc: dict, c_proj: dict, hooks=None, cache=None, prefix="") -> np.ndarray:
    """Position-wise feed-forward network: widen to d_mlp, GELU, project back. No mixing across positions."""
    pre = _tap(f"{prefix}mlp.pre", linear(x, **c_fc), hooks, cache)  # [batch, n_seq, d_mlp]
    post = _tap(f"{prefix}mlp.post", gelu(pre), hooks, cache)  # [batch, n_seq, d_mlp]
    return linear(post, **c_proj)  # [batch, n_seq, d_mlp] -> [batch, n_seq, n_embd]


def transformer_block(x, ln_1, attn, ln_2, mlp, *, n_head, eps, mask, kv_cache=None, layer=0, hooks=None, cache=None, last_only=False):
    """One block, pre-norm: x + attn(ln_1(x)), then + mlp(ln_2(x)).

    The residual adds mean each block only writes a change into the stream; what the embeddings
    put there flows on to the end untouched unless a block changes it. With ``last_only`` the
    block returns the last position alone, [batch, 1, n_embd]: keys and values still come from
    every position (and go into the KV cache), but one query, one row through c_proj and the MLP.
    """
    p = f"blocks.{layer}."
    x = _tap(p + "resid_pre", x, hooks, cache)  # [batch, n_seq, n_embd]
    h = _tap(p + "ln1", layer_norm(x, **ln_1, eps=eps), hooks, cache)
    attn_out = mha(h, **attn, n_head=n_head, mask=mask, kv_cache=kv_cache, layer=layer, hooks=hooks, cache=cache, prefix=p, last_only=last_only)
    attn_out = _tap(p + "attn_out", attn_out, hooks, cache)
    if last_only:
        x = x[:, -1:]  # [batch, 1, n_embd]
    x = _tap(p + "resid_mid", x + attn_out, hooks, cache)  # [batch, n_seq, n_embd]
    h = _tap(p + "ln2", layer_norm(x, **ln_2, eps=eps), hooks, cache)
    mlp_out = _tap(p + "mlp_out", _mlp(h, **mlp, hooks=hooks, cache=cache, prefix=p), hooks, cache)
    return _tap(p + "resid_post", x + mlp_out, hooks, cache)  # [batch, n_seq, n_embd]


_mlp = mlp  # transformer_block's parameter named `mlp` (the checkpoint's name) hides the function


def gpt2(ids, params, config: GPT2Config, *, attention_mask=None, kv_cache=None, hooks=None, cache=None, last_only=False):
    """The whole model: token ids -> next-token logits at every position.

    ids: int [batch, n_seq]. attention_mask: [batch, n_seq], 1 for real tokens, 0 for left padding
    (None: all real). kv_cache: a ``KVCache`` holding earlier tokens' keys and values; it is
    extended with this call's tokens. Returns logits: float32 [batch, n_seq, n_vocab], or
    [batch, 1, n_vocab] for the last position alone with ``last_only`` (generation's prefill: the
    LM head over every position of a long prompt costs as much as several blocks).
    """
    batch, n_seq = ids.shape
    n_past = kv_cache.length if kv_cache is not None else 0
    token_mask = np.ones((batch, n_seq), dtype=bool) if attention_mask is None else np.asarray(attention_mask, dtype=bool)
    past_mask = kv_cache.mask[:, :n_past] if kv_cache is not None else np.ones((batch, 0), dtype=bool)
    full_mask = np.concatenate([past_mask, token_mask], axis=1)  # [batch, n_kv]

    # A token's position counts only the real tokens before it, so left padding shifts nothing.
    positions = np.maximum(np.cumsum(full_mask, axis=1)[:, n_past:] - 1, 0)  # [batch, n_seq]
    # Query i (absolute position n_past + i) may see key j if j <= n_past + i and j is not padding.
    causal = np.arange(n_past + n_seq)[None, :] <= (n_past + np.arange(n_seq))[:, None]  # [n_seq, n_kv]
    allowed = causal[None, None, :, :] & full_mask[:, None, None, :]  # [batch, 1, n_seq, n_kv]
    mask = np.where(allowed, np.float32(0.0), np.float32(-np.inf))  # added to the attention scores

    x = _tap("embed", embed(ids, params["wte"]["weight"]), hooks, cache)  # [batch, n_seq, n_embd]
    x = x + _tap("pos_embed", pos_embed(positions, params["wpe"]["weight"]), hooks, cache)
    for layer, block in enumerate(params["h"]):  # n_layer x [batch, n_seq, n_embd]
        # For the last position's logits alone, the last block needs no other position's output
        # (its keys and values are still made for all). With hooks or a cache, every block runs whole.
        last = last_only and layer == config.n_layer - 1 and hooks is None and cache is None
        x = transformer_block(
            x, **block, n_head=config.n_head, eps=config.layer_norm_eps, mask=mask,
            kv_cache=kv_cache, layer=layer, hooks=hooks, cache=cache, last_only=last,
        )
    x = _tap("ln_final", layer_norm(x, **params["ln_f"], eps=config.layer_norm_eps), hooks, cache)
    if last_only:
        x = x[:, -1:]  # [batch, 1, n_embd]; with left padding the last position is real in every row
    logits = unembed(x, params["wte"]["weight"])  # [batch, n_seq, n_embd] -> [batch, n_seq, n_vocab]
    logits = _tap("logits", logits, hooks, cache)
    if kv_cache is not None:
        kv_cache.advance(token_mask)
    return logits


def _tap(name: str, x: np.ndarray, hooks: Hooks | None, cache: dict | None) -> np.ndarray:
    """Let a hook replace the activation ``name``, then record it in the cache."""
    if hooks and name in hooks:
        replaced = np.asarray(hooks[name](x))
        if replaced.shape != x.shape:
            raise InputError(f"hook on {name!r} returned shape {replaced.shape}; it must keep {x.shape}")
        x = replaced.astype(x.dtype, copy=False)
    if cache is not None:
        cache[name] = x
    return x


# ---- the KV cache ------------------------------------------------------------------------------


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
        start, end = self.length, self.length + k.shape[2]
        self.keys[layer, :, :, start:end] = k
        self.values[layer, :, :, start:end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]  # [batch, n_head, n_kv, d_head]

    def advance(self, mask: np.ndarray) -> None:
        """Commit the tokens of the call that just ran (every layer has written them)."""
        n_seq = mask.shape[1]
        self.mask[:, self.length : self.length + n_seq] = mask
        self.length += n_seq

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


# ---- the activation cache ----------------------------------------------------------------------

_SHORT_NAMES = {
    "resid_pre": "resid_pre", "ln1": "ln1", "q": "attn.q", "k": "attn.k", "v": "attn.v",
    "scores": "attn.scores", "pattern": "attn.pattern", "z": "attn.z", "attn_out": "attn_out",
    "resid_mid": "resid_mid", "ln2": "ln2", "pre": "mlp.pre", "post": "mlp.post",
    "mlp_out": "mlp_out", "resid_post": "resid_post",
}


class ActivationCache(dict):
    """A dict of activations by name, also indexable as ``cache["pattern", 3]``.

    ``cache["pattern", 3]`` is ``cache["blocks.3.attn.pattern"]``; the short names are
    resid_pre, ln1, q, k, v, scores, pattern, z, attn_out, resid_mid, ln2, pre, post, mlp_out,
    resid_post; the full suffixes (``"attn.pattern"``, ``"mlp.post"``) work too. Negative layers
    count from the end.
    """

    def __getitem__(self, key):
        if isinstance(key, tuple):
            short, layer = key
            suffix = _SHORT_NAMES.get(short, short)
            if suffix not in _SHORT_NAMES.values():
                raise KeyError(f"unknown activation {short!r}; short names are {', '.join(_SHORT_NAMES)}")
            if layer < 0:
                layer += self.n_layer
            key = f"blocks.{layer}.{suffix}"
        return super().__getitem__(key)

    @property
    def n_layer(self) -> int:
        return sum(1 for k in self.keys() if k.endswith(".resid_pre"))


# ---- the model: config + params (+ tokenizer) --------------------------------------------------


@dataclass
class GPT2:
    """A GPT-2: its config, its parameters and (when known) its tokenizer.

    The math lives in the functions above; this class only checks inputs and calls ``gpt2``.
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
        ids2, mask2, squeeze = self._check(ids, attention_mask, kv_cache)
        logits = gpt2(ids2, self.params, self.config, attention_mask=mask2, kv_cache=kv_cache, hooks=hooks, last_only=last_only)
        return logits[0] if squeeze else logits

    def run_with_cache(self, ids, hooks: Hooks | None = None, attention_mask=None, kv_cache: KVCache | None = None):
        """Logits and an ``ActivationCache`` of every intermediate (names in this module's docstring).

        For one sequence (``ids`` of shape [n_seq]) the cache's arrays drop the batch axis too, so
        ``cache["pattern", 0]`` is [n_head, n_seq, n_seq]. Hooks always see the batch axis.
        """
        ids2, mask2, squeeze = self._check(ids, attention_mask, kv_cache)
        cache = ActivationCache()
        logits = gpt2(ids2, self.params, self.config, attention_mask=mask2, kv_cache=kv_cache, hooks=hooks, cache=cache)
        if squeeze:
            cache = ActivationCache({name: value[0] for name, value in cache.items()})
            logits = logits[0]
        return logits, cache

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
        n_vocab = self.config.n_vocab
        if ids.min() < 0 or ids.max() >= n_vocab:
            bad = ids[(ids < 0) | (ids >= n_vocab)][0]
            raise InputError(f"token id {int(bad)} is outside the vocabulary (0..{n_vocab - 1})")
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


def random_params(config: GPT2Config | str, seed: int | np.random.Generator = 0, dtype=np.float32) -> dict:
    """Parameters drawn as GPT-2 initialises them: N(0, 0.02) weights, zero biases, unit layer norms.

    The output projections of each block (``attn.c_proj``, ``mlp.c_proj``) are scaled by
    1/sqrt(2 * n_layer), as in the GPT-2 paper, so the residual stream's variance does not grow
    with depth.
    """
    config = get_config(config)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    C, F = config.n_embd, config.d_mlp
    proj_std = 0.02 / np.sqrt(2 * config.n_layer)

    def normal(shape, std=0.02):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(dtype)

    def ln():
        return {"weight": np.ones(C, dtype), "bias": np.zeros(C, dtype)}

    return {
        "wte": {"weight": normal((config.n_vocab, C))},
        "wpe": {"weight": normal((config.n_ctx, C), 0.01)},
        "h": [
            {
                "ln_1": ln(),
                "attn": {
                    "c_attn": {"weight": normal((C, 3 * C)), "bias": np.zeros(3 * C, dtype)},
                    "c_proj": {"weight": normal((C, C), proj_std), "bias": np.zeros(C, dtype)},
                },
                "ln_2": ln(),
                "mlp": {
                    "c_fc": {"weight": normal((C, F)), "bias": np.zeros(F, dtype)},
                    "c_proj": {"weight": normal((F, C), proj_std), "bias": np.zeros(C, dtype)},
                },
            }
            for _ in range(config.n_layer)
        ],
        "ln_f": ln(),
    }
