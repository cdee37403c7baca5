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
from npgpt.generate import generate_ids
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


def test_layer_norm_and_linear():
    rng = np.random.default_rng(4)
    x = randn(rng, 2, 5, 48, scale=3.0) + 7.0  # an offset: the mean must come out before the variance
    weight, bias = randn(rng, 48), randn(rng, 48)
    close(fast.layer_norm(x, weight, bias, eps=1e-5), ref.layer_norm(x, weight, bias, eps=1e-5), rtol=2e-6)
    close(fast.layer_norm(x[0, 0], weight, bias), ref.layer_norm(x[0, 0], weight, bias), rtol=2e-6)  # one row, 1-D
    w, b = randn(rng, 48, 20), randn(rng, 20)
    close(fast.linear(x, w, b), ref.linear(x, w, b), rtol=1e-6)
    close(fast.linear(x, w.astype(np.float16), b.astype(np.float16)), ref.linear(x, w.astype(np.float16), b.astype(np.float16)))
    before = x.copy()
    fast.layer_norm(x, weight, bias), fast.linear(x, w, b)
    np.testing.assert_array_equal(x, before)  # inputs are never written


def test_gelu_and_softmax():
    rng = np.random.default_rng(0)
    x = randn(rng, 3, 50, 64, scale=3.0)
    close(fast.gelu(x), ref.gelu(x))
    scores = randn(rng, 2, 3, 7, 7, scale=4.0)
    scores[0, 0, 2] = -np.inf  # a fully masked row
    scores[1, :, :, 5] = -np.inf
    expected = ref.softmax(scores)
    got = scores.copy()
    got /= fast.exp_rows_(got)  # the exponentials in place, then the division its callers make
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert np.all(got[0, 0, 2] == 0)


@pytest.mark.parametrize("n_past, n_seq, pad", [(0, 9, 3), (5, 4, 3), (0, 300, 3), (0, 9, 0), (5, 11, 0), (7, 300, 0)])
def test_attention_and_mha_with_a_cache_past_and_padding(n_past, n_seq, pad):
    rng = np.random.default_rng(n_seq)
    batch, n_head, d_head = 2, 4, 8
    n_embd = n_head * d_head
    full = padded_mask(batch, n_past + n_seq, pad)
    mask = ref.causal_mask(full, n_seq)
    q = randn(rng, batch, n_head, n_seq, d_head)
    k, v = randn(rng, batch, n_head, n_past + n_seq, d_head), randn(rng, batch, n_head, n_past + n_seq, d_head)
    expected = ref.attention(q, k, v, mask)
    close(fast.attention(q, k, v, mask), expected)
    close(fast.causal_attention(q, k, v, mask, block=4), expected)
    close(fast.causal_attention(q, k, v, mask, block=5), expected)  # the last block shorter than the others
    if not pad:  # no padding: a mask of the last n_seq keys alone, every earlier key visible
        close(fast.attention(q, k, v, mask[..., n_past:]), expected)
    softmax = ref.softmax((q @ k.swapaxes(-1, -2)) / np.sqrt(d_head) + mask)  # the reference's pattern
    pattern = np.zeros((batch, n_head, n_seq, n_past + n_seq), np.float32)
    close(fast.causal_attention(q, k, v, mask, block=5, pattern=pattern), expected)  # kept, the same z
    np.testing.assert_allclose(pattern, softmax, rtol=0, atol=2e-6)
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
    close(kv_fast.keys, kv_ref.keys)  # the last block's keys and values too, with last_only
    close(kv_fast.values, kv_ref.values)


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


@pytest.mark.parametrize("padded", [False, True])
def test_attention_of_one_query_against_a_cache(padded):
    rng = np.random.default_rng(5)
    batch, n_head, n_kv, d_head = 3, 4, 11, 8
    q = randn(rng, batch, n_head, d_head)
    k, v = randn(rng, batch, n_head, n_kv, d_head), randn(rng, batch, n_head, n_kv, d_head)
    past = padded_mask(batch, n_kv - 1, 4 if padded else 0)
    mask = fast.padding_mask(past) if padded else None
    full_mask = ref.causal_mask(np.concatenate([past, np.ones((batch, 1), bool)], axis=1), 1)  # [batch, 1, 1, n_kv]
    if padded:
        np.testing.assert_array_equal(mask, full_mask[:, :, 0])
    expected = ref.merge_heads(ref.attention(q[:, :, None], k, v, full_mask))  # [batch, 1, n_embd]
    close(fast.attend_one(q, k, v, mask), expected[:, 0])


