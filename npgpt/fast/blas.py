"""How many threads NumPy's BLAS (OpenBLAS) uses, changed for the length of a ``with`` block.

A decode step (one new token after a KV cache) reads every weight matrix once and does two
floating-point operations per weight it reads: its speed is the memory bus's, not the cores'.
One core can draw most of that bandwidth, and a second OpenBLAS thread only adds its wake-up and
its synchronisation to each of the step's matrix-vector products (the figures are in
``docs/generation.md``); ``npgpt/engine.py`` runs decode steps of a few rows under ``threads(1)``
(with many rows each weight is used many times and the step becomes compute-bound again).

OpenBLAS exports ``openblas_set_num_threads`` and ``openblas_get_num_threads`` (NumPy's wheels
prefix them: ``scipy_openblas_set_num_threads64_``); they are looked up in the library the
process has loaded, as ``threadpoolctl`` does. Where there is no OpenBLAS to find (another BLAS,
another system), ``threads`` changes nothing.

Leaves out: other BLAS libraries (MKL, Accelerate, BLIS), and threads of other libraries.
"""

from __future__ import annotations

import ctypes
import threading
from contextlib import contextmanager

_PREFIXES = ("scipy_openblas_", "openblas_")
_SUFFIXES = ("64_", "")
_lock = threading.Lock()
_functions: tuple | None = None  # (get, set) once looked up; () when there is no OpenBLAS


def _loaded_openblas() -> list[str]:
    """Paths of the OpenBLAS libraries mapped into this process (Linux: /proc/self/maps)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return sorted({line.split()[-1] for line in maps if "openblas" in line.rsplit("/", 1)[-1].lower()})
    except OSError:
        return []


def _openblas_functions() -> tuple:
    """(get_num_threads, set_num_threads) of the OpenBLAS NumPy uses, or () if none is found."""
    global _functions
    if _functions is None:
        import numpy  # noqa: F401  (NumPy loads its BLAS on import: it must be mapped before the search)

        found = ()
        for path in _loaded_openblas():
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for prefix in _PREFIXES:
                for suffix in _SUFFIXES:
                    get, set_ = (getattr(lib, f"{prefix}{what}_num_threads{suffix}", None) for what in ("get", "set"))
                    if get is not None and set_ is not None:
                        get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
                        found = (get, set_)
                        break
                if found:
                    break
            if found:
                break
        _functions = found
    return _functions


def num_threads() -> int | None:
    """OpenBLAS's current thread count, or None where no OpenBLAS was found."""
    functions = _openblas_functions()
    return functions[0]() if functions else None


@contextmanager
def threads(n: int):
    """Run the block with at most ``n`` OpenBLAS threads, then restore the count it had."""
    functions = _openblas_functions()
    if not functions:
        yield
        return
    get, set_ = functions
    with _lock:
        before = get()
        if before > n:
            set_(n)
    try:
        yield
    finally:
        if before > n:
            with _lock:
                set_(before)
