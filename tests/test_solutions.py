"""Each notebook exercise's worked solution (``notebooks/solutions/NN_name.py``) passes the check the
notebook defines, and deliberately wrong answers fail it with a message that says what is wrong.

The check is taken from the notebook's own source: its code cells are run in order, as a plain
module, until the check is defined (the learner's unfinished stub after it is not run).
"""

from __future__ import annotations

import functools
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
    """Run the notebook's code cells until every check in ``names`` is defined; return its namespace
    (run once per notebook and check names: some notebooks train a model before their check)."""
    return _notebook_checks(stem, tuple(names))


@functools.lru_cache(maxsize=None)
def _notebook_checks(stem: str, names: tuple) -> dict:
    source = (ROOT / "notebooks" / "src" / f"{stem}.py").read_text(encoding="utf-8")
    namespace: dict = {"__name__": f"notebook_{stem}"}
    for cell in cells_from_source(source):
        if all(name in namespace for name in names):
            break
        if cell.cell_type == "code":
            exec(compile(cell.source, f"{stem}.py", "exec"), namespace)  # noqa: S102 (our own notebook)
    import matplotlib.pyplot as plt

    plt.close("all")  # the notebook's own figures: not needed here
    missing = [name for name in names if name not in namespace]
    assert not missing, f"notebook {stem} defines no {missing}"
    return namespace


def test_there_are_solutions():
    assert SOLUTIONS, "notebooks/solutions/ holds no solution"


def test_every_notebook_has_a_checked_exercise():
    notebooks = sorted((ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py"))
    missing = [n.stem for n in notebooks if not (ROOT / "notebooks" / "solutions" / n.name).exists()]
    assert not missing, f"notebooks without a worked solution in notebooks/solutions/: {missing}"
    for path in SOLUTIONS:
        source = (ROOT / "notebooks" / "src" / path.name).read_text(encoding="utf-8")
        for check in load_solution(path).SOLUTIONS:
            assert f"def {check}(" in source, f"{path.stem}: the notebook defines no {check}"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_every_solution_passes_its_check(path, capsys):
    solutions = load_solution(path).SOLUTIONS
    namespace = notebook_checks(path.stem, list(solutions))
    for check, solution in solutions.items():
        assert namespace[check](solution) is True, f"{path.name}: {check} rejects the worked solution"
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_an_unfinished_stub_is_not_an_error(path, capsys):
    def stub(*args, **kwargs):
        raise NotImplementedError

    namespace = notebook_checks(path.stem, list(load_solution(path).SOLUTIONS))
    for check in load_solution(path).SOLUTIONS:
        assert namespace[check](stub) is False
        assert "not done yet" in capsys.readouterr().out


def wrong_answers():
    """(solution file, check name, wrong answer, expected words of the message) from every solution
    file's ``WRONG`` table: each notebook's check must turn these down, saying why."""
    cases = []
    for path in SOLUTIONS:
        for check, answers in getattr(load_solution(path), "WRONG", {}).items():
            cases += [pytest.param(path, check, wrong, message, id=f"{path.stem[:2]}-{wrong.__name__}")
                      for wrong, message in answers]
    return cases


def test_every_check_has_wrong_answers():
    for path in SOLUTIONS:
        module = load_solution(path)
        wrong = getattr(module, "WRONG", {})
        assert set(wrong) == set(module.SOLUTIONS), f"{path.name}: WRONG must give wrong answers for every check"
        assert all(len(answers) >= 2 for answers in wrong.values()), f"{path.name}: at least two wrong answers per check"


@pytest.mark.parametrize("path,check,wrong,message", wrong_answers())
def test_a_wrong_answer_fails_with_a_helpful_message(path, check, wrong, message):
    namespace = notebook_checks(path.stem, [check])
    with pytest.raises(AssertionError, match=message):
        namespace[check](wrong)
