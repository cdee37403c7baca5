# %% [markdown]
# # 2. Embeddings: token vectors and positions
#
# **What this notebook teaches.** The model's first step turns each token id into a vector of
# `n_embd` numbers by looking up a row of the **token embedding** matrix `wte`, and adds a row of
# the **positional embedding** matrix `wpe` for where the token stands. Both are learned. We look
# at what structure they have: which tokens have similar vectors, and what the position vectors
# look like.

# %%
import matplotlib.pyplot as plt
import numpy as np

import npgpt
from npgpt.model import embed, pos_embed

model = npgpt.demo_model()
tok = model.tokenizer
wte = model.params["wte"]["weight"]  # [n_vocab, n_embd]
wpe = model.params["wpe"]["weight"]  # [n_ctx, n_embd]
print("wte:", wte.shape, " wpe:", wpe.shape)

# %% [markdown]
# ## A lookup, nothing more
#
# Embedding a token is selecting a row. It is equivalent to multiplying a one-hot vector by
# `wte`, but much cheaper.

# %%
ids = np.array(tok.encode("O Romeo, Romeo"))[None]  # [1, n_seq]
x = embed(ids, wte)  # [1, n_seq, n_embd]
one_hot = np.eye(wte.shape[0], dtype=np.float32)[ids[0, 0]]
print("row lookup == one-hot @ wte:", np.allclose(x[0, 0], one_hot @ wte))
logits, cache = model.run_with_cache(ids[0])
print("equals the model's cached 'embed':", np.allclose(x[0], cache["embed"]))
print("and positions 0..n_seq-1 give 'pos_embed':", np.allclose(pos_embed(np.arange(ids.shape[1])[None], wpe)[0], cache["pos_embed"]))

# %% [markdown]
# Note that `" Romeo"` appears twice and gets the **same** token vector both times: only the
# positional embedding tells the two apart when they enter the first block.

# %% [markdown]
# ## Nearest neighbours
#
# Tokens used in similar contexts end up with similar vectors. Cosine similarity measures it.

# %%
unit = wte / np.linalg.norm(wte, axis=1, keepdims=True)

def neighbours(word: str, k: int = 6) -> list[str]:
    ids = tok.encode(word)
    if len(ids) != 1:
        return [f"({word!r} is {len(ids)} tokens)"]
    sims = unit @ unit[ids[0]]
    return [f"{tok.decode([int(i)])!r} {sims[i]:.2f}" for i in np.argsort(-sims)[1 : k + 1]]

for word in [" king", " love", " Rome", " night", " 7"]:
    print(f"{word!r:9} -> {', '.join(neighbours(word))}")

# %% [markdown]
# ## Positional embeddings
#
# GPT-2 learns one vector per position, 0 to `n_ctx - 1`. Plotted as an image (positions down,
# features across), trained models show smooth, wave-like structure: nearby positions get similar
# vectors. (A random model shows noise.)

# %%
n_show = min(256, wpe.shape[0])
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].imshow(wpe[:n_show].T, aspect="auto", cmap="RdBu", vmin=-0.1, vmax=0.1)
axes[0].set_xlabel("position"); axes[0].set_ylabel("feature"); axes[0].set_title("wpe, first positions")
for feature in np.argsort(-wpe[:n_show].std(0))[:4]:
    axes[1].plot(wpe[:n_show, feature], label=f"feature {feature}")
axes[1].set_xlabel("position"); axes[1].legend(fontsize=7); axes[1].set_title("the most varying features")
plt.tight_layout(); plt.show()

# %% [markdown]
# How similar is each position to every other? For a trained model the similarity falls off
# smoothly with distance: the model can tell "near" from "far".

# %%
p_unit = wpe[:n_show] / np.linalg.norm(wpe[:n_show], axis=1, keepdims=True)
plt.figure(figsize=(4.2, 3.6))
plt.imshow(p_unit @ p_unit.T, cmap="viridis")
plt.title("cosine similarity between positions"); plt.colorbar(); plt.show()

# %% [markdown]
# Principal components: the few directions along which the position vectors vary most. Trained
# GPT-2 draws a smooth curve (a helix) with them.

# %%
centered = wpe[:n_show] - wpe[:n_show].mean(0)
u, s, vt = np.linalg.svd(centered, full_matrices=False)
pcs = centered @ vt[:2].T  # [n_show, 2]
plt.figure(figsize=(4.2, 3.6))
plt.scatter(pcs[:, 0], pcs[:, 1], c=np.arange(n_show), cmap="plasma", s=8)
plt.colorbar(label="position"); plt.xlabel("PC 1"); plt.ylabel("PC 2")
plt.title(f"positions in their top 2 components ({100 * (s[:2]**2).sum() / (s**2).sum():.0f}% of variance)")
plt.show()

# %% [markdown]
# ## Exercise
#
# 1. Which token has the largest embedding norm? The smallest? (`np.linalg.norm(wte, axis=1)`)
# 2. Find the neighbours of `" Monday"`. Are the other weekdays among them?
# 3. The LM head reuses `wte` ("tied" weights): the logit of token `t` is the final vector
#    dotted with `wte[t]`. What does that imply for tokens with large embedding norms?
