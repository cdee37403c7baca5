"""GPT-2's backward pass: one function per forward function of ``npgpt/model.py``, in the same order.

``<forward>_backward`` is the mirror of ``<forward>``: it takes the gradient of the loss with
respect to the forward's output (``dy``, always the same shape as that output) plus what the
forward saw (its inputs, or activations it stored in the cache), and returns the gradients with
respect to the forward's inputs and parameters. Parameter gradients come back as dicts with the
parameters' own names, so the gradients of the whole model form one nested dict shaped exactly
like ``params`` (``grads["h"][3]["attn"]["c_attn"]["weight"]``).

Nothing is stored here: the forward pass of ``model.py`` run with ``cache={}`` already keeps every
intermediate the backward pass needs (``blocks.{l}.ln1``, ``attn.q/k/v``, ``attn.pattern``,
``attn.z``, ``mlp.pre``, ``mlp.post``, ``ln_final``, ...; the table is in ``model.py``'s
docstring). What is cheap to recompute (a layer norm's mean and variance, GELU's tanh) is
recomputed rather than kept.

Dimension letters as in ``model.py``: batch, n_seq, n_kv, n_embd, n_head, d_head, d_mlp, n_vocab.
``dX`` always means d(loss)/dX and has X's shape.

The training loss is not in ``model.py`` (which stops at logits), so its forward
(``cross_entropy``) lives at the end of this file with its backward.

Leaves out: gradients through the KV cache and through hooks (training runs without either),
and dropout (npgpt trains without it). Reference: the backward functions of Karpathy's llm.c
``train_gpt2.c``, which are laid out the same way; the tests check every function against
PyTorch autograd, and a whole model's gradients against ``transformers``' ``GPT2LMHeadModel``.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import GPT2Config
from ..model import merge_heads, positions, softmax, split_heads, token_masks

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


# ---- the math, one function per step, mirroring model.py ----------------------------------------


def gelu_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Mirror of ``gelu``: dx = dy * GELU'(x), with x the input GELU saw (``mlp.pre``).

    GELU(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), so
    GELU'(x) = 0.5 (1 + tanh(u)) + 0.5 x (1 - tanh(u)^2) du/dx, du/dx = sqrt(2/pi) (1 + 3*0.044715 x^2).
    """
    # In place on three arrays of x's size, as model.gelu does: the one-line form
    # dy * (0.5 * (1 + t) + 0.5 * x * (1 - t*t) * du) makes a dozen temporaries of [.., d_mlp].
    c = _SQRT_2_OVER_PI
    du = np.asarray(x * x)  # x^2
    t = du * (0.044715 * c)
    t += c
    t *= x
    np.tanh(t, out=t)  # t = tanh(u), recomputed rather than stored by the forward
    du *= 3 * 0.044715 * c
    du += c  # du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    dx = t * t
    np.subtract(1.0, dx, out=dx)  # 1 - tanh(u)^2
    dx *= x
    dx *= du
    dx += t
    dx += 1.0
    dx *= 0.5  # 0.5 (1 + t) + 0.5 x (1 - t^2) du
    dx *= dy
    return dx


def softmax_backward(dy: np.ndarray, y: np.ndarray, axis: int = -1, out: np.ndarray | None = None) -> np.ndarray:
    """Mirror of ``softmax``: dx = y * (dy - sum(dy * y)), with y the softmax's output.

    The Jacobian of softmax is diag(y) - y y^T; applied to dy it gives the line above, so the full
    [n_kv, n_kv] Jacobian is never built. Where y is 0 (a masked score, -inf before the softmax)
    the gradient is 0: no gradient flows through the mask. ``out`` (as in NumPy; it may be ``dy``
    itself when the caller owns it) saves allocating the result, the size of an attention pattern.
    """
    dot = np.sum(dy * y, axis=axis, keepdims=True)  # [..., 1]: the part of dy along y
    dx = np.subtract(dy, dot, out=out)
    dx *= y
    return dx


