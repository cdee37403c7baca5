"""The model's plumbing: shapes, the activation cache, hooks, the KV cache, config and folder I/O, errors.

Numbers against Hugging Face are in test_model_oracle.py; these tests need only NumPy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import npgpt
from npgpt.fast import model as fast
from npgpt.model import attention, gelu, layer_norm, softmax


def test_docstring_examples():
    import doctest

    failures, tried = doctest.testmod(npgpt.model)
    assert tried >= 1 and failures == 0


def test_gelu_softmax_layer_norm_by_hand():
    # GELU(0) = 0, GELU(x) -> x for large x, GELU(-x) -> 0; tanh form at 1: 0.8411920
    assert gelu(np.float32(0.0)) == 0.0
    np.testing.assert_allclose(gelu(np.array([1.0, 10.0, -10.0], np.float32)), [0.841192, 10.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(softmax(np.array([0.0, np.log(3.0)])), [0.25, 0.75], rtol=1e-12)
    assert np.array_equal(softmax(np.array([-np.inf, -np.inf])), [0.0, 0.0])  # fully masked row
    y = layer_norm(np.array([1.0, 2.0, 3.0]), np.ones(3), np.zeros(3), eps=0.0)
    np.testing.assert_allclose(y, [-np.sqrt(1.5), 0.0, np.sqrt(1.5)], rtol=1e-12)


# The reference evaluates 0.5 x (1 + tanh(u)) as written: where tanh(u) is near -1 (x below about
# -5), 1 + tanh(u) cancels in float32, an absolute error up to about |x| * 2^-24 (3.6e-7 at x = -6),
# as in transformers' float32 gelu_new. The fast form x * sigmoid(2u) has no such cancellation.
@pytest.mark.parametrize("gelu, atol", [(gelu, 4e-7), (fast.gelu, 1e-7)], ids=["reference", "fast"])
def test_gelu_is_the_tanh_formula_everywhere(gelu, atol):
    # The fast gelu is computed as x * sigmoid(2u); both must equal the paper's 0.5 x (1 + tanh(u))
    # in float64, and stay finite and warning-free where exp(-2u) overflows float32 (x below about -10).
    x = np.concatenate([np.linspace(-12, 12, 20001), [-3e3, -88.0, 88.0, 3e3]]).astype(np.float32)
    x64 = x.astype(np.float64)
    expected = 0.5 * x64 * (1 + np.tanh(np.sqrt(2 / np.pi) * (x64 + 0.044715 * x64**3)))
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # what NumPy warns about by default
        y = gelu(x)
    np.testing.assert_allclose(y, expected, rtol=2e-6, atol=atol)
    assert y.dtype == np.float32


@pytest.mark.parametrize("n_past, n_seq, block", [(0, 300, 128), (0, 256, 64), (40, 150, 128), (0, 5, 2)])
def test_causal_attention_equals_attention(n_past, n_seq, block):
    # The long-prompt path skips the keys in every query block's future; it must give the same z,
    # with a KV-cache past, a last block shorter than the others, and a left-padded row.
    rng = np.random.default_rng(n_seq)
    batch, n_head, d_head, n_kv = 2, 3, 8, n_past + n_seq
    q = rng.normal(size=(batch, n_head, n_seq, d_head)).astype(np.float32)
    k, v = (rng.normal(size=(batch, n_head, n_kv, d_head)).astype(np.float32) for _ in range(2))
    real = np.ones((batch, n_kv), dtype=bool)
    real[1, : n_past + 3] = False  # row 1 is left-padded: its first queries see no key at all
    causal = np.arange(n_kv)[None, :] <= (n_past + np.arange(n_seq))[:, None]
    mask = np.where(causal[None, None] & real[:, None, None, :], np.float32(0), np.float32(-np.inf))
    expected = attention(q, k, v, mask)
    got = fast.causal_attention(q, k, v, mask, block=block)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert np.all(got[1, :, :3] == 0.0)  # row 1's first 3 queries see only padding: they attend to nothing


def test_long_prompt_fast_path_equals_recorded_pass():
    # model.logits on a prompt takes causal_attention; run_with_cache takes the plain path.
    config = npgpt.GPT2Config(n_vocab=300, n_ctx=400, n_embd=32, n_head=4, n_layer=2)
    model = npgpt.random_model(config, seed=3)
    ids = np.random.default_rng(4).integers(0, 300, (2, 333))
    mask = np.ones((2, 333), dtype=int)
    mask[0, :20] = 0
    fast = model.logits(ids, attention_mask=mask)
    logits, cache = model.run_with_cache(ids, attention_mask=mask)
    assert "blocks.0.attn.pattern" in cache
    np.testing.assert_allclose(fast, logits, atol=1e-5)


EXPECTED_SHAPES = {  # with batch=2, n_seq=5, tiny_model: n_embd=32, n_head=4, d_head=8, d_mlp=128
    "embed": (2, 5, 32), "pos_embed": (2, 5, 32),
    "resid_pre": (2, 5, 32), "ln1": (2, 5, 32),
    "attn.q": (2, 4, 5, 8), "attn.k": (2, 4, 5, 8), "attn.v": (2, 4, 5, 8),
    "attn.scores": (2, 4, 5, 5), "attn.pattern": (2, 4, 5, 5), "attn.z": (2, 4, 5, 8),
    "attn_out": (2, 5, 32), "resid_mid": (2, 5, 32), "ln2": (2, 5, 32),
    "mlp.pre": (2, 5, 128), "mlp.post": (2, 5, 128), "mlp_out": (2, 5, 32), "resid_post": (2, 5, 32),
    "ln_final": (2, 5, 32), "logits": (2, 5, 300),
}


def test_activation_cache_names_and_shapes(tiny_model):
    ids = np.arange(10).reshape(2, 5)
    logits, cache = tiny_model.run_with_cache(ids)
    expected = {}
    for name, shape in EXPECTED_SHAPES.items():
        if name in ("embed", "pos_embed", "ln_final", "logits"):
            expected[name] = shape
        else:
            for layer in range(2):
                expected[f"blocks.{layer}.{name}"] = shape
    assert {k: v.shape for k, v in cache.items()} == expected
    assert all(v.dtype == np.float32 for v in cache.values())
    assert np.array_equal(cache["logits"], logits)
    # the one table of activations lists exactly these names, with these axes
    from npgpt.activations import ACTIVATIONS, axes

    sizes = {"batch": 2, "n_seq": 5, "n_kv": 5, "n_embd": 32, "n_head": 4, "d_head": 8, "d_mlp": 128, "n_vocab": 300}
    assert set(ACTIVATIONS) == {n if n in ("embed", "pos_embed", "ln_final", "logits") else "blocks.{l}." + n for n in EXPECTED_SHAPES}
    for name, value in cache.items():
        assert value.shape == tuple(sizes[a] for a in axes(name)), name


def test_cache_relations_hold(tiny_model):
    ids = np.array([5, 9, 2, 7, 7, 1])
    logits, cache = tiny_model.run_with_cache(ids)
    assert cache["pattern", 0].shape == (4, 6, 6)  # one sequence in, no batch axis out
    assert cache["pattern", -1] is cache["blocks.1.attn.pattern"]
    np.testing.assert_allclose(cache["pattern", 1].sum(-1), 1.0, rtol=1e-6)
    assert np.all(np.triu(cache["pattern", 1], k=1) == 0)  # causal: nothing attends to the future
    assert np.all(np.isneginf(cache["scores", 0][:, np.triu_indices(6, 1)[0], np.triu_indices(6, 1)[1]]))
    np.testing.assert_allclose(cache["resid_mid", 0], cache["resid_pre", 0] + cache["attn_out", 0], rtol=1e-6)
    np.testing.assert_allclose(cache["resid_post", 0], cache["resid_mid", 0] + cache["mlp_out", 0], rtol=1e-6)
    np.testing.assert_array_equal(cache["resid_pre", 1], cache["resid_post", 0])
    np.testing.assert_allclose(cache["embed"] + cache["pos_embed"], cache["resid_pre", 0], rtol=1e-6)
    np.testing.assert_allclose(cache["mlp.post", 0], gelu(cache["mlp.pre", 0]), rtol=1e-6)
    np.testing.assert_allclose(logits, tiny_model.logits(ids), rtol=1e-5, atol=1e-6)  # recorded (reference) = fast
    with pytest.raises(KeyError, match="short names"):
        cache["nonsense", 0]


def test_hook_ablating_one_head_changes_only_that_head(tiny_model):
    ids = np.array([3, 1, 4, 1, 5, 9, 2, 6])

    def zero_head_2(z):  # z: [batch, n_head, n_seq, d_head]
        z = z.copy()
        z[:, 2] = 0.0
        return z

    _, clean = tiny_model.run_with_cache(ids)
    logits, ablated = tiny_model.run_with_cache(ids, hooks={"blocks.1.attn.z": zero_head_2})
    assert np.all(ablated["z", 1][2] == 0)
    np.testing.assert_array_equal(np.delete(ablated["z", 1], 2, axis=0), np.delete(clean["z", 1], 2, axis=0))
    np.testing.assert_array_equal(ablated["resid_pre", 1], clean["resid_pre", 1])  # earlier layers untouched
    assert not np.allclose(logits, clean["logits"])
    with pytest.raises(npgpt.InputError, match="must keep"):
        tiny_model.logits(ids, hooks={"ln_final": lambda x: x[..., :3]})


def test_batch_and_single_agree(tiny_model):
    ids = np.array([[1, 2, 3, 4], [9, 8, 7, 6]])
    batched = tiny_model.logits(ids)
    np.testing.assert_allclose(batched[1], tiny_model.logits(ids[1]), atol=1e-6)


def test_kv_cache_one_token_at_a_time(tiny_model):
    ids = np.random.default_rng(0).integers(0, 300, 20)
    full = tiny_model.logits(ids)
    kv = tiny_model.new_kv_cache(capacity=20)
    steps = [tiny_model.logits(ids[t : t + 1], kv_cache=kv) for t in range(20)]
    np.testing.assert_allclose(np.concatenate(steps), full, atol=1e-5)
    branch = kv.copy()
    assert branch.length == 20 and branch.keys is not kv.keys
    with pytest.raises(npgpt.InputError, match="capacity"):
        tiny_model.logits(ids[:1], kv_cache=kv)
    # the activation cache of a cached step sees all keys
    kv2 = tiny_model.new_kv_cache()
    tiny_model.logits(ids[:5], kv_cache=kv2)
    _, cache = tiny_model.run_with_cache(ids[5:6], kv_cache=kv2)
    assert cache["pattern", 0].shape == (4, 1, 6) and cache["k", 0].shape == (4, 1, 8)


def test_bad_inputs_get_clear_errors(tiny_model):
    with pytest.raises(npgpt.InputError, match="outside the vocabulary"):
        tiny_model.logits([1, 2, 300])
    with pytest.raises(npgpt.InputError, match="outside the vocabulary"):
        tiny_model.logits([-1])
    with pytest.raises(npgpt.InputError, match="longer than the model's context"):
        tiny_model.logits(np.zeros(65, dtype=int))
    with pytest.raises(npgpt.InputError, match="at least one token"):
        tiny_model.logits([])
    with pytest.raises(npgpt.InputError, match="integers"):
        tiny_model.logits([0.5, 1.0])
    with pytest.raises(npgpt.InputError, match="attention_mask"):
        tiny_model.logits([[1, 2]], attention_mask=[[1, 1, 1]])
    assert isinstance(npgpt.InputError("x"), ValueError)


def test_config_presets_and_hf_round_trip(tmp_path):
    assert npgpt.PRESETS["gpt2"].n_params() == 124_439_808  # the published 124M
    assert npgpt.PRESETS["gpt2-xl"].d_head == 64 and npgpt.PRESETS["gpt2-xl"].n_head == 25
    assert npgpt.PRESETS["distilgpt2"].n_layer == 6
    for preset in npgpt.PRESETS.values():
        assert npgpt.GPT2Config.from_hf_dict(preset.to_hf_dict()) == preset
    cfg = npgpt.GPT2Config(n_vocab=100, n_ctx=16, n_embd=8, n_head=2, n_layer=1)
    cfg.save(tmp_path / "config.json")
    assert npgpt.GPT2Config.load(tmp_path / "config.json") == cfg
    with pytest.raises(npgpt.ConfigError, match="divisible"):
        npgpt.GPT2Config(n_embd=10, n_head=3)
    with pytest.raises(npgpt.ConfigError, match="unknown preset"):
        npgpt.random_model("gpt5")
    with pytest.raises(npgpt.ConfigError, match="llama"):
        npgpt.GPT2Config.from_hf_dict({"model_type": "llama"})
    with pytest.raises(npgpt.ConfigError, match="vocab_size"):
        npgpt.GPT2Config.from_hf_dict({"n_embd": 8, "n_head": 2, "n_layer": 1})
    with pytest.raises(npgpt.ConfigError, match="activation"):
        npgpt.GPT2Config.from_hf_dict({**cfg.to_hf_dict(), "activation_function": "relu"})


def test_save_and_load_round_trip(tiny_model, tmp_path):
    npgpt.save(tiny_model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir() if p.suffix in (".json", ".safetensors"))[:2] == [
        "config.json", "model.safetensors"]
    again = npgpt.load(tmp_path / "m")
    assert again.config == tiny_model.config
    ids = np.array([1, 2, 3])
    np.testing.assert_array_equal(again.logits(ids), tiny_model.logits(ids))
    assert not any(p.name.startswith(".") for p in (tmp_path / "m").iterdir())  # no temp files left


def test_loader_accepts_names_without_prefix_and_ignores_mask_buffers(tiny_model, tmp_path):
    from safetensors.numpy import save_file

    from npgpt.weights import flatten

    flat = dict(flatten(tiny_model.params))
    flat["h.0.attn.bias"] = np.tril(np.ones((1, 1, 64, 64), np.float32))
    flat["h.0.attn.masked_bias"] = np.array(-1e4, np.float32)
    flat["lm_head.weight"] = flat["wte.weight"]
    (tmp_path / "m").mkdir()
    save_file({k: np.ascontiguousarray(v) for k, v in flat.items()}, str(tmp_path / "m" / "model.safetensors"))
    tiny_model.config.save(tmp_path / "m" / "config.json")
    again = npgpt.load(tmp_path / "m")
    np.testing.assert_array_equal(again.logits([4, 5]), tiny_model.logits([4, 5]))


@pytest.fixture
def saved(tiny_model, tmp_path):
    return npgpt.save(tiny_model, tmp_path / "m")


def test_missing_folder_and_files(tmp_path, saved):
    with pytest.raises(npgpt.ModelNotFoundError, match="no model folder"):
        npgpt.load(tmp_path / "nope")
    (saved / "model.safetensors").unlink()
    with pytest.raises(npgpt.WeightsError, match="no model.safetensors"):
        npgpt.load(saved)
    (saved / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(npgpt.WeightsError, match="arbitrary code"):
        npgpt.load(saved)


def test_truncated_weights_file(saved):
    data = (saved / "model.safetensors").read_bytes()
    (saved / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(npgpt.WeightsError, match="truncated or corrupt"):
        npgpt.load(saved)
    (saved / "model.safetensors").write_bytes(b"\x00\x01")
    with pytest.raises(npgpt.WeightsError, match="truncated or corrupt"):
        npgpt.load(saved)


def test_config_and_weights_that_disagree(saved):
    d = json.loads((saved / "config.json").read_text())
    d["n_embd"], d["n_head"] = 64, 4
    (saved / "config.json").write_text(json.dumps(d))
    with pytest.raises(npgpt.WeightsError, match=r"wte.weight has shape \(300, 32\).*\(300, 64\)"):
        npgpt.load(saved)
    d["n_embd"], d["n_layer"] = 32, 3
    (saved / "config.json").write_text(json.dumps(d))
    with pytest.raises(npgpt.WeightsError, match="lacks .* h.2.ln_1.weight"):
        npgpt.load(saved)
    (saved / "config.json").write_text("{not json")
    with pytest.raises(npgpt.ConfigError, match="not valid JSON"):
        npgpt.load(saved)


def test_untied_lm_head_is_refused(tiny_model, tmp_path):
    from safetensors.numpy import save_file

    from npgpt.weights import flatten

    flat = {f"transformer.{k}": np.ascontiguousarray(v) for k, v in flatten(tiny_model.params).items()}
    flat["lm_head.weight"] = flat["transformer.wte.weight"] + 1
    (tmp_path / "m").mkdir()
    save_file(flat, str(tmp_path / "m" / "model.safetensors"))
    tiny_model.config.save(tmp_path / "m" / "config.json")
    with pytest.raises(npgpt.WeightsError, match="tied"):
        npgpt.load(tmp_path / "m")


def test_random_model_is_seeded_and_shaped():
    a = npgpt.random_model(npgpt.GPT2Config(n_vocab=50, n_ctx=8, n_embd=16, n_head=2, n_layer=1), seed=3)
    b = npgpt.random_model(a.config, seed=3)
    c = npgpt.random_model(a.config, seed=4)
    assert np.array_equal(a.params["wte"]["weight"], b.params["wte"]["weight"])
    assert not np.array_equal(a.params["wte"]["weight"], c.params["wte"]["weight"])
    from npgpt.weights import check_params

    check_params(a.params, a.config)
    assert "n_layer=1" in repr(a)


def test_functions_do_not_mutate_inputs(tiny_model):
    ids = np.array([[1, 2, 3]])
    mask = np.array([[1, 1, 1]])
    before = (ids.copy(), mask.copy(), tiny_model.params["wte"]["weight"].copy())
    tiny_model.run_with_cache(ids, attention_mask=mask)
    assert np.array_equal(ids, before[0]) and np.array_equal(mask, before[1])
    assert np.array_equal(tiny_model.params["wte"]["weight"], before[2])


def test_last_only_equals_last_row_of_full_logits(tiny_model):
    ids = np.array([[0, 4, 8, 15], [16, 23, 42, 7]])
    full = tiny_model.logits(ids, attention_mask=[[0, 1, 1, 1], [1, 1, 1, 1]])
    last = tiny_model.logits(ids, attention_mask=[[0, 1, 1, 1], [1, 1, 1, 1]], last_only=True)
    assert last.shape == (2, 1, 300)
    np.testing.assert_allclose(last[:, 0], full[:, -1], atol=1e-6)
    # last_only skips the last block's other positions, not their keys and values: a KV cache
    # filled by a last_only pass continues exactly as one filled by a full pass.
    kv_last, kv_full = tiny_model.new_kv_cache(batch=2), tiny_model.new_kv_cache(batch=2)
    tiny_model.logits(ids, attention_mask=[[0, 1, 1, 1], [1, 1, 1, 1]], kv_cache=kv_last, last_only=True)
    tiny_model.logits(ids, attention_mask=[[0, 1, 1, 1], [1, 1, 1, 1]], kv_cache=kv_full)
    np.testing.assert_array_equal(kv_last.keys, kv_full.keys)
    np.testing.assert_array_equal(kv_last.values, kv_full.values)
    nxt = np.array([[5], [6]])
    np.testing.assert_allclose(tiny_model.logits(nxt, kv_cache=kv_last), tiny_model.logits(nxt, kv_cache=kv_full), atol=1e-6)
