"""Training a GPT-2 in NumPy: pre-training from scratch and fine-tuning, on one text file.

One training step is the whole of deep learning in four lines (``train_step``):

    logits = gpt2(inputs, params, config, cache=cache)        # model.py's forward, keeping activations
    loss   = cross_entropy(logits, targets) / count          # how surprised the model is, in nats per token
    grads  = gpt2_backward(dlogits, inputs, params, config, cache)  # backward.py, mirror of the forward
    AdamW.step(params, clip_grad_norm(grads))                # optim.py, with a warm-up + cosine learning rate

Around it, in the order of this file:

    data          the text's last ``val_fraction`` (10%) is held out for validation; the first part
                  is for training (and is all a new tokenizer learns from); both are encoded once
                  into arrays of token ids
    batches       ``batch_size`` random windows of ``n_seq + 1`` tokens from the training ids; the
                  targets are the inputs shifted by one (predict the next token everywhere)
    evaluation    the validation ids cut into consecutive windows, so every token but the first is
                  predicted once: total nats / tokens is the validation loss, total nats / characters
                  the tokenizer-independent "nats per character"
    samples       text generated from a prompt every ``sample_interval`` steps, to watch it improve
    checkpoints   parameters, AdamW's moments and the loop's state, written atomically; a resumed
                  run continues exactly as if never stopped (each step's batch comes from a
                  generator seeded by (seed, step), so there is no random state to restore)
    progress      a progress bar with loss, tokens/s and ETA; a log of every step; the loss curve
                  plotted to ``loss.png``
    the loop      ``train``; ``pretrain`` (a new tokenizer and a randomly initialised model) and
                  ``finetune`` (an existing model and its tokenizer) call it

The output is an ordinary model folder (``npgpt.save``): config.json, model.safetensors,
vocab.json, merges.txt, which ``npgpt.load``, the viz and ``transformers`` read; training adds
``loss.png`` and ``train_log.json`` (settings, every evaluation, the timing) beside them.

Leaves out: dropout, gradient accumulation, mixed precision, several data files or
document boundaries, data loading from disk as training goes (the encoded text is held in memory:
fine for the few MB a CPU can train on), and multi-process training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ._files import atomic_path, write_json
from .backward import cross_entropy, cross_entropy_backward, gpt2_backward
from .config import GPT2Config
from .errors import ConfigError, InputError, WeightsError
from .activations import Tap
from .forward import forward
from .gpt2 import GPT2
from .model import gpt2, random_params
from .optim import AdamW, clip_grad_norm, lr_schedule
from .weights import flatten, read_safetensors, unflatten

CHECKPOINT_STATE = "state.json"


@dataclass(frozen=True)
class TrainSettings:
    """The hyper-parameters of one training run (defaults: the bundled Shakespeare model's recipe).

    ==================  =====================================================================
    steps               optimiser steps in the whole run
    batch_size          windows per step; a step sees batch_size * n_seq tokens
    n_seq               tokens per window (None: the model's n_ctx)
    lr, min_lr          peak learning rate, and where the cosine decay ends
    warmup_steps        steps of linear warm-up from 0 to lr
    weight_decay        AdamW's decoupled decay of the weight matrices
    beta1, beta2        AdamW's averaging rates of the gradient and of its square
    grad_clip           largest global gradient norm (0: no clipping)
    eval_interval       steps between validation evaluations (and checkpoints)
    eval_tokens         validation tokens per periodic evaluation (None: all; the final one uses all)
    sample_interval     steps between samples (0: none)
    sample_tokens       tokens per sample
    sample_prompt       what samples start from
    seed                initial weights, batch order and samples all derive from it
    val_fraction        the share of the text, at its end, held out for validation
    dropout             probability of zeroing each element of the embeddings' sum and of every
                        attention and MLP output during training (GPT-2's embd and resid dropout)
    repeat_fraction     share of each batch's windows in which a span of random tokens is written
                        twice in a row: only copying the first span predicts the second, which
                        teaches the model induction heads early (see ``repeat_spans``)
    ==================  =====================================================================
    """

    steps: int = 1200
    batch_size: int = 12
    n_seq: int | None = None
    lr: float = 2e-3
    min_lr: float = 2e-4
    warmup_steps: int = 50
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_interval: int = 100
    eval_tokens: int | None = None
    sample_interval: int = 200
    sample_tokens: int = 64
    sample_prompt: str = "\n"
    seed: int = 0
    val_fraction: float = 0.1
    dropout: float = 0.0
    repeat_fraction: float = 0.0

    def __post_init__(self):
        positive = ["steps", "batch_size", "eval_interval"]
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("warmup_steps", "sample_interval", "sample_tokens", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
        if self.n_seq is not None and (not isinstance(self.n_seq, int) or self.n_seq < 1):
            raise ConfigError(f"n_seq must be a positive integer or None, got {self.n_seq!r}")
        if self.eval_tokens is not None and (not isinstance(self.eval_tokens, int) or self.eval_tokens < 1):
            raise ConfigError(f"eval_tokens must be a positive integer or None, got {self.eval_tokens!r}")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise ConfigError(f"need lr > 0 and 0 <= min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError(f"beta1 and beta2 must be in [0, 1), got {self.beta1}, {self.beta2}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError("weight_decay and grad_clip must be >= 0")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be between 0 and 1 (e.g. 0.1), got {self.val_fraction}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1) (e.g. 0.1), got {self.dropout}")
        if not 0 <= self.repeat_fraction <= 1:
            raise ConfigError(f"repeat_fraction must be in [0, 1], got {self.repeat_fraction}")

    def replace(self, **changes) -> "TrainSettings":
        return dataclasses.replace(self, **changes)


# ---- data ---------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """A text encoded for training: token ids of its training part and of its validation part."""

    train_ids: np.ndarray  # int32 [n_train_tokens]
    val_ids: np.ndarray  # int32 [n_val_tokens]
    val_chars: int  # characters of the validation text that evaluation predicts (all but the first token's)
    tokenizer: object

    @property
    def val_chars_per_token(self) -> float:
        return self.val_chars / max(len(self.val_ids) - 1, 1)


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """(train, validation): the validation text is the last ``val_fraction`` of the characters.

    The end, not a random sample: a held-out block tests whether the model generalises to text it
    has not seen, not to lines shuffled in between lines it has.
    """
    cut = int(round(len(text) * (1.0 - val_fraction)))
    return text[:cut], text[cut:]


def encode_dataset(text: str, tokenizer, val_fraction: float = 0.1) -> Dataset:
    """Split ``text`` and encode both parts (``<|endoftext|>`` in the text is read as plain text)."""
    train_text, val_text = split_text(text, val_fraction)
    train_ids = np.asarray(tokenizer.encode_ordinary(train_text), dtype=np.int32)
    val_ids = np.asarray(tokenizer.encode_ordinary(val_text), dtype=np.int32)
    if len(val_ids) < 2:
        raise InputError(
            f"the validation part ({val_fraction:.0%} of the text) has {len(val_ids)} token(s); "
            "give more text or a larger val_fraction"
        )
    first = tokenizer.decode(val_ids[:1].tolist())
    return Dataset(train_ids, val_ids, val_chars=len(val_text) - len(first), tokenizer=tokenizer)


def get_batch(ids: np.ndarray, batch_size: int, n_seq: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``batch_size`` random windows of the token ids: inputs [batch, n_seq] and targets (the same
    windows shifted one token to the right: the token that comes next at every position)."""
    if len(ids) < n_seq + 1:
        raise InputError(
            f"the training text has {len(ids)} tokens, fewer than one window of n_seq + 1 = {n_seq + 1}; "
            "give more text or a smaller --n-seq"
        )
    starts = rng.integers(0, len(ids) - n_seq, size=batch_size)  # [batch]
    windows = ids[starts[:, None] + np.arange(n_seq + 1)]  # [batch, n_seq + 1]
    return windows[:, :-1], windows[:, 1:]


def repeat_spans(windows: np.ndarray, fraction: float, n_vocab: int, rng: np.random.Generator,
                 min_len: int = 8, max_len: int = 64) -> np.ndarray:
    """A copy of ``windows`` [batch, n_seq + 1] in which the first ``round(fraction * batch)`` rows
    each hold a span of random tokens followed at once by the same span again, at a random place.

    Natural text rarely rewards copying within a few million tokens of training, so a small model
    learns induction heads (attend to the token after the earlier occurrence of the current one,
    and predict it) late or never. In these rows the second span is unpredictable except by
    copying, which gives induction a strong, clean signal; the first span's tokens are noise
    the model learns to expect (loss near log n_vocab). Rows keep their text around the spans.
    """
    windows = windows.copy()
    n_rows = int(round(fraction * len(windows)))
    width = windows.shape[1]
    for row in range(n_rows):
        length = int(rng.integers(min_len, min(max_len, width // 2) + 1))
        start = int(rng.integers(0, width - 2 * length + 1))
        span = rng.integers(0, n_vocab, size=length)
        windows[row, start : start + length] = span
        windows[row, start + length : start + 2 * length] = span
    return windows


# ---- one step -----------------------------------------------------------------------------------


def dropout_masks(config: GPT2Config, shape: tuple, p: float, rng: np.random.Generator) -> dict:
    """GPT-2's dropout as keep-masks, one per dropped activation: 0 for a dropped element and
    1 / (1 - p) for a kept one (so the expected value is unchanged and inference needs no
    rescaling). The names are the activation cache's: ``blocks.0.resid_pre`` is the embeddings' sum
    (transformers' ``drop``), ``attn_out`` and ``mlp_out`` each block's two ``resid_dropout``s."""
    names = ["blocks.0.resid_pre"] + [f"blocks.{l}.{n}" for l in range(config.n_layer) for n in ("attn_out", "mlp_out")]
    scale = np.float32(1.0 / (1.0 - p))
    return {name: (rng.random(shape, dtype=np.float32) >= p) * scale for name in names}  # [batch, n_seq, n_embd] each


def loss_and_grads(params: dict, config: GPT2Config, inputs: np.ndarray, targets: np.ndarray,
                   dropout: dict | None = None) -> tuple[float, dict]:
    """Mean cross-entropy of predicting ``targets`` from ``inputs``, and its gradient for every
    parameter (a nested dict shaped like ``params``). ``dropout``: keep-masks from ``dropout_masks``,
    applied by hooks in the forward pass and to the gradients in the backward pass."""
    cache: dict = {}
    hooks = None if not dropout else {name: (lambda x, m=m: x * m) for name, m in dropout.items()}
    logits = gpt2(inputs, params, config, tap=Tap(hooks, cache))  # [batch, n_seq, n_vocab], keeping activations
    total, count = cross_entropy(logits, targets)
    dlogits = cross_entropy_backward(logits, targets, scale=1.0 / count)
    del logits
    return total / count, gpt2_backward(dlogits, inputs, params, config, cache, dropout=dropout)


def train_step(params: dict, config: GPT2Config, optimizer: AdamW, inputs, targets, *, lr: float, grad_clip: float,
               dropout: dict | None = None) -> dict:
    """Forward, backward, clip, update (``params`` changes in place). Returns the step's numbers."""
    loss, grads = loss_and_grads(params, config, inputs, targets, dropout)
    grads, grad_norm = clip_grad_norm(flatten(grads), grad_clip)
    optimizer.step(flatten(params), grads, lr=lr)
    return {"loss": loss, "grad_norm": grad_norm, "lr": lr}


# ---- evaluation ---------------------------------------------------------------------------------


def evaluate(params: dict, config: GPT2Config, ids: np.ndarray, n_seq: int, batch_size: int = 16,
             max_tokens: int | None = None) -> tuple[float, int]:
    """Summed cross-entropy (nats) of predicting ``ids[1:]``, and how many tokens that is.

    The ids are cut into consecutive windows of n_seq + 1 tokens that overlap by one, so each
    token after the first is predicted exactly once, from the tokens before it in its window
    (a window's first predictions see little context, as at the start of any text).
    ``max_tokens`` evaluates only the first windows, for a quicker estimate during training.
    """
    n_targets = len(ids) - 1 if max_tokens is None else min(len(ids) - 1, max_tokens)
    starts = list(range(0, n_targets, n_seq))
    total, count = 0.0, 0
    full = [s for s in starts if s + n_seq <= n_targets]
    for i in range(0, len(full), batch_size):  # whole windows, batch_size at a time
        idx = np.asarray(full[i : i + batch_size])[:, None] + np.arange(n_seq + 1)
        windows = ids[idx]  # [batch, n_seq + 1]
        nats, n = cross_entropy(forward(windows[:, :-1], params, config), windows[:, 1:])
        total, count = total + nats, count + n
    if starts and starts[-1] + n_seq > n_targets:  # the last, shorter window
        window = ids[starts[-1] : n_targets + 1][None]
        nats, n = cross_entropy(forward(window[:, :-1], params, config), window[:, 1:])
        total, count = total + nats, count + n
    return total, count


def sample_text(model: GPT2, prompt: str, n_tokens: int, seed: int) -> str:
    """A sample of ``n_tokens`` after ``prompt`` (temperature 0.8, top-k 40), for the log."""
    prompt_ids = model.tokenizer.encode_ordinary(prompt) or [model.config.n_vocab - 1]
    n_tokens = min(n_tokens, model.config.n_ctx - len(prompt_ids))
    if n_tokens <= 0:
        return ""
    return model.generate(prompt_ids, max_new_tokens=n_tokens, temperature=0.8, top_k=40, seed=seed, ignore_eos=True)


# ---- checkpoints --------------------------------------------------------------------------------


def save_checkpoint(folder: str | os.PathLike, model: GPT2, optimizer: AdamW, state: dict) -> None:
    """Write everything a run needs to continue exactly: params, AdamW's m and v, the loop's state.

    Tensors go to ``checkpoint-{step}.safetensors``, then ``state.json`` (which names that file) is
    replaced atomically, then older tensor files are removed: at every moment the folder holds one
    complete checkpoint, even if the process is killed while writing.
    """
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays, scalars = optimizer.state_dict()
    tensors = {f"params.{k}": np.ascontiguousarray(v) for k, v in flatten(model.params).items()}
    tensors.update({f"adam.{k}": np.ascontiguousarray(v) for k, v in arrays.items()})
    name = f"checkpoint-{state['step']}.safetensors"
    with atomic_path(folder / name) as tmp:
        save_file(tensors, str(tmp))
    model.config.save(folder / "config.json")
    if model.tokenizer is not None:
        model.tokenizer.save(folder)
    full_state = dict(state, tensors=name, optimizer=scalars)
    write_json(folder / CHECKPOINT_STATE, full_state, indent=1)
    for old in folder.glob("checkpoint-*.safetensors"):
        if old.name != name:
            old.unlink()


def load_checkpoint(folder: str | os.PathLike) -> tuple[GPT2, dict, dict, dict]:
    """(model, optimizer arrays, optimizer scalars, state) of the checkpoint in ``folder``."""
    from .tokenizer import Tokenizer

    folder = Path(folder)
    state_path = folder / CHECKPOINT_STATE
    if not state_path.is_file():
        raise WeightsError(f"no checkpoint in {folder} (no {CHECKPOINT_STATE}); start a new run without --resume")
    with open(state_path, encoding="utf-8") as f:
        state = json.load(f)
    config = GPT2Config.load(folder / "config.json")
    tensors = read_safetensors(folder / state["tensors"])
    params = unflatten({k[len("params."):]: v for k, v in tensors.items() if k.startswith("params.")}, config)
    adam = {k[len("adam."):]: v for k, v in tensors.items() if k.startswith("adam.")}
    model = GPT2(config=config, params=params, tokenizer=Tokenizer.from_folder(folder), name=state.get("name"))
    return model, adam, state["optimizer"], state


# ---- progress, log and plot ---------------------------------------------------------------------


class Progress:
    """One status line: a bar, the step, loss, tokens/s and ETA.

    On a terminal it redraws itself in place (``\\r``); in a log file it prints a line every
    ``log_every`` steps instead. Tokens/s and the ETA use the steps of this run only.
    """

    def __init__(self, total_steps: int, first_step: int, tokens_per_step: int, stream=None, log_every: int = 10):
        self.total, self.first, self.tokens_per_step = total_steps, first_step, tokens_per_step
        self.stream = sys.stderr if stream is None else stream
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.log_every = log_every
        self.start = time.perf_counter()
        self.paused = 0.0  # seconds spent evaluating and sampling, not counted in tokens/s

    def rate(self, step: int) -> float:
        elapsed = time.perf_counter() - self.start - self.paused
        return (step - self.first) * self.tokens_per_step / max(elapsed, 1e-9)

    def line(self, step: int, loss: float) -> str:
        done = step / self.total
        bar = "#" * int(24 * done) + "." * (24 - int(24 * done))
        rate = self.rate(step)
        eta = (self.total - step) * self.tokens_per_step / rate if rate > 0 else float("nan")
        return f"[{bar}] step {step}/{self.total} loss {loss:.4f} | {rate:,.0f} tok/s | ETA {format_duration(eta)}"

    def update(self, step: int, loss: float) -> None:
        if self.tty:
            self.stream.write("\r" + self.line(step, loss) + "  ")
            self.stream.flush()
        elif step % self.log_every == 0 or step == self.total:
            self.stream.write(self.line(step, loss) + "\n")
            self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (evaluation, sample), printed above the bar."""
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def format_duration(seconds: float) -> str:
    """3725 -> '1:02:05'; 65 -> '1:05'."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def plot_losses(history: list[dict], evals: list[dict], path: str | os.PathLike, title: str = "",
                n_val_tokens: int | None = None) -> None:
    """The loss curve: training loss per step (faint) and smoothed, validation loss at each
    evaluation, with nats per character on the right axis. Written atomically as a PNG.

    ``n_val_tokens``: how many tokens a whole validation pass predicts (default: the most any
    evaluation covered); evaluations of fewer are drawn as a separate line.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if history:
        steps = np.array([h["step"] for h in history])
        losses = np.array([h["loss"] for h in history])
        ax.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.8)
        k = max(1, len(losses) // 50)
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1 :], smooth, color="tab:blue", label="training loss")
    if evals:
        # Periodic evaluations may cover the first eval_tokens of the held-out text only; the ones
        # over all of it (always the last) are marked apart, since the two are not the same text.
        n_all = n_val_tokens or max(e["val_tokens"] for e in evals)
        part = [e for e in evals if e["val_tokens"] < n_all]
        whole = [e for e in evals if e["val_tokens"] == n_all]
        if part:
            ax.plot([e["step"] for e in part], [e["val_loss"] for e in part], "o-", color="tab:orange",
                    label=f"validation loss (first {part[0]['val_tokens']:,} held-out tokens)")
        if whole:
            ax.plot([e["step"] for e in whole], [e["val_loss"] for e in whole], "*-" if not part else "*",
                    markersize=11, color="tab:red", label=f"validation loss (all {n_all:,} held-out tokens)")
        right = ax.twinx()
        right.set_ylabel("validation nats per character")
        lo, hi = ax.get_ylim()
        ratio = evals[-1]["val_loss"] / evals[-1]["val_nats_per_char"]  # tokens -> characters
        right.set_ylim(lo / ratio, hi / ratio)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- the loop -----------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What ``train`` returns: the trained model and its record."""

    model: GPT2
    history: list[dict] = field(default_factory=list)  # per step: step, loss, grad_norm, lr
    evals: list[dict] = field(default_factory=list)  # per evaluation: step, val_loss, val_nats_per_char
    samples: list[dict] = field(default_factory=list)  # step, text
    elapsed_s: float = 0.0  # wall-clock training time over every run of this checkpoint, evaluations included
    cpu_s: float = 0.0  # CPU time of the same (all threads), which a busy shared machine does not inflate
    completed: bool = False

    @property
    def val_loss(self) -> float:
        return self.evals[-1]["val_loss"] if self.evals else float("nan")

    @property
    def val_nats_per_char(self) -> float:
        return self.evals[-1]["val_nats_per_char"] if self.evals else float("nan")


def train(
    model: GPT2,
    data: Dataset,
    settings: TrainSettings,
    *,
    out: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: dict | None = None,
    stream=None,
    on_step: Callable[[int, dict], None] | None = None,
    record: dict | None = None,
) -> TrainResult:
    """Train ``model`` (its params change in place) on ``data`` for ``settings.steps`` steps.

    Every ``eval_interval`` steps: a validation evaluation, a checkpoint in ``checkpoint`` and the
    model folder ``out`` rewritten (so an interrupted run always leaves a usable model), the loss
    plot redrawn. ``resume``: the state dict of a checkpoint (``load_checkpoint``), whose model
    and optimizer the caller has restored; training continues at its step. ``on_step(step,
    metrics)`` is called after every step (a notebook can collect losses; raising
    ``KeyboardInterrupt`` stops the run, which then saves a checkpoint of the last whole step).
    ``record``: extra fields for ``train_log.json`` (the command line, the data file).
    """
    config, s = model.config, settings
    n_seq = s.n_seq or config.n_ctx
    if n_seq > config.n_ctx:
        raise ConfigError(f"n_seq={n_seq} is longer than the model's context n_ctx={config.n_ctx}")
    if model.tokenizer is None:
        raise InputError("the model has no tokenizer; training needs one to read the text")
    if data.train_ids.max(initial=0) >= config.n_vocab:
        raise InputError(f"the data has token ids up to {data.train_ids.max()}, beyond the model's n_vocab={config.n_vocab}")
    params = model.params
    optimizer = AdamW(flatten(params), lr=s.lr, betas=(s.beta1, s.beta2), weight_decay=s.weight_decay)
    result = TrainResult(model)
    step = 0
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer_arrays"], resume["optimizer"])
        step = int(resume["step"])
        result.history, result.evals, result.samples = resume["history"], resume["evals"], resume["samples"]
        result.elapsed_s = float(resume["elapsed_s"])
        result.cpu_s = float(resume.get("cpu_s", 0.0))
    record = dict(record or {})

    progress = Progress(s.steps, step, s.batch_size * n_seq, stream=stream)
    run_start, run_cpu_start = time.perf_counter(), time.process_time()
    elapsed_before, cpu_before = result.elapsed_s, result.cpu_s

    def clock() -> None:
        result.elapsed_s = elapsed_before + time.perf_counter() - run_start
        result.cpu_s = cpu_before + time.process_time() - run_cpu_start

    def state() -> dict:
        return {
            "step": step, "name": model.name, "settings": dataclasses.asdict(s), "history": result.history,
            "evals": result.evals, "samples": result.samples, "elapsed_s": result.elapsed_s, "cpu_s": result.cpu_s,
            **record,
        }

    def save(final: bool = False) -> None:
        t0 = time.perf_counter()
        clock()
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer, state())
        if out is not None:
            write_model_folder(model, out, result, s, record, final=final, n_val_tokens=len(data.val_ids) - 1)
        progress.paused += time.perf_counter() - t0

    def evaluate_now(max_tokens) -> None:
        t0 = time.perf_counter()
        nats, count = evaluate(params, config, data.val_ids, n_seq, s.batch_size, max_tokens)
        chars = data.val_chars if count == len(data.val_ids) - 1 else count * data.val_chars_per_token
        entry = {"step": step, "val_loss": nats / count, "val_nats_per_char": nats / chars, "val_tokens": count,
                 "train_loss": float(np.mean([h["loss"] for h in result.history[-s.eval_interval:]])) if result.history else None}
        result.evals.append(entry)
        progress.message(
            f"step {step}: validation loss {entry['val_loss']:.4f} nats/token, "
            f"{entry['val_nats_per_char']:.4f} nats/char ({count} tokens)"
        )
        progress.paused += time.perf_counter() - t0

    def sample_now() -> None:
        t0 = time.perf_counter()
        text = sample_text(model, s.sample_prompt, s.sample_tokens, seed=s.seed * 1_000_003 + step)
        result.samples.append({"step": step, "prompt": s.sample_prompt, "text": text})
        progress.message(f"step {step} sample: {s.sample_prompt + text!r}")
        progress.paused += time.perf_counter() - t0

    if step == 0 and not result.evals:
        evaluate_now(s.eval_tokens)
    try:
        while step < s.steps:
            rng = np.random.default_rng([s.seed, step])  # this step's batch, the same on every resume
            inputs, targets = get_batch(data.train_ids, s.batch_size, n_seq, rng)
            if s.repeat_fraction:
                windows = repeat_spans(np.concatenate([inputs, targets[:, -1:]], axis=1), s.repeat_fraction, config.n_vocab, rng)
                inputs, targets = windows[:, :-1], windows[:, 1:]
            masks = dropout_masks(config, (*inputs.shape, config.n_embd), s.dropout, rng) if s.dropout else None
            lr = lr_schedule(step, max_lr=s.lr, total_steps=s.steps, warmup_steps=s.warmup_steps, min_lr=s.min_lr)
            metrics = train_step(params, config, optimizer, inputs, targets, lr=lr, grad_clip=s.grad_clip, dropout=masks)
            step += 1
            metrics = {"step": step, **metrics}
            if not math.isfinite(metrics["loss"]):
                raise InputError(
                    f"the loss became {metrics['loss']} at step {step}; lower the learning rate (--lr) "
                    "or resume from the last checkpoint with a smaller one"
                )
            result.history.append(metrics)
            progress.update(step, metrics["loss"])
            if on_step is not None:
                on_step(step, metrics)
            if s.sample_interval and step % s.sample_interval == 0:
                sample_now()
            if step % s.eval_interval == 0 or step == s.steps:
                evaluate_now(None if step == s.steps else s.eval_tokens)
                save(final=step == s.steps)
    except KeyboardInterrupt:
        # The parameters only change inside optimizer.step, at the end of train_step; an interrupt
        # there is possible but rare, and is detected by AdamW's step counter not matching.
        progress.close()
        if optimizer.t == step and checkpoint is not None:
            save()
            progress.message(f"interrupted: checkpoint of step {step} saved in {checkpoint}; continue with --resume")
        raise
    progress.close()
    clock()
    result.completed = True
    return result


def write_model_folder(model: GPT2, out, result: TrainResult, settings: TrainSettings, record: dict, final: bool,
                       n_val_tokens: int | None = None) -> None:
    """The model folder (``npgpt.save``) plus ``train_log.json`` and ``loss.png``."""
    from .weights import save_folder

    out = Path(out)
    save_folder(model, out)
    log = {
        "completed": final, "step": result.history[-1]["step"] if result.history else 0,
        "elapsed_s": round(result.elapsed_s, 1), "cpu_s": round(result.cpu_s, 1),
        "machine": {"cpus": os.cpu_count(), "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
                    "numpy": np.__version__},
        "config": model.config.to_hf_dict(),
        "settings": dataclasses.asdict(settings), **record,
        "final": result.evals[-1] if result.evals else None, "evals": result.evals, "samples": result.samples,
    }
    write_json(out / "train_log.json", log, indent=1)
    title = f"{model.name or out.name}: val {result.val_nats_per_char:.3f} nats/char" if result.evals else str(out.name)
    plot_losses(result.history, result.evals, out / "loss.png", title=title, n_val_tokens=n_val_tokens)


# ---- entry points: pre-training and fine-tuning -------------------------------------------------


DEFAULT_CONFIG = GPT2Config(n_vocab=1024, n_ctx=256, n_embd=192, n_head=6, n_layer=4)  # the bundled model's shape


def check_out_folders(out, checkpoint, resume: bool, overwrite: bool) -> None:
    """Refuse to train over an existing model or checkpoint unless told (nothing is lost silently)."""
    out, checkpoint = Path(out), Path(checkpoint)
    if resume:
        if not (checkpoint / CHECKPOINT_STATE).is_file():
            raise WeightsError(f"nothing to resume: no checkpoint in {checkpoint}; run without --resume to start")
        return
    if overwrite:
        if checkpoint.exists():
            shutil.rmtree(checkpoint)
        return
    if (checkpoint / CHECKPOINT_STATE).is_file():
        raise InputError(
            f"a checkpoint of an earlier run is in {checkpoint}: pass --resume to continue it, "
            "or --overwrite to start again from scratch"
        )
    if (out / "model.safetensors").exists():
        raise InputError(f"{out} already holds a model; pass --overwrite to replace it, or choose another --out")


def default_checkpoint(out) -> Path:
    """Where a run's checkpoint goes unless told: ``OUT-checkpoint`` beside the model folder (kept
    out of it, since it is 3x the model's size: the parameters plus AdamW's two moments)."""
    out = Path(out)
    return out.with_name(out.name + "-checkpoint")


def pretrain(
    data_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    config: GPT2Config = DEFAULT_CONFIG,
    settings: TrainSettings = TrainSettings(),
    tokenizer=None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    stream=None,
    on_step=None,
    record: dict | None = None,
) -> TrainResult:
    """Pre-train a new GPT-2 of ``config``'s shape on a text file and write it to ``out``.

    Without a ``tokenizer``, a byte-level BPE of ``config.n_vocab`` tokens is learned from the
    training part of the text (``bpe_train``), and the model's n_vocab is set to the size reached.
    With ``resume``, the model, tokenizer, optimizer and settings come from the checkpoint
    (``settings.steps`` may be raised to train longer).
    """
    from .bpe_train import learn_tokenizer, read_text

    checkpoint = default_checkpoint(out) if checkpoint is None else Path(checkpoint)
    check_out_folders(out, checkpoint, resume, overwrite)
    text = read_text(data_path)
    record = {"data": os.fspath(data_path), "data_sha256": file_sha256(data_path), **(record or {})}

    def log(message: str) -> None:
        print(message, file=stream or sys.stderr, flush=True)

    if resume:
        model, arrays, scalars, state = load_checkpoint(checkpoint)
        if state.get("data_sha256") != record["data_sha256"]:
            raise InputError(
                f"{data_path} is not the file the checkpoint in {checkpoint} was trained on (its sha256 differs); "
                "resume with the same data, or start a new run"
            )
        saved = TrainSettings(**state["settings"])
        settings = saved.replace(steps=max(settings.steps, saved.steps)) if settings.steps != saved.steps else saved
        state["optimizer_arrays"] = arrays
        record = _resumed_record(state)
        log(f"resuming {checkpoint} at step {state['step']} of {settings.steps}")
        data = encode_dataset(text, model.tokenizer, settings.val_fraction)
        return train(model, data, settings, out=out, checkpoint=checkpoint, resume=state, stream=stream,
                     on_step=on_step, record=record)

    train_text, _ = split_text(text, settings.val_fraction)
    if tokenizer is None:
        t0 = time.perf_counter()
        tokenizer = learn_tokenizer(train_text, config.n_vocab, name=Path(out).name)
        log(f"learned a {tokenizer.n_vocab}-token BPE vocabulary from {len(train_text):,} characters "
            f"in {time.perf_counter() - t0:.1f} s")
    config = config.replace(n_vocab=tokenizer.n_vocab)
    data = encode_dataset(text, tokenizer, settings.val_fraction)
    log(f"data: {len(data.train_ids):,} training tokens, {len(data.val_ids):,} validation tokens "
        f"({data.val_chars_per_token:.2f} characters per token)")
    model = GPT2(config=config, params=random_params(config, seed=settings.seed), tokenizer=tokenizer, name=Path(out).name)
    log(f"model: {model!r}")
    return train(model, data, settings, out=out, checkpoint=checkpoint, stream=stream, on_step=on_step,
                 record=record | {"mode": "pretrain"})


# Fine-tuning's defaults: a small learning rate, no weight decay, a short run, 4 windows of 256
# tokens per step (with gpt2's 50257-token vocabulary, the logits of one step take 200 MB).
FINETUNE_SETTINGS = TrainSettings(steps=200, batch_size=4, n_seq=256, lr=1e-4, min_lr=1e-5, warmup_steps=20, weight_decay=0.0,
                                  beta2=0.999, eval_interval=50, sample_interval=100)


def finetune(
    model: GPT2 | str | os.PathLike,
    data_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    settings: TrainSettings | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    stream=None,
    on_step=None,
    record: dict | None = None,
) -> TrainResult:
    """Fine-tune an existing model (a ``GPT2``, a model folder or a name ``npgpt.load`` knows) on
    a text file with its own tokenizer, and write the result to ``out``.

    Fine-tuning is the same loop as pre-training, started from trained weights: a smaller
    learning rate, few steps, no weight decay by default, so the model adapts to the new text
    without forgetting what it knew.
    """
    from .bpe_train import read_text

    settings = FINETUNE_SETTINGS if settings is None else settings
    checkpoint = default_checkpoint(out) if checkpoint is None else Path(checkpoint)
    check_out_folders(out, checkpoint, resume, overwrite)
    text = read_text(data_path)
    record = {"data": os.fspath(data_path), "data_sha256": file_sha256(data_path), **(record or {})}
    if resume:
        model, arrays, scalars, state = load_checkpoint(checkpoint)
        saved = TrainSettings(**state["settings"])
        settings = saved.replace(steps=max(settings.steps, saved.steps)) if settings.steps != saved.steps else saved
        state["optimizer_arrays"] = arrays
        if state.get("data_sha256") != record["data_sha256"]:
            raise InputError(
                f"{data_path} is not the file the checkpoint in {checkpoint} was trained on (its sha256 differs); "
                "resume with the same data, or start a new run"
            )
        record = _resumed_record(state)
        data = encode_dataset(text, model.tokenizer, settings.val_fraction)
        return train(model, data, settings, out=out, checkpoint=checkpoint, resume=state, stream=stream,
                     on_step=on_step, record=record)
    if not isinstance(model, GPT2):
        import npgpt

        source = os.fspath(model)
        model = npgpt.load(model)
        record["base_model"] = source
    else:
        model = GPT2(config=model.config, params=_copy_params(model.params), tokenizer=model.tokenizer, name=model.name)
    if model.tokenizer is None:
        raise InputError("the model has no tokenizer files (vocab.json + merges.txt); add them to its folder to fine-tune it")
    model.name = Path(out).name
    settings = settings.replace(n_seq=min(settings.n_seq or model.config.n_ctx, model.config.n_ctx))
    data = encode_dataset(text, model.tokenizer, settings.val_fraction)
    return train(model, data, settings, out=out, checkpoint=checkpoint, stream=stream, on_step=on_step,
                 record=record | {"mode": "finetune"})


RECORD_KEYS = ("mode", "command", "data", "data_sha256", "base_model", "resumed_at")


def _resumed_record(state: dict) -> dict:
    """The run's record as first written (command, data, ...), plus the step it is resumed at."""
    record = {k: state[k] for k in RECORD_KEYS if k in state}
    record["resumed_at"] = list(record.get("resumed_at", [])) + [state["step"]]
    return record


def _copy_params(params: dict) -> dict:
    """A deep copy of a params dict (fine-tuning must not change the caller's model)."""
    if isinstance(params, dict):
        return {k: _copy_params(v) for k, v in params.items()}
    if isinstance(params, list):
        return [_copy_params(v) for v in params]
    return np.array(params, dtype=np.float32, copy=True)


def nats_per_char(model: GPT2, text: str, n_seq: int | None = None, batch_size: int = 16) -> tuple[float, float]:
    """(nats per token, nats per character) of ``model`` on ``text``, every token after the first
    predicted once, as training's validation does."""
    ids = np.asarray(model.tokenizer.encode_ordinary(text), dtype=np.int32)
    nats, count = evaluate(model.params, model.config, ids, n_seq or model.config.n_ctx, batch_size)
    chars = len(text) - len(model.tokenizer.decode(ids[:1].tolist()))
    return nats / count, nats / chars
