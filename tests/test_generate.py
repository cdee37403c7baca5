"""Generation: the sampling helpers by hand, the decoding loop against an uncached reference, batching,
seeds, stop strings, streaming, traces, sliding windows, beam search and scoring. NumPy only.

The comparisons with Hugging Face's generate are in test_generate_oracle.py.
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import npgpt
import npgpt.generate as gen
import npgpt.sampling
import npgpt.traces
from npgpt.generate import (
    GenerationSettings,
    apply_temperature,
    beam_search,
    generate,
    generate_ids,
    min_p_filter,
    probabilities,
    process_logits,
    repetition_penalty,
    sample,
    score,
    stream,
    top_k_filter,
    top_p_filter,
)
from npgpt.model import log_softmax


@pytest.fixture(scope="session")
def text_model():
    """A small random model with GPT-2's vocabulary and tokenizer, for text in and text out."""
    config = npgpt.GPT2Config(n_vocab=50257, n_ctx=128, n_embd=32, n_head=4, n_layer=2)
    model = npgpt.random_model(config, seed=3)
    model.tokenizer = npgpt.Tokenizer.gpt2()
    return model


def scripted(token_ids):
    """Hooks that make the k-th forward pass's last position prefer token_ids[k] by far (every row)."""
    calls = [0]

    def hook(logits):  # [batch, n_seq, n_vocab]
        out = logits.copy()
        out[:, -1, token_ids[min(calls[0], len(token_ids) - 1)]] += 1000.0
        calls[0] += 1
        return out

    return {"logits": hook}


def reference_greedy(model, ids, n):
    """Greedy decoding the slow way: the whole sequence through the model at every step, no cache."""
    ids = list(ids)
    out = []
    for _ in range(n):
        token = int(np.argmax(model.logits(ids)[-1]))
        ids.append(token)
        out.append(token)
    return out


# ---- sampling helpers, by hand -------------------------------------------------------------------


def test_docstring_examples():
    results = [doctest.testmod(m, optionflags=doctest.NORMALIZE_WHITESPACE)
               for m in (gen, npgpt.sampling, npgpt.traces)]
    failures, tried = (sum(counts) for counts in zip(*results))
    assert tried >= 8 and failures == 0  # log_softmax's example now runs with npgpt.model's


PROBS = np.array([0.5, 0.3, 0.15, 0.05])


@pytest.mark.parametrize(
    "k, expected",
    [(1, [1, 0, 0, 0]), (2, [0.625, 0.375, 0, 0]), (3, [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0]), (4, PROBS), (99, PROBS)],
)
def test_top_k_distribution(k, expected):
    np.testing.assert_allclose(probabilities(top_k_filter(np.log(PROBS), k)), expected, rtol=1e-12, atol=1e-15)


def test_top_k_keeps_ties_and_batches():
    x = np.array([[1.0, 2.0, 2.0, 0.0], [4.0, 3.0, 2.0, 1.0]])
    out = top_k_filter(x, 1)
    assert np.array_equal(np.isfinite(out), [[False, True, True, False], [True, False, False, False]])


@pytest.mark.parametrize(
    "p, expected",
    [
        (0.0, [1, 0, 0, 0]),  # transformers' top_p=0: the most likely token only
        (1e-9, [1, 0, 0, 0]),
        (0.4, [1, 0, 0, 0]),  # the top token alone (0.5) already reaches 0.4
        (0.6, [0.625, 0.375, 0, 0]),  # 0.5 < 0.6 <= 0.5 + 0.3
        (0.85, [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0]),
        (0.99, PROBS),
        (1.0, PROBS),
    ],
)
def test_top_p_distribution(p, expected):
    np.testing.assert_allclose(probabilities(top_p_filter(np.log(PROBS), p)), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "logits, p, expected",
    [
        (np.log([0.5, 0.25, 0.25]), 0.75, [0, 2]),  # of equal tokens, the lower id is dropped first
        (np.zeros(8), 0.5, [4, 5, 6, 7]),
        (np.zeros(8), 0.0, [7]),
        (np.array([1.0, 3.0, 3.0, -np.inf]), 0.0, [2]),
        (np.array([1.0, 3.0, 3.0, -np.inf]), 0.9, [1, 2]),
    ],
)
def test_top_p_ties_are_broken_as_transformers_breaks_them(logits, p, expected):
    assert np.flatnonzero(np.isfinite(top_p_filter(logits, p))).tolist() == expected


