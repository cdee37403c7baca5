"""A long prompt's prefill on npgpt's own threads against the single-threaded fast path, paired.

    python benchmarks/ab_prefill.py                          # gpt2, 512 tokens, 120 s
    python benchmarks/ab_prefill.py --model-size gpt2-medium --seconds 300
    python benchmarks/ab_prefill.py --tokens 256 --workers 2 # 128 positions each (below the engine's threshold)

Generates from random weights of a real GPT-2 shape with ``generate_ids`` (greedy, the same
prompt every time), alternating, in one process, a generation whose prompt runs through
``fast.gpt2_threaded`` with one whose prompt runs through ``fast.gpt2`` (the first order
reversed every other pair), and reports the time to the first token of each, the ratio within
each pair (threaded / single-threaded: below 1 is faster) and the decode rate after each. Before
each pair it measures whether the two cores share a cache (``bench_generate.cross_core_read``),
and reports the pairs of each state apart: npgpt's single-threaded prefill slows when they do not
(docs/generation.md). One process, so both paths share the machine's state; pairs, so a drift in
it cancels. No peer engines: ``bench_generate.py`` compares those.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import npgpt  # noqa: E402
from bench_generate import cross_core_read, shares_cache  # noqa: E402
from npgpt.fast import model as fast  # noqa: E402
from npgpt.fast import threads  # noqa: E402
from npgpt.generate import generate_ids  # noqa: E402
from npgpt.gpt2 import GPT2  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-size", default="gpt2", choices=sorted(npgpt.PRESETS))
    parser.add_argument("--tokens", type=int, default=512, help="prompt length (default 512)")
    parser.add_argument("--new-tokens", type=int, default=16, help="tokens generated after it (default 16)")
    parser.add_argument("--seconds", type=float, default=120, help="how long to keep pairing (default 120)")
    parser.add_argument("--workers", type=int, default=None,
                        help="workers for the threaded path, past the engine's own choice (default: the engine's)")
    args = parser.parse_args(argv)
    config = npgpt.PRESETS[args.model_size]
    model = GPT2(config, npgpt.random_params(config, seed=0))
    prompt = [int(i) for i in np.random.default_rng(0).integers(0, config.n_vocab - 1, args.tokens)]
    engine_choice = fast.gpt2_threaded

    def threaded(*a, **k):
        return engine_choice(*a, **k, n_workers=args.workers)

    def generation(on_threads: bool) -> tuple[float, float]:
        fast.gpt2_threaded = threaded if on_threads else (lambda *a, **k: None)  # None: the engine runs fast.gpt2
        try:
            stats = generate_ids(model, prompt, max_new_tokens=args.new_tokens, temperature=0, ignore_eos=True).stats
        finally:
            fast.gpt2_threaded = engine_choice
        return stats.time_to_first_token, stats.decode_tokens_per_s

    if threaded(np.array([prompt]), model.params, config, kv_cache=model.new_kv_cache(1, args.tokens)) is None:
        print(f"the threaded path is not taken here ({threads.worker_count()} workers available, "
              f"{fast.MIN_ROWS_PER_WORKER} positions each needed, OpenBLAS found: {threads.openblas() is not None})")
        return 1
    generation(True), generation(False)  # warm-up: the decode layout, the workers, the caches
    pairs, end = [], time.time() + args.seconds
    while time.time() < end:
        probe = cross_core_read(trials=20)
        order = (True, False) if len(pairs) % 2 == 0 else (False, True)
        timed = {on: generation(on) for on in order}
        pairs.append((probe, timed[True], timed[False]))

    print(f"{args.model_size}, a {args.tokens}-token prompt then {args.new_tokens} new tokens, "
          f"{args.workers or threads.worker_count()} workers, {len(pairs)} pairs in {args.seconds:.0f} s")
    for label, shared in (("cores share a cache", True), ("cores do not share a cache", False), ("state not measured", None)):
        chosen = [(t, s) for probe, t, s in pairs if shares_cache(probe) == shared]
        if not chosen:
            if shared is not None:
                print(f"  {label}: no pairs")
            continue
        t, s = np.array([c[0] for c in chosen]), np.array([c[1] for c in chosen])
        print(f"  {label}, {len(chosen)} pairs: time to first token {np.median(t[:, 0]) * 1e3:.0f} ms threaded, "
              f"{np.median(s[:, 0]) * 1e3:.0f} ms single-threaded, paired ratio {np.median(t[:, 0] / s[:, 0]):.3f} "
              f"({np.min(t[:, 0] / s[:, 0]):.2f}-{np.max(t[:, 0] / s[:, 0]):.2f}); decode after it "
              f"{np.median(t[:, 1]):.1f} against {np.median(s[:, 1]):.1f} tok/s (paired {np.median(t[:, 1] / s[:, 1]):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
