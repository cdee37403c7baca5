# %% [markdown]
# # 4. The transformer block: layer norm, the residual connection, the MLP
#
# **What this notebook teaches.** A GPT-2 block is two lines:
#
# $$x \leftarrow x + \mathrm{attn}(\mathrm{LN}_1(x)), \qquad x \leftarrow x + \mathrm{MLP}(\mathrm{LN}_2(x))$$
#
# The `x + ...` in each line is the **residual connection**, also called the **skip
# connection**: the same mechanism, used twice per block (once around attention, once around the
# MLP), in every block. The stream of vectors $x$ that it carries from the embeddings to the LM
# head is the *residual stream*. The layer norms sit *before* each branch (pre-norm, GPT-2's
# choice), not after the addition as in the original Transformer (post-norm, "Add & Norm").
#
# We compute layer norm and the MLP (with GELU) by hand, check the two residual additions in every
# block, stack the blocks, measure the stream's norm from the embedding through every block, and
# run the same weights in both placements, pre-norm and post-norm, to see what changes. At the end
# you write `layer_norm` yourself. Every claim is an `assert` on the model that ran.

# %%
import numpy as np

import npgpt
import npgpt.model as M
import viz
from npgpt import inspection

model = npgpt.demo_model()  # gpt2 if you have it, else the bundled Shakespeare model
tok = model.tokenizer
ids = tok.encode("To be, or not to be, that is the question.")
tokens = tok.decode_tokens(ids)
logits, cache = model.run_with_cache(ids)  # the reference forward pass, every activation recorded
c = model.config
n_seq, n_layer, eps = len(ids), c.n_layer, c.layer_norm_eps
block0 = model.params["h"][0]
mask = M.causal_mask(np.ones((1, n_seq), dtype=bool), n_seq)  # [1, 1, n_seq, n_seq]: 0, or -inf on the future


def loss(logits):
    """Mean next-token cross-entropy of ``logits`` [n_seq, n_vocab] on this text, in nats."""
    return float(-M.log_softmax(logits)[np.arange(n_seq - 1), ids[1:]].mean())


print(f"{n_seq} tokens, {n_layer} blocks, n_embd={c.n_embd}; loss on this text: {loss(logits):.3f}")

# %% [markdown]
# ## Layer norm
#
# For each position separately: subtract the mean of its `n_embd` features, divide by their
# standard deviation, then scale and shift each feature by a learned gain (`weight`) and `bias`:
#
# $$\mathrm{LN}(x) = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} \odot w + b$$
#
# $\sigma^2$ is the *biased* variance (divide by `n_embd`, NumPy's default `np.var`) and
# $\epsilon$ (`layer_norm_eps`) sits inside the square root, where it keeps a constant vector
# from dividing by zero.

# %%
x = cache["resid_pre", 0]  # [n_seq, n_embd]
mu = x.mean(-1, keepdims=True)  # [n_seq, 1]
var = x.var(-1, keepdims=True)  # [n_seq, 1], biased
normalised = (x - mu) / np.sqrt(var + eps)  # [n_seq, n_embd]
ln1 = normalised * block0["ln_1"]["weight"] + block0["ln_1"]["bias"]
assert np.allclose(ln1, cache["ln1", 0], atol=1e-5)  # the model's ln1 is exactly this
assert np.allclose(normalised.mean(-1), 0, atol=1e-5) and np.allclose(normalised.std(-1), 1, atol=1e-3)
print(f"token 3 before: mean {x[3].mean():+.3f} std {x[3].std():.3f}   "
      f"normalised: mean {normalised[3].mean():+.3f} std {normalised[3].std():.3f}")

# %% [markdown]
# ## The residual connection, twice per block
#
# The attention output is *added* to the stream, not substituted for it, and so is the MLP's:
#
# * `resid_mid  = resid_pre + attn_out` (the first skip connection)
# * `resid_post = resid_mid + mlp_out`  (the second)
#
# and each block's `resid_post` is the next block's `resid_pre`. So whatever the embeddings wrote is
# still there at the end: the final stream is the embeddings plus the sum of every branch's
# output, `2 * n_layer` terms.