def test_top_p_zero_samples_the_most_likely_token(tiny_model):
    greedy = generate_ids(tiny_model, [1, 2, 3], max_new_tokens=6, temperature=0).completions[0].ids
    assert generate_ids(tiny_model, [1, 2, 3], max_new_tokens=6, top_p=0, seed=0).completions[0].ids == greedy


def test_top_p_order_does_not_matter_and_rows_are_independent():
    perm = [2, 0, 3, 1]
    x = np.log(PROBS)[perm]
    out = top_p_filter(np.stack([x, np.log(PROBS)]), 0.6)
    assert np.array_equal(np.isfinite(out[0]), np.array([True, True, False, False])[perm])
    assert np.array_equal(np.isfinite(out[1]), [True, True, False, False])


@pytest.mark.parametrize(
    "min_p, expected",
    [(0.0, PROBS), (0.05, PROBS), (0.2, [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0]), (0.65, [1, 0, 0, 0]), (1.0, [1, 0, 0, 0])],
)
def test_min_p_distribution(min_p, expected):
    np.testing.assert_allclose(probabilities(min_p_filter(np.log(PROBS), min_p)), expected, rtol=1e-12, atol=1e-15)


def test_temperature_distribution():
    # softmax(log p / T) is p^(1/T) renormalised: T = 0.5 squares the probabilities
    p = np.array([0.5, 0.3, 0.2])
    np.testing.assert_allclose(probabilities(apply_temperature(np.log(p), 0.5)), p**2 / np.sum(p**2), rtol=1e-12)
    np.testing.assert_allclose(probabilities(apply_temperature(np.log(p), 1e6)), [1 / 3] * 3, rtol=1e-5)
    with pytest.raises(npgpt.InputError):
        apply_temperature(np.log(p), 0)


def test_repetition_penalty_by_hand():
    x = np.array([[2.0, -2.0, 1.0, 0.5], [2.0, -2.0, 1.0, 0.5]])
    out = repetition_penalty(x, [[0, 1, 1], [3]], 2.0)
    np.testing.assert_array_equal(out, [[1.0, -4.0, 1.0, 0.5], [2.0, -2.0, 1.0, 0.25]])
    np.testing.assert_array_equal(repetition_penalty(x[0], [], 2.0), x[0])
    np.testing.assert_array_equal(repetition_penalty(x[0], [2], 0.5), [2.0, -2.0, 2.0, 0.5])  # < 1 encourages


def test_helpers_do_not_mutate_their_inputs():
    x = np.log(np.array([[0.4, 0.3, 0.2, 0.1]]))
    before = x.copy()
    previous = [[0, 1]]
    for out in (
        repetition_penalty(x, previous, 1.3), apply_temperature(x, 0.7), top_k_filter(x, 2),
        top_p_filter(x, 0.5), min_p_filter(x, 0.5), log_softmax(x), process_logits(x, GenerationSettings(top_k=2, top_p=0.5, repetition_penalty=1.2, temperature=0.5), previous),
    ):
        assert out is not x
    assert np.array_equal(x, before) and previous == [[0, 1]]


