"""The forward pass of ``npgpt/model.py``, computed faster: same inputs, same numbers (to float
rounding; ``tests/test_fast.py`` checks each function against its reference).

What changes, and why it is faster:

    gelu              x / (1 + exp(-2u)) in place: 0.5 (1 + tanh(u)) = sigmoid(2u) without the
                      cancellation of 1 + tanh(u) near -1; one temporary instead of six
    exp_rows_         the softmax's exponentials in place in the scores' memory (attention
                      patterns are the largest arrays), its division left to the caller
    attention         q scaled before Q K^T (n_kv / d_head times fewer multiplications); the
                      softmax's division by each row's sum after the product with V (d_head
                      numbers per row instead of n_kv)
    causal_attention  a prompt's queries in blocks, each against only the keys up to its last
                      query: every later key is masked anyway, so almost half the work is skipped
                      and a block's scores stay in the CPU cache through the softmax; without
                      padding only the block's own square of the mask is added, and exp(scores)
                      is taken without subtracting each row's max (no score comes near exp's
                      overflow in a working model; a block where one does takes the max path),
                      which saves the passes that find and subtract it
    row sums          a product with a column of ones (BLAS; faster than np.add.reduce on these rows)
    last_only         the last block computes one query (from the last row's projection) and one
                      MLP row when only the last position's logits are wanted (generation's prefill)
    layer_norm        one new array (centred, then scaled and shifted in place) instead of six; a
                      multiplication by 1 / std per number instead of a division
    unembed           float16-held weights widened 8192 rows at a time, never a whole float32 copy
    decode_step       one new token per row after a KV cache (generation's every step but the
                      first): rows [batch, n_embd] instead of sequences, so each product reads its
                      weight matrix once as a matrix-vector product; the query against the cache
                      without splitting or merging heads; biases, residuals, GELU and softmax in
                      place; the padding mask only when the cache holds padding
    gpt2_threaded     a long prompt on threads of npgpt's own, OpenBLAS held to one thread: each
                      worker a share of the positions (products, biases, layer norms, MLP) and of
                      the heads (attention), so the element-wise steps run on every core, each on
                      the numbers its own core's product just wrote (NumPy alone runs them on one)

Nothing is recorded and no hook runs here: ``npgpt/engine.py`` sends any call that wants to see
or change activations to the reference.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import GPT2Config
from ..model import causal_mask, compute_dtype, embed, merge_heads, pos_embed, positions, split_heads, token_masks
from . import threads

ATTENTION_BLOCK = 128  # queries per block in causal_attention (every prompt of more than one token takes it)
UNEMBED_ROWS = 8192  # token rows of a float16 wte widened at a time


def gelu(x: np.ndarray) -> np.ndarray:
    """``model.gelu``: 0.5 x (1 + tanh(u)) written as x / (1 + exp(-2u)), computed in place on one new array."""
    c = math.sqrt(2.0 / math.pi)
    t = np.asarray(x * x)  # x^2 (asarray: a 0-d input gives a scalar, which has no `out=`)
    t *= -2.0 * 0.044715 * c
    t -= 2.0 * c
    t *= x  # -2u = -2 * sqrt(2/pi) * (x + 0.044715 * x^3)
    with np.errstate(over="ignore"):  # exp(-2u) = inf for x below about -10: x / inf = -0, the right limit
        np.exp(t, out=t)
    t += 1.0
    return np.divide(x, t, out=t)  # x * sigmoid(2u)


def exp_rows_(x: np.ndarray) -> np.ndarray:
    """exp(x - max(x)) along the last axis, in x's own memory (x is overwritten); returns the row
    sums [..., 1], at least the smallest normal float: ``model.softmax`` without its division,
    for a caller that divides later on a smaller array."""
    x_max = np.maximum.reduce(x, axis=-1, keepdims=True)
    np.maximum(x_max, np.finfo(x.dtype).min, out=x_max)  # a fully masked row: exp(-inf - finite) = 0 everywhere
    x -= x_max
    np.exp(x, out=x)
    return np.maximum(row_sums(x), np.finfo(x.dtype).tiny)


def row_sums(x: np.ndarray) -> np.ndarray:
    """x summed along its last axis, [..., 1]: a product with a column of ones, which BLAS does
    faster than ``np.add.reduce`` on these rows."""
    return x @ np.ones((x.shape[-1], 1), dtype=x.dtype)


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """``model.layer_norm`` on one new array: x - mean, then scaled by 1 / std and shifted in place."""
    n = x.shape[-1]
    y = x - row_sums(x) * (1.0 / n)  # [..., n_embd], each row's mean 0
    var = np.einsum("...i,...i->...", y, y)[..., None] * (1.0 / n)  # [..., 1], the biased variance
    var += eps
    np.sqrt(var, out=var)
    y *= np.reciprocal(var, out=var)  # one division per row, not per number
    y *= weight
    y += bias
    return y


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``model.linear`` with the bias added in place to the product (float16 weights widened as there);
    ``out``, when given, receives it (and is returned)."""
    y = np.matmul(x, weight.astype(x.dtype, copy=False), out=out)  # [..., n_in] -> [..., n_out]
    y += bias
    return y


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray, pattern: np.ndarray | None = None) -> np.ndarray:
    """``model.attention``: (Q / sqrt(d_head)) K^T is the same number as Q K^T / sqrt(d_head), and
    q is n_kv / d_head times smaller than the scores; the softmax runs in the scores' memory, and
    its division by each row's sum comes after the product with V, on [n_seq, d_head] numbers
    instead of [n_seq, n_kv]. ``mask`` may cover only the last keys ([..., n_seq, m], m < n_kv)
    when every earlier key is visible to every query. ``pattern`` ([..., n_seq, n_kv]), when
    given, receives the softmax itself (divided before the product with V, as the reference does)."""
    scores = masked_scores(q, k, mask)  # [batch, n_head, n_seq, n_kv]
    return weigh_values(scores, exp_rows_(scores), v, pattern)


