"""Worked solution to notebook 04's exercise: layer norm, by hand.

``tests/test_solutions.py`` runs it through the notebook's ``check_layer_norm``, and each wrong
layer norm in ``WRONG`` through the same check, which must turn it down with the words given.
"""

import numpy as np


def my_layer_norm(x, weight, bias, eps):
    """(x - mean) / sqrt(var + eps) * weight + bias over the last axis, with the biased variance."""
    mean = x.mean(axis=-1, keepdims=True)  # [..., 1]
    var = x.var(axis=-1, keepdims=True)  # [..., 1], divides by n_embd (biased), as torch.nn.LayerNorm
    return (x - mean) / np.sqrt(var + eps) * weight + bias  # [..., n_embd]


# check name in the notebook -> the function that passes it
SOLUTIONS = {"check_layer_norm": my_layer_norm}


# Deliberately wrong layer norms, each with words its check's message must contain (tests/test_solutions.py).
def unbiased_variance(x, weight, bias, eps):  # torch.var's default, not LayerNorm's
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(x.var(-1, ddof=1, keepdims=True) + eps) * weight + bias


def eps_outside(x, weight, bias, eps):  # sqrt(var) + eps
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / (x.std(-1, keepdims=True) + eps) * weight + bias


def no_eps(x, weight, bias, eps):  # 0/0 on a constant vector
    mean = x.mean(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (x - mean) / x.std(-1, keepdims=True) * weight + bias


def no_gain_no_bias(x, weight, bias, eps):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(x.var(-1, keepdims=True) + eps)


def no_bias(x, weight, bias, eps):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(x.var(-1, keepdims=True) + eps) * weight


def over_positions(x, weight, bias, eps):  # axis 0: each feature normalised over the positions
    mean = x.mean(0, keepdims=True)
    return (x - mean) / np.sqrt(x.var(0, keepdims=True) + eps) * weight + bias


def divide_by_variance(x, weight, bias, eps):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / (x.var(-1, keepdims=True) + eps) * weight + bias


def in_place(x, weight, bias, eps):  # right numbers, but overwrites the caller's array
    x -= x.mean(-1, keepdims=True)
    x /= np.sqrt(x.var(-1, keepdims=True) + eps)
    return x * weight + bias


WRONG = {"check_layer_norm": [(unbiased_variance, "unbiased variance"), (eps_outside, "inside the square root"),
                              (no_eps, "forgot eps"), (no_gain_no_bias, "weight and bias"), (no_bias, "forgot the bias"),
                              (over_positions, "axis"), (divide_by_variance, "standard deviation"),
                              (in_place, "in place")]}
