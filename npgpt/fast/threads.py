"""Threads of npgpt's own for a long prefill: each keeps its rows on its own core.

NumPy runs a matrix product on OpenBLAS's threads (one per core) but every element-wise step
(biases, layer norm, GELU, the softmax's exponentials) on the calling thread alone. In a prefill,
one core then reads the half of each product that the other core wrote, and waits while the other
is idle. ``fast.gpt2_threaded`` instead gives each of ``n`` threads of its own a share of the rows
(for the products, biases, layer norms and MLP) and of the heads (for attention), with OpenBLAS
held to one thread for the duration: each product then runs whole on the thread, and the core,
that does the element-wise work on its result.

This module holds the machinery, no model math:

    openblas()   NumPy's OpenBLAS, found among the process's loaded libraries (Linux), with its
                 thread count and a way to park its worker threads; None when NumPy uses another
                 BLAS, or on another system (then the prefill runs as ``fast.gpt2``)
    Workers      n threads, each pinned to one allowed CPU where the system lets it; ``run(fn)``
                 calls fn(i) on worker i, so share i is always computed on the same core
    claim(n)     the workers for one threaded prefill, with OpenBLAS at one thread and its worker
                 threads parked, or None when it is not safe (see ``claim``)

Why park OpenBLAS's threads: after each multi-threaded product they spin for about 0.1 s waiting
for the next one, each on a core of its own, which would take a core from our workers for the
first part of a prefill that follows decoding. Parking joins them; OpenBLAS starts them again
when ``claim`` puts its thread count back. Parking while another thread's product is using them could
hang, so ``claim`` parks only when no Python thread but the caller and these workers is alive.

Leaves out: decoding (one row per step: its products are matrix-vector products that OpenBLAS's
own threads already split, and a hand-off between Python threads per product would cost more than
it saves).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import sys
import threading
import weakref

_LOCK = threading.Lock()  # one threaded prefill at a time in this process
_OPENBLAS: list = []  # [OpenBLAS or None], once looked up
_WORKERS: dict = {}  # n -> Workers, dropped in a forked child (its threads do not exist there)
_OURS: "weakref.WeakSet[threading.Thread]" = weakref.WeakSet()  # every worker thread: they run no product of their own


class OpenBLAS:
    """NumPy's OpenBLAS through ctypes: ``get()`` / ``set(n)`` its thread count, ``park()`` its
    worker threads (setting the thread count starts them again)."""

    def __init__(self, lib: ctypes.CDLL, get, set_, park):
        self.lib, self._get, self._set, self._park = lib, get, set_, park

    def get(self) -> int:
        return int(self._get())

    def set(self, n: int) -> None:
        self._set(int(n))

    def park(self) -> None:
        self._park()


def _find_openblas() -> OpenBLAS | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.rsplit("/", 1)[-1].lower()}
    except OSError:
        return None
    for path in sorted(paths, key=lambda path: ("numpy" not in path, path)):  # NumPy's own copy first (scipy_openblas64_)
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_", ""):
            for suffix in ("64_", ""):
                try:
                    get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}")
                    set_ = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}")
                    park = lib.blas_thread_shutdown_
                except AttributeError:
                    continue
                get.restype, set_.argtypes, set_.restype, park.restype = ctypes.c_int, [ctypes.c_int], None, ctypes.c_int
                return OpenBLAS(lib, get, set_, park)
    return None


def openblas() -> OpenBLAS | None:
    """NumPy's OpenBLAS, or None (another BLAS, or not Linux). Looked up once, after NumPy is loaded."""
    if not _OPENBLAS:
        _OPENBLAS.append(_find_openblas())
    return _OPENBLAS[0]


class Workers:
    """``n`` daemon threads, worker i pinned to the i-th allowed CPU (when the system allows);
    ``run(fn)`` calls fn(0) .. fn(n-1), fn(i) on worker i, waits for all and re-raises the first
    error. Not re-entrant: one ``run`` at a time (``claim`` holds a lock around its use)."""

    def __init__(self, n: int):
        self.n = n
        self._jobs = [queue.SimpleQueue() for _ in range(n)]
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._runs = 0
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.threads = [threading.Thread(target=self._serve, args=(i, cpus[i] if i < len(cpus) else None),
                                         name=f"npgpt-worker-{i}", daemon=True) for i in range(n)]
        for thread in self.threads:
            _OURS.add(thread)
            thread.start()

    def _serve(self, i: int, cpu: int | None) -> None:
        if cpu is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, {cpu})  # this thread only; it stays unpinned where refused
        while True:
            run, fn = self._jobs[i].get()
            try:
                self._done.put((run, i, fn(i), None))
            except BaseException as error:  # handed to the caller, never lost in a thread
                self._done.put((run, i, None, error))

    def run(self, fn) -> list:
        self._runs += 1
        run = self._runs  # a run the caller gave up on (Ctrl-C) may still report: its results are dropped
        for jobs in self._jobs:
            jobs.put((run, fn))
        results, first_error, waiting = [None] * self.n, None, self.n
        try:
            while waiting:
                of, i, result, error = self._done.get()
                if of == run:
                    results[i], first_error, waiting = result, first_error or error, waiting - 1
        except BaseException:  # Ctrl-C: the jobs still write the caller's arrays; let them finish first
            while waiting:
                waiting -= self._done.get()[0] == run
            raise
        if first_error is not None:
            raise first_error
        return results


def workers(n: int) -> Workers:
    """The process's ``n`` workers, started on first use."""
    if n not in _WORKERS:
        _WORKERS[n] = Workers(n)  # RuntimeError if a thread cannot be started
    return _WORKERS[n]


def _forget_workers() -> None:
    _WORKERS.clear()
    global _LOCK
    _LOCK = threading.Lock()  # a lock held by the parent's prefill would stay held in the child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def worker_count() -> int:
    """How many workers a threaded prefill would use: OpenBLAS's own thread count (what the user
    set, by default one per core), at most the CPUs this process may run on; 0 without OpenBLAS."""
    blas = openblas()
    if blas is None:
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(blas.get(), cpus)


@contextlib.contextmanager
def claim(n: int):
    """Yields ``n`` workers with OpenBLAS held to one thread and its threads parked, and puts
    OpenBLAS's thread count back afterwards; yields None (use the single-threaded path) when
    OpenBLAS is not found, another threaded prefill is running, or any Python thread other than
    the caller and the workers is alive (its products could be using OpenBLAS's threads)."""
    blas = openblas()
    if blas is None or n < 2 or not _LOCK.acquire(blocking=False):
        yield None
        return
    try:
        try:
            pool = workers(n)
        except RuntimeError:  # no thread could be started (a system limit): the single-threaded path
            yield None
            return
        others = [t for t in threading.enumerate() if t is not threading.current_thread() and t not in _OURS]
        if others:
            yield None
            return
        before = blas.get()
        try:
            blas.set(1)
            blas.park()
            yield pool
        finally:
            blas.set(before)
    finally:
        _LOCK.release()
