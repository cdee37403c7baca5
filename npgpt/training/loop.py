"""The training loop, and its two entry points: pre-training from scratch and fine-tuning.

``train`` repeats ``train_step`` (``npgpt/training/step.py``) on random batches, and every
``eval_interval`` steps evaluates on the held-out text, writes a checkpoint and rewrites the model
folder; ``pretrain`` (a new tokenizer and a randomly initialised model) and ``finetune`` (an
existing model and its tokenizer) set it up. A resumed run continues exactly as if never stopped:
each step's batch (and dropout masks) come from a generator seeded by (seed, step), so there is no
random state to restore.

Leaves out: multi-process training.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import GPT2Config
from ..errors import ConfigError, InputError
from ..gpt2 import GPT2
from ..model import random_params
from ..weights import flatten
from .checkpoint import check_out_folders, default_checkpoint, file_sha256, load_checkpoint, save_checkpoint, write_model_folder
from .data import Dataset, encode_dataset, get_batch, repeat_spans, split_text
from .optim import AdamW, lr_schedule
from .progress import Progress
from .settings import DEFAULT_CONFIG, FINETUNE_SETTINGS, TrainSettings, check_memory
from .step import dropout_masks, evaluate, sample_text, train_step


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


def batch(data: Dataset, settings: TrainSettings, config: GPT2Config, n_seq: int, step: int):
    """Step ``step``'s inputs, targets and dropout masks (None without dropout), the same on every resume."""
    rng = np.random.default_rng([settings.seed, step])
    inputs, targets = get_batch(data.train_ids, settings.batch_size, n_seq, rng)
    if settings.repeat_fraction:
        windows = repeat_spans(np.concatenate([inputs, targets[:, -1:]], axis=1), settings.repeat_fraction, config.n_vocab, rng,
                               source=settings.repeat_source)
        inputs, targets = windows[:, :-1], windows[:, 1:]
    masks = dropout_masks(config, (*inputs.shape, config.n_embd), settings.dropout, rng) if settings.dropout else None
    return inputs, targets, masks


