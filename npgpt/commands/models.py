"""``npgpt models``: the models that load without a download, with their sizes on disk.

Lists the model folders in the weights folder, then the GPT-2 snapshots in the Hugging Face cache
(which ``npgpt.load`` reads in place, without the network). See ``npgpt/hub/`` for where both live.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "models",
        help="list the models available locally, with their sizes",
        description="List the model folders in the weights folder and the GPT-2 snapshots in the Hugging "
        "Face cache: everything npgpt.load can open without a download.",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per model, for scripts")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import hub

    models = hub.list_models()
    if args.json:
        for m in models:
            print(json.dumps({"name": m.name, "path": str(m.path), "n_params": m.n_params, "storage": m.storage,
                              "size": m.size, "source": m.source, "kind": m.kind, "problem": m.problem}))
        return 0
    folders = [m for m in models if m.kind == "folder"]
    cached = [m for m in models if m.kind == "hf-cache"]
    print(f"model folders in {hub.weights_dir()}:")
    _table(folders, with_storage=True)
    print(f"\nGPT-2 snapshots in the Hugging Face cache {hub.hub_cache_dir()} (read in place, no download):")
    _table(cached, with_storage=False)
    if not models:
        print("\nnothing yet: `npgpt download gpt2` fetches the smallest GPT-2 (~500 MB)")
    return 0


def _table(models, with_storage: bool) -> None:
    from .. import hub

    if not models:
        print("  (none)")
        return
    rows = [(m.name + (" (cannot load)" if m.problem else ""), f"{m.n_params / 1e6:.1f}M" if m.n_params else "?", (m.storage or "?") if with_storage else "",
             hub.human_size(m.size), m.source) for m in models]
    header = ("NAME", "PARAMS", "STORAGE" if with_storage else "", "SIZE", "SOURCE")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  " + "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths) if w).rstrip())
    for m in models:
        if m.problem:
            print(f"  {m.name} cannot load: {m.problem}")
