"""Encode throughput of npgpt's tokenizer against tiktoken and Hugging Face ``tokenizers``,
and the time to load it.

    python benchmarks/bench_tokenizer.py                 # multilingual mix (2 MB) + English + worst cases + load
    python benchmarks/bench_tokenizer.py --mb 5 --repeat 7
    python benchmarks/bench_tokenizer.py --file some.txt
    python benchmarks/bench_tokenizer.py --profile       # cProfile of one cold npgpt encode
    python benchmarks/bench_tokenizer.py --steps         # a cold npgpt encode, step by step
    python benchmarks/bench_tokenizer.py --plain         # also npgpt without its NumPy merge path
    python benchmarks/bench_tokenizer.py --worst-only    # only the worst cases (1 MB word, digits, 10 MB letters)

All three run on one thread, in the same process, on the same text, taking turns (forwards,
then backwards), best of ``--repeat`` runs (wall clock, or ``--clock cpu``), and must give the
same ids (checked; a mismatch is printed). MB = 10^6 bytes of UTF-8 input.

- tiktoken: ``Encoding.encode_ordinary`` (Rust, single-threaded), gpt2 files loaded offline.
- tokenizers: a ``BPE`` model from the same vocab.json/merges.txt with the ``ByteLevel``
  pre-tokenizer, ``encode`` of the whole text as one sequence, with ``RAYON_NUM_THREADS=1`` and
  ``TOKENIZERS_PARALLELISM=false`` set before it is imported.
- npgpt "cold": its word cache is reset before each run (``clear_cache``) to what a new tokenizer
  starts with, the vocabulary's own words, so every distinct word of the text that is not a
  whole token goes through BPE once, as for text never seen before. "warm": the same text again
  with the cache left full, as when a notebook re-tokenizes the same prompt.

The npgpt breakdown splits a cold run into: the regex alone (``pretokenize_fast``), the cache
lookups (warm run minus the regex) and BPE for first-seen words (cold run minus warm run).

"worst cases": texts that are one pre-token each, where BPE has the most to do: a 1 MB single word
(``"a" * 10**6``), 1 MB of random digits, 10 MB of random letters without spaces. Each engine
encodes each text in a fresh process (``--worst-runs`` times, in turns), so that its peak memory
(``VmHWM``: the whole process, Python and the tokenizer's tables included) is its own; the
best time and the highest peak count, and the ids must be the same (compared by a hash).

"load" starts a fresh Python a few times and times ``import npgpt``, ``Tokenizer.gpt2()`` and the
first encodes (of a sentence, then of some words the tokenizer has not seen): the cost of
``npgpt.load("gpt2")`` that is the tokenizer's.
"""

from __future__ import annotations

import os

os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers is imported
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse
import cProfile
import json
import pstats
import subprocess
import sys
import tempfile
import time
from itertools import islice

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))  # shared text sources and the oracle
sys.path.insert(0, os.path.join(HERE, ".."))

from conftest_tokenizer_helpers import english_text, multilingual_corpus, tiktoken_gpt2

import numpy as np

from npgpt.fast.tokenizer import FastTokenizer, bpe_flat, pretokenize_fast
from npgpt.tokenizer import Tokenizer, gpt2_files

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def best_times(runs: dict, repeat: int, clock) -> dict:
    """{name: (fn, before)} -> {name: (best seconds, result of the last run)}.

    The runs take turns (a, b, c, then c, b, a, then a, b, c, ...) so that a burst of load from
    other programs slows all of them, not one, and the ratios stay fair on a shared machine. The
    order is reversed every other turn so that no run always comes right after the same other
    one: after the 2 s of ``tokenizers`` on the multilingual text, npgpt's next encode had 10-19k
    page faults, against 3-9k after tiktoken's (the allocator has to fault memory in again).
    """
    best = {name: (float("inf"), None) for name in runs}
    for turn in range(repeat):
        for name in list(runs) if turn % 2 == 0 else list(runs)[::-1]:
            fn, before = runs[name]
            if before:
                before()
            t0 = clock()
            result = fn()
            seconds = clock() - t0
            best[name] = (min(best[name][0], seconds), result)
    return best


