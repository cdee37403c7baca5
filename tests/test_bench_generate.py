"""``benchmarks/bench_generate.py`` compares the engines on the same kernels: what each worker's
environment holds for ``--isa``, and what "auto" makes of this environment."""

from __future__ import annotations

import importlib.util
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


def test_avx2_caps_every_engine_and_native_lifts_numpys(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "SkylakeX")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert bench.worker_env("npgpt", "avx2")["OPENBLAS_CORETYPE"] == "Haswell"
    ct2 = bench.worker_env("ctranslate2", "avx2")
    assert (ct2["CT2_FORCE_CPU_ISA"], ct2["ONEDNN_MAX_CPU_ISA"], ct2["MKL_ENABLE_INSTRUCTIONS"]) == ("AVX2", "AVX2", "AVX2")
    assert bench.worker_env("torch", "avx2")["ATEN_CPU_CAPABILITY"] == "avx2"
    assert "OPENBLAS_CORETYPE" not in bench.worker_env("npgpt", "native")
    assert "ONEDNN_MAX_CPU_ISA" not in bench.worker_env("ctranslate2", "native")
    assert "AVX2 for every engine" in bench.isa_line("avx2") and "widest" in bench.isa_line("native")
