"""Worked solution to notebook 03's exercise: one causal attention head, by hand.

``tests/test_solutions.py`` runs it through the notebook's ``check_head``, and each wrong head in
``WRONG`` through the same check, which must turn it down with the words given.
"""

import math

import numpy as np

from npgpt.model import softmax


def my_head(x, c_attn, head, n_head):
    """(pattern, z) of one head: softmax(q_h k_h^T / sqrt(d_head) + mask) and pattern @ v_h."""
    n_seq, n_embd = x.shape
    d_head = n_embd // n_head
    q, k, v = np.split(x @ c_attn["weight"] + c_attn["bias"], 3, axis=-1)  # each [n_seq, n_embd]
    cols = slice(head * d_head, (head + 1) * d_head)
    q_h, k_h, v_h = q[:, cols], k[:, cols], v[:, cols]  # each [n_seq, d_head]
    mask = np.triu(np.full((n_seq, n_seq), -np.inf, dtype=np.float32), k=1)  # -inf above the diagonal: the future
    pattern = softmax(q_h @ k_h.T / math.sqrt(d_head) + mask, axis=-1)  # [n_seq, n_seq], rows sum to 1
    return pattern, pattern @ v_h  # z: [n_seq, d_head]


# check name in the notebook -> the function that passes it
SOLUTIONS = {"check_head": my_head}


# Deliberately wrong heads, each with words its check's message must contain (tests/test_solutions.py).
def _parts(x, c_attn, head, n_head):
    n_seq, n_embd = x.shape
    d_head = n_embd // n_head
    q, k, v = np.split(x @ c_attn["weight"] + c_attn["bias"], 3, axis=-1)
    cols = slice(head * d_head, (head + 1) * d_head)
    mask = np.triu(np.full((n_seq, n_seq), -np.inf, dtype=np.float32), k=1)
    return q[:, cols], k[:, cols], v[:, cols], mask, d_head


def no_mask(x, c_attn, head, n_head):  # every token sees the future
    q_h, k_h, v_h, mask, d_head = _parts(x, c_attn, head, n_head)
    pattern = softmax(q_h @ k_h.T / math.sqrt(d_head))
    return pattern, pattern @ v_h


def no_scale(x, c_attn, head, n_head):  # forgets / sqrt(d_head)
    q_h, k_h, v_h, mask, d_head = _parts(x, c_attn, head, n_head)
    pattern = softmax(q_h @ k_h.T + mask)
    return pattern, pattern @ v_h


def scale_by_d(x, c_attn, head, n_head):  # divides by d_head, not its square root
    q_h, k_h, v_h, mask, d_head = _parts(x, c_attn, head, n_head)
    pattern = softmax(q_h @ k_h.T / d_head + mask)
    return pattern, pattern @ v_h


def wrong_axis(x, c_attn, head, n_head):  # normalises each key's column instead of each query's row
    q_h, k_h, v_h, mask, d_head = _parts(x, c_attn, head, n_head)
    pattern = softmax(q_h @ k_h.T / math.sqrt(d_head) + mask, axis=0)
    return pattern, pattern @ v_h


def mask_after_softmax(x, c_attn, head, n_head):  # zeroes the future after normalising
    q_h, k_h, v_h, mask, d_head = _parts(x, c_attn, head, n_head)
    pattern = np.tril(softmax(q_h @ k_h.T / math.sqrt(d_head)))
    return pattern, pattern @ v_h


def next_head(x, c_attn, head, n_head):  # an off-by-one slice: head + 1
    return my_head(x, c_attn, (head + 1) % n_head, n_head)


def weighs_keys(x, c_attn, head, n_head):  # z from the keys
    q_h, k_h, v_h, mask, d_head = _parts(x, c_attn, head, n_head)
    pattern = softmax(q_h @ k_h.T / math.sqrt(d_head) + mask)
    return pattern, pattern @ k_h


def pattern_only(x, c_attn, head, n_head):
    return my_head(x, c_attn, head, n_head)[0]


WRONG = {"check_head": [(no_mask, "causal mask"), (no_scale, "forgot to divide the scores by sqrt"),
                        (scale_by_d, "divided the scores by d_head"), (wrong_axis, "wrong axis"),
                        (mask_after_softmax, "sum to"), (next_head, "head h owns the columns"),
                        (weighs_keys, "values"), (pattern_only, "return two arrays")]}
