"""The second bundled model, ``weights/shakespeare-induction``: a 2-layer model trained by npgpt on
Shakespeare in which every window holds a stretch of its own text written twice, so that it
learns to copy. What its card (weights/README.md), notebook 07 and the README say about it is
checked here, on the model as committed: a previous-token head on held-out Shakespeare, an
induction head on random tokens written twice (which it never saw), the second copy at most half
as costly as the first, and both heads' part in it (zeroing either brings the cost back).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import npgpt
from npgpt import inspection

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "weights" / "shakespeare-induction"
HELDOUT = (Path(__file__).parent / "data" / "heldout_shakespeare.txt").read_text(encoding="utf-8")

pytestmark = pytest.mark.skipif(not (FOLDER / "model.safetensors").exists(), reason="weights/shakespeare-induction is not built")


@pytest.fixture(scope="module")
def model():
    return npgpt.load(FOLDER)


@pytest.fixture(scope="module")
def probe(model):
    return inspection.copying_probe(model, length=50, n_probe=4, seed=0)


def test_size_shape_and_record(model):
    size = sum(f.stat().st_size for f in FOLDER.iterdir() if f.is_file())
    assert size <= 3 * 1000 * 1000, f"{size / 1e6:.1f} MB"
    assert (model.config.n_layer, model.config.n_embd, model.config.n_head, model.config.n_ctx) == (2, 128, 4, 128)
    record = json.loads((FOLDER / "train_log.json").read_text(encoding="utf-8"))
    settings = record["settings"]
    assert record["completed"] and record["final"]["step"] == settings["steps"] == 4000
    assert settings["repeat_fraction"] == 1.0 and settings["repeat_source"] == "text"
    assert settings["attn_init_std"] == 0.12 and settings["position_init"] == "sinusoidal"
    assert model.tokenizer.encode(HELDOUT[:200]) == npgpt.load("shakespeare").tokenizer.encode(HELDOUT[:200])  # the same vocabulary recipe


def test_a_previous_token_head_on_shakespeare(model):
    scores = inspection.mean_head_scores(model, inspection.text_windows(model, HELDOUT, n_seq=128, count=8))
    layer, head = inspection.best_head(scores.previous_token)
    assert layer == 0 and scores.previous_token[layer, head] >= 0.5  # the target


def test_an_induction_head_and_copying(probe):
    layer, head = inspection.best_head(probe.scores.induction)
    assert layer == 1 and probe.scores.induction[layer, head] >= 0.4  # the target
    assert probe.ratio <= 0.5, probe.ratio  # the second copy costs at most half the first


def test_zeroing_either_head_brings_the_cost_back(model, probe):
    ind = inspection.best_head(probe.scores.induction)
    prev = inspection.best_head(probe.scores.previous_token)
    for heads in ([ind], [prev]):
        broken = inspection.copying_probe(model, length=50, n_probe=4, seed=0, hooks=inspection.ablation_hooks(heads))
        assert broken.ratio > probe.ratio + 0.2, (heads, broken.ratio, probe.ratio)
