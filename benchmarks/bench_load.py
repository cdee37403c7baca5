"""Load time and memory of a gpt2-shaped model folder: npgpt (memory-mapped, float32 and float16
storage) against reading every tensor into memory (safetensors' NumPy API) and transformers.

Cases: float32 storage, memory-mapped; float16 storage widened to float32 at load (the default
dtype); float16 storage held as float16 in memory (``npgpt.load(folder, dtype="float16")``, each
matrix widened as it is used: half the memory, slower forward passes); a plain read into memory;
transformers.

    python benchmarks/bench_load.py              # gpt2's shape (124M parameters), 3 runs each
    python benchmarks/bench_load.py --preset distilgpt2 --runs 5
    python benchmarks/bench_load.py --hub-layout --old SRC --runs 1   # the Hub's own gpt2 layout, read
                                                 # in place, against the npgpt source tree in SRC

``--hub-layout`` writes the file as the Hub's gpt2 ``model.safetensors`` is laid out (the real names,
the ``attn.bias`` buffers, no ``lm_head.weight``, an unpadded header: every float32 misaligned; see
``tests/hub_server.hub_safetensors``) and loads that folder as ``npgpt.load`` reads a Hugging Face
cache snapshot, in place. With ``--old SRC`` (an older npgpt, e.g. ``git archive COMMIT npgpt | tar
-x -C SRC``) the same folder is also loaded by that code, and converted by it into a second copy
as its ``npgpt.load("gpt2")`` did before loading (case "convert, then load").

Each measurement is a fresh Python process (so nothing is cached in the interpreter) that imports
npgpt, loads the folder, then runs one forward pass over 16 tokens. The weights are random; only
the shape matters here. The folders are written once to a temporary directory, so the files are in
the OS page cache: this measures a warm load ("after the first time"), not a cold read from disk,
which this script cannot force without root.

Printed per case (medians over the runs): import time, load time (config + weights + tokenizer),
the part of it spent building the tokenizer (timed again on its own), the first forward pass
(which reads the mapped pages) and a second one, and memory from /proc/self/status after the
forward passes: RssAnon (private
memory: copies, float32 conversions) and RssFile (pages of the mapped file: shared with every
process that maps it, and given back by the OS under pressure), and the peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import npgpt
t1 = time.perf_counter()
case, folder = sys.argv[1], sys.argv[2]
if case == "transformers":
    import torch, transformers
    t1 = time.perf_counter()
    model = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    t2 = time.perf_counter()
    forward = lambda: model(torch.arange(16)[None])
    with torch.no_grad():
        forward()
        t3 = time.perf_counter()
        forward()
    tokenizer = float("nan")
elif case == "convert":  # what npgpt.load did with a cache snapshot before loading in place
    from npgpt import hub
    out = sys.argv[3]
    t1 = time.perf_counter()
    model = npgpt.load(hub.convert(folder, out, progress=False))
    t2 = time.perf_counter()
    model.logits(np.arange(16))
    t3 = time.perf_counter()
    model.logits(np.arange(16))
else:
    model = npgpt.load(folder, mmap=(case != "copy"), dtype="float16" if case == "mmap16" else "float32")
    t2 = time.perf_counter()
    model.logits(np.arange(16))
    t3 = time.perf_counter()
    model.logits(np.arange(16))
t4 = time.perf_counter()
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
kb = lambda key: int(status[key].split()[0]) / 1024 if key in status else float("nan")
if case not in ("transformers", "convert"):  # how much of the load was building the tokenizer (timed again, alone)
    t5 = time.perf_counter()
    npgpt.Tokenizer.from_folder(folder)
    tokenizer = time.perf_counter() - t5
else:
    tokenizer = float("nan")
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "tokenizer": tokenizer, "forward": t3 - t2, "again": t4 - t3,
                  "anon": kb("RssAnon"), "file": kb("RssFile"), "peak": kb("VmHWM")}))
"""


