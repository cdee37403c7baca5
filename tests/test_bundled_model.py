"""The bundled model, ``weights/shakespeare``: small enough to commit, trained by npgpt itself.

What the README, docs/viz.md, weights/README.md and notebook 07 say about it is checked here, on
the model as committed: its most previous-token-like head on Shakespeare it never trained on, that
it does not copy a repeated random sequence yet, the held-out loss recorded by its training run,
and its size.

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
from npgpt.model import log_softmax
from npgpt.training import nats_per_char

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "weights" / "shakespeare"
HELDOUT = (Path(__file__).parent / "data" / "heldout_shakespeare.txt").read_text(encoding="utf-8")

pytestmark = pytest.mark.skipif(not (BUNDLED / "model.safetensors").exists(), reason="weights/shakespeare is not built")

# What weights/README.md, the README and notebook 07 say about it (docs/img/gallery.json holds the
# figures the pictures were drawn with). Of the targets, the held-out loss (<= 1.50
# nats/char) is reached; a previous-token head >= 0.5 and induction >= 0.4 are not. These tests pin
# what it does, so that a retrained model that reaches them fails here until its docs say so.
GALLERY = json.loads((ROOT / "docs" / "img" / "gallery.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def model():
    return npgpt.load(BUNDLED)


@pytest.fixture(scope="module")
def record():
    return json.loads((BUNDLED / "train_log.json").read_text(encoding="utf-8"))


def test_size_and_storage(model):
    size = sum(f.stat().st_size for f in BUNDLED.iterdir() if f.is_file())
    assert size <= 10 * 1000 * 1000, f"weights/shakespeare is {size / 1e6:.1f} MB"
    assert model.params["wte"]["weight"].dtype == np.float32  # stored float16, computed in float32
    assert (model.config.n_layer, model.config.n_embd, model.config.n_head, model.config.n_ctx) == (4, 192, 6, 128)


def test_training_record(record):
    final = record["final"]
    assert record["completed"] and final["step"] == record["settings"]["steps"]
    assert final["val_tokens"] == record["evals"][-1]["val_tokens"] > 40000  # the whole held-out 10%
    assert final["val_nats_per_char"] <= 1.50  # the target (weights/README.md: 1.489)
    assert abs(record["committed_copy"]["val_nats_per_char"] - final["val_nats_per_char"]) < 1e-3  # float16 storage costs nothing
    assert record["resumed_at"] == [1750] and record["steps_at_resume"] == [3000]  # weights/README.md
    assert record["settings"]["position_init"] == "sinusoidal" and record["settings"]["dropout"] == 0.2


def test_held_out_sample_is_predicted_well(model):
    _, per_char = nats_per_char(model, HELDOUT)
    assert per_char < 1.7, per_char  # far better than uniform over characters (ln 65 = 4.2)


def test_its_most_previous_token_like_head(model):
    scores = inspection.mean_head_scores(model, inspection.text_windows(model, HELDOUT, n_seq=128, count=8))
    layer, head = inspection.best_head(scores.previous_token)
    assert [layer, head] == GALLERY["previous_token_head"]
    assert scores.previous_token[layer, head] == pytest.approx(GALLERY["previous_token_score"], abs=1e-3)
    assert scores.previous_token[layer, head] > 2 * np.median(scores.previous_token)  # it stands out


def test_it_has_not_learned_induction(model):
    probe = inspection.copying_probe(model, length=50, n_probe=4, seed=0)
    assert probe.scores.induction.max() < 0.1 and probe.ratio > 0.9, (probe.scores.induction.max(), probe.ratio)
    assert probe.ratio == pytest.approx(GALLERY["copy_loss"]["ratio"], abs=1e-3)


def test_zeroing_the_previous_token_head_costs_more_than_most_heads(model):
    windows = inspection.text_windows(model, HELDOUT, n_seq=128, count=4)

    def loss(hooks=None):
        return np.mean([-log_softmax(model.logits(w, hooks=hooks)[:-1])[np.arange(len(w) - 1), w[1:]].mean() for w in windows])

    clean = loss()
    rises = np.array([[loss(inspection.ablation_hooks([(l, h)])) - clean for h in range(model.config.n_head)] for l in range(model.config.n_layer)])
    layer, head = GALLERY["previous_token_head"]
    assert rises[layer, head] > np.median(rises), rises.round(4)


def test_generates_shakespeare_shaped_text(model):
    text = model.generate("ROMEO:", max_new_tokens=40, seed=0, temperature=0.8)
    assert isinstance(text, str) and len(text) > 40
