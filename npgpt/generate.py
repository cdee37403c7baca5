"""Text generation with the KV cache: greedy, sampling, beam search, streaming, and scoring text.

Generating one token is: run the model on what it has not seen yet, take the logits of the last
position, turn them into a choice, append the choice, repeat. The first call ("prefill") feeds the
whole prompt and fills the KV cache; every later call ("decode") feeds one token per row and reads
the past from the cache, so a step costs the same at token 10 and at token 1000.

How the logits become a token, in the order Hugging Face ``transformers`` applies them:

    logits [n_vocab]
      -> repetition_penalty  tokens already in the row: positive logits / penalty, negative * penalty
      -> apply_temperature   logits / temperature (temperature=0 means greedy: argmax, no sampling)
      -> top_k_filter        keep the k largest logits, -inf elsewhere
      -> top_p_filter        keep the smallest set of tokens whose probabilities add up to >= p
      -> min_p_filter        keep tokens with probability >= min_p * (the top token's probability)
      -> sample              draw from softmax(logits) with an explicit np.random.Generator

Each step is a small pure function on a logits array with a worked example in its docstring; none
changes its input. Randomness only comes from ``np.random.Generator`` objects: ``seed`` (an int
or a Generator) is split into one independent generator per output row (``Generator.spawn``), so a
row's sample does not depend on which other rows share the batch.

Entry points (``model.generate`` and ``model.stream`` call the first two):

    generate(model, prompt_or_prompts, **settings)  -> str | list[str] | list[list[str]]
    stream(model, prompt, **settings)               -> TextStream, an iterator of text pieces
    generate_ids(model, prompt_or_prompts, **settings) -> GenerationResult (ids, text, traces, timing)
    beam_search(model, prompt, num_beams=4, ...)    -> list[Beam], best first
    score(model, text_or_ids, ...)                  -> TextScore (per-token log-probs, perplexity)

The settings are the fields of ``GenerationSettings`` (its docstring lists them).

Several prompts (and ``num_samples`` samples of each) run as one batch: prompts are left-padded to
the longest, so every row's next token sits in the last column, and ``attention_mask`` keeps
padding out of attention and out of the position count. A row that finishes (``<|endoftext|>``, a
stop string, ``max_new_tokens``) leaves the batch (``KVCache.select``).

The context limit: a prompt plus ``max_new_tokens`` longer than the model's ``n_ctx`` (1024) is an
``InputError`` by default. With ``sliding_window=True`` generation goes on past it: when the
context is full, the oldest tokens are dropped so that the last ``3/4 * n_ctx`` remain, their keys
and values are recomputed in one prefill, and decoding carries on; so every token is chosen seeing
between 3/4 * n_ctx and n_ctx earlier tokens. (A window that slid by one token per step would
need a full prefill per token, because GPT-2's learned positions shift with the window.)

Leaves out: speculative decoding, constrained decoding (grammars, banned words), typical/eta
sampling, contrastive search, and sampling inside beam search.

References: Holtzman et al. 2019 (nucleus / top-p sampling), Keskar et al. 2019 (CTRL:
repetition penalty), Nguyen et al. 2024 (min-p), Hugging Face ``transformers``'
``generation/logits_process.py`` (whose semantics these functions follow) and its perplexity guide
(strided windows, used by ``score``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields
from typing import Iterator, Mapping

import numpy as np

from .errors import InputError
from .activations import ActivationCache
from .forward import forward as gpt2
from .model import log_softmax

Logits = np.ndarray  # [n_vocab] or [batch, n_vocab]


# ---- sampling helpers: pure functions on logits --------------------------------------------------


def probabilities(logits: np.ndarray) -> np.ndarray:
    """softmax(logits) along the last axis, in float64: the distribution a token is drawn from.

    >>> probabilities(np.array([0.0, np.log(3.0), -np.inf]))
    array([0.25, 0.75, 0.  ])
    """
    return np.exp(log_softmax(logits))


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
    probabilities add up to at least ``p``; always at least the top token.

    Probabilities of [3, 2, 1, 0] (logits = their logs) are 0.5, 0.333, 0.167, 0: with p=0.6 the
    top two add up to 0.833 >= 0.6 and the top one alone (0.5) does not, so two are kept.

    >>> top_p_filter(np.log([3.0, 2.0, 1.0, 1e-9]), 0.6).round(3)
    array([1.099, 0.693,  -inf,  -inf])
    """
    if not 0 < p <= 1:
        raise InputError(f"top_p must be in (0, 1], got {p}")
    logits = np.asarray(logits)
    if p == 1:
        return logits.copy()
    order = np.argsort(-logits, axis=-1, kind="stable")  # most likely first
    sorted_probs = np.take_along_axis(probabilities(logits), order, axis=-1)
    mass_before = np.cumsum(sorted_probs, axis=-1) - sorted_probs  # probability of the tokens ranked above
    keep_sorted = mass_before < p  # the first token has mass_before = 0 < p: always kept
    keep = np.empty_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=-1)
    return np.where(keep, logits, -np.inf)


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


