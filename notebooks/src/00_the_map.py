# %% [markdown]
# # 0. The map: the article's seven steps in npgpt's code
#
# **What this notebook teaches.** Articles explain a large language model in seven steps:
# tokenize and embed, add positional encodings, self-attention, the residual connection, linear
# layers, skip connections, stack the blocks; with the attention formula
#
# $$\mathrm{attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right)V.$$
#
# Here each step is mapped to the function in `npgpt/model.py` (or `npgpt/tokenizer.py`) that
# computes it and to the notebook that details it. Then each mapping is *proven*: we call that
# function on the activations the real model recorded during one forward pass
# (`model.run_with_cache`) and assert that it reproduces the next one. Last, a picture of one
# block with every tensor's shape read from that same forward pass.
#
# | # | the article's step | npgpt function | activation it makes | details in |
# |---|---|---|---|---|
# | 1 | tokenize and embed | `Tokenizer.encode` (`tokenizer.py`), `embed` | `embed` | `01_tokenization`, `02_embeddings` |
# | 2 | positional encoding | `pos_embed` (learned, GPT-2's choice) | `pos_embed` | `02_embeddings` |
# | 3 | self-attention | `mha` (Q, K, V, heads), `attention` (the formula) | `attn.q/k/v`, `attn.scores`, `attn.pattern`, `attn.z`, `attn_out` | `03_self_attention`, `07_looking_inside` |
# | 4 | the residual connection | `transformer_block`: `x + mha(layer_norm(x))` | `resid_mid` | `04_the_block` |
# | 5 | linear layers | `linear` (inside `mha`, `ffn`), `gelu`, `unembed` | `mlp.pre`, `mlp.post`, `mlp_out`, `logits` | `04_the_block`, `05_forward_pass_and_kv_cache` |
# | 6 | skip connections | `transformer_block`: the same addition again, `x + ffn(layer_norm(x))` | `resid_post` | `04_the_block` |
# | 7 | stacking blocks | `gpt2`: a loop over `transformer_block`, then `layer_norm`, `unembed` | `blocks.{l}.*`, `ln_final`, `logits` | `05_forward_pass_and_kv_cache` |
# | formula | softmax(QK^T/sqrt(d_k))V | `attention` (plus a causal mask $M$ inside the softmax) | `attn.scores`, `attn.pattern`, `attn.z` | `03_self_attention` |
#
# Steps 4 and 6 are one mechanism in GPT-2: the residual stream `x` is carried past each branch
# and the branch's output is *added* to it. It happens twice per block, once around attention and
# once around the MLP. Where the articles draw "Add & Norm" after each branch (the original
# Transformer, post-norm), GPT-2 normalises *before* each branch (pre-norm); we check which below.
#
# Open `npgpt/model.py` beside this notebook: it is short and ordered like this table.

# %%
import inspect

import numpy as np

import npgpt
import npgpt.model as M
import viz
from npgpt.activations import ACTIVATIONS, axes
from npgpt.tokenizer import Tokenizer

model = npgpt.load("shakespeare")  # the bundled model: small, on disk, the same for every reader
print(model)
text = "To be, or not to be: that is the question."
ids = model.tokenizer.encode(text)
logits, cache = model.run_with_cache(ids)  # the reference forward pass, every activation recorded
c = model.config
n_seq = len(ids)
print(f"{n_seq} tokens; the cache holds {len(cache)} activations")


def shape(name: str) -> str:
    """An activation's shape as the cache holds it, named by the axes of ACTIVATIONS (less batch)."""
    return "[" + ", ".join(f"{a}={n}" for a, n in zip(axes(name)[1:], cache[name].shape)) + "]"

# %% [markdown]
# Where each function of the map lives, read from the code itself (so the line numbers do not go
# stale), with the first line of its docstring:

# %%
MAP_FUNCTIONS = [Tokenizer.encode, M.embed, M.pos_embed, M.mha, M.attention, M.layer_norm, M.linear, M.gelu,
                 M.ffn, M.transformer_block, M.gpt2, M.unembed]
