"""Worked solution to notebook 06's exercise: top-p (nucleus) filtering of one row of logits.

``tests/test_solutions.py`` runs it through the notebook's ``check_top_p``.
"""

import numpy as np


def my_top_p(logits, p):
    """Keep the fewest most likely tokens holding at least ``p``: sort from least to most likely
    (stable, so of equal tokens the lower id comes first) and drop tokens while they and all less
    likely ones hold at most 1 - p; the most likely token always stays; p=1 filters nothing."""
    logits = np.asarray(logits)
    if p == 1:
        return logits.copy()
    order = np.argsort(logits, kind="stable")  # least likely first
    sorted_logits = logits[order].astype(np.float64)
    e = np.exp(sorted_logits - sorted_logits[-1])  # the last is the largest
    mass_up_to = np.cumsum(e / e.sum())  # this token and every less likely one
    drop_sorted = mass_up_to <= 1 - p
    drop_sorted[-1] = False
    drop = np.zeros(logits.shape, dtype=bool)
    drop[order] = drop_sorted
    return np.where(drop, -np.inf, logits)


# check name in the notebook -> the function that passes it
SOLUTIONS = {"check_top_p": my_top_p}


# Deliberately wrong answers, each with words its check's message must contain (tests/test_solutions.py).
def most_likely_first(logits, p):  # the usual descending version: of equal tokens it keeps the lower ids
    logits = np.asarray(logits)
    if p == 1:
        return logits.copy()
    order = np.argsort(-logits, kind="stable")
    probs = np.exp(logits[order] - logits[order][0])
    probs /= probs.sum()
    mass_before = np.cumsum(probs) - probs
    keep = mass_before < p
    keep[0] = True
    out = np.full(logits.shape, -np.inf)
    out[order[keep]] = logits[order[keep]]
    return out


def no_p1_case(logits, p):  # forgets that p=1 filters nothing: drops tokens whose probability rounds to 0
    logits = np.asarray(logits)
    order = np.argsort(logits, kind="stable")
    e = np.exp(logits[order] - logits[order][-1])
    drop_sorted = np.cumsum(e / e.sum()) <= 1 - p
    drop_sorted[-1] = False
    drop = np.zeros(logits.shape, dtype=bool)
    drop[order] = drop_sorted
    return np.where(drop, -np.inf, logits)


def stops_before_p(logits, p):  # keeps tokens while the running total is below p: one too few
    logits = np.asarray(logits)
    order = np.argsort(-logits, kind="stable")
    probs = np.exp(logits[order] - logits[order][0])
    probs /= probs.sum()
    keep = np.cumsum(probs) < p
    keep[0] = True
    out = np.full(logits.shape, -np.inf)
    out[order[keep]] = logits[order[keep]]
    return out


def one_too_many(logits, p):  # keeps the token after the one that reached p exactly
    logits = np.asarray(logits)
    if p == 1:
        return logits.copy()
    order = np.argsort(logits, kind="stable")
    e = np.exp(logits[order] - logits[order][-1])
    drop_sorted = np.cumsum(e / e.sum()) < 1 - p
    drop_sorted[-1] = False
    drop = np.zeros(logits.shape, dtype=bool)
    drop[order] = drop_sorted
    return np.where(drop, -np.inf, logits)


def returns_probabilities(logits, p):
    logits = np.asarray(logits)
    e = np.exp(my_top_p(logits, p) - logits.max())
    return e / e.sum()


def in_place(logits, p):
    logits[:] = my_top_p(logits, p)
    return logits


WRONG = {"check_top_p": [
    (most_likely_first, "equal probability"), (no_p1_case, "p=1 means no filter"), (stops_before_p, "hold only"),
    (one_too_many, "the fewest"), (returns_probabilities, "unchanged"), (in_place, "changed its input"),
]}