class TrainingRun:
    """The state one call of ``train`` shares between its steps: the model, the optimiser, the step
    reached, the record so far, the clock, and where to write."""

    def __init__(self, model: GPT2, data: Dataset, settings: TrainSettings, n_seq: int, *, out, checkpoint,
                 resume: dict | None, stream, record: dict | None):
        self.model, self.data, self.settings, self.n_seq = model, data, settings, n_seq
        self.out, self.checkpoint, self.record = out, checkpoint, dict(record or {})
        s = settings
        self.optimizer = AdamW(flatten(model.params), lr=s.lr, betas=(s.beta1, s.beta2), weight_decay=s.weight_decay)
        self.result, self.step = TrainResult(model), 0
        if resume is not None:
            self.optimizer.load_state_dict(resume["optimizer_arrays"], resume["optimizer"])
            self.step = int(resume["step"])
            self.result.history, self.result.evals, self.result.samples = resume["history"], resume["evals"], resume["samples"]
            self.result.elapsed_s, self.result.cpu_s = float(resume["elapsed_s"]), float(resume.get("cpu_s", 0.0))
        self.progress = Progress(s.steps, self.step, s.batch_size * n_seq, stream=stream)
        self.started = (time.perf_counter(), time.process_time(), self.result.elapsed_s, self.result.cpu_s)

    def clock(self) -> None:
        wall, cpu, elapsed_before, cpu_before = self.started
        self.result.elapsed_s = elapsed_before + time.perf_counter() - wall
        self.result.cpu_s = cpu_before + time.process_time() - cpu

    def paused(self, job: Callable[[], None]) -> None:
        """Run ``job`` (an evaluation, a sample, a save) without counting it in tokens/s."""
        t0 = time.perf_counter()
        job()
        self.progress.paused += time.perf_counter() - t0

    def state(self) -> dict:
        r = self.result
        return {"step": self.step, "name": self.model.name, "settings": dataclasses.asdict(self.settings),
                "history": r.history, "evals": r.evals, "samples": r.samples, "elapsed_s": r.elapsed_s,
                "cpu_s": r.cpu_s, **self.record}

    def save(self, final: bool = False) -> None:
        self.clock()
        if self.checkpoint is not None:
            save_checkpoint(self.checkpoint, self.model, self.optimizer, self.state())
        if self.out is not None:
            write_model_folder(self.model, self.out, self.result, self.settings, self.record, final=final,
                               n_val_tokens=len(self.data.val_ids) - 1)

    def evaluate(self, max_tokens: int | None) -> None:
        data, s = self.data, self.settings
        nats, count = evaluate(self.model.params, self.model.config, data.val_ids, self.n_seq, s.batch_size, max_tokens)
        chars = data.val_chars if count == len(data.val_ids) - 1 else count * data.val_chars_per_token
        recent = [h["loss"] for h in self.result.history[-s.eval_interval:]]
        entry = {"step": self.step, "val_loss": nats / count, "val_nats_per_char": nats / chars, "val_tokens": count,
                 "train_loss": float(np.mean(recent)) if recent else None}
        self.result.evals.append(entry)
        self.progress.message(f"step {self.step}: validation loss {entry['val_loss']:.4f} nats/token, "
                              f"{entry['val_nats_per_char']:.4f} nats/char ({count} tokens)")

    def sample(self) -> None:
        s = self.settings
        text = sample_text(self.model, s.sample_prompt, s.sample_tokens, seed=s.seed * 1_000_003 + self.step)
        self.result.samples.append({"step": self.step, "prompt": s.sample_prompt, "text": text})
        self.progress.message(f"step {self.step} sample: {s.sample_prompt + text!r}")

    def one_step(self) -> dict:
        s, config = self.settings, self.model.config
        inputs, targets, masks = batch(self.data, s, config, self.n_seq, self.step)
        lr = lr_schedule(self.step, max_lr=s.lr, total_steps=s.steps, warmup_steps=s.warmup_steps, min_lr=s.min_lr)
        metrics = train_step(self.model.params, config, self.optimizer, inputs, targets, lr=lr, grad_clip=s.grad_clip,
                             dropout=masks)
        self.step += 1
        if not math.isfinite(metrics["loss"]):
            raise InputError(f"the loss became {metrics['loss']} at step {self.step}; lower the learning rate (--lr) "
                             "or resume from the last checkpoint with a smaller one")
        metrics = {"step": self.step, **metrics}
        self.result.history.append(metrics)
        self.progress.update(self.step, metrics["loss"])
        return metrics

    def after_step(self) -> None:
        """Samples, evaluations and saves that fall on this step."""
        s, step = self.settings, self.step
        if s.sample_interval and step % s.sample_interval == 0:
            self.paused(self.sample)
        if step % s.eval_interval == 0 or step == s.steps:
            self.paused(lambda: self.evaluate(None if step == s.steps else s.eval_tokens))
            self.paused(lambda: self.save(final=step == s.steps))


