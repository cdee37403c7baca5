# %% [markdown]
# # 4. The transformer block: layer norm, residuals, the MLP
#
# **What this notebook teaches.** A GPT-2 block is
#
# $$x \leftarrow x + \mathrm{attn}(\mathrm{LN}_1(x)), \qquad x \leftarrow x + \mathrm{MLP}(\mathrm{LN}_2(x))$$
#
# We compute layer norm and the MLP (with GELU) by hand, see why the residual connections make the
# stream of vectors $x$ the model's *working memory*, then stack the blocks and watch the
# stream grow layer by layer. Every number is checked against `model.run_with_cache`.

# %%
import matplotlib.pyplot as plt
import numpy as np

import npgpt
from npgpt.model import gelu, transformer_block

model = npgpt.demo_model()
tok = model.tokenizer
ids = tok.encode("To be, or not to be, that is the question.")
tokens = tok.decode_tokens(ids)
logits, cache = model.run_with_cache(ids)
block0 = model.params["h"][0]
eps = model.config.layer_norm_eps

# %% [markdown]
# ## Layer norm
#
# For each position separately: subtract the mean of its `n_embd` features, divide by their
# standard deviation, then scale and shift each feature by learned `weight` and `bias`:
#
# $$\mathrm{LN}(x) = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} \odot w + b$$

# %%
x = cache["resid_pre", 0]  # [n_seq, n_embd]
mu = x.mean(-1, keepdims=True)
var = x.var(-1, keepdims=True)
ln1 = (x - mu) / np.sqrt(var + eps) * block0["ln_1"]["weight"] + block0["ln_1"]["bias"]
print("matches the model's ln1:", np.allclose(ln1, cache["ln1", 0], atol=1e-5))
print("before: mean %.3f std %.3f   after normalising: mean %.3f std %.3f" % (
    x[3].mean(), x[3].std(), ((x - mu) / np.sqrt(var + eps))[3].mean(), ((x - mu) / np.sqrt(var + eps))[3].std()))

# %% [markdown]
# ## Residual connections
#
# The attention output is *added* to the stream, not substituted for it. So whatever the
# embeddings wrote is still there after the block, plus what attention added.

# %%
resid_mid = cache["resid_pre", 0] + cache["attn_out", 0]
print("resid_mid = resid_pre + attn_out:", np.allclose(resid_mid, cache["resid_mid", 0], atol=1e-6))

# %% [markdown]
# ## The MLP and GELU
#
# The MLP works on each position on its own: widen to `4 * n_embd`, apply GELU, project back.
# GELU is a smooth ReLU: $\mathrm{GELU}(x) = x\,\Phi(x)$, which GPT-2 computes with a tanh
# approximation.

# %%
xs = np.linspace(-4, 4, 200, dtype=np.float32)
plt.figure(figsize=(5, 3))
plt.plot(xs, gelu(xs), label="GELU (tanh form)")
plt.plot(xs, np.maximum(xs, 0), "--", label="ReLU")
plt.legend(); plt.grid(alpha=0.3); plt.title("GELU lets small negative values through")
plt.show()

# %%
h = cache["ln2", 0]
pre = h @ block0["mlp"]["c_fc"]["weight"] + block0["mlp"]["c_fc"]["bias"]  # [n_seq, 4*n_embd]
post = gelu(pre)
mlp_out = post @ block0["mlp"]["c_proj"]["weight"] + block0["mlp"]["c_proj"]["bias"]  # [n_seq, n_embd]
print("hidden width:", pre.shape[-1], "= 4 x", model.config.n_embd)
print("MLP output matches:", np.allclose(mlp_out, cache["mlp_out", 0], atol=1e-4))
print("fraction of hidden units > 0 after GELU:", round(float((post > 0).mean()), 3))

# %% [markdown]
# ## Stacking blocks
#
# The whole model body is a loop: the output of block `l` is the input of block `l+1`.
# `transformer_block` is the model's own function; we feed it the cached input of block 0.

# %%
x = cache["resid_pre", 0][None]  # add the batch axis: [1, n_seq, n_embd]
n_seq = x.shape[1]
mask = np.triu(np.full((n_seq, n_seq), -np.inf, dtype=np.float32), k=1)[None, None]  # [1, 1, n_seq, n_seq]
for layer, block in enumerate(model.params["h"]):
    x = transformer_block(x, **block, n_head=model.config.n_head, eps=eps, mask=mask)
print("after the last block, equal to the model's resid_post:",
      np.allclose(x[0], cache["resid_post", model.config.n_layer - 1], atol=1e-3))

# %% [markdown]
# ## The residual stream as working memory
#
# Each block reads the stream and writes a change into it. The norm of the stream grows with
# depth as blocks add their outputs; the first token often has a much larger norm than the rest
# (models use it as a place to "park" attention).

# %%
n_layer = model.config.n_layer
norms = np.stack([np.linalg.norm(cache["resid_post", l], axis=-1) for l in range(n_layer)])  # [n_layer, n_seq]
fig, ax = plt.subplots(figsize=(7, 3.5))
im = ax.imshow(norms, aspect="auto", cmap="magma")
ax.set_xticks(range(len(tokens)), tokens, rotation=90)
ax.set_ylabel("layer"); ax.set_title("norm of the residual stream after each block")
fig.colorbar(im); plt.show()

# %% [markdown]
# How much does each block change the stream? The ratio of what a block adds to what is there:

# %%
for l in range(n_layer):
    added = cache["attn_out", l] + cache["mlp_out", l]
    ratio = np.linalg.norm(added, axis=-1) / np.linalg.norm(cache["resid_pre", l], axis=-1)
    print(f"block {l:2d}: |attn_out + mlp_out| / |resid_pre| = {ratio[1:].mean():.2f} (mean over tokens after the first)")

# %% [markdown]
# ## Exercise
#
# 1. Replace GELU by ReLU in the MLP computation above: how much does `mlp_out` change?
# 2. Skip the residual connection in block 0 (use `attn_out` alone instead of
#    `resid_pre + attn_out`) with a hook: `model.logits(ids, hooks={"blocks.0.resid_mid": lambda r: cache_attn_out[None]})`.
#    How different are the final logits?
# 3. Which layer's MLP has the largest output norm on the last token?