def hf_tokenizer():
    try:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers
    except ImportError:
        return None
    encoder_json, vocab_bpe = gpt2_files()
    hf = HFTokenizer(models.BPE.from_file(encoder_json, vocab_bpe))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    return hf


def bench_text(label: str, text: str, tok: Tokenizer, tiktoken_enc, hf, repeat: int, clock, plain: bool) -> None:
    mb = len(text.encode("utf-8")) / 1e6
    print(f"\n== {label}: {mb:.2f} MB, {len(text):,} characters ==")
    runs = {"tiktoken": (lambda: tiktoken_enc.encode_ordinary(text), None)}
    if hf is not None:
        runs["tokenizers"] = (lambda: hf.encode(text).ids, None)
    runs["npgpt (cold cache)"] = (lambda: tok.encode_ordinary(text), tok.clear_cache)
    runs["npgpt (warm cache)"] = (lambda: tok.encode_ordinary(text), None)  # filled by a cold run
    if plain:  # the reference bpe() for every new word: what the NumPy path (bpe_many) saves
        reference = FastTokenizer(tok.encoder, tok.merges)
        reference.batch_min = len(text) + 1
        runs["npgpt cold, bpe only"] = (lambda: reference.encode_ordinary(text), reference.clear_cache)
    runs["npgpt: regex alone"] = (lambda: pretokenize_fast(text), None)
    best = best_times(runs, repeat, clock)

    t_tt, ids_tt = best["tiktoken"]
    print(f"{'':20s} {'MB/s':>7s} {'seconds':>8s}  ids")
    for name in [n for n in runs if n.startswith(("tiktoken", "tokenizers", "npgpt (", "npgpt cold"))]:
        seconds, ids = best[name]
        same = "same as tiktoken" if ids == ids_tt else "DIFFERENT from tiktoken"
        print(f"{name:20s} {mb / seconds:7.2f} {seconds:8.3f}  {len(ids):,} ({same})")
    t_cold, t_warm = best["npgpt (cold cache)"][0], best["npgpt (warm cache)"][0]
    print(f"ratio npgpt/tiktoken:   cold {t_tt / t_cold:.2f}x   warm {t_tt / t_warm:.2f}x")
    if hf is not None:
        t_hf = best["tokenizers"][0]
        print(f"ratio npgpt/tokenizers: cold {t_hf / t_cold:.2f}x   warm {t_hf / t_warm:.2f}x")

    t_regex, pieces = best["npgpt: regex alone"]
    n_new = len(set(pieces).difference(tok._token_words))  # not whole tokens: they need merges
    t_bpe = max(t_cold - t_warm, 0.0)
    print(
        f"npgpt cold run = regex {t_regex:.3f}s ({len(pieces):,} pieces) + cache lookups "
        f"{max(t_warm - t_regex, 0):.3f}s + BPE of the {n_new:,} distinct new pieces {t_bpe:.3f}s "
        f"({t_bpe / n_new * 1e6:.1f} us each)"
    )