def layer_norm_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray, eps: float = 1e-5):
    """Mirror of ``layer_norm``: returns dx and {"weight": dweight, "bias": dbias}.

    With xhat = (x - mean) * rstd, rstd = 1/sqrt(var + eps), y = xhat * weight + bias:
    dweight = sum over positions of dy * xhat, dbias = sum of dy, and, per position,
    dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) with dxhat = dy * weight
    (the two means are what the mean and the variance contribute).
    """
    mean = np.mean(x, axis=-1, keepdims=True)  # [..., 1], recomputed as the forward did
    rstd = 1.0 / np.sqrt(np.var(x, axis=-1, keepdims=True) + eps)  # [..., 1]
    xhat = (x - mean) * rstd  # [..., n_embd]
    dxhat = dy * weight  # [..., n_embd]
    dx = rstd * (dxhat - np.mean(dxhat, axis=-1, keepdims=True) - xhat * np.mean(dxhat * xhat, axis=-1, keepdims=True))
    n_embd = x.shape[-1]
    dweight = np.sum((dy * xhat).reshape(-1, n_embd), axis=0)  # [n_embd]
    dbias = np.sum(dy.reshape(-1, n_embd), axis=0)  # [n_embd]
    return dx, {"weight": dweight, "bias": dbias}


def linear_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray):
    """Mirror of ``linear`` (y = x @ weight + bias): returns dx and {"weight": dweight, "bias": dbias}.

    dx = dy @ weight^T; dweight = x^T @ dy summed over every position (all leading axes are
    flattened into one, so it is a single matrix product); dbias = the sum of dy.
    """
    n_in, n_out = weight.shape
    dx = dy @ weight.T  # [..., n_out] -> [..., n_in]
    dy2 = dy.reshape(-1, n_out)  # [positions, n_out]
    dweight = x.reshape(-1, n_in).T @ dy2  # [n_in, positions] @ [positions, n_out] -> [n_in, n_out]
    dbias = np.sum(dy2, axis=0)  # [n_out]
    return dx, {"weight": dweight, "bias": dbias}


def embed_backward(dy: np.ndarray, ids: np.ndarray, n_vocab: int) -> np.ndarray:
    """Mirror of ``embed`` (a row lookup): dwte[id] is the sum of dy over every position holding id.

    dy: [batch, n_seq, n_embd], ids: [batch, n_seq] -> dwte: [n_vocab, n_embd] (rows of tokens
    not in the batch stay 0).
    """
    dwte = np.zeros((n_vocab, dy.shape[-1]), dtype=dy.dtype)
    np.add.at(dwte, ids.reshape(-1), dy.reshape(-1, dy.shape[-1]))  # scatter-add: ids repeat
    return dwte


def pos_embed_backward(dy: np.ndarray, positions: np.ndarray, n_ctx: int) -> np.ndarray:
    """Mirror of ``pos_embed``: the same scatter-add as ``embed_backward``, over positions."""
    return embed_backward(dy, positions, n_ctx)


def split_heads_backward(dy: np.ndarray) -> np.ndarray:
    """Mirror of ``split_heads``: a reshape and a transpose, so its backward is their inverse."""
    return merge_heads(dy)  # [batch, n_head, n_seq, d_head] -> [batch, n_seq, n_embd]


def merge_heads_backward(dy: np.ndarray, n_head: int) -> np.ndarray:
    """Mirror of ``merge_heads``: split the gradient back into heads."""
    return split_heads(dy, n_head)  # [batch, n_seq, n_embd] -> [batch, n_head, n_seq, d_head]


