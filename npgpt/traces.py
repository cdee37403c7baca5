"""Traces of generation: why each token was chosen, and what the model computed to choose it.

With ``trace=True`` every generated token gets a ``StepTrace``: its probability under the model's
own distribution and under the one it was drawn from, and the model's most likely alternatives.
With ``trace_cache=True`` the step also keeps the activations of the forward pass that produced
its logits, cut down to the row alone (``row_cache``): the batch axis dropped and the row's left
padding removed from every sequence axis. Which axis is the sequence axis and which is the key
axis is read from the one table of activations, ``npgpt.activations.ACTIVATIONS``.

The viz (``viz/plots.py``) draws these; it reads only what is here.

Leaves out: traces of beam search (its hypotheses are ranked by log-probability alone).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .activations import ActivationCache, axes
from .sampling import probabilities, top_k_ids


@dataclass(frozen=True)
class TokenProb:
    """A token and its probability: one of a trace step's alternatives."""

    id: int
    text: str | None  # the token on its own (None without a tokenizer)
    prob: float


@dataclass
class StepTrace:
    """Why one token was chosen: what the viz shows per generated token.

    ``prob`` and ``top`` come from the model's own distribution (softmax of the raw logits, before
    the penalty, temperature and filters); ``sampled_prob`` is the token's probability in the
    distribution it was actually drawn from (1.0 for greedy). ``cache`` (only with
    ``trace_cache=True``) holds the activations of the forward pass that produced this token's
    logits, for this row alone, without batch axis or padding: the whole prompt at step 0
    (``cache["pattern", 0]``: [n_head, n_prompt, n_prompt]), and the one position fed at later
    steps ([n_head, 1, n_kv]: the new token's attention to everything before it). After a sliding
    window shift, the step's cache covers the re-encoded window.
    """

    step: int  # 0 for the first generated token
    token_id: int
    token_text: str | None  # the token on its own; part of a multi-byte character decodes to U+FFFD
    prob: float
    sampled_prob: float
    top: list[TokenProb]  # the model's trace_top_k most likely tokens, most likely first
    cache: ActivationCache | None = None

    @property
    def logprob(self) -> float:
        return math.log(self.prob) if self.prob > 0 else -math.inf


def trace_step(step: int, token: int, logits: np.ndarray, chosen_from: np.ndarray | None, tokenizer,
               top_k: int, cache: ActivationCache | None = None) -> StepTrace:
    """The trace of one generated ``token``.

    ``logits`` [n_vocab]: the model's raw logits; ``chosen_from`` [n_vocab]: the processed logits
    the token was sampled from (None when it was the argmax: ``sampled_prob`` is then 1.0);
    ``top_k`` alternatives, most likely first; ``tokenizer`` (or None) names the tokens.
    """
    probs = probabilities(logits)  # the model's own distribution
    decode = tokenizer.decode if tokenizer is not None else (lambda ids: None)
    sampled_prob = 1.0 if chosen_from is None else float(probabilities(chosen_from)[token])
    return StepTrace(
        step=step,
        token_id=token,
        token_text=decode([token]),
        prob=float(probs[token]),
        sampled_prob=sampled_prob,
        top=[TokenProb(int(i), decode([int(i)]), float(probs[i])) for i in top_k_ids(probs, top_k)],
        cache=cache,
    )


def row_axes(name: str) -> tuple[int, int | None]:
    """For the activation ``name`` with its batch axis dropped: the sequence axis, and the key axis
    (None if it has none), as ``ACTIVATIONS`` lists them.

    >>> row_axes("blocks.0.attn.pattern"), row_axes("blocks.0.resid_post")
    ((1, 2), (0, None))
    """
    names = axes(name)[1:]  # without "batch"
    return names.index("n_seq"), (names.index("n_kv") if "n_kv" in names else None)


def row_cache(cache: ActivationCache, b: int, n_pad: int, n_seq: int, copy: bool) -> ActivationCache:
    """Row ``b`` of a batched activation cache of a call that fed ``n_seq`` positions, with its
    ``n_pad`` positions of left padding cut from the sequence axis and the key axis.

    ``copy``: copy each array (so the trace does not keep the whole batch's arrays alive).
    """
    out = ActivationCache()
    for name, value in cache.items():
        x = value[b]  # drop the batch axis
        seq_axis, key_axis = row_axes(name)
        cut = [slice(None)] * x.ndim
        if n_pad and x.shape[seq_axis] == n_seq and n_seq > 1:  # not the last-position-only logits
            cut[seq_axis] = slice(n_pad, None)
        if n_pad and key_axis is not None:
            cut[key_axis] = slice(n_pad, None)
        x = x[tuple(cut)]
        out[name] = np.array(x) if copy else x
    return out