# %%
for l in range(n_layer):
    assert np.allclose(cache["resid_mid", l], cache["resid_pre", l] + cache["attn_out", l], atol=1e-4)
    assert np.allclose(cache["resid_post", l], cache["resid_mid", l] + cache["mlp_out", l], atol=1e-4)
    if l + 1 < n_layer:
        assert np.array_equal(cache["resid_post", l], cache["resid_pre", l + 1])
embeddings = cache["embed"] + cache["pos_embed"]
total = embeddings + sum(cache["attn_out", l] + cache["mlp_out", l] for l in range(n_layer))
assert np.allclose(total, cache["resid_post", n_layer - 1], rtol=1e-4, atol=1e-3)
print(f"2 skip connections x {n_layer} blocks checked; final stream = embeddings + {2 * n_layer} branch outputs")

# %% [markdown]
# ## The MLP and GELU
#
# The MLP works on each position on its own: widen to `d_mlp = 4 * n_embd`, apply GELU, project
# back. GELU is a smooth ReLU, $\mathrm{GELU}(x) = x\,\Phi(x)$, which GPT-2 computes with a tanh
# approximation (`npgpt.model.gelu`). Unlike ReLU it lets small negative values through.

# %%
xs = np.linspace(-4, 4, 801, dtype=np.float32)
ys = M.gelu(xs)
assert abs(ys[-1] - 4) < 1e-3 and abs(ys[0]) < 1e-3  # about x for large x, about 0 for very negative x
assert ys.min() < -0.15 and -0.9 < xs[ys.argmin()] < -0.6  # its dip: negative, near x = -0.75
print(f"GELU's minimum: {ys.min():.3f} at x = {xs[ys.argmin()]:.2f}")
fig = viz.Figure(figsize=(5, 3))
ax = fig.add_subplot()
ax.plot(xs, ys, label="GELU (tanh form)")
ax.plot(xs, np.maximum(xs, 0), "--", label="ReLU")
ax.legend(); ax.grid(alpha=0.3); ax.set_title("GELU lets small negative values through", fontsize=10)
fig.tight_layout()
fig

# %%
mlp = block0["mlp"]
h = cache["ln2", 0]  # [n_seq, n_embd]
pre = h @ mlp["c_fc"]["weight"] + mlp["c_fc"]["bias"]  # [n_seq, d_mlp]
post = M.gelu(pre)
mlp_out = post @ mlp["c_proj"]["weight"] + mlp["c_proj"]["bias"]  # [n_seq, n_embd]
assert pre.shape[-1] == c.d_mlp == 4 * c.n_embd
assert np.allclose(mlp_out, cache["mlp_out", 0], atol=1e-4)
assert np.allclose(M.ffn(h[3:4], **mlp)[0], mlp_out[3], atol=1e-4)  # token 3 alone gives what it gave in context
print(f"hidden width {pre.shape[-1]} = 4 x {c.n_embd}; fraction of hidden units > 0 after GELU: {(post > 0).mean():.3f}")

# %% [markdown]
# ## Stacking blocks
#
# The whole model body is a loop: the output of block `l` is the input of block `l+1`.
# `transformer_block` is the model's own function; we feed it the cached input of block 0 and
# compare with the cache after every block.

# %%
x = cache["resid_pre", 0][None]  # add the batch axis: [1, n_seq, n_embd]
for layer, block in enumerate(model.params["h"]):
    x = M.transformer_block(x, **block, n_head=c.n_head, eps=eps, mask=mask)
    assert np.allclose(x[0], cache["resid_post", layer], rtol=1e-4, atol=1e-3)
print(f"{n_layer} calls of transformer_block reproduce every block's resid_post")

# %% [markdown]
# ## The residual stream's norm, from the embedding through every block
#
# Row `embed` is the stream entering block 0 (`resid_pre` of block 0, token plus position
# embeddings); row `after L{l}` is the stream after block `l` (`resid_post`). In a pre-norm model
# nothing rescales the stream itself: the layer norms only touch copies that feed the branches,
# so only what the blocks add can change its size. What that does on this model and text is
# measured below, not assumed.

