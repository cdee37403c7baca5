"""Optimisation: AdamW with decoupled weight decay, gradient clipping, warm-up + cosine learning rate.

The three pieces every GPT training run uses, each as small as it can be:

    clip_grad_norm   scale all gradients down together when their global L2 norm exceeds a bound,
                     so one bad batch cannot throw the weights far away
    lr_schedule      linear warm-up from 0 to ``max_lr``, then a cosine decay to ``min_lr``
    AdamW            Adam (a per-parameter step size from running averages of the gradient and
                     of its square) plus weight decay applied to the weights directly ("decoupled",
                     Loshchilov & Hutter 2019), not added to the gradient

Parameters and gradients are flat dicts ``{checkpoint name: array}`` (``weights.flatten(params)``
gives views of the model's own arrays, so updating them updates the model). ``AdamW.step`` changes
the parameter arrays in place, like ``torch.optim.AdamW``: it is the one function of npgpt that
writes into its arguments, because a training step must not copy the whole model.

Weight decay is applied to matrices (the linear weights and the embeddings) and not to biases or
layer-norm gains, as in GPT-2/GPT-3 and nanoGPT: decaying a gain towards 0 would fight the
normalisation. ``decays(name, array)`` is that rule.

Leaves out: other optimisers, mixed precision, gradient accumulation across calls (the training
loop averages over its batch instead). The tests check ``AdamW`` against ``torch.optim.AdamW``
and ``clip_grad_norm`` against ``torch.nn.utils.clip_grad_norm_`` step by step.
"""

from __future__ import annotations

import math

import numpy as np


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float) -> tuple[dict[str, np.ndarray], float]:
    """Scale every gradient by min(1, max_norm / (norm + 1e-6)), norm = the L2 norm of all of them.

    Returns the (new) clipped gradients and the norm before clipping, which is worth logging: a
    spike in it is the first sign of a run going unstable. ``max_norm <= 0`` turns clipping off.
    Same rule and epsilon as ``torch.nn.utils.clip_grad_norm_``.
    """
    norm = math.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads.values()))
    if max_norm <= 0 or norm <= max_norm:
        return grads, norm
    scale = max_norm / (norm + 1e-6)
    return {name: g * np.asarray(scale, dtype=g.dtype) for name, g in grads.items()}, norm


def lr_schedule(step: int, *, max_lr: float, total_steps: int, warmup_steps: int = 0, min_lr: float = 0.0) -> float:
    """The learning rate for optimiser step ``step`` (0-based).

    Warm-up: the first ``warmup_steps`` steps ramp linearly from max_lr/warmup_steps up to max_lr
    (Adam's second-moment estimate is poor at the start, so early steps are kept small). Then a
    half cosine from max_lr down to min_lr, reached at the last step ``total_steps - 1``.

    >>> [round(lr_schedule(s, max_lr=1.0, total_steps=6, warmup_steps=2), 3) for s in range(7)]
    [0.5, 1.0, 0.854, 0.5, 0.146, 0.0, 0.0]
    """
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= total_steps - 1:
        return min_lr
    progress = (step + 1 - warmup_steps) / (total_steps - warmup_steps)  # in (0, 1): the decay's share done
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def decays(name: str, array: np.ndarray) -> bool:
    """Whether weight decay applies: to matrices (linear weights, embeddings), not biases or gains."""
    return array.ndim >= 2


class AdamW:
    """AdamW with the same update, bias correction and epsilon placement as ``torch.optim.AdamW``.

    For each parameter p with gradient g, at step t = 1, 2, ...:

        p <- p - lr * weight_decay * p                  (decoupled decay, matrices only)
        m <- beta1 * m + (1 - beta1) * g                (running mean of the gradient)
        v <- beta2 * v + (1 - beta2) * g^2              (running mean of its square)
        p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    The state (``m``, ``v``, ``t``) is plain arrays and an int, so a checkpoint saves it with
    ``state_dict()`` and a resumed run continues exactly.
    """

    def __init__(self, params: dict[str, np.ndarray], *, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, decay_rule=decays):
        self.lr, self.beta1, self.beta2, self.eps, self.weight_decay = lr, betas[0], betas[1], eps, weight_decay
        self.decay = {name: bool(decay_rule(name, p)) for name, p in params.items()}
        self.m = {name: np.zeros_like(p) for name, p in params.items()}
        self.v = {name: np.zeros_like(p) for name, p in params.items()}
        self.t = 0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float | None = None) -> None:
        """One update of every parameter, in place. ``lr`` overrides the default (for a schedule)."""
        lr = self.lr if lr is None else lr
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step_size = lr / (1.0 - b1**self.t)
        sqrt_bias2 = math.sqrt(1.0 - b2**self.t)
        for name, p in params.items():
            g, m, v = grads[name], self.m[name], self.v[name]
            if self.decay[name] and self.weight_decay:
                p *= p.dtype.type(1.0 - lr * self.weight_decay)
            m += (1.0 - b1) * (g - m)  # = b1 m + (1 - b1) g, written as torch's lerp, in place
            v *= b2
            v += (1.0 - b2) * (g * g)
            denom = np.sqrt(v)
            denom /= sqrt_bias2
            denom += self.eps
            p -= step_size * (m / denom)

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        """(arrays, scalars): ``{"m.NAME": m, "v.NAME": v}`` and ``{"t": t, "lr": ..., ...}``."""
        arrays = {f"m.{n}": a for n, a in self.m.items()} | {f"v.{n}": a for n, a in self.v.items()}
        scalars = {"t": self.t, "lr": self.lr, "betas": [self.beta1, self.beta2], "eps": self.eps,
                   "weight_decay": self.weight_decay}
        return arrays, scalars

    def load_state_dict(self, arrays: dict[str, np.ndarray], scalars: dict) -> None:
        """Restore what ``state_dict`` returned (the arrays are copied in, shapes checked)."""
        for name in self.m:
            for kind, store in (("m", self.m), ("v", self.v)):
                saved = arrays[f"{kind}.{name}"]
                if saved.shape != store[name].shape:
                    raise ValueError(f"optimizer state {kind}.{name} has shape {saved.shape}, expected {store[name].shape}")
                store[name][...] = saved
        self.t = int(scalars["t"])
        self.lr = float(scalars["lr"])
        self.beta1, self.beta2 = (float(b) for b in scalars["betas"])
        self.eps = float(scalars["eps"])
        self.weight_decay = float(scalars["weight_decay"])
