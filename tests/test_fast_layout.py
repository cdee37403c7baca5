"""``npgpt/fast/layout.py``: generation's first decode step lays the blocks' weight matrices out
column-major, in place. The same values and shapes (so every reference function computes the same
numbers), no second copy of a memory-mapped model kept, and saving, training and inspecting after
generation unchanged.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import npgpt
from npgpt import engine
from npgpt import model as ref
from npgpt.fast import layout
from npgpt.generate import generate_ids
from npgpt.kv_cache import KVCache
from npgpt.training import loss_and_grads
from npgpt.weights import flatten

CONFIG = npgpt.GPT2Config(n_vocab=300, n_ctx=64, n_embd=64, n_head=4, n_layer=2)


def block_weights(params):
    return [params["h"][l][part][name]["weight"] for l in range(len(params["h"])) for part, name in layout.MATRICES]


def test_same_values_column_major_once():
    params = npgpt.random_params(CONFIG, seed=1)
    before = copy.deepcopy(params)
    assert layout.for_decode(params) is params
    for new, old in zip(block_weights(params), block_weights(before)):
        assert new.flags.f_contiguous and not new.flags.c_contiguous and new.shape == old.shape
        assert np.array_equal(new, old)
    again = block_weights(params)
    layout.for_decode(params)  # already laid out: nothing is copied again
    assert all(a is b for a, b in zip(again, block_weights(params)))
    for name, value in flatten(params).items():  # embeddings, layer norms and biases are left alone
        if not any(name.endswith(f"{part}.{n}.weight") for part, n in layout.MATRICES):
            assert np.array_equal(value, flatten(before)[name]) and value.flags.c_contiguous


def test_the_reference_and_the_fast_decode_agree_after_it():
    params = npgpt.random_params(CONFIG, seed=2)
    ids = np.random.default_rng(0).integers(0, CONFIG.n_vocab, (2, 20))
    expected = ref.gpt2(ids, params, CONFIG)  # the reference on the checkpoint's row-major layout
    cache = KVCache(CONFIG, batch=2)
    engine.forward(ids[:, :19], params, CONFIG, kv_cache=cache)
    step = engine.forward(ids[:, 19:], params, CONFIG, kv_cache=cache)  # the decode step: lays out
    assert block_weights(params)[0].flags.f_contiguous
    np.testing.assert_allclose(step[:, 0], expected[:, -1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ref.gpt2(ids, params, CONFIG), expected, rtol=1e-5, atol=1e-6)


def test_training_after_generation_gets_the_same_gradients():
    params = npgpt.random_params(CONFIG, seed=3)
    inputs = np.random.default_rng(1).integers(0, CONFIG.n_vocab, (2, 16))
    targets = np.roll(inputs, -1, axis=1)
    loss, grads = loss_and_grads(params, CONFIG, inputs, targets)
    layout.for_decode(params)
    loss_after, grads_after = loss_and_grads(params, CONFIG, inputs, targets)
    assert loss_after == pytest.approx(loss, rel=1e-6)
    for name, g in flatten(grads).items():
        np.testing.assert_allclose(flatten(grads_after)[name], g, rtol=1e-4, atol=1e-6, err_msg=name)


def test_a_mapped_model_keeps_one_copy_and_saves_the_same_file(tmp_path, monkeypatch):
    released = []
    real = layout.release_mapped_pages
    monkeypatch.setattr(layout, "release_mapped_pages", lambda array: released.append(real(array)) or released[-1])
    npgpt.save(npgpt.random_model(CONFIG, seed=4), tmp_path / "m")
    model = npgpt.load(tmp_path / "m")  # memory-mapped
    original = {k: v.copy() for k, v in flatten(model.params).items()}
    ids = generate_ids(model, [[1, 2, 3, 4]], max_new_tokens=6, temperature=0).completions[0].ids  # decodes: lays out
    assert block_weights(model.params)[0].flags.f_contiguous
    assert len(released) == 4 * CONFIG.n_layer and sum(released) >= 2 * CONFIG.n_layer  # the MLP's matrices span whole pages
    for name, value in flatten(model.params).items():
        assert np.array_equal(value, original[name]), name
    npgpt.save(model, tmp_path / "saved")  # written row-major, as the checkpoint format says
    reloaded = npgpt.load(tmp_path / "saved")
    for name, value in flatten(reloaded.params).items():
        assert np.array_equal(value, original[name]), name
    assert len(ids) == 6 and np.array_equal(generate_ids(reloaded, [[1, 2, 3, 4]], max_new_tokens=6, temperature=0).completions[0].ids, ids)


def test_release_hands_back_only_mapped_pages(tmp_path):
    assert not layout.release_mapped_pages(np.zeros((256, 256), np.float32))  # not mapped: the GC's job
    big = npgpt.GPT2Config(n_vocab=300, n_ctx=64, n_embd=256, n_head=4, n_layer=1)  # 256 x 1024 floats: 256 pages
    npgpt.save(npgpt.random_model(big, seed=5), tmp_path / "big")
    model = npgpt.load(tmp_path / "big")
    weight = model.params["h"][0]["mlp"]["c_fc"]["weight"]
    values = weight.copy()
    assert layout.release_mapped_pages(weight)
    assert np.array_equal(weight, values)  # dropped pages read back from the file: nothing lost
