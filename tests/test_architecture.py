"""docs/architecture.md's generated tables (who imports whom, the activations) match the code."""

from __future__ import annotations

import re
from pathlib import Path

from test_layout import import_graph

from npgpt.activations import markdown_table

DOC = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")


def section(name: str) -> str:
    match = re.search(rf"<!-- {name}:[^>]*-->\n(.*?)\n<!-- /{name} -->", DOC, re.S)
    assert match, f"docs/architecture.md has no {name} section"
    return match.group(1)


def test_the_activation_table_is_the_code_s():
    assert section("activations") == markdown_table()


def test_the_import_table_is_the_code_s():
    documented = {}
    for row in section("imports").splitlines()[2:]:
        name, deps = (cell.strip() for cell in row.strip("|").split("|"))
        module = "npgpt" if name.startswith("`npgpt (") else "npgpt." + name.strip("`")
        documented[module] = {"npgpt." + d.strip("`") if d.strip("`") != "npgpt (the package)" else "npgpt"
                              for d in deps.split(", ") if d != "—"}
    graph = import_graph()
    actual = {m: {d for d in deps if d.startswith("npgpt") and d not in ("npgpt.errors", "npgpt._files")}
              for m, deps in graph.items() if m.startswith("npgpt") and not m.startswith("npgpt.commands") and m != "npgpt.__main__"}
    assert documented == actual, "regenerate the table in docs/architecture.md"
