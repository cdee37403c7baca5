"""Generation speed: npgpt against Hugging Face transformers (torch, CPU, float32), in one run.

Both run the same randomly initialised weights of a real GPT-2 shape (built with transformers,
written with save_pretrained, read with npgpt.load), the same prompt ids and the same number of
threads (torch.set_num_threads = NumPy's BLAS thread count). Each library generates greedily
through its own public API (npgpt.generate.generate_ids; GPT2LMHeadModel.generate with a KV
cache), never stopping early, and is timed from the inside:

    prefill  time to the first new token: the prompt through the model, KV cache filled
    decode   tokens per second after the first token, with the KV cache

Each library runs alone in a process of its own (OpenBLAS's and torch's worker threads spin
while idle, so two libraries in one process on 2 cores slow each other several-fold); the
processes alternate (``--rounds``), and each figure is the median of all their runs after a
warm-up. On a shared machine the figures are still noisy: re-run when it is quiet.

    python benchmarks/bench_generate.py                        # gpt2, prompts of 128 and 512 tokens
    python benchmarks/bench_generate.py --model-size gpt2-medium
    python benchmarks/bench_generate.py --quick                # fewer tokens and runs
    OPENBLAS_CORETYPE=Haswell python benchmarks/bench_generate.py   # another OpenBLAS kernel
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_generate.py      # one thread for both libraries
    python benchmarks/bench_generate.py --dtype float16        # npgpt holds float16 weights (half the memory)

Targets (issue 5): decode >= 1.5x torch, prefill >= 1.0x torch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np


def blas_threads() -> tuple[int, str]:
    """NumPy's BLAS thread count and library name (threadpoolctl if installed, else the CPU count)."""
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                return int(pool["num_threads"]), f"{pool.get('internal_api')} {pool.get('version') or ''}".strip()
    except ImportError:
        pass
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var]), "openblas"
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(), "openblas"


def build_folder(preset: str, folder: str) -> None:
    """Random weights of ``preset``'s shape, made by transformers and written with save_pretrained."""
    import torch
    import transformers

    import npgpt

    torch.manual_seed(0)
    hf_config = transformers.GPT2Config(**npgpt.PRESETS[preset].to_hf_dict())
    transformers.GPT2LMHeadModel(hf_config).eval().save_pretrained(folder)


class _Clock:
    """A transformers streamer that notes when each new token arrives (the first put is the prompt)."""

    def __init__(self):
        self.times = []

    def put(self, value):
        self.times.append(time.perf_counter())

    def end(self):
        pass


def time_torch(hf, ids, new_tokens):
    import torch

    clock = _Clock()
    prompt = torch.tensor([ids])
    start = time.perf_counter()
    with torch.inference_mode():
        hf.generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
            do_sample=False, pad_token_id=hf.config.eos_token_id, streamer=clock,
        )
    first, last = clock.times[1], clock.times[-1]  # times[0]: the prompt, before the prefill
    return first - start, (new_tokens - 1) / (last - first) if new_tokens > 1 else float("nan")


def time_npgpt(model, ids, new_tokens):
    from npgpt.generate import generate_ids

    stats = generate_ids(model, ids, max_new_tokens=new_tokens, temperature=0, ignore_eos=True).stats
    return stats.time_to_first_token, stats.decode_tokens_per_s


