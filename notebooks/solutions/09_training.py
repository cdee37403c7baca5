"""Worked solution to notebook 09's exercise: the gradient of the mean cross-entropy at the logits.

``tests/test_solutions.py`` runs it through the notebook's ``check_cross_entropy_grad``.
"""

import numpy as np

from npgpt.model import softmax


def my_cross_entropy_grad(logits, targets):
    """d(mean loss)/d(logits) = (softmax(logits) - onehot(targets)) / N, N = the number of positions."""
    n_vocab = logits.shape[-1]
    onehot = np.arange(n_vocab) == targets[..., None]  # [batch, n_seq, n_vocab], True at each target
    return (softmax(logits, axis=-1) - onehot) / targets.size


# check name in the notebook -> the function that passes it
SOLUTIONS = {"check_cross_entropy_grad": my_cross_entropy_grad}


# Deliberately wrong gradients, each with words its check's message must contain (tests/test_solutions.py).
def no_mean(logits, targets):  # the gradient of the summed loss
    return my_cross_entropy_grad(logits, targets) * targets.size


def flipped_sign(logits, targets):  # onehot - softmax: the direction that raises the loss
    return -my_cross_entropy_grad(logits, targets)


def no_onehot(logits, targets):  # the softmax alone
    return softmax(logits, axis=-1) / targets.size


def softmax_over_positions(logits, targets):  # the softmax taken along n_seq instead of the vocabulary
    onehot = np.arange(logits.shape[-1]) == targets[..., None]
    return (softmax(logits, axis=1) - onehot) / targets.size


def mean_over_batch_only(logits, targets):  # divides by batch, not by batch * n_seq
    return my_cross_entropy_grad(logits, targets) * targets.size / len(targets)


def onehot_of_first_target(logits, targets):  # the same target everywhere
    return my_cross_entropy_grad(logits, np.broadcast_to(targets.reshape(-1)[0], targets.shape))


def flat(logits, targets):  # [N, n_vocab]: right numbers, wrong shape
    return my_cross_entropy_grad(logits, targets).reshape(-1, logits.shape[-1])


WRONG = {"check_cross_entropy_grad": [
    (no_mean, "divide by N"), (flipped_sign, "wrong sign"), (no_onehot, "one-hot"),
    (softmax_over_positions, "last axis"), (mean_over_batch_only, "divide by N"),
    (onehot_of_first_target, "own target"), (flat, "shape"),
]}
