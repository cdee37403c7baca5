"""Every notebook runs top to bottom, matches its source, and uses only npgpt's public API.

The notebooks are built from ``notebooks/src/*.py`` by ``notebooks/build.py`` and committed with
outputs. Here each committed notebook is executed again (in a temporary folder, so nothing in the
checkout changes) and any error fails the test.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOURCES = sorted((ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py"))

sys.path.insert(0, str(ROOT / "notebooks"))
from build import cells_from_source  # noqa: E402


def test_every_source_has_a_built_notebook():
    assert len(SOURCES) >= 8
    assert [s.stem for s in SOURCES] == [n.stem for n in NOTEBOOKS]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_matches_its_source_and_has_outputs(notebook):
    nb = nbformat.read(notebook, as_version=4)
    source = notebook.parent / "src" / (notebook.stem + ".py")
    expected = [c.source for c in cells_from_source(source.read_text(encoding="utf-8"))]
    assert [c.source for c in nb.cells] == expected, f"{notebook.name} is stale: run python notebooks/build.py {notebook.stem[:2]}"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert any(c.outputs for c in code), "committed without outputs"
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)


FIGURE_TEXT = re.compile(r"<(?:matplotlib\.figure\.)?Figure size [\d.]+x[\d.]+ with \d+ Axes>")


def figures_without_pictures(nb) -> list[str]:
    """Outputs that hold a figure's text (``<Figure size ... with N Axes>``) but no image: what a
    reader sees when a Figure was returned and never drawn."""
    missing = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = output.get("data", {})
            text = data.get("text/plain", "") if output.get("output_type") != "stream" else output.get("text", "")
            text = "".join(text) if isinstance(text, list) else text
            if FIGURE_TEXT.search(text) and not any(k.startswith("image/") for k in data):
                missing.append(f"cell {index}: {text.strip()[:60]}")
    return missing


def test_the_figure_check_finds_a_figure_without_its_picture():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("viz.attention_grid(cache)")]
    nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "<Figure size 876x594 with 25 Axes>"})]
    assert figures_without_pictures(nb) == ["cell 0: <Figure size 876x594 with 25 Axes>"]
    nb.cells[0].outputs[0]["data"]["image/png"] = "iVBORw0KGgo="
    assert figures_without_pictures(nb) == []


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_stored_figure_has_its_picture(notebook):
    nb = nbformat.read(notebook, as_version=4)
    assert figures_without_pictures(nb) == [], f"{notebook.name}: figures stored as text only"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_an_interactive_view_has_a_static_picture_beside_it(notebook):
    # GitHub and untrusted notebooks do not run the view's script: a picture must follow it.
    nb = nbformat.read(notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for index, cell in enumerate(code):
        if any("npgpt-data" in str(o.get("data", {}).get("text/html", "")) for o in cell.outputs):
            after = code[index: index + 2]
            assert any("image/png" in o.get("data", {}) for c in after for o in c.outputs), \
                f"{notebook.name}: the interactive view in code cell {index} has no picture in it or the next cell"


# The one notebook that runs the article's Hugging Face example: it may use transformers (guarded,
# so it still runs without it), and torch only through transformers.
USES_TRANSFORMERS = {"10_hugging_face"}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_uses_public_api_only(notebook):
    nb = nbformat.read(notebook, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    private = re.findall(r"\b(?:npgpt|viz|model|tok|inspection)\.(_\w+)", code)
    assert not private, f"{notebook.name} uses private names {private}"
    assert not re.search(r"^\s*(?:import|from)\s+torch\b", code, re.MULTILINE), f"{notebook.name} imports torch"
    if notebook.stem in USES_TRANSFORMERS:
        assert "except ImportError" in code, f"{notebook.name} must run without transformers installed"
    else:
        assert "transformers" not in code, f"{notebook.name} uses transformers"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_without_error(notebook, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "agg")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no cell may depend on the network
    nb = nbformat.read(notebook, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    assert figures_without_pictures(nb) == []  # pictures appear without pyplot or a magic
    assert any(o.get("output_type") in ("stream", "display_data", "execute_result") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(USES_TRANSFORMERS))
def test_notebook_runs_without_transformers(stem, monkeypatch, capsys):
    # None in sys.modules makes `import transformers` raise ImportError, as on a machine without it.
    monkeypatch.setitem(sys.modules, "transformers", None)
    source = (ROOT / "notebooks" / "src" / f"{stem}.py").read_text(encoding="utf-8")
    namespace: dict = {"__name__": f"notebook_{stem}"}
    for cell in cells_from_source(source):
        if cell.cell_type == "code":
            exec(compile(cell.source, f"{stem}.py", "exec"), namespace)  # noqa: S102 (our own notebook)
    assert "pip install torch transformers" in capsys.readouterr().out
