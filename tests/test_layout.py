"""The layout rules of the redesign, checked on the source: no import cycle inside the package,
every function at most 60 lines, every module at most 700 lines, and reference modules that never
import their fast counterparts (``npgpt/fast/`` may import the reference, not the other way).

Imports are read with ``ast`` (module-level, inside functions and under ``if TYPE_CHECKING:``:
a lazy or annotation-only import that closes a loop is still a loop for a reader), so nothing is
executed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("npgpt", "viz")
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 700


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that the module ``name`` imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # "npgpt.model.gelu" -> "npgpt.model"
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert "npgpt.model" in graph and graph["npgpt.engine"] >= {"npgpt.model", "npgpt.fast.model"}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_reference_modules_never_import_fast_ones():
    graph = import_graph()
    for name, targets in graph.items():
        if not name.startswith("npgpt.fast") and name not in ("npgpt.engine",):
            fast = {t for t in targets if t.startswith("npgpt.fast")}
            # the one place that chooses (forward) and the modules above it may use the fast path;
            # the reference steps of the pipeline may not
            if name in ("npgpt.model", "npgpt.tokenizer", "npgpt.activations", "npgpt.config", "npgpt.weights"):
                assert not fast, f"{name} imports {fast}"


@pytest.mark.parametrize("name, path", sorted(modules().items()), ids=lambda x: x if isinstance(x, str) else "")
def test_module_and_function_sizes(name, path):
    text = path.read_text(encoding="utf-8")
    n_lines = len(text.splitlines())
    assert n_lines <= MAX_MODULE_LINES, f"{name} has {n_lines} lines (at most {MAX_MODULE_LINES})"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
            for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{name}: functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"
