"""Logits processors and choosing a token: pure functions on logits arrays.

How the logits of the last position become the next token, in the order Hugging Face
``transformers`` applies them (``process_logits`` in ``npgpt/generate.py`` chains them from the
generation settings):

    logits [n_vocab] (or [batch, n_vocab]: every function works row by row on the last axis)
      -> repetition_penalty  tokens already in the row: positive logits / penalty, negative * penalty
      -> apply_temperature   logits / temperature (temperature=0 means greedy: argmax, no sampling)
      -> top_k_filter        keep the k largest logits, -inf elsewhere
      -> top_p_filter        keep the smallest set of tokens whose probabilities add up to >= p
      -> min_p_filter        keep tokens with probability >= min_p * (the top token's probability)
      -> sample              draw from softmax(logits) with an explicit np.random.Generator
                             (``choose``: argmax for greedy, else ``sample`` for each row)

Each step has a worked example in its docstring; none changes its input. Randomness comes only
from ``np.random.Generator`` objects: ``row_generators`` splits a seed into one independent
generator per output row (``Generator.spawn``), so a row's sample does not depend on which other
rows share the batch. ``top_k_ids`` (the k largest entries, largest first) is the one top-k
selection of the package: traces, beam search and the logit lens use it.

Leaves out: typical / eta sampling, banned words and other constrained decoding.

References: Holtzman et al. 2019 (nucleus / top-p sampling), Keskar et al. 2019 (CTRL:
repetition penalty), Nguyen et al. 2024 (min-p), Hugging Face ``transformers``'
``generation/logits_process.py`` (whose semantics these functions follow).
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .model import log_softmax, softmax

Logits = np.ndarray  # [n_vocab] or [batch, n_vocab]


def probabilities(logits: np.ndarray) -> np.ndarray:
    """softmax(logits) along the last axis, in float64: the distribution a token is drawn from.

    >>> probabilities(np.array([0.0, np.log(3.0), -np.inf]))
    array([0.25, 0.75, 0.  ])
    """
    return np.exp(log_softmax(logits))


def top_k_ids(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest entries along the last axis, largest first ([..., k]).

    ``argpartition`` finds the k largest without sorting the whole vocabulary; only those k are
    then sorted (stably, so equal values keep argpartition's order). ``k`` larger than the axis
    gives every index.

    >>> top_k_ids(np.array([0.1, 0.5, 0.2, 0.2]), 3)
    array([1, 2, 3])
    """
    values = np.asarray(values)
    k = min(k, values.shape[-1])
    if k == 0:
        return np.zeros(values.shape[:-1] + (0,), dtype=np.int64)
    top = np.argpartition(-values, k - 1, axis=-1)[..., :k]  # the k largest, unordered
    order = np.argsort(-np.take_along_axis(values, top, axis=-1), axis=-1, kind="stable")
    return np.take_along_axis(top, order, axis=-1)


def repetition_penalty(logits: Logits, previous_ids, penalty: float) -> Logits:
    """Make tokens that already occur in the row less likely (CTRL, Keskar et al. 2019).

    A seen token's logit is divided by ``penalty`` if positive and multiplied by it if negative,
    so ``penalty > 1`` always lowers it (``< 1`` raises it). Each distinct token counts once,
    however often it occurred. ``previous_ids``: the row's ids (prompt and generated so far) for
    1-D logits, or one such sequence per row for [batch, n_vocab] logits.

    >>> repetition_penalty(np.array([2.0, -2.0, 1.0]), [0, 1, 1], 2.0)
    array([ 1., -4.,  1.])
    """
    if penalty <= 0:
        raise InputError(f"repetition_penalty must be > 0 (1.0 means none), got {penalty}")
    out = np.array(logits, copy=True)
    rows = out[None] if out.ndim == 1 else out
    per_row = [previous_ids] if out.ndim == 1 else previous_ids
    if len(per_row) != rows.shape[0]:
        raise InputError(f"repetition_penalty got {len(per_row)} id sequences for {rows.shape[0]} rows of logits")
    for row, ids in zip(rows, per_row):
        seen = np.unique(np.asarray(ids, dtype=np.int64))
        if seen.size:
            x = row[seen]
            row[seen] = np.where(x < 0, x * penalty, x / penalty)
    return out


def apply_temperature(logits: Logits, temperature: float) -> Logits:
    """Divide the logits by ``temperature``: < 1 sharpens the distribution, > 1 flattens it.

    ``temperature=0`` is the limit "always the most likely token"; it is handled as greedy
    decoding by the callers, so this function only takes ``temperature > 0``.

    >>> apply_temperature(np.array([1.0, 2.0, -np.inf]), 0.5)
    array([  2.,   4., -inf])
    """
    if not temperature > 0:
        raise InputError(f"apply_temperature needs temperature > 0 (0 means greedy: use argmax), got {temperature}")
    return np.asarray(logits) / temperature


def top_k_filter(logits: Logits, k: int) -> Logits:
    """Keep the ``k`` largest logits of each row and set the rest to -inf.

    Ties with the k-th largest value are all kept (as in transformers). ``k`` at least the
    vocabulary size keeps everything.

    >>> top_k_filter(np.array([1.0, 3.0, 2.0, 0.5]), 2)
    array([-inf,   3.,   2., -inf])
    """
    if k < 1:
        raise InputError(f"top_k must be >= 1, got {k}")
    logits = np.asarray(logits)
    n_vocab = logits.shape[-1]
    if k >= n_vocab:
        return logits.copy()
    kth_largest = np.partition(logits, n_vocab - k, axis=-1)[..., n_vocab - k, None]  # [..., 1]
    return np.where(logits < kth_largest, -np.inf, logits)