def cold_steps(label: str, text: str, tok: Tokenizer, repeat: int, clock) -> None:
    """Where a cold encode's time goes: ``encode_ordinary``'s steps, timed one by one (the same
    calls, in the same order), best of ``repeat`` each; and ``bpe_flat`` alone on the new pieces."""
    steps = ["split (pretokenize_fast)", "cache lookups (map)", "new pieces: list them",
             "new pieces: merge, fill the cache", "join the ids, to a list"]
    best = [float("inf")] * len(steps)
    for _ in range(repeat):
        tok.clear_cache()
        t = [clock()]
        pieces = pretokenize_fast(text)
        t.append(clock())
        cache = tok._word_cache(len(pieces))
        n_known = len(cache)
        found = list(map(cache.__getitem__, pieces))
        t.append(clock())
        new, slots = list(islice(cache, n_known, None)), list(islice(cache.values(), n_known, None))
        t.append(clock())
        tok._encode_pieces(new, slots)
        t.append(clock())
        np.frombuffer(b"".join(found), dtype=tok._id_type).tolist()
        t.append(clock())
        best = [min(b, t1 - t0) for b, t0, t1 in zip(best, t, t[1:])]
    print(f"\n== a cold npgpt encode, step by step: {label} (best of {repeat} each) ==")
    for step, seconds in zip(steps, best):
        print(f"{step:36s} {seconds:6.3f} s")
    print(f"{'sum':36s} {sum(best):6.3f} s")
    utf8 = [p.encode() for p in new if len(p.encode()) <= tok.long_piece]
    if utf8:
        merging = min(_timed(bpe_flat, utf8, tok.merge_table, clock=clock) for _ in range(repeat))
        print(f"({len(new):,} new pieces of {len(pieces):,}; bpe_flat alone on them: {merging:.3f} s, "
              f"{merging / len(utf8) * 1e6:.2f} us a piece)")


def _timed(fn, *args, clock) -> float:
    t0 = clock()
    fn(*args)
    return clock() - t0


LOAD_SCRIPT = """
import json, time
t0 = time.perf_counter()
import npgpt
t1 = time.perf_counter()
tok = npgpt.Tokenizer.gpt2()  # the fast engine, as every model loads it
t2 = time.perf_counter()
tok.encode("Hello world, this is the first encode.")
t3 = time.perf_counter()
tok.encode("Zürich Straße naïve façade résumé 日本語 " * 20)
t4 = time.perf_counter()
print(json.dumps([t1 - t0, t2 - t1, t3 - t2, t4 - t3]))
"""


