# %% [markdown]
# # 3. Self-attention, one head at a time
#
# **What this notebook teaches.** Attention is the only step in GPT-2 where one position reads
# from the others. Here we compute
#
# $$\mathrm{attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}} + M\right)V$$
#
# by hand, with real numbers from one head of the model, and check every intermediate against
# what `npgpt` itself computed (`model.run_with_cache`). Along the way: what the causal mask $M$
# does, why we divide by $\sqrt{d_k}$, and how "multi-head" is nothing but a reshape.
#
# The functions used are the model's own, from `npgpt/model.py`: open it beside this notebook.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np

import npgpt
from npgpt.model import merge_heads, softmax, split_heads

model = npgpt.demo_model()  # gpt2 if you have it, else the bundled Shakespeare model
tok = model.tokenizer
text = "The cat sat on the mat because the cat was tired."
ids = tok.encode(text)
tokens = tok.decode_tokens(ids)
logits, cache = model.run_with_cache(ids)
n_seq, n_head, d_head = len(ids), model.config.n_head, model.config.d_head
print(f"{n_seq} tokens: {tokens}")
print(f"n_embd={model.config.n_embd}, n_head={n_head}, d_head={d_head}")

# %% [markdown]
# ## The input: the residual stream after layer norm
#
# Block 0's attention reads `ln1`, the residual stream after the first layer norm: one vector of
# `n_embd` numbers per token.

# %%
layer = 0
x = cache["ln1", layer]  # [n_seq, n_embd]
print("x:", x.shape)

# %% [markdown]
# ## Queries, keys and values
#
# One matrix multiply produces all three for every head: `c_attn` maps `n_embd -> 3 * n_embd`.
# Each token gets a **query** (what am I looking for?), a **key** (what do I contain?) and a
# **value** (what do I pass on if someone attends to me?).

# %%
c_attn = model.params["h"][layer]["attn"]["c_attn"]
qkv = x @ c_attn["weight"] + c_attn["bias"]  # [n_seq, n_embd] @ [n_embd, 3*n_embd]
q, k, v = np.split(qkv, 3, axis=-1)  # each [n_seq, n_embd]
print("q, k, v:", q.shape, k.shape, v.shape)

# %% [markdown]
# Pick one head. Head `h` owns the slice `h*d_head : (h+1)*d_head` of each vector.

# %%
h = 1
q_h = q[:, h * d_head : (h + 1) * d_head]  # [n_seq, d_head]
k_h = k[:, h * d_head : (h + 1) * d_head]
v_h = v[:, h * d_head : (h + 1) * d_head]
print("the model's cached queries for this head equal ours:", np.allclose(cache["q", layer][h], q_h, atol=1e-5))

# %% [markdown]
# ## Scores: every query against every key
#
# `scores[i, j]` says how well token `i`'s query matches token `j`'s key.

# %%
scores = q_h @ k_h.T / math.sqrt(d_head)  # [n_seq, n_seq]
print(np.array2string(scores[:5, :5], precision=2))

# %% [markdown]
# ## The causal mask
#
# GPT-2 predicts the next token, so position `i` must not see positions after `i`: those scores
# become $-\infty$, and $e^{-\infty} = 0$ after the softmax. That is all the mask $M$ does.

# %%
mask = np.triu(np.full((n_seq, n_seq), -np.inf, dtype=np.float32), k=1)  # -inf above the diagonal
pattern = softmax(scores + mask)  # each row sums to 1
print("rows sum to 1:", np.allclose(pattern.sum(-1), 1))
print("nothing above the diagonal:", np.all(np.triu(pattern, k=1) == 0))
print("equals the model's attention pattern:", np.allclose(pattern, cache["pattern", layer][h], atol=1e-5))