def masked_scores(q: np.ndarray, k: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(Q / sqrt(d_head)) K^T + mask [..., n_seq, n_kv], the mask added to its last keys only."""
    scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.swapaxes(-1, -2)
    scores[..., scores.shape[-1] - mask.shape[-1] :] += mask
    return scores


def weigh_values(scores: np.ndarray, sums: np.ndarray, v: np.ndarray, pattern: np.ndarray | None = None) -> np.ndarray:
    """softmax @ V from the exponentiated ``scores`` [..., n_seq, n_kv] and their row ``sums``
    [..., n_seq, 1]: divided after the product with V (on [n_seq, d_head] numbers), or before it
    when ``pattern`` is to receive the softmax itself (as the reference divides)."""
    if pattern is not None:
        scores *= 1.0 / sums  # the softmax, kept
        pattern[...] = scores
        return scores @ v
    z = scores @ v  # [batch, n_head, n_seq, d_head], before the division
    z /= sums
    return z


UNSHIFTED_SUMS = (2.0**-30, 2.0**64)  # the row sums attention_unshifted accepts; outside them, the max path


def attention_unshifted(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray,
                        pattern: np.ndarray | None = None) -> np.ndarray | None:
    """``attention`` with exp(scores) taken as they are, without subtracting each row's max first.
    The max is there to keep exp from overflowing (float32's overflows above 88), and attention
    scores stay far below that in the trained models at hand (the two in ``weights/`` score at
    most 28): this saves the pass that finds each row's max and the pass that subtracts it; the
    row sums come from a product with ones. Returns None, for the caller to take ``attention``,
    when a row's sum leaves ``UNSHIFTED_SUMS`` or the product with V overflows. Above 2^64: any
    score above 44.4, or many just below it. Below 2^-30: a row whose largest score is under
    -20.8 may, one whose largest is under -20.8 - ln(its number of keys) always does. Above
    that floor a row's largest exponential is at least 2^-30 / its number of keys (2^-40 for
    1,024), so its products with any V above 1e-26 in size keep all their digits. A row sum of
    NaN fails both. float32 and float64 only (``causal_attention`` checks). ``pattern`` as in
    ``attention``."""
    scores = masked_scores(q, k, mask)  # [batch, n_head, n_seq, n_kv]
    with np.errstate(over="ignore"):
        np.exp(scores, out=scores)  # -inf where masked: 0
    sums = row_sums(scores)  # [batch, n_head, n_seq, 1]
    low, high = UNSHIFTED_SUMS
    if not np.all((sums >= low) & (sums <= high)):  # NaN fails both
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        z = weigh_values(scores, sums, v, pattern)
    return z if np.isfinite(z).all() else None


def causal_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray, block: int = ATTENTION_BLOCK,
                     pattern: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """``attention`` for ``block`` queries at a time, each block against the keys up to its last
    query only (shapes as ``attention``; k and v hold the cached past first). Without padding,
    the keys before a block's first query are visible to all of it: only the block's own square
    of the mask is added, and the exponentials are taken without subtracting each row's max
    (``attention_unshifted``; a block whose scores make that unsafe, or whose inputs are
    narrower than float32, takes the max path). ``pattern`` [batch, n_head, n_seq, n_kv], when
    given, receives each block's softmax; the keys a block skips keep what ``pattern`` held
    (zeros: the masked future). ``out`` [batch, n_head, n_seq, d_head], when given, receives z."""
    n_seq, n_kv = q.shape[2], k.shape[2]
    n_past = n_kv - n_seq
    padded = bool(np.isneginf(mask[:, :, -1]).any())  # a key the last query cannot see is padding
    batch, n_head, _, d_head = q.shape  # z [batch, n_head, n_seq, d_head], laid out in memory as merge_heads reads it
    z = out if out is not None else np.empty((batch, n_seq, n_head, d_head), dtype=np.result_type(q, v)).transpose(0, 2, 1, 3)
    for start in range(0, n_seq, block):
        stop = min(start + block, n_seq)
        seen = n_past + stop  # keys 0 .. seen-1: all any query of this block may look at
        block_mask = mask[:, :, start:stop, : seen] if padded else mask[:, :, start:stop, n_past + start : seen]
        args = q[:, :, start:stop], k[:, :, :seen], v[:, :, :seen], block_mask
        kept = None if pattern is None else pattern[:, :, start:stop, :seen]
        out = None if padded or z.dtype.itemsize < 4 else attention_unshifted(*args, kept)  # its bounds are float32's
        z[:, :, start:stop] = out if out is not None else attention(*args, kept)
    return z


def mha(x, c_attn, c_proj, n_head: int, mask: np.ndarray, kv=None, last_only: bool = False) -> np.ndarray:
    """``model.mha``; with ``last_only``, keys and values for every position but one query, the last
    (its projection from the last row alone: a third of the product skipped)."""
    if last_only:
        weight, bias, n_embd = c_attn["weight"], c_attn["bias"], x.shape[-1]
        q = linear(x[:, -1:], weight[:, :n_embd], bias[:n_embd])  # [batch, 1, n_embd]
        k, v = np.split(linear(x, weight[:, n_embd:], bias[n_embd:]), 2, axis=-1)  # [batch, n_seq, n_embd] each
        mask = mask[:, :, -1:]  # [batch, 1, 1, n_kv]
    else:
        q, k, v = np.split(linear(x, **c_attn), 3, axis=-1)
    q, k, v = (split_heads(t, n_head) for t in (q, k, v))
    if kv is not None:
        k, v = kv.extend(k, v)  # [batch, n_head, n_kv, d_head]
    z = causal_attention(q, k, v, mask) if q.shape[2] > 1 else attention(q, k, v, mask)  # a prompt, or one query
    return linear(merge_heads(z), **c_proj)  # [batch, n_seq, n_embd]


def ffn(x: np.ndarray, c_fc: dict, c_proj: dict) -> np.ndarray:
    """``model.ffn`` with the in-place GELU."""
    return linear(gelu(linear(x, **c_fc)), **c_proj)


def transformer_block(x, ln_1, attn, ln_2, mlp, *, n_head: int, eps: float, mask, kv=None, last_only: bool = False):
    """``model.transformer_block``; with ``last_only`` it returns the last position alone, [batch, 1, n_embd]."""
    attn_out = mha(layer_norm(x, **ln_1, eps=eps), **attn, n_head=n_head, mask=mask, kv=kv, last_only=last_only)
    x = (x[:, -1:] if last_only else x) + attn_out
    return x + ffn(layer_norm(x, **ln_2, eps=eps), **mlp)


def unembed(x: np.ndarray, wte: np.ndarray) -> np.ndarray:
    """``model.unembed``; float16-held weights widened ``UNEMBED_ROWS`` token rows at a time, so
    that no float32 copy of the whole matrix (a third of gpt2's weights) ever exists."""
    if wte.dtype == x.dtype:
        return x @ wte.T  # [..., n_embd] @ [n_embd, n_vocab] -> [..., n_vocab]
    logits = np.empty((*x.shape[:-1], wte.shape[0]), dtype=x.dtype)
    for start in range(0, wte.shape[0], UNEMBED_ROWS):
        rows = wte[start : start + UNEMBED_ROWS]
        logits[..., start : start + len(rows)] = x @ rows.astype(x.dtype).T
    return logits


def gpt2(ids: np.ndarray, params: dict, config: GPT2Config, *, attention_mask=None, kv_cache=None,
         last_only: bool = False) -> np.ndarray:
    """``model.gpt2`` without recording: the same logits."""
    n_seq = ids.shape[1]
    token_mask, full_mask = token_masks(ids, attention_mask, kv_cache)
    mask = causal_mask(full_mask, n_seq)
    x = embed(ids, params["wte"]["weight"]) + pos_embed(positions(full_mask, n_seq), params["wpe"]["weight"])
    return last_blocks(x, params, config, mask=mask, token_mask=token_mask, kv_cache=kv_cache, last_only=last_only)


def last_blocks(x, params: dict, config: GPT2Config, *, mask, token_mask, kv_cache, last_only: bool,
                first: int = 0) -> np.ndarray:
    """``gpt2`` from block ``first`` on: x [batch, n_seq, n_embd] (block ``first``'s input) -> logits."""
    for layer in range(first, config.n_layer):
        kv = kv_cache.layer(layer) if kv_cache is not None else None
        last = last_only and layer == config.n_layer - 1  # the last block needs no other position's output
        x = transformer_block(x, **params["h"][layer], n_head=config.n_head, eps=config.layer_norm_eps, mask=mask, kv=kv,
                              last_only=last)
    logits = unembed(layer_norm(x[:, -1:] if last_only else x, **params["ln_f"], eps=config.layer_norm_eps),
                     params["wte"]["weight"])  # [batch, n_seq or 1, n_vocab]
    if kv_cache is not None:
        kv_cache.advance(token_mask)
    return logits


# ---- a long prompt on threads of npgpt's own (npgpt/fast/threads.py) ---------------------------

MIN_ROWS_PER_WORKER = 256  # positions per worker; at 128 each the threads saved little or nothing


def gpt2_threaded(ids: np.ndarray, params: dict, config: GPT2Config, *, attention_mask=None, kv_cache=None,
                  last_only: bool = False, n_workers: int | None = None) -> np.ndarray | None:
    """``gpt2``, the same logits, with every block but the last computed by ``n_workers`` threads of
    npgpt's own, OpenBLAS held to one thread meanwhile (``npgpt/fast/threads.py`` says why).
    Worker i takes the i-th share of the positions for layer norms, products, biases, residuals
    and the MLP, and the i-th share of the heads for attention, so each element-wise step runs on
    the core whose product wrote its input. The last block and the LM head run as in ``gpt2``.
    Returns None, having changed nothing, when the threads cannot be had (``threads.claim``), or
    when ``n_workers`` is None and the prompt is too short to give every one of
    ``threads.worker_count()`` workers (as many as OpenBLAS has threads) ``MIN_ROWS_PER_WORKER``
    positions: the caller then runs ``gpt2``. Also None for a KV cache of another dtype than the
    weights' compute dtype (``gpt2`` would change dtype after the first block)."""
    n_seq = ids.shape[1]
    if n_workers is None:
        if n_seq < 2 * MIN_ROWS_PER_WORKER:  # before anything else: every short call (and step) comes through here
            return None
        n = threads.worker_count()  # fewer workers than OpenBLAS's threads would leave cores idle: all or none
        n = n if n_seq // MIN_ROWS_PER_WORKER >= n and n <= config.n_head else 0
    else:
        n = min(n_workers, n_seq, config.n_head)
    other_dtype = kv_cache is not None and kv_cache.keys.dtype != compute_dtype(params["wte"]["weight"])
    if n < 2 or config.n_layer < 2 or other_dtype:
        return None
    with threads.claim(n) as pool:
        if pool is None:
            return None
        token_mask, full_mask = token_masks(ids, attention_mask, kv_cache)
        mask = causal_mask(full_mask, n_seq)
        x = embed(ids, params["wte"]["weight"]) + pos_embed(positions(full_mask, n_seq), params["wpe"]["weight"])
        shared_blocks(pool, x, params["h"][: config.n_layer - 1], config, mask, kv_cache)  # x updated in place
    return last_blocks(x, params, config, mask=mask, token_mask=token_mask, kv_cache=kv_cache, last_only=last_only,
                       first=config.n_layer - 1)


def shared_blocks(pool, x: np.ndarray, blocks: list, config: GPT2Config, mask: np.ndarray, kv_cache) -> None:
    """``transformer_block`` for each of ``blocks`` in turn, on ``pool``'s workers, x [batch, n_seq,
    n_embd] updated in place. Two hand-offs a block: rows (finish the block before, then ln_1 and
    the q, k, v projection of this one), then heads (attention)."""
    batch, n_seq, n_embd = x.shape
    n_head, eps = config.n_head, config.layer_norm_eps
    n_past = kv_cache.length if kv_cache is not None else 0
    rows, heads = ([slice(total * i // pool.n, total * (i + 1) // pool.n) for i in range(pool.n)]
                   for total in (n_seq, n_head))  # worker i's positions, and its heads
    qkv = np.empty((batch, n_seq, 3 * n_embd), dtype=x.dtype)  # the block's q, k, v, side by side as c_attn gives them
    z = np.empty((batch, n_seq, n_embd), dtype=x.dtype)  # attention's output, heads side by side (merged)
    q, k, v = (split_heads(t, n_head) for t in np.split(qkv, 3, axis=-1))  # views [batch, n_head, n_seq, d_head]
    z_heads = split_heads(z, n_head)  # a view: writing a head's z writes its columns of z

    def project(layer: int, i: int) -> None:  # positions i: ln_1, then q, k, v (keys and values into the cache)
        block, r = blocks[layer], rows[i]
        linear(layer_norm(x[:, r], **block["ln_1"], eps=eps), **block["attn"]["c_attn"], out=qkv[:, r])
        if kv_cache is not None:
            kv_cache.write(layer, r.start, k[:, :, r], v[:, :, r])

    def attend(layer: int, i: int) -> None:  # heads i, every position
        h = heads[i]
        if kv_cache is not None:
            keys, values = (t[layer, :, h, : n_past + n_seq] for t in (kv_cache.keys, kv_cache.values))
        else:
            keys, values = k[:, h], v[:, h]
        causal_attention(q[:, h], keys, values, mask, out=z_heads[:, h])

    def finish(layer: int, i: int) -> None:  # positions i: the attention's projection, residual, MLP, residual
        block, xr = blocks[layer], x[:, rows[i]]
        xr += linear(z[:, rows[i]], **block["attn"]["c_proj"])  # resid_mid
        xr += ffn(layer_norm(xr, **block["ln_2"], eps=eps), **block["mlp"])  # resid_post

    pool.run(lambda i: project(0, i))
    for layer in range(len(blocks)):
        pool.run(lambda i: attend(layer, i))
        pool.run(lambda i: (finish(layer, i), project(layer + 1, i) if layer + 1 < len(blocks) else None))


# ---- one new token per row: generation's decode step --------------------------------------------


def padding_mask(past: np.ndarray) -> np.ndarray:
    """The additive mask [batch, 1, n_past + 1] of one new token: -inf on the cache's padding,
    0 on its real tokens and on the new token itself. past: bool [batch, n_past]."""
    allowed = np.concatenate([past, np.ones((len(past), 1), dtype=bool)], axis=1)  # [batch, n_kv]
    return np.where(allowed, np.float32(0.0), np.float32(-np.inf))[:, None, :]


def attend_one(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask=None) -> np.ndarray:
    """``attention`` for one query per row: q [batch, n_head, d_head] against k, v
    [batch, n_head, n_kv, d_head]; mask [batch, 1, n_kv] or None. Returns z [batch, n_head * d_head]:
    the heads side by side, as ``merge_heads`` lays them."""
    scores = (k @ (q * (1.0 / math.sqrt(q.shape[-1])))[..., None])[..., 0]  # [batch, n_head, n_kv]
    if mask is not None:
        scores += mask
    sums = exp_rows_(scores)  # [batch, n_head, 1]; the softmax's division comes after the product with V
    z = scores[..., None, :] @ v  # [batch, n_head, 1, n_kv] @ [.., n_kv, d_head] -> [batch, n_head, 1, d_head]
    z /= sums[..., None]
    return z.reshape(len(q), -1)  # [batch, n_embd]


def block_step(x, ln_1, attn, ln_2, mlp, *, n_head: int, eps: float, kv, mask=None) -> np.ndarray:
    """``transformer_block`` for one new position per row: x [batch, n_embd] -> [batch, n_embd];
    ``kv``, this layer's view of the KV cache, receives the new keys and values."""
    qkv = linear(layer_norm(x, **ln_1, eps=eps), **attn["c_attn"])  # [batch, 3 * n_embd]
    q, k, v = qkv.reshape(len(x), 3, n_head, -1).transpose(1, 0, 2, 3)  # 3 x [batch, n_head, d_head], views
    keys, values = kv.extend(k[:, :, None], v[:, :, None])  # [batch, n_head, n_kv, d_head]
    x = x + linear(attend_one(q, keys, values, mask), **attn["c_proj"])  # resid_mid, a new array: x is the caller's
    x += linear(gelu(linear(layer_norm(x, **ln_2, eps=eps), **mlp["c_fc"])), **mlp["c_proj"])  # resid_post
    return x


def decode_step(ids: np.ndarray, params: dict, config: GPT2Config, kv_cache) -> np.ndarray:
    """``gpt2(ids, params, config, kv_cache=kv_cache)`` for ids [batch, 1], one new token per row
    after the cache's tokens: the same logits [batch, 1, n_vocab], and the cache extended."""
    wte = params["wte"]["weight"]
    past = kv_cache.mask[:, : kv_cache.length]  # [batch, n_past], False on padding
    x = embed(ids[:, 0], wte) + pos_embed(past.sum(axis=1), params["wpe"]["weight"])  # [batch, n_embd]: at position = real tokens before it
    mask = None if past.all() else padding_mask(past)  # [batch, 1, n_kv]
    for layer, block in enumerate(params["h"]):
        x = block_step(x, **block, n_head=config.n_head, eps=config.layer_norm_eps, kv=kv_cache.layer(layer), mask=mask)
    logits = unembed(layer_norm(x, **params["ln_f"], eps=config.layer_norm_eps), wte)  # [batch, n_vocab]
    kv_cache.advance(np.ones((len(ids), 1), dtype=bool))
    return logits[:, None, :]  # [batch, 1, n_vocab]
