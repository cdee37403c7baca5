"""``benchmarks/bench_generate.py`` compares the engines on the same kernels: what each worker's
environment holds for ``--isa``, and what "auto" makes of this environment."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("bench_generate", Path(__file__).resolve().parent.parent / "benchmarks" / "bench_generate.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.mark.parametrize("coretype, expected", [("Haswell", "avx2"), ("ZEN", "avx2"), ("SkylakeX", "native"), (None, "native")])
def test_auto_follows_what_openblas_coretype_gives_numpy(monkeypatch, coretype, expected):
    if coretype is None:
        monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_CORETYPE", coretype)
    assert bench.chosen_isa("auto") == expected
    assert bench.chosen_isa("native") == "native" and bench.chosen_isa("avx2") == "avx2"  # explicit choices stand


def test_avx2_caps_every_engine_and_native_lifts_every_cap(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "SkylakeX")
    for name in ("CT2_FORCE_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY"):
        monkeypatch.setenv(name, "AVX512")  # caps someone left in the environment
    assert bench.worker_env("npgpt", "avx2")["OPENBLAS_CORETYPE"] == "Haswell"
    ct2 = bench.worker_env("ctranslate2", "avx2")
    assert (ct2["CT2_FORCE_CPU_ISA"], ct2["ONEDNN_MAX_CPU_ISA"], ct2["MKL_ENABLE_INSTRUCTIONS"]) == ("AVX2", "AVX2", "AVX2")
    torch = bench.worker_env("torch", "avx2")
    assert (torch["ATEN_CPU_CAPABILITY"], torch["ONEDNN_MAX_CPU_ISA"]) == ("avx2", "AVX2")
    native = {engine: bench.worker_env(engine, "native") for engine in bench.ENGINES}
    assert "OPENBLAS_CORETYPE" not in native["npgpt"]
    assert not {"CT2_FORCE_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS"} & set(native["ctranslate2"])
    assert not {"ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS"} & set(native["torch"])
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Zen")  # already an AVX2 core: kept
    assert bench.worker_env("npgpt", "avx2")["OPENBLAS_CORETYPE"] == "Zen"
    assert "AVX2 for every engine" in bench.isa_line("avx2") and "widest" in bench.isa_line("native")


# A stand-in for a worker: bench_generate's order protocol, with each turn's start and end time
# and the environment variables that cap the engines' kernels written to a log. Its k-th run
# reports prefill k s and decode 10 k tok/s (npgpt: 20 k, and a 40 GB/s sweep), so a pairing of
# npgpt's k-th run with a peer's k-th gives exactly 2.0x decode and 1.0x prefill, any other not.
FAKE_WORKER = """
import json, os, sys, time
engine, log, fail = sys.argv[1], sys.argv[2], sys.argv[3] == "fail"
print("loading...", flush=True)  # a library's own print: skipped
print("BENCH " + json.dumps({"ready": engine}), flush=True)
k = 0
for order in sys.stdin:
    if fail:
        sys.exit("boom: " + engine + " cannot run")
    if order.startswith("run"):
        k += 1
        start = time.perf_counter()
        time.sleep(0.02)
        env = {v: os.environ.get(v) for v in ("OPENBLAS_CORETYPE", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")}
        with open(log, "a") as f:
            f.write(json.dumps([engine, int(order.split()[1]), start, time.perf_counter(), env]) + "\\n")
        print("BENCH " + json.dumps([k, 20.0 * k, 40.0] if engine == "npgpt" else [k, 10.0 * k]), flush=True)
    else:
        print("BENCH " + json.dumps({"peak_rss_mb": 1.0, "parent_rss_mb": 0.5}), flush=True)
        break
"""


def fake_workers(monkeypatch, tmp_path, fail=(), engines=bench.ENGINES):
    import sys

    log = tmp_path / "turns.jsonl"
    monkeypatch.setattr(bench, "worker_command", lambda engine, folder, args, new_tokens: [
        sys.executable, "-c", FAKE_WORKER, engine, str(log), "fail" if engine in fail else "ok"])
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    args = bench.argparse.Namespace(engines=list(engines), rounds=2, dtype="float32", prompt_lengths=[8, 16], isa="auto")
    return args, log


def test_the_engines_take_turns_one_at_a_time_each_peer_next_to_npgpt(monkeypatch, tmp_path, capsys):
    args, log = fake_workers(monkeypatch, tmp_path)
    import time

    sleeps = []

    class Time:  # bench_generate's time module, its sleeps recorded instead of slept
        def __getattr__(self, name):
            return getattr(time, name)

        sleep = staticmethod(sleeps.append)

    monkeypatch.setattr(bench, "time", Time())
    results = bench.run_rounds(args, dict.fromkeys(bench.ENGINES, "DIR"), new_tokens=4, runs=3, pause=0.03)
    turns = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(turns) == 2 * 3 * 2 * 3  # rounds x runs x lengths x engines
    assert sleeps == [0.03] * (len(turns) + 2 * 3)  # before every turn and every "end"
    for before, after in zip(turns, turns[1:]):
        assert after[2] >= before[3]  # one engine at a time
    orders = []
    for k in range(0, len(turns), 3):  # each (round, run, length): every engine once, adjacent turns
        assert len({t[1] for t in turns[k:k + 3]}) == 1
        orders.append(tuple(t[0] for t in turns[k:k + 3]))
    assert set(orders) == {("ctranslate2", "npgpt", "torch"), ("torch", "npgpt", "ctranslate2")}
    assert orders[::2] == [("ctranslate2", "npgpt", "torch"), ("torch", "npgpt", "ctranslate2")] * 3  # swap run by run,
    assert orders.count(orders[0]) == len(orders) // 2  # across rounds too: each end equally often
    envs = {t[0]: t[4] for t in turns}  # each worker in its engine's environment (--isa auto, AVX2 here)
    assert envs["npgpt"]["OPENBLAS_CORETYPE"] == "Haswell"
    assert envs["ctranslate2"]["ONEDNN_MAX_CPU_ISA"] == "AVX2" and envs["torch"]["ATEN_CPU_CAPABILITY"] == "avx2"
    assert all(len(results[e]["timings"][n]) == 6 for e in bench.ENGINES for n in (8, 16))
    assert results["npgpt"]["peak_rss_mb"] == [1.0, 1.0] and results["npgpt"]["floor_mb"] == 0.5
    assert bench.paired(results, "ctranslate2", 8, 1) == [2.0] * 6  # decode: the same (round, run), turn by turn
    assert bench.paired(results, "torch", 16, 0) == [1.0] * 6  # prefill
    assert all(0.0 <= results[e]["idle_cpu_s"] < 0.5 for e in bench.ENGINES)  # blocked on their input: measured

    # the report: medians, paired ratios, and the decode rate against the ceiling, overall and per turn
    results["npgpt"]["bandwidth"] = [{"bytes": 1e9, "own_gb_per_s": 80.0, "row_major_gb_per_s": 60.0}]
    bench.report(results, [8, 16], kv_bytes_per_token=0, new_tokens=4)
    out = capsys.readouterr().out
    assert "paired with CT2 f32, decode after 8: median 2.00x, 2.00-2.00x over 6 adjacent turns" in out
    assert "CPU time a waiting worker used during the other engines' turns, in all: npgpt" in out
    assert "at most 80.0 tok/s" in out  # the best sweep: 80 GB/s for 1 GB
    rates = sorted(t[1] for t in results["npgpt"]["timings"][8])
    assert f"npgpt {bench.statistics.median(rates):.1f} tok/s = {bench.statistics.median(rates) / 80:.2f} of it" in out
    fractions = sorted(r / 40 for r in rates)  # each turn's rate against its own turn's 40 GB/s sweep
    assert (f"of the sweep in the same turn: median {bench.statistics.median(fractions):.2f}, "
            f"{fractions[0]:.2f}-{fractions[-1]:.2f} over 6 turns") in out
    assert "after each npgpt turn read 40.0-40.0 GB/s" in out
    results["npgpt"]["bandwidth"] = [{"bytes": 1e9, "own_gb_per_s": 30.0, "row_major_gb_per_s": 20.0}]
    bench.report(results, [8], kv_bytes_per_token=0, new_tokens=4)  # a turn's sweep faster than the final ones
    assert "at most 40.0 tok/s" in capsys.readouterr().out  # the ceiling: the best sweep of all, 40 GB/s


def test_turn_order_puts_npgpt_between_its_peers():
    assert bench.turn_order(["npgpt", "ctranslate2"], 0) == ["npgpt", "ctranslate2"]
    assert bench.turn_order(["npgpt", "ctranslate2"], 1) == ["ctranslate2", "npgpt"]
    assert bench.turn_order(["ctranslate2", "torch"], 1) == ["torch", "ctranslate2"]  # without npgpt: rotating


def test_a_worker_that_dies_stops_the_run_with_its_error_and_no_worker_left(monkeypatch, tmp_path):
    args, _ = fake_workers(monkeypatch, tmp_path, fail=("ctranslate2",))
    started = []
    real = bench.Worker.__init__

    def keep(self, *a, **k):
        real(self, *a, **k)
        started.append(self.process)

    monkeypatch.setattr(bench.Worker, "__init__", keep)
    with pytest.raises(SystemExit, match="(?s)ctranslate2 worker failed.*boom: ctranslate2 cannot run"):
        bench.run_rounds(args, dict.fromkeys(bench.ENGINES, "DIR"), new_tokens=4, runs=1, pause=0.0)
    assert len(started) == 3 and all(p.poll() is not None for p in started)


def test_the_worker_answers_each_order(monkeypatch, capsys):
    import numpy as np

    calls = []

    def run(ids, new_tokens):
        calls.append((len(ids), new_tokens))
        return 0.25, 50.0

    model = type("Model", (), {"params": {}})()
    for engine, dtype, sweeps in (("npgpt", "float32", True), ("npgpt", "float16", False), ("torch", "float32", False)):
        monkeypatch.setattr(bench, "runner", lambda e, folder, d: (run, 100, model if e == "npgpt" else None))
        monkeypatch.setattr(bench, "decode_products", lambda params: [(np.ones((4, 4), np.float32), np.ones(4, np.float32), True)])
        monkeypatch.setattr(bench, "bandwidth", lambda params: {"bytes": 64})
        calls.clear()
        assert bench.worker(engine, "DIR", [8, 32], new_tokens=4, dtype=dtype, orders=["run 8", "run 32", "end"]) == 0
        replies = [json.loads(line[len(bench.REPLY):]) for line in capsys.readouterr().out.splitlines()]
        assert calls == [(16, 4), (8, 4), (32, 4)]  # the warm-up, then each order's prompt
        assert replies[0] == {"ready": engine}
        assert [r[:2] for r in replies[1:3]] == [[0.25, 50.0]] * 2
        assert all(len(r) == (3 if sweeps else 2) for r in replies[1:3])  # npgpt's float32 weights: a sweep's GB/s
        assert ("bandwidth" in replies[3]) == sweeps and replies[3]["peak_rss_mb"] > 0
    assert bench.worker("torch", "DIR", [8], new_tokens=4, dtype="float32", orders=["run 8"]) == 1  # input ended
    with pytest.raises(ValueError, match="unknown order"):
        bench.worker("torch", "DIR", [8], new_tokens=4, dtype="float32", orders=["fly 8"])


def test_cross_core_read_probe(monkeypatch):
    # The header says whether the two cores share a cache (docs/generation.md: npgpt's prefill is
    # slower when they do not). The probe gives a speed ratio, or None where threads cannot
    # be pinned; the line says which case a run was in.
    import os

    ratio = bench.cross_core_read(mb=1, trials=3)
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2:
        assert 0.2 < ratio < 5.0
    else:
        assert ratio is None
    monkeypatch.delattr(os, "sched_setaffinity", raising=False)
    assert bench.cross_core_read() is None
    assert "share their last-level cache" in bench.cores_line(0.98)
    assert "do NOT share a cache" in bench.cores_line(0.77) and "0.77" in bench.cores_line(0.77)
    assert "not measured" in bench.cores_line(None)
    assert "0.85" in bench.cores_line(0.849) and "NOT" not in bench.cores_line(0.849)  # judged as printed
    assert "0.84" in bench.cores_line(0.844) and "NOT" in bench.cores_line(0.844)
    assert bench.shares_cache(0.849) is True and bench.shares_cache(0.844) is False  # the same rule for ab_prefill.py
    assert bench.shares_cache(None) is None


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_setaffinity"), reason="threads cannot be pinned here")
def test_cross_core_read_is_slower_reads_over_own_and_gives_up_cleanly(monkeypatch):
    import os
    import threading
    import time

    import numpy as np

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU")
    reader = sorted(os.sched_getaffinity(0))[1]
    calls = {"n": 0, "writer": None}

    class Numpy:  # numpy, but a copy of an array the other CPU wrote costs 2 ms more
        def __getattr__(self, name):
            return getattr(np, name)

        def copyto(self, dst, src):
            calls["n"] += 1
            if calls["n"] % 2:  # the probe alternates: a write on one CPU, then the reader's copy
                calls["writer"] = os.sched_getaffinity(0)
            elif calls["writer"] != {reader}:
                time.sleep(0.002)
            np.copyto(dst, src)

    monkeypatch.setattr(bench, "np", Numpy())
    ratio = bench.cross_core_read(mb=1, trials=5)
    assert ratio < 0.5  # slower when the other CPU wrote: a ratio well under 1, not over it

    monkeypatch.setattr(bench, "np", np)
    monkeypatch.setattr(os, "sched_setaffinity", lambda *a: (_ for _ in ()).throw(PermissionError(1, "not permitted")))
    result = []
    probe = threading.Thread(target=lambda: result.append(bench.cross_core_read(mb=1, trials=2)), daemon=True)
    probe.start()
    probe.join(10)
    assert not probe.is_alive() and result == [None]  # pinning refused: None, no hang


def test_a_failed_probe_process_is_not_measured(monkeypatch):
    import sys

    monkeypatch.setattr(sys, "executable", "/bin/false")
    assert bench.cores_probe() is None


def test_the_probe_runs_in_its_own_process(monkeypatch):
    # run in the parent, its 24 MB of arrays would stay resident and be inherited by every
    # worker, adding to each engine's reported peak memory: the parent's own function is never called
    import os

    monkeypatch.setattr(bench, "cross_core_read", lambda *a, **k: pytest.fail("probed in the parent"))
    ratio = bench.cores_probe()
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2:
        assert isinstance(ratio, float) and 0.2 < ratio < 5.0  # the child measured it
    else:
        assert ratio is None