for fn in MAP_FUNCTIONS:
    path = inspect.getsourcefile(fn).replace("\\", "/").split("/npgpt/")[-1]
    line = inspect.getsourcelines(fn)[1]
    print(f"npgpt/{path}:{line:<4} {fn.__qualname__:<18} {inspect.getdoc(fn).splitlines()[0][:80]}")

# %% [markdown]
# ## Step 1: tokenize and embed
#
# Text becomes token ids (byte-level BPE, `01_tokenization`); each id picks one row of the token
# embedding matrix `wte` (`02_embeddings`). The model's tokenizer is the fast one; the reference
# `Tokenizer` in `npgpt/tokenizer.py` gives the same ids.

# %%
reference_tok = Tokenizer(model.tokenizer.encoder, model.tokenizer.merges)
assert reference_tok.encode(text) == ids
assert model.tokenizer.decode(ids) == text  # nothing lost
wte, wpe = model.params["wte"]["weight"], model.params["wpe"]["weight"]
assert np.array_equal(M.embed(np.array(ids), wte), cache["embed"])  # a lookup: row ids[i] of wte
print(model.tokenizer.decode_tokens(ids))
print("embed:", shape("embed"))

# %% [markdown]
# ## Step 2: positional encoding
#
# Attention by itself does not know the order of the tokens; GPT-2 adds a *learned* vector per
# position, row `p` of `wpe` (the original Transformer used fixed sines and cosines instead).
# Block 0 reads the sum of both embeddings.

# %%
assert np.array_equal(M.pos_embed(np.arange(n_seq), wpe), cache["pos_embed"])
assert np.allclose(cache["resid_pre", 0], cache["embed"] + cache["pos_embed"])
assert wpe.shape[0] == c.n_ctx
print("pos_embed:", shape("pos_embed"), "  wpe holds", wpe.shape[0], "positions (n_ctx)")

# %% [markdown]
# ## Step 3: self-attention, and the formula
#
# `mha` projects the layer-normed stream to queries, keys and values, cuts them into `n_head`
# heads, and calls `attention`, which computes the formula for every head at once. npgpt's
# `attention` adds the causal mask $M$ ($-\infty$ where a query would see a later token) inside
# the softmax: $\mathrm{softmax}(QK^\top/\sqrt{d_k} + M)V$. We recompute it with nothing but
# NumPy, from the cached `q`, `k`, `v`:

# %%
layer = 0
q, k, v = cache["q", layer], cache["k", layer], cache["v", layer]  # each [n_head, n_seq, d_head]
d_k = q.shape[-1]
mask = np.triu(np.full((n_seq, n_seq), -np.inf, dtype=np.float32), k=1)  # -inf above the diagonal
scores = q @ k.swapaxes(-1, -2) / np.sqrt(d_k) + mask  # [n_head, n_seq, n_seq]
pattern = M.softmax(scores)
z = pattern @ v  # [n_head, n_seq, d_head]

assert d_k == c.n_embd // c.n_head
assert np.allclose(scores, cache["scores", layer], atol=1e-4)
assert np.allclose(pattern, cache["pattern", layer], atol=1e-5)
assert np.allclose(z, cache["z", layer], atol=1e-5)
assert np.allclose(cache["pattern", layer].sum(-1), 1, atol=1e-5)  # each row is a probability distribution
assert np.all(np.triu(cache["pattern", layer], k=1) == 0)  # no token looks at a later one
full_mask = M.causal_mask(np.ones((1, n_seq), dtype=bool), n_seq)  # [batch, 1, n_seq, n_kv], the model's mask
assert np.allclose(M.mha(cache["ln1", layer][None], **model.params["h"][layer]["attn"], n_head=c.n_head,
                         mask=full_mask)[0], cache["attn_out", layer], atol=1e-4)
print("pattern:", shape(f"blocks.{layer}.attn.pattern"), "each row sums to 1")

# %% [markdown]
# ## Step 4: the residual connection (and where the layer norm sits)
#
# The attention branch does not replace the stream, it adds to it:
# `resid_mid = resid_pre + attn_out`. And the branch reads `layer_norm(resid_pre)`, the stream
# normalised *before* the branch (pre-norm). Were GPT-2 post-norm ("Add & Norm", the original
# Transformer), `resid_mid` would be `layer_norm(resid_pre + attn_out)`; it is not.

