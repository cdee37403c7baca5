"""Every fast path of ``npgpt/fast/model.py`` against its reference in ``npgpt/model.py``, on random
inputs: the same numbers to float32 rounding (relative error <= 1e-5 unless stated), with a KV
cache, left padding and last-position-only work where they apply. ``npgpt/engine.py`` must send
recording and hooked calls to the reference and the rest to the fast path.
"""

from __future__ import annotations

import numpy as np
import pytest

import npgpt
from npgpt import engine
from npgpt import model as ref
from npgpt.fast import model as fast
from npgpt.kv_cache import KVCache


def close(got, expected, rtol=1e-5):
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    assert got.shape == expected.shape
    err = np.linalg.norm(got - expected) / max(np.linalg.norm(expected), 1e-30)
    assert err <= rtol, f"relative error {err:.2e}"


def randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def padded_mask(batch, n_seq, pad):
    mask = np.ones((batch, n_seq), bool)
    mask[0, :pad] = False
    return mask


def test_gelu_and_softmax():
    rng = np.random.default_rng(0)
    x = randn(rng, 3, 50, 64, scale=3.0)
    close(fast.gelu(x), ref.gelu(x))
    scores = randn(rng, 2, 3, 7, 7, scale=4.0)
    scores[0, 0, 2] = -np.inf  # a fully masked row
    scores[1, :, :, 5] = -np.inf
    expected = ref.softmax(scores)
    got = fast.softmax_(scores.copy())
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert np.all(got[0, 0, 2] == 0)


@pytest.mark.parametrize("n_past, n_seq", [(0, 9), (5, 4), (0, 300)])
def test_attention_and_mha_with_a_cache_past_and_padding(n_past, n_seq):
    rng = np.random.default_rng(n_seq)
    batch, n_head, d_head = 2, 4, 8
    n_embd = n_head * d_head
    full = padded_mask(batch, n_past + n_seq, 3)
    mask = ref.causal_mask(full, n_seq)
    q = randn(rng, batch, n_head, n_seq, d_head)
    k, v = randn(rng, batch, n_head, n_past + n_seq, d_head), randn(rng, batch, n_head, n_past + n_seq, d_head)
    expected = ref.attention(q, k, v, mask)
    close(fast.attention(q, k, v, mask), expected)
    close(fast.causal_attention(q, k, v, mask, block=4), expected)
    p = {"c_attn": {"weight": randn(rng, n_embd, 3 * n_embd, scale=0.3), "bias": randn(rng, 3 * n_embd, scale=0.1)},
         "c_proj": {"weight": randn(rng, n_embd, n_embd, scale=0.2), "bias": randn(rng, n_embd, scale=0.1)}}
    x = randn(rng, batch, n_seq, n_embd)
    want = ref.mha(x, **p, n_head=n_head, mask=ref.causal_mask(padded_mask(batch, n_seq, 3), n_seq))
    got = fast.mha(x, **p, n_head=n_head, mask=ref.causal_mask(padded_mask(batch, n_seq, 3), n_seq))
    close(got, want)
    last = fast.mha(x, **p, n_head=n_head, mask=ref.causal_mask(padded_mask(batch, n_seq, 3), n_seq), last_only=True)
    close(last, want[:, -1:])


def test_ffn_block_and_unembed_in_float16():
    rng = np.random.default_rng(1)
    n_embd, d_mlp = 32, 128
    mlp = {"c_fc": {"weight": randn(rng, n_embd, d_mlp, scale=0.3), "bias": randn(rng, d_mlp, scale=0.1)},
           "c_proj": {"weight": randn(rng, d_mlp, n_embd, scale=0.1), "bias": randn(rng, n_embd, scale=0.1)}}
    x = randn(rng, 2, 6, n_embd)
    close(fast.ffn(x, **mlp), ref.ffn(x, **mlp))
    block = npgpt.random_params(npgpt.GPT2Config(n_vocab=50, n_ctx=16, n_embd=n_embd, n_head=4, n_layer=1), seed=2)["h"][0]
    mask = ref.causal_mask(padded_mask(2, 6, 2), 6)
    want = ref.transformer_block(x, **block, n_head=4, eps=1e-5, mask=mask)
    close(fast.transformer_block(x, **block, n_head=4, eps=1e-5, mask=mask), want)
    close(fast.transformer_block(x, **block, n_head=4, eps=1e-5, mask=mask, last_only=True), want[:, -1:])
    wte = randn(rng, 20000, n_embd).astype(np.float16)  # more rows than one widened chunk
    close(fast.unembed(x, wte), ref.unembed(x, wte))


@pytest.mark.parametrize("last_only", [False, True])
def test_whole_model_with_padding_and_a_kv_cache(tiny_model, last_only):
    params, config = tiny_model.params, tiny_model.config
    ids = np.random.default_rng(3).integers(0, config.n_vocab, (2, 12))
    mask = padded_mask(2, 12, 4)
    close(fast.gpt2(ids, params, config, attention_mask=mask, last_only=last_only),
          ref.gpt2(ids, params, config, attention_mask=mask, last_only=last_only))
    kv_fast, kv_ref = KVCache(config, batch=2), KVCache(config, batch=2)
    fast.gpt2(ids[:, :8], params, config, attention_mask=mask[:, :8], kv_cache=kv_fast)
    ref.gpt2(ids[:, :8], params, config, attention_mask=mask[:, :8], kv_cache=kv_ref)
    step_fast = fast.gpt2(ids[:, 8:], params, config, kv_cache=kv_fast, last_only=last_only)
    step_ref = ref.gpt2(ids[:, 8:], params, config, kv_cache=kv_ref, last_only=last_only)
    close(step_fast, step_ref)
    close(kv_fast.keys, kv_ref.keys)


def test_the_engine_sends_recording_and_hooks_to_the_reference(tiny_model, monkeypatch):
    calls = []
    original, original_fast = engine.reference.gpt2, engine.fast.gpt2
    monkeypatch.setattr(engine.fast, "gpt2", lambda *a, **k: calls.append("fast") or original_fast(*a, **k))
    monkeypatch.setattr(engine.reference, "gpt2", lambda *a, **k: calls.append("reference") or original(*a, **k))
    ids = np.arange(5)
    tiny_model.logits(ids)
    tiny_model.run_with_cache(ids)
    tiny_model.logits(ids, hooks={"blocks.0.attn.z": lambda z: z})
    assert calls == ["fast", "reference", "reference"]
    with pytest.raises(npgpt.InputError, match="did you mean 'blocks.1.attn.z'"):
        tiny_model.logits(ids, hooks={"blocks.1.attn.zz": lambda z: z})
