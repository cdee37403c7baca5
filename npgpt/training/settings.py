"""The settings of a training run: ``TrainSettings`` (hyper-parameters and run control), the
default shape (a quick 4-layer model), and fine-tuning's defaults.

Leaves out: the loop itself (``npgpt/training/loop.py``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

from ..config import GPT2Config
from ..errors import ConfigError
from .data import REPEAT_SOURCES


@dataclass(frozen=True)
class TrainSettings:
    """The hyper-parameters of one training run (defaults: a quick run, about half an hour on
    two cores for the default shape; the bundled model's longer recipe is in ``weights/README.md``).

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
    position_init       how the learned position embeddings start: "normal" (GPT-2's N(0, 0.01))
                        or "sinusoidal" (the original Transformer's encoding, then learned), with
                        which previous-token heads, and so induction heads, form sooner
    init_std            standard deviation of the initial weights (GPT-2: 0.02, chosen for 768
                        wide models; raising it for every weight did not make heads form sooner
                        in our runs: see attn_init_std)
    attn_init_std       the query, key and value weights' alone (None: init_std); about 6x 0.02
                        lets a small model's induction heads form within a few thousand steps
    repeat_source       what ``repeat_fraction``'s spans hold: "random" tokens, or "text" (a stretch
                        of the window's own text written again right after itself)
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
    position_init: str = "normal"
    init_std: float = 0.02
    attn_init_std: float | None = None
    repeat_source: str = "random"

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
        for name in ("lr", "min_lr", "weight_decay", "beta1", "beta2", "grad_clip", "val_fraction", "dropout", "repeat_fraction", "init_std"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
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
        if self.position_init not in ("normal", "sinusoidal"):
            raise ConfigError(f"position_init must be 'normal' or 'sinusoidal', got {self.position_init!r}")
        if not self.init_std > 0:
            raise ConfigError(f"init_std must be > 0 (GPT-2 uses 0.02), got {self.init_std}")
        if self.attn_init_std is not None and not (isinstance(self.attn_init_std, (int, float))
                                                   and math.isfinite(self.attn_init_std) and self.attn_init_std > 0):
            raise ConfigError(f"attn_init_std must be > 0 or None, got {self.attn_init_std!r}")
        if self.repeat_source not in REPEAT_SOURCES:
            raise ConfigError(f"repeat_source must be one of {', '.join(REPEAT_SOURCES)}, got {self.repeat_source!r}")
        if not 0 <= self.repeat_fraction <= 1:
            raise ConfigError(f"repeat_fraction must be in [0, 1], got {self.repeat_fraction}")

    def replace(self, **changes) -> "TrainSettings":
        return dataclasses.replace(self, **changes)


def training_memory(config: GPT2Config, batch_size: int, n_seq: int) -> int:
    """Bytes a training step needs, roughly: float32 parameters, gradients and AdamW's two moments
    (4 copies), plus the activations the backward pass keeps (per token: about 16 n_embd values
    and the attention pattern per layer, and the logits with their gradient)."""
    tokens = batch_size * n_seq
    per_layer = 16 * config.n_embd + 2 * config.n_head * n_seq
    activations = tokens * (config.n_layer * per_layer + 2 * config.n_vocab)
    return 4 * (4 * config.n_params() + activations)


def available_memory() -> int | None:
    """Bytes of memory available now (Linux's MemAvailable, else the physical total), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(config: GPT2Config, batch_size: int, n_seq: int) -> None:
    """Refuse a run whose estimated memory exceeds what is available, before anything is allocated."""
    from .._files import human_size

    needed, free = training_memory(config, batch_size, n_seq), available_memory()
    if free is not None and needed > free:
        raise ConfigError(
            f"training this model ({config.n_params() / 1e6:,.1f}M parameters, batch {batch_size} x {n_seq} tokens) needs "
            f"about {human_size(needed)} of memory but {human_size(free)} is available; use fewer or narrower "
            "layers (--n-layer, --n-embd), a smaller --batch-size or a shorter --n-seq"
        )


DEFAULT_CONFIG = GPT2Config(n_vocab=1024, n_ctx=256, n_embd=192, n_head=6, n_layer=4)  # 2M parameters: quick to train


# Fine-tuning's defaults: a small learning rate, no weight decay, a short run, 4 windows of 256
# tokens per step (with gpt2's 50257-token vocabulary, the logits of one step take 200 MB).
FINETUNE_SETTINGS = TrainSettings(steps=200, batch_size=4, n_seq=256, lr=1e-4, min_lr=1e-5, warmup_steps=20, weight_decay=0.0,
                                  beta2=0.999, eval_interval=50, sample_interval=100)