def measure(case: str, folder: Path, runs: int, source: str | None = None) -> dict:
    """Medians over ``runs`` fresh processes; ``source`` puts another npgpt tree first on the path."""
    import os
    import shutil

    env = dict(os.environ, **({"PYTHONPATH": source} if source else {}))
    results = []
    for run in range(runs):
        out_folder = folder.parent / f"converted-{run}"
        out = subprocess.run([sys.executable, "-c", CHILD, case, str(folder), str(out_folder)], capture_output=True,
                             text=True, check=True, env=env, cwd=folder.parent)  # not the checkout: -c puts the cwd first
        shutil.rmtree(out_folder, ignore_errors=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpt2")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-transformers", action="store_true", help="skip the transformers peer")
    parser.add_argument("--hub-layout", action="store_true", help="the Hub's own unpadded gpt2 layout, read in place")
    parser.add_argument("--old", metavar="SRC", default=None, help="with --hub-layout: also an older npgpt tree in SRC")
    args = parser.parse_args()

    import npgpt

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = npgpt.random_model(args.preset, seed=0)
        print(f"{args.preset}: {model.config.n_params() / 1e6:.1f}M parameters; writing the folders...", file=sys.stderr)
        cases = hub_layout_cases(model, tmp, args.old) if args.hub_layout else folder_cases(model, tmp, args.no_transformers)
        del model
        for _, case, folder, source in cases:  # one untimed run each: the files are now in the page cache
            measure(case, folder, 1, source)
        rows = [(label, (folder / "model.safetensors").stat().st_size / 1e6, measure(case, folder, args.runs, source))
                for label, case, folder, source in cases]
    report(args.preset, args.runs, rows, base=None if args.hub_layout else 2)
    return 0


def folder_cases(model, tmp: Path, no_transformers: bool) -> list:
    import npgpt
    from npgpt import hub

    npgpt.save(model, tmp / "source")
    f32 = hub.convert(tmp / "source", tmp / "f32", storage="float32", progress=False)
    f16 = hub.convert(tmp / "source", tmp / "f16", storage="float16", progress=False)
    cases = [("npgpt float32 storage (mmap)", "mmap", f32, None), ("npgpt float16 storage -> float32", "mmap", f16, None),
             ("read into memory (safetensors numpy)", "copy", f32, None),
             ('npgpt float16 storage, dtype="float16"', "mmap16", f16, None)]
    if not no_transformers:
        try:
            import transformers  # noqa: F401
            cases.append(("transformers from_pretrained", "transformers", f32, None))
        except ImportError:
            pass
    return cases


def hub_layout_cases(model, tmp: Path, old: str | None) -> list:
    """A folder laid out as the Hub's gpt2 snapshot: config.json, the unpadded model.safetensors, tokenizer."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from hub_server import hub_safetensors, real_config

    from npgpt.weights import flatten

    folder = tmp / "snapshot"
    folder.mkdir()
    c = model.config
    (folder / "config.json").write_bytes(real_config("gpt2", n_layer=c.n_layer, n_embd=c.n_embd, n_head=c.n_head))
    (folder / "model.safetensors").write_bytes(hub_safetensors(flatten(model.params), c.n_ctx))
    model.tokenizer.save(folder)
    cases = [("npgpt now: in place", "mmap", folder, None)]
    if old:
        cases += [("npgpt before: same folder", "mmap", folder, old), ("npgpt before: convert, then load", "convert", folder, old)]
    return cases


def report(preset: str, runs: int, rows: list, base: int | None) -> None:
    print(f"\n{preset}, median of {runs} fresh processes each (warm page cache)\n")
    print(f"{'case':38} {'file MB':>8} {'import s':>9} {'load s':>7} {'(tok s)':>8} {'fwd16 s':>8} {'again s':>8} "
          f"{'anon MB':>8} {'file MB':>8} {'peak MB':>8}")
    for label, size, r in rows:
        print(f"{label:38} {size:8.0f} {r['import']:9.2f} {r['load']:7.3f} {r['tokenizer']:8.3f} {r['forward']:8.3f} "
              f"{r['again']:8.3f} {r['anon']:8.0f} {r['file']:8.0f} {r['peak']:8.0f}")
    if base is None:
        return
    reference = rows[base][2]
    print("\nratios against reading into memory (lower is better):")
    for label, _, r in rows:
        print(f"  {label:38} load x{r['load'] / reference['load']:.2f}   private memory x{r['anon'] / reference['anon']:.2f}"
              f"   peak x{r['peak'] / reference['peak']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