def test_warpers_run_in_transformers_order():
    # probabilities 0.4 0.3 0.2 0.1: top-k 2 leaves 0.571 0.429, and top-p 0.5 then keeps the first
    # alone. (top-p first would keep two tokens: 0.4 < 0.5.)
    x = np.log([0.4, 0.3, 0.2, 0.1])
    out = process_logits(x, GenerationSettings(top_k=2, top_p=0.5), [])
    np.testing.assert_allclose(probabilities(out), [1, 0, 0, 0])
    assert np.isfinite(top_k_filter(top_p_filter(x, 0.5), 2)).sum() == 2
    # temperature before top-p: T = 0.5 makes the probabilities 16:9:4:1 / 30, so top-p 0.6 keeps two
    out = process_logits(x, GenerationSettings(temperature=0.5, top_p=0.6), [])
    np.testing.assert_allclose(probabilities(out), [16 / 25, 9 / 25, 0, 0], rtol=1e-12)
    # the full chain equals the helpers composed by hand
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 50)) * 3
    prev = [[1, 2, 3], [4], []]
    s = GenerationSettings(repetition_penalty=1.5, temperature=0.8, top_k=20, top_p=0.9, min_p=0.05)
    by_hand = min_p_filter(top_p_filter(top_k_filter(apply_temperature(repetition_penalty(logits, prev, 1.5), 0.8), 20), 0.9), 0.05)
    np.testing.assert_array_equal(process_logits(logits, s, prev), by_hand)


def test_sample_follows_the_distribution():
    rng = np.random.default_rng(1234)
    logits = np.array([np.log(0.1), np.log(0.2), np.log(0.7), -np.inf])
    draws = np.array([sample(logits, rng) for _ in range(20000)])
    freq = np.bincount(draws, minlength=4) / draws.size
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.7, 0.0], atol=0.012)  # ~4 standard errors
    assert freq[3] == 0  # probability 0 is never drawn
    assert sample(np.array([-np.inf, 3.0, -np.inf]), rng) == 1


# ---- settings and errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, words",
    [
        ({"temperature": -0.5}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"min_p": 2}, "min_p"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"max_new_tokens": -1}, "max_new_tokens"),
        ({"num_samples": 0}, "num_samples"),
        ({"seed": -3}, "seed"),
        ({"seed": "abc"}, "seed"),
        ({"stop": [""]}, "stop"),
        ({"topk": 3}, "unknown generation setting"),
    ],
)
def test_bad_settings_raise_one_clear_error(tiny_model, settings, words):
    with pytest.raises(npgpt.InputError, match=words):
        generate_ids(tiny_model, [1, 2, 3], **settings)


def test_prompt_errors(tiny_model, text_model):
    with pytest.raises(npgpt.InputError, match="no tokenizer.*token ids"):
        generate_ids(tiny_model, "hello")
    with pytest.raises(npgpt.InputError, match="no tokenizer"):
        generate(tiny_model, [1, 2])
    with pytest.raises(npgpt.InputError, match="outside the vocabulary"):
        generate_ids(tiny_model, [1, 300])
    with pytest.raises(npgpt.InputError, match="prompt"):
        generate_ids(tiny_model, [])
    with pytest.raises(npgpt.InputError, match="prompt"):
        generate_ids(tiny_model, 3.5)
    with pytest.raises(npgpt.InputError, match="one prompt"):
        stream(text_model, ["a", "b"])
    with pytest.raises(npgpt.InputError, match="num_samples"):
        stream(text_model, "a", num_samples=2)
    with pytest.raises(npgpt.InputError, match="stop strings need a tokenizer"):
        generate_ids(tiny_model, [1, 2], stop=["x"])


def test_prompt_longer_than_the_context_is_an_error_by_default(tiny_model):
    # k new tokens need prompt + k - 1 positions: the last one chosen is never fed back.
    n_ctx = tiny_model.config.n_ctx  # 64
    with pytest.raises(npgpt.InputError, match=r"n_ctx=64.*sliding_window=True"):
        generate_ids(tiny_model, list(range(60)), max_new_tokens=6, temperature=0)
    out = generate_ids(tiny_model, list(range(60)), max_new_tokens=5, temperature=0)  # exactly fits
    assert len(out.completions[0].ids) == 5
    with pytest.raises(npgpt.InputError, match="n_ctx"):
        generate_ids(tiny_model, list(range(n_ctx + 5)), max_new_tokens=1, temperature=0)


def test_inputs_are_not_mutated(tiny_model):
    prompts = [[1, 2, 3], [4, 5]]
    copy = [list(p) for p in prompts]
    result = generate_ids(tiny_model, prompts, max_new_tokens=3, temperature=0)
    assert prompts == copy
    assert result.completions[0].prompt_ids == [1, 2, 3] and result.completions[0].prompt_ids is not prompts[0]


