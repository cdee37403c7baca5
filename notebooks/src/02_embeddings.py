# %% [markdown]
# # 2. Embeddings: token vectors and positions
#
# **What this notebook teaches.** The model's first step turns each token id into a vector of
# `n_embd` numbers by looking up a row of the **token embedding** matrix `wte`, and adds a row of
# the **positional embedding** matrix `wpe` for where the token stands. Both are learned. We look
# at what structure they have in the bundled Shakespeare model: which tokens have similar vectors,
# and what its position vectors really look like. Then the original Transformer's fixed
# **sinusoidal** encoding beside them, and a test of *why* positions are needed at all: without
# them, attention cannot tell one order of the tokens from another. Every statement about an
# output is checked by an `assert` computed from that output. At the end you build block 0's
# input yourself and `check_block0_input` compares it with the model's cache.

# %%
import numpy as np

import npgpt
import npgpt.model as M
import viz

model = npgpt.load("shakespeare")  # the bundled model: on disk, the same for every reader
print(model)
c = model.config
tok = model.tokenizer
wte = model.params["wte"]["weight"]  # [n_vocab, n_embd]
wpe = model.params["wpe"]["weight"]  # [n_ctx, n_embd]
assert wte.shape == (c.n_vocab, c.n_embd) and wpe.shape == (c.n_ctx, c.n_embd)
print("wte:", wte.shape, " wpe:", wpe.shape)

# %% [markdown]
# ## A lookup, nothing more
#
# Embedding a token is selecting a row. It is the same as multiplying a one-hot vector by `wte`,
# but much cheaper. Block 0 reads the sum of the token's row of `wte` and its position's row of
# `wpe`.

# %%
text = "O Romeo, Romeo, wherefore art thou Romeo?"
ids = np.array(tok.encode(text))  # [n_seq]
n_seq = len(ids)
x = M.embed(ids, wte)  # [n_seq, n_embd]
one_hot = np.eye(c.n_vocab, dtype=np.float32)[ids]  # [n_seq, n_vocab]
assert np.allclose(x, one_hot @ wte)  # a lookup is a one-hot matrix product

logits, cache = model.run_with_cache(ids)
assert np.array_equal(x, cache["embed"])
assert np.array_equal(M.pos_embed(np.arange(n_seq), wpe), cache["pos_embed"])  # rows 0 .. n_seq-1 of wpe
assert np.allclose(cache["resid_pre", 0], cache["embed"] + cache["pos_embed"])  # what block 0 reads
print(tok.decode_tokens(ids))

# %% [markdown]
# `" Romeo"` appears three times. Whatever pieces the tokenizer cuts it into, a repeated token gets
# the **same** token vector every time: only the positional embedding tells the copies apart when
# they enter the first block.

# %%
first, again = [i for i in range(n_seq) if ids[i] == ids[1]][:2]  # token 1 and its next occurrence
print(f"token {tok.decode([int(ids[1])])!r} at positions {first} and {again}")
assert np.array_equal(cache["embed"][first], cache["embed"][again])  # the same row of wte
assert not np.allclose(cache["resid_pre", 0][first], cache["resid_pre", 0][again])  # told apart by position

# %% [markdown]
# ## Nearest neighbours
#
# Tokens used in similar contexts end up with similar vectors. Cosine similarity measures it:
# below, each word's nearest tokens, and then a measurement over small groups of words that play
# the same part in a sentence (possessives, pronouns, ...): how many of the vocabulary's tokens are
# *less* similar to a word than its group-mates are. For a random model that share is about a half.

# %%
unit = wte / np.linalg.norm(wte, axis=1, keepdims=True)
similarity = unit @ unit.T  # [n_vocab, n_vocab] cosine similarities


def neighbours(word: str, k: int = 6) -> list[str]:
    word_ids = tok.encode(word)
    if len(word_ids) != 1:
        return [f"({word!r} is {len(word_ids)} tokens)"]
    sims = similarity[word_ids[0]]
    return [f"{tok.decode([int(i)])!r} {sims[i]:.2f}" for i in np.argsort(-sims)[1 : k + 1]]


for word in [" king", " love", " night", " my", " good"]:
    print(f"{word!r:9} -> {', '.join(neighbours(word))}")

# %%
GROUPS = {"possessives": [" my", " thy", " your", " his", " her", " our"],
          "pronouns": [" he", " she", " we", " they", " I", " you"],
          "royalty": [" king", " queen", " prince", " lord"],
          "praise": [" good", " fair", " noble", " great", " true"]}