# %%
norms = inspection.residual_norms(cache)  # [n_layer + 1, n_seq]: row 0 the embedding, row l+1 after block l
assert norms.shape == (n_layer + 1, n_seq)
assert np.allclose(norms[0], np.linalg.norm(cache["resid_pre", 0], axis=-1), rtol=1e-5)
assert np.allclose(norms[1:], np.linalg.norm(np.stack([cache["resid_post", l] for l in range(n_layer)]), axis=-1), rtol=1e-4)
viz.residual_norm_heatmap(norms, tokens)

# %%
typical = np.median(norms[:, 1:], axis=1)  # [n_layer + 1]: median over the positions after the first
growth = typical[1:] / typical[:-1]  # [n_layer]: how much block l multiplies the typical norm
for l in range(n_layer):
    added = np.linalg.norm(cache["attn_out", l] + cache["mlp_out", l], axis=-1)[1:]
    print(f"block {l}: median norm {typical[l]:7.2f} -> {typical[l + 1]:7.2f} (x{growth[l]:.2f}); "
          f"|attn_out + mlp_out| / |resid_pre| = {np.median(added / norms[l, 1:]):.2f}")
biggest = int(np.argmax(growth))
every_block = bool(np.all(growth > 1))
print(f"\nThe stream ends {typical[-1] / typical[0]:.1f} times as large as the embedding; the biggest step is "
      f"block {biggest} (x{growth[biggest]:.2f}); it grows {'at every block' if every_block else 'but not at every block'}.")
print(f"Position 0's norm after the last block is {norms[-1, 0] / typical[-1]:.1f} times the median of the others.")
assert typical[-1] > typical[0]  # the stream ends larger than it started
assert growth[biggest] == growth.max() and every_block == all(g > 1 for g in growth)  # the sentence above is computed

# %% [markdown]
# (With gpt2, position 0's norm becomes many times the others' after the first blocks: models
# park attention on the first token and give it an outsized vector. The ratio printed above is
# this model's.)
#
# ## Pre-norm (GPT-2) against post-norm (the original Transformer)
#
# The original Transformer (Vaswani et al., 2017) normalised *after* each addition,
# $x \leftarrow \mathrm{LN}(x + \mathrm{sublayer}(x))$, "Add & Norm". GPT-2 (Radford et al.,
# 2019) moved the layer norm to the input of each branch and added one final layer norm `ln_f`
# before the LM head. We can run the very same weights both ways: `post_norm_block` below uses
# `ln_1` after the attention's addition and `ln_2` after the MLP's.

# %%
def post_norm_block(x, ln_1, attn, ln_2, mlp, *, n_head, eps, mask):
    """The original Transformer's order on GPT-2's weights: Add & Norm after each branch."""
    x = M.layer_norm(x + M.mha(x, **attn, n_head=n_head, mask=mask), **ln_1, eps=eps)  # [batch, n_seq, n_embd]
    return M.layer_norm(x + M.ffn(x, **mlp), **ln_2, eps=eps)


pre_x = post_x = cache["resid_pre", 0][None]  # the same embeddings enter both stacks
pre_norms, post_norms, post_bounds = [norms[0]], [norms[0]], [np.nan]
for block in model.params["h"]:
    pre_x = M.transformer_block(pre_x, **block, n_head=c.n_head, eps=eps, mask=mask)
    post_x = post_norm_block(post_x, **block, n_head=c.n_head, eps=eps, mask=mask)
    pre_norms.append(np.linalg.norm(pre_x[0], axis=-1))
    post_norms.append(np.linalg.norm(post_x[0], axis=-1))
    # Post-norm ends each block with ln_2, so (x - bias) / weight is a normalised vector: mean 0, variance 1 ...
    w, b = block["ln_2"]["weight"], block["ln_2"]["bias"]
    unscaled = (post_x[0] - b) / w
    assert np.allclose(unscaled.mean(-1), 0, atol=1e-2) and np.allclose(unscaled.var(-1), 1, atol=1e-2)
    # ... so its norm can never exceed max|weight| * sqrt(n_embd) + |bias|, however deep the stack.
    post_bounds.append(float(np.abs(w).max() * np.sqrt(c.n_embd) + np.linalg.norm(b)))
    assert np.all(post_norms[-1] <= post_bounds[-1])
