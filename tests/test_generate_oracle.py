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

from npgpt.generate import (
    apply_temperature,
    beam_search,
    generate_ids,
    min_p_filter,
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
