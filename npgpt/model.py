"""GPT-2's forward pass as small NumPy functions, in the order of the math: the reference.

Read it from top to bottom beside the notebooks: each function is one step of the model, and the
last ones (``transformer_block``, ``gpt2``) stack them. Every line is the plain formula; the fast
versions of these steps (in-place GELU, blocked causal attention, ...) live in
``npgpt/fast/model.py`` and tests prove them equal to these. ``npgpt/engine.py`` is the one place
that chooses between the two. Reference: Radford et al. 2019, "Language Models are Unsupervised
Multitask Learners", and Hugging Face ``transformers``' ``modeling_gpt2.py``, whose numbers the
tests reproduce.

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

Activations: every intermediate passes through ``tap(name, x)`` (``npgpt/activations.py``), which
records it in an activation cache and lets a hook replace it when asked, and does nothing
otherwise. The names and axes are the table ``npgpt.activations.ACTIVATIONS`` (TransformerLens's
naming): ``embed``, ``pos_embed``, ``blocks.{l}.resid_pre``, ``ln1``, ``attn.q/k/v``,
``attn.scores``, ``attn.pattern``, ``attn.z``, ``attn_out``, ``resid_mid``, ``ln2``,
``mlp.pre``, ``mlp.post``, ``mlp_out``, ``resid_post``, ``ln_final``, ``logits``.

Leaves out: dropout and the backward pass (training: ``npgpt/training/``), and speed
(``npgpt/fast/model.py``).
"""

from __future__ import annotations

import math

import numpy as np

from .activations import NO_TAP, Tap
from .config import GPT2Config, get_config

# ---- the math, one function per step ------------------------------------------------------------


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, in the tanh approximation GPT-2 was trained with ("gelu_new" in transformers).

    A smooth ReLU: about x for large x, about 0 for very negative x, slightly negative near -0.75.
    """
    c = math.sqrt(2.0 / math.pi)  # math, not np: a NumPy float64 scalar would promote float32 to float64
    u = c * (x + 0.044715 * (x * x * x))  # x * x * x is x^3 (NumPy's x**3 takes a general power: 100x slower)
    return 0.5 * x * (1.0 + np.tanh(u))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x) / sum(exp(x)) along ``axis``; rows that are all -inf (fully masked) give all zeros."""
    # Subtracting the row max changes nothing mathematically and keeps exp() from overflowing.
    x_max = np.max(x, axis=axis, keepdims=True)
    x_max = np.where(np.isfinite(x_max), x_max, 0.0).astype(x.dtype)  # a fully masked row: exp(-inf) = 0
    e = np.exp(x - x_max)
    return e / np.maximum(np.sum(e, axis=axis, keepdims=True), np.finfo(e.dtype).tiny)


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

    Weights held in float16 (``npgpt.load(name, storage="float16")``) are widened to x's float32
    here, one matrix at a time, so the arithmetic is float32 all the same.
    """
    return x @ weight.astype(x.dtype, copy=False) + bias  # [..., n_in] -> [..., n_out]


def compute_dtype(weight: np.ndarray) -> np.dtype:
    """The dtype the math runs in for weights of this dtype: float32, or float64 when they are."""
    return np.promote_types(weight.dtype, np.float32)


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
    return x @ wte.astype(x.dtype, copy=False).T  # [..., n_embd] @ [n_embd, n_vocab] -> [..., n_vocab]


def split_heads(x: np.ndarray, n_head: int) -> np.ndarray:
    """Cut the feature axis into ``n_head`` slices of d_head and move heads before positions."""
    batch, n_seq, n_embd = x.shape
    x = x.reshape(batch, n_seq, n_head, n_embd // n_head)  # [batch, n_seq, n_head, d_head]
    return x.transpose(0, 2, 1, 3)  # [batch, n_head, n_seq, d_head]


def merge_heads(x: np.ndarray) -> np.ndarray:
    """Undo ``split_heads``: lay the heads' outputs side by side again."""
    batch, n_head, n_seq, d_head = x.shape
    return x.transpose(0, 2, 1, 3).reshape(batch, n_seq, n_head * d_head)  # [batch, n_seq, n_embd]


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray, tap: Tap = NO_TAP) -> np.ndarray:
    """softmax(Q K^T / sqrt(d_head) + mask) V for every head at once: the only step that mixes positions.

    q: [batch, n_head, n_seq, d_head]; k, v: [batch, n_head, n_kv, d_head];
    mask: [batch, 1, n_seq, n_kv], 0 where a query may look and -inf where it may not (the future,
    padding): adding -inf before the softmax gives those keys probability exactly 0.
    Returns z: [batch, n_head, n_seq, d_head].
    """
    d_head = q.shape[-1]
    # Dividing by sqrt(d_head) keeps the scores' variance near 1 whatever the head size, so the
    # softmax does not saturate into a one-hot at initialisation.
    scores = tap("attn.scores", q @ k.swapaxes(-1, -2) / math.sqrt(d_head) + mask)  # [batch, n_head, n_seq, n_kv]
    pattern = tap("attn.pattern", softmax(scores, axis=-1))  # [batch, n_head, n_seq, n_kv], rows sum to 1
    return tap("attn.z", pattern @ v)  # [.., n_seq, n_kv] @ [.., n_kv, d_head] -> [batch, n_head, n_seq, d_head]