# ---- the decoding loop -----------------------------------------------------------------------------


def test_greedy_with_kv_cache_equals_the_uncached_reference(tiny_model):
    prompt = [5, 17, 42, 8]
    result = generate_ids(tiny_model, prompt, max_new_tokens=20, temperature=0)
    (c,) = result.completions
    assert c.ids == reference_greedy(tiny_model, prompt, 20)
    assert c.finish_reason == "length" and c.text is None
    assert result.stats.new_tokens == 20 and result.stats.prompt_tokens == 4
    assert np.isfinite(result.stats.decode_tokens_per_s) and result.stats.time_to_first_token > 0


def test_top_k_1_equals_greedy(tiny_model, text_model):
    greedy = generate_ids(tiny_model, [3, 1, 4, 1, 5], max_new_tokens=15, temperature=0).completions[0].ids
    for seed in (0, 1):
        sampled = generate_ids(tiny_model, [3, 1, 4, 1, 5], max_new_tokens=15, top_k=1, temperature=1.7, seed=seed)
        assert sampled.completions[0].ids == greedy
    assert generate(text_model, "Hello", max_new_tokens=8, top_k=1, seed=5) == generate(text_model, "Hello", max_new_tokens=8, temperature=0)


def test_seeded_sampling_is_reproducible(tiny_model):
    def run(seed, **kw):
        return [c.ids for c in generate_ids(tiny_model, [[1, 2], [3]], max_new_tokens=12, seed=seed, num_samples=2, **kw).completions]

    a = run(7)
    assert a == run(7)
    assert a == run(np.random.default_rng(7))  # an int seed is default_rng(seed)
    assert a != run(8)
    assert len({tuple(ids) for ids in a}) == 4  # samples differ from one another
    assert a != run(7, top_p=0.5)
    # a Generator passed in is consumed: a second call continues its stream instead of repeating
    rng = np.random.default_rng(7)
    assert run(rng) != run(rng)
    # the documented recipe: row r draws from default_rng(seed).spawn(n_rows)[r] with `sample`
    # (whose docstring pins its numbers for a fixed seed, so runs agree across processes)
    row_rng = np.random.default_rng(123).spawn(1)[0]
    ids, settings = [1, 2], GenerationSettings(temperature=0.7, top_k=50)
    for _ in range(6):
        ids.append(sample(process_logits(tiny_model.logits(ids)[-1], settings, ids), row_rng))
    single = generate_ids(tiny_model, [1, 2], max_new_tokens=6, seed=123, temperature=0.7, top_k=50).completions[0].ids
    assert single == ids[2:]


def test_batched_generation_equals_one_by_one(tiny_model):
    prompts = [[5, 17, 42, 8, 9, 11], [7], [200, 3, 3]]
    batched = generate_ids(tiny_model, prompts, max_new_tokens=15, temperature=0, trace=True).completions
    for prompt, c in zip(prompts, batched):
        alone = generate_ids(tiny_model, prompt, max_new_tokens=15, temperature=0, trace=True).completions[0]
        assert c.ids == alone.ids == reference_greedy(tiny_model, prompt, 15)
        np.testing.assert_allclose([t.prob for t in c.steps], [t.prob for t in alone.steps], rtol=1e-4)
    # sampling: each row has its own generator, so a row does not depend on its neighbours
    kw = dict(max_new_tokens=10, seed=11, temperature=1.2, top_p=0.95)
    first = generate_ids(tiny_model, prompts, **kw).completions
    assert first[0].ids == generate_ids(tiny_model, prompts[0], **kw).completions[0].ids
    other = generate_ids(tiny_model, [[1, 1, 1, 1, 1, 1, 1, 1], prompts[1], prompts[2]], **kw).completions
    assert [c.ids for c in other[1:]] == [c.ids for c in first[1:]]


