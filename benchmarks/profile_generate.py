"""Where a gpt2-shaped prefill's and decode step's time goes, on random weights (no peers).

    python benchmarks/profile_generate.py                    # gpt2, a 512-token prefill, a decode step after 512
    python benchmarks/profile_generate.py --model-size gpt2-medium --tokens 128

Prefill: the whole ``fast.gpt2`` call (last position only, KV cache filled) and the time inside
its parts (``linear`` = the matrix products and their biases, ``causal_attention``, ``gelu``,
``layer_norm``), then the whole ``fast.gpt2_threaded`` call (what generation takes for a long
prompt). Decode: one ``fast.decode_step`` on the checkpoint's row-major matrices and on the
column-major ones ``npgpt/fast/layout.py`` makes, against a bare sweep of matrix-vector products
over the same matrices (what the step cannot beat), and the time the re-layout takes; the rate of
one matrix product the size of an MLP's first (the prefill's largest). Best of several runs each.
"""

from __future__ import annotations

import argparse
import collections
import copy
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import npgpt  # noqa: E402
from bench_generate import decode_products, sweep_seconds  # noqa: E402
from npgpt.fast import layout  # noqa: E402
from npgpt.fast import model as fast  # noqa: E402
from npgpt.fast import threads  # noqa: E402
from npgpt.kv_cache import KVCache  # noqa: E402


def best_ms(fn, reps: int = 5, inner: int = 1) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner)
    return min(times) * 1e3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-size", default="gpt2", choices=sorted(npgpt.PRESETS))
    parser.add_argument("--tokens", type=int, default=512, help="prompt length (default 512)")
    args = parser.parse_args(argv)
    config = npgpt.PRESETS[args.model_size]
    params = npgpt.random_params(config, seed=0)
    ids = np.random.default_rng(0).integers(0, config.n_vocab, (1, args.tokens))

    spent = collections.Counter()
    originals = {name: getattr(fast, name) for name in ("linear", "causal_attention", "gelu", "layer_norm")}

    def timed(name):
        def wrapper(*a, **k):
            start = time.perf_counter()
            out = originals[name](*a, **k)
            spent[name] += time.perf_counter() - start
            return out
        return wrapper

    def prefill():
        return fast.gpt2(ids, params, config, kv_cache=KVCache(config, 1, args.tokens + 8), last_only=True)

    total = best_ms(prefill)
    for name in originals:
        setattr(fast, name, timed(name))
    reps = 3
    for _ in range(reps):
        prefill()
    for name, fn in originals.items():
        setattr(fast, name, fn)
    parts = ", ".join(f"{name} {spent[name] / reps * 1e3:.0f} ms" for name in originals)
    print(f"{args.model_size}, prefill of {args.tokens} tokens: {total:.0f} ms; inside it: {parts}")

    def prefill_threaded():
        return fast.gpt2_threaded(ids, params, config, kv_cache=KVCache(config, 1, args.tokens + 8), last_only=True)

    if prefill_threaded() is None:
        print(f"  on npgpt's own threads: not taken ({threads.worker_count()} workers available, "
              f"{fast.MIN_ROWS_PER_WORKER} rows each needed, or another thread alive)")
    else:
        print(f"  on npgpt's own threads (fast.gpt2_threaded, {threads.worker_count()} workers): {best_ms(prefill_threaded):.0f} ms")

    cache = KVCache(config, 1, args.tokens + 8)
    fast.gpt2(ids, params, config, kv_cache=cache, last_only=True)
    token = np.array([[5]])

    def step(p):
        def run():
            fast.decode_step(token, p, config, cache)
            cache.length -= 1  # the same position every time
        return run

    column_major = copy.deepcopy(params)
    start = time.perf_counter()
    layout.for_decode(column_major)  # what generation's first decode step does, once
    relayout = time.perf_counter() - start
    sweep = sweep_seconds(decode_products(column_major), 7) * 1e3
    print(f"decode step after {args.tokens}: {best_ms(step(params), inner=20):.1f} ms on row-major matrices, "
          f"{best_ms(step(column_major), inner=20):.1f} ms column-major (laid out once, in {relayout:.2f} s); "
          f"the matrix-vector products alone: {sweep:.1f} ms")

    x = np.ones((args.tokens, config.n_embd), np.float32)
    w = params["h"][0]["mlp"]["c_fc"]["weight"]
    flops = 2 * x.shape[0] * w.shape[0] * w.shape[1]
    print(f"one {x.shape[0]} x {w.shape[0]} x {w.shape[1]} matrix product: {flops / best_ms(lambda: x @ w, inner=5) / 1e6:.0f} GFLOP/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
