# %% [markdown]
# # 5. The whole forward pass, and the KV cache
#
# **What this notebook teaches.** We assemble GPT-2 from the functions of notebooks 1-4 —
# tokenize, embed, add positions, run the blocks, final layer norm, LM head — and check that it
# gives exactly `model.logits`. Then we make generation fast with a **KV cache** and measure why
# decoding one token costs $O(n)$ with it and $O(n^2)$ without.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

import npgpt
from npgpt.model import embed, layer_norm, pos_embed, softmax, transformer_block

model = npgpt.demo_model()
tok, cfg, params = model.tokenizer, model.config, model.params

# %% [markdown]
# ## Text to logits, step by step

# %%
text = "First Citizen:\nBefore we proceed any further, hear me"
ids = np.array(tok.encode(text))[None]  # [batch=1, n_seq]
n_seq = ids.shape[1]

x = embed(ids, params["wte"]["weight"])  # [1, n_seq, n_embd]: one row of wte per token
x = x + pos_embed(np.arange(n_seq)[None], params["wpe"]["weight"])  # + one row of wpe per position
mask = np.triu(np.full((n_seq, n_seq), -np.inf, dtype=np.float32), k=1)[None, None]  # causal
for layer, block in enumerate(params["h"]):
    x = transformer_block(x, **block, n_head=cfg.n_head, eps=cfg.layer_norm_eps, mask=mask)
x = layer_norm(x, **params["ln_f"], eps=cfg.layer_norm_eps)
logits = x @ params["wte"]["weight"].T  # [1, n_seq, n_vocab]: the LM head reuses wte ("tied")

reference = model.logits(ids)
print("logits:", logits.shape, " max |ours - model.logits| =", float(np.abs(logits - reference).max()))

# %% [markdown]
# Logits exist for **every** position: position `i` predicts token `i+1`. The last one predicts
# what comes after the prompt.

# %%
probs = softmax(logits[0, -1])
for t in np.argsort(probs)[::-1][:5]:
    print(f"{probs[t]:.3f}  {tok.decode([int(t)])!r}")

# %% [markdown]
# ## Generating without a cache: $O(n^2)$ per token
#
# The naive loop feeds the whole sequence again for every new token: step $n$ recomputes
# keys and values for all $n$ earlier tokens, and the attention scores are $n \times n$.
#
# ## With a KV cache: $O(n)$ per token
#
# Keys and values of earlier tokens never change (the mask stops them from seeing later
# tokens). So we keep them: each step feeds only the newest token, computes its query, key and
# value, and attends over the cached keys. `model.new_kv_cache()` holds them, and
# `model.logits(..., kv_cache=kv)` appends to it.

# %%
def greedy(n_tokens: int, use_cache: bool) -> tuple[float, list[int]]:
    """Generate n_tokens greedily from the first prompt token; (seconds per token, ids)."""
    seq = [int(ids[0, 0])]
    kv = model.new_kv_cache(capacity=n_tokens + 1) if use_cache else None
    start = time.perf_counter()
    for _ in range(n_tokens):
        if use_cache:
            new = seq if kv.length == 0 else seq[-1:]  # only what the cache has not seen
            step = model.logits(new, kv_cache=kv)[-1]
        else:
            step = model.logits(seq)[-1]  # the whole sequence, every time
        seq.append(int(np.argmax(step)))
    return (time.perf_counter() - start) / n_tokens, seq

greedy(8, True), greedy(8, False)  # warm-up
lengths = [32, 64, 128, 240]
no_cache = [min(greedy(n, False)[0] for _ in range(3)) * 1e3 for n in lengths]  # best of 3: less noise
with_cache = [min(greedy(n, True)[0] for _ in range(3)) * 1e3 for n in lengths]
for n, a, b in zip(lengths, no_cache, with_cache):
    print(f"{n:4d} tokens: {a:7.1f} ms/token without cache, {b:6.1f} ms/token with cache")

# %%
plt.figure(figsize=(5, 3.2))
plt.plot(lengths, no_cache, "o-", label="no cache: whole sequence each step")
plt.plot(lengths, with_cache, "o-", label="KV cache: one token each step")
plt.xlabel("tokens generated"); plt.ylabel("ms per token (average)"); plt.legend(); plt.grid(alpha=0.3)
plt.show()

# %% [markdown]
# Both loops produce the same tokens: the cache changes the cost, not the numbers.

# %%
_, greedy_plain = greedy(40, False)
_, greedy_cached = greedy(40, True)
print("same tokens:", greedy_plain == greedy_cached)
print(repr(tok.decode(greedy_cached)))

# %% [markdown]
# The cache's size: two tensors (K and V) per layer, `n_head x n_ctx x d_head` floats each.

# %%
kv = model.new_kv_cache()
print(f"KV cache for {cfg.n_ctx} tokens: {(kv.keys.nbytes + kv.values.nbytes) / 1e6:.1f} MB "
      f"(model weights: {cfg.n_params() * 4 / 1e6:.0f} MB)")

# %% [markdown]
# ## Exercise
#
# 1. Feed the prompt to the cache in two halves (two `model.logits(..., kv_cache=kv)` calls) and
#    check that the last logits equal `model.logits(ids)[-1]`.
# 2. Why may the cache **not** be reused after changing a token in the middle of the prompt?
# 3. Estimate from the timings above how long 1000 tokens would take with and without the cache.
