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


# Deliberately wrong blocks, each with words its check's message must contain (tests/test_solutions.py).
def no_skip(x, block, *, n_head, eps, mask):  # forgets "x +" around attention
    mid = M.mha(M.layer_norm(x, **block["ln_1"], eps=eps), **block["attn"], n_head=n_head, mask=mask)
    return mid, mid + M.ffn(M.layer_norm(mid, **block["ln_2"], eps=eps), **block["mlp"])


def post_norm(x, block, *, n_head, eps, mask):  # the original Transformer's "Add & Norm"
    mid = M.layer_norm(x + M.mha(x, **block["attn"], n_head=n_head, mask=mask), **block["ln_1"], eps=eps)
    return mid, M.layer_norm(mid + M.ffn(mid, **block["mlp"]), **block["ln_2"], eps=eps)


def post_norm_first_branch(x, block, *, n_head, eps, mask):  # normalises after adding, branch reads x
    mid = M.layer_norm(x + M.mha(M.layer_norm(x, **block["ln_1"], eps=eps), **block["attn"], n_head=n_head, mask=mask),
                       **block["ln_1"], eps=eps)
    return mid, mid


def wrong_mlp_norm(x, block, *, n_head, eps, mask):  # the MLP reads ln_1 instead of ln_2
    mid = x + M.mha(M.layer_norm(x, **block["ln_1"], eps=eps), **block["attn"], n_head=n_head, mask=mask)
    return mid, mid + M.ffn(M.layer_norm(mid, **block["ln_1"], eps=eps), **block["mlp"])


def one_array(x, block, *, n_head, eps, mask):
    return M.transformer_block(x, **block, n_head=n_head, eps=eps, mask=mask)


WRONG = {"check_block": [(no_skip, "skip connection"), (post_norm, "post-norm"), (post_norm_first_branch, "post-norm"),
                         (wrong_mlp_norm, "resid_post is off"), (one_array, "return two arrays")]}