def mate_percentiles(similarity, group_ids):
    """For each ordered pair (a, b) in a group: the share of all tokens less similar to a than b is."""
    return [(similarity[a] < similarity[a, b]).mean() for a in group_ids for b in group_ids if a != b]


random_wte = npgpt.random_model(c, seed=0).params["wte"]["weight"]
random_unit = random_wte / np.linalg.norm(random_wte, axis=1, keepdims=True)
for name, words in GROUPS.items():
    group_ids = [tok.encode(w) for w in words]
    assert all(len(i) == 1 for i in group_ids), f"{name}: every word must be one token"
    group_ids = [i[0] for i in group_ids]
    trained = mate_percentiles(similarity, group_ids)
    random = mate_percentiles(random_unit @ random_unit.T, group_ids)
    print(f"{name:12} group-mates beat {100 * np.mean(trained):4.1f}% of the vocabulary on average "
          f"(worst pair {100 * np.min(trained):.1f}%); random weights: {100 * np.mean(random):.1f}%")
    assert min(trained) > 0.9  # every group-mate is among the 10% most similar tokens
    assert 0.3 < np.mean(random) < 0.7  # about a half: no such structure before training

# %% [markdown]
# ## Learned positional embeddings: what this model's `wpe` looks like
#
# GPT-2 learns one vector per position, 0 to `n_ctx - 1`, from data: nothing tells it to be
# smooth or periodic. (The bundled model's `wpe` *started* from the sinusoids of the next section,
# `npgpt train --position-init sinusoidal`, see `weights/README.md`, and training moved it far from
# them: the distance is measured below.) Below, the matrix (positions down, features across), its top principal
# components as functions of position, and the positions in the plane of the first two
# components.

# %%
viz.positional_embedding_plot(wpe, title=f"learned wpe of the bundled model ({c.n_ctx} positions)")

# %% [markdown]
# What the picture shows, measured (the next cell asserts each):
#
# - **A ramp first.** One direction, the first principal component, holds the largest share of
#   the variance, and along it the positions are lined up in order: PC 1 changes almost
#   monotonically with position (correlation with the position near ±1). The next components are
#   smaller, and their largest values are at the very first positions.
# - **Learned, not written down**: the table is far from where it started (more than its own size
#   away from the scaled sinusoids it began as).
# - **Position 0 stands apart**: its vector has the largest norm of all positions. (A token at
#   position 0 sees nothing but itself.)
# - **Near means similar.** Adjacent positions have similar vectors; the similarity falls as the
#   distance grows, and positions half the context apart point away from each other.

# %%
def pca(table):
    """Each row's coordinates on the principal components, and each component's share of the variance."""
    centered = table - table.mean(0)
    u, s, _ = np.linalg.svd(centered, full_matrices=False)
    return u * s, s**2 / (s**2).sum()


def similarity_by_distance(table):
    """The mean cosine similarity of rows p and p + d, for each distance d = 0 .. n - 1."""
    rows = table / np.linalg.norm(table, axis=1, keepdims=True)
    sims = rows @ rows.T
    return np.array([np.diag(sims, d).mean() for d in range(len(table))])


