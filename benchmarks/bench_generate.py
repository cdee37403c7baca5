"""Generation speed: npgpt against Hugging Face transformers (torch, CPU, float32), in one run.

Both run the same randomly initialised weights of a real GPT-2 shape (built with transformers,
written with save_pretrained, read with npgpt.load), the same prompt ids and the same number of
threads (torch.set_num_threads = NumPy's BLAS thread count). Each library generates greedily
through its own public API (npgpt.generate.generate_ids; GPT2LMHeadModel.generate with a KV
cache), never stopping early, and is timed from the inside:

    prefill  time to the first new token: the prompt through the model, KV cache filled
    decode   tokens per second after the first token, with the KV cache

Each figure is the median of several runs after a warm-up; the libraries alternate run by run and
the speed-up is the median of the per-run ratios, so both meet the same load. On a shared machine
the figures are still noisy (with 2 threads on 2 busy cores, OpenBLAS's and torch's spinning
threads wait on each other): re-run when it is quiet, or compare with OPENBLAS_NUM_THREADS=1.

    python benchmarks/bench_generate.py                        # gpt2, prompts of 128 and 512 tokens
    python benchmarks/bench_generate.py --model-size gpt2-medium
    python benchmarks/bench_generate.py --quick                # fewer tokens and runs
    OPENBLAS_CORETYPE=Haswell python benchmarks/bench_generate.py   # another OpenBLAS kernel
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_generate.py      # one thread for both libraries

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


def build_models(preset: str):
    import torch
    import transformers

    import npgpt

    config = npgpt.PRESETS[preset]
    torch.manual_seed(0)
    hf_config = transformers.GPT2Config(**config.to_hf_dict())
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    with tempfile.TemporaryDirectory() as folder:
        hf.save_pretrained(folder)
        model = npgpt.load(folder)
    return hf, model


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


def paired_runs(ours, theirs, runs):
    """Alternate the two libraries run by run, so that both meet the same load on a shared machine.

    Returns the medians of (prefill, decode) for each and the medians of the per-pair ratios.
    """
    pairs = [(ours(), theirs()) for _ in range(runs)]
    med = statistics.median
    np_ttft, np_tps = med(a[0] for a, _ in pairs), med(a[1] for a, _ in pairs)
    pt_ttft, pt_tps = med(b[0] for _, b in pairs), med(b[1] for _, b in pairs)
    prefill_ratio = med(b[0] / a[0] for a, b in pairs)  # torch time / npgpt time
    decode_ratio = med(a[1] / b[1] for a, b in pairs)  # npgpt tok/s / torch tok/s
    return (np_ttft, np_tps), (pt_ttft, pt_tps), (prefill_ratio, decode_ratio)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-size", default="gpt2", choices=["gpt2", "gpt2-medium", "gpt2-large", "distilgpt2"])
    parser.add_argument("--quick", action="store_true", help="fewer tokens and runs (a smoke test, noisier)")
    parser.add_argument("--prompt-lengths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens per decode run (default 64, quick 16)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per figure (default 5, quick 2)")
    args = parser.parse_args(argv)
    new_tokens = args.new_tokens or (16 if args.quick else 64)
    runs = args.runs or (2 if args.quick else 5)

    import torch

    n_threads, blas = blas_threads()
    torch.set_num_threads(n_threads)
    hf, model = build_models(args.model_size)
    rng = np.random.default_rng(0)
    prompt = [int(i) for i in rng.integers(0, model.config.n_vocab - 1, max(args.prompt_lengths))]

    print(
        f"{args.model_size}: {model.config.n_params() / 1e6:.0f}M parameters, random weights, float32; "
        f"{n_threads} threads (numpy: {blas}, torch {torch.__version__}: {torch.get_num_threads()}); "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; median of {runs} runs, "
        f"{new_tokens} new tokens per run"
    )
    # warm-up: first calls allocate, load kernels, fill caches
    time_npgpt(model, prompt[:16], 4)
    time_torch(hf, prompt[:16], 4)

    rows = []
    for n in args.prompt_lengths:
        ids = prompt[:n]
        (np_ttft, np_tps), (pt_ttft, pt_tps), (prefill_ratio, decode_ratio) = paired_runs(
            lambda: time_npgpt(model, ids, new_tokens), lambda: time_torch(hf, ids, new_tokens), runs
        )
        rows.append((f"prefill {n} tokens (s)", np_ttft, pt_ttft, prefill_ratio, 1.0))
        rows.append((f"decode after {n} (tok/s)", np_tps, pt_tps, decode_ratio, 1.5))

    print(f"\n{'':<26}{'npgpt':>10}{'torch':>10}{'npgpt speed-up':>16}{'target':>9}")
    for label, ours, theirs, ratio, target in rows:
        fmt = ".3f" if "(s)" in label else ".1f"
        mark = "ok" if ratio >= target else "below"
        print(f"{label:<26}{ours:>10{fmt}}{theirs:>10{fmt}}{ratio:>15.2f}x{f'>={target}x':>9} {mark}")
    print(
        "\nspeed-up: median over runs of torch time / npgpt time (prefill) and npgpt tok/s / torch tok/s\n"
        "(decode), each run timing both libraries back to back"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