def train(model: GPT2, data: Dataset, settings: TrainSettings, *, out: str | os.PathLike | None = None,
          checkpoint: str | os.PathLike | None = None, resume: dict | None = None, stream=None,
          on_step: Callable[[int, dict], None] | None = None, record: dict | None = None) -> TrainResult:
    """Train ``model`` (its params change in place) on ``data`` for ``settings.steps`` steps.

    Every ``eval_interval`` steps: a validation evaluation, a checkpoint in ``checkpoint`` and the
    model folder ``out`` rewritten (so an interrupted run always leaves a usable model), the loss
    plot redrawn. ``resume``: the state dict of a checkpoint (``load_checkpoint``), whose model
    and optimizer the caller has restored; training continues at its step. ``on_step(step,
    metrics)`` is called after every step (a notebook can collect losses; raising
    ``KeyboardInterrupt`` stops the run, which then saves a checkpoint of the last whole step).
    ``record``: extra fields for ``train_log.json`` (the command line, the data file).
    """
    n_seq = settings.n_seq or model.config.n_ctx
    if n_seq > model.config.n_ctx:
        raise ConfigError(f"n_seq={n_seq} is longer than the model's context n_ctx={model.config.n_ctx}")
    if model.tokenizer is None:
        raise InputError("the model has no tokenizer; training needs one to read the text")
    model.config.check_ids(data.train_ids, "the data has token id")
    run = TrainingRun(model, data, settings, n_seq, out=out, checkpoint=checkpoint, resume=resume, stream=stream, record=record)
    if run.step == 0 and not run.result.evals:
        run.paused(lambda: run.evaluate(settings.eval_tokens))
    try:
        while run.step < settings.steps:
            metrics = run.one_step()
            if on_step is not None:
                on_step(run.step, metrics)
            run.after_step()
    except KeyboardInterrupt:
        # The parameters only change inside optimizer.step, at the end of train_step; an interrupt
        # there is possible but rare, and is detected by AdamW's step counter not matching.
        run.progress.close()
        if run.optimizer.t == run.step and checkpoint is not None:
            run.save()
            run.progress.message(f"interrupted: checkpoint of step {run.step} saved in {checkpoint}; continue with --resume")
        raise
    run.progress.close()
    run.clock()
    run.result.completed = True
    return run.result


# ---- entry points: pre-training and fine-tuning -------------------------------------------------


RECORD_KEYS = ("mode", "command", "data", "data_sha256", "base_model", "resumed_at", "steps_at_resume")


def resume_run(checkpoint: Path, data_path, text: str, settings: TrainSettings, record: dict, *, out, stream, on_step,
               log: Callable[[str], None] | None = None) -> TrainResult:
    """Continue the run saved in ``checkpoint``: its model, tokenizer, optimiser and settings; the
    data must be the same file. A different ``settings.steps`` (above the step reached) changes the
    run's length: longer, or shorter, the cosine decay of the learning rate recomputed for the new
    total from the next step on."""
    model, arrays, scalars, state = load_checkpoint(checkpoint)
    if state.get("data_sha256") != record["data_sha256"]:
        raise InputError(
            f"{data_path} is not the file the checkpoint in {checkpoint} was trained on (its sha256 differs); "
            "resume with the same data, or start a new run"
        )
    saved = TrainSettings(**state["settings"])
    if settings.steps != saved.steps and settings.steps <= state["step"]:
        raise InputError(
            f"the checkpoint in {checkpoint} is already at step {state['step']}, so steps={settings.steps} would "
            f"train nothing; pass more steps than {state['step']}, or leave steps at the run's own {saved.steps}"
        )
    settings = saved.replace(steps=settings.steps) if settings.steps != saved.steps else saved
    state["optimizer_arrays"] = arrays
    resumed = {k: state[k] for k in RECORD_KEYS if k in state}  # the record as first written
    resumed["resumed_at"] = list(resumed.get("resumed_at", [])) + [state["step"]]
    resumed["steps_at_resume"] = list(resumed.get("steps_at_resume", [])) + [settings.steps]
    if log is not None:
        log(f"resuming {checkpoint} at step {state['step']} of {settings.steps}")
    data = encode_dataset(text, model.tokenizer, settings.val_fraction)
    return train(model, data, settings, out=out, checkpoint=checkpoint, resume=state, stream=stream,
                 on_step=on_step, record=resumed)


def _start(data_path, out, checkpoint, resume: bool, overwrite: bool, record: dict | None):
    """What both entry points do first: the checkpoint folder, the refusal to overwrite, the text and its record."""
    from .bpe import read_text

    checkpoint = default_checkpoint(out) if checkpoint is None else Path(checkpoint)
    check_out_folders(out, checkpoint, resume, overwrite)
    text = read_text(data_path)
    return checkpoint, text, {"data": os.fspath(data_path), "data_sha256": file_sha256(data_path), **(record or {})}


