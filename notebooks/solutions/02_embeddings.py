"""Worked solution to notebook 02's exercise: the input of block 0, token vectors plus position vectors.

``tests/test_solutions.py`` runs it through the notebook's ``check_block0_input``.
"""

import numpy as np


def my_block0_input(ids, wte, wpe, start=0):
    """[batch, n_seq] ids -> [batch, n_seq, n_embd]: row ids[b, i] of wte plus row start + i of wpe."""
    n_seq = ids.shape[1]
    return wte[ids] + wpe[start: start + n_seq]  # [batch, n_seq, n_embd] + [n_seq, n_embd], broadcast over batch


# check name in the notebook -> the function that passes it
SOLUTIONS = {"check_block0_input": my_block0_input}


# Deliberately wrong answers, each with words its check's message must contain (tests/test_solutions.py).
def tokens_only(ids, wte, wpe, start=0):
    return wte[ids]


def positions_by_token_id(ids, wte, wpe, start=0):
    return wte[ids] + wpe[ids]


def ignores_start(ids, wte, wpe, start=0):
    return wte[ids] + wpe[: ids.shape[1]]


def columns_not_rows(ids, wte, wpe, start=0):
    return wte.T[:, ids] + wpe[start: start + ids.shape[1]].T[:, None]


def one_position_for_all(ids, wte, wpe, start=0):
    return wte[ids] + wpe[start]


def off_by_one(ids, wte, wpe, start=0):  # positions counted from 1
    return wte[ids] + wpe[start + 1: start + 1 + ids.shape[1]]


WRONG = {"check_block0_input": [(tokens_only, "add the position vectors"), (positions_by_token_id, "not by token id"),
                                (ignores_start, "not 0"), (columns_not_rows, "shape"),
                                (one_position_for_all, "the same position vector"), (off_by_one, "off by up to")]}
