"""The README's and docs/viz.md's pictures are the bundled model's, and their captions say what
``benchmarks/gallery.py --docs`` measured when it drew them (``docs/img/gallery.json``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
README = (ROOT / "README.md").read_text(encoding="utf-8")
VIZ_DOC = (ROOT / "docs" / "viz.md").read_text(encoding="utf-8")
PICTURES = ["previous_token.png", "grid.png", "logit_lens.png"]
INDUCTION_PICTURES = ["induction.png", "copying.png"]  # drawn only for a model with induction heads


@pytest.fixture(scope="module")
def findings():
    return json.loads((IMG / "gallery.json").read_text(encoding="utf-8"))


def test_the_pictures_exist_and_are_shown(findings):
    for name in PICTURES + (INDUCTION_PICTURES if findings["induction_found"] else []):
        assert (IMG / name).stat().st_size > 10_000, name
        assert f"docs/img/{name}" in README or f"img/{name}" in VIZ_DOC, f"{name} is shown nowhere"
    assert findings["model"] == "shakespeare"


def test_what_the_pictures_show_holds(findings):
    copy = findings["copy_loss"]
    assert findings["induction_found"] == (findings["induction_score"] >= 0.4 and copy["ratio"] <= 0.5)
    if findings["induction_found"]:
        assert copy["second_with_heads_ablated"] > 2 * copy["second"]
    else:  # nothing claims induction: no picture of it may linger
        assert not any((IMG / name).exists() for name in INDUCTION_PICTURES)
    lens = findings["logit_lens_mean_probability_of_next_token"]
    assert lens[-1] > lens[len(lens) // 2] > lens[0]


def test_the_captions_quote_the_measured_figures(findings):
    prev, ind = findings["previous_token_head"], findings["induction_head"]
    for text in (README, VIZ_DOC):
        assert f"head {prev[0]}.{prev[1]}" in text.lower() and f"{findings['previous_token_score']:.2f}" in text
        assert f"{findings['induction_score']:.2f}" in text
        if findings["induction_found"]:
            assert f"head {ind[0]}.{ind[1]}" in text.lower()
    copy = findings["copy_loss"]
    assert f"{copy['first']:.2f}" in README and f"{copy['second']:.2f}" in README
    assert "random" not in README.split("## Pictures")[1].split("##")[0].lower().replace("random tokens", "")


def test_the_second_models_induction_pictures():
    """docs/img/induction/: the second bundled model (weights/shakespeare-induction), drawn by the
    same ``gallery.py --docs``: its induction head and copy losses, quoted by the README."""
    second = json.loads((IMG / "induction" / "gallery.json").read_text(encoding="utf-8"))
    assert second["model"] == "shakespeare-induction" and second["induction_found"]
    copy = second["copy_loss"]
    assert second["induction_score"] >= 0.4 and copy["ratio"] <= 0.5 and copy["second_with_heads_ablated"] > 2 * copy["second"]
    for name in INDUCTION_PICTURES:
        assert (IMG / "induction" / name).stat().st_size > 10_000 and f"docs/img/induction/{name}" in README
    ind, prev = second["induction_head"], second["previous_token_head"]
    for figure in (f"head {ind[0]}.{ind[1]}", f"{second['induction_score']:.2f}", f"head {prev[0]}.{prev[1]}",
                   f"{second['previous_token_score']:.2f}", f"{copy['first']:.2f}", f"{copy['second']:.2f}",
                   f"{copy['second_with_heads_ablated']:.2f}", f"{copy['ratio']:.2f}"):
        assert figure in README, figure
