"""The backward pass (npgpt/training/backward.py) and the optimiser (npgpt/training/optim.py) against PyTorch.

Every ``<forward>_backward`` is compared with ``torch.autograd`` on random inputs through the same
computation written in torch, in float64 (relative error <= 1e-6) and float32 (<= 1e-4), where
relative error = ||ours - torch|| / ||torch|| over the whole gradient tensor. A whole model's
gradients are compared with ``transformers``' ``GPT2LMHeadModel`` holding the same weights and
batch, and a few AdamW steps with ``torch.optim.AdamW``. One finite-difference check needs no
torch at all. ``pytest -s`` prints the measured errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import npgpt
from npgpt.training import backward as B
from npgpt import model as M
from npgpt.activations import Tap
from npgpt.training.optim import AdamW, clip_grad_norm, decays, lr_schedule
from npgpt.weights import flatten, params_from_checkpoint

torch = pytest.importorskip("torch")
F = torch.nn.functional
pytestmark = pytest.mark.oracle

TOL = {np.float64: 1e-6, np.float32: 1e-4}
DTYPES = [np.float64, np.float32]


def rel_err(ours, theirs) -> float:
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape
    return float(np.linalg.norm(ours - theirs) / max(np.linalg.norm(theirs), 1e-300))


def check(name, ours, theirs, dtype):
    err = rel_err(ours, theirs)
    print(f"{name} [{np.dtype(dtype).name}]: relative error {err:.1e}")
    assert np.asarray(ours).dtype == dtype, f"{name}: gradient came back as {np.asarray(ours).dtype}"
    assert np.linalg.norm(np.asarray(theirs, np.float64)) > 0  # never compare two zero gradients
    assert err <= TOL[dtype], f"{name}: relative error {err:.2e} > {TOL[dtype]:.0e}"


def autograd(fn, inputs, dy):
    """torch's gradients of sum(fn(*inputs) * dy) with respect to each input (numpy in, numpy out)."""
    ts = [torch.tensor(a, requires_grad=True) for a in inputs]
    out = fn(*ts)
    out.backward(torch.tensor(dy))
    return [t.grad.numpy() for t in ts]


def randn(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def causal_padded_mask(rng, batch, n_seq):
    """bool [batch, 1, n_seq, n_seq], True where a query may look: causal, with random keys hidden
    (as padding is), but never the query's own."""
    causal = np.tril(np.ones((n_seq, n_seq), dtype=bool))
    keys = rng.random((batch, n_seq)) > 0.3
    allowed = causal[None] & keys[:, None, :]
    allowed |= np.eye(n_seq, dtype=bool)[None]
    return allowed[:, None]


def additive(allowed):
    """The mask as model.py's attention takes it: 0 where allowed, -inf where not."""
    return np.where(allowed, np.float32(0.0), np.float32(-np.inf))


# ---- torch versions of the forward functions, for autograd --------------------------------------


def t_layer_norm(x, w, b, eps=1e-5):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps)


def t_attention(q, k, v, allowed):
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~torch.as_tensor(allowed), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def t_mha(x, wa, ba, wp, bp, n_head, allowed):
    batch, n_seq, n_embd = x.shape
    q, k, v = (x @ wa + ba).split(n_embd, dim=-1)
    heads = [t.reshape(batch, n_seq, n_head, -1).transpose(1, 2) for t in (q, k, v)]
    z = t_attention(*heads, allowed)
    return z.transpose(1, 2).reshape(batch, n_seq, n_embd) @ wp + bp


def t_mlp(x, wf, bf, wp, bp):
    return F.gelu(x @ wf + bf, approximate="tanh") @ wp + bp


