"""The steps every decoder shares: prompts as token ids, the end-of-text id, the context check,
the prefill and the one-token decode step.

Generating is: run the model on what it has not seen yet, take the logits of the last position,
turn them into a choice, append the choice, repeat. The first call (``prefill``) feeds the whole
prompt and fills a new KV cache; every later call (``decode_step``) feeds one token per row and
reads the past from the cache, so a step costs the same at token 10 and at token 1000.

Several prompts run as one batch: they are left-padded to the longest (``left_pad``), so every
row's next token sits in the last column, and the attention mask keeps padding out of attention
and out of the position count.

Sampling (``npgpt/generate.py``) and beam search (``npgpt/beam.py``) both build on these; how
the logits become a token is theirs (and ``npgpt/sampling.py``'s).

Leaves out: choosing tokens, stopping rules other than the end-of-text id.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .config import GPT2Config
from .engine import forward
from .errors import InputError
from .kv_cache import KVCache


class Model(Protocol):
    """What generation needs of a model. A ``GPT2`` (``npgpt/gpt2.py``) is one; generation never
    imports the class, which imports generation."""

    config: GPT2Config
    params: dict
    tokenizer: object | None

    def new_kv_cache(self, batch: int = 1, capacity: int | None = None) -> KVCache: ...


def _is_int_sequence(x) -> bool:
    if isinstance(x, np.ndarray):
        return x.ndim == 1 and (x.dtype.kind in "iu" or x.size == 0)
    return isinstance(x, (list, tuple)) and all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in x)


def token_ids(model: Model, text_or_ids, what: str) -> list[int]:
    """A text (encoded with the model's tokenizer, ``<|endoftext|>`` allowed) or token ids, as ids."""
    if isinstance(text_or_ids, str):
        if model.tokenizer is None:
            raise InputError(
                "this model has no tokenizer, so text cannot be encoded; pass token ids "
                "(e.g. model.generate([464, 2068])), or set model.tokenizer = npgpt.Tokenizer.from_folder(...)"
            )
        return model.tokenizer.encode(text_or_ids, allowed_special="all")
    if _is_int_sequence(text_or_ids):
        return [int(i) for i in text_or_ids]
    raise InputError(f"{what} must be a string or a list of token ids, got {type(text_or_ids).__name__}")


def end_of_text_id(model: Model, eos_token_id: int | None = None, ignore_eos: bool = False) -> int | None:
    """The id that ends a row: ``eos_token_id`` if given, else ``<|endoftext|>``
    (``config.eot_id``) for a model with a tokenizer; None (nothing ends a row early) with
    ``ignore_eos``, or for a model without a tokenizer, whose ids have no text to end."""
    if ignore_eos:
        return None
    if eos_token_id is not None:
        return eos_token_id
    return model.config.eot_id if model.tokenizer is not None else None


def encode_prompts(model: Model, prompt_or_prompts) -> tuple[list[list[int]], bool]:
    """Token ids of each prompt, and whether a single prompt was given.

    A prompt is a str (needs ``model.tokenizer``) or a sequence of token ids; several prompts are
    a list of those (or a 2-D array of ids). ``<|endoftext|>`` written in a text prompt is the
    special token. An empty prompt starts from ``<|endoftext|>``, as GPT-2's unconditional samples
    do.
    """
    p = prompt_or_prompts
    if isinstance(p, str) or _is_int_sequence(p):
        prompts, single = [p], True
    elif isinstance(p, np.ndarray) and p.ndim == 2:
        prompts, single = list(p), False
    elif isinstance(p, (list, tuple)) and p:
        prompts, single = list(p), False
    else:
        raise InputError(
            f"a prompt must be a string, a list of token ids, or a list of those; got {type(p).__name__}"
            + (" (empty)" if isinstance(p, (list, tuple)) else "")
        )
    out = []
    for prompt in prompts:
        ids = token_ids(model, prompt, "each prompt")
        if not ids:
            if model.tokenizer is None:
                raise InputError("empty prompt: give at least one token (a model with a tokenizer starts from <|endoftext|>)")
            ids = [model.config.eot_id]
        model.config.check_ids(ids)
        out.append(ids)
    return out, single


def check_context(n_prompt: int, max_new_tokens: int, n_ctx: int, remedy: str) -> None:
    """Refuse a prompt that cannot take ``max_new_tokens`` more tokens within the context.

    The last new token is chosen but never fed back in, so the model sees at most
    ``n_prompt + max_new_tokens - 1`` positions: a prompt of exactly n_ctx tokens may get one more.
    """
    if n_prompt > n_ctx or n_prompt + max(max_new_tokens, 1) - 1 > n_ctx:
        raise InputError(
            f"the prompt ({n_prompt} tokens) plus max_new_tokens ({max_new_tokens}) is longer than the "
            f"model's context (n_ctx={n_ctx}); {remedy}"
        )


def left_pad(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Sequences as one batch aligned on the right: ids [batch, n_seq], mask [batch, n_seq]
    (False on padding), and each row's number of padding positions."""
    n_seq = max(map(len, seqs))
    ids = np.zeros((len(seqs), n_seq), dtype=np.int64)  # pad id 0 is never attended to
    mask = np.zeros((len(seqs), n_seq), dtype=bool)
    for b, seq in enumerate(seqs):
        ids[b, n_seq - len(seq) :] = seq
        mask[b, n_seq - len(seq) :] = True
    return ids, mask, [n_seq - len(seq) for seq in seqs]


def prefill(model: Model, seqs: list[list[int]], room: int | None, *, hooks=None,
            cache: dict | None = None) -> tuple[np.ndarray, KVCache, list[int]]:
    """Encode the sequences into a new KV cache; return the last position's logits [batch, n_vocab]
    (float32), the cache, and each row's padding.

    The cache holds the longest sequence plus ``room`` more positions (None: the whole context).
    ``hooks`` and ``cache`` (a dict that receives every activation) as in ``npgpt.engine.forward``.
    """
    ids, mask, pads = left_pad(seqs)
    n_seq = ids.shape[1]
    capacity = model.config.n_ctx if room is None else n_seq + room
    kv = model.new_kv_cache(batch=len(seqs), capacity=max(capacity, n_seq))
    logits = forward(ids, model.params, model.config, attention_mask=None if mask.all() else mask,
                     kv_cache=kv, last_only=True, hooks=hooks, cache=cache)
    return logits[:, -1], kv, pads  # [batch, n_vocab]


def decode_step(model: Model, tokens, kv: KVCache, *, hooks=None, cache: dict | None = None) -> np.ndarray:
    """Feed one new token per row after what ``kv`` holds; return its logits [batch, n_vocab]."""
    ids = np.asarray(tokens, dtype=np.int64)[:, None]  # [batch, 1]
    return forward(ids, model.params, model.config, kv_cache=kv, hooks=hooks, cache=cache)[:, -1]
