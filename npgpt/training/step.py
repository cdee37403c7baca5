"""One training step and the measurements around it: the loss and its gradient, an optimiser
update, the validation loss, a sample.

One training step is the whole of deep learning in four lines (``train_step``):

    logits = gpt2(inputs, params, config, tap=Tap(cache=cache))   # model.py's forward, keeping activations
    loss   = cross_entropy(logits, targets) / count               # how surprised the model is, in nats per token
    grads  = gpt2_backward(dlogits, inputs, params, config, cache)  # backward.py, mirror of the forward
    AdamW.step(params, clip_grad_norm(grads))                     # optim.py, with a warm-up + cosine learning rate

Leaves out: gradient accumulation and mixed precision.
"""

from __future__ import annotations

import numpy as np

from ..activations import Tap
from ..config import GPT2Config
from ..engine import forward
from ..model import gpt2
from ..weights import flatten
from .backward import cross_entropy, cross_entropy_backward, gpt2_backward
from .optim import AdamW, clip_grad_norm


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


def nats_per_char(model, text: str, n_seq: int | None = None, batch_size: int = 16) -> tuple[float, float]:
    """(nats per token, nats per character) of ``model`` on ``text``, every token after the first
    predicted once, as training's validation does."""
    ids = np.asarray(model.tokenizer.encode_ordinary(text), dtype=np.int32)
    nats, count = evaluate(model.params, model.config, ids, n_seq or model.config.n_ctx, batch_size)
    chars = len(text) - len(model.tokenizer.decode(ids[:1].tolist()))
    return nats / count, nats / chars


def sample_text(model, prompt: str, n_tokens: int, seed: int) -> str:
    """A sample of ``n_tokens`` after ``prompt`` (temperature 0.8, top-k 40), for the log."""
    prompt_ids = model.tokenizer.encode_ordinary(prompt) or [model.tokenizer.eot_id]
    n_tokens = min(n_tokens, model.config.n_ctx - len(prompt_ids))
    if n_tokens <= 0:
        return ""
    return model.generate(prompt_ids, max_new_tokens=n_tokens, temperature=0.8, top_k=40, seed=seed, ignore_eos=True)
