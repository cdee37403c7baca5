"""Worked solution to notebook 08's exercise: the log-probability of a continuation given a prompt.

``tests/test_solutions.py`` runs it through the notebook's ``check_score``.
"""

import numpy as np

from npgpt.model import log_softmax


def my_score(model, prompt, continuation):
    """Sum of log P(token | everything before it) over the continuation's tokens only.

    The logits at position t are the distribution of token t + 1, so the continuation's tokens,
    at positions len(prompt_ids) .. n_seq - 1, are scored by the rows one before them."""
    p, cont = model.tokenizer.encode(prompt), model.tokenizer.encode(continuation)
    ids = np.array(p + cont)
    logp = log_softmax(model.logits(ids))  # [n_seq, n_vocab], each row a log-distribution
    positions = np.arange(len(p), len(ids))  # where the continuation's tokens sit
    return float(logp[positions - 1, ids[positions]].sum())


# check name in the notebook -> the function that passes it
SOLUTIONS = {"check_score": my_score}


# Deliberately wrong answers, each with words its check's message must contain (tests/test_solutions.py).
def off_by_one(model, prompt, continuation):  # scores token t with the row that predicts token t + 1
    p, cont = model.tokenizer.encode(prompt), model.tokenizer.encode(continuation)
    ids = np.array(p + cont)
    positions = np.arange(len(p), len(ids))
    return float(log_softmax(model.logits(ids))[positions, ids[positions]].sum())


def raw_logits(model, prompt, continuation):  # forgets the log-softmax
    p, cont = model.tokenizer.encode(prompt), model.tokenizer.encode(continuation)
    ids = np.array(p + cont)
    positions = np.arange(len(p), len(ids))
    return float(model.logits(ids)[positions - 1, ids[positions]].sum())


def with_prompt(model, prompt, continuation):  # sums every scorable token, the prompt's too
    ids = np.array(model.tokenizer.encode(prompt) + model.tokenizer.encode(continuation))
    positions = np.arange(1, len(ids))
    return float(log_softmax(model.logits(ids))[positions - 1, ids[positions]].sum())


def joint_tokens(model, prompt, continuation):  # tokenizes prompt + continuation as one string
    ids = np.array(model.tokenizer.encode(prompt + continuation))
    positions = np.arange(len(model.tokenizer.encode(prompt)), len(ids))
    return float(log_softmax(model.logits(ids))[positions - 1, ids[positions]].sum())


def mean_per_token(model, prompt, continuation):
    return my_score(model, prompt, continuation) / len(model.tokenizer.encode(continuation))


WRONG = {"check_score": [(off_by_one, "off by one position"), (raw_logits, "raw logits"),
                         (with_prompt, "included the prompt's tokens"), (joint_tokens, "token boundary"),
                         (mean_per_token, "mean per token")]}
