"""``fast.gpt2_threaded`` (a long prompt on npgpt's own threads) against ``fast.gpt2`` and the
reference, and the machinery of ``npgpt/fast/threads.py``: workers, OpenBLAS's thread count,
when the threads are declined."""

from __future__ import annotations

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


@needs_openblas
@pytest.mark.parametrize("n_workers", [2, 3, 6])
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


def test_declined_when_too_short_or_the_cache_too_small(params):
    assert fast.gpt2_threaded(ids_of(1, 40), params, CONFIG, n_workers=1) is None
    assert fast.gpt2_threaded(ids_of(1, fast.MIN_ROWS_PER_WORKER * 2 - 1), params,
                              npgpt.GPT2Config(n_vocab=97, n_ctx=1024, n_embd=48, n_head=6, n_layer=3)) is None
    cache = KVCache(CONFIG, 1, 30)
    assert fast.gpt2_threaded(ids_of(1, 40), params, CONFIG, kv_cache=cache, n_workers=2) is None
    assert cache.length == 0
    with pytest.raises(npgpt.InputError, match="KV cache holds 30 positions"):
        engine.forward(ids_of(1, 40), params, CONFIG, kv_cache=cache)


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
    if threads.worker_count() < 2:
        pytest.skip("one CPU or OpenBLAS at one thread: nothing to share")
    config = npgpt.GPT2Config(n_vocab=97, n_ctx=1024, n_embd=48, n_head=6, n_layer=2)
    params = npgpt.random_params(config, seed=4)
    ids = np.random.default_rng(5).integers(0, 97, (1, fast.MIN_ROWS_PER_WORKER * 2))
    expected = fast.gpt2(ids, params, config, last_only=True)
    calls = []
    monkeypatch.setattr(fast, "shared_blocks", lambda *a: (calls.append(1), threads_shared(*a)))
    close(engine.forward(ids, params, config, last_only=True), expected, rtol=1e-6)
    assert calls == [1]
    close(engine.forward(ids[:, :-1], params, config, last_only=True),
          fast.gpt2(ids[:, :-1], params, config, last_only=True), rtol=1e-6)
    assert calls == [1]  # one row short of two full shares: the single-threaded path


threads_shared = fast.shared_blocks


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
