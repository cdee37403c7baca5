"""Worked solution to notebook 00's exercise: one pre-norm transformer block from the map's steps.

``tests/test_solutions.py`` runs it through the notebook's ``check_block``.
"""

import npgpt.model as M


def my_block(x, block, *, n_head, eps, mask):
    """(resid_mid, resid_post) of one block: each branch reads a layer-normed copy of the stream
    (pre-norm) and its output is added back (the skip connection, twice)."""
    resid_mid = x + M.mha(M.layer_norm(x, **block["ln_1"], eps=eps), **block["attn"], n_head=n_head, mask=mask)
    resid_post = resid_mid + M.ffn(M.layer_norm(resid_mid, **block["ln_2"], eps=eps), **block["mlp"])
    return resid_mid, resid_post


# check name in the notebook -> the function that passes it
SOLUTIONS = {"check_block": my_block}
