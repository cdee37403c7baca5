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
# does, why we divide by $\sqrt{d_k}$ (measured, not just stated), and how "multi-head" is nothing
# but a reshape. At the end you write one attention head yourself and a check compares it with the
# model, head by head.
#
# Every claim below is an `assert`: if the notebook runs, what it says is true for the model that
# ran. The functions used are the model's own, from `npgpt/model.py`: open it beside this notebook.

# %%
import math

import numpy as np

import npgpt
import viz
from npgpt import inspection
from npgpt.model import layer_norm, linear, merge_heads, softmax, split_heads

model = npgpt.demo_model()  # gpt2 if you have it, else the bundled Shakespeare model
tok = model.tokenizer
text = "The cat sat on the mat because the cat was tired."
ids = tok.encode(text)
tokens = tok.decode_tokens(ids)
logits, cache = model.run_with_cache(ids)  # the reference forward pass, every activation recorded
c = model.config
n_seq, n_head, d_head = len(ids), c.n_head, c.d_head
assert d_head * n_head == c.n_embd
print(f"{n_seq} tokens: {tokens}")
print(f"n_embd={c.n_embd}, n_head={n_head}, d_head={d_head}")

# %% [markdown]
# ## The input: the residual stream after layer norm
#
# Block 0's attention reads `ln1`, the residual stream after the block's first layer norm: one
# vector of `n_embd` numbers per token (notebook 04 takes the layer norm apart).

# %%
layer = 0
block = model.params["h"][layer]
x = cache["ln1", layer]  # [n_seq, n_embd]
assert np.allclose(layer_norm(cache["resid_pre", layer], **block["ln_1"], eps=c.layer_norm_eps), x, atol=1e-5)
print("x:", x.shape)

# %% [markdown]
# ## Queries, keys and values
#
# One matrix multiply produces all three for every head: `c_attn` maps `n_embd -> 3 * n_embd`.
# Each token gets a **query** (what am I looking for?), a **key** (what do I contain?) and a
# **value** (what do I pass on if someone attends to me?).

# %%
c_attn = block["attn"]["c_attn"]
qkv = x @ c_attn["weight"] + c_attn["bias"]  # [n_seq, n_embd] @ [n_embd, 3*n_embd] -> [n_seq, 3*n_embd]
q, k, v = np.split(qkv, 3, axis=-1)  # each [n_seq, n_embd]: the first third is Q, then K, then V
assert np.allclose(qkv, linear(x, **c_attn))  # npgpt's `linear` is exactly this line
assert q.shape == k.shape == v.shape == (n_seq, c.n_embd)
print("q, k, v:", q.shape, k.shape, v.shape)

# %% [markdown]
# Pick one head. Head `h` owns the slice `h*d_head : (h+1)*d_head` of each vector; the model's
# cache holds the same slices, already cut per head (`[n_head, n_seq, d_head]`).

# %%
h = 1
q_h = q[:, h * d_head : (h + 1) * d_head]  # [n_seq, d_head]
k_h = k[:, h * d_head : (h + 1) * d_head]
v_h = v[:, h * d_head : (h + 1) * d_head]
assert np.allclose(q_h, cache["q", layer][h], atol=1e-5)
assert np.allclose(k_h, cache["k", layer][h], atol=1e-5)
assert np.allclose(v_h, cache["v", layer][h], atol=1e-5)
print(f"head {h}: q_h, k_h, v_h are {q_h.shape}, equal to the model's cached ones")

# %% [markdown]
# ## Scores: every query against every key
#
# `scores[i, j]` says how well token `i`'s query matches token `j`'s key: a dot product,
# divided by $\sqrt{d_k}$ (here $d_k$ is `d_head`).

# %%
scores = q_h @ k_h.T / math.sqrt(d_head)  # [n_seq, d_head] @ [d_head, n_seq] -> [n_seq, n_seq]
print(np.array2string(scores[:5, :5], precision=2))

# %% [markdown]
# ## The causal mask
#
# GPT-2 predicts the next token, so position `i` must not see positions after `i`: those scores
# become $-\infty$, and $e^{-\infty} = 0$ after the softmax. That is all the mask $M$ does.
# (The model's cached `scores` already include the mask: `-inf` above the diagonal.)