# ---- one test per backward function, in model.py's order ------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_backward(dtype):
    rng = np.random.default_rng(0)
    x, dy = randn(rng, (3, 5, 64), dtype, 2.0), randn(rng, (3, 5, 64), dtype)
    (expected,) = autograd(lambda t: F.gelu(t, approximate="tanh"), [x], dy)
    check("gelu", B.gelu_backward(dy, x), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_backward_with_masked_entries(dtype):
    rng = np.random.default_rng(1)
    x, dy = randn(rng, (2, 3, 7, 7), dtype, 3.0), randn(rng, (2, 3, 7, 7), dtype)
    x = np.where(np.tril(np.ones((7, 7), bool)), x, -np.inf).astype(dtype)  # masked like attention scores
    (expected,) = autograd(lambda t: torch.softmax(t, dim=-1), [x], dy)
    dy_before = dy.copy()
    ours = B.softmax_backward(dy, M.softmax(x, axis=-1), axis=-1)
    assert np.array_equal(dy, dy_before)  # without out=, the input is left alone
    assert np.all(ours[..., np.triu_indices(7, 1)[0], np.triu_indices(7, 1)[1]] == 0)  # nothing through the mask
    check("softmax", ours, expected, dtype)


def test_softmax_backward_by_hand():
    # y = softmax([0, log 3]) = [1/4, 3/4]; J = diag(y) - y y^T; J @ [1, 0] = [3/16, -3/16]
    y = M.softmax(np.array([0.0, np.log(3.0)]))
    np.testing.assert_allclose(B.softmax_backward(np.array([1.0, 0.0]), y), [3 / 16, -3 / 16], rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_backward(dtype):
    rng = np.random.default_rng(2)
    x, dy = randn(rng, (3, 5, 32), dtype, 2.0) + dtype(0.5), randn(rng, (3, 5, 32), dtype)
    w, b = randn(rng, 32, dtype, 0.3) + dtype(1.0), randn(rng, 32, dtype, 0.1)
    dx, dw, db = autograd(t_layer_norm, [x, w, b], dy)
    ours_dx, ours = B.layer_norm_backward(dy, x, w, eps=1e-5)
    check("layer_norm dx", ours_dx, dx, dtype)
    check("layer_norm dweight", ours["weight"], dw, dtype)
    check("layer_norm dbias", ours["bias"], db, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_backward(dtype):
    rng = np.random.default_rng(3)
    x, w, b, dy = randn(rng, (3, 5, 16), dtype), randn(rng, (16, 24), dtype), randn(rng, 24, dtype), randn(rng, (3, 5, 24), dtype)
    dx, dw, db = autograd(lambda x, w, b: x @ w + b, [x, w, b], dy)
    ours_dx, ours = B.linear_backward(dy, x, w)
    check("linear dx", ours_dx, dx, dtype)
    check("linear dweight", ours["weight"], dw, dtype)
    check("linear dbias", ours["bias"], db, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embed_and_pos_embed_backward(dtype):
    rng = np.random.default_rng(4)
    wte, dy = randn(rng, (11, 8), dtype), randn(rng, (3, 6, 8), dtype)
    ids = rng.integers(0, 11, size=(3, 6))
    ids[0, :3] = 7  # a repeated token: its gradients must add up
    (expected,) = autograd(lambda w: w[torch.as_tensor(ids)], [wte], dy)
    check("embed", B.embed_backward(dy, ids, 11), expected, dtype)
    positions = np.tile(np.arange(6), (3, 1))
    (expected,) = autograd(lambda w: w[torch.as_tensor(positions)], [wte], dy)
    check("pos_embed", B.pos_embed_backward(dy, positions, 11), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_split_and_merge_heads_backward(dtype):
    rng = np.random.default_rng(5)
    x, dy = randn(rng, (2, 5, 12), dtype), randn(rng, (2, 3, 5, 4), dtype)
    (expected,) = autograd(lambda t: t.reshape(2, 5, 3, 4).transpose(1, 2), [x], dy)
    check("split_heads", B.split_heads_backward(dy), expected, dtype)
    (expected,) = autograd(lambda t: t.transpose(1, 2).reshape(2, 5, 12), [dy], x)
    check("merge_heads", B.merge_heads_backward(x, 3), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_backward_with_causal_and_padding_mask(dtype):
    rng = np.random.default_rng(6)
    q, k, v, dz = (randn(rng, (2, 3, 9, 8), dtype) for _ in range(4))
    allowed = causal_padded_mask(rng, 2, 9)
    dq, dk, dv = autograd(lambda q, k, v: t_attention(q, k, v, allowed), [q, k, v], dz)
    cache = {}
    M.attention(q, k, v, additive(allowed), tap=Tap(cache=cache))
    ours = B.attention_backward(dz, q, k, v, cache["attn.pattern"])
    for name, a, b in zip("qkv", ours, (dq, dk, dv)):
        check(f"attention d{name}", a, b, dtype)


def _block_params(rng, n_embd, d_mlp, dtype):
    def lin(n_in, n_out, scale=0.2):
        return {"weight": randn(rng, (n_in, n_out), dtype, scale), "bias": randn(rng, n_out, dtype, 0.1)}

    def ln():
        return {"weight": randn(rng, n_embd, dtype, 0.2) + dtype(1.0), "bias": randn(rng, n_embd, dtype, 0.1)}

    return {"ln_1": ln(), "attn": {"c_attn": lin(n_embd, 3 * n_embd), "c_proj": lin(n_embd, n_embd)},
            "ln_2": ln(), "mlp": {"c_fc": lin(n_embd, d_mlp), "c_proj": lin(d_mlp, n_embd)}}


@pytest.mark.parametrize("dtype", DTYPES)
def test_mha_backward(dtype):
    rng = np.random.default_rng(7)
    p = _block_params(rng, 16, 64, dtype)["attn"]
    x, dy = randn(rng, (2, 7, 16), dtype), randn(rng, (2, 7, 16), dtype)
    allowed = causal_padded_mask(rng, 2, 7)
    flat = [x, p["c_attn"]["weight"], p["c_attn"]["bias"], p["c_proj"]["weight"], p["c_proj"]["bias"]]
    expected = autograd(lambda *t: t_mha(*t, n_head=4, allowed=allowed), flat, dy)
    cache = {}
    M.mha(x, **p, n_head=4, mask=additive(allowed), tap=Tap(cache=cache))
    dx, grads = B.mha_backward(dy, x, **p, n_head=4, cache=cache)
    ours = [dx, grads["c_attn"]["weight"], grads["c_attn"]["bias"], grads["c_proj"]["weight"], grads["c_proj"]["bias"]]
    for name, a, b in zip(["dx", "c_attn.weight", "c_attn.bias", "c_proj.weight", "c_proj.bias"], ours, expected):
        check(f"mha {name}", a, b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ffn_backward(dtype):
    rng = np.random.default_rng(8)
    p = _block_params(rng, 16, 64, dtype)["mlp"]
    x, dy = randn(rng, (2, 7, 16), dtype), randn(rng, (2, 7, 16), dtype)
    flat = [x, p["c_fc"]["weight"], p["c_fc"]["bias"], p["c_proj"]["weight"], p["c_proj"]["bias"]]
    expected = autograd(t_mlp, flat, dy)
    cache = {}
    M.ffn(x, **p, tap=Tap(cache=cache))
    dx, grads = B.ffn_backward(dy, x, **p, cache=cache)
    ours = [dx, grads["c_fc"]["weight"], grads["c_fc"]["bias"], grads["c_proj"]["weight"], grads["c_proj"]["bias"]]
    for name, a, b in zip(["dx", "c_fc.weight", "c_fc.bias", "c_proj.weight", "c_proj.bias"], ours, expected):
        check(f"mlp {name}", a, b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_transformer_block_backward(dtype):
    rng = np.random.default_rng(9)
    p = _block_params(rng, 16, 64, dtype)
    x, dy = randn(rng, (2, 7, 16), dtype), randn(rng, (2, 7, 16), dtype)
    allowed = causal_padded_mask(rng, 2, 7)
    names = list(flatten(p))
    leaves = [flatten(p)[n] for n in names]

    def t_block(x, *leaves):
        q = dict(zip(names, leaves))
        h = x + t_mha(t_layer_norm(x, q["ln_1.weight"], q["ln_1.bias"]), q["attn.c_attn.weight"], q["attn.c_attn.bias"],
                      q["attn.c_proj.weight"], q["attn.c_proj.bias"], 4, allowed)
        return h + t_mlp(t_layer_norm(h, q["ln_2.weight"], q["ln_2.bias"]), q["mlp.c_fc.weight"], q["mlp.c_fc.bias"],
                         q["mlp.c_proj.weight"], q["mlp.c_proj.bias"])

    expected = autograd(t_block, [x, *leaves], dy)
    cache = {}
    M.transformer_block(x, **p, n_head=4, eps=1e-5, mask=additive(allowed), tap=Tap(cache=cache).block(0))
    dx, grads = B.transformer_block_backward(dy, **p, n_head=4, eps=1e-5, cache=cache)
    check("block dx", dx, expected[0], dtype)
    flat_grads = flatten(grads)
    assert list(flat_grads) == names  # gradients come back shaped exactly like the params
    for name, theirs in zip(names, expected[1:]):
        check(f"block {name}", flat_grads[name], theirs, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_and_its_backward(dtype):
    rng = np.random.default_rng(10)
    logits = randn(rng, (3, 5, 13), dtype, 3.0)
    targets = rng.integers(0, 13, size=(3, 5))
    targets[1, 2] = -1  # skipped position
    loss, count = B.cross_entropy(logits, targets)
    t_logits = torch.tensor(logits, requires_grad=True)
    t_loss = F.cross_entropy(t_logits.reshape(-1, 13), torch.as_tensor(targets).reshape(-1), ignore_index=-1, reduction="sum")
    t_loss.backward()
    assert count == 14
    assert abs(loss - t_loss.item()) <= TOL[dtype] * abs(t_loss.item())
    dlogits = B.cross_entropy_backward(logits, targets)
    assert np.all(dlogits[1, 2] == 0)
    check("cross_entropy", dlogits, t_logits.grad.numpy(), dtype)
    check("cross_entropy mean", B.cross_entropy_backward(logits, targets, scale=1 / count), t_logits.grad.numpy() / count, dtype)


# ---- the whole model against transformers' GPT2LMHeadModel ---------------------------------------


def loss_and_grads(params, config, ids):
    """npgpt: mean next-token cross-entropy of ``ids`` and the gradient of every parameter."""
    cache = {}
    logits = M.gpt2(ids[:, :-1], params, config, tap=Tap(cache=cache))
    total, count = B.cross_entropy(logits, ids[:, 1:])
    dlogits = B.cross_entropy_backward(logits, ids[:, 1:], scale=1.0 / count)
    return total / count, B.gpt2_backward(dlogits, ids[:, :-1], params, config, cache)


@pytest.mark.parametrize("dtype", DTYPES)
def test_whole_model_gradients_match_transformers(dtype):
    from conftest import hf_gpt2

    config = npgpt.GPT2Config(n_vocab=97, n_ctx=32, n_embd=48, n_head=4, n_layer=3)
    hf = hf_gpt2(config, seed=3).to(torch.float64 if dtype == np.float64 else torch.float32)
    tensors = {name: t.detach().numpy() for name, t in hf.state_dict().items()}
    params = params_from_checkpoint(tensors, config, source="hf", dtype=dtype)
    ids = np.random.default_rng(11).integers(0, 97, size=(3, 25))

    hf.zero_grad()
    t_ids = torch.as_tensor(ids)
    out = hf(t_ids[:, :-1])
    t_loss = F.cross_entropy(out.logits.reshape(-1, 97), t_ids[:, 1:].reshape(-1))
    t_loss.backward()

    loss, grads = loss_and_grads(params, config, ids)
    assert abs(loss - t_loss.item()) <= TOL[dtype] * t_loss.item()
    flat = flatten(grads)
    theirs = {name.removeprefix("transformer."): p.grad.numpy() for name, p in hf.named_parameters()}
    assert set(flat) == set(theirs) == set(flatten(params))
    for name in sorted(flat):  # wte's gradient sums the LM head's and the embedding's shares
        check(f"model {name}", flat[name], theirs[name], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_whole_model_gradients_with_dropout_match_transformers(dtype):
    """Training with dropout: npgpt's keep-masks (``train.dropout_masks``) put into transformers'
    three dropout places (``transformer.drop`` and each block's two ``resid_dropout``s) give the
    same loss and gradients."""
    from conftest import hf_gpt2
    from npgpt.training import dropout_masks, loss_and_grads as train_loss_and_grads

    config = npgpt.GPT2Config(n_vocab=97, n_ctx=32, n_embd=48, n_head=4, n_layer=3)
    hf = hf_gpt2(config, seed=3).to(torch.float64 if dtype == np.float64 else torch.float32)
    tensors = {name: t.detach().numpy() for name, t in hf.state_dict().items()}
    params = params_from_checkpoint(tensors, config, source="hf", dtype=dtype)
    ids = np.random.default_rng(11).integers(0, 97, size=(3, 25))
    masks = dropout_masks(config, (3, 24, 48), 0.3, np.random.default_rng(5))
    assert all(set(np.unique(m)) == {0.0, np.float32(1 / 0.7)} for m in masks.values())

    class FixedDropout(torch.nn.Module):
        def __init__(self, mask):
            super().__init__()
            self.mask = torch.as_tensor(mask.astype(dtype))

        def forward(self, x):
            return x * self.mask

    body = hf.transformer
    body.drop = FixedDropout(masks["blocks.0.resid_pre"])
    for layer, block in enumerate(body.h):
        block.attn.resid_dropout = FixedDropout(masks[f"blocks.{layer}.attn_out"])
        block.mlp.dropout = FixedDropout(masks[f"blocks.{layer}.mlp_out"])
    hf.zero_grad()
    t_ids = torch.as_tensor(ids)
    t_loss = F.cross_entropy(hf(t_ids[:, :-1]).logits.reshape(-1, 97), t_ids[:, 1:].reshape(-1))
    t_loss.backward()

    loss, grads = train_loss_and_grads(params, config, ids[:, :-1], ids[:, 1:], dropout=masks)
    plain, _ = train_loss_and_grads(params, config, ids[:, :-1], ids[:, 1:])
    assert abs(loss - plain) > 1e-3  # the masks did change the forward pass
    assert abs(loss - t_loss.item()) <= TOL[dtype] * t_loss.item()
    theirs = {name.removeprefix("transformer."): p.grad.numpy() for name, p in hf.named_parameters()}
    for name, grad in sorted(flatten(grads).items()):
        check(f"dropout {name}", grad, theirs[name], dtype)


def test_whole_model_gradient_by_finite_differences(tiny_model):
    """Independent of torch: a central difference of the float64 loss along random directions."""
    config = tiny_model.config
    params = params_from_checkpoint(flatten(tiny_model.params), config, source="tiny", dtype=np.float64)
    ids = np.random.default_rng(12).integers(0, config.n_vocab, size=(2, 12))
    _, grads = loss_and_grads(params, config, ids)
    flat_p, flat_g = flatten(params), flatten(grads)
    rng = np.random.default_rng(13)
    for name in ["wte.weight", "wpe.weight", "h.0.attn.c_attn.weight", "h.1.ln_2.bias", "h.1.mlp.c_fc.weight", "ln_f.weight"]:
        direction = rng.standard_normal(flat_p[name].shape)
        h = 1e-5
        original = flat_p[name].copy()
        flat_p[name][...] = original + h * direction
        up, _ = loss_and_grads(params, config, ids)
        flat_p[name][...] = original - h * direction
        down, _ = loss_and_grads(params, config, ids)
        flat_p[name][...] = original
        numeric = (up - down) / (2 * h)
        analytic = float(np.sum(flat_g[name] * direction))
        assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)), (name, numeric, analytic)


# ---- the optimiser ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_adamw_steps_match_torch(dtype):
    rng = np.random.default_rng(14)
    params = {"w": randn(rng, (6, 5), dtype), "b": randn(rng, 5, dtype), "emb": randn(rng, (9, 5), dtype)}
    t_params = {n: torch.nn.Parameter(torch.tensor(p)) for n, p in params.items()}
    settings = dict(betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    ours = AdamW(params, lr=1e-2, **settings)
    assert ours.decay == {"w": True, "b": False, "emb": True}  # biases and gains are not decayed
    theirs = torch.optim.AdamW([
        {"params": [t_params["w"], t_params["emb"]], "weight_decay": 0.1},
        {"params": [t_params["b"]], "weight_decay": 0.0},
    ], lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    for step in range(5):
        lr = lr_schedule(step, max_lr=1e-2, total_steps=5, warmup_steps=2)
        grads = {n: randn(rng, p.shape, dtype) for n, p in params.items()}
        ours.step(params, grads, lr=lr)
        for group in theirs.param_groups:
            group["lr"] = lr
        for n, p in t_params.items():
            p.grad = torch.tensor(grads[n])
        theirs.step()
    for n in params:
        check(f"AdamW {n}", params[n], t_params[n].detach().numpy(), dtype)
        assert rel_err(params[n], t_params[n].detach().numpy()) <= (1e-12 if dtype == np.float64 else 1e-6)


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(max_norm):
    rng = np.random.default_rng(15)
    grads = {"a": randn(rng, (4, 3), np.float32), "b": randn(rng, 7, np.float32)}
    t_params = [torch.nn.Parameter(torch.zeros(g.shape)) for g in grads.values()]
    for p, g in zip(t_params, grads.values()):
        p.grad = torch.tensor(g)
    t_norm = torch.nn.utils.clip_grad_norm_(t_params, max_norm)
    clipped, norm = clip_grad_norm(grads, max_norm)
    assert abs(norm - t_norm.item()) <= 1e-5 * t_norm.item()
    for ours, p in zip(clipped.values(), t_params):
        np.testing.assert_allclose(ours, p.grad.numpy(), rtol=1e-6)
    assert np.array_equal(grads["a"], np.asarray(t_params[0].grad) if max_norm > norm else grads["a"])  # inputs untouched


def test_lr_schedule_warmup_then_cosine():
    lrs = [lr_schedule(s, max_lr=1.0, total_steps=6, warmup_steps=2, min_lr=0.1) for s in range(8)]
    np.testing.assert_allclose(lrs[:2], [0.5, 1.0])  # linear warm-up
    assert all(a > b for a, b in zip(lrs[1:6], lrs[2:6]))  # strictly decreasing after it
    np.testing.assert_allclose(lrs[3], 0.1 + 0.9 * 0.5)  # half-way through the cosine: the mid value
    np.testing.assert_allclose(lrs[5:], [0.1] * 3)  # min_lr at the last step and beyond
    assert decays("h.0.mlp.c_fc.weight", np.zeros((2, 2))) and not decays("h.0.ln_1.weight", np.zeros(2))
