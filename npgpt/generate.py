"""Text generation: greedy decoding and sampling, batched and streaming, with stop strings and
sliding windows. The public API of generation lives here.

Entry points (``model.generate`` and ``model.stream`` call the first two):

    generate(model, prompt_or_prompts, **settings)  -> str | list[str] | list[list[str]]
    stream(model, prompt, **settings)               -> TextStream, an iterator of text pieces
    generate_ids(model, prompt_or_prompts, **settings) -> GenerationResult (ids, text, traces, timing)
    beam_search(model, prompt, num_beams=4, ...)    -> list[Beam], best first   (npgpt/beam.py)
    score(model, text_or_ids, ...)                  -> TextScore (per-token log-probs, perplexity)
                                                                                  (npgpt/scoring.py)

The settings are the fields of ``GenerationSettings`` (its docstring lists them). Generation is
split by job, in the order a token is made:

    npgpt/decoding.py  prompts as ids, the end-of-text id, the context check, prefill, decode step
    npgpt/sampling.py  the logits processors (temperature, top-k, top-p, min-p, repetition
                       penalty) and choosing a token, pure functions on arrays
    npgpt/generate.py  (this module) settings, results, stop strings, and the decoding loop:

        prefill   all rows' prompts, left-padded, into a new KV cache  -> the next-token logits
        choose    process the logits (``process_logits``), argmax or sample each row
        accept    append each row's token; hand out the text it completes; a row ends at
                  <|endoftext|>, a stop string or max_new_tokens
        stop or   finished rows leave the batch (``KVCache.select``); the rest get one decode
        continue  step (one token per row), or a fresh prefill when a sliding window is full

    npgpt/traces.py    what ``trace=True`` records per token (``StepTrace``)
    npgpt/beam.py      beam search, on the same prefill and decode step
    npgpt/scoring.py   log-probabilities and perplexity of a given text

Randomness only comes from ``np.random.Generator`` objects: ``seed`` (an int or a Generator) is
split into one independent generator per output row, so a row's sample does not depend on which
other rows share the batch. Several prompts (and ``num_samples`` samples of each) run as one
batch.

The context limit: a prompt plus ``max_new_tokens`` longer than the model's ``n_ctx`` (1024) is an
``InputError`` by default. With ``sliding_window=True`` generation goes on past it: when the
context is full, the oldest tokens are dropped so that the last ``3/4 * n_ctx`` remain, their keys
and values are recomputed in one prefill, and decoding carries on; so every token is chosen seeing
between 3/4 * n_ctx and n_ctx earlier tokens. (A window that slid by one token per step would
need a full prefill per token, because GPT-2's learned positions shift with the window.)

Leaves out: speculative decoding, constrained decoding (grammars, banned words), typical/eta
sampling, contrastive search, and sampling inside beam search.

Reference: Hugging Face ``transformers``' ``generation/utils.py`` (whose greedy, sampling and
batched left-padded generation the tests compare with token for token).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields
from typing import Iterator, Mapping

import numpy as np

from .activations import ActivationCache
from .beam import Beam, beam_search
from .decoding import Model, check_context, decode_step, encode_prompts, end_of_text_id, prefill
from .errors import InputError
from .kv_cache import KVCache
from .sampling import (
    Logits,
    apply_temperature,
    choose,
    min_p_filter,
    probabilities,
    repetition_penalty,
    row_generators,
    sample,
    top_k_filter,
    top_k_ids,
    top_p_filter,
)
from .scoring import TextScore, score
from .traces import StepTrace, TokenProb, row_cache, trace_step


__all__ = [  # what ``from npgpt.generate import ...`` has always offered, wherever it now lives
    "generate", "generate_ids", "stream", "TextStream", "GenerationSettings", "GenerationResult",
    "GenerationStats", "Completion", "StepTrace", "TokenProb", "process_logits", "encode_prompts",
    "beam_search", "Beam", "score", "TextScore", "probabilities", "repetition_penalty",
    "apply_temperature", "top_k_filter", "top_p_filter", "min_p_filter", "sample", "top_k_ids",
]


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
                                    in [0, 1] (0: the most likely only; None or 1: no filter)
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
        if self.top_p is not None and (not is_real(self.top_p) or not 0 <= self.top_p <= 1):
            raise InputError(f"top_p must be in [0, 1] (1 or None: no nucleus filter), got {self.top_p!r}")
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
        self.pieces: list[str] = []  # the text handed out so far
        self.assembler = assembler  # None without a tokenizer
        self.rng = rng  # None for greedy
        self.done = False

    def window(self, n_ctx: int, keep: int) -> list[int]:
        """The tokens the model sees; when they no longer fit in ``n_ctx`` (only with
        sliding_window), the window moves so that the last ``keep`` remain."""
        if len(self.tokens) - self.start > n_ctx:
            self.start = len(self.tokens) - keep
        return self.tokens[self.start :]

    def append(self, token: int) -> None:
        self.tokens.append(token)
        self.completion.ids.append(token)

    def feed(self, token: int) -> tuple[list[str], bool]:
        """The text pieces ``token`` completes, and whether a stop string has appeared."""
        if self.assembler is None:
            return [], False
        piece, stopped = self.assembler.feed(token)
        return self._hand_out(piece), stopped

    def finish(self, reason: str) -> list[str]:
        """End the row; return the text held back until now (none after a stop string)."""
        self.done = True
        self.completion.finish_reason = reason
        if self.assembler is None:
            return []
        pieces = self._hand_out(self.assembler.finish()) if reason != "stop" else []
        self.completion.text = "".join(self.pieces)
        return pieces

    def _hand_out(self, piece: str) -> list[str]:
        if not piece:
            return []
        self.pieces.append(piece)
        return [piece]


@dataclass
class _Batch:
    """The rows decoded together, and what the last forward pass left for them."""

    rows: list[int]  # indices into _Generation.rows, one per batch row
    logits: np.ndarray  # [batch, n_vocab] float32: each row's next-token logits
    kv: KVCache
    pads: list[int]  # each row's left padding in kv
    n_seq: int  # positions the last forward pass fed: the prompt (prefill) or 1 (decode)
    cache: ActivationCache | None  # that pass's activations (trace_cache only)


_CONTEXT_REMEDY = ("lower max_new_tokens, shorten the prompt, or pass sliding_window=True "
                   "(CLI: --sliding-window) to drop the oldest tokens as it goes")


class _Generation:
    """Runs one generation; iterating yields (row index, text piece) as pieces become final."""

    def __init__(self, model: Model, prompt_or_prompts, settings: dict):
        self.model = model
        self.settings = s = GenerationSettings.from_kwargs(settings)
        prompts, self.single = encode_prompts(model, prompt_or_prompts)
        if s.stop and model.tokenizer is None:
            raise InputError("stop strings need a tokenizer to decode the output; this model has none")
        if not s.sliding_window:
            check_context(max(map(len, prompts)), s.max_new_tokens, model.config.n_ctx, _CONTEXT_REMEDY)
        self.eos = end_of_text_id(model, s.eos_token_id, s.ignore_eos)
        self.rows = self._new_rows(prompts)
        self.keep = max(1, model.config.n_ctx * 3 // 4)  # tokens a sliding window keeps when it moves
        self.stats = GenerationStats(prompt_tokens=sum(len(r.tokens) for r in self.rows), rows=len(self.rows))
        self.done = False

    def _new_rows(self, prompts: list[list[int]]) -> list[_Row]:
        """``num_samples`` rows per prompt, prompt-major, each with its own generator."""
        s, tokenizer = self.settings, self.model.tokenizer
        n_rows = len(prompts) * s.num_samples
        rngs = [None] * n_rows if s.greedy else row_generators(s.seed, n_rows)
        return [
            _Row(p, i, j, _TextAssembler(tokenizer, s.stop) if tokenizer is not None else None, rngs[i * s.num_samples + j])
            for i, p in enumerate(prompts)
            for j in range(s.num_samples)
        ]

    def result(self) -> GenerationResult:
        if not self.done:
            raise RuntimeError("generation has not finished: iterate the stream to its end first")
        return GenerationResult([r.completion for r in self.rows], self.stats)

    def __iter__(self) -> Iterator[tuple[int, str]]:
        """prefill, then choose -> accept -> stop or continue, until every row has finished."""
        start = time.perf_counter()
        batch = self._prefill(list(range(len(self.rows)))) if self.settings.max_new_tokens else None
        step = 0
        while batch is not None:
            tokens, chosen_from = self._choose(batch)
            for b, r in enumerate(batch.rows):
                token = int(tokens[b])
                if self.settings.trace:
                    self.rows[r].completion.steps.append(self._trace(step, b, token, batch, chosen_from))
                for piece in self._accept(self.rows[r], token):
                    yield r, piece
            if step == 0:
                self.stats.time_to_first_token = time.perf_counter() - start
            step += 1
            batch = self._continue(batch)
        for row in self.rows:  # max_new_tokens=0: no row ever started
            if row.completion.text is None and row.assembler is not None:
                row.completion.text = "".join(row.pieces)
        self.stats.total_time = time.perf_counter() - start
        self.done = True

    # -- the steps --

    def _prefill(self, rows: list[int]) -> _Batch:
        """Encode the rows' windows, left-padded, into a new KV cache: the first step, and the
        step after a sliding window moves."""
        s = self.settings
        seqs = [self.rows[r].window(self.model.config.n_ctx, self.keep) for r in rows]
        cache = ActivationCache() if s.trace_cache else None
        room = None if s.sliding_window else s.max_new_tokens - 1  # None: room for the whole context
        logits, kv, pads = prefill(self.model, seqs, room, hooks=s.hooks, cache=cache)
        return _Batch(rows, logits, kv, pads, max(map(len, seqs)), cache)

    def _choose(self, batch: _Batch):
        """The next token of each row, and the processed logits [batch, n_vocab] it was chosen from."""
        s = self.settings
        x = batch.logits
        if s.repetition_penalty != 1 or not s.greedy:
            x = process_logits(x, s, [self.rows[r].tokens for r in batch.rows])  # float64
        return choose(x, None if s.greedy else [self.rows[r].rng for r in batch.rows]), x

    def _accept(self, row: _Row, token: int) -> list[str]:
        """Append the token to its row; return the text pieces it completes. The row ends at the
        end-of-text id (which is not text), a stop string, or max_new_tokens."""
        row.append(token)
        self.stats.new_tokens += 1
        if token == self.eos:
            return row.finish("eos")
        pieces, stopped = row.feed(token)
        if stopped:
            return pieces + row.finish("stop")
        if len(row.completion.ids) == self.settings.max_new_tokens:
            return pieces + row.finish("length")
        return pieces

    def _continue(self, batch: _Batch) -> _Batch | None:
        """Stop or continue: finished rows leave the batch; the others get one decode step, or a
        fresh prefill when a sliding window is full. None once every row has finished."""
        going = [b for b, r in enumerate(batch.rows) if not self.rows[r].done]
        if not going:
            return None
        rows, kv, pads = batch.rows, batch.kv, batch.pads
        if len(going) < len(rows):
            rows, kv, pads = [rows[b] for b in going], kv.select(going), [pads[b] for b in going]
        if kv.length + 1 > kv.capacity:  # only with sliding_window: move the window
            return self._prefill(rows)
        cache = ActivationCache() if self.settings.trace_cache else None
        tokens = [self.rows[r].tokens[-1] for r in rows]
        logits = decode_step(self.model, tokens, kv, hooks=self.settings.hooks, cache=cache)  # [batch, n_vocab]
        return _Batch(rows, logits, kv, pads, 1, cache)

    def _trace(self, step: int, b: int, token: int, batch: _Batch, chosen_from: np.ndarray) -> StepTrace:
        """Batch row ``b``'s trace of this step: its logits, and its activations without padding."""
        activations = None
        if batch.cache is not None:
            activations = row_cache(batch.cache, b, batch.pads[b], batch.n_seq, copy=len(batch.rows) > 1)
        return trace_step(step, token, batch.logits[b], None if self.settings.greedy else chosen_from[b],
                          self.model.tokenizer, self.settings.trace_top_k, activations)