# %%
block = model.params["h"][layer]
eps = c.layer_norm_eps
assert np.allclose(cache["resid_mid", layer], cache["resid_pre", layer] + cache["attn_out", layer], atol=1e-5)
assert np.allclose(M.layer_norm(cache["resid_pre", layer], **block["ln_1"], eps=eps), cache["ln1", layer], atol=1e-5)
post_norm = M.layer_norm(cache["resid_pre", layer] + cache["attn_out", layer], **block["ln_1"], eps=eps)
assert not np.allclose(post_norm, cache["resid_mid", layer], atol=1e-2)  # not post-norm ("Add & Norm")
print("resid_mid = resid_pre + attn_out:", shape(f"blocks.{layer}.resid_mid"), "  ln1 = layer_norm(resid_pre): pre-norm")

# %% [markdown]
# ## Step 5: linear layers
#
# Every learned matrix in GPT-2 is applied by `linear`, `x @ W + b`: `c_attn` (to Q, K, V) and
# `c_proj` in attention; `c_fc` (widen to `d_mlp`), `gelu`, then `c_proj` (back to `n_embd`) in
# the MLP (`ffn`). The MLP works on each position alone; attention is the only step that mixes
# positions.

# %%
mlp = block["mlp"]
assert np.allclose(M.linear(cache["ln2", layer], **mlp["c_fc"]), cache["pre", layer], atol=1e-4)
assert np.allclose(M.gelu(cache["pre", layer]), cache["post", layer], atol=1e-5)
assert np.allclose(M.linear(cache["post", layer], **mlp["c_proj"]), cache["mlp_out", layer], atol=1e-4)
assert cache["pre", layer].shape == (n_seq, c.d_mlp) and c.d_mlp == 4 * c.n_embd
one_token = M.ffn(cache["ln2", layer][3:4], **mlp)  # the MLP on token 3 alone ...
assert np.allclose(one_token[0], cache["mlp_out", layer][3], atol=1e-4)  # ... is what it gave in context
print("mlp.pre:", shape(f"blocks.{layer}.mlp.pre"), f"d_mlp = 4 * n_embd = {c.d_mlp}")

# %% [markdown]
# ## Step 6: skip connections, the second time
#
# The same addition around the MLP: `resid_post = resid_mid + mlp_out`. So every block is
# `x + attn(LN1(x))` then `x + MLP(LN2(x))`: the skip connection is used twice per block, in
# every block.

# %%
for l in range(c.n_layer):
    assert np.allclose(cache["resid_mid", l], cache["resid_pre", l] + cache["attn_out", l], atol=1e-4)
    assert np.allclose(cache["resid_post", l], cache["resid_mid", l] + cache["mlp_out", l], atol=1e-4)
print(f"2 skip connections per block x {c.n_layer} blocks, all checked")

# %% [markdown]
# ## Step 7: stacking blocks
#
# `gpt2` runs `transformer_block` `n_layer` times, each block's output being the next one's input;
# then a last layer norm (`ln_f`) and the LM head (`unembed`, the token embeddings reused) turn the
# final stream into one logit per vocabulary token, at every position.

# %%
for l in range(c.n_layer - 1):
    assert np.array_equal(cache["resid_post", l], cache["resid_pre", l + 1])
x = cache["resid_pre", 3][None]
out = M.transformer_block(x, **model.params["h"][3], n_head=c.n_head, eps=eps, mask=full_mask)
assert np.allclose(out[0], cache["resid_post", 3], atol=1e-4)  # one call = one block
final = M.layer_norm(cache["resid_post", c.n_layer - 1], **model.params["ln_f"], eps=eps)
assert np.allclose(final, cache["ln_final"], atol=1e-5)
assert np.allclose(M.unembed(final, wte), logits, atol=1e-3)
assert np.allclose(M.gpt2(np.array([ids]), model.params, c)[0], logits, atol=1e-3)  # the whole stack, one call
print(f"{c.n_layer} blocks; logits:", shape("logits"))
print("the model's guess after the text:", repr(model.tokenizer.decode([int(logits[-1].argmax())])))