def test_rows_that_finish_early_leave_the_batch(tiny_model):
    # eos = the token row 1 produces at its 3rd step; the other rows must carry on correctly
    prompts = [[5, 17, 42, 8], [7, 8], [9]]
    refs = [reference_greedy(tiny_model, p, 12) for p in prompts]
    eos = refs[1][2]
    result = generate_ids(tiny_model, prompts, max_new_tokens=12, temperature=0, eos_token_id=eos)
    for ref, c in zip(refs, result.completions):
        expected = ref[: ref.index(eos) + 1] if eos in ref else ref
        assert c.ids == expected
        assert c.finish_reason == ("eos" if eos in ref else "length")
    assert result.completions[1].finish_reason == "eos"
    ignored = generate_ids(tiny_model, prompts, max_new_tokens=12, temperature=0, eos_token_id=eos, ignore_eos=True)
    assert [c.ids for c in ignored.completions] == refs


def test_repetition_penalty_in_greedy_decoding(tiny_model):
    prompt = [5, 17, 42]
    ids = list(prompt)
    for _ in range(10):
        x = repetition_penalty(tiny_model.logits(ids)[-1].astype(np.float64), ids, 1.8)
        ids.append(int(np.argmax(x)))
    out = generate_ids(tiny_model, prompt, max_new_tokens=10, temperature=0, repetition_penalty=1.8).completions[0]
    assert out.ids == ids[3:]
    assert len(set(out.ids)) > len(set(reference_greedy(tiny_model, prompt, 10)))


def test_max_new_tokens_zero(text_model):
    assert generate(text_model, "Hello", max_new_tokens=0) == ""
    assert generate_ids(text_model, "Hello", max_new_tokens=0).completions[0].ids == []
    one = generate_ids(text_model, "Hello", max_new_tokens=1).stats.summary()
    assert one.startswith("1 tokens in ") and "nan" not in one and "tok/s" not in one


def test_sliding_window_sees_at_most_n_ctx_tokens(tiny_model):
    n_ctx, keep = 64, 48
    prompt = list(range(1, 51))
    out = generate_ids(tiny_model, prompt, max_new_tokens=60, temperature=0, sliding_window=True, trace=True).completions[0]
    # the documented rule, computed the slow way: the context is the last tokens since `start`;
    # when it would exceed n_ctx, it restarts at the last `keep` (3/4 n_ctx) tokens
    tokens, start, probs = list(prompt), 0, []
    for _ in range(60):
        if len(tokens) - start > n_ctx:
            start = len(tokens) - keep
        p = probabilities(tiny_model.logits(tokens[start:])[-1])
        tokens.append(int(np.argmax(p)))
        probs.append(p[tokens[-1]])
    assert out.ids == tokens[50:]
    np.testing.assert_allclose([t.prob for t in out.steps], probs, rtol=1e-4)  # the same contexts, not just the same argmax
    # a prompt longer than the context keeps its last `keep` tokens
    long_prompt = list(range(1, 101))
    out = generate_ids(tiny_model, long_prompt, max_new_tokens=3, temperature=0, sliding_window=True).completions[0]
    assert out.ids == reference_greedy(tiny_model, long_prompt[-keep:], 3)


def test_sliding_window_batched_equals_one_by_one(tiny_model):
    # the short row's context is re-encoded whenever the long row's window moves; it must still
    # see exactly what it would see alone
    prompts = [list(range(1, 101)), list(range(150, 210)), [9, 8, 7]]
    kw = dict(max_new_tokens=90, temperature=0, sliding_window=True, trace=True, trace_top_k=0)
    batched = generate_ids(tiny_model, prompts, **kw).completions
    for p, c in zip(prompts, batched):
        alone = generate_ids(tiny_model, p, **kw).completions[0]
        assert c.ids == alone.ids
        # the probabilities show the context too (greedy ids of a tiny random model barely do)
        np.testing.assert_allclose([t.prob for t in c.steps], [t.prob for t in alone.steps], rtol=1e-4)


# ---- text, streaming, stop strings --------------------------------------------------------------