# %%
mask = np.triu(np.full((n_seq, n_seq), -np.inf, dtype=np.float32), k=1)  # -inf above the diagonal
assert np.allclose(scores + mask, cache["scores", layer][h], atol=1e-4)  # -inf == -inf counts as equal
pattern = softmax(scores + mask)  # softmax over the last axis: over the keys, for each query
assert np.allclose(pattern.sum(-1), 1, atol=1e-5)  # each row is a probability distribution
assert np.all(np.triu(pattern, k=1) == 0)  # exactly zero weight on the future
assert np.allclose(pattern, cache["pattern", layer][h], atol=1e-5)
print("pattern: rows sum to 1, zero above the diagonal, equal to the model's")

# %%
viz.attention_heatmap(pattern, tokens, head=h, layer=layer)

# %% [markdown]
# The first row is `[1, 0, 0, ...]` in every head of every layer: the first token can only look
# at itself. The softmax of a single finite score is 1.

# %%
for l in range(c.n_layer):
    first_rows = cache["pattern", l][:, 0, :]  # [n_head, n_kv]
    assert np.allclose(first_rows[:, 0], 1) and np.all(first_rows[:, 1:] == 0)
print(f"row 0 is [1, 0, ..., 0] in all {c.n_layer * n_head} heads")

# %% [markdown]
# ## Why divide by $\sqrt{d_k}$?
#
# If the entries of $q$ and $k$ have variance 1, their dot product over $d_k$ dimensions has
# variance $d_k$. Large scores push the softmax towards a one-hot vector, and the softmax's
# gradient (its Jacobian $\mathrm{diag}(p) - pp^\top$) goes to zero for a one-hot $p$, which
# stalls training. Dividing by $\sqrt{d_k}$ brings the variance back to 1, whatever $d_k$.
#
# One random query against a handful of keys is too noisy to show this (one draw can go
# either way), so we average over 1,000 random queries, each against its own 16 random keys,
# for growing $d_k$: the mean largest probability of a row, and the mean size (Frobenius norm)
# of the softmax's Jacobian.

# %%
rng = np.random.default_rng(0)
n_rows, n_keys = 1000, 16
dims = [4, 16, 64, 256, 1024]
eye = np.eye(n_keys, dtype=np.float32)
stats = {"unscaled": {"max_p": [], "grad": []}, "scaled": {"max_p": [], "grad": []}}
for d in dims:
    qs = rng.standard_normal((n_rows, 1, d), dtype=np.float32)
    ks = rng.standard_normal((n_rows, n_keys, d), dtype=np.float32)
    dots = (qs * ks).sum(-1)  # [n_rows, n_keys]: 1,000 rows of scores
    assert abs(dots.var() / d - 1) < 0.1  # var(q.k) is d_k ...
    assert abs((dots / math.sqrt(d)).var() - 1) < 0.1  # ... and var(q.k / sqrt(d_k)) is 1
    for name, divisor in (("unscaled", 1.0), ("scaled", math.sqrt(d))):
        p = softmax(dots / divisor)  # [n_rows, n_keys]
        jacobian = p[:, :, None] * (eye - p[:, None, :])  # [n_rows, n_keys, n_keys]: d softmax / d scores
        stats[name]["max_p"].append(float(p.max(-1).mean()))
        stats[name]["grad"].append(float(np.sqrt((jacobian**2).sum((-1, -2))).mean()))
for i, d in enumerate(dims):
    print(f"d_k={d:5d}: mean max prob unscaled {stats['unscaled']['max_p'][i]:.3f}, scaled {stats['scaled']['max_p'][i]:.3f}"
          f"   mean |Jacobian| unscaled {stats['unscaled']['grad'][i]:.3f}, scaled {stats['scaled']['grad'][i]:.3f}")

unscaled_max, unscaled_grad = np.array(stats["unscaled"]["max_p"]), np.array(stats["unscaled"]["grad"])
assert np.all(np.diff(unscaled_max) > 0)  # unscaled: the softmax gets peakier with every step up in d_k ...
assert np.all(np.diff(unscaled_grad) < 0)  # ... and its gradient smaller
assert np.ptp(stats["scaled"]["max_p"]) < 0.03 and np.ptp(stats["scaled"]["grad"]) < 0.03  # scaled: the same at every d_k
assert unscaled_grad[-1] < 0.3 * stats["scaled"]["grad"][-1]  # at d_k = 1024, unscaled gradients are a fraction