# %% [markdown]
# ## One block, every shape from the forward pass
#
# `viz.block_diagram(cache, layer)` draws block `layer` from the cache alone: each box is an
# activation, its shape is `cache[name].shape` and its axis names and caption come from
# `npgpt.activations.ACTIVATIONS`, the one table of activation names. Nothing is typed by hand: with
# `gpt2` loaded instead, the same call draws `n_embd=768, n_head=12, d_mlp=3072`. The stream runs
# down the left; each branch reads it through a layer norm and adds its output back (`+`).

# %%
rows = viz.block_shapes(cache, layer)
for name, shape_text, about in rows:
    assert shape_text == shape(name)  # the drawing's shape is the cache's
    print(f"{name:24} {shape_text:34} {about}")
assert len(rows) == sum(1 for t in ACTIVATIONS if t.startswith("blocks.{l}."))  # every block activation is drawn

# %%
viz.block_diagram(cache, layer)

# %% [markdown]
# ## Exercise: build a block from the map
#
# Write `my_block(x, block, *, n_head, eps, mask)` that returns `(resid_mid, resid_post)` for one
# block, using only `M.layer_norm`, `M.mha` and `M.ffn` (not `M.transformer_block`) and the two
# skip connections. `x` is `[batch, n_seq, n_embd]`, `block` is `model.params["h"][l]`, `mask`
# the additive causal mask (`full_mask` above). `check_block` runs it on every block of the model
# and compares with the cache; it tells you what looks wrong. (A solution is in
# `notebooks/solutions/00_the_map.py`.)

# %%
def check_block(my_block, model=model, cache=cache):
    """Run ``my_block`` on every block's cached input; compare with the cache. True when right."""
    c = model.config
    n_seq = cache["resid_pre", 0].shape[0]
    mask = M.causal_mask(np.ones((1, n_seq), dtype=bool), n_seq)
    for l, block in enumerate(model.params["h"]):
        x, mid, post = cache["resid_pre", l], cache["resid_mid", l], cache["resid_post", l]
        try:
            got = my_block(x[None], block, n_head=c.n_head, eps=c.layer_norm_eps, mask=mask)
        except NotImplementedError:
            print("not done yet: fill in my_block, then run this cell again")
            return False
        assert isinstance(got, tuple) and len(got) == 2, "return two arrays: (resid_mid, resid_post)"
        got_mid, got_post = (np.asarray(a).reshape(np.shape(a)[-2:]) for a in got)
        assert got_mid.shape == mid.shape, f"resid_mid has shape {got_mid.shape}; expected {mid.shape} = [n_seq, n_embd]"
        attn_out = cache["attn_out", l]
        assert not np.allclose(got_mid, attn_out, atol=1e-4), \
            f"block {l}: resid_mid equals the attention output alone: add it to x (the skip connection)"
        unscaled = (got_mid - block["ln_1"]["bias"]) / block["ln_1"]["weight"]  # mean 0, variance 1 if layer-normed
        assert not (np.allclose(unscaled.mean(-1), 0, atol=1e-3) and np.allclose(unscaled.var(-1), 1, atol=1e-2)), \
            f"block {l}: you normalised after adding (post-norm); GPT-2 normalises the branch's input: x + mha(layer_norm(x))"
        assert np.allclose(got_mid, mid, atol=1e-4), \
            f"block {l}: resid_mid is off by up to {np.abs(got_mid - mid).max():.3g}; it is x + mha(layer_norm(x, **block['ln_1']))"
        assert np.allclose(got_post, post, atol=1e-4), \
            f"block {l}: resid_post is off by up to {np.abs(got_post - post).max():.3g}; it is resid_mid + ffn(layer_norm(resid_mid, **block['ln_2']))"
    print(f"correct: your block reproduces all {c.n_layer} blocks of the model")
    return True


# %%
def my_block(x, block, *, n_head, eps, mask):
    raise NotImplementedError  # your code: resid_mid = ..., resid_post = ...; return resid_mid, resid_post


check_block(my_block);
