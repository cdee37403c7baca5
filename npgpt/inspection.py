"""Looking inside a forward pass: logit lens, head scores, direct logit attribution, ablation.

Every helper here reads the activation cache of ``model.run_with_cache(ids)`` for ONE sequence
(``ids`` of shape [n_seq], so the cache has no batch axis; names and shapes in ``npgpt/model.py``)
and the model's parameters, and returns plain arrays in small frozen dataclasses. The plots in
``viz/`` draw these arrays; they never touch the model.

    logits, cache = model.run_with_cache(ids)
    lens = logit_lens(model, cache, k=5)             # top tokens of every layer's residual stream
    scores = head_scores(cache, ids)                 # entropy, previous/first-token, induction
    probe = copying_probe(model)                     # random tokens repeated: copy loss, induction
    dla = direct_logit_attribution(model, cache, target=ids_of_next_token)
    ablation = head_ablation(model, ids, layer=1, head=3)

Conventions (dimension letters as in ``npgpt/model.py``; "layer l" is block l):

- Residual stream "after layer l" is ``blocks.{l}.resid_post``; the row before layer 0 is
  ``blocks.0.resid_pre`` (token + positional embedding), labelled ``"embed"``. So a logit lens
  has n_layer + 1 rows, and its last row is exactly the model's own output.
- Direct logit attribution (DLA). The final residual stream at a position is a sum of parts:
  ``embed + pos_embed + sum_l (sum_h z_h @ W_O[h] + b_O) + sum_l mlp_out_l``, where ``W_O[h]`` is
  the d_head rows of ``attn.c_proj.weight`` that head h's slice of z multiplies and ``b_O`` is
  ``attn.c_proj.bias``. The final layer norm is not linear, so it is *linearised at this
  position*: ln_f(x) = (x - mean(x)) / s * w + b with s = sqrt(var(x) + eps) taken from the
  actual residual x, and each part v contributes ``(v - mean(v)) / s . (w * wte[target])``.
  These contributions plus ``b . wte[target]`` (the ln_f bias term) add up to the model's logit
  for ``target`` exactly (to float rounding). A part's contribution therefore depends on the
  other parts through s: it is "what this part adds, given the final scale".
- Head ablation replaces one head's output ``z`` (``blocks.{l}.attn.z``) through a hook: with
  zeros (``mode="zero"``) or with its mean over positions (``mode="mean"``), and reports the change
  in the target token's log-probability. Nothing else is touched: the hook returns a new array.
- Attention entropy is in nats, ``-sum_j p_j log p_j`` per query; log(i + 1) is its maximum at
  query position i (uniform over the i + 1 tokens it can see).

Leaves out: batches (run one sequence at a time), path patching and activation patching between
two prompts (hooks can do both: see the README), attribution through the attention pattern
(DLA treats the pattern as fixed), and sparse-autoencoder features.

References: nostalgebraist, "interpreting GPT: the logit lens" (2020); Elhage et al., "A
Mathematical Framework for Transformer Circuits" (2021) for DLA and the head taxonomy; Olsson et
al., "In-context Learning and Induction Heads" (2022) for the induction score; Abnar & Zuidema,
"Quantifying Attention Flow in Transformers" (2020) for attention rollout.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .fast.model import unembed
from .model import compute_dtype, layer_norm, log_softmax, softmax
from .sampling import top_k_ids

__all__ = [
    "token_labels", "residual_rows", "lens_logits", "logit_lens", "LogitLens",
    "attention_entropy", "head_scores", "HeadScores", "repeated_random_tokens", "mean_head_scores",
    "text_windows", "copying_probe", "CopyingProbe", "best_head",
    "direct_logit_attribution", "LogitAttribution",
    "ablation_hooks", "head_ablation", "HeadAblation", "ablation_scan",
    "residual_norms", "attention_flow", "AttentionFlow", "positional_embedding",
]


# ---- small helpers -----------------------------------------------------------------------------


def token_labels(model, ids) -> list[str]:
    """The text of each token (``model.tokenizer.decode_tokens``), or ``"#id"`` without a tokenizer.

    The strings are raw (spaces, newlines as they are); ``viz`` makes them safe to draw.
    """
    ids = np.asarray(ids).reshape(-1).tolist()
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is not None and hasattr(tokenizer, "decode_tokens"):
        return list(tokenizer.decode_tokens(ids))
    return [f"#{i}" for i in ids]


def _n_layer(cache) -> int:
    n = sum(1 for name in cache if name.endswith(".resid_pre"))
    if n == 0:
        raise InputError("the activation cache has no blocks.*.resid_pre; pass the cache of model.run_with_cache(ids)")
    return n


def _check_one_sequence(cache) -> None:
    if "embed" not in cache:
        raise InputError("the activation cache has no 'embed'; pass the cache of model.run_with_cache(ids)")
    if cache["embed"].ndim != 2:
        raise InputError(
            f"the activation cache has a batch axis (embed is {cache['embed'].shape}); the inspection "
            "helpers read one sequence: call model.run_with_cache(ids) with ids of shape [n_seq]"
        )


def _position(position: int, n_seq: int) -> int:
    if not -n_seq <= position < n_seq:
        raise InputError(f"position {position} is outside the sequence of {n_seq} tokens (use 0..{n_seq - 1} or -1 for the last)")
    return position % n_seq


def _token_id(model, target, what="target") -> int:
    """A token id from an int or a string that is exactly one token."""
    if isinstance(target, str):
        tokenizer = getattr(model, "tokenizer", None)
        if tokenizer is None:
            raise InputError(f"{what} {target!r} is text but the model has no tokenizer; pass a token id")
        ids = tokenizer.encode_ordinary(target)
        if len(ids) != 1:
            raise InputError(
                f"{what} {target!r} is {len(ids)} tokens {ids}; pass text that is one token "
                "(mind the leading space: ' Paris' and 'Paris' are different tokens) or a token id"
            )
        return int(ids[0])
    target = int(target)
    model.config.check_ids(target, f"{what} token id")
    return target


def residual_rows(cache) -> tuple[list[str], list[np.ndarray]]:
    """The residual stream before layer 0 and after each layer: labels and [n_seq, n_embd] arrays.

    Labels are ``"embed"``, then ``"0"``, ``"1"``, ... (after block l). n_layer + 1 rows.
    """
    _check_one_sequence(cache)
    n_layer = _n_layer(cache)
    labels = ["embed"] + [str(l) for l in range(n_layer)]
    rows = [cache["blocks.0.resid_pre"]] + [cache[f"blocks.{l}.resid_post"] for l in range(n_layer)]
    return labels, rows


def residual_norms(cache) -> np.ndarray:
    """L2 norm of the residual stream, [n_layer + 1, n_seq]: row 0 the embeddings, row l+1 after layer l."""
    _, rows = residual_rows(cache)
    return np.stack([np.linalg.norm(r.astype(np.float64), axis=-1) for r in rows])  # [n_layer+1, n_seq]


def positional_embedding(model) -> np.ndarray:
    """The learned positional embedding matrix wpe, [n_ctx, n_embd] (a float32 copy: plot it, don't edit it)."""
    wpe = model.params["wpe"]["weight"]
    return np.array(wpe, dtype=compute_dtype(wpe))


# ---- logit lens --------------------------------------------------------------------------------


def lens_logits(model, resid: np.ndarray) -> np.ndarray:
    """Read a residual stream as if it were the last one: ln_f, then the unembedding (wte^T).

    resid: [..., n_embd] -> logits [..., n_vocab]. On ``blocks.{n_layer-1}.resid_post`` this is
    exactly what the model computes.
    """
    p = model.params
    x = layer_norm(resid, **p["ln_f"], eps=model.config.layer_norm_eps)  # [..., n_embd]
    return unembed(x, p["wte"]["weight"])  # [..., n_embd] -> [..., n_vocab]


@dataclass(frozen=True)
class LogitLens:
    """Top-k next-token predictions read off the residual stream after every layer.

    rows are the residual streams (``labels``: "embed", "0", ..., str(n_layer-1)), positions the
    tokens at ``positions`` (indices into the sequence).

    top_ids, top_probs: [n_rows, n_pos, k], most likely first. top_tokens: the same as strings
    (``"#id"`` without a tokenizer). next_ids: [n_pos] the token that actually follows each
    position (-1 at the sequence's end); next_probs: [n_rows, n_pos] its probability per row
    (NaN where there is none).
    """

    labels: list[str]
    positions: np.ndarray
    tokens: list[str]
    top_ids: np.ndarray
    top_probs: np.ndarray
    top_tokens: list[list[list[str]]]
    next_ids: np.ndarray
    next_probs: np.ndarray


def logit_lens(model, cache, ids=None, *, k: int = 5, positions=None, chunk: int = 64) -> LogitLens:
    """The logit lens: ln_f + unembedding applied to each layer's residual stream.

    ids: the sequence the cache was made from (for token labels and the actual next tokens);
    positions: which positions to read (default all); chunk: positions unembedded at once (each
    is an [n_vocab] row, so this bounds memory).
    """
    labels, rows = residual_rows(cache)
    n_seq = rows[0].shape[0]
    positions = np.arange(n_seq) if positions is None else np.array([_position(int(i), n_seq) for i in np.atleast_1d(positions)])
    n_vocab = model.config.n_vocab
    if not 1 <= k <= n_vocab:
        raise InputError(f"k must be in 1..{n_vocab}, got {k}")
    if ids is not None:
        ids = np.asarray(ids).reshape(-1)
        if ids.shape[0] != n_seq:
            raise InputError(f"ids has {ids.shape[0]} tokens but the cache holds {n_seq}")
        next_ids = np.array([ids[i + 1] if i + 1 < n_seq else -1 for i in positions])
    else:
        next_ids = np.full(len(positions), -1)

    top_ids = np.zeros((len(rows), len(positions), k), dtype=np.int64)
    top_probs = np.zeros((len(rows), len(positions), k), dtype=np.float32)
    next_probs = np.full((len(rows), len(positions)), np.nan, dtype=np.float32)
    for r, resid in enumerate(rows):
        for start in range(0, len(positions), chunk):
            pos = positions[start : start + chunk]
            probs = softmax(lens_logits(model, resid[pos]), axis=-1)  # [chunk, n_vocab]
            top = top_k_ids(probs, k)  # [chunk, k], most likely first
            top_ids[r, start : start + chunk] = top
            top_probs[r, start : start + chunk] = np.take_along_axis(probs, top, -1)
            nxt = next_ids[start : start + chunk]
            has = nxt >= 0
            next_probs[r, start : start + chunk][has] = probs[np.flatnonzero(has), nxt[has]]

    strings = _id_strings(model, np.unique(top_ids))
    top_tokens = [[[strings[i] for i in cell] for cell in row] for row in top_ids.tolist()]
    tokens = token_labels(model, ids[positions]) if ids is not None else [f"@{i}" for i in positions]
    return LogitLens(labels, positions, tokens, top_ids, top_probs, top_tokens, next_ids, next_probs)


def _id_strings(model, ids) -> dict[int, str]:
    ids = [int(i) for i in ids]
    return dict(zip(ids, token_labels(model, ids)))


# ---- attention: entropy, head scores, flow -------------------------------------------------


def attention_entropy(pattern: np.ndarray) -> np.ndarray:
    """Entropy in nats of each attention row: [..., n_seq, n_kv] -> [..., n_seq].

    0 when a query looks at one token only; log(i + 1) when query i spreads evenly over all it sees.
    """
    p = pattern.astype(np.float64)
    logp = np.log(np.where(p > 0, p, 1.0))  # 0 * log 0 counts as 0
    return -np.sum(p * logp, axis=-1)


def repeated_random_tokens(n_vocab: int, length: int, repeats: int = 2, seed: int | np.random.Generator = 0, prefix=()) -> np.ndarray:
    """``prefix`` + a random sequence of ``length`` ids repeated ``repeats`` times.

    On such a sequence an induction head, at a token of the second copy, attends to the token that
    followed the same token in the first copy; it is the standard probe for induction heads.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    base = rng.integers(0, n_vocab, size=length)
    return np.concatenate([np.asarray(prefix, dtype=np.int64), np.tile(base, repeats)]).astype(np.int64)


@dataclass(frozen=True)
class HeadScores:
    """One number per head, each [n_layer, n_head] (means over the query positions it is defined at).

    entropy: mean attention entropy in nats. previous_token: mean attention from position i to
    i - 1. first_token: mean attention to position 0 (queries after the first). induction: mean
    attention, at a token seen before, to the tokens that followed its earlier occurrences (NaN
    when no token repeats: use ``repeated_random_tokens``).
    """

    entropy: np.ndarray
    previous_token: np.ndarray
    first_token: np.ndarray
    induction: np.ndarray


def head_scores(cache, ids=None) -> HeadScores:
    """Entropy, previous-token, first-token and induction scores of every head.

    ids: the token ids of the whole attended sequence (n_kv of them), needed for the induction
    score only (NaN without them).
    """
    _check_one_sequence(cache)
    n_layer = _n_layer(cache)
    patterns = np.stack([cache[f"blocks.{l}.attn.pattern"] for l in range(n_layer)])  # [n_layer, n_head, n_seq, n_kv]
    n_seq, n_kv = patterns.shape[-2:]
    n_past = n_kv - n_seq  # queries are the last n_seq of the n_kv positions
    absolute = n_past + np.arange(n_seq)  # each query's position in the sequence

    entropy = attention_entropy(patterns).mean(axis=-1)  # [n_layer, n_head]

    later = absolute >= 1  # position 0 can only look at itself: leave it out
    if later.any():
        q = np.flatnonzero(later)
        previous = patterns[..., q, absolute[q] - 1].mean(axis=-1)
        first = patterns[..., q, 0].mean(axis=-1)
    else:
        previous = first = np.full(patterns.shape[:2], np.nan)

    induction = np.full(patterns.shape[:2], np.nan)
    if ids is not None:
        ids = np.asarray(ids).reshape(-1)
        if ids.shape[0] != n_kv:
            raise InputError(f"ids has {ids.shape[0]} tokens but the cache's attention looks at {n_kv}")
        # target[i, j]: key j follows an earlier occurrence of query i's token (j - 1 < i - 1).
        j = np.arange(1, n_kv)
        target = np.zeros((n_seq, n_kv), dtype=bool)
        target[:, 1:] = (ids[j - 1][None, :] == ids[absolute][:, None]) & (j[None, :] < absolute[:, None])
        has = target.any(axis=1)
        if has.any():
            mass = np.sum(patterns * target, axis=-1)  # [n_layer, n_head, n_seq]
            induction = mass[..., has].mean(axis=-1)
    return HeadScores(entropy, previous, first, induction)


def mean_head_scores(model, sequences) -> HeadScores:
    """``head_scores`` averaged over several sequences (each [n_seq] token ids; NaN scores, such as
    the induction score of a sequence with no repeated token, are left out of the mean)."""
    runs = []
    for ids in sequences:
        ids = np.asarray(ids)
        _, cache = model.run_with_cache(ids)
        runs.append(head_scores(cache, ids))
    if not runs:
        raise InputError("no sequences given: pass at least one array of token ids")
    return _mean_scores(runs)


def _mean_scores(runs: list[HeadScores]) -> HeadScores:
    """Each score averaged over the runs; NaN (a score a run does not define) is left out."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN entry ("Mean of empty slice") stays NaN
        return HeadScores(*(np.nanmean(np.stack([getattr(r, f) for r in runs]), axis=0) for f in HeadScores.__dataclass_fields__))


def text_windows(model, text: str, n_seq: int | None = None, count: int = 8) -> list[np.ndarray]:
    """Up to ``count`` consecutive windows of ``n_seq`` tokens (default: the context) of ``text``."""
    n_seq = min(n_seq or model.config.n_ctx, model.config.n_ctx)
    ids = np.asarray(model.tokenizer.encode_ordinary(text))
    windows = [ids[i : i + n_seq] for i in range(0, len(ids) - n_seq + 1, n_seq)][:count]
    return windows or [ids[: model.config.n_ctx]]


@dataclass(frozen=True)
class CopyingProbe:
    """A model on random tokens repeated twice: per-token losses and the heads' scores.

    losses: [n_probe, 2 * length - 1], nats of each next-token prediction (position i predicts
    token i + 1); the first copy's tokens are unpredictable (about log n_vocab), the second
    copy's are predictable only by copying. scores: ``HeadScores`` averaged over the probes.
    """

    ids: np.ndarray  # [n_probe, 2 * length]
    losses: np.ndarray
    scores: HeadScores

    @property
    def length(self) -> int:
        return self.ids.shape[1] // 2

    @property
    def first_copy_loss(self) -> float:
        """Mean loss of predicting the first copy's tokens 1..length-1 (token 0 has no context)."""
        return float(self.losses[:, : self.length - 1].mean())

    @property
    def second_copy_loss(self) -> float:
        """Mean loss of predicting the second copy's tokens 1..length-1 (its token 0 follows the
        first copy's end, which predicts nothing)."""
        return float(self.losses[:, self.length :].mean())

    @property
    def ratio(self) -> float:
        """second / first copy loss: 1 for a model that cannot copy, near 0 for one that copies well."""
        return self.second_copy_loss / self.first_copy_loss


def copying_probe(model, length: int = 50, n_probe: int = 4, seed: int = 0, hooks=None) -> CopyingProbe:
    """Random tokens repeated twice (``repeated_random_tokens``), ``n_probe`` of them, through the
    model (with ``hooks``, e.g. ``ablation_hooks``, to see what breaks copying)."""
    rng = np.random.default_rng(seed)
    ids = np.stack([repeated_random_tokens(model.config.n_vocab, length, 2, seed=rng) for _ in range(n_probe)])
    losses, runs = [], []
    for row in ids:
        logits, cache = model.run_with_cache(row, hooks=hooks)
        losses.append(-log_softmax(logits[:-1])[np.arange(len(row) - 1), row[1:]])
        runs.append(head_scores(cache, row))
    return CopyingProbe(ids, np.stack(losses), _mean_scores(runs))


def best_head(values: np.ndarray) -> tuple[int, int]:
    """(layer, head) of the largest value of a [n_layer, n_head] array of scores."""
    layer, head = np.unravel_index(int(np.nanargmax(values)), values.shape)
    return int(layer), int(head)


@dataclass(frozen=True)
class AttentionFlow:
    """How one token's final state traces back through the layers (attention rollout).

    mixing: [n_layer, n_seq, n_seq], each layer's attention averaged over heads and mixed with the
    identity for the residual connection: ``residual * I + (1 - residual) * mean_h(pattern)``;
    rows sum to 1. flow: [n_layer + 1, n_seq]; ``flow[n_layer]`` is one-hot at ``position`` and
    ``flow[l] = flow[l + 1] @ mixing[l]``: the share of the token's final state that comes from
    each position at the input of layer l (row 0: the embeddings). Each row sums to 1.
    """

    position: int
    residual: float
    mixing: np.ndarray
    flow: np.ndarray

    def edges(self, layer: int) -> np.ndarray:
        """[n_seq, n_seq]: flow from query i at layer+1 to key j at layer (sums to 1 over i, j)."""
        return self.flow[layer + 1][:, None] * self.mixing[layer]


def attention_flow(cache, position: int = -1, residual: float = 0.5) -> AttentionFlow:
    """Attention rollout (Abnar & Zuidema 2020) back from the token at ``position``.

    A picture of where information *could* have flowed: it ignores what the values carry and how
    much each head writes; treat it as a map, not a measurement.
    """
    _check_one_sequence(cache)
    if not 0.0 <= residual <= 1.0:
        raise InputError(f"residual must be in [0, 1], got {residual}")
    n_layer = _n_layer(cache)
    means = [cache[f"blocks.{l}.attn.pattern"].astype(np.float64).mean(axis=0) for l in range(n_layer)]
    n_seq, n_kv = means[0].shape
    if n_seq != n_kv:
        raise InputError("attention flow needs the whole sequence in one call (a cache made without a KV cache)")
    position = _position(position, n_seq)
    mixing = np.stack([residual * np.eye(n_seq) + (1 - residual) * a for a in means])  # [n_layer, n_seq, n_seq]
    flow = np.zeros((n_layer + 1, n_seq))
    flow[n_layer, position] = 1.0
    for l in range(n_layer - 1, -1, -1):
        flow[l] = flow[l + 1] @ mixing[l]
    return AttentionFlow(position, residual, mixing, flow)


# ---- direct logit attribution ------------------------------------------------------------------


@dataclass(frozen=True)
class LogitAttribution:
    """How much each part of the final residual stream adds to one logit (see the module docstring).

    heads: [n_layer, n_head]; attn_bias, mlp: [n_layer]; embed, pos_embed, ln_final_bias: floats.
    ``total()`` adds them all; it equals ``logit``, the model's own logit for ``target`` at
    ``position``. scale is s, the final layer norm's divisor at that position.
    """

    target: int
    position: int
    embed: float
    pos_embed: float
    heads: np.ndarray
    attn_bias: np.ndarray
    mlp: np.ndarray
    ln_final_bias: float
    logit: float
    scale: float

    def total(self) -> float:
        return float(self.embed + self.pos_embed + self.heads.sum() + self.attn_bias.sum() + self.mlp.sum() + self.ln_final_bias)

    def parts(self) -> list[tuple[str, float]]:
        """Every part as (label, value): embed, pos_embed, L{l}H{h}, L{l} attn bias, L{l} mlp, ln_f bias."""
        out = [("embed", self.embed), ("pos_embed", self.pos_embed)]
        for l in range(self.heads.shape[0]):
            out += [(f"L{l}H{h}", float(v)) for h, v in enumerate(self.heads[l])]
            out += [(f"L{l} attn bias", float(self.attn_bias[l])), (f"L{l} mlp", float(self.mlp[l]))]
        return out + [("ln_f bias", self.ln_final_bias)]


def direct_logit_attribution(model, cache, target=None, position: int = -1) -> LogitAttribution:
    """Split the logit of ``target`` at ``position`` into the parts that wrote the residual stream.

    target: a token id or a one-token string; default the model's top prediction at ``position``.
    Computed in float64; see the module docstring for the convention.
    """
    _check_one_sequence(cache)
    n_layer = _n_layer(cache)
    c = model.config
    n_seq = cache["embed"].shape[0]
    position = _position(position, n_seq)
    if target is None:
        target = int(np.argmax(cache["logits"][position])) if "logits" in cache else None
        if target is None:
            raise InputError("no target given and the cache has no logits to pick the top prediction from")
    target = _token_id(model, target)
    p = model.params
    f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731

    # The final layer norm, frozen at this position: subtract the mean, divide by s, then each
    # feature is scaled by w and read by wte[target]. Everything before is a sum, so it splits.
    x = f64(cache[f"blocks.{n_layer - 1}.resid_post"][position])  # [n_embd]
    scale = float(np.sqrt(x.var() + c.layer_norm_eps))
    direction = f64(p["ln_f"]["weight"]) * f64(p["wte"]["weight"][target])  # [n_embd]

    def read(v):  # [..., n_embd] -> [...]: what v adds to the logit through the frozen ln_f
        return (v - v.mean(axis=-1, keepdims=True)) @ direction / scale

    heads = np.zeros((n_layer, c.n_head))
    attn_bias = np.zeros(n_layer)
    mlp = np.zeros(n_layer)
    for l in range(n_layer):
        z = f64(cache[f"blocks.{l}.attn.z"][:, position])  # [n_head, d_head]
        w_o = f64(p["h"][l]["attn"]["c_proj"]["weight"]).reshape(c.n_head, c.d_head, c.n_embd)  # head h's rows
        heads[l] = read(np.einsum("hd,hde->he", z, w_o))  # [n_head, n_embd] -> [n_head]
        attn_bias[l] = read(f64(p["h"][l]["attn"]["c_proj"]["bias"]))
        mlp[l] = read(f64(cache[f"blocks.{l}.mlp_out"][position]))
    return LogitAttribution(
        target=target,
        position=position,
        embed=float(read(f64(cache["embed"][position]))),
        pos_embed=float(read(f64(cache["pos_embed"][position]))),
        heads=heads,
        attn_bias=attn_bias,
        mlp=mlp,
        ln_final_bias=float(f64(p["ln_f"]["bias"]) @ f64(p["wte"]["weight"][target])),
        logit=float(cache["logits"][position, target]) if "logits" in cache else float("nan"),
        scale=scale,
    )


# ---- head ablation -------------------------------------------------------------------------


def ablation_hooks(heads, mode: str = "zero", hooks=None) -> dict:
    """Hooks that knock out attention heads: ``heads`` is a list of (layer, head).

    mode "zero" replaces the head's output z with zeros, "mean" with its mean over positions. The
    hooks return new arrays (the forward pass's own arrays are not edited). Existing ``hooks`` on
    the same activations run first.
    """
    if mode not in ("zero", "mean"):
        raise InputError(f"ablation mode must be 'zero' or 'mean', got {mode!r}")
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(int(layer), []).append(int(head))
    out = dict(hooks or {})
    for layer, hs in by_layer.items():
        name = f"blocks.{layer}.attn.z"

        def knock_out(z, hs=tuple(hs), before=out.get(name)):  # z: [batch, n_head, n_seq, d_head]
            z = np.array(before(z) if before else z)  # a copy
            for h in hs:
                z[:, h] = 0.0 if mode == "zero" else z[:, h].mean(axis=1, keepdims=True)
            return z

        out[name] = knock_out
    return out


@dataclass(frozen=True)
class HeadAblation:
    """The target token's log-probability at ``position`` with and without head ``head`` of ``layer``."""

    layer: int
    head: int
    mode: str
    target: int
    position: int
    logprob: float
    ablated_logprob: float

    @property
    def delta(self) -> float:
        """ablated - clean: negative when the head was helping predict the target."""
        return self.ablated_logprob - self.logprob


def _check_head(model, layer: int, head: int) -> tuple[int, int]:
    c = model.config
    if not -c.n_layer <= layer < c.n_layer:
        raise InputError(f"layer {layer} does not exist: the model has layers 0..{c.n_layer - 1}")
    if not 0 <= head < c.n_head:
        raise InputError(f"head {head} does not exist: each layer has heads 0..{c.n_head - 1}")
    return layer % c.n_layer, head


def _ablation_setup(model, ids, target, position):
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise InputError(f"ablation runs one sequence: ids must have shape [n_seq], got {ids.shape}")
    clean = model.logits(ids)  # [n_seq, n_vocab]
    position = _position(position, ids.shape[0])
    target = int(np.argmax(clean[position])) if target is None else _token_id(model, target)
    return ids, position, target, float(log_softmax(clean[position])[target])


def head_ablation(model, ids, layer: int, head: int, target=None, position: int = -1, mode: str = "zero") -> HeadAblation:
    """Knock out one head and measure the change in log p(target) at ``position``.

    target: a token id or one-token string; default the clean run's top prediction.
    """
    layer, head = _check_head(model, layer, head)
    ids, position, target, clean = _ablation_setup(model, ids, target, position)
    ablated = model.logits(ids, hooks=ablation_hooks([(layer, head)], mode))[position]
    return HeadAblation(layer, head, mode, target, position, clean, float(log_softmax(ablated)[target]))


def ablation_scan(model, ids, target=None, position: int = -1, mode: str = "zero") -> np.ndarray:
    """Change in log p(target) when each head alone is knocked out: [n_layer, n_head].

    One forward pass per head (n_layer * n_head of them): keep the prompt short on big models.
    """
    ids, position, target, clean = _ablation_setup(model, ids, target, position)
    c = model.config
    out = np.zeros((c.n_layer, c.n_head))
    for layer in range(c.n_layer):
        for head in range(c.n_head):
            ablated = model.logits(ids, hooks=ablation_hooks([(layer, head)], mode))[position]
            out[layer, head] = float(log_softmax(ablated)[target]) - clean
    return out
