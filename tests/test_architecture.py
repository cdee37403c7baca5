"""docs/architecture.md's generated tables (who imports whom, the activations) match the code.

``python tests/test_architecture.py`` rewrites them from the code.
"""

from __future__ import annotations

import re
from pathlib import Path

from test_layout import import_graph

from npgpt.activations import markdown_table

PATH = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
DOC = PATH.read_text(encoding="utf-8")
HIDDEN = ("npgpt.errors", "npgpt._files")  # imported almost everywhere: left out of the table


def short(module: str) -> str:
    return "npgpt (the package)" if module == "npgpt" else module.removeprefix("npgpt.")


def import_table() -> str:
    graph = import_graph()
    rows = ["| module | imports (besides `errors`, `_files`) |", "|---|---|"]
    for module in sorted(graph):
        if module.startswith("npgpt") and not module.startswith("npgpt.commands") and module != "npgpt.__main__":
            deps = sorted(short(d) for d in graph[module] if d.startswith("npgpt") and d not in HIDDEN)
            rows.append(f"| `{short(module)}` | {', '.join(f'`{d}`' for d in deps) or '—'} |")
    return "\n".join(rows)


def section(name: str) -> str:
    match = re.search(rf"<!-- {name}:[^>]*-->\n(.*?)\n<!-- /{name} -->", DOC, re.S)
    assert match, f"docs/architecture.md has no {name} section"
    return match.group(1)


def test_the_activation_table_is_the_code_s():
    assert section("activations") == markdown_table()


def test_the_import_table_is_the_code_s():
    assert section("imports") == import_table(), "run python tests/test_architecture.py to rewrite it"


if __name__ == "__main__":
    text = DOC
    for name, table in (("imports", import_table()), ("activations", markdown_table())):
        text = re.sub(rf"(<!-- {name}:[^>]*-->\n).*?(\n<!-- /{name} -->)", lambda m: m.group(1) + table + m.group(2), text, flags=re.S)
    PATH.write_text(text, encoding="utf-8")
    print(f"rewrote the tables of {PATH}")