def test_return_types(text_model):
    kw = dict(max_new_tokens=4, seed=0)
    assert isinstance(generate(text_model, "Hi", **kw), str)
    assert isinstance(generate(text_model, [15496], **kw), str)
    two = generate(text_model, "Hi", num_samples=2, **kw)
    assert isinstance(two, list) and len(two) == 2 and all(isinstance(t, str) for t in two)
    many = generate(text_model, ["Hi", "Bye", ""], **kw)
    assert len(many) == 3 and all(isinstance(t, str) for t in many)
    nested = generate(text_model, ["Hi", "Bye"], num_samples=3, **kw)
    assert [len(x) for x in nested] == [3, 3]
    assert nested[0][0] == generate(text_model, "Hi", **kw)  # row 0 uses the seed's first generator
    assert text_model.generate("Hi", **kw) == generate(text_model, "Hi", **kw)  # the model method delegates
    assert "".join(text_model.stream("Hi", **kw)) == generate(text_model, "Hi", **kw)


def test_empty_prompt_starts_from_endoftext(text_model):
    out = generate_ids(text_model, "", max_new_tokens=3, temperature=0, ignore_eos=True).completions[0]
    assert out.prompt_ids == [50256]


TRICKY = "Hi 👋🏽 café — 你好, 🤖! ok"


def test_streaming_concatenates_to_generate_across_split_characters(text_model):
    tok = text_model.tokenizer
    ids = tok.encode(TRICKY)
    assert any("\ufffd" in piece for piece in tok.decode_tokens(ids))  # some characters are split over tokens
    kw = dict(max_new_tokens=len(ids), seed=0, ignore_eos=True)
    pieces = list(stream(text_model, "Say:", hooks=scripted(ids), **kw))
    assert "".join(pieces) == TRICKY
    assert not any("\ufffd" in p for p in pieces)  # only whole characters come out
    assert len(pieces) > 5
    assert generate(text_model, "Say:", hooks=scripted(ids), **kw) == TRICKY
    s = stream(text_model, "Say:", hooks=scripted(ids), **kw)
    assert "".join(s) == TRICKY
    assert s.result.completions[0].ids == ids and s.result.completions[0].finish_reason == "length"


def test_streaming_random_text_concatenates_to_generate(text_model):
    for seed in range(3):
        kw = dict(max_new_tokens=30, seed=seed, temperature=1.0)
        assert "".join(stream(text_model, "Once upon a time", **kw)) == generate(text_model, "Once upon a time", **kw)


@pytest.mark.parametrize(
    "text, stop, expected, reason",
    [
        ("Hello world. The end. More", [". The"], "Hello world", "stop"),
        ("Hello world. The end. More", ["The", "world"], "Hello ", "stop"),  # the earliest one wins
        ("one\ntwo\nthree", ["\n"], "one", "stop"),
        ("abc abd abe", ["abe"], "abc abd ", "stop"),
        ("the end is near .", [". The"], "the end is near .", "length"),  # a held-back prefix is released
        ("你好世界", ["世"], "你好", "stop"),
    ],
)
def test_stop_strings(text_model, text, stop, expected, reason):
    ids = text_model.tokenizer.encode(text)
    kw = dict(max_new_tokens=len(ids), temperature=0, ignore_eos=True, stop=stop, hooks=scripted(ids))
    result = generate_ids(text_model, "x", **kw).completions[0]
    assert result.text == expected and result.finish_reason == reason
    pieces = list(stream(text_model, "x", **{**kw, "hooks": scripted(ids)}))
    assert "".join(pieces) == expected
    if reason == "stop":
        # generation stopped at the token that completed the stop string
        assert any(s in text_model.tokenizer.decode(result.ids) for s in stop)
        assert not any(s in text_model.tokenizer.decode(result.ids[:-1]) for s in stop)


def test_eos_ends_the_text(text_model):
    tok = text_model.tokenizer
    ids = tok.encode("The end.") + [tok.eot_id] + tok.encode(" Not this.")
    c = generate_ids(text_model, "x", max_new_tokens=20, temperature=0, hooks=scripted(ids)).completions[0]
    assert c.text == "The end." and c.finish_reason == "eos" and c.ids[-1] == tok.eot_id and len(c.ids) == 4
    assert "".join(stream(text_model, "x", max_new_tokens=20, temperature=0, hooks=scripted(ids))) == "The end."


# ---- traces --------------------------------------------------------------------------------------