# The worst cases: (label, size in bytes, alphabet). Random bytes mapped onto the alphabet, so that
# making the text takes no memory beyond the text itself (a list of ten million characters would).
WORST_CASES = [
    ('1 MB single word ("a" * 10**6)', 10**6, "a"),
    ("1 MB of random digits", 10**6, "0123456789"),
    ("10 MB of random letters, no spaces", 10**7, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
]

WORST_SCRIPT = """
import array, hashlib, json, random, resource, sys, tempfile, time
def peak_rss():  # this process's own peak, in bytes: VmHWM is fresh after exec, while ru_maxrss
    try:  # starts from the parent's resident size at the fork (Linux)
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
engine, size, alphabet = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if engine == "tiktoken":
    from conftest_tokenizer_helpers import tiktoken_gpt2
    with tempfile.TemporaryDirectory() as cache_dir:
        encode = tiktoken_gpt2(cache_dir).encode_ordinary
else:
    import npgpt
    encode = npgpt.Tokenizer.gpt2().encode_ordinary
table = bytes(ord(alphabet[b % len(alphabet)]) for b in range(256))
text = random.Random(0).randbytes(size).translate(table).decode("ascii")
before = peak_rss()
t0 = time.perf_counter()
ids = encode(text)
seconds = time.perf_counter() - t0
peak = peak_rss()
digest = hashlib.sha256(array.array("I", ids).tobytes()).hexdigest()  # (after the peak is read)
print(json.dumps([seconds, peak, before, len(ids), digest]))
"""


def bench_worst(runs: int) -> None:
    """The worst cases: each engine in a fresh process per text and run (time and peak memory its own)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(HERE, "..", "tests"), os.path.join(HERE, "..")]))
    print(f"\n== worst cases: one pre-token each; a fresh process per engine, text and run ({runs} runs, in turns) ==")
    print(f"{'':36s} {'engine':9s} {'seconds (best - worst)':>23s} {'peak MB':>8s} {'(before encode)':>16s}  ids")
    for label, size, alphabet in WORST_CASES:
        results = {"tiktoken": [], "npgpt": []}
        for run in range(runs):
            for engine in list(results) if run % 2 == 0 else list(results)[::-1]:
                out = subprocess.check_output([sys.executable, "-c", WORST_SCRIPT, engine, str(size), alphabet], env=env)
                results[engine].append(json.loads(out))
        for engine, rows in results.items():
            times, peak, before = [r[0] for r in rows], max(r[1] for r in rows), max(r[2] for r in rows)
            print(f"{label if engine == 'tiktoken' else '':36s} {engine:9s} {min(times):11.2f} - {max(times):<9.2f} "
                  f"{peak / 1e6:8.0f} {before / 1e6:16.0f}  {rows[0][3]:,}")
        (t_tt, m_tt), (t_np, m_np) = [(min(r[0] for r in rows), max(r[1] for r in rows)) for rows in results.values()]
        same = {r[4] for rows in results.values() for r in rows}
        print(f"{'':36s} npgpt: {t_np / t_tt:.2f}x tiktoken's time, {m_np / m_tt:.2f}x its peak memory "
              f"({'same ids' if len(same) == 1 else 'DIFFERENT ids'})")


def bench_load(runs: int) -> None:
    """Fresh processes: import npgpt, Tokenizer.gpt2(), first encode, first encode of new words."""
    times = [json.loads(subprocess.check_output([sys.executable, "-c", LOAD_SCRIPT])) for _ in range(runs)]
    print(f"\n== load, {runs} fresh processes (min - max, seconds) ==")
    labels = ["import npgpt", "Tokenizer.gpt2()", "first encode", "first new words", "all four"]
    columns = list(zip(*times)) + [[sum(t) for t in times]]
    for label, column in zip(labels, columns):
        print(f"{label:20s} {min(column):6.3f} - {max(column):6.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", help="benchmark this UTF-8 text file instead of the built-in texts")
    parser.add_argument("--mb", type=float, default=2.0, help="size of the multilingual mix (default 2)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement; the best counts")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="wall (default) or cpu: "
                        "process CPU time, steadier on a machine shared with other jobs")
    parser.add_argument("--profile", action="store_true", help="cProfile one cold npgpt encode")
    parser.add_argument("--steps", action="store_true", help="time a cold npgpt encode step by step")
    parser.add_argument("--plain", action="store_true", help="also time npgpt without its NumPy merge path")
    parser.add_argument("--load-runs", type=int, default=5, help="fresh processes for the load times (0: skip)")
    parser.add_argument("--worst-runs", type=int, default=3, help="fresh processes per engine for each worst case (0: skip)")
    parser.add_argument("--worst-only", action="store_true", help="only the worst cases")
    args = parser.parse_args(argv)
    if args.worst_only:
        bench_worst(args.worst_runs)
        return 0

    if args.file:
        with open(args.file, encoding="utf-8", errors="replace") as f:
            texts = [(os.path.basename(args.file), f.read())]
    else:
        multi = multilingual_corpus(int(args.mb * 1e6))
        if len(multi.encode()) < args.mb * 1e6:
            print(f"note: only {len(multi.encode()) / 1e6:.2f} MB of translations found in /usr/share/locale")
        texts = [("multilingual (gettext translations)", multi), ("English (pydoc topics)", english_text())]

    tok = FastTokenizer.gpt2()  # (npgpt.tokenizer.Tokenizer.gpt2() would be the reference)
    with tempfile.TemporaryDirectory() as cache_dir:
        tiktoken_enc = tiktoken_gpt2(cache_dir)
    hf = hf_tokenizer()
    print(f"python {sys.version.split()[0]}, best of {args.repeat} ({args.clock} clock), one thread each")

    for label, text in texts:
        if args.profile:
            tok.clear_cache()
            profiler = cProfile.Profile()
            profiler.runcall(tok.encode_ordinary, text)
            print(f"\n== profile of one cold npgpt encode: {label} ==")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(8)
        elif args.steps:
            cold_steps(label, text, tok, args.repeat, CLOCKS[args.clock])
        else:
            bench_text(label, text, tok, tiktoken_enc, hf, args.repeat, CLOCKS[args.clock], args.plain)
    if args.worst_runs and not (args.profile or args.steps or args.file):
        bench_worst(args.worst_runs)
    if args.load_runs and not (args.profile or args.steps):
        bench_load(args.load_runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