pcs, share = pca(wpe)
ramp = abs(np.corrcoef(pcs[:, 0], np.arange(c.n_ctx))[0, 1])
norms = np.linalg.norm(wpe, axis=1)
by_distance = similarity_by_distance(wpe)
half = c.n_ctx // 2
print(f"PC 1 holds {100 * share[0]:.0f}% of the variance (PC 2: {100 * share[1]:.0f}%); |corr(PC 1, position)| = {ramp:.3f}")
print(f"norm of position 0: {norms[0]:.2f}; median norm: {np.median(norms):.2f}")
print("mean cosine similarity at distance 1, n_ctx/8, n_ctx/4, n_ctx/2:",
      np.round(by_distance[[1, c.n_ctx // 8, c.n_ctx // 4, half]], 2))
start = 0.02 * np.sqrt(2) * M.sinusoidal_positions(c.n_ctx, c.n_embd)  # where --position-init sinusoidal starts
moved = np.linalg.norm(wpe - start) / np.linalg.norm(start)
print(f"distance from the sinusoidal start: {moved:.1f} times the start's own size")
assert share[0] == share.max() and ramp > 0.9  # PC 1, the largest, is a ramp
assert moved > 1  # training moved it far from its start
assert np.all(np.abs(pcs[:, 1:3]).argmax(0) < 8)  # PC 2 and PC 3 peak at the first positions
assert norms.argmax() == 0  # position 0 stands apart
assert by_distance[1] > by_distance[c.n_ctx // 8] > by_distance[c.n_ctx // 4] > by_distance[half]  # falls with distance
assert by_distance[1] > 0.5 and by_distance[half] < 0  # near: similar; half the context apart: opposed

# %% [markdown]
# ## The original Transformer's sinusoidal encoding
#
# "Attention Is All You Need" did not learn positions; it wrote them down. Position $p$ gets, in
# feature pair $i = 0, 1, \ldots, d/2 - 1$, one sine and one cosine of the same frequency
# $\omega_i = 10000^{-2i/d}$:
#
# $$PE[p, 2i] = \sin(p\,\omega_i), \qquad PE[p, 2i+1] = \cos(p\,\omega_i).$$
#
# (This is the paper's convention, sines in the even features and cosines in the odd ones,
# interleaved; some code puts all the sines first and the cosines after, which is the same
# encoding with the features reordered.) The first pair turns once every $2\pi \approx 6.3$
# positions, the last once every $2\pi \cdot 10000^{(d-2)/d}$: fast waves tell neighbours apart,
# slow ones tell the beginning from the end. Nothing is learned, and it is defined for any
# position.

# %%
def sinusoidal(n_pos: int, d: int) -> np.ndarray:
    """The original Transformer's positional encoding, [n_pos, d]: sin in even features, cos in odd."""
    positions = np.arange(n_pos)[:, None]  # [n_pos, 1]
    omega = 10000.0 ** (-np.arange(0, d, 2) / d)  # [d/2]: from 1 down to about 1/10000
    table = np.zeros((n_pos, d))
    table[:, 0::2] = np.sin(positions * omega)
    table[:, 1::2] = np.cos(positions * omega)
    return table


pe = sinusoidal(c.n_ctx, c.n_embd)
assert pe.shape == wpe.shape and np.abs(pe).max() <= 1
assert np.allclose(pe[0, 0::2], 0) and np.allclose(pe[0, 1::2], 1)  # position 0: sin 0 = 0, cos 0 = 1
assert np.allclose(np.linalg.norm(pe, axis=1), np.sqrt(c.n_embd / 2))  # every position has the same norm
assert np.allclose(sinusoidal(2 * c.n_ctx, c.n_embd)[: c.n_ctx], pe)  # longer texts: the same rows, more of them
gram = pe @ pe.T  # [n_pos, n_pos] dot products of positions
for d in range(0, c.n_ctx, 7):
    assert np.allclose(np.diag(gram, d), gram[0, d])  # PE[p] . PE[p + d] depends on the distance d only
viz.positional_embedding_plot(pe, title=f"sinusoidal encoding, the same shape ({c.n_ctx} x {c.n_embd})")

# %% [markdown]
# The sinusoidal table *is* smooth and wave-like (left panel above), and the dot product of two
# positions depends on their distance only, the same at the start and at the end, which is what
# the paper wanted: attention scores are dot products, so a head can find "the token 3 back"
# anywhere. Side by side, the similarity of every pair of positions, and its mean over each
# distance:

# %%
fig = viz.Figure(figsize=(11, 3.4))
for n, (name, table) in enumerate([("learned wpe", wpe), ("sinusoidal", pe)]):
    rows = table / np.linalg.norm(table, axis=1, keepdims=True)
    ax = fig.add_subplot(1, 3, n + 1)
    image = ax.imshow(rows @ rows.T, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_title(f"{name}: cosine similarity", fontsize=9)
    ax.set_xlabel("position", fontsize=8)
    ax.set_ylabel("position", fontsize=8)
fig.colorbar(image, ax=ax, fraction=0.046)
ax = fig.add_subplot(1, 3, 3)
ax.plot(by_distance, label="learned wpe")
ax.plot(similarity_by_distance(pe), label="sinusoidal")
ax.axhline(0, color="grey", lw=0.5)
ax.set_xlabel("distance between positions", fontsize=8)
ax.set_title("mean similarity by distance", fontsize=9)
ax.legend(fontsize=8)
fig.tight_layout()
pe_by_distance = similarity_by_distance(pe)
assert pe_by_distance[1] > pe_by_distance[half] > 0 and by_distance[1] > by_distance[half]  # near beats far, both ways
fig

# %% [markdown]
# Both make near positions more similar than far ones (asserted above). The sinusoids do it by
# construction, with many frequencies, and never turn negative on average; the bundled model,
# trained on windows of `n_ctx` tokens of Shakespeare, found that a ramp along one direction plus a
# marked start is enough, and its far positions point away from each other.
#
# **With gpt2's weights** (`npgpt download gpt2`, 1,024 positions learned on WebText), the next
# cell draws its `wpe` too; published analyses of it find smooth, wave-like principal components
# (a helix), much closer to the sinusoids. Without them the cell says so and draws nothing.

# %%
if npgpt.available_locally("gpt2"):
    from IPython.display import display

    gpt2_wpe = npgpt.load("gpt2").params["wpe"]["weight"]
    gpt2_by_distance = similarity_by_distance(gpt2_wpe)
    print("gpt2 wpe", gpt2_wpe.shape, "mean similarity at distance 1, 64, 512:", np.round(gpt2_by_distance[[1, 64, 512]], 2))
    assert gpt2_by_distance[1] > gpt2_by_distance[512]  # near positions are more alike there too
    display(viz.positional_embedding_plot(gpt2_wpe, title="learned wpe of gpt2 (1024 positions)"))
else:
    print("gpt2 is not on this machine: `npgpt download gpt2` fetches it (about 500 MB), then run this cell again")

# %% [markdown]
# ## Without positions, attention is blind to order
#
# Why add positions at all? Because self-attention treats its input as a *set*. Each output is a
# weighted sum over all tokens, with weights from dot products; the MLP and the layer norms work
# on each position alone. Shuffle the tokens and every output is shuffled the same way, and no
# more. We run the model's own blocks by hand (`npgpt.model`'s functions, the model's weights),
# with every token seeing every token as in the article's picture of self-attention, and compare
# "shuffle, then run" with "run, then shuffle": with the positional embeddings zeroed they agree;
# with them they do not.

# %%
def run_blocks(ids, wpe, causal: bool) -> np.ndarray:
    """The model's stack run by hand on one sequence: the final vectors after ln_f, [n_seq, n_embd]."""
    n = len(ids)
    x = M.embed(ids[None], wte) + M.pos_embed(np.arange(n)[None], wpe)  # [1, n_seq, n_embd]
    mask = M.causal_mask(np.ones((1, n), dtype=bool), n) if causal else np.zeros((1, 1, n, n), np.float32)
    for block in model.params["h"]:
        x = M.transformer_block(x, **block, n_head=c.n_head, eps=c.layer_norm_eps, mask=mask)
    return M.layer_norm(x, **model.params["ln_f"], eps=c.layer_norm_eps)[0]


assert np.allclose(run_blocks(ids, wpe, causal=True), cache["ln_final"], atol=1e-4)  # by hand = the model
shuffle = np.random.default_rng(0).permutation(n_seq)
assert not np.array_equal(shuffle, np.arange(n_seq))
no_positions = np.zeros_like(wpe)
for name, table in [("positions zeroed", no_positions), ("with positions", wpe)]:
    run_then_shuffle = run_blocks(ids, table, causal=False)[shuffle]
    shuffle_then_run = run_blocks(ids[shuffle], table, causal=False)
    gap = np.abs(run_then_shuffle - shuffle_then_run).max()
    print(f"{name:17} largest difference between 'run, then shuffle' and 'shuffle, then run': {gap:.2g}")
    if table is no_positions:
        assert np.allclose(run_then_shuffle, shuffle_then_run, atol=1e-4)  # order is invisible
    else:
        assert not np.allclose(run_then_shuffle, shuffle_then_run, atol=1e-2)  # positions make order visible

# %% [markdown]
# GPT-2 itself adds one more thing that knows the order: its **causal mask** (a token sees only
# itself and the tokens before it). Zero the positional embeddings in the real model with a hook
# (`hooks={"pos_embed": np.zeros_like}` replaces that activation during the forward pass) and look
# at the last token, which sees all the others. In block 0 it sees them as a set: put the tokens
# before it in another order and its block-0 output does not change. But the tokens before it did
# not see the same things (each sees only its own prefix), so from block 1 on the order leaks in
# through them, and the prediction changes. A causal model can learn some order without positions;
# positional embeddings make it direct.

# %%
zero_positions = {"pos_embed": np.zeros_like}
reordered = np.concatenate([ids[:-1][shuffle[shuffle < n_seq - 1]], ids[-1:]])  # the same last token
assert sorted(reordered) == sorted(ids) and reordered[-1] == ids[-1] and not np.array_equal(reordered, ids)
logits_a, cache_a = model.run_with_cache(ids, hooks=zero_positions)
logits_b, cache_b = model.run_with_cache(reordered, hooks=zero_positions)
assert not cache_a["pos_embed"].any()  # the hook zeroed them
block0_gap = np.abs(cache_a["resid_post", 0][-1] - cache_b["resid_post", 0][-1]).max()
logit_gap = np.abs(logits_a[-1] - logits_b[-1]).max()
print(f"last token, positions zeroed: block-0 output moves by {block0_gap:.2g}, its logits by {logit_gap:.2g}")
assert np.allclose(cache_a["resid_post", 0][-1], cache_b["resid_post", 0][-1], atol=1e-4)  # a set in block 0
assert not np.allclose(logits_a[-1], logits_b[-1], atol=1e-2)  # order leaks in through the mask, later

# %% [markdown]
# ## Exercise: what block 0 reads
#
# Write `my_block0_input(ids, wte, wpe, start=0)` with NumPy indexing alone (not `M.embed` or
# `M.pos_embed`): `ids` is an integer array `[batch, n_seq]`; return `[batch, n_seq, n_embd]`, the
# token vectors plus the position vectors. `start` is the position of the first token: 0 for a
# whole text, more when the tokens come after a prompt whose keys and values are already in a KV
# cache (how generation feeds one new token at a time, notebook 05).
#
# `check_block0_input` runs the model on a sentence, on a batch of two, and on tokens that
# follow a prompt in a KV cache, and compares your answer with the model's cached
# `blocks.0.resid_pre`. (A solution is in `notebooks/solutions/02_embeddings.py`.)

# %%
def check_block0_input(my_block0_input, model=model):
    """Compare ``my_block0_input`` with the model's ``resid_pre`` of block 0 in three settings. True when right."""
    wte, wpe = model.params["wte"]["weight"], model.params["wpe"]["weight"]
    all_ids = np.array(model.tokenizer.encode("Now is the winter of our discontent made glorious summer by this sun of York"))
    half = len(all_ids) // 2
    kv = model.new_kv_cache()
    model.logits(all_ids[:half], kv_cache=kv)  # the prompt's keys and values, positions 0 .. half-1
    _, one = model.run_with_cache(all_ids)
    _, two = model.run_with_cache(np.stack([all_ids[:half], all_ids[half: 2 * half]]))
    _, after = model.run_with_cache(all_ids[half:], kv_cache=kv)  # positions half, half+1, ...
    cases = [("one sentence", all_ids[None], 0, one["resid_pre", 0][None]),
             ("a batch of two", np.stack([all_ids[:half], all_ids[half: 2 * half]]), 0, two["resid_pre", 0]),
             (f"tokens after a {half}-token prompt", all_ids[half:][None], half, after["resid_pre", 0][None])]
    for name, ids, start, expected in cases:
        try:
            got = my_block0_input(ids.copy(), wte, wpe, start=start)
        except NotImplementedError:
            print("not done yet: fill in my_block0_input, then run this cell again")
            return False
        except IndexError as e:
            raise AssertionError(f"{name}: IndexError ({e}); wpe has {len(wpe)} rows, one per position 0 .. n_ctx-1, "
                                 f"while token ids go up to n_vocab-1: is wpe indexed by position, not by token id?") from e
        got = np.asarray(got)
        n_seq = ids.shape[1]
        where = f"{name} (ids {ids.shape}, start={start})"
        assert got.shape == expected.shape, (f"{where}: you returned shape {got.shape}; expected {expected.shape} = "
                                             f"[batch, n_seq, n_embd]: one row of wte per token id (wte[ids]) plus one row of wpe per position")
        positions = wpe[start: start + n_seq]
        assert not np.allclose(got, wte[ids], atol=1e-5), f"{where}: only the token vectors; add the position vectors, wpe[positions]"
        assert not np.allclose(got, np.broadcast_to(positions, got.shape), atol=1e-5), \
            f"{where}: only the position vectors; add the token vectors, wte[ids]"
        assert ids.max() >= len(wpe) or not np.allclose(got, wte[ids] + wpe[ids], atol=1e-5), \
            f"{where}: you looked wpe up by token id; wpe is indexed by position (start, start + 1, ...) along the sequence, not by token id"
        if start:
            assert not np.allclose(got, wte[ids] + wpe[:n_seq], atol=1e-5), \
                f"{where}: the first token is at position start={start}, not 0: use wpe[start:start + n_seq]"
        assert not np.allclose(got, wte[ids] + wpe[start], atol=1e-5), f"{where}: every token got the same position vector; position p gets wpe[p]"
        assert np.allclose(got, expected, atol=1e-5), \
            f"{where}: off by up to {np.abs(got - expected).max():.3g} from the model's resid_pre of block 0 (wte[ids] + wpe[positions])"
    print("correct: your block-0 input matches the model's for a sentence, a batch, and tokens after a KV-cached prompt")
    return True


# %%
def my_block0_input(ids, wte, wpe, start=0):
    raise NotImplementedError  # your code: token vectors + position vectors, [batch, n_seq, n_embd]


check_block0_input(my_block0_input);
