"""What a run shows while it trains: a progress line, durations, the loss curve.

Leaves out: dashboards and experiment trackers (``train_log.json`` holds every number).
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

from .._files import atomic_path


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
    from matplotlib.figure import Figure  # no pyplot: no global backend to set, nothing to close

    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.subplots()
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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
