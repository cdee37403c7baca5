"""Worked solution to notebook 11's exercise: a head's previous-token score from its pattern.

``tests/test_solutions.py`` runs it through the notebook's ``check_previous_token_score``.
"""

import numpy as np


def my_previous_token_score(pattern):
    """Mean attention from query i to key i - 1, over queries 1 .. n_seq - 1 (query 0 has no previous token)."""
    i = np.arange(1, len(pattern))
    return float(pattern[i, i - 1].mean())


SOLUTIONS = {"check_previous_token_score": my_previous_token_score}


def the_diagonal(pattern):  # attention to itself
    return float(np.diag(pattern)[1:].mean())


def with_query_0(pattern):  # counts query 0, which has no previous token, as attending to itself
    i = np.arange(1, len(pattern))
    return float(np.r_[pattern[0, 0], pattern[i, i - 1]].mean())


def one_per_query(pattern):  # forgets to average
    i = np.arange(1, len(pattern))
    return pattern[i, i - 1]


def the_next_key(pattern):  # looks one to the right (always masked: zero)
    i = np.arange(0, len(pattern) - 1)
    return float(pattern[i, i + 1].mean())


WRONG = {"check_previous_token_score": [(the_diagonal, "diagonal"), (with_query_0, "query 0"),
                                        (one_per_query, "one number"), (the_next_key, "expected")]}
