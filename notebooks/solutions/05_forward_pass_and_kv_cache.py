"""Worked solution to notebook 05's exercise: attention for one new token with a KV cache.

``tests/test_solutions.py`` runs it through the notebook's ``check_decode_attention``.
"""

import numpy as np

from npgpt.model import softmax


def my_decode_attention(q, k_past, v_past, k_new, v_new):
    """Append the new token's key and value after the cached ones, then let its query attend over
    all of them (its own included): no mask, since nothing comes after the newest token."""
    k_all = np.concatenate([k_past, k_new], axis=-2)  # [n_head, n_past + 1, d_head]
    v_all = np.concatenate([v_past, v_new], axis=-2)
    scores = q @ k_all.swapaxes(-1, -2) / np.sqrt(q.shape[-1])  # [n_head, 1, n_past + 1]
    return softmax(scores, axis=-1) @ v_all, k_all, v_all  # z: [n_head, 1, d_head]


# check name in the notebook -> the function that passes it
SOLUTIONS = {"check_decode_attention": my_decode_attention}


# Deliberately wrong answers, each with words its check's message must contain (tests/test_solutions.py).
def past_only(q, k_past, v_past, k_new, v_new):  # attends before appending: the new token misses itself
    z = softmax(q @ k_past.swapaxes(-1, -2) / np.sqrt(q.shape[-1]), axis=-1) @ v_past
    return z, np.concatenate([k_past, k_new], axis=-2), np.concatenate([v_past, v_new], axis=-2)


def unscaled(q, k_past, v_past, k_new, v_new):  # forgets / sqrt(d_head)
    k_all, v_all = np.concatenate([k_past, k_new], axis=-2), np.concatenate([v_past, v_new], axis=-2)
    return softmax(q @ k_all.swapaxes(-1, -2), axis=-1) @ v_all, k_all, v_all


def new_key_first(q, k_past, v_past, k_new, v_new):  # same z (attention ignores key order), wrong cache
    k_all, v_all = np.concatenate([k_new, k_past], axis=-2), np.concatenate([v_new, v_past], axis=-2)
    return softmax(q @ k_all.swapaxes(-1, -2) / np.sqrt(q.shape[-1]), axis=-1) @ v_all, k_all, v_all


def softmax_over_queries(q, k_past, v_past, k_new, v_new):  # normalises the wrong axis
    k_all, v_all = np.concatenate([k_past, k_new], axis=-2), np.concatenate([v_past, v_new], axis=-2)
    return softmax(q @ k_all.swapaxes(-1, -2) / np.sqrt(q.shape[-1]), axis=-2) @ v_all, k_all, v_all


def z_only(q, k_past, v_past, k_new, v_new):
    return my_decode_attention(q, k_past, v_past, k_new, v_new)[0]


WRONG = {"check_decode_attention": [
    (past_only, "append k_new, v_new"), (unscaled, r"sqrt\(d_head\)"), (new_key_first, "after the past"),
    (softmax_over_queries, r"keys \(last axis\)"), (z_only, "return three arrays"),
]}