def worker(library: str, folder: str, lengths: list[int], new_tokens: int, runs: int, dtype: str = "float32") -> int:
    """Time one library alone in this process and print its figures as JSON.

    Each library runs in a process of its own: OpenBLAS's and torch's OpenMP worker threads both
    spin while they wait for work, so with both libraries in one process on 2 cores each one's
    idle threads steal the cores the other is computing on, and both slow down several-fold.
    """
    import json

    rng = np.random.default_rng(0)
    if library == "npgpt":
        import npgpt

        model = npgpt.load(folder, dtype=dtype)
        prompt = [int(i) for i in rng.integers(0, model.config.n_vocab - 1, max(lengths))]
        run = lambda ids, n: time_npgpt(model, ids, n)  # noqa: E731
    else:
        import torch
        import transformers

        torch.set_num_threads(blas_threads()[0])
        hf = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
        prompt = [int(i) for i in rng.integers(0, hf.config.vocab_size - 1, max(lengths))]
        run = lambda ids, n: time_torch(hf, ids, n)  # noqa: E731
    run(prompt[:16], 4)  # warm-up: first calls allocate, load kernels, fill caches
    out = {n: [run(prompt[:n], new_tokens) for _ in range(runs)] for n in lengths}
    print(json.dumps(out))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-size", default="gpt2", choices=["gpt2", "gpt2-medium", "gpt2-large", "distilgpt2"])
    parser.add_argument("--quick", action="store_true", help="fewer tokens and runs (a smoke test, noisier)")
    parser.add_argument("--prompt-lengths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens per decode run (default 64, quick 16)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per figure (default 5, quick 2)")
    parser.add_argument("--rounds", type=int, default=2, help="worker processes per library, alternating (default 2)")
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float32",
                        help="how npgpt holds the weights in memory (npgpt.load's dtype; torch stays float32)")
    parser.add_argument("--worker", choices=["npgpt", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    new_tokens = args.new_tokens or (16 if args.quick else 64)
    runs = args.runs or (2 if args.quick else 5)
    if args.worker:
        return worker(args.worker, args.folder, args.prompt_lengths, new_tokens, runs, args.dtype)

    import json
    import subprocess

    import torch

    n_threads, blas = blas_threads()
    med = statistics.median
    with tempfile.TemporaryDirectory() as folder:
        build_folder(args.model_size, folder)
        import npgpt

        config = npgpt.GPT2Config.load(os.path.join(folder, "config.json"))
        print(
            f"{args.model_size}: {config.n_params() / 1e6:.0f}M parameters, random weights, float32 "
            f"(npgpt holds them as {args.dtype}); "
            f"{n_threads} threads (numpy: {blas}, torch {torch.__version__}); "
            f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; each library in its own "
            f"process, {args.rounds} processes each, alternating; median of {runs * args.rounds} runs, "
            f"{new_tokens} new tokens per run", flush=True,
        )
        results = {"npgpt": {}, "torch": {}}
        base = [sys.executable, os.path.abspath(__file__), "--folder", folder, "--new-tokens", str(new_tokens),
                "--runs", str(runs), "--dtype", args.dtype, "--prompt-lengths", *map(str, args.prompt_lengths)]
        for _ in range(args.rounds):
            for library in ("npgpt", "torch"):
                done = subprocess.run(base + ["--worker", library], capture_output=True, text=True, check=True)
                for n, timings in json.loads(done.stdout.strip().splitlines()[-1]).items():
                    results[library].setdefault(int(n), []).extend(timings)

    rows = []
    for n in args.prompt_lengths:
        np_ttft, np_tps = med(t[0] for t in results["npgpt"][n]), med(t[1] for t in results["npgpt"][n])
        pt_ttft, pt_tps = med(t[0] for t in results["torch"][n]), med(t[1] for t in results["torch"][n])
        rows.append((f"prefill {n} tokens (s)", np_ttft, pt_ttft, pt_ttft / np_ttft, 1.0))
        rows.append((f"decode after {n} (tok/s)", np_tps, pt_tps, np_tps / pt_tps, 1.5))

    print(f"\n{'':<26}{'npgpt':>10}{'torch':>10}{'npgpt speed-up':>16}{'target':>9}")
    for label, ours, theirs, ratio, target in rows:
        fmt = ".3f" if "(s)" in label else ".1f"
        mark = "ok" if ratio >= target else "below"
        print(f"{label:<26}{ours:>10{fmt}}{theirs:>10{fmt}}{ratio:>15.2f}x{f'>={target}x':>9} {mark}")
    print("\nspeed-up: torch median time / npgpt median time (prefill), npgpt median tok/s / torch median tok/s (decode)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
