"""The bundled model, ``weights/shakespeare``: small enough to commit, trained enough to look inside.

What the README, docs/viz.md and notebook 07 say about it is checked here, on the model as
committed: a previous-token head on Shakespeare it never trained on, induction heads that copy a
repeated random sequence, the held-out loss recorded by its training run, and its size.

``tests/data/heldout_shakespeare.txt`` is 5.8 kB from the held-out last 10% of tinyshakespeare
(public domain): text the model and its tokenizer never saw in training.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import npgpt
from npgpt import inspection
from npgpt.training import nats_per_char

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "weights" / "shakespeare"
HELDOUT = (Path(__file__).parent / "data" / "heldout_shakespeare.txt").read_text(encoding="utf-8")

pytestmark = pytest.mark.skipif(not (BUNDLED / "model.safetensors").exists(), reason="weights/shakespeare is not built")

# The targets for the bundled model (the README and the model card quote the measured values).
MAX_HELDOUT_NATS_PER_CHAR = 1.50
MIN_PREVIOUS_TOKEN = 0.5
MIN_INDUCTION = 0.4
MAX_COPY_RATIO = 0.5


@pytest.fixture(scope="module")
def model():
    return npgpt.load(BUNDLED)


@pytest.fixture(scope="module")
def record():
    return json.loads((BUNDLED / "train_log.json").read_text(encoding="utf-8"))


def test_size_and_files():
    size = sum(f.stat().st_size for f in BUNDLED.iterdir() if f.is_file())
    assert size <= 10 * 1000 * 1000, f"weights/shakespeare is {size / 1e6:.1f} MB"


def test_training_record_meets_the_held_out_target(record):
    final = record["final"]
    assert record["completed"] and final["step"] == record["settings"]["steps"]
    assert final["val_tokens"] == record["evals"][-1]["val_tokens"] > 40000  # the whole held-out 10%
    assert final["val_nats_per_char"] <= MAX_HELDOUT_NATS_PER_CHAR, final


def test_held_out_sample_is_predicted_well(model):
    _, per_char = nats_per_char(model, HELDOUT)
    assert per_char < 1.7, per_char  # far better than uniform over characters (ln 65 = 4.2)


def test_a_previous_token_head_on_held_out_shakespeare(model):
    scores = inspection.mean_head_scores(model, inspection.text_windows(model, HELDOUT, n_seq=128, count=8))
    layer, head = inspection.best_head(scores.previous_token)
    assert scores.previous_token[layer, head] >= MIN_PREVIOUS_TOKEN, (layer, head, scores.previous_token.round(2))


def test_induction_heads_copy_a_repeated_random_sequence(model):
    probe = inspection.copying_probe(model, length=50, n_probe=4, seed=0)
    layer, head = inspection.best_head(probe.scores.induction)
    assert probe.scores.induction[layer, head] >= MIN_INDUCTION, probe.scores.induction.round(2)
    assert probe.ratio <= MAX_COPY_RATIO, (probe.first_copy_loss, probe.second_copy_loss)


def test_ablating_the_induction_heads_brings_the_copy_loss_back(model):
    probe = inspection.copying_probe(model, length=50, n_probe=2, seed=1)
    induction = probe.scores.induction
    heads = [tuple(map(int, h)) for h in np.argwhere(induction >= 0.5 * induction.max())]
    broken = inspection.copying_probe(model, length=50, n_probe=2, seed=1, hooks=inspection.ablation_hooks(heads))
    assert broken.second_copy_loss > 2 * probe.second_copy_loss, (heads, probe.second_copy_loss, broken.second_copy_loss)


def test_generates_shakespeare_shaped_text(model):
    text = model.generate("ROMEO:", max_new_tokens=40, seed=0, temperature=0.8)
    assert isinstance(text, str) and len(text) > 40