# ---- settings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationSettings:
    """Every setting of ``generate``, ``generate_ids`` and ``stream``, checked once here.

    ==================  ==========  =====================================================================
    setting             default     meaning
    ==================  ==========  =====================================================================
    max_new_tokens      50          most tokens to generate per row
    temperature         1.0         logits / temperature before sampling; 0 means greedy (argmax, and
                                    top_k / top_p / min_p are then ignored)
    top_k               None        keep the k most likely tokens (None or 0: no filter)
    top_p               None        nucleus: keep the fewest tokens with total probability >= top_p,
                                    in (0, 1] (None or 1: no filter)
    min_p               None        keep tokens with probability >= min_p * top probability, in [0, 1]
    repetition_penalty  1.0         > 0; > 1 discourages tokens already in the prompt or output (CTRL)
    num_samples         1           samples per prompt (they run as rows of one batch)
    seed                None        int or np.random.Generator; None draws fresh OS entropy
    stop                ()          strings that end a row's output; the text stops before the first
                                    one (which is not included), its ids include the token that
                                    completed it
    eos_token_id        None        the end-of-text id; None: the tokenizer's ``<|endoftext|>`` (none
                                    without a tokenizer)
    ignore_eos          False       keep going after ``<|endoftext|>`` (until max_new_tokens or a stop)
    sliding_window      False       go past the context length by dropping the oldest tokens (see the
                                    module docstring); False: prompt + max_new_tokens > n_ctx raises
    trace               False       record a ``StepTrace`` per generated token (probability, top
                                    alternatives)
    trace_top_k         5           alternatives per trace step
    trace_cache         False       also keep each step's ``ActivationCache`` in the trace (memory:
                                    every activation of every step)
    hooks               None        ``{activation name: fn}`` applied at every forward pass, as in
                                    ``model.logits(..., hooks=...)`` (e.g. generate with a head ablated)
    ==================  ==========  =====================================================================
    """

    max_new_tokens: int = 50
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float = 1.0
    num_samples: int = 1
    seed: int | np.random.Generator | None = None
    stop: tuple[str, ...] = ()
    eos_token_id: int | None = None
    ignore_eos: bool = False
    sliding_window: bool = False
    trace: bool = False
    trace_top_k: int = 5
    trace_cache: bool = False
    hooks: Mapping | None = None

    def __post_init__(self):
        def is_int(x):
            return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

        def is_real(x):
            return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)

        if not is_int(self.max_new_tokens) or self.max_new_tokens < 0:
            raise InputError(f"max_new_tokens must be an integer >= 0, got {self.max_new_tokens!r}")
        if not is_real(self.temperature) or self.temperature < 0:
            raise InputError(
                f"temperature must be a number >= 0 (0 = greedy, 1 = the model's own distribution), got {self.temperature!r}"
            )
        if self.top_k is not None and (not is_int(self.top_k) or self.top_k < 0):
            raise InputError(f"top_k must be a positive integer (or 0 / None for no top-k filter), got {self.top_k!r}")
        if self.top_p is not None and (not is_real(self.top_p) or not 0 < self.top_p <= 1):
            raise InputError(f"top_p must be in (0, 1] (1 or None: no nucleus filter), got {self.top_p!r}")
        if self.min_p is not None and (not is_real(self.min_p) or not 0 <= self.min_p <= 1):
            raise InputError(f"min_p must be in [0, 1] (0 or None: no min-p filter), got {self.min_p!r}")
        if not is_real(self.repetition_penalty) or self.repetition_penalty <= 0:
            raise InputError(f"repetition_penalty must be a number > 0 (1.0 = no penalty), got {self.repetition_penalty!r}")
        if not is_int(self.num_samples) or self.num_samples < 1:
            raise InputError(f"num_samples must be an integer >= 1, got {self.num_samples!r}")
        if not (self.seed is None or isinstance(self.seed, np.random.Generator) or (is_int(self.seed) and self.seed >= 0)):
            raise InputError(f"seed must be a non-negative integer, an np.random.Generator or None, got {self.seed!r}")
        stop = (self.stop,) if isinstance(self.stop, str) else self.stop
        try:
            stop = tuple(stop or ())
        except TypeError:
            raise InputError(f"stop must be a string or a list of strings, got {self.stop!r}") from None
        if not all(isinstance(s, str) and s for s in stop):
            raise InputError(f"stop strings must be non-empty strings, got {list(stop)!r}")
        object.__setattr__(self, "stop", stop)
        if self.eos_token_id is not None and (not is_int(self.eos_token_id) or self.eos_token_id < 0):
            raise InputError(f"eos_token_id must be a token id or None, got {self.eos_token_id!r}")
        for name in ("ignore_eos", "sliding_window", "trace", "trace_cache"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise InputError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not is_int(self.trace_top_k) or self.trace_top_k < 0:
            raise InputError(f"trace_top_k must be an integer >= 0, got {self.trace_top_k!r}")
        if self.hooks is not None and not isinstance(self.hooks, Mapping):
            raise InputError("hooks must be a dict {activation name: function}")

    @classmethod
    def from_kwargs(cls, settings: dict) -> "GenerationSettings":
        """Build from keyword arguments, with a clear error for a misspelt name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise InputError(f"unknown generation setting(s) {', '.join(unknown)}; the settings are: {', '.join(sorted(known))}")
        return cls(**settings)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def process_logits(logits: Logits, s: GenerationSettings, previous_ids) -> Logits:
    """The sampling distribution's logits: repetition penalty, temperature, top-k, top-p, min-p.

    In transformers' order (penalties first, then the "warpers"); float64, input unchanged.
    ``previous_ids`` as in ``repetition_penalty``. For ``temperature=0`` only the penalty applies.
    """
    x = np.asarray(logits, dtype=np.float64)
    if s.repetition_penalty != 1:
        x = repetition_penalty(x, previous_ids, s.repetition_penalty)
    if s.greedy:
        return x
    if s.temperature != 1:
        x = apply_temperature(x, s.temperature)
    if s.top_k:
        x = top_k_filter(x, s.top_k)
    if s.top_p is not None and s.top_p < 1:
        x = top_p_filter(x, s.top_p)
    if s.min_p:
        x = min_p_filter(x, s.min_p)
    return x


# ---- results -----------------------------------------------------------------------------------


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


@dataclass
class Completion:
    """One generated row: a sample of one prompt."""

    prompt_index: int
    sample_index: int
    prompt_ids: list[int]
    ids: list[int]  # generated ids only; ends with <|endoftext|> when finish_reason == "eos"
    text: str | None  # generated text: no prompt, no <|endoftext|>, cut before a stop string; None without tokenizer
    finish_reason: str  # "length" (max_new_tokens), "eos" (<|endoftext|>) or "stop" (a stop string)
    steps: list[StepTrace] = field(default_factory=list)  # one per generated id when trace=True


@dataclass
class GenerationStats:
    """Timing of one generate call (wall clock, seconds)."""

    prompt_tokens: int = 0  # real prompt tokens over all rows
    new_tokens: int = 0  # generated tokens over all rows
    time_to_first_token: float = 0.0  # prefill and choosing the first token(s)
    total_time: float = 0.0

    rows: int = 0  # output rows (prompts x samples)

    @property
    def decode_tokens_per_s(self) -> float:
        """Tokens per second after the first step (each row's first token comes from the prefill)."""
        decoded = self.new_tokens - min(self.new_tokens, self.rows)
        decode_time = self.total_time - self.time_to_first_token
        return decoded / decode_time if decoded and decode_time > 0 else float("nan")

    @property
    def tokens_per_s(self) -> float:
        """All generated tokens over the whole time, prefill included."""
        return self.new_tokens / self.total_time if self.total_time > 0 else float("nan")

    def summary(self) -> str:
        """One line: tokens, speed, time to first token."""
        speed = self.decode_tokens_per_s
        speed = f"{speed:.1f} tok/s, " if math.isfinite(speed) else ""  # one token per row: no decode steps
        return (
            f"{self.new_tokens} tokens in {self.total_time:.2f} s, {speed}"
            f"first token after {self.time_to_first_token:.2f} s ({self.prompt_tokens} prompt tokens)"
        )


@dataclass
class GenerationResult:
    """What ``generate_ids`` returns: one ``Completion`` per row, prompt-major
    (prompt 0's samples, then prompt 1's, ...), and the timing."""

    completions: list[Completion]
    stats: GenerationStats


# ---- prompts -----------------------------------------------------------------------------------


def _is_int_sequence(x) -> bool:
    if isinstance(x, np.ndarray):
        return x.ndim == 1 and (x.dtype.kind in "iu" or x.size == 0)
    return isinstance(x, (list, tuple)) and all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in x)


def _token_ids(model: GPT2, text_or_ids, what: str) -> list[int]:
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


def encode_prompts(model: GPT2, prompt_or_prompts) -> tuple[list[list[int]], bool]:
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
        ids = _token_ids(model, prompt, "each prompt")
        if not ids:
            eot = getattr(model.tokenizer, "eot_id", None)
            if eot is None:
                raise InputError("empty prompt: give at least one token (a model with a tokenizer starts from <|endoftext|>)")
            ids = [eot]
        bad = [i for i in ids if not 0 <= i < model.config.n_vocab]
        if bad:
            raise InputError(f"token id {bad[0]} is outside the vocabulary (0..{model.config.n_vocab - 1})")
        out.append(ids)
    return out, single


# ---- streaming text with stop strings -----------------------------------------------------------


class _TextAssembler:
    """Turn one row's ids into text pieces: whole characters only, and never past a stop string.

    Text that might be the start of a stop string is held back until the next tokens show whether
    it is one, so the concatenated pieces are exactly the final text (the decoded ids cut before
    the first stop string).
    """

    def __init__(self, tokenizer, stop: tuple[str, ...]):
        self.decoder = tokenizer.stream_decoder()
        self.stop = stop
        self.text = ""  # everything decoded so far
        self.emitted = 0  # characters already handed out

    def feed(self, token_id: int) -> tuple[str, bool]:
        """The text piece this token completes, and whether a stop string has appeared."""
        self.text += self.decoder.feed(token_id)
        return self._release(final=False)

    def finish(self) -> str:
        self.text += self.decoder.flush()
        return self._release(final=True)[0]

    def _release(self, final: bool) -> tuple[str, bool]:
        # A stop string cannot start before `emitted`: what was emitted never ends in a stop prefix.
        pending = self.text[self.emitted :]
        hits = [i for i in (pending.find(s) for s in self.stop) if i >= 0]
        if hits:
            piece = pending[: min(hits)]
            self.emitted = len(self.text)
            return piece, True
        hold = 0 if final else self._stop_prefix_length(pending)
        piece = pending[: len(pending) - hold]
        self.emitted += len(piece)
        return piece, False

    def _stop_prefix_length(self, pending: str) -> int:
        """Length of the longest end of ``pending`` that begins some stop string."""
        for n in range(min(len(pending), max((len(s) for s in self.stop), default=1) - 1), 0, -1):
            if any(s.startswith(pending[-n:]) for s in self.stop):
                return n
        return 0


# ---- the decoding loop -------------------------------------------------------------------------


class _Row:
    """The state of one output row while it is being generated."""

    def __init__(self, prompt_ids, prompt_index, sample_index, assembler, rng):
        self.tokens = list(prompt_ids)  # prompt + generated: what the repetition penalty and windows see
        self.start = 0  # the model sees tokens[start:] (moves only with sliding_window)
        self.completion = Completion(prompt_index, sample_index, list(prompt_ids), [], None, "length")
        self.pieces: list[str] = []
        self.assembler = assembler
        self.rng = rng


_HEADS_FIRST = {"attn.q", "attn.k", "attn.v", "attn.z", "attn.scores", "attn.pattern"}  # [n_head, n_seq, ...]
_KEYS_LAST = {"attn.scores", "attn.pattern"}  # [..., n_kv]


def _row_cache(cache: ActivationCache, b: int, n_pad: int, n_seq: int, copy: bool) -> ActivationCache:
    """Row ``b`` of a batched activation cache, with its left padding cut from both sequence axes."""
    out = ActivationCache()
    for name, value in cache.items():
        x = value[b]  # drop the batch axis
        suffix = name.split(".", 2)[2] if name.startswith("blocks.") else name
        seq_axis = 1 if suffix in _HEADS_FIRST else 0
        if n_pad and x.shape[seq_axis] == n_seq and n_seq > 1:  # not the last-position-only logits
            x = np.take(x, np.arange(n_pad, n_seq), axis=seq_axis)
        if n_pad and suffix in _KEYS_LAST:
            x = x[..., n_pad:]
        out[name] = np.array(x) if copy else x
    return out


class _Engine:
    """Runs one generation; iterating yields (row index, text piece) as pieces become final."""

    def __init__(self, model: GPT2, prompt_or_prompts, settings: dict):
        self.model = model
        self.s = s = GenerationSettings.from_kwargs(settings)
        prompts, self.single = encode_prompts(model, prompt_or_prompts)
        self.n_prompts = len(prompts)
        n_ctx = model.config.n_ctx
        tokenizer = model.tokenizer
        if s.stop and tokenizer is None:
            raise InputError("stop strings need a tokenizer to decode the output; this model has none")
        longest = max(map(len, prompts))
        if not s.sliding_window and longest + s.max_new_tokens > n_ctx:
            raise InputError(
                f"the prompt ({longest} tokens) plus max_new_tokens ({s.max_new_tokens}) is longer than the "
                f"model's context (n_ctx={n_ctx}); lower max_new_tokens, shorten the prompt, or pass "
                "sliding_window=True (CLI: --sliding-window) to drop the oldest tokens as it goes"
            )
        self.eos = None if s.ignore_eos else (s.eos_token_id if s.eos_token_id is not None else getattr(tokenizer, "eot_id", None))
        n_rows = len(prompts) * s.num_samples
        rngs = [None] * n_rows
        if not s.greedy:
            rngs = _row_generators(s.seed, n_rows)
        self.rows = [
            _Row(p, i, j, _TextAssembler(tokenizer, s.stop) if tokenizer is not None else None, rngs[i * s.num_samples + j])
            for i, p in enumerate(prompts)
            for j in range(s.num_samples)
        ]
        self.keep = max(1, n_ctx * 3 // 4)  # tokens a sliding window keeps when it moves
        self.stats = GenerationStats(prompt_tokens=sum(len(r.tokens) for r in self.rows), rows=n_rows)
        self.done = False

    def result(self) -> GenerationResult:
        if not self.done:
            raise RuntimeError("generation has not finished: iterate the stream to its end first")
        return GenerationResult([r.completion for r in self.rows], self.stats)

    # -- forward passes --

    def _forward(self, ids, attention_mask, kv, *, prefill):
        """Last-position logits [batch, n_vocab] (float32), and the activation cache if traced."""
        cache = ActivationCache() if self.s.trace_cache else None
        logits = gpt2(
            ids, self.model.params, self.model.config, attention_mask=attention_mask, kv_cache=kv,
            hooks=self.s.hooks, cache=cache, last_only=prefill,
        )
        return logits[:, -1], cache  # [batch, n_vocab]

    def _prefill(self, active: list[int]):
        """Left-pad the active rows' contexts, encode them into a new KV cache, return the last logits."""
        n_ctx = self.model.config.n_ctx
        seqs = []
        for r in active:
            row = self.rows[r]
            if len(row.tokens) - row.start > n_ctx:  # only with sliding_window: move this row's window
                row.start = len(row.tokens) - self.keep
            seqs.append(row.tokens[row.start :])
        n_seq = max(map(len, seqs))
        ids = np.zeros((len(seqs), n_seq), dtype=np.int64)  # [batch, n_seq]; pad id 0 is never attended to
        mask = np.zeros((len(seqs), n_seq), dtype=bool)
        for b, seq in enumerate(seqs):
            ids[b, n_seq - len(seq) :] = seq
            mask[b, n_seq - len(seq) :] = True
        capacity = n_ctx if self.s.sliding_window else n_seq + max(self.s.max_new_tokens - 1, 0)
        kv = self.model.new_kv_cache(batch=len(seqs), capacity=max(capacity, n_seq))
        logits, cache = self._forward(ids, None if mask.all() else mask, kv, prefill=True)
        pads = [n_seq - len(seq) for seq in seqs]
        return logits, kv, pads, cache, n_seq

    # -- the loop --

    def __iter__(self) -> Iterator[tuple[int, str]]:
        s, stats = self.s, self.stats
        start = time.perf_counter()
        active = list(range(len(self.rows)))
        if s.max_new_tokens == 0:
            active = []
        else:
            logits, kv, pads, cache, n_seq = self._prefill(active)
        step = 0
        while active:
            chosen, sampled = self._choose(logits, active)
            still = []
            for b, r in enumerate(active):
                row, token = self.rows[r], int(chosen[b])
                c = row.completion
                if s.trace:
                    c.steps.append(self._trace(step, token, logits[b], sampled, b, cache, pads[b], n_seq, len(active) > 1))
                row.tokens.append(token)
                c.ids.append(token)
                stats.new_tokens += 1
                if token == self.eos:
                    c.finish_reason = "eos"
                elif row.assembler is not None:
                    piece, stopped = row.assembler.feed(token)
                    if piece:
                        row.pieces.append(piece)
                        yield r, piece
                    if stopped:
                        c.finish_reason = "stop"
                        c.text = "".join(row.pieces)
                        continue
                if c.finish_reason == "eos" or len(c.ids) == s.max_new_tokens:
                    if row.assembler is not None:
                        piece = row.assembler.finish()
                        if piece:
                            row.pieces.append(piece)
                            yield r, piece
                        c.text = "".join(row.pieces)
                    continue
                still.append(b)
            if step == 0:
                stats.time_to_first_token = time.perf_counter() - start
            step += 1
            if len(still) < len(active):  # finished rows leave the batch
                active = [active[b] for b in still]
                if not active:
                    break
                kv, pads = kv.select(still), [pads[b] for b in still]
            if kv.length + 1 > kv.capacity:  # only with sliding_window: move the window
                logits, kv, pads, cache, n_seq = self._prefill(active)
                continue
            ids = np.array([[self.rows[r].tokens[-1]] for r in active], dtype=np.int64)  # [batch, 1]
            logits, cache = self._forward(ids, None, kv, prefill=False)
            n_seq = 1
        for row in self.rows:  # max_new_tokens=0
            if row.completion.text is None and row.assembler is not None:
                row.completion.text = "".join(row.pieces)
        stats.total_time = time.perf_counter() - start
        self.done = True

    def _choose(self, logits: np.ndarray, active: list[int]):
        """The next token of each active row, and the logits it was chosen from."""
        s = self.s
        if s.greedy and s.repetition_penalty == 1:
            return np.argmax(logits, axis=-1), logits
        x = process_logits(logits, s, [self.rows[r].tokens for r in active])  # [batch, n_vocab] float64
        if s.greedy:
            return np.argmax(x, axis=-1), x
        return [sample(x[b], self.rows[r].rng) for b, r in enumerate(active)], x

    def _trace(self, step, token, logits, sampled, b, cache, n_pad, n_seq, batched) -> StepTrace:
        probs = probabilities(logits)  # the model's own distribution
        k = min(self.s.trace_top_k, probs.size)
        top_ids = np.argpartition(-probs, k - 1)[:k] if k else np.array([], dtype=np.int64)
        top_ids = top_ids[np.argsort(-probs[top_ids], kind="stable")]
        decode = self.model.tokenizer.decode if self.model.tokenizer is not None else (lambda ids: None)
        if self.s.greedy:
            sampled_prob = 1.0
        else:
            sampled_prob = float(probabilities(sampled[b])[token])
        return StepTrace(
            step=step,
            token_id=token,
            token_text=decode([token]),
            prob=float(probs[token]),
            sampled_prob=sampled_prob,
            top=[TokenProb(int(i), decode([int(i)]), float(probs[i])) for i in top_ids],
            cache=_row_cache(cache, b, n_pad, n_seq, copy=batched) if cache is not None else None,
        )


def _row_generators(seed, n_rows: int) -> list[np.random.Generator]:
    """One independent generator per row, derived from ``seed`` (an int, a Generator or None)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    try:
        return rng.spawn(n_rows)
    except (TypeError, AttributeError):  # a Generator built without a SeedSequence cannot spawn
        return [np.random.default_rng(s) for s in rng.integers(0, 2**63, size=n_rows)]


# ---- entry points ------------------------------------------------------------------------------


def generate_ids(model: GPT2, prompt_or_prompts, **settings) -> GenerationResult:
    """Generate and return everything: ids, text, finish reasons, traces and timing.

    Takes the same prompts and settings as ``generate``. The completions are prompt-major: with
    P prompts and S = num_samples, ``result.completions[i * S + j]`` is sample j of prompt i.
    Works without a tokenizer when the prompts are token ids (``text`` is then None).
    """
    engine = _Engine(model, prompt_or_prompts, settings)
    for _ in engine:
        pass
    return engine.result()


def generate(model: GPT2, prompt_or_prompts, **settings):
    """Generate text after each prompt; the prompt itself is not repeated in the output.

    ``prompt_or_prompts``: a string or a list of token ids (one prompt), or a list of those
    (several prompts, run as one left-padded batch). The settings are ``GenerationSettings``'s
    fields: ``max_new_tokens=50, temperature=1.0, top_k=None, top_p=None, min_p=None,
    repetition_penalty=1.0, num_samples=1, seed=None, stop=(), ...``; ``temperature=0`` is greedy.

    Returns, for one prompt: a ``str`` when ``num_samples == 1``, else a ``list[str]`` of the
    samples. For several prompts: a list with one entry per prompt, each a ``str``
    (``num_samples == 1``) or a ``list[str]`` of its samples. The text ends before
    ``<|endoftext|>`` or a stop string. Needs ``model.tokenizer``; ``generate_ids`` returns ids
    without one.

    >>> model.generate("Once upon a time", max_new_tokens=20, temperature=0.8, top_p=0.95, seed=0)  # doctest: +SKIP
    ' there was a little girl who ...'
    """
    if model.tokenizer is None:
        raise InputError(
            "this model has no tokenizer, so its output cannot be turned into text; call "
            "npgpt.generate.generate_ids(model, ids, ...) for token ids, or set model.tokenizer"
        )
    engine = _Engine(model, prompt_or_prompts, settings)
    for _ in engine:
        pass
    texts = [c.text for c in engine.result().completions]
    n = engine.s.num_samples
    per_prompt = [texts[i : i + n] if n > 1 else texts[i] for i in range(0, len(texts), n)]
    return per_prompt[0] if engine.single else per_prompt


class TextStream:
    """An iterator of text pieces, each made of whole characters, as ``stream`` generates them.

    ``"".join(stream)`` equals ``generate(...)`` with the same settings. After the iterator is
    exhausted, ``.result`` holds the ``GenerationResult`` (ids, finish reason, traces, timing).
    """

    def __init__(self, engine: _Engine):
        self._engine = engine
        self._pieces = (piece for _, piece in engine)

    def __iter__(self) -> "TextStream":
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    @property
    def result(self) -> GenerationResult:
        return self._engine.result()


def stream(model: GPT2, prompt, **settings) -> TextStream:
    """Generate text after one prompt, yielding pieces as soon as they are whole characters.

    Same settings as ``generate``; one prompt and one sample only. A character split over several
    tokens (an emoji, CJK) comes out once all its bytes are there; text that could be the start of
    a stop string is held back until it is clear it is not. Settings are checked (and the prompt
    encoded) at the call, before the first piece is asked for.

    >>> for piece in model.stream("Once upon a time", max_new_tokens=20, seed=0):  # doctest: +SKIP
    ...     print(piece, end="", flush=True)
    """
    if model.tokenizer is None:
        raise InputError("streaming text needs a tokenizer; this model has none (use generate_ids with token ids)")
    engine = _Engine(model, prompt, settings)
    if not engine.single or engine.s.num_samples != 1:
        raise InputError("stream takes one prompt and num_samples=1; use generate for several prompts or samples")
    return TextStream(engine)


# ---- beam search -------------------------------------------------------------------------------


@dataclass
class Beam:
    """A finished hypothesis of beam search."""

    ids: list[int]  # generated ids (ending with <|endoftext|> if it finished there)
    text: str | None
    sum_logprob: float  # log P(ids | prompt) under the model
    score: float  # sum_logprob / len(ids) ** length_penalty: what the beams are ranked by


def beam_search(
    model: GPT2,
    prompt,
    *,
    num_beams: int = 4,
    max_new_tokens: int = 50,
    length_penalty: float = 1.0,
    num_return: int = 1,
    eos_token_id: int | None = None,
    ignore_eos: bool = False,
) -> list[Beam]:
    """Beam search: keep the ``num_beams`` most likely continuations at every step.

    Deterministic (no sampling, no temperature). Each step scores every (beam, next token) pair by
    the beam's log-probability plus the token's, and keeps the best ``num_beams`` that do not end
    in ``<|endoftext|>``; a candidate that does (ranked within the first ``num_beams``) becomes a
    finished hypothesis scored ``sum_logprob / len(ids) ** length_penalty`` (> 0 favours longer
    ones). The search ends at ``max_new_tokens`` (the running beams then finish too) or when
    ``num_beams`` hypotheses are finished and the best running beam's score is below all of them
    (transformers' ``early_stopping=False`` rule). Returns the best ``num_return`` hypotheses,
    best first. Without an end-of-text token it is transformers' ``num_beams`` greedy search.
    The beams are rows of one batch, reordered each step with ``KVCache.select``.
    """
    if not isinstance(num_beams, int) or num_beams < 1:
        raise InputError(f"num_beams must be an integer >= 1, got {num_beams!r}")
    if not isinstance(num_return, int) or not 1 <= num_return <= num_beams:
        raise InputError(f"num_return must be between 1 and num_beams={num_beams}, got {num_return!r}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    prompts, single = encode_prompts(model, prompt)
    if not single:
        raise InputError("beam_search takes one prompt")
    prompt_ids = prompts[0]
    n_ctx = model.config.n_ctx
    if len(prompt_ids) + max_new_tokens > n_ctx:
        raise InputError(
            f"the prompt ({len(prompt_ids)} tokens) plus max_new_tokens ({max_new_tokens}) is longer than the "
            f"model's context (n_ctx={n_ctx}); lower max_new_tokens or shorten the prompt"
        )
    tokenizer = model.tokenizer
    eos = None if ignore_eos else (eos_token_id if eos_token_id is not None else getattr(tokenizer, "eot_id", None))

    def finish(ids, sum_logprob):
        text = tokenizer.decode([i for i in ids if i != eos]) if tokenizer is not None else None
        return Beam(list(ids), text, float(sum_logprob), float(sum_logprob) / len(ids) ** length_penalty)

    kv = model.new_kv_cache(batch=1, capacity=len(prompt_ids) + max_new_tokens - 1 or 1)
    logits = gpt2(np.array([prompt_ids]), model.params, model.config, kv_cache=kv, last_only=True)[:, -1]
    kv = kv.select([0] * num_beams)
    beams: list[list[int]] = [[] for _ in range(num_beams)]
    beam_logprobs = np.full(num_beams, -np.inf)
    beam_logprobs[0] = 0.0  # at the start the beams are copies: let only the first one expand
    logits = np.repeat(logits, num_beams, axis=0)  # [num_beams, n_vocab]
    finished: list[Beam] = []
    n_vocab = logits.shape[-1]
    for step in range(max_new_tokens):
        candidates = beam_logprobs[:, None] + log_softmax(logits)  # [num_beams, n_vocab]
        flat = candidates.ravel()
        n_cand = min(2 * num_beams, flat.size)
        best = np.argpartition(-flat, n_cand - 1)[:n_cand]
        best = best[np.argsort(-flat[best], kind="stable")]  # best first
        next_beams, next_from, next_logprobs = [], [], []
        for rank, flat_index in enumerate(best):
            origin, token = divmod(int(flat_index), n_vocab)
            if not np.isfinite(flat[flat_index]):
                break
            if token == eos:
                if rank < num_beams:
                    finished.append(finish(beams[origin] + [token], flat[flat_index]))
                continue
            next_beams.append(beams[origin] + [token])
            next_from.append(origin)
            next_logprobs.append(flat[flat_index])
            if len(next_beams) == num_beams:
                break
        beams, beam_logprobs = next_beams, np.array(next_logprobs)
        done = bool(beams) and len(finished) >= num_beams and (
            beam_logprobs[0] / len(beams[0]) ** length_penalty < sorted(b.score for b in finished)[-num_beams]
        )
        if step == max_new_tokens - 1 or done or not beams:
            break
        kv = kv.select(next_from)
        ids = np.array([[b[-1]] for b in beams], dtype=np.int64)
        logits = gpt2(ids, model.params, model.config, kv_cache=kv)[:, -1]  # [num_beams, n_vocab]
    finished += [finish(b, lp) for b, lp in zip(beams, beam_logprobs)] if not done else []
    finished.sort(key=lambda b: -b.score)
    return finished[:num_return]


# ---- scoring text ------------------------------------------------------------------------------


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


def score(model: GPT2, text_or_ids, *, window: int | None = None, stride: int | None = None, prepend_eot: bool = False) -> TextScore:
    """Log-probability of every token of a text given the ones before it, and the perplexity.

    The first token has no context and gets no score, unless ``prepend_eot`` puts
    ``<|endoftext|>`` before the text (GPT-2's start of a document), which then scores every
    token. A text longer than ``window`` (default n_ctx) is read in overlapping windows that start
    every ``stride`` tokens (default window // 2), as in Hugging Face's perplexity guide: each
    token is scored once, in the first window where it is among the new tokens, so every token
    after the first window sees at least ``window - stride`` tokens of context.
    """
    ids = _token_ids(model, text_or_ids, "score's text")
    n_text = len(ids)
    if prepend_eot:
        eot = getattr(model.tokenizer, "eot_id", None)
        if eot is None:
            raise InputError("prepend_eot needs a tokenizer with <|endoftext|>")
        ids = [eot] + ids
    window = model.config.n_ctx if window is None else window
    if not isinstance(window, int) or not 2 <= window <= model.config.n_ctx:
        raise InputError(f"window must be an integer in 2..n_ctx={model.config.n_ctx}, got {window!r}")
    stride = max(1, window // 2) if stride is None else stride
    if not isinstance(stride, int) or not 1 <= stride < window:
        raise InputError(f"stride must be an integer in 1..window-1={window - 1} (windows must overlap), got {stride!r}")
    if len(ids) < 2:
        raise InputError("score needs at least two tokens (the first one has no context), or prepend_eot=True")
    bad = [i for i in ids if not 0 <= i < model.config.n_vocab]
    if bad:
        raise InputError(f"token id {bad[0]} is outside the vocabulary (0..{model.config.n_vocab - 1})")

    logprobs: list[float | None] = [None] * len(ids)
    scored_until = 1  # tokens before this index are scored (or unscorable: token 0)
    begin = 0
    while scored_until < len(ids):
        end = min(begin + window, len(ids))
        chunk = np.array([ids[begin:end]])  # [1, n_seq]
        logits = gpt2(chunk, model.params, model.config)[0]  # [n_seq, n_vocab]
        # logits at position t predict token t + 1: score tokens scored_until..end-1
        targets = np.arange(scored_until, end)
        for lo in range(0, targets.size, 256):  # float64 log-softmax, a few rows at a time
            t = targets[lo : lo + 256]
            lp = log_softmax(logits[t - 1 - begin])  # [rows, n_vocab]
            for i, row in zip(t, lp):
                logprobs[i] = float(row[ids[i]])
        scored_until = end
        begin += stride
    if prepend_eot:
        ids, logprobs = ids[1:], logprobs[1:]
    assert len(ids) == n_text
    tokens = model.tokenizer.decode_tokens(ids) if model.tokenizer is not None else None
    return TextScore(ids=ids, tokens=tokens, logprobs=logprobs, window=window, stride=stride)
