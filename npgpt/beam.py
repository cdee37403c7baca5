"""Beam search: keep the ``num_beams`` most likely continuations at every step.

Each step scores every (beam, next token) pair by the beam's log-probability plus the token's,
and keeps the best ``num_beams`` that do not end in ``<|endoftext|>``; a candidate that does
(ranked within the first ``num_beams``) becomes a finished hypothesis. The beams are the rows of
one batch, reordered each step with ``KVCache.select``; the prefill, the decode step, the
end-of-text id and the context check are ``npgpt/decoding.py``'s, shared with sampling.

Leaves out: sampling inside beam search, diverse / group beam search, ``early_stopping=True``.

Reference: Hugging Face ``transformers``' ``generation/beam_search.py`` (``num_beams`` search with
``early_stopping=False``), which the tests compare with token for token.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .decoding import Model, check_context, decode_step, encode_prompts, end_of_text_id, prefill
from .errors import InputError
from .model import log_softmax
from .sampling import top_k_ids



@dataclass
class Beam:
    """A finished hypothesis of beam search."""

    ids: list[int]  # generated ids (ending with <|endoftext|> if it finished there)
    text: str | None
    sum_logprob: float  # log P(ids | prompt) under the model
    score: float  # sum_logprob / len(ids) ** length_penalty: what the beams are ranked by


def _check_settings(num_beams, num_return, max_new_tokens) -> None:
    if not isinstance(num_beams, int) or num_beams < 1:
        raise InputError(f"num_beams must be an integer >= 1, got {num_beams!r}")
    if not isinstance(num_return, int) or not 1 <= num_return <= num_beams:
        raise InputError(f"num_return must be between 1 and num_beams={num_beams}, got {num_return!r}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")


def _expand(beams: list[list[int]], beam_logprobs: np.ndarray, logits: np.ndarray, num_beams: int, eos: int | None):
    """One step: the ``num_beams`` best continuations that go on, and the ones that end here.

    ``logits`` [num_beams, n_vocab] are the beams' next-token logits. Returns the new beams, the
    beam each came from (to reorder the KV cache), their log-probabilities, and the finished
    (ids, sum_logprob) pairs: candidates ending in ``eos`` among the first ``num_beams``.
    """
    candidates = (beam_logprobs[:, None] + log_softmax(logits)).ravel()  # [num_beams * n_vocab]
    n_vocab = logits.shape[-1]
    going, origins, logprobs, ended = [], [], [], []
    for rank, flat_index in enumerate(top_k_ids(candidates, 2 * num_beams)):  # best first
        origin, token = divmod(int(flat_index), n_vocab)
        logprob = candidates[flat_index]
        if not np.isfinite(logprob):
            break
        if token == eos:
            if rank < num_beams:
                ended.append((beams[origin] + [token], logprob))
            continue
        going.append(beams[origin] + [token])
        origins.append(origin)
        logprobs.append(logprob)
        if len(going) == num_beams:
            break
    return going, origins, np.array(logprobs), ended


def _no_better_to_come(beams, beam_logprobs, finished: list[Beam], num_beams: int, length_penalty: float) -> bool:
    """transformers' ``early_stopping=False`` rule: ``num_beams`` hypotheses are finished and the
    best running beam already scores below all of them."""
    if not beams or len(finished) < num_beams:
        return False
    best_running = beam_logprobs[0] / len(beams[0]) ** length_penalty
    return best_running < sorted(b.score for b in finished)[-num_beams]


def beam_search(
    model: Model,
    prompt,
    *,
    num_beams: int = 4,
    max_new_tokens: int = 50,
    length_penalty: float = 1.0,
    num_return: int = 1,
    eos_token_id: int | None = None,
    ignore_eos: bool = False,
) -> list[Beam]:
    """Beam search from one prompt of a GPT2; returns the best ``num_return`` hypotheses, best first.

    Deterministic (no sampling, no temperature). A finished hypothesis is scored
    ``sum_logprob / len(ids) ** length_penalty`` (> 0 favours longer ones). The search ends at
    ``max_new_tokens`` (the running beams then finish too) or when no running beam can beat the
    finished ones (``_no_better_to_come``). Without an end-of-text token it is transformers'
    ``num_beams`` greedy search.
    """
    _check_settings(num_beams, num_return, max_new_tokens)
    prompts, single = encode_prompts(model, prompt)
    if not single:
        raise InputError("beam_search takes one prompt")
    check_context(len(prompts[0]), max_new_tokens, model.config.n_ctx, "lower max_new_tokens or shorten the prompt")
    eos = end_of_text_id(model, eos_token_id, ignore_eos)
    tokenizer = model.tokenizer

    def finish(ids, sum_logprob) -> Beam:
        text = tokenizer.decode([i for i in ids if i != eos]) if tokenizer is not None else None
        return Beam(list(ids), text, float(sum_logprob), float(sum_logprob) / len(ids) ** length_penalty)

    logits, kv, _ = prefill(model, prompts, room=max_new_tokens - 1)  # [1, n_vocab]
    kv = kv.select([0] * num_beams)
    logits = np.repeat(logits, num_beams, axis=0)  # [num_beams, n_vocab]
    beams: list[list[int]] = [[] for _ in range(num_beams)]
    beam_logprobs = np.full(num_beams, -np.inf)
    beam_logprobs[0] = 0.0  # at the start the beams are copies: let only the first one expand
    finished: list[Beam] = []
    for step in range(max_new_tokens):
        beams, origins, beam_logprobs, ended = _expand(beams, beam_logprobs, logits, num_beams, eos)
        finished += [finish(ids, logprob) for ids, logprob in ended]
        done = _no_better_to_come(beams, beam_logprobs, finished, num_beams, length_penalty)
        if step == max_new_tokens - 1 or done or not beams:
            break
        kv = kv.select(origins)
        logits = decode_step(model, [b[-1] for b in beams], kv)  # [num_beams, n_vocab]
    finished += [finish(b, lp) for b, lp in zip(beams, beam_logprobs)] if not done else []
    finished.sort(key=lambda b: -b.score)
    return finished[:num_return]
