"""``fast.gpt2_threaded`` (a long prompt on npgpt's own threads) against ``fast.gpt2`` and the
reference, and the machinery of ``npgpt/fast/threads.py``: workers, OpenBLAS's thread count,
when the threads are declined."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading

import numpy as np
import pytest

import npgpt
from npgpt import engine
from npgpt import model as ref
from npgpt.fast import model as fast
from npgpt.fast import threads
from npgpt.kv_cache import KVCache

CONFIG = npgpt.GPT2Config(n_vocab=97, n_ctx=64, n_embd=48, n_head=6, n_layer=3)
needs_openblas = pytest.mark.skipif(threads.openblas() is None, reason="NumPy's BLAS is not OpenBLAS (or not Linux)")


@pytest.fixture(scope="module")
def params():
    return npgpt.random_params(CONFIG, seed=3)


def ids_of(batch, n_seq, seed=0):
    return np.random.default_rng(seed).integers(0, CONFIG.n_vocab, (batch, n_seq))


def close(got, expected, rtol=1e-5):
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    assert got.shape == expected.shape
    err = np.linalg.norm(got - expected) / max(np.linalg.norm(expected), 1e-30)
    assert err <= rtol, f"relative error {err:.2e}"


def as_dtype(tree, dtype):
    if isinstance(tree, dict):
        return {k: as_dtype(v, dtype) for k, v in tree.items()}
    if isinstance(tree, list):
        return [as_dtype(v, dtype) for v in tree]
    return tree.astype(dtype)


class InOrder:
    """A stand-in for ``threads.Workers``: ``run`` calls fn(i) one after another on this thread, in
    the given order. A share that read what another share writes in the same phase would see it
    written in one order and not in the other: the numbers would differ."""

    def __init__(self, n, reverse):
        self.n, self.order = n, range(n - 1, -1, -1) if reverse else range(n)

    def run(self, fn):
        results = [None] * self.n
        for i in self.order:
            results[i] = fn(i)
        return results


@pytest.mark.parametrize("reverse", [False, True])
def test_no_share_reads_what_another_writes_in_the_same_phase(params, monkeypatch, reverse):
    monkeypatch.setattr(threads, "claim", lambda n: contextlib.nullcontext(InOrder(n, reverse)))
    ids, mask = ids_of(2, 36, seed=6), np.ones((2, 36), bool)
    mask[1, :5] = False
    cache, expected_cache = KVCache(CONFIG, 2, 40), KVCache(CONFIG, 2, 40)
    got = fast.gpt2_threaded(ids, params, CONFIG, attention_mask=mask, kv_cache=cache, n_workers=3)
    np.testing.assert_array_equal(got, fast.gpt2(ids, params, CONFIG, attention_mask=mask, kv_cache=expected_cache))
    np.testing.assert_array_equal(cache.keys, expected_cache.keys)


@needs_openblas
@pytest.mark.parametrize("n_workers", [2, 3, 4, 6])  # 4: shares of 1 and 2 heads, 10 positions each
def test_full_logits_equal_the_reference(params, n_workers):
    ids = ids_of(2, 40)
    got = fast.gpt2_threaded(ids, params, CONFIG, n_workers=n_workers)
    assert got is not None
    close(got, ref.gpt2(ids, params, CONFIG))
    close(got, fast.gpt2(ids, params, CONFIG), rtol=1e-6)


@needs_openblas
def test_padding_and_a_cache_with_a_past(params):
    """Left padding in a batch, a first prompt into the cache, then a second (the positions a
    worker writes into the cache start after the past); logits, keys, values and the cache's mask
    all equal those of the single-threaded path."""
    mask = np.ones((2, 30), bool)
    mask[0, :7] = False
    ids, more = ids_of(2, 30, seed=1), ids_of(2, 20, seed=2)
    caches = [KVCache(CONFIG, 2, 60), KVCache(CONFIG, 2, 60)]
    first = [fast.gpt2(ids, params, CONFIG, attention_mask=mask, kv_cache=caches[0], last_only=True),
             fast.gpt2_threaded(ids, params, CONFIG, attention_mask=mask, kv_cache=caches[1], last_only=True, n_workers=2)]
    close(first[1], first[0], rtol=1e-6)
    second = [fast.gpt2(more, params, CONFIG, kv_cache=caches[0]),
              fast.gpt2_threaded(more, params, CONFIG, kv_cache=caches[1], n_workers=3)]
    close(second[1], second[0], rtol=1e-6)
    expected = ref.gpt2(np.concatenate([ids, more], axis=1), params, CONFIG,
                        attention_mask=np.concatenate([mask, np.ones((2, 20), bool)], axis=1))[:, 30:]
    close(second[1][1], expected[1])  # row 1 has no padding: the same numbers as one uncached call
    assert caches[1].length == caches[0].length == 50
    close(caches[1].keys[:, :, :, :50], caches[0].keys[:, :, :, :50], rtol=1e-6)
    close(caches[1].values[:, :, :, :50], caches[0].values[:, :, :, :50], rtol=1e-6)
    np.testing.assert_array_equal(caches[1].mask, caches[0].mask)


@needs_openblas
def test_openblas_held_to_one_thread_inside_and_given_back(params):
    blas = threads.openblas()
    before = blas.get()
    blas.set(2)
    try:
        inside = []
        with threads.claim(2) as pool:
            assert pool is not None
            inside.append(blas.get())
            assert sorted(pool.run(lambda i: threading.current_thread().name)) == ["npgpt-worker-0", "npgpt-worker-1"]
        assert inside == [1]
        assert blas.get() == 2
        a = np.ones((300, 300), np.float32)
        np.testing.assert_array_equal(a @ a, np.full((300, 300), 300, np.float32))  # OpenBLAS's threads come back
    finally:
        blas.set(before)


@needs_openblas
def test_declined_while_another_thread_lives_or_a_prefill_runs(params):
    """Parking OpenBLAS's threads while another thread's product uses them could hang: with any
    other Python thread alive the threads are declined (None), OpenBLAS untouched; the same
    while another threaded prefill holds them."""
    blas = threads.openblas()
    before = blas.get()
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert fast.gpt2_threaded(ids_of(1, 40), params, CONFIG, n_workers=2) is None
        assert blas.get() == before
    finally:
        release.set()
        other.join()
    with threads.claim(2) as pool:
        assert pool is not None
        with threads.claim(2) as again:
            assert again is None
    assert fast.gpt2_threaded(ids_of(1, 40), params, CONFIG, n_workers=2) is not None


@needs_openblas
@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_float16_and_float64_weights(params, dtype):
    """float16 weights compute in float32 (widened per product, as in gpt2), float64 in float64."""
    weights = as_dtype(params, dtype)
    ids = ids_of(1, 30, seed=7)
    compute = np.float64 if dtype == np.float64 else np.float32
    cache = KVCache(CONFIG, 1, 30, dtype=compute)
    got = fast.gpt2_threaded(ids, weights, CONFIG, kv_cache=cache, n_workers=2)
    assert got is not None and got.dtype == compute
    close(got, fast.gpt2(ids, weights, CONFIG, kv_cache=KVCache(CONFIG, 1, 30, dtype=compute)), rtol=1e-6)
    close(got, ref.gpt2(ids, weights, CONFIG), rtol=1e-5 if dtype == np.float16 else 1e-12)
    other = KVCache(CONFIG, 1, 30, dtype=np.float64 if compute == np.float32 else np.float32)
    assert fast.gpt2_threaded(ids, weights, CONFIG, kv_cache=other, n_workers=2) is None  # gpt2 keeps its dtype rules


@needs_openblas
def test_an_error_in_a_worker_reaches_the_caller_and_openblas_is_given_back(params, monkeypatch):
    blas = threads.openblas()
    before = blas.get()

    def attention_that_fails(*a, **k):
        if threading.current_thread().name == "npgpt-worker-1":
            raise MemoryError("worker 1 out of memory")
        return original(*a, **k)

    original = fast.causal_attention
    monkeypatch.setattr(fast, "causal_attention", attention_that_fails)
    cache = KVCache(CONFIG, 1, 40)
    with pytest.raises(MemoryError, match="worker 1"):
        fast.gpt2_threaded(ids_of(1, 40), params, CONFIG, kv_cache=cache, n_workers=2)
    assert blas.get() == before
    assert cache.length == 0  # nothing committed
    monkeypatch.setattr(fast, "causal_attention", original)
    with threads.claim(2) as pool:
        assert pool is not None  # the lock was let go


def test_declined_when_too_short_and_a_small_cache_refused(params):
    assert fast.gpt2_threaded(ids_of(1, 40), params, CONFIG, n_workers=1) is None
    assert fast.gpt2_threaded(ids_of(1, fast.MIN_ROWS_PER_WORKER * 2 - 1), params,
                              npgpt.GPT2Config(n_vocab=97, n_ctx=1024, n_embd=48, n_head=6, n_layer=3)) is None
    cache = KVCache(CONFIG, 1, 30)
    for run in (lambda: fast.gpt2_threaded(ids_of(1, 40), params, CONFIG, kv_cache=cache, n_workers=2),
                lambda: engine.forward(ids_of(1, 40), params, CONFIG, kv_cache=cache)):
        with pytest.raises(npgpt.InputError, match="KV cache holds 30 positions"):  # the cache's own check, from a worker
            run()
        assert cache.length == 0 and not cache.mask.any()  # nothing committed


def test_automatic_shares_use_every_openblas_thread_or_none(monkeypatch):
    """Without n_workers: as many workers as OpenBLAS has threads, each with MIN_ROWS_PER_WORKER
    positions, or the single-threaded path (fewer workers would leave cores idle)."""
    config = npgpt.GPT2Config(n_vocab=97, n_ctx=1024, n_embd=48, n_head=2, n_layer=2)
    params = npgpt.random_params(config, seed=8)
    asked = []
    monkeypatch.setattr(threads, "claim", lambda n: (asked.append(n), contextlib.nullcontext(InOrder(n, False)))[1])
    ids = np.random.default_rng(9).integers(0, 97, (1, 3 * fast.MIN_ROWS_PER_WORKER))
    for count, expected in ((2, [2]), (3, []), (4, [])):  # 3: more workers than heads; 4: too few positions each
        asked.clear()
        monkeypatch.setattr(threads, "worker_count", lambda: count)
        got = fast.gpt2_threaded(ids, params, config, last_only=True)
        assert asked == expected and (got is None) == (not expected)


def test_without_openblas_declined(params, monkeypatch):
    monkeypatch.setattr(threads, "_OPENBLAS", [None])
    assert threads.worker_count() == 0
    assert fast.gpt2_threaded(ids_of(1, 40), params, CONFIG, n_workers=2) is None
    with threads.claim(2) as pool:
        assert pool is None


def test_workers_run_share_i_on_worker_i_and_hand_back_errors():
    pool = threads.Workers(3)
    assert pool.run(lambda i: (i, threading.current_thread().name)) == [(i, f"npgpt-worker-{i}") for i in range(3)]

    def fail(i):
        if i == 1:
            raise ValueError("share 1 failed")
        return i

    with pytest.raises(ValueError, match="share 1 failed"):
        pool.run(fail)
    assert pool.run(lambda i: i * i) == [0, 1, 4]  # still serving after an error
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) >= 3:
        assert pool.run(lambda i: sorted(os.sched_getaffinity(0))) == [[cpus[0]], [cpus[1]], [cpus[2]]]


@needs_openblas
def test_engine_takes_the_threads_for_a_long_prompt(monkeypatch):
    n = threads.worker_count()
    if not 2 <= n <= min(6, 1024 // fast.MIN_ROWS_PER_WORKER):
        pytest.skip(f"{n} OpenBLAS threads: nothing to share, or more workers than this test's prompt can feed")
    config = npgpt.GPT2Config(n_vocab=97, n_ctx=1024, n_embd=48, n_head=6, n_layer=2)
    params = npgpt.random_params(config, seed=4)
    ids = np.random.default_rng(5).integers(0, 97, (1, fast.MIN_ROWS_PER_WORKER * n))
    expected = fast.gpt2(ids, params, config, last_only=True)
    calls, shared = [], fast.shared_blocks
    monkeypatch.setattr(fast, "shared_blocks", lambda *a: (calls.append(a[0].n), shared(*a)))
    close(engine.forward(ids, params, config, last_only=True), expected, rtol=1e-6)
    assert calls == [n]
    close(engine.forward(ids[:, :-1], params, config, last_only=True),
          fast.gpt2(ids[:, :-1], params, config, last_only=True), rtol=1e-6)
    assert calls == [n]  # one position short of a full share each: the single-threaded path


def _child(params, conn):
    conn.send(fast.gpt2_threaded(ids_of(1, 40), params, CONFIG, n_workers=2))


@needs_openblas
@pytest.mark.skipif(not hasattr(os, "register_at_fork"), reason="no fork here")
def test_a_forked_child_starts_its_own_workers(params):
    """A forked child has none of its parent's threads: it must not wait on the parent's workers."""
    expected = fast.gpt2_threaded(ids_of(1, 40), params, CONFIG, n_workers=2)  # the parent's workers exist
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(params, send))
    child.start()
    try:
        assert receive.poll(60), "the child hung"
        close(receive.recv(), expected, rtol=1e-6)
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()


def test_a_run_given_up_on_does_not_count_for_the_next():
    """Ctrl-C in the caller leaves a run's jobs running; their late results must not be taken
    for the next run's (which would then return before its own jobs finish)."""
    pool = threads.Workers(2)
    assert pool.run(lambda i: i) == [0, 1]  # run 1
    pool._done.put((1, 1, "late", None))  # what worker 1 of run 1 would leave behind had its caller given up
    assert pool.run(lambda i: "new") == ["new", "new"]