# %%
fig, ax = plt.subplots(figsize=(6, 5))
im = ax.imshow(pattern, cmap="viridis", vmin=0, vmax=1)
ax.set_xticks(range(n_seq), tokens, rotation=90)
ax.set_yticks(range(n_seq), tokens)
ax.set_xlabel("key (attended to)")
ax.set_ylabel("query (attending)")
ax.set_title(f"layer {layer}, head {h}")
fig.colorbar(im)
plt.show()

# %% [markdown]
# The first row is always `[1, 0, 0, ...]`: the first token can only look at itself.
#
# ## Why divide by $\sqrt{d_k}$?
#
# If the entries of $q$ and $k$ have variance 1, their dot product over $d_k$ dimensions has
# variance $d_k$. Large scores push the softmax towards a one-hot vector whose gradient is almost
# zero everywhere, which stalls training. Dividing by $\sqrt{d_k}$ brings the variance back to 1.

# %%
rng = np.random.default_rng(0)
for d in (4, 64, 1024):
    qs, ks = rng.standard_normal((2000, d)), rng.standard_normal((2000, d))
    dots = (qs * ks).sum(-1)
    row = rng.standard_normal((10, d)) @ rng.standard_normal(d)  # 10 keys against one query
    print(f"d_k={d:5d}: var(q.k)={dots.var():8.1f}   var(q.k/sqrt(d_k))={(dots / math.sqrt(d)).var():.2f}   "
          f"max softmax prob unscaled={softmax(row).max():.3f}, scaled={softmax(row / math.sqrt(d)).max():.3f}")

# %% [markdown]
# ## The output: a weighted average of values
#
# Each position's output is the average of the value vectors it attends to, weighted by its row
# of the pattern.

# %%
z_h = pattern @ v_h  # [n_seq, n_seq] @ [n_seq, d_head] -> [n_seq, d_head]
print("equals the model's z for this head:", np.allclose(z_h, cache["z", layer][h], atol=1e-5))

# %% [markdown]
# ## Multi-head attention is a reshape
#
# We never loop over heads: `split_heads` reshapes `[n_seq, n_embd]` to
# `[n_head, n_seq, d_head]`, one matrix multiply then does every head at once, and
# `merge_heads` lays the heads' outputs side by side again. The output projection `c_proj`
# mixes what the heads found.

# %%
Q, K, V = (split_heads(t[None], n_head) for t in (q, k, v))  # each [1, n_head, n_seq, d_head]
all_patterns = softmax(Q @ K.swapaxes(-1, -2) / math.sqrt(d_head) + mask)  # [1, n_head, n_seq, n_seq]
Z = all_patterns @ V  # [1, n_head, n_seq, d_head]
c_proj = model.params["h"][layer]["attn"]["c_proj"]
attn_out = merge_heads(Z)[0] @ c_proj["weight"] + c_proj["bias"]  # [n_seq, n_embd]
print("all heads' patterns match:", np.allclose(all_patterns[0], cache["pattern", layer], atol=1e-5))
print("attention output matches:", np.allclose(attn_out, cache["attn_out", layer], atol=1e-4))

# %% [markdown]
# ## Every head of this layer
#
# Different heads learn different habits: some look at the previous token, some at the first
# token (a "resting" place when nothing is relevant), some at earlier copies of the current token.

# %%
fig, axes = plt.subplots(2, math.ceil(n_head / 2), figsize=(2 * math.ceil(n_head / 2), 4.2))
for head, ax in enumerate(axes.flat):
    if head < n_head:
        ax.imshow(cache["pattern", layer][head], cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"head {head}", fontsize=8)
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Exercise
#
# 1. Remove the causal mask (use `scores` instead of `scores + mask`) and compare the patterns.
#    Which tokens would "see the future"?
# 2. Multiply `scores` by 4 before the softmax (as if we had forgotten the $\sqrt{d_k}$ for a
#    bigger head). How does the maximum of each row change?
# 3. Find, in layer `model.config.n_layer - 1`, the head whose pattern puts the most weight on
#    the previous token (`np.diagonal(pattern, offset=-1).mean()`).
