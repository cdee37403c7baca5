"""Scoring text: the log-probability of every token given the ones before it, and the perplexity.

One forward pass over a text gives, at every position t, the distribution of token t + 1; the
log-probability of the token that actually follows is its score. A text longer than the window is
read in overlapping windows (strided, as in Hugging Face's perplexity guide), so every token is
scored once and, after the first window, with at least ``window - stride`` tokens of context.

Leaves out: bits per byte, scoring several texts as one batch.

Reference: Hugging Face ``transformers``' perplexity guide ("Perplexity of fixed-length models").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .decoding import Model, token_ids
from .errors import InputError
from .engine import forward
from .model import log_softmax



@dataclass
class TextScore:
    """Per-token log-probabilities of a text under a model, and its perplexity."""

    ids: list[int]
    tokens: list[str] | None  # each token's text (None without a tokenizer)
    logprobs: list[float | None]  # natural log P(token | the tokens before it); None where not scored
    window: int
    stride: int

    @property
    def n_scored(self) -> int:
        return sum(lp is not None for lp in self.logprobs)

    @property
    def mean_nll(self) -> float:
        """Mean negative log-likelihood per scored token, in nats."""
        scored = [lp for lp in self.logprobs if lp is not None]
        return -sum(scored) / len(scored) if scored else float("nan")

    @property
    def perplexity(self) -> float:
        """exp(mean negative log-likelihood): the model is as unsure as a uniform choice among this many."""
        return math.exp(self.mean_nll) if self.n_scored else float("nan")


def _check_window(model: Model, window, stride) -> tuple[int, int]:
    """The window (default n_ctx) and stride (default window // 2), checked."""
    n_ctx = model.config.n_ctx
    window = n_ctx if window is None else window
    if not isinstance(window, int) or not 2 <= window <= n_ctx:
        raise InputError(f"window must be an integer in 2..n_ctx={n_ctx}, got {window!r}")
    stride = max(1, window // 2) if stride is None else stride
    if not isinstance(stride, int) or not 1 <= stride < window:
        raise InputError(f"stride must be an integer in 1..window-1={window - 1} (windows must overlap), got {stride!r}")
    return window, stride


def _windowed_logprobs(model: Model, ids: list[int], window: int, stride: int) -> list[float | None]:
    """log P(ids[t] | ids[:t]) for t >= 1, reading ``ids`` in windows of ``window`` tokens that
    start every ``stride``; each token is scored in the first window where it is new."""
    logprobs: list[float | None] = [None] * len(ids)
    scored_until = 1  # tokens before this index are scored (or unscorable: token 0)
    begin = 0
    while scored_until < len(ids):
        end = min(begin + window, len(ids))
        logits = forward(np.array([ids[begin:end]]), model.params, model.config)[0]  # [n_seq, n_vocab]
        # logits at position t predict token t + 1: score tokens scored_until..end-1
        targets = np.arange(scored_until, end)
        for lo in range(0, targets.size, 256):  # float64 log-softmax, a few rows at a time
            chunk = targets[lo : lo + 256]
            chunk_logprobs = log_softmax(logits[chunk - 1 - begin])  # [rows, n_vocab]
            for i, row in zip(chunk, chunk_logprobs):
                logprobs[i] = float(row[ids[i]])
        scored_until = end
        begin += stride
    return logprobs


def score(model: Model, text_or_ids, *, window: int | None = None, stride: int | None = None, prepend_eot: bool = False) -> TextScore:
    """Log-probability of every token of a text given the ones before it, and the perplexity.

    The first token has no context and gets no score, unless ``prepend_eot`` puts
    ``<|endoftext|>`` before the text (GPT-2's start of a document), which then scores every
    token. A text longer than ``window`` (default n_ctx) is read in overlapping windows that start
    every ``stride`` tokens (default window // 2), as in Hugging Face's perplexity guide: each
    token is scored once, in the first window where it is among the new tokens, so every token
    after the first window sees at least ``window - stride`` tokens of context.
    """
    ids = token_ids(model, text_or_ids, "score's text")
    n_text = len(ids)
    if prepend_eot:
        if model.tokenizer is None:
            raise InputError("prepend_eot needs a tokenizer with <|endoftext|>")
        ids = [model.config.eot_id] + ids
    window, stride = _check_window(model, window, stride)
    if len(ids) < 2:
        raise InputError("score needs at least two tokens (the first one has no context), or prepend_eot=True")
    model.config.check_ids(ids)
    logprobs = _windowed_logprobs(model, ids, window, stride)
    if prepend_eot:
        ids, logprobs = ids[1:], logprobs[1:]
    assert len(ids) == n_text
    tokens = model.tokenizer.decode_tokens(ids) if model.tokenizer is not None else None
    return TextScore(ids=ids, tokens=tokens, logprobs=logprobs, window=window, stride=stride)