def as_float16(tree):
    if isinstance(tree, dict):
        return {k: as_float16(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [as_float16(v) for v in tree]
    return tree.astype(np.float16)


def decode_reference_and_fast(model, prompt, mask, steps, rng):
    """Prefill both caches with the reference, then decode ``steps`` tokens per row with each path:
    the logits of every step and both caches."""
    params, config = model.params, model.config
    kv_ref, kv_fast = KVCache(config, batch=len(prompt)), KVCache(config, batch=len(prompt))
    for kv in (kv_ref, kv_fast):
        ref.gpt2(prompt, params, config, attention_mask=mask, kv_cache=kv)
    got, want = [], []
    for _ in range(steps):
        ids = rng.integers(0, config.n_vocab, (len(prompt), 1))
        want.append(ref.gpt2(ids, params, config, kv_cache=kv_ref))
        got.append(fast.decode_step(ids, params, config, kv_fast))
    return np.stack(got), np.stack(want), kv_fast, kv_ref


@pytest.mark.parametrize("batch, pad", [(1, 0), (3, 0), (3, 5)])
def test_decode_step_equals_the_reference_step(tiny_model, batch, pad):
    rng = np.random.default_rng(batch + pad)
    prompt = rng.integers(0, tiny_model.config.n_vocab, (batch, 9))
    mask = padded_mask(batch, 9, pad) if pad else None
    got, want, kv_fast, kv_ref = decode_reference_and_fast(tiny_model, prompt, mask, 6, rng)
    assert got.shape == want.shape == (6, batch, 1, tiny_model.config.n_vocab)
    close(got, want)
    assert kv_fast.length == kv_ref.length == 15
    np.testing.assert_array_equal(kv_fast.mask, kv_ref.mask)
    close(kv_fast.keys[:, :, :, :15], kv_ref.keys[:, :, :, :15])
    close(kv_fast.values[:, :, :, :15], kv_ref.values[:, :, :, :15])


def test_decode_step_with_float16_weights_and_a_one_token_prompt(tiny_model):
    half = npgpt.GPT2(tiny_model.config, as_float16(tiny_model.params))
    rng = np.random.default_rng(7)
    got, want, _, _ = decode_reference_and_fast(half, rng.integers(0, 300, (2, 1)), None, 3, rng)
    assert got.dtype == np.float32
    close(got, want)


def test_block_step_is_the_block_on_one_position(tiny_model):
    config, block = tiny_model.config, tiny_model.params["h"][0]
    rng = np.random.default_rng(8)
    x = randn(rng, 2, 5, config.n_embd)
    kv_ref, kv_fast = KVCache(config, batch=2), KVCache(config, batch=2)
    mask = ref.causal_mask(np.ones((2, 5), bool), 5)
    want = ref.transformer_block(x, **block, n_head=config.n_head, eps=1e-5, mask=mask, kv=kv_ref.layer(0))
    kv_fast.extend(0, kv_ref.keys[0, :, :, :4], kv_ref.values[0, :, :, :4])
    kv_fast.length = 4
    row = x[:, 4].copy()
    got = fast.block_step(row, **block, n_head=config.n_head, eps=1e-5, kv=kv_fast.layer(0))
    close(got, want[:, 4])
    np.testing.assert_array_equal(row, x[:, 4])  # the caller's rows are not written
    close(kv_fast.keys[0, :, :, :5], kv_ref.keys[0, :, :, :5])


def test_the_engine_sends_decode_steps_to_decode_step(tiny_model, monkeypatch):
    calls = []
    for name in ("gpt2", "decode_step"):
        original = getattr(engine.fast, name)
        monkeypatch.setattr(engine.fast, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    result = generate_ids(tiny_model, [1, 2, 3], max_new_tokens=4, temperature=0)
    assert calls == ["gpt2", "decode_step", "decode_step", "decode_step"]
    calls.clear()
    tiny_model.run_with_cache([1, 2, 3])  # recording: the reference, whatever the shape
    kv = tiny_model.new_kv_cache()
    tiny_model.logits([[1, 2]], kv_cache=kv)
    tiny_model.logits([[3]], kv_cache=kv)
    tiny_model.logits([[4]], kv_cache=kv, hooks={"blocks.0.attn.z": lambda z: z})
    assert calls == ["gpt2", "decode_step"]
    assert len(result.completions[0].ids) == 4


@pytest.mark.parametrize("n_past", [0, 6])
def test_causal_attention_without_the_max_and_its_fallback(n_past, monkeypatch):
    # Without padding, causal_attention takes exp(scores) without subtracting each row's max. Scores
    # for which that is unsafe (a row sum outside UNSHIFTED_SUMS: exp near overflow, or a row whose
    # every score is so low that its products with small values of V would lose their digits) and values
    # that overflow the product with V must send the block back to the max-subtracting path: the
    # same z, finite, no NumPy warning.
    rng = np.random.default_rng(7)
    batch, n_head, n_seq, d_head = 1, 2, 10, 16
    n_kv = n_past + n_seq
    q = randn(rng, batch, n_head, n_seq, d_head)
    k, v = randn(rng, batch, n_head, n_kv, d_head), randn(rng, batch, n_head, n_kv, d_head, scale=30.0)
    mask = ref.causal_mask(np.ones((batch, n_kv), bool), n_seq)
    unshifted = fast.attention_unshifted(q, k, v, mask[..., n_past:])  # ordinary scores: this path holds
    assert unshifted is not None
    close(unshifted, ref.attention(q, k, v, mask))
    fallbacks = []
    monkeypatch.setattr(fast, "attention", lambda *a: fallbacks.append(1) or ref.attention(*a[:4]))
    close(fast.causal_attention(q, k, v, mask, block=4), ref.attention(q, k, v, mask))
    assert not fallbacks  # ordinary scores never take the slower path
    monkeypatch.undo()

    block = slice(4, 8)  # the block holding query 7
    query = q[0, 1, 7]
    cases = [("one", 50.0, 1.0, True), ("one", 87.0, 1.0, True), ("one", 120.0, 1.0, True), ("one", 40.0, 1e24, True),
             ("all", -95.0, 1.0, True), ("all", -25.0, 1.0, True), ("all", -17.0, 1e-25, False)]
    for kind, score, v_scale, falls_back in cases:
        # one key past the sums' upper bound; near float32's exp limit; past it; a sum within bounds
        # but values so large that exp(40) * v overflows the product with V, though the softmax's
        # does not; every key query 7 sees scoring about -95 (exp subnormal, digits lost) and about
        # -25 (below the sums' floor); and about -17, just above the floor, with values of V so
        # small (1e-25) that the products keep their digits only because the floor is where it is
        k2, v2 = k.copy(), v * np.float32(v_scale)
        keys = [0] if kind == "one" else list(range(n_past + 8))
        for key in keys:  # key scaled along query 7 to score `score` (+- 0.5 for "all") against it
            target = score + (0.5 * rng.standard_normal() if kind == "all" else 0.0)
            k2[0, 1, key] = query * (target * np.sqrt(d_head) / (query @ query))
        scores = query @ k2[0, 1, : n_past + 8].T / np.sqrt(d_head)
        assert abs(scores.max() - score) < (2.0 if kind == "all" else 1e-3 * score)
        args = q[:, :, block], k2[:, :, : n_past + 8], v2[:, :, : n_past + 8], mask[:, :, block, n_past + 4 : n_past + 8]
        unshifted = fast.attention_unshifted(*args)
        assert (unshifted is None) == falls_back
        if unshifted is not None:
            close(unshifted, ref.attention(*args[:3], mask[:, :, block, : n_past + 8]))  # the block's full mask
        with np.errstate(over="raise", invalid="raise", divide="raise"):  # what NumPy warns about by default
            got = fast.causal_attention(q, k2, v2, mask, block=4)
        close(got, ref.attention(q, k2, v2, mask))


@pytest.mark.parametrize("name, most", [("shakespeare", 27.98), ("shakespeare-induction", 20.27)])
def test_trained_models_scores_stay_on_the_unshifted_path(name, most, monkeypatch):
    # docs/generation.md: a working model's attention scores stay far below where exp without the
    # row max is unsafe (a score above about 44). Checked on the two trained models in weights/,
    # over the held-out Shakespeare in 128-token windows: their highest score, and no block of
    # the fast prefill falling back to the max path.
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "weights" / name
    if not (folder / "model.safetensors").exists():
        pytest.skip(f"weights/{name} is not built")
    model = npgpt.load(folder)
    text = (Path(__file__).parent / "data" / "heldout_shakespeare.txt").read_text(encoding="utf-8")
    ids, n_ctx = model.tokenizer.encode(text), model.config.n_ctx
    windows = [ids[s : s + n_ctx] for s in range(0, len(ids) - n_ctx + 1, n_ctx)]
    assert len(windows) >= 19
    highest = max(float(np.max(np.where(np.isfinite(s := model.run_with_cache(w)[1]["scores", layer]), s, -np.inf)))
                  for w in windows for layer in range(model.config.n_layer))
    assert highest == pytest.approx(most, abs=0.01)
    fallbacks = []
    real = fast.attention
    monkeypatch.setattr(fast, "attention", lambda q, *a: fallbacks.append(q.shape[2]) or real(q, *a))
    for w in windows:
        model.logits(w)  # the fast forward pass: causal_attention over the whole window
    assert not [n for n in fallbacks if n > 1], "a block of a trained model's prompt took the max path"


def test_causal_attention_keeps_the_max_below_float32(monkeypatch):
    # attention_unshifted's bounds are float32's: float16 inputs (never made by npgpt, which widens
    # float16 weights to float32 activations) take the max path, and still match the reference.
    rng = np.random.default_rng(9)
    q, k, v = (randn(rng, 1, 2, 9, 8).astype(np.float16) for _ in range(3))
    mask = ref.causal_mask(np.ones((1, 9), bool), 9)
    unshifted = []
    real = fast.attention_unshifted
    monkeypatch.setattr(fast, "attention_unshifted", lambda *a: unshifted.append(a[0].dtype) or real(*a))
    got = fast.causal_attention(q, k, v, mask, block=4)
    assert unshifted == [] and got.dtype == np.float16
    close(got, ref.attention(q.astype(np.float32), k.astype(np.float32), v.astype(np.float32), mask), rtol=2e-3)
    fast.causal_attention(q.astype(np.float32), k.astype(np.float32), v.astype(np.float32), mask, block=4)
    assert unshifted == [np.float32] * 3  # float32 takes it, block by block