def mha(x: np.ndarray, c_attn: dict, c_proj: dict, n_head: int, mask: np.ndarray, kv=None, tap: Tap = NO_TAP) -> np.ndarray:
    """Causal multi-head self-attention: project to Q, K, V, attend per head, project back.

    x: [batch, n_seq, n_embd] -> [batch, n_seq, n_embd]. ``kv``: this layer's view of a KV cache
    (``KVCache.layer``): this call's keys and values are appended to those of earlier calls, so a
    new token attends to the whole past.
    """
    q, k, v = np.split(linear(x, **c_attn), 3, axis=-1)  # [batch, n_seq, 3*n_embd] -> 3 x [batch, n_seq, n_embd]
    q = tap("attn.q", split_heads(q, n_head))  # [batch, n_head, n_seq, d_head]
    k = tap("attn.k", split_heads(k, n_head))
    v = tap("attn.v", split_heads(v, n_head))
    if kv is not None:
        k, v = kv.extend(k, v)  # [batch, n_head, n_kv, d_head]: the past, then this call's
    z = attention(q, k, v, mask, tap)  # [batch, n_head, n_seq, d_head]
    return linear(merge_heads(z), **c_proj)  # [batch, n_seq, n_embd] -> [batch, n_seq, n_embd]


def ffn(x: np.ndarray, c_fc: dict, c_proj: dict, tap: Tap = NO_TAP) -> np.ndarray:
    """The MLP, a position-wise feed-forward network: widen to d_mlp, GELU, project back.

    No mixing across positions: each token is transformed on its own.
    """
    pre = tap("mlp.pre", linear(x, **c_fc))  # [batch, n_seq, n_embd] -> [batch, n_seq, d_mlp]
    post = tap("mlp.post", gelu(pre))  # [batch, n_seq, d_mlp]
    return linear(post, **c_proj)  # [batch, n_seq, d_mlp] -> [batch, n_seq, n_embd]


def transformer_block(x, ln_1, attn, ln_2, mlp, *, n_head: int, eps: float, mask: np.ndarray, kv=None,
                      tap: Tap = NO_TAP) -> np.ndarray:
    """One block, pre-norm: x + attn(ln_1(x)), then + mlp(ln_2(x)).

    The two additions are the residual (skip) connections: each branch only writes a change into
    the stream, and what the embeddings put there flows on to the end untouched unless a block
    changes it. The layer norms sit before each branch (pre-norm, GPT-2's choice), not after the add.
    """
    x = tap("resid_pre", x)  # [batch, n_seq, n_embd]
    h = tap("ln1", layer_norm(x, **ln_1, eps=eps))
    x = tap("resid_mid", x + tap("attn_out", mha(h, **attn, n_head=n_head, mask=mask, kv=kv, tap=tap)))
    h = tap("ln2", layer_norm(x, **ln_2, eps=eps))
    return tap("resid_post", x + tap("mlp_out", ffn(h, **mlp, tap=tap)))  # [batch, n_seq, n_embd]