def test_traces_record_the_choice_and_its_alternatives(tiny_model):
    prompt = [5, 17, 42, 8]
    c = generate_ids(tiny_model, prompt, max_new_tokens=6, temperature=0, trace=True, trace_top_k=4).completions[0]
    assert [t.step for t in c.steps] == list(range(6)) and [t.token_id for t in c.steps] == c.ids
    ids = list(prompt)
    for t in c.steps:
        p = probabilities(tiny_model.logits(ids)[-1])
        np.testing.assert_allclose(t.prob, p[t.token_id], rtol=1e-5)
        assert [a.id for a in t.top] == list(np.argsort(-p)[:4])
        np.testing.assert_allclose([a.prob for a in t.top], np.sort(p)[::-1][:4], rtol=1e-5)
        assert t.top[0].id == t.token_id and t.sampled_prob == 1.0 and t.cache is None
        assert t.token_text is None and t.logprob == pytest.approx(np.log(t.prob))
        ids.append(t.token_id)
    sampled = generate_ids(tiny_model, prompt, max_new_tokens=4, top_k=3, seed=0, trace=True).completions[0]
    for t in sampled.steps:
        assert t.sampled_prob >= t.prob and 0 < t.sampled_prob <= 1  # top-k renormalises over 3 tokens


def test_trace_caches_match_run_with_cache_without_padding(tiny_model):
    prompts = [[5, 17, 42, 8, 9], [7, 3]]  # the second row is left-padded by 3
    result = generate_ids(tiny_model, prompts, max_new_tokens=3, temperature=0, trace=True, trace_cache=True)
    for prompt, c in zip(prompts, result.completions):
        _, ref = tiny_model.run_with_cache(prompt)
        step0 = c.steps[0].cache
        assert isinstance(step0, npgpt.ActivationCache)
        for name in ("embed", "blocks.0.attn.pattern", "blocks.1.attn.q", "blocks.1.mlp.post", "ln_final"):
            assert step0[name].shape == ref[name].shape, name
            np.testing.assert_allclose(step0[name], ref[name], atol=2e-5, err_msg=name)
        np.testing.assert_allclose(step0["logits"][-1], ref["logits"][-1], atol=2e-5)
        # a decode step's cache: the one new position, attending to everything before it
        _, ref1 = tiny_model.run_with_cache(prompt + c.ids[:1])
        step1 = c.steps[1].cache
        assert step1["pattern", 1].shape == (4, 1, len(prompt) + 1)
        np.testing.assert_allclose(step1["pattern", 1][:, 0], ref1["pattern", 1][:, -1], atol=2e-5)
        np.testing.assert_allclose(step1["resid_post", 0][0], ref1["resid_post", 0][-1], atol=2e-5)


def test_hooks_apply_during_generation(tiny_model):
    def zero_heads(z):
        return np.zeros_like(z)

    hooks = {"blocks.0.attn.z": zero_heads, "blocks.1.attn.z": zero_heads}
    out = generate_ids(tiny_model, [5, 6, 7], max_new_tokens=5, temperature=0, hooks=hooks).completions[0].ids
    ids = [5, 6, 7]
    for _ in range(5):
        ids.append(int(np.argmax(tiny_model.logits(ids, hooks=hooks)[-1])))
    assert out == ids[3:]


# ---- beam search ----------------------------------------------------------------------------------


def sequence_logprob(model, prompt, ids):
    lp = log_softmax(model.logits(list(prompt) + list(ids))[len(prompt) - 1 : -1])
    return float(sum(lp[i, t] for i, t in enumerate(ids)))


def test_beam_search_with_one_beam_is_greedy(tiny_model):
    prompt = [5, 17, 42, 8]
    (best,) = beam_search(tiny_model, prompt, num_beams=1, max_new_tokens=10)
    assert best.ids == reference_greedy(tiny_model, prompt, 10)
    assert best.sum_logprob == pytest.approx(sequence_logprob(tiny_model, prompt, best.ids), abs=1e-4)