def top_p_filter(logits: Logits, p: float) -> Logits:
    """Nucleus sampling (Holtzman et al. 2019): keep the smallest set of most likely tokens whose
    probabilities add up to at least ``p``; always at least the top token (``p=0``: only it).

    Probabilities of [3, 2, 1, 0] (logits = their logs) are 0.5, 0.333, 0.167, 0: with p=0.6 the
    top two add up to 0.833 >= 0.6 and the top one alone (0.5) does not, so two are kept.

    >>> top_p_filter(np.log([3.0, 2.0, 1.0, 1e-9]), 0.6).round(3)
    array([1.099, 0.693,  -inf,  -inf])

    Written as transformers' ``TopPLogitsWarper`` computes it: sort from least to most likely and
    drop tokens while they and all less likely ones add up to at most ``1 - p``. Among tokens of
    equal probability the lower id sorts first, so it is dropped first (a stable ascending sort,
    which is what ``torch.sort`` gives for up to 16 tokens; docs/generation.md says what it gives
    beyond). Probabilities (0.5, 0.25, 0.25) with p=0.75 keep tokens 0 and 2:

    >>> np.isfinite(top_p_filter(np.log([0.5, 0.25, 0.25]), 0.75))
    array([ True, False,  True])
    """
    if not 0 <= p <= 1:
        raise InputError(f"top_p must be in [0, 1], got {p}")
    logits = np.asarray(logits)
    if p == 1:
        return logits.copy()
    order = np.argsort(logits, axis=-1, kind="stable")  # least likely first; of equal ones, the lower id
    # softmax as exp / sum (not exp(log_softmax)): n equal logits then give exactly 1/n where n is a
    # power of two, as torch's softmax does, so that a cut such as 4 of 8 equal tokens is exact
    sorted_probs = softmax(np.take_along_axis(logits, order, axis=-1).astype(np.float64))
    mass_up_to = np.cumsum(sorted_probs, axis=-1)  # probability of this token and of all less likely ones
    drop_sorted = mass_up_to <= 1 - p
    drop_sorted[..., -1] = False  # the most likely token always stays (transformers' min_tokens_to_keep=1)
    drop = np.empty_like(drop_sorted)
    np.put_along_axis(drop, order, drop_sorted, axis=-1)
    return np.where(drop, -np.inf, logits)


def min_p_filter(logits: Logits, min_p: float) -> Logits:
    """Min-p sampling (Nguyen et al. 2024): keep tokens whose probability is at least ``min_p``
    times the most likely token's; the threshold rises and falls with the model's confidence.

    Probabilities 0.5, 0.3, 0.15, 0.05 with min_p=0.2: the threshold is 0.2 * 0.5 = 0.1.

    >>> np.isfinite(min_p_filter(np.log([0.5, 0.3, 0.15, 0.05]), 0.2))
    array([ True,  True,  True, False])
    """
    if not 0 <= min_p <= 1:
        raise InputError(f"min_p must be in [0, 1], got {min_p}")
    logits = np.asarray(logits)
    # p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p): no softmax needed.
    threshold = np.max(logits, axis=-1, keepdims=True) + (np.log(min_p) if min_p > 0 else -np.inf)
    return np.where(logits >= threshold, logits, -np.inf)  # the top token always passes


def sample(logits: np.ndarray, rng: np.random.Generator) -> int:
    """Draw one token id from softmax(logits) ([n_vocab]), using ``rng`` only.

    Inverse-CDF sampling: u ~ U[0, 1), the token is the first whose cumulative probability
    exceeds u. Tokens at -inf have probability 0 and are never drawn.

    >>> rng = np.random.default_rng(0)
    >>> [sample(np.array([np.log(0.1), -np.inf, np.log(0.9)]), rng) for _ in range(10)]
    [2, 2, 0, 0, 2, 2, 2, 2, 2, 2]
    """
    cdf = np.cumsum(probabilities(logits))
    u = rng.random() * cdf[-1]
    return int(min(np.searchsorted(cdf, u, side="right"), cdf.size - 1))


def choose(logits: np.ndarray, rngs: list[np.random.Generator] | None):
    """The next token of each row of ``logits`` [batch, n_vocab]: the argmax when ``rngs`` is
    None (greedy), else a sample drawn with the row's own generator.

    >>> choose(np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]]), None)
    array([1, 0])
    """
    if rngs is None:
        return np.argmax(logits, axis=-1)
    return [sample(row, rng) for row, rng in zip(logits, rngs)]


def row_generators(seed, n_rows: int) -> list[np.random.Generator]:
    """One independent generator per row, derived from ``seed`` (an int, a Generator or None).

    Row r draws from ``default_rng(seed).spawn(n_rows)[r]``, whatever the other rows do.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    try:
        return rng.spawn(n_rows)
    except (TypeError, AttributeError):  # a Generator built without a SeedSequence cannot spawn
        return [np.random.default_rng(s) for s in rng.integers(0, 2**63, size=n_rows)]
