"""Build the notebooks from their sources in ``notebooks/src/`` and execute them, saving outputs.

Each source is a Python file in the "percent" format: ``# %% [markdown]`` starts a markdown cell
(its lines lose the leading ``# ``), ``# %%`` starts a code cell. The committed ``.ipynb`` files
carry their outputs so they read well on a code host; CI re-executes them (tests/test_notebooks.py).

    python notebooks/build.py            # every notebook
    python notebooks/build.py 03         # the ones whose name starts with 03
    python notebooks/build.py --no-run   # convert only
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent


def cells_from_source(text: str) -> list:
    cells, kind, lines = [], None, []

    def flush():
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(body))
        elif kind == "code" and body:
            cells.append(nbformat.v4.new_code_cell(body))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    flush()
    return cells


def build(source: Path, run: bool = True, timeout: int = 600) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = cells_from_source(source.read_text(encoding="utf-8"))
    if run:
        from nbclient import NotebookClient

        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    out = HERE / (source.stem + ".ipynb")
    tmp = out.with_suffix(".ipynb.tmp")
    nbformat.write(nb, str(tmp))
    os.replace(tmp, out)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prefixes", nargs="*", help="build only notebooks whose name starts with one of these")
    parser.add_argument("--no-run", action="store_true", help="convert without executing")
    args = parser.parse_args(argv)
    sources = sorted((HERE / "src").glob("*.py"))
    if args.prefixes:
        sources = [s for s in sources if any(s.stem.startswith(p) for p in args.prefixes)]
    for source in sources:
        print(f"building {source.stem} ...", flush=True)
        build(source, run=not args.no_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