def attention_backward(dz: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, pattern: np.ndarray):
    """Mirror of ``attention``: from dz [batch, n_head, n_seq, d_head] to (dq, dk, dv).

    Forward: scores = q k^T / sqrt(d_head), masked; pattern = softmax(scores); z = pattern v.
    Backward, last step first: dpattern = dz v^T and dv = pattern^T dz; dscores from the softmax's
    backward (0 wherever the mask hid a key, since the pattern is 0 there); then
    dq = dscores k / sqrt(d_head) and dk = dscores^T q / sqrt(d_head).
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    dpattern = dz @ v.swapaxes(-1, -2)  # [.., n_seq, d_head] @ [.., d_head, n_kv] -> [.., n_seq, n_kv]
    dv = pattern.swapaxes(-1, -2) @ dz  # [.., n_kv, n_seq] @ [.., n_seq, d_head] -> [.., n_kv, d_head]
    dscores = softmax_backward(dpattern, pattern, axis=-1, out=dpattern)  # [.., n_seq, n_kv], in dpattern's memory
    dscores *= scale  # the forward's 1/sqrt(d_head); a Python float keeps float32 float32
    dq = dscores @ k  # [.., n_seq, n_kv] @ [.., n_kv, d_head] -> [.., n_seq, d_head]
    dk = dscores.swapaxes(-1, -2) @ q  # [.., n_kv, n_seq] @ [.., n_seq, d_head] -> [.., n_kv, d_head]
    return dq, dk, dv


def mha_backward(dy: np.ndarray, x: np.ndarray, c_attn: dict, c_proj: dict, n_head: int, cache: dict, prefix: str = ""):
    """Mirror of ``mha``: dy [batch, n_seq, n_embd] -> dx and {"c_attn": ..., "c_proj": ...}.

    x is mha's input (``ln1``); ``cache`` holds the forward's ``{prefix}attn.q/k/v/pattern/z``.
    """
    z = cache[f"{prefix}attn.z"]  # [batch, n_head, n_seq, d_head]
    dmerged, d_c_proj = linear_backward(dy, merge_heads(z), c_proj["weight"])  # [batch, n_seq, n_embd]
    dz = merge_heads_backward(dmerged, n_head)  # [batch, n_head, n_seq, d_head]
    q, k, v = (cache[f"{prefix}attn.{name}"] for name in "qkv")
    dq, dk, dv = attention_backward(dz, q, k, v, cache[f"{prefix}attn.pattern"])
    # np.split's backward is a concatenation along the same axis.
    dqkv = np.concatenate([split_heads_backward(dq), split_heads_backward(dk), split_heads_backward(dv)], axis=-1)
    dx, d_c_attn = linear_backward(dqkv, x, c_attn["weight"])  # [batch, n_seq, 3*n_embd] -> [.., n_embd]
    return dx, {"c_attn": d_c_attn, "c_proj": d_c_proj}


def ffn_backward(dy: np.ndarray, x: np.ndarray, c_fc: dict, c_proj: dict, cache: dict, prefix: str = ""):
    """Mirror of ``ffn``: dy [batch, n_seq, n_embd] -> dx and {"c_fc": ..., "c_proj": ...}.

    x is the MLP's input (``ln2``); ``cache`` holds ``{prefix}mlp.pre`` and ``{prefix}mlp.post``.
    """
    dpost, d_c_proj = linear_backward(dy, cache[f"{prefix}mlp.post"], c_proj["weight"])  # [.., d_mlp]
    dpre = gelu_backward(dpost, cache[f"{prefix}mlp.pre"])  # [batch, n_seq, d_mlp]
    dx, d_c_fc = linear_backward(dpre, x, c_fc["weight"])  # [batch, n_seq, d_mlp] -> [.., n_embd]
    return dx, {"c_fc": d_c_fc, "c_proj": d_c_proj}


def transformer_block_backward(dy, ln_1, attn, ln_2, mlp, *, n_head, eps, cache, layer=0, dropout=None):
    """Mirror of ``transformer_block``: dy = d(loss)/d(resid_post) -> d(loss)/d(resid_pre) and the
    block's gradients {"ln_1", "attn", "ln_2", "mlp"}.

    A residual add copies its gradient to both branches, so dy flows straight through to the
    block's input and each branch adds its own share: that is why deep residual networks train.
    ``dropout``: the keep-masks the forward multiplied ``attn_out`` and ``mlp_out`` by (training).
    """
    p = f"blocks.{layer}."
    keep = dropout or {}
    # resid_post = resid_mid + dropout(mlp(ln_2(resid_mid)))
    dmlp_out = dy * keep[p + "mlp_out"] if p + "mlp_out" in keep else dy
    dh, d_mlp = ffn_backward(dmlp_out, cache[p + "ln2"], **mlp, cache=cache, prefix=p)
    dx_ln, d_ln_2 = layer_norm_backward(dh, cache[p + "resid_mid"], ln_2["weight"], eps)
    dmid = dy + dx_ln  # [batch, n_seq, n_embd]
    # resid_mid = resid_pre + dropout(mha(ln_1(resid_pre)))
    dattn_out = dmid * keep[p + "attn_out"] if p + "attn_out" in keep else dmid
    dh, d_attn = mha_backward(dattn_out, cache[p + "ln1"], **attn, n_head=n_head, cache=cache, prefix=p)
    dx_ln, d_ln_1 = layer_norm_backward(dh, cache[p + "resid_pre"], ln_1["weight"], eps)
    dpre = dmid + dx_ln  # [batch, n_seq, n_embd]
    return dpre, {"ln_1": d_ln_1, "attn": d_attn, "ln_2": d_ln_2, "mlp": d_mlp}


def gpt2_backward(dlogits: np.ndarray, ids: np.ndarray, params: dict, config: GPT2Config, cache: dict, *, attention_mask=None,
                  dropout: dict | None = None) -> dict:
    """Mirror of ``gpt2``: from d(loss)/d(logits) [batch, n_seq, n_vocab] to the gradient of every
    parameter, as a nested dict shaped like ``params``.

    ``cache`` is the dict the forward filled (``gpt2(ids, params, config, cache=cache)``), with the
    same ``ids`` and ``attention_mask``. The tied token embedding gets two contributions: one as the
    LM head (logits = ln_final @ wte^T) and one as the input embedding. ``dropout``: the keep-masks
    the forward's hooks multiplied activations by, when training with dropout
    (``npgpt.train.dropout_masks``).
    """
    wte = params["wte"]["weight"]
    n_embd = wte.shape[1]
    # logits = ln_final @ wte^T: the LM head's share of wte's gradient, and the gradient into ln_f
    flat_dlogits = dlogits.reshape(-1, config.n_vocab)  # [positions, n_vocab]
    dwte = flat_dlogits.T @ cache["ln_final"].reshape(-1, n_embd)  # [n_vocab, n_embd]
    dx = dlogits @ wte  # [batch, n_seq, n_vocab] @ [n_vocab, n_embd] -> [batch, n_seq, n_embd]
    resid_final = cache[f"blocks.{config.n_layer - 1}.resid_post"]  # ln_f's input
    dx, d_ln_f = layer_norm_backward(dx, resid_final, params["ln_f"]["weight"], config.layer_norm_eps)
    d_blocks = [None] * config.n_layer
    for layer in reversed(range(config.n_layer)):
        dx, d_blocks[layer] = transformer_block_backward(
            dx, **params["h"][layer], n_head=config.n_head, eps=config.layer_norm_eps, cache=cache, layer=layer,
            dropout=dropout,
        )
    if dropout and "blocks.0.resid_pre" in dropout:  # blocks.0.resid_pre = dropout(embed + pos_embed)
        dx = dx * dropout["blocks.0.resid_pre"]
    # x = embed(ids) + pos_embed(positions): both get the full gradient of the residual stream
    _, full_mask = token_masks(ids, attention_mask, None)
    dwte += embed_backward(dx, ids, config.n_vocab)
    dwpe = pos_embed_backward(dx, positions(full_mask, ids.shape[1]), config.n_ctx)  # as gpt2() computes them
    return {"wte": {"weight": dwte}, "wpe": {"weight": dwpe}, "h": d_blocks, "ln_f": d_ln_f}


# ---- the loss: its forward is here because model.py stops at logits -----------------------------


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, int]:
    """Summed next-token cross-entropy in nats, and how many targets it covers.

    logits: [..., n_vocab]; targets: int [...], the id that should come next at each position, or
    a negative number to skip the position (padding, a prompt not to train on). Loss per target =
    logsumexp(logits) - logits[target] = -log softmax(logits)[target]. Divide the sum by the count
    for the mean (the training loss), or by a number of characters for nats per character.
    """
    flat_logits = logits.reshape(-1, logits.shape[-1])  # [positions, n_vocab]
    flat_targets = targets.reshape(-1)
    keep = flat_targets >= 0
    rows = flat_logits if keep.all() else flat_logits[keep]  # (boolean indexing copies; skip it when it can)
    row_max = rows.max(axis=-1, keepdims=True)
    logsumexp = np.log(np.sum(np.exp(rows - row_max), axis=-1)) + row_max[:, 0]  # [kept]
    picked = rows[np.arange(len(rows)), flat_targets[keep]]
    return float(np.sum(logsumexp.astype(np.float64) - picked)), int(keep.sum())


def cross_entropy_backward(logits: np.ndarray, targets: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Mirror of ``cross_entropy``: d(scale * summed loss)/d(logits) = scale * (softmax(logits) - onehot(target)).

    Pass ``scale = 1 / count`` for the gradient of the mean loss. Skipped positions (target < 0)
    get a zero gradient.
    """
    shape = logits.shape
    dlogits = softmax(logits.reshape(-1, shape[-1]), axis=-1)  # [positions, n_vocab], a new array
    flat_targets = targets.reshape(-1)
    keep = flat_targets >= 0
    dlogits[np.flatnonzero(keep), flat_targets[keep]] -= 1.0
    dlogits[~keep] = 0.0
    dlogits *= np.asarray(scale, dtype=dlogits.dtype)
    return dlogits.reshape(shape)