pre_norms, post_norms = np.stack(pre_norms), np.stack(post_norms)  # [n_layer + 1, n_seq]
assert np.allclose(pre_norms, norms, rtol=1e-4)  # pre-norm is the model itself
pre_loss = loss(M.unembed(M.layer_norm(pre_x[0], **model.params["ln_f"], eps=eps), model.params["wte"]["weight"]))
post_loss = loss(M.unembed(M.layer_norm(post_x[0], **model.params["ln_f"], eps=eps), model.params["wte"]["weight"]))
assert abs(pre_loss - loss(logits)) < 1e-3
assert pre_loss < post_loss  # the weights were trained pre-norm: moved, they predict worse
print(f"median norm after the last block: pre-norm {np.median(pre_norms[-1, 1:]):.2f}, "
      f"post-norm {np.median(post_norms[-1, 1:]):.2f} (bound {post_bounds[-1]:.2f})")
print(f"loss on the text with the same weights: pre-norm {pre_loss:.3f}, post-norm {post_loss:.3f}")

# %%
depth = np.arange(n_layer + 1)
fig = viz.Figure(figsize=(6.5, 3.2))
ax = fig.add_subplot()
ax.plot(depth, np.median(pre_norms[:, 1:], axis=1), "o-", label="pre-norm (GPT-2): x + f(LN(x))")
ax.plot(depth, np.median(post_norms[:, 1:], axis=1), "s-", label="post-norm (2017): LN(x + f(x))")
ax.plot(depth, post_bounds, "k:", label="post-norm's bound: max|w| sqrt(n_embd) + |b|")
ax.set_xticks(depth, ["embed"] + [str(l) for l in range(n_layer)])
ax.set_xlabel("the stream after block ... (embed: before block 0)")
ax.set_ylabel("median norm, positions 1+")
ax.set_title("same weights, two placements of the layer norm", fontsize=10)
ax.grid(alpha=0.3); ax.legend(fontsize=7)
fig.tight_layout()
fig

# %% [markdown]
# What changes, as asserted above:
#
# * **post-norm's stream is always normalised**: every block ends in a layer norm, so the stream's
#   norm is fixed by that norm's gain and bias (the dotted bound), whatever the blocks computed.
#   The embedding is only reachable through `2 * n_layer` layer norms.
# * **pre-norm's stream is a plain sum**: the embeddings plus every branch's output, with no
#   rescaling in between. Each branch sees a normalised copy, but the stream keeps its scale, and
#   the path from the embedding to the last block is the identity. That clean path is why
#   pre-norm trains more stably in deep stacks (Xiong et al., 2020, "On Layer Normalization in
#   the Transformer Architecture").
# * The weights only work in the placement they were trained in: the same numbers run post-norm
#   give a higher loss on the text.
#
# ## Without the skip connection
#
# A hook can replace any activation. Replacing block 0's `resid_mid` by `attn_out` alone removes
# the first skip connection: the embeddings no longer reach the rest of the model, except
# through what attention made of them.

# %%
no_skip = model.logits(ids, hooks={"blocks.0.resid_mid": lambda resid_mid: cache["attn_out", 0][None]})
print(f"loss on the text: {loss(logits):.3f} with the skip connection, {loss(no_skip):.3f} without it in block 0")
assert loss(no_skip) > loss(logits)

# %% [markdown]
# ## Exercise: write layer norm
#
# Write `my_layer_norm(x, weight, bias, eps)` for `x` of shape `[..., n_embd]`: normalise each
# position's vector over its features (the last axis) to mean 0 and variance 1, then multiply by
# `weight` and add `bias`. Use NumPy only, not `npgpt.model.layer_norm`.
#
# `check_layer_norm` runs it on every layer norm's real input from the cache (`ln_1` and `ln_2` of
# every block, `ln_f`) and on a few nearly constant vectors, where `eps` matters, and compares with
# the model's. When they differ it tells you what looks wrong (the variance, where `eps` goes, the
# gain and bias, the axis, ...). A solution is in `notebooks/solutions/04_the_block.py`.