def positions(full_mask: np.ndarray, n_seq: int) -> np.ndarray:
    """Position of each of the last ``n_seq`` tokens: the count of real tokens before it, so left
    padding shifts nothing. full_mask: bool [batch, n_kv], False for padding -> int [batch, n_seq]."""
    return np.maximum(np.cumsum(full_mask, axis=1)[:, -n_seq:] - 1, 0) if n_seq else np.zeros((len(full_mask), 0), int)


def causal_mask(full_mask: np.ndarray, n_seq: int) -> np.ndarray:
    """The additive attention mask [batch, 1, n_seq, n_kv]: 0 where query i (the last ``n_seq`` of
    the n_kv tokens) may see key j (j not after i, and not padding), -inf elsewhere."""
    n_kv = full_mask.shape[1]
    n_past = n_kv - n_seq
    causal = np.arange(n_kv)[None, :] <= (n_past + np.arange(n_seq))[:, None]  # [n_seq, n_kv]
    allowed = causal[None, None, :, :] & full_mask[:, None, None, :]  # [batch, 1, n_seq, n_kv]
    return np.where(allowed, np.float32(0.0), np.float32(-np.inf))


def token_masks(ids: np.ndarray, attention_mask, kv_cache) -> tuple[np.ndarray, np.ndarray]:
    """(this call's token mask [batch, n_seq], the mask of every key [batch, n_kv]: the cached past
    then this call's), True for real tokens, False for left padding."""
    batch, n_seq = ids.shape
    token_mask = np.ones((batch, n_seq), dtype=bool) if attention_mask is None else np.asarray(attention_mask, dtype=bool)
    past_mask = kv_cache.mask[:, : kv_cache.length] if kv_cache is not None else np.ones((batch, 0), dtype=bool)
    return token_mask, np.concatenate([past_mask, token_mask], axis=1)


def gpt2(ids: np.ndarray, params: dict, config: GPT2Config, *, attention_mask=None, kv_cache=None,
         last_only: bool = False, tap: Tap = NO_TAP) -> np.ndarray:
    """The whole model: token ids -> next-token logits at every position.

    ids: int [batch, n_seq]. attention_mask: [batch, n_seq], 1 for real tokens, 0 for left padding
    (None: all real). kv_cache: a ``KVCache`` holding earlier tokens' keys and values; it is
    extended with this call's tokens. last_only: the LM head on the last position alone
    ([batch, 1, n_vocab]), what generation needs. Returns float logits [batch, n_seq, n_vocab].
    """
    n_seq = ids.shape[1]
    token_mask, full_mask = token_masks(ids, attention_mask, kv_cache)
    mask = causal_mask(full_mask, n_seq)  # [batch, 1, n_seq, n_kv], added to the attention scores

    x = tap("embed", embed(ids, params["wte"]["weight"])) + tap(
        "pos_embed", pos_embed(positions(full_mask, n_seq), params["wpe"]["weight"]))  # [batch, n_seq, n_embd]
    for layer, block in enumerate(params["h"]):  # n_layer x [batch, n_seq, n_embd]
        kv = kv_cache.layer(layer) if kv_cache is not None else None
        x = transformer_block(x, **block, n_head=config.n_head, eps=config.layer_norm_eps, mask=mask, kv=kv,
                              tap=tap.block(layer))
    x = tap("ln_final", layer_norm(x, **params["ln_f"], eps=config.layer_norm_eps))
    if last_only:
        x = x[:, -1:]  # [batch, 1, n_embd]; with left padding the last position is real in every row
    logits = tap("logits", unembed(x, params["wte"]["weight"]))  # [batch, n_seq, n_vocab]
    if kv_cache is not None:
        kv_cache.advance(token_mask)
    return logits


# ---- initial weights ----------------------------------------------------------------------------