def pretrain(data_path: str | os.PathLike, out: str | os.PathLike, *, config: GPT2Config = DEFAULT_CONFIG,
             settings: TrainSettings = TrainSettings(), tokenizer=None, checkpoint: str | os.PathLike | None = None,
             resume: bool = False, overwrite: bool = False, stream=None, on_step=None, record: dict | None = None) -> TrainResult:
    """Pre-train a new GPT-2 of ``config``'s shape on a text file and write it to ``out``.

    Without a ``tokenizer``, a byte-level BPE of ``config.n_vocab`` tokens is learned from the
    training part of the text (``npgpt/training/bpe.py``), and the model's n_vocab is set to the
    size reached. With ``resume``, the model, tokenizer, optimizer and settings come from the
    checkpoint (``settings.steps`` may be raised to train longer).
    """
    from .bpe import learn_tokenizer

    checkpoint, text, record = _start(data_path, out, checkpoint, resume, overwrite, record)

    def log(message: str) -> None:
        print(message, file=stream or sys.stderr, flush=True)

    if resume:
        return resume_run(checkpoint, data_path, text, settings, record, out=out, stream=stream, on_step=on_step, log=log)
    check_memory(config, settings.batch_size, settings.n_seq or config.n_ctx)  # before minutes of BPE
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
    params = random_params(config, seed=settings.seed, position_init=settings.position_init,
                           init_std=settings.init_std, attn_init_std=settings.attn_init_std)
    model = GPT2(config=config, params=params, tokenizer=tokenizer, name=Path(out).name)
    log(f"model: {model!r}")
    return train(model, data, settings, out=out, checkpoint=checkpoint, stream=stream, on_step=on_step,
                 record=record | {"mode": "pretrain"})


def finetune(model: GPT2 | str | os.PathLike, data_path: str | os.PathLike, out: str | os.PathLike, *,
             settings: TrainSettings | None = None, checkpoint: str | os.PathLike | None = None, resume: bool = False,
             overwrite: bool = False, stream=None, on_step=None, record: dict | None = None) -> TrainResult:
    """Fine-tune an existing model (a ``GPT2``, a model folder or a name ``npgpt.load`` knows) on
    a text file with its own tokenizer, and write the result to ``out``.

    Fine-tuning is the same loop as pre-training, started from trained weights: a smaller
    learning rate, few steps, no weight decay by default, so the model adapts to the new text
    without forgetting what it knew.
    """
    settings = FINETUNE_SETTINGS if settings is None else settings
    checkpoint, text, record = _start(data_path, out, checkpoint, resume, overwrite, record)
    if resume:
        return resume_run(checkpoint, data_path, text, settings, record, out=out, stream=stream, on_step=on_step)
    if not isinstance(model, GPT2):
        import npgpt

        source = os.fspath(model)
        model = npgpt.load(model)
        record["base_model"] = source
    else:
        model = GPT2(config=model.config, params=copy_params(model.params), tokenizer=model.tokenizer, name=model.name)
    if model.tokenizer is None:
        raise InputError("the model has no tokenizer files (vocab.json + merges.txt); add them to its folder to fine-tune it")
    model.name = Path(out).name
    settings = settings.replace(n_seq=min(settings.n_seq or model.config.n_ctx, model.config.n_ctx))
    check_memory(model.config, settings.batch_size, settings.n_seq)
    data = encode_dataset(text, model.tokenizer, settings.val_fraction)
    return train(model, data, settings, out=out, checkpoint=checkpoint, stream=stream, on_step=on_step,
                 record=record | {"mode": "finetune"})


def copy_params(params: dict) -> dict:
    """A deep copy of a params dict, in float32 (fine-tuning must not change the caller's model)."""
    if isinstance(params, dict):
        return {k: copy_params(v) for k, v in params.items()}
    if isinstance(params, list):
        return [copy_params(v) for v in params]
    return np.array(params, dtype=np.float32, copy=True)
