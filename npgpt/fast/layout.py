"""The blocks' weight matrices laid out for generation's matrix-vector products.

A decode step multiplies one row x [n_embd] by every weight matrix W [n_in, n_out]: it reads all
of W once and does two flops per number read, so its speed is the speed of reading W. As GPT-2's
checkpoints store W (row-major, ``W[i]`` = the weights from input i), BLAS reads it with its
"axpy" kernel (y += x[i] W[i] for each i); stored column-major (the same matrix, each output's
column of weights contiguous), BLAS uses its "dot" kernel (y[j] = x . W[:, j]), which reads memory
faster on this project's machines: 9-23% less time per gpt2 decode step
(``benchmarks/profile_generate.py``; ``benchmarks/bench_generate.py`` prints both sweeps). Matrix
products with many rows (a prompt, training) run at about the same speed either way.

``for_decode`` re-lays the four matrices of every block out column-major, in place, once: the same
values and shapes, so ``x @ W`` (and all the reference code) computes the same thing; only
``W.flags`` change. One matrix is copied at a time, and when the old one was a view into the memory
map that ``npgpt.load`` reads a weights file through, its pages are handed back to the system
(``madvise(MADV_DONTNEED)``), so the process never holds two copies of the weights. Keep no other
reference to a block's weight array across a generation: after it, ``model.params`` holds the new
array (read the weights from ``model.params``, not from a variable saved earlier).

The price is paid once per loaded model, on its first decode step: about 0.2 s for gpt2 on this
project's machine (copying its 340 MB of block matrices; more when the pages of a memory-mapped
file are first read), against 1.4-3.0 ms saved on every later step, so a process that generates
fewer than roughly 100-150 tokens in all loses a little, and one that generates more (a chat, a
long text, a benchmark) gains.
"""

from __future__ import annotations

import mmap

import numpy as np

MATRICES = (("attn", "c_attn"), ("attn", "c_proj"), ("mlp", "c_fc"), ("mlp", "c_proj"))


def for_decode(params: dict) -> dict:
    """``params`` with every block's weight matrices column-major (done once, in place); returns ``params``."""
    for block in params["h"]:
        for part, name in MATRICES:
            layer = block[part][name]
            weight = layer["weight"]
            if weight.ndim != 2 or weight.flags.f_contiguous:
                continue
            layer["weight"] = np.asfortranarray(weight)  # [n_in, n_out], column-major
            release_mapped_pages(weight)
    return params


def release_mapped_pages(array: np.ndarray) -> bool:
    """Hand back to the system the whole pages of a memory-mapped file that ``array`` (no longer
    used) lies in; True if any were. Arrays not backed by an ``mmap`` are left to the garbage
    collector. Pages of a copy-on-write map that were written to are dropped too: reading them
    again gives the file's bytes."""
    base = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    if isinstance(base, memoryview):  # np.frombuffer(mapping) holds the map through a memoryview
        base = base.obj
    if not isinstance(base, mmap.mmap) or not hasattr(base, "madvise") or not array.flags.c_contiguous:
        return False
    start_address = np.frombuffer(base, dtype=np.uint8, count=1).ctypes.data
    offset = array.ctypes.data - start_address
    first = -(-offset // mmap.PAGESIZE) * mmap.PAGESIZE  # whole pages inside the array only
    last = (offset + array.nbytes) // mmap.PAGESIZE * mmap.PAGESIZE
    if last <= first:
        return False
    try:
        base.madvise(mmap.MADV_DONTNEED, first, last - first)
    except (OSError, ValueError):
        return False
    return True