POSITION_INITS = ("normal", "sinusoidal")  # how random_params starts wpe


def sinusoidal_positions(n_pos: int, d: int) -> np.ndarray:
    """The original Transformer's positional encoding ("Attention Is All You Need", 3.5), [n_pos, d]:
    PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d)). GPT-2 learns its ``wpe``
    instead; for every offset k, PE[p + k] is a fixed linear map (rotations) of PE[p], which makes
    "attend k tokens back" easy to learn."""
    angles = np.arange(n_pos)[:, None] / 10000.0 ** (np.arange(0, d, 2) / d)  # [n_pos, ceil(d / 2)]
    pe = np.zeros((n_pos, d))
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles[:, : d // 2])
    return pe


def random_params(config: GPT2Config | str, seed: int | np.random.Generator = 0, dtype=np.float32,
                  position_init: str = "normal", init_std: float = 0.02, attn_init_std: float | None = None) -> dict:
    """Parameters drawn as GPT-2 initialises them: N(0, 0.02) weights, zero biases, unit layer norms.

    The output projections of each block (``attn.c_proj``, ``mlp.c_proj``) are scaled by
    1/sqrt(2 * n_layer), as in the GPT-2 paper, so the residual stream's variance does not grow
    with depth. ``position_init="sinusoidal"`` starts the learned ``wpe`` from
    ``sinusoidal_positions`` scaled to the token embeddings' size (root mean square 0.02) instead
    of N(0, 0.01): still learned, but able to tell neighbouring positions apart from step 0.

    ``init_std`` replaces GPT-2's 0.02 for every weight drawn from a normal (the output projections
    keep their 1/sqrt(2 * n_layer) factor; positions drawn from N(0, init_std / 2)). 0.02 was chosen
    for 768-wide models: in a 64- or 128-wide one, queries and keys start so small that every head
    attends evenly and the gradient that would sharpen it is tiny, which lengthens the plateau
    before heads (induction heads above all) form. ``attn_init_std`` sets the query, key and value
    weights' (``attn.c_attn``) alone (default: ``init_std``): starting those about 6x larger than
    0.02 in a 64-128 wide model is what let notebook 11's induction head form within a minute
    (raising ``init_std``, every weight, did not).
    """
    attn_std = init_std if attn_init_std is None else attn_init_std
    for name, value in (("init_std", init_std), ("attn_init_std", attn_std)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number (GPT-2 uses 0.02), got {value!r}")
    if position_init not in POSITION_INITS:
        raise ValueError(f"position_init must be one of {', '.join(POSITION_INITS)}, got {position_init!r}")
    config = get_config(config)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n_embd, d_mlp = config.n_embd, config.d_mlp
    proj_std = init_std / np.sqrt(2 * config.n_layer)

    def normal(shape, std=init_std):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(dtype)

    def ln():
        return {"weight": np.ones(n_embd, dtype), "bias": np.zeros(n_embd, dtype)}

    return {
        "wte": {"weight": normal((config.n_vocab, n_embd))},
        "wpe": {"weight": normal((config.n_ctx, n_embd), init_std / 2) if position_init == "normal"
                else (init_std * math.sqrt(2) * sinusoidal_positions(config.n_ctx, n_embd)).astype(dtype)},
        "h": [
            {
                "ln_1": ln(),
                "attn": {
                    "c_attn": {"weight": normal((n_embd, 3 * n_embd), attn_std), "bias": np.zeros(3 * n_embd, dtype)},
                    "c_proj": {"weight": normal((n_embd, n_embd), proj_std), "bias": np.zeros(n_embd, dtype)},
                },
                "ln_2": ln(),
                "mlp": {
                    "c_fc": {"weight": normal((n_embd, d_mlp)), "bias": np.zeros(d_mlp, dtype)},
                    "c_proj": {"weight": normal((d_mlp, n_embd), proj_std), "bias": np.zeros(n_embd, dtype)},
                },
            }
            for _ in range(config.n_layer)
        ],
        "ln_f": ln(),
    }