def test_beam_search_with_every_token_as_a_beam_is_exhaustive(tiny_model):
    prompt = [5, 17, 42]
    n_vocab = tiny_model.config.n_vocab
    beams = beam_search(tiny_model, prompt, num_beams=n_vocab, max_new_tokens=2, num_return=3)
    # brute force over all n_vocab^2 two-token continuations
    first = log_softmax(tiny_model.logits(prompt)[-1])  # [n_vocab]
    batch = np.array([prompt + [t] for t in range(n_vocab)])
    second = log_softmax(tiny_model.logits(batch)[:, -1])  # [n_vocab, n_vocab]
    total = first[:, None] + second
    best = np.argsort(-total, axis=None)[:3]
    assert [b.ids for b in beams] == [list(np.unravel_index(i, total.shape)) for i in best]
    np.testing.assert_allclose([b.sum_logprob for b in beams], total.ravel()[best], rtol=1e-6)
    np.testing.assert_allclose([b.score for b in beams], total.ravel()[best] / 2, rtol=1e-6)


def test_beam_search_finishes_at_eos_and_ranks_by_score(tiny_model):
    prompt = [5, 17, 42, 8]
    free = beam_search(tiny_model, prompt, num_beams=3, max_new_tokens=6, num_return=3)
    eos = free[0].ids[2]
    beams = beam_search(tiny_model, prompt, num_beams=3, max_new_tokens=6, num_return=3, eos_token_id=eos)
    assert [b.score for b in beams] == sorted([b.score for b in beams], reverse=True)
    for b in beams:
        assert eos not in b.ids[:-1]
        assert len(b.ids) == 6 or b.ids[-1] == eos
        assert b.sum_logprob == pytest.approx(sequence_logprob(tiny_model, prompt, b.ids), abs=1e-4)
    with pytest.raises(npgpt.InputError):
        beam_search(tiny_model, prompt, num_beams=0)
    with pytest.raises(npgpt.InputError, match="n_ctx"):
        beam_search(tiny_model, list(range(60)), max_new_tokens=10)


def test_beam_search_text(text_model):
    (b,) = beam_search(text_model, "Hello", num_beams=2, max_new_tokens=4)
    assert b.text == text_model.tokenizer.decode(b.ids)


# ---- scoring ---------------------------------------------------------------------------------------


def test_score_short_text_equals_one_forward_pass(tiny_model):
    ids = [5, 17, 42, 8, 9, 100, 3]
    s = score(tiny_model, ids)
    lp = log_softmax(tiny_model.logits(ids))
    assert s.logprobs[0] is None and s.n_scored == 6
    np.testing.assert_allclose(s.logprobs[1:], [lp[t - 1, ids[t]] for t in range(1, 7)], atol=1e-5)
    assert s.perplexity == pytest.approx(np.exp(-np.mean(s.logprobs[1:])))


def test_score_long_text_in_strided_windows(tiny_model):
    rng = np.random.default_rng(0)
    ids = [int(i) for i in rng.integers(0, 300, 40)]
    s = score(tiny_model, ids, window=16, stride=8)
    assert s.logprobs[0] is None and s.n_scored == 39
    for i in range(1, 40):
        begin = 0 if i < 16 else (i - 16) // 8 * 8 + 8  # windows start at 0, 8, 16, 24
        assert i < 16 or i - begin >= 16 - 8  # after the first window, at least window - stride tokens of context
        expected = log_softmax(tiny_model.logits(ids[begin:i])[-1])[ids[i]]
        assert s.logprobs[i] == pytest.approx(expected, abs=1e-5), i
    with pytest.raises(npgpt.InputError, match="stride"):
        score(tiny_model, ids, window=16, stride=16)
    with pytest.raises(npgpt.InputError, match="window"):
        score(tiny_model, ids, window=65)


def test_score_text_and_prepend_eot(text_model):
    s = score(text_model, "Hello world, hello")
    assert s.tokens == ["Hello", " world", ",", " hello"] and s.logprobs[0] is None
    with_eot = score(text_model, "Hello world, hello", prepend_eot=True)
    assert with_eot.ids == s.ids and with_eot.n_scored == 4
    np.testing.assert_allclose(with_eot.logprobs[0], log_softmax(text_model.logits([50256])[-1])[15496], atol=1e-5)
    with pytest.raises(npgpt.InputError, match="two tokens"):
        score(text_model, "Hi")
