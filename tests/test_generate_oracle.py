"""Generation against Hugging Face transformers: greedy and beam search token for token, batched
left-padded generation, the logits processors (repetition penalty, temperature, top-k, top-p,
min-p) and the perplexity of a text.

The models are conftest's ``oracle_pair``: randomly initialised ``GPT2LMHeadModel``s at real GPT-2
shapes (2 layers, perturbed layer norms and biases), saved and loaded with ``npgpt.load``. HF
stops at ``eos_token_id=50256``; npgpt stops at the tokenizer's ``<|endoftext|>``, the same id.
"""

from __future__ import annotations

import numpy as np
import pytest

from npgpt.model import softmax
from npgpt.generate import (
    GenerationSettings,
    apply_temperature,
    beam_search,
    generate_ids,
    min_p_filter,
    process_logits,
    repetition_penalty,
    score,
    top_k_filter,
    top_p_filter,
)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

EOS = 50256


def hf_generate(hf, prompts, **kwargs):
    """HF generate on left-padded prompts; the new ids of each row, cut after an eos."""
    width = max(map(len, prompts))
    ids = torch.tensor([[EOS] * (width - len(p)) + list(p) for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        out = hf.generate(ids, attention_mask=mask, pad_token_id=EOS, eos_token_id=EOS, **kwargs)
    rows = []
    for row in out[:, width:].tolist():
        rows.append(row[: row.index(EOS) + 1] if EOS in row else row)
    return rows


def prompt_ids(seed, n):
    return [int(i) for i in np.random.default_rng(seed).integers(0, EOS, n)]


def test_greedy_equals_transformers(oracle_pair):
    # gpt2's shape only: the decoding loop does not depend on the width (test_model_oracle.py
    # checks the forward pass at every size)
    hf, model, _ = oracle_pair("gpt2", 2)
    prompt = prompt_ids(1, 9)
    (expected,) = hf_generate(hf, [prompt], max_new_tokens=20, do_sample=False)
    ours = generate_ids(model, prompt, max_new_tokens=20, temperature=0).completions[0]
    assert ours.ids == expected
    assert ours.finish_reason == ("eos" if expected[-1] == EOS else "length")


def test_batched_left_padded_greedy_equals_transformers(oracle_pair):
    hf, model, _ = oracle_pair("gpt2", 2)
    prompts = [prompt_ids(2, 12), prompt_ids(3, 3), prompt_ids(4, 7)]
    expected = hf_generate(hf, prompts, max_new_tokens=16, do_sample=False)
    ours = generate_ids(model, prompts, max_new_tokens=16, temperature=0).completions
    assert [c.ids for c in ours] == expected


def test_greedy_with_repetition_penalty_equals_transformers(oracle_pair):
    hf, model, _ = oracle_pair("gpt2", 2)
    prompt = prompt_ids(5, 6)
    (expected,) = hf_generate(hf, [prompt], max_new_tokens=16, do_sample=False, repetition_penalty=1.3)
    ours = generate_ids(model, prompt, max_new_tokens=16, temperature=0, repetition_penalty=1.3).completions[0]
    assert ours.ids == expected


def test_beam_search_equals_transformers(oracle_pair):
    hf, model, _ = oracle_pair("gpt2", 2)
    prompt = prompt_ids(6, 8)
    (expected,) = hf_generate(hf, [prompt], max_new_tokens=10, do_sample=False, num_beams=3)
    (best,) = beam_search(model, prompt, num_beams=3, max_new_tokens=10)
    assert best.ids == expected


def test_perplexity_equals_transformers_loss(oracle_pair):
    hf, model, _ = oracle_pair("gpt2", 2)
    ids = prompt_ids(7, 40)
    with torch.no_grad():
        loss = hf(torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    s = score(model, ids)
    assert s.mean_nll == pytest.approx(loss, rel=1e-5)
    assert s.perplexity == pytest.approx(np.exp(loss), rel=1e-4)


# ---- the logits processors, against transformers' own classes ------------------------------------


@pytest.fixture(scope="module")
def logits():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(4, 1000)) * 2.5).astype(np.float32)  # [batch, n_vocab]


def hf_process(processor, logits, input_ids=None):
    ids = torch.zeros((logits.shape[0], 1), dtype=torch.long) if input_ids is None else torch.tensor(input_ids)
    return processor(ids, torch.tensor(logits)).numpy()


def assert_same_filter(ours, theirs):
    assert np.array_equal(np.isfinite(ours), np.isfinite(theirs))
    keep = np.isfinite(theirs)
    np.testing.assert_allclose(ours[keep], theirs[keep], rtol=1e-6)


@pytest.mark.parametrize("k", [1, 5, 50, 999, 1000])
def test_top_k_equals_transformers(logits, k):
    assert_same_filter(top_k_filter(logits, k), hf_process(transformers.TopKLogitsWarper(k), logits))


@pytest.mark.parametrize("p", [0.05, 0.3, 0.9, 0.999])
def test_top_p_equals_transformers(logits, p):
    assert_same_filter(top_p_filter(logits, p), hf_process(transformers.TopPLogitsWarper(p), logits))


@pytest.mark.parametrize("min_p", [0.01, 0.1, 0.5, 0.95])
def test_min_p_equals_transformers(logits, min_p):
    assert_same_filter(min_p_filter(logits, min_p), hf_process(transformers.MinPLogitsWarper(min_p), logits))


@pytest.mark.parametrize("t", [0.3, 1.7])
def test_temperature_equals_transformers(logits, t):
    np.testing.assert_allclose(apply_temperature(logits, t), hf_process(transformers.TemperatureLogitsWarper(t), logits), rtol=1e-6)


@pytest.mark.parametrize("penalty", [0.8, 1.3])
def test_repetition_penalty_equals_transformers(logits, penalty):
    previous = np.random.default_rng(1).integers(0, 1000, (4, 30))
    ours = repetition_penalty(logits, list(previous), penalty)
    theirs = hf_process(transformers.RepetitionPenaltyLogitsProcessor(penalty), logits, previous)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


# ---- ties: which of several equal tokens each processor keeps -------------------------------------
#
# TopPLogitsWarper sorts with torch.sort(descending=False), which on CPU is libstdc++'s std::sort
# (introsort) on the values alone: for up to 16 tokens it is an insertion sort, so stable (equal
# values stay in id order), and beyond that it leaves equal values in an order of its own.
# npgpt sorts stably (the lower id first among equals, so it is dropped first): the same kept
# sets wherever torch's sort is stable, and the same number of tokens, with the same values,
# wherever it is not.


def tie_heavy_logits(seed, n_rows, n_vocab, n_levels=3):
    """Logits [n_rows, n_vocab] of a few distinct values (many exact ties), some -inf, the first
    row all equal, the second all equal but for a few -inf."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, n_levels, (n_rows, n_vocab)).astype(np.float32) * np.float32(0.75)
    x[rng.random((n_rows, n_vocab)) < 0.15] = -np.inf
    x[0] = 1.5
    x[1] = np.where(np.arange(n_vocab) % 5 == 4, -np.inf, 0.25)
    return x


def kept(x):
    return np.isfinite(x)


def test_torch_sort_is_stable_up_to_16_tokens_and_not_beyond():
    rng = np.random.default_rng(0)
    for n in range(2, 17):
        x = rng.integers(0, 2, (50, n)).astype(np.float32)
        assert np.array_equal(torch.sort(torch.tensor(x))[1].numpy(), np.argsort(x, axis=-1, kind="stable"))
    x = np.zeros((1, 100), dtype=np.float32)  # if this starts to fail, torch sorts stably: tighten the test below
    assert not np.array_equal(torch.sort(torch.tensor(x))[1].numpy(), np.argsort(x, axis=-1, kind="stable"))


def test_top_p_on_the_issues_ties_equals_transformers():
    cases = [(np.log([0.5, 0.25, 0.25]), 0.75, [0, 2]), (np.zeros(8), 0.5, [4, 5, 6, 7])]
    for logits, p, expected in cases:
        logits = logits.astype(np.float32)[None]
        theirs = hf_process(transformers.TopPLogitsWarper(p), logits)
        assert np.flatnonzero(kept(theirs[0])).tolist() == expected
        assert np.flatnonzero(kept(top_p_filter(logits, p)[0])).tolist() == expected


@pytest.mark.parametrize("n_vocab", [2, 3, 5, 8, 13, 16])
@pytest.mark.parametrize("seed", range(3))
def test_top_p_with_ties_equals_transformers_up_to_16_tokens(n_vocab, seed):
    x = tie_heavy_logits(seed, 40, n_vocab)
    x[2:] = x[2:][:, np.random.default_rng(seed).permutation(n_vocab)]
    ps = [0.0, 1e-6, 0.125, 0.25, 0.5, 0.75, 0.875, 0.999, *np.random.default_rng(seed + 10).random(12)]
    for p in ps:
        theirs = hf_process(transformers.TopPLogitsWarper(float(p)), x)
        assert np.array_equal(kept(top_p_filter(x, p)), kept(theirs)), p


def cut_is_near(x, p, tolerance=1e-5):
    """Rows of x where the mass of some least likely tokens lies within ``tolerance`` of 1 - p:
    there the cut depends on rounding. torch's float32 softmax of 50257 logits sums to 1 within
    about 5e-6, not 1e-7, so a cut there can fall one token apart from npgpt's (float64)."""
    mass = np.cumsum(softmax(np.sort(x, axis=-1).astype(np.float64)), axis=-1)[..., :-1]  # (the top token stays)
    return np.any(np.abs(mass - (1 - p)) < tolerance, axis=-1)


@pytest.mark.parametrize("n_vocab", [17, 100, 1000, 50257])
def test_top_p_with_ties_keeps_as_many_tokens_as_transformers_beyond_16(n_vocab):
    x = tie_heavy_logits(n_vocab, 6, n_vocab, n_levels=6)
    n_exact = 0
    for p in [0.0, 0.1234567, 0.3141593, 0.5, 0.7718282, 0.9512345]:
        ours, theirs = top_p_filter(x, p), hf_process(transformers.TopPLogitsWarper(p), x)
        near = cut_is_near(x, p)
        for row_ours, row_theirs, rounding in zip(ours, theirs, near):
            if rounding:  # (e.g. 50 of 100 equal tokens at p=0.5: float64 and float32 round apart)
                assert abs(kept(row_ours).sum() - kept(row_theirs).sum()) <= 1
                continue
            n_exact += 1  # the same number of tokens, the same values: only which of equal tokens differs
            assert np.array_equal(np.sort(row_ours[kept(row_ours)]), np.sort(row_theirs[kept(row_theirs)])), p
    assert n_exact >= 12  # of 36 rows (at 50257 tokens, a third of the cuts come near rounding)


@pytest.mark.parametrize("p", [0.0, 0.05, 0.3, 0.9, 0.999])
def test_top_p_on_random_logits_of_gpt2s_width_equals_transformers(p):
    x = (np.random.default_rng(5).normal(size=(3, 50257)) * 3).astype(np.float32)
    x[:, ::7] = -np.inf
    assert_same_filter(top_p_filter(x, p), hf_process(transformers.TopPLogitsWarper(p), x))


def test_top_p_zero_keeps_only_the_most_likely_token_like_transformers():
    x = np.array([[1.0, 3.0, 3.0, 2.0], [0.0, 0.0, 0.0, 0.0], [-np.inf, 5.0, -np.inf, 1.0]], dtype=np.float32)
    theirs = hf_process(transformers.TopPLogitsWarper(0.0), x)
    assert kept(theirs).tolist() == [[False, False, True, False], [False, False, False, True], [False, True, False, False]]
    assert np.array_equal(kept(top_p_filter(x, 0.0)), kept(theirs))


@pytest.mark.parametrize("n_vocab", [5, 16, 1000, 50257])
def test_top_k_min_p_temperature_and_penalty_with_ties_equal_transformers(n_vocab):
    x = tie_heavy_logits(n_vocab + 1, 8, n_vocab, n_levels=4)
    for k in sorted({1, 2, 3, n_vocab // 2 + 1, n_vocab - 1, n_vocab}):
        assert_same_filter(top_k_filter(x, k), hf_process(transformers.TopKLogitsWarper(k), x))
    for min_p in [0.0, 0.1, 0.4, 0.5, 0.9, 1.0]:
        assert_same_filter(min_p_filter(x, min_p), hf_process(transformers.MinPLogitsWarper(min_p), x))
    for t in [0.5, 1.3]:
        np.testing.assert_allclose(apply_temperature(x, t), hf_process(transformers.TemperatureLogitsWarper(t), x), rtol=1e-6)
    previous = np.random.default_rng(n_vocab).integers(0, n_vocab, (8, 12))
    for penalty in [0.7, 1.5]:
        theirs = hf_process(transformers.RepetitionPenaltyLogitsProcessor(penalty), x, previous)
        np.testing.assert_allclose(repetition_penalty(x, list(previous), penalty), theirs, rtol=1e-6)


@pytest.mark.parametrize("n_vocab", [12, 1000])
def test_process_logits_chain_equals_transformers_processors(n_vocab):
    x = tie_heavy_logits(n_vocab + 2, 6, n_vocab, n_levels=5)
    previous = np.random.default_rng(3).integers(0, n_vocab, (6, 10))
    s = GenerationSettings(repetition_penalty=1.3, temperature=0.7, top_k=n_vocab // 2, top_p=0.6123457, min_p=0.05)
    chain = transformers.LogitsProcessorList([
        transformers.RepetitionPenaltyLogitsProcessor(1.3), transformers.TemperatureLogitsWarper(0.7),
        transformers.TopKLogitsWarper(n_vocab // 2), transformers.TopPLogitsWarper(0.6123457), transformers.MinPLogitsWarper(0.05),
    ])
    ours, theirs = process_logits(x, s, list(previous)), hf_process(chain, x, previous)
    if n_vocab <= 16:
        assert_same_filter(ours, theirs)
    else:
        assert np.array_equal(kept(ours).sum(-1), kept(theirs).sum(-1))  # (no cut near rounding here)
