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


def test_each_worker_runs_in_its_engines_environment(monkeypatch):
    seen = {}

    def fake_run(command, env, **_):
        engine = command[command.index("--worker") + 1]
        seen[engine] = env
        out = {"timings": {"8": [[0.1, 10.0]]}, "peak_rss_mb": 1.0, "parent_rss_mb": 1.0}
        return type("Done", (), {"returncode": 0, "stdout": json.dumps(out), "stderr": ""})()

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    args = bench.argparse.Namespace(engines=list(bench.ENGINES), rounds=1, dtype="float32", prompt_lengths=[8], isa="auto")
    bench.run_rounds(args, dict.fromkeys(bench.ENGINES, "DIR"), new_tokens=4, runs=1)
    assert seen["ctranslate2"]["ONEDNN_MAX_CPU_ISA"] == "AVX2" and seen["torch"]["ATEN_CPU_CAPABILITY"] == "avx2"
    assert seen["npgpt"]["OPENBLAS_CORETYPE"] == "Haswell"


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
