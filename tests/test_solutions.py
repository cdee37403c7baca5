"""Each notebook exercise's worked solution (``notebooks/solutions/NN_name.py``) passes the check the
notebook defines, and deliberately wrong answers fail it with a message that says what is wrong.

The check is taken from the notebook's own source: its code cells are run in order, as a plain
module, until the check is defined (the learner's unfinished stub after it is not run).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbformat")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("[0-9][0-9]_*.py"))

sys.path.insert(0, str(ROOT / "notebooks"))
from build import cells_from_source  # noqa: E402


def load_solution(path: Path):
    spec = importlib.util.spec_from_file_location(f"solution_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def notebook_checks(stem: str, names) -> dict:
    """Run the notebook's code cells until every check in ``names`` is defined; return its namespace."""
    source = (ROOT / "notebooks" / "src" / f"{stem}.py").read_text(encoding="utf-8")
    namespace: dict = {"__name__": f"notebook_{stem}"}
    for cell in cells_from_source(source):
        if all(name in namespace for name in names):
            break
        if cell.cell_type == "code":
            exec(compile(cell.source, f"{stem}.py", "exec"), namespace)  # noqa: S102 (our own notebook)
    missing = [name for name in names if name not in namespace]
    assert not missing, f"notebook {stem} defines no {missing}"
    return namespace


@pytest.fixture(scope="module")
def map_notebook():
    return notebook_checks("00_the_map", ["check_block"])


def test_there_are_solutions():
    assert SOLUTIONS, "notebooks/solutions/ holds no solution"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_every_solution_passes_its_check(path, capsys):
    solutions = load_solution(path).SOLUTIONS
    namespace = notebook_checks(path.stem, list(solutions))
    for check, solution in solutions.items():
        assert namespace[check](solution) is True, f"{path.name}: {check} rejects the worked solution"
    assert "correct" in capsys.readouterr().out


def test_the_unfinished_stub_is_not_an_error(map_notebook, capsys):
    def my_block(x, block, *, n_head, eps, mask):
        raise NotImplementedError

    assert map_notebook["check_block"](my_block) is False
    assert "not done yet" in capsys.readouterr().out


def wrong_blocks():
    import npgpt.model as M

    def no_skip(x, block, *, n_head, eps, mask):  # forgets "x +" around attention
        mid = M.mha(M.layer_norm(x, **block["ln_1"], eps=eps), **block["attn"], n_head=n_head, mask=mask)
        return mid, mid + M.ffn(M.layer_norm(mid, **block["ln_2"], eps=eps), **block["mlp"])

    def post_norm(x, block, *, n_head, eps, mask):  # the original Transformer's "Add & Norm"
        mid = M.layer_norm(x + M.mha(x, **block["attn"], n_head=n_head, mask=mask), **block["ln_1"], eps=eps)
        return mid, M.layer_norm(mid + M.ffn(mid, **block["mlp"]), **block["ln_2"], eps=eps)

    def post_norm_first_branch(x, block, *, n_head, eps, mask):  # normalises after adding, branch reads x
        mid = M.layer_norm(x + M.mha(M.layer_norm(x, **block["ln_1"], eps=eps), **block["attn"], n_head=n_head, mask=mask),
                           **block["ln_1"], eps=eps)
        return mid, mid

    def wrong_mlp_norm(x, block, *, n_head, eps, mask):  # the MLP reads ln_1 instead of ln_2
        mid = x + M.mha(M.layer_norm(x, **block["ln_1"], eps=eps), **block["attn"], n_head=n_head, mask=mask)
        return mid, mid + M.ffn(M.layer_norm(mid, **block["ln_1"], eps=eps), **block["mlp"])

    def one_array(x, block, *, n_head, eps, mask):
        return M.transformer_block(x, **block, n_head=n_head, eps=eps, mask=mask)

    return [(no_skip, "skip connection"), (post_norm, "post-norm"), (post_norm_first_branch, "post-norm"),
            (wrong_mlp_norm, "resid_post is off"), (one_array, "return two arrays")]


@pytest.mark.parametrize("wrong,message", wrong_blocks(), ids=lambda v: getattr(v, "__name__", ""))
def test_a_wrong_block_fails_with_a_helpful_message(map_notebook, wrong, message):
    with pytest.raises(AssertionError, match=message):
        map_notebook["check_block"](wrong)
