"""``npgpt/fast/patterns.py`` against the reference: every layer's attention pattern equal to the
reference cache's (``run_with_cache``) to float32 rounding, past the blocked-attention length too;
``model.attention_patterns`` chooses it (and the reference when hooks are given); the attention
view built from it matches the one built from the cache.
"""

from __future__ import annotations

import numpy as np
import pytest

import npgpt
import viz
from npgpt import engine
from npgpt.fast import patterns as fast_patterns
from npgpt.fast.model import ATTENTION_BLOCK


@pytest.fixture(scope="module")
def model():
    config = npgpt.PRESETS["gpt2"].replace(n_layer=3, n_head=4, n_embd=64, n_ctx=2 * ATTENTION_BLOCK + 40, n_vocab=97)
    m = npgpt.random_model(config, seed=3)
    for block in m.params["h"]:  # sharper patterns than at initialisation: weights far from uniform
        block["attn"]["c_attn"]["weight"][:, : 2 * config.n_embd] *= np.float32(6.0)
    return m


@pytest.mark.parametrize("n_seq", [1, 7, ATTENTION_BLOCK, ATTENTION_BLOCK + 1, 2 * ATTENTION_BLOCK + 40])
def test_patterns_equal_the_reference_cache(model, n_seq):
    ids = np.random.default_rng(n_seq).integers(0, model.config.n_vocab, size=n_seq)
    _, cache = model.run_with_cache(ids)
    got = model.attention_patterns(ids)
    c = model.config
    assert len(got) == c.n_layer
    for layer, pattern in enumerate(got):
        expected = cache["pattern", layer]
        assert pattern.shape == expected.shape == (c.n_head, n_seq, n_seq)
        assert pattern.dtype == expected.dtype == np.float32
        np.testing.assert_allclose(pattern, expected, rtol=0, atol=2e-6)
        assert not np.triu(pattern, k=1).any()  # the future is exactly 0, as the reference's softmax makes it
        np.testing.assert_allclose(pattern.sum(-1), 1.0, atol=1e-5)


def test_batch_and_the_engine_choice(model, monkeypatch):
    ids = np.random.default_rng(0).integers(0, model.config.n_vocab, size=(2, 30))
    batch = model.attention_patterns(ids)
    assert batch[0].shape == (2, model.config.n_head, 30, 30)
    for row in range(2):
        one = model.attention_patterns(ids[row])
        for layer in range(model.config.n_layer):
            np.testing.assert_allclose(batch[layer][row], one[layer], rtol=0, atol=1e-6)
    calls = []
    monkeypatch.setattr(fast_patterns, "attention_patterns", lambda *a: calls.append(a) or [])
    engine.attention_patterns(ids, model.params, model.config)
    assert len(calls) == 1  # no hooks: the fast path


def test_hooks_run_the_reference(model):
    ids = np.arange(20) % model.config.n_vocab
    doubled = model.attention_patterns(ids, hooks={"blocks.0.attn.scores": lambda s: 2 * s})
    _, cache = model.run_with_cache(ids, hooks={"blocks.0.attn.scores": lambda s: 2 * s})
    for layer in range(model.config.n_layer):
        np.testing.assert_array_equal(doubled[layer], cache["pattern", layer])
    assert not np.allclose(doubled[0], model.attention_patterns(ids)[0])


def test_view_from_fast_patterns_matches_the_view_from_the_cache(model):
    n_seq = 2 * ATTENTION_BLOCK + 40
    ids = np.random.default_rng(5).integers(0, model.config.n_vocab, size=n_seq)
    _, cache = model.run_with_cache(ids)
    fast = viz.html.encode_patterns(model.attention_patterns(ids), compress=False)
    ref = viz.html.encode_patterns([cache["pattern", layer] for layer in range(model.config.n_layer)], compress=False)
    assert fast[1] and ref[1]  # both stored as the causal triangle
    a, b = (np.frombuffer(data, np.uint8).astype(int) for data, _ in (fast, ref))
    assert a.shape == b.shape
    # One byte per weight, round(255 p): a weight within float rounding of a .5 boundary may land on
    # the other side; nothing else may differ.
    assert np.abs(a - b).max() <= 1
    assert np.count_nonzero(a - b) <= 1e-4 * a.size
