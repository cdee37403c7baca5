"""Worked solution to notebook 10's exercise: the greedy loop behind ``model.generate(input_ids,
max_length=...)``.

``tests/test_solutions.py`` runs it through the notebook's ``check_greedy``.
"""

import numpy as np


def my_greedy(model, input_ids, max_length, eos_token_id):
    """Argmax of the last position's logits, appended, until max_length ids (the prompt counts) or
    until the end-of-text id has been appended. Returns the prompt followed by the new ids."""
    ids = list(input_ids)
    while len(ids) < max_length:
        next_id = int(np.argmax(model.logits(ids)[-1]))  # the last position predicts the next token
        ids.append(next_id)
        if next_id == eos_token_id:
            break
    return ids


# check name in the notebook -> the function that passes it
SOLUTIONS = {"check_greedy": my_greedy}


# Deliberately wrong answers, each with words its check's message must contain (tests/test_solutions.py).
def max_length_as_new_tokens(model, input_ids, max_length, eos_token_id):  # max_new_tokens=max_length
    ids = list(input_ids)
    for _ in range(max_length):
        ids.append(int(np.argmax(model.logits(ids)[-1])))
        if ids[-1] == eos_token_id:
            break
    return ids


def new_tokens_only(model, input_ids, max_length, eos_token_id):
    return my_greedy(model, input_ids, max_length, eos_token_id)[len(input_ids):]


def first_position(model, input_ids, max_length, eos_token_id):  # reads the logits of position 0
    ids = list(input_ids)
    while len(ids) < max_length:
        ids.append(int(np.argmax(model.logits(ids)[0])))
        if ids[-1] == eos_token_id:
            break
    return ids


def ignores_eos(model, input_ids, max_length, eos_token_id):
    ids = list(input_ids)
    while len(ids) < max_length:
        ids.append(int(np.argmax(model.logits(ids)[-1])))
    return ids


def drops_eos(model, input_ids, max_length, eos_token_id):
    ids = my_greedy(model, input_ids, max_length, eos_token_id)
    return ids[:-1] if ids[-1] == eos_token_id else ids


WRONG = {"check_greedy": [
    (max_length_as_new_tokens, "counts the prompt"), (new_tokens_only, "prompt followed by the new tokens"),
    (first_position, "last position"), (ignores_eos, "went on after the end-of-text"), (drops_eos, "keep it as the last id"),
]}