# %%
def check_layer_norm(my_layer_norm, model=model, cache=cache):
    """Run ``my_layer_norm`` on the model's cached layer-norm inputs and on near-constant vectors."""
    c = model.config
    eps, n_layer = c.layer_norm_eps, c.n_layer
    cases = []  # (which layer norm, its input, its params, the expected output)
    for l, block in enumerate(model.params["h"]):
        cases.append((f"ln_1 of block {l}", cache["resid_pre", l], block["ln_1"], cache["ln1", l]))
        cases.append((f"ln_2 of block {l}", cache["resid_mid", l], block["ln_2"], cache["ln2", l]))
    cases.append(("ln_f", cache["resid_post", n_layer - 1], model.params["ln_f"], cache["ln_final"]))
    flat = 0.25 + 1e-3 * np.random.default_rng(0).standard_normal((3, c.n_embd))  # variance ~1e-6, below eps
    flat[2] = 0.25  # a constant vector: variance exactly 0
    flat = flat.astype(np.float32)
    cases.append(("nearly constant vectors", flat, model.params["h"][0]["ln_1"],
                  M.layer_norm(flat, **model.params["h"][0]["ln_1"], eps=eps)))

    def close(a, b):
        return a.shape == b.shape and np.allclose(a, b, rtol=1e-4, atol=1e-4)

    for name, x, params, want in cases:
        w, b = params["weight"], params["bias"]
        given = x.copy()
        try:
            got = my_layer_norm(given, w, b, eps)
        except NotImplementedError:
            print("not done yet: fill in my_layer_norm, then run this cell again")
            return False
        got = np.asarray(got, dtype=np.float64)
        assert np.array_equal(given, x), f"{name}: your layer_norm changed its input x in place; compute a new array"
        assert got.shape == want.shape, f"{name}: output shape {got.shape}; expected {want.shape}, the input's shape"
        if close(got, want):
            continue
        assert np.all(np.isfinite(got)), \
            f"{name}: your output has nan or inf (0/0 on a constant vector?): add eps to the variance inside the square root"
        x64 = x.astype(np.float64)
        mean, var = x64.mean(-1, keepdims=True), x64.var(-1, keepdims=True)
        n = (x64 - mean) / np.sqrt(var + eps)
        wrong = [
            ((x64 - mean) / np.sqrt(x64.var(-1, ddof=1, keepdims=True) + eps) * w + b,
             "you used the unbiased variance (ddof=1, dividing by n_embd - 1); layer norm uses the biased one, "
             "np.var(x, axis=-1), dividing by n_embd"),
            ((x64 - mean) / (np.sqrt(var) + eps) * w + b,
             "eps goes inside the square root: sqrt(var + eps), not sqrt(var) + eps"),
            ((x64 - mean) / np.sqrt(np.maximum(var, 1e-30)) * w + b,
             "forgot eps: divide by sqrt(var + eps), which keeps near-constant vectors from blowing up"),
            ((x64 - mean) / (var + eps) * w + b, "divide by the standard deviation sqrt(var + eps), not by the variance"),
            (n, "forgot the gain and the bias (weight and bias): return (x - mean) / sqrt(var + eps) * weight + bias"),
            (n + b, "forgot the gain: multiply by weight before adding bias"),
            (n * w, "forgot the bias: add bias after multiplying by weight"),
            (x64 / np.sqrt(var + eps) * w + b, "subtract the mean before dividing"),
        ]
        if x.ndim == 2 and x.shape[0] > 1:
            mean0, var0 = x64.mean(0, keepdims=True), x64.var(0, keepdims=True)
            wrong.append(((x64 - mean0) / np.sqrt(var0 + eps) * w + b,
                          "you normalised over the positions (axis 0); normalise each position over its features, "
                          "the last axis (axis=-1, keepdims=True)"))
        matches = [(np.abs(got - answer).max(), message) for answer, message in wrong if close(got, answer)]
        assert not matches, f"{name}: {min(matches)[1]}"  # the closest of the mistakes it matches
        raise AssertionError(f"{name}: off by up to {np.abs(got - want).max():.3g}; "
                             "layer_norm(x) = (x - mean) / sqrt(var + eps) * weight + bias, over the last axis")
    print(f"correct: your layer norm reproduces all {2 * n_layer + 1} layer norms of the model, "
          "and handles near-constant vectors")
    return True


# %%
def my_layer_norm(x, weight, bias, eps):
    raise NotImplementedError  # your code: normalise over the last axis, then * weight + bias


check_layer_norm(my_layer_norm);