# ---- entry points ------------------------------------------------------------------------------


def generate_ids(model: Model, prompt_or_prompts, **settings) -> GenerationResult:
    """Generate and return everything: ids, text, finish reasons, traces and timing.

    Takes the same prompts and settings as ``generate``. The completions are prompt-major: with
    P prompts and S = num_samples, ``result.completions[i * S + j]`` is sample j of prompt i.
    Works without a tokenizer when the prompts are token ids (``text`` is then None).
    """
    generation = _Generation(model, prompt_or_prompts, settings)
    for _ in generation:
        pass
    return generation.result()


def generate(model: Model, prompt_or_prompts, **settings):
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
    generation = _Generation(model, prompt_or_prompts, settings)
    for _ in generation:
        pass
    texts = [c.text for c in generation.result().completions]
    n = generation.settings.num_samples
    per_prompt = [texts[i : i + n] if n > 1 else texts[i] for i in range(0, len(texts), n)]
    return per_prompt[0] if generation.single else per_prompt


class TextStream:
    """An iterator of text pieces, each made of whole characters, as ``stream`` generates them.

    ``"".join(stream)`` equals ``generate(...)`` with the same settings. After the iterator is
    exhausted, ``.result`` holds the ``GenerationResult`` (ids, finish reason, traces, timing).
    """

    def __init__(self, generation: _Generation):
        self._generation = generation
        self._pieces = (piece for _, piece in generation)

    def __iter__(self) -> "TextStream":
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    @property
    def result(self) -> GenerationResult:
        return self._generation.result()


def stream(model: Model, prompt, **settings) -> TextStream:
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
    generation = _Generation(model, prompt, settings)
    if not generation.single or generation.settings.num_samples != 1:
        raise InputError("stream takes one prompt and num_samples=1; use generate for several prompts or samples")
    return TextStream(generation)


