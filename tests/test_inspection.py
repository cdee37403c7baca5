"""npgpt.inspection: logit lens, head scores, direct logit attribution, ablation, attention flow.

Checked against the model itself (the lens's last row is the model's output, DLA adds up to the
logit) and against hand-made attention patterns whose scores are known exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

import npgpt
from npgpt import inspection
from npgpt.errors import InputError
from npgpt.model import softmax


@pytest.fixture(scope="session")
def model():
    """A small random model with every parameter non-trivial (layer norms, biases, ln_f)."""
    config = npgpt.GPT2Config(n_vocab=300, n_ctx=64, n_embd=32, n_head=4, n_layer=3)
    m = npgpt.random_model(config, seed=3)
    rng = np.random.default_rng(4)

    def perturb(d, scale):
        d += rng.normal(0, scale, d.shape).astype(np.float32)

    for block in m.params["h"]:
        for ln in (block["ln_1"], block["ln_2"]):
            perturb(ln["weight"], 0.2), perturb(ln["bias"], 0.1)
        for lin in (block["attn"]["c_attn"], block["attn"]["c_proj"], block["mlp"]["c_fc"], block["mlp"]["c_proj"]):
            perturb(lin["bias"], 0.05)
        # sharper attention than the 0.02 init gives, so heads differ from one another
        block["attn"]["c_attn"]["weight"] *= np.float32(8.0)
    perturb(m.params["ln_f"]["weight"], 0.2)
    perturb(m.params["ln_f"]["bias"], 0.1)
    return m


@pytest.fixture(scope="session")
def ids():
    return np.random.default_rng(5).integers(0, 300, size=20)


@pytest.fixture(scope="session")
def run(model, ids):
    return model.run_with_cache(ids)


# ---- logit lens ----------------------------------------------------------------------------


def test_logit_lens_last_layer_is_the_models_own_output(model, ids, run):
    logits, cache = run
    np.testing.assert_allclose(inspection.lens_logits(model, cache["resid_post", -1]), logits, rtol=0, atol=1e-5)
    lens = inspection.logit_lens(model, cache, ids, k=4)
    n_layer = model.config.n_layer
    assert lens.labels == ["embed"] + [str(l) for l in range(n_layer)]
    assert lens.top_ids.shape == lens.top_probs.shape == (n_layer + 1, len(ids), 4)
    probs = softmax(logits.astype(np.float64), axis=-1)
    expected_top = np.argsort(-probs, axis=-1, kind="stable")[:, :4]
    np.testing.assert_array_equal(lens.top_ids[-1], expected_top)
    np.testing.assert_allclose(lens.top_probs[-1], np.take_along_axis(probs, expected_top, -1), atol=1e-6)
    np.testing.assert_allclose(lens.next_probs[-1, :-1], probs[np.arange(len(ids) - 1), ids[1:]], atol=1e-6)
    assert np.isnan(lens.next_probs[:, -1]).all() and lens.next_ids[-1] == -1
    assert np.all(np.diff(lens.top_probs, axis=-1) <= 0)  # most likely first


def test_logit_lens_rows_are_each_layers_residual_and_chunking_changes_nothing(model, ids, run):
    _, cache = run
    lens = inspection.logit_lens(model, cache, ids, k=3, chunk=64)
    chunked = inspection.logit_lens(model, cache, ids, k=3, chunk=3)
    np.testing.assert_array_equal(lens.top_ids, chunked.top_ids)
    np.testing.assert_allclose(lens.top_probs, chunked.top_probs, atol=1e-6)
    first = softmax(inspection.lens_logits(model, cache["embed"] + cache["pos_embed"]), axis=-1)
    np.testing.assert_array_equal(lens.top_ids[0, :, 0], first.argmax(-1))
    some = inspection.logit_lens(model, cache, ids, k=3, positions=[-1, 2])
    np.testing.assert_array_equal(some.positions, [len(ids) - 1, 2])
    np.testing.assert_array_equal(some.top_ids[:, 1], lens.top_ids[:, 2])
    assert some.tokens == [f"#{ids[-1]}", f"#{ids[2]}"]  # no tokenizer: ids as labels


# ---- attention entropy and head scores ---------------------------------------------------------


def test_attention_entropy_of_hand_made_rows():
    uniform = np.tril(np.ones((4, 4))) / np.arange(1, 5)[:, None]
    np.testing.assert_allclose(inspection.attention_entropy(uniform), np.log(np.arange(1, 5)))
    np.testing.assert_allclose(inspection.attention_entropy(np.eye(5)), 0.0)


def _fake_cache(patterns):
    """The entries head_scores and attention_flow read, for hand-made [n_layer, n_head, n, n] patterns."""
    n_layer, _, n, _ = patterns.shape
    cache = {"embed": np.zeros((n, 8))}
    for l in range(n_layer):
        cache[f"blocks.{l}.resid_pre"] = np.zeros((n, 8))
        cache[f"blocks.{l}.attn.pattern"] = patterns[l]
    return cache


def test_head_scores_find_planted_previous_first_and_induction_heads():
    half = 6
    ids = np.concatenate([[299], np.arange(10, 10 + half), np.arange(10, 10 + half)])  # bos + A + A
    n = len(ids)
    previous = np.eye(n, k=-1)
    previous[0, 0] = 1.0
    first = np.zeros((n, n))
    first[:, 0] = 1.0
    induction = np.eye(n)  # tokens of the first copy attend to themselves ...
    for i in range(1 + half, n):  # ... those of the second copy to the token after their earlier occurrence
        induction[i] = 0.0
        induction[i, i - half + 1] = 1.0
    scores = inspection.head_scores(_fake_cache(np.stack([previous, first, induction])[None]), ids)
    np.testing.assert_allclose(scores.previous_token[0], [1.0, 1 / (n - 1), 0.0], atol=1e-12)
    np.testing.assert_allclose(scores.first_token[0], [1 / (n - 1), 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(scores.induction[0], [0.0, 0.0, 1.0], atol=1e-12)  # scored on the second copy only
    np.testing.assert_allclose(scores.entropy[0], 0.0, atol=1e-12)


def test_induction_score_is_nan_without_repeats_and_real_scores_are_probabilities(model, run, ids):
    _, cache = run
    if len(set(ids.tolist())) == len(ids):
        assert np.isnan(inspection.head_scores(cache, ids).induction).all()
    rep = inspection.repeated_random_tokens(300, 10, seed=1, prefix=[299])
    assert rep.shape == (21,) and (rep[1:11] == rep[11:]).all()
    _, rep_cache = model.run_with_cache(rep)
    s = inspection.head_scores(rep_cache, rep)
    for field in (s.previous_token, s.first_token, s.induction):
        assert field.shape == (3, 4) and np.all((field >= 0) & (field <= 1 + 1e-6))
    assert np.all(s.entropy >= 0) and np.all(s.entropy <= np.log(21))


# ---- direct logit attribution --------------------------------------------------------------


@pytest.mark.parametrize("position", [-1, 0, 7])
def test_direct_logit_attribution_adds_up_to_the_logit(model, run, position):
    logits, cache = run
    for target in (int(np.argmax(logits[position])), 0, 123):
        dla = inspection.direct_logit_attribution(model, cache, target=target, position=position)
        assert dla.logit == pytest.approx(float(logits[position, target]))
        assert dla.total() == pytest.approx(dla.logit, abs=2e-5 * max(1.0, abs(dla.logit)))
        assert sum(v for _, v in dla.parts()) == pytest.approx(dla.total(), abs=1e-9)
        assert dla.heads.shape == (3, 4) and dla.mlp.shape == dla.attn_bias.shape == (3,)
        assert dla.ln_final_bias != 0.0  # ln_f's bias was perturbed: its term is really exercised


def test_direct_logit_attribution_heads_add_up_to_each_layers_attention_output(model, run):
    _, cache = run
    dla = inspection.direct_logit_attribution(model, cache, target=5, position=-1)
    x = cache["resid_post", -1][-1].astype(np.float64)
    direction = model.params["ln_f"]["weight"].astype(np.float64) * model.params["wte"]["weight"][5]
    for l in range(3):
        attn_out = cache["attn_out", l][-1].astype(np.float64)
        whole = (attn_out - attn_out.mean()) @ direction / np.sqrt(x.var() + 1e-5)
        assert dla.heads[l].sum() + dla.attn_bias[l] == pytest.approx(whole, abs=1e-5)
    default = inspection.direct_logit_attribution(model, cache)
    assert default.target == int(np.argmax(cache["logits"][-1]))


# ---- ablation ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_ablating_a_head_changes_exactly_that_heads_output(model, ids, run, mode):
    _, clean = run
    layer, head = 1, 2
    _, ablated = model.run_with_cache(ids, hooks=inspection.ablation_hooks([(layer, head)], mode))
    z, z_clean = ablated["z", layer], clean["z", layer]
    others = [h for h in range(4) if h != head]
    np.testing.assert_array_equal(z[others], z_clean[others])
    expected = np.zeros_like(z_clean[head]) if mode == "zero" else np.broadcast_to(z_clean[head].mean(0), z_clean[head].shape)
    np.testing.assert_allclose(z[head], expected, atol=1e-7)
    for name in ("embed", "blocks.0.resid_post", "blocks.1.attn.pattern", "blocks.1.resid_pre"):
        np.testing.assert_array_equal(ablated[name], clean[name])  # nothing before the head changes
    w_o = model.params["h"][layer]["attn"]["c_proj"]["weight"].reshape(4, 8, 32)[head]
    np.testing.assert_allclose(ablated["attn_out", layer] - clean["attn_out", layer], (expected - z_clean[head]) @ w_o, atol=1e-5)
    assert not np.allclose(ablated["logits"], clean["logits"])


def test_ablation_hooks_do_not_edit_their_input():
    z = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    before = z.copy()
    out = inspection.ablation_hooks([(0, 1)])["blocks.0.attn.z"](z)
    np.testing.assert_array_equal(z, before)
    assert (out[:, 1] == 0).all() and (out[:, [0, 2]] == z[:, [0, 2]]).all()


def test_head_ablation_and_scan_report_the_change_in_log_prob(model, ids):
    result = inspection.head_ablation(model, ids, layer=2, head=1, target=7, position=-1)
    logits = model.logits(ids).astype(np.float64)
    lp = logits[-1] - np.log(np.exp(logits[-1] - logits[-1].max()).sum()) - logits[-1].max()
    assert result.logprob == pytest.approx(lp[7], abs=1e-5)
    hooked = model.logits(ids, hooks=inspection.ablation_hooks([(2, 1)])).astype(np.float64)[-1]
    assert result.ablated_logprob == pytest.approx(hooked[7] - np.log(np.exp(hooked - hooked.max()).sum()) - hooked.max(), abs=1e-5)
    scan = inspection.ablation_scan(model, ids, target=7)
    assert scan.shape == (3, 4)
    assert scan[2, 1] == pytest.approx(result.delta, abs=1e-9)
    assert np.count_nonzero(scan) == 12


# ---- flow, norms, errors -------------------------------------------------------------------


def test_attention_flow_rollout(run):
    _, cache = run
    flow = inspection.attention_flow(cache, position=-1, residual=0.5)
    n = cache["embed"].shape[0]
    assert flow.flow.shape == (4, n) and flow.mixing.shape == (3, n, n)
    np.testing.assert_allclose(flow.flow.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(flow.flow[-1], np.eye(n)[-1])
    np.testing.assert_allclose(flow.edges(2).sum(), 1.0, atol=1e-5)
    mean_last = cache["pattern", 2].astype(np.float64).mean(0)
    np.testing.assert_allclose(inspection.attention_flow(cache, position=-1, residual=0.0).flow[2], mean_last[-1], atol=1e-12)
    np.testing.assert_array_equal(inspection.attention_flow(cache, position=4, residual=1.0).flow[0], np.eye(n)[4])


def test_residual_norms(run):
    _, cache = run
    norms = inspection.residual_norms(cache)
    assert norms.shape == (4, cache["embed"].shape[0])
    np.testing.assert_allclose(norms[2], np.linalg.norm(cache["resid_post", 1].astype(np.float64), axis=-1))


def test_clear_errors(model, ids, run):
    _, cache = run
    batched = model.run_with_cache(ids[None, :])[1]
    with pytest.raises(InputError, match="batch axis"):
        inspection.logit_lens(model, batched)
    with pytest.raises(InputError, match="outside the sequence"):
        inspection.direct_logit_attribution(model, cache, target=1, position=99)
    with pytest.raises(InputError, match="outside the vocabulary"):
        inspection.direct_logit_attribution(model, cache, target=300)
    with pytest.raises(InputError, match="no tokenizer"):
        inspection.direct_logit_attribution(model, cache, target=" Paris")
    with pytest.raises(InputError, match="head 9 does not exist"):
        inspection.head_ablation(model, ids, layer=0, head=9)
    with pytest.raises(InputError, match="'zero' or 'mean'"):
        inspection.ablation_hooks([(0, 0)], mode="random")
    with pytest.raises(InputError, match="ids has"):
        inspection.head_scores(cache, ids[:-1])


def test_one_token_string_targets_with_gpt2_vocabulary():
    m = npgpt.random_model(npgpt.PRESETS["gpt2"].replace(n_layer=1, n_embd=32, n_head=2, n_ctx=32), seed=0)
    m.tokenizer = npgpt.Tokenizer.gpt2()
    ids = m.tokenizer.encode("The capital of France is")
    _, cache = m.run_with_cache(ids)
    assert inspection.direct_logit_attribution(m, cache, target=" Paris").target == m.tokenizer.encode(" Paris")[0]
    with pytest.raises(InputError, match="is 2 tokens"):
        inspection.direct_logit_attribution(m, cache, target=" Parisienne")
    assert inspection.token_labels(m, ids) == ["The", " capital", " of", " France", " is"]


def test_a_model_held_in_float16_is_inspected_in_float32(tmp_path):
    # npgpt.load(..., dtype="float16") keeps float16 weights; every inspection result must still be
    # float32 and agree with a float32 model holding the same (rounded) weights.
    config = npgpt.GPT2Config(n_vocab=300, n_ctx=32, n_embd=32, n_head=4, n_layer=2)
    source = npgpt.random_model(config, seed=4)
    npgpt.save(source, tmp_path / "m")
    held = npgpt.load(tmp_path / "m", dtype="float16")
    wide = npgpt.GPT2(config, npgpt.weights.unflatten(
        {k: v.astype(np.float32) for k, v in npgpt.weights.flatten(held.params).items()}, config))
    ids = [5, 17, 42, 99, 3, 250]
    (_, c16), (_, c32) = held.run_with_cache(ids), wide.run_with_cache(ids)
    assert c16["blocks.1.attn.pattern"].dtype == np.float32
    lens16, lens32 = inspection.logit_lens(held, c16, ids), inspection.logit_lens(wide, c32, ids)
    assert lens16.top_probs.dtype == np.float32 and np.array_equal(lens16.top_ids, lens32.top_ids)
    np.testing.assert_allclose(lens16.top_probs, lens32.top_probs, atol=1e-6)
    dla16, dla32 = inspection.direct_logit_attribution(held, c16, target=7), inspection.direct_logit_attribution(wide, c32, target=7)
    np.testing.assert_allclose(dla16.heads, dla32.heads, atol=1e-6)
    assert abs(dla16.total() - dla16.logit) < 1e-4
    assert inspection.positional_embedding(held).dtype == np.float32
    np.testing.assert_array_equal(inspection.positional_embedding(held), inspection.positional_embedding(wide))


# ---- probes: head scores over text, copying -----------------------------------------------------


class _Copier:
    """A stand-in model: at a token seen before it predicts (and attends to) the token that followed
    that earlier occurrence; elsewhere it is uniform and attends to itself."""

    config = npgpt.GPT2Config(n_vocab=1000, n_ctx=64, n_embd=8, n_head=1, n_layer=1)

    def __init__(self, copies: bool = True):
        self.copies = copies

    def run_with_cache(self, ids, hooks=None):
        n = len(ids)
        logits, pattern = np.zeros((n, 1000)), np.eye(n)
        for i in range(n):
            earlier = [j for j in range(i - 1) if ids[j] == ids[i]]
            if earlier and self.copies:
                logits[i, ids[earlier[-1] + 1]] = 30.0
                pattern[i] = 0.0
                pattern[i, earlier[-1] + 1] = 1.0
        return logits, _fake_cache(pattern[None, None])


def test_copying_probe_losses_and_ratio_on_a_perfect_and_a_blind_copier():
    probe = inspection.copying_probe(_Copier(), length=20, n_probe=3, seed=1)
    assert probe.ids.shape == (3, 40) and probe.losses.shape == (3, 39) and probe.length == 20
    assert np.array_equal(probe.ids[:, :20], probe.ids[:, 20:])
    uniform = np.log(1000)
    assert abs(probe.first_copy_loss - uniform) < 0.05  # a copier cannot predict new random tokens
    assert probe.second_copy_loss < 1e-6 and probe.ratio < 1e-6  # but predicts every repeated one
    assert probe.scores.induction[0, 0] == pytest.approx(1.0)
    blind = inspection.copying_probe(_Copier(copies=False), length=20, n_probe=3, seed=1)
    assert blind.ratio == pytest.approx(1.0) and blind.scores.induction[0, 0] == pytest.approx(0.0)


def test_mean_head_scores_averages_runs_and_finds_the_best_head(model):
    windows = [np.arange(10, 30), np.arange(40, 60)]
    mean = inspection.mean_head_scores(model, windows)
    each = [inspection.head_scores(model.run_with_cache(w)[1], w) for w in windows]
    np.testing.assert_allclose(mean.previous_token, (each[0].previous_token + each[1].previous_token) / 2)
    assert np.all(np.isnan(mean.induction))  # no token repeats in either window
    scores = np.zeros((3, 4))
    scores[2, 1] = 0.7
    assert inspection.best_head(scores) == (2, 1)
    with pytest.raises(InputError, match="no sequences"):
        inspection.mean_head_scores(model, [])