# %%
fig = viz.Figure(figsize=(8, 3))
for i, key in enumerate(("max_p", "grad")):
    ax = fig.add_subplot(1, 2, i + 1)
    for name, style in (("unscaled", "o-"), ("scaled", "s--")):
        ax.plot(dims, stats[name][key], style, label=f"softmax(q.k{' / sqrt(d_k)' if name == 'scaled' else ''})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("d_k")
    ax.set_title("mean largest probability in a row" if key == "max_p" else "mean size of the softmax's gradient", fontsize=9)
    ax.grid(alpha=0.3)
fig.axes[0].legend(fontsize=8)
fig.tight_layout()
fig

# %% [markdown]
# ## The output: a weighted average of values
#
# Each position's output is the average of the value vectors it attends to, weighted by its row
# of the pattern.

# %%
z_h = pattern @ v_h  # [n_seq, n_seq] @ [n_seq, d_head] -> [n_seq, d_head]
assert np.allclose(z_h, cache["z", layer][h], atol=1e-5)
assert np.allclose(z_h[0], v_h[0], atol=1e-6)  # the first token's output is its own value
print("z_h:", z_h.shape, "equal to the model's z for this head")

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
c_proj = block["attn"]["c_proj"]
attn_out = merge_heads(Z)[0] @ c_proj["weight"] + c_proj["bias"]  # [n_seq, n_embd]
assert np.allclose(all_patterns[0, h], pattern, atol=1e-6)  # head h of the batch is the one we did by hand
assert np.allclose(all_patterns[0], cache["pattern", layer], atol=1e-5)
assert np.allclose(attn_out, cache["attn_out", layer], atol=1e-4)
print(f"all {n_head} heads' patterns and the attention output equal the model's")

# %% [markdown]
# ## Every head of every layer
#
# Heads do not all attend alike. Two simple habits can be measured on any text:
# the **previous-token score** (mean weight from token `i` to token `i-1`) and the
# **first-token score** (mean weight on token 0, a "resting" place when nothing else is
# relevant). With gpt2 some heads score near 1 on one of them; on a small model and a short text
# the scores are milder. What this model shows is printed under the picture, computed, not typed.

# %%
viz.attention_grid(cache, tokens)

# %%
scores_per_head = inspection.head_scores(cache)  # each [n_layer, n_head]
prev_l, prev_h = inspection.best_head(scores_per_head.previous_token)
first_l, first_h = inspection.best_head(scores_per_head.first_token)
print("previous-token score, layers down, heads across:")
print(np.array2string(scores_per_head.previous_token, precision=2))
print(f"most previous-token head: L{prev_l}H{prev_h} ({scores_per_head.previous_token[prev_l, prev_h]:.2f});"
      f" most first-token head: L{first_l}H{first_h} ({scores_per_head.first_token[first_l, first_h]:.2f})")
assert max(np.ptp(scores_per_head.previous_token), np.ptp(scores_per_head.first_token)) > 0.05  # heads differ

# %%
viz.attention_heatmap(cache["pattern", prev_l], tokens, head=prev_h, layer=prev_l,
                      title=f"the most previous-token head, L{prev_l}H{prev_h}")

# %% [markdown]
# ## Exercise: write one attention head
#
# Write `my_head(x, c_attn, head, n_head)` that returns `(pattern, z)` for one head:
#
# 1. `q, k, v` from `x @ c_attn["weight"] + c_attn["bias"]`, split in three along the last axis;
# 2. the head's slices `head*d_head : (head+1)*d_head` of each;
# 3. the scaled scores `q_h @ k_h.T / sqrt(d_head)`, plus the causal mask;
# 4. the softmax over the keys (each row sums to 1): that is `pattern`, `[n_seq, n_seq]`;
# 5. the weighted sum of values `pattern @ v_h`: that is `z`, `[n_seq, d_head]`.
#
# `x` is a layer's `ln1` (`[n_seq, n_embd]`), `c_attn` is `model.params["h"][l]["attn"]["c_attn"]`.
# Use NumPy only (you may use `softmax` from `npgpt.model`). `check_head` runs your head on every
# head of every layer and compares it with the model's cached `pattern` and `z`; when they differ it
# tells you what looks wrong (the mask, the scale, the softmax's axis, the slice, ...).
# A solution is in `notebooks/solutions/03_self_attention.py`.

# %%
def check_head(my_head, model=model, cache=cache):
    """Run ``my_head`` on every head of every layer; compare with the cache. True when right."""
    c = model.config
    d_head = c.d_head
    n_seq = cache["ln1", 0].shape[0]
    mask = np.triu(np.full((n_seq, n_seq), -np.inf, dtype=np.float32), k=1)

    def close(a, b):
        return a.shape == b.shape and np.allclose(a, b, rtol=1e-4, atol=1e-5)

    for l in range(c.n_layer):
        x, c_attn = cache["ln1", l], model.params["h"][l]["attn"]["c_attn"]
        q, k, v = np.split(x @ c_attn["weight"] + c_attn["bias"], 3, axis=-1)  # the reference, to diagnose
        for h in range(c.n_head):
            where = f"layer {l}, head {h}"
            try:
                got = my_head(x.copy(), c_attn, h, c.n_head)
            except NotImplementedError:
                print("not done yet: fill in my_head, then run this cell again")
                return False
            assert isinstance(got, tuple) and len(got) == 2, "return two arrays: (pattern, z)"
            pattern, z = (np.asarray(a, dtype=np.float64) for a in got)
            want_p, want_z = cache["pattern", l][h], cache["z", l][h]
            assert pattern.shape == want_p.shape, \
                f"{where}: pattern has shape {pattern.shape}; expected {want_p.shape} = [n_seq, n_seq] (queries, keys)"
            assert z.shape == want_z.shape, f"{where}: z has shape {z.shape}; expected {want_z.shape} = [n_seq, d_head]"
            assert np.all(np.abs(np.triu(pattern, k=1)) < 1e-6), \
                f"{where}: tokens attend to later tokens (the pattern is not 0 above the diagonal): forgot the " \
                "causal mask? Add -inf above the diagonal to the scores, before the softmax"
            if not np.allclose(pattern.sum(-1), 1, atol=1e-4):
                assert not np.allclose(pattern.sum(-2), 1, atol=1e-4), \
                    f"{where}: softmax over the wrong axis: your columns sum to 1, but each row (one query, " \
                    "over the keys) must: softmax(scores, axis=-1)"
                raise AssertionError(f"{where}: the rows of pattern sum to {np.round(pattern.sum(-1)[:4], 3)}..., not 1: "
                                     "add the mask to the scores and then take the softmax (masking after the "
                                     "softmax leaves rows that do not sum to 1)")
            if not close(pattern, want_p):
                q_h, k_h = q[:, h * d_head:(h + 1) * d_head], k[:, h * d_head:(h + 1) * d_head]
                for divisor, what in ((1.0, "forgot to divide the scores by sqrt(d_head)"),
                                      (d_head, f"divided the scores by d_head; divide by sqrt(d_head) = {math.sqrt(d_head):g}")):
                    assert not close(pattern, softmax(q_h @ k_h.T / divisor + mask)), f"{where}: you {what}"
                others = [g for g in range(c.n_head) if g != h and close(pattern, cache["pattern", l][g])]
                assert not others, f"{where}: that is head {others[0]}'s pattern: head h owns the columns " \
                                   "h*d_head:(h+1)*d_head of each of q, k and v"
                raise AssertionError(f"{where}: pattern is off by up to {np.abs(pattern - want_p).max():.3g}: scores = "
                                     "q_h @ k_h.T / sqrt(d_head) + mask, with q, k, v = the three thirds of x @ W + b")
            if not close(z, want_z):
                k_h = k[:, h * d_head:(h + 1) * d_head]
                assert not close(z, pattern @ k_h), f"{where}: z weighs the keys; it is the weighted sum of the values, pattern @ v_h"
                raise AssertionError(f"{where}: pattern is right but z is off by up to {np.abs(z - want_z).max():.3g}: "
                                     "z = pattern @ v_h, with v_h the head's slice of the last third of x @ W + b")
    print(f"correct: your head reproduces the pattern and output of all {c.n_layer * c.n_head} heads "
          f"({c.n_layer} layers x {c.n_head} heads)")
    return True


# %%
def my_head(x, c_attn, head, n_head):
    raise NotImplementedError  # your code: ... return pattern, z


check_head(my_head);
