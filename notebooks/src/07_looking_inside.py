# %% [markdown]
# # 7. Looking inside: find the heads, show them, break them
#
# **What this notebook teaches.** How to ask a trained model *why* it predicts what it does,
# with the tools interpretability research uses, on the bundled Shakespeare model
# (`weights/shakespeare`, trained by npgpt itself; its card is `weights/README.md`):
#
# - attention heatmaps of every head of every layer;
# - scores that **find** two kinds of heads: **previous-token** heads and **induction** heads
#   (the heads that let a model continue a pattern it has seen earlier in the context);
# - **breaking** heads: knocking out their output through a hook and measuring what the model
#   can no longer do;
# - the **logit lens**: reading each layer's residual stream as if it were the last one;
# - direct logit attribution, and the interactive attention view.
#
# Everything reads the activation cache of `model.run_with_cache` (`npgpt.inspection` computes,
# `viz` draws). Every claim below about what the pictures show is checked by an `assert` in the
# cell that draws them.

# %%
import numpy as np

import npgpt
import viz
from npgpt import inspection

model = npgpt.load("shakespeare")
tok = model.tokenizer
print(model)

# Lines from the held-out end of tinyshakespeare (public domain): text the model never trained on.
text = """BAPTISTA:
I have a daughter, sir, called Katharina.

GREMIO:
You are too blunt: go to it orderly.

PETRUCHIO:
You wrong me, Signior Gremio: give me leave.
I am a gentleman of Verona, sir,
That, hearing of her beauty and her wit,
Her affability and bashful modesty,
Her wondrous qualities and mild behavior,
Am bold to show myself a forward guest
Within your house, to make mine eye the witness
Of that report which I so oft have heard.
"""
ids = np.array(tok.encode(text))
tokens = inspection.token_labels(model, ids)
logits, cache = model.run_with_cache(ids)
print(len(ids), "tokens; cache holds", len(cache), "activations")

# %% [markdown]
# ## Every head of every layer
#
# One thumbnail per head: rows are layers, columns heads. Each pattern is lower-triangular
# (a token can only look back). Look for a thin line just below the diagonal: a head that
# always looks one token back.

# %%
viz.attention_grid(cache, tokens)

# %% [markdown]
# ## Previous-token heads
#
# A **previous-token head** puts its attention on position `i - 1`. Its score is the mean
# attention from each token to the one just before it, averaged here over eight windows of
# held-out Shakespeare.

# %%
windows = inspection.text_windows(model, text * 4, n_seq=64, count=8)
scores = inspection.mean_head_scores(model, windows)
prev_layer, prev_head = inspection.best_head(scores.previous_token)
prev_score = scores.previous_token[prev_layer, prev_head]
print(f"strongest previous-token head: {prev_layer}.{prev_head}, score {prev_score:.2f}")
assert prev_score >= 0.5  # more than half of its attention goes to the token just before
viz.head_heatmap(scores.previous_token, title="previous-token score per head (held-out Shakespeare)", label="score")

# %% [markdown]
# Its pattern on the passage: the bright line one step below the diagonal.

# %%
first = slice(0, 32)
viz.attention_heatmap(cache["pattern", prev_layer][:, first, first], tokens[first], head=prev_head, layer=prev_layer)

# %% [markdown]
# ## Induction heads
#
# An **induction head** looks for an earlier occurrence of the current token and attends to the
# token *after* it, so that the model can copy what followed last time: having seen "Signior
# Gremio" once, at the next "Signior" it predicts "Gremio". A clean probe: 50 random tokens,
# then the same 50 again. The first copy cannot be predicted at all; the second can, but only
# by copying. The induction score is the attention, in the second copy, from each token to the
# token that followed its first occurrence.

# %%
probe = inspection.copying_probe(model, length=50, n_probe=4, seed=0)
ind_layer, ind_head = inspection.best_head(probe.scores.induction)
ind_score = probe.scores.induction[ind_layer, ind_head]
print(f"strongest induction head: {ind_layer}.{ind_head}, score {ind_score:.2f}")
print(f"loss on the first copy: {probe.first_copy_loss:.2f} nats (uniform over {model.config.n_vocab} tokens: "
      f"{np.log(model.config.n_vocab):.2f}); on the second copy: {probe.second_copy_loss:.2f} nats")
assert ind_score >= 0.4 and probe.ratio <= 0.5  # it attends to the right token, and the model uses it
viz.head_heatmap(probe.scores.induction, title="induction score per head (random tokens repeated)", label="score")

# %% [markdown]
# The induction head on the probe: in the second half, an off-diagonal stripe 49 tokens back
# (the token after the current token's first occurrence).

# %%
_, probe_cache = model.run_with_cache(probe.ids[0])
viz.attention_heatmap(probe_cache["pattern", ind_layer], inspection.token_labels(model, probe.ids[0]),
                      head=ind_head, layer=ind_layer)

# %% [markdown]
# ## Break them
#
# A hook on `blocks.{l}.attn.z` replaces chosen heads' outputs with zeros
# (`inspection.ablation_hooks`). Knock out the induction heads (every head scoring at least half
# the best) and the second copy's loss rises back towards the first's: the model can no longer
# copy. Knocking out the same number of other heads, chosen at random, barely matters.

# %%
induction = probe.scores.induction
heads = [tuple(int(x) for x in h) for h in np.argwhere(induction >= 0.5 * induction.max())]
broken = inspection.copying_probe(model, length=50, n_probe=4, seed=0, hooks=inspection.ablation_hooks(heads))
rng = np.random.default_rng(0)
others = [h for h in np.ndindex(induction.shape) if h not in heads]
control_heads = [others[i] for i in rng.choice(len(others), size=min(len(heads), len(others)), replace=False)]
control = inspection.copying_probe(model, length=50, n_probe=4, seed=0, hooks=inspection.ablation_hooks(control_heads))
print(f"induction heads {heads}: second-copy loss {probe.second_copy_loss:.2f} -> {broken.second_copy_loss:.2f} nats")
print(f"as many other heads {control_heads}: {probe.second_copy_loss:.2f} -> {control.second_copy_loss:.2f} nats")
assert broken.second_copy_loss > 2 * probe.second_copy_loss
assert broken.second_copy_loss - probe.second_copy_loss > 3 * abs(control.second_copy_loss - probe.second_copy_loss)
viz.copy_losses(probe, ablated=broken)

# %% [markdown]
# The same heads copy real text. Written twice, a passage's second half is predicted far better
# than its first, and the induction head's stripe shows where each token looks.

# %%
passage = "Let's talk of graves, of worms, and epitaphs;\nMake dust our paper and with rainy eyes\n"
twice = np.array(tok.encode(passage * 2))
half = len(twice) // 2
twice_logits, twice_cache = model.run_with_cache(twice)
loss = -npgpt.model.log_softmax(twice_logits[:-1])[np.arange(len(twice) - 1), twice[1:]]
print(f"loss on the first time: {loss[:half - 1].mean():.2f} nats/token, the second time: {loss[half:].mean():.2f}")
assert loss[half:].mean() < 0.5 * loss[:half - 1].mean()
viz.attention_heatmap(twice_cache["pattern", ind_layer], inspection.token_labels(model, twice), head=ind_head, layer=ind_layer)

# %% [markdown]
# ## The logit lens
#
# Each layer writes into the residual stream; what would the model predict if it stopped there?
# Put each layer's stream through the final layer norm and the unembedding. The last row is the
# model's real output. Read after the embeddings alone, the model predicts the input token itself
# (the embedding is tied to the unembedding); layer after layer the probability of the token that
# really comes next grows.

# %%
lens = inspection.logit_lens(model, cache, ids, k=3)
p_next = np.nanmean(lens.next_probs, axis=1)  # [n_layer + 1]: mean p(the true next token) per row
print("mean p(true next token) after", ", ".join(f"{label}: {p:.3f}" for label, p in zip(lens.labels, p_next)))
assert p_next[-1] > p_next[len(p_next) // 2] > p_next[0]
viz.logit_lens_heatmap(lens, max_positions=16)

# %% [markdown]
# ## Direct logit attribution
#
# The final residual stream is a sum of what every head and MLP wrote. With the final layer norm
# linearised at the last position, each part's contribution to the logit of the predicted token
# adds up exactly to that logit.

# %%
dla = inspection.direct_logit_attribution(model, cache)
parts = dla.embed + dla.pos_embed + dla.heads.sum() + dla.attn_bias.sum() + dla.mlp.sum() + dla.ln_final_bias
print(f"target {tok.decode([dla.target])!r}: logit {dla.logit:.3f}, sum of parts {parts:.3f}")
assert abs(parts - dla.logit) < 1e-3
viz.logit_attribution(dla)

# %% [markdown]
# ## Ablation, one head at a time
#
# The change in the log-probability of the predicted next token when each head alone is zeroed.

# %%
scan = inspection.ablation_scan(model, ids)  # [n_layer, n_head]: change in log p(target)
layer, head = np.unravel_index(np.argmin(scan), scan.shape)
print(f"the most important head for this prediction: {layer}.{head} (log p changes by {scan[layer, head]:+.3f})")
viz.head_heatmap(scan, title="change in log p(prediction) when each head is zeroed", diverging=True)

# %% [markdown]
# ## The interactive view
#
# Tokens in two columns with lines weighted by attention; choose the layer and head, hover a
# token to focus on it, or switch to the heatmap. It is one self-contained HTML file (no network);
# `.save("view.html")` writes it for any browser. Its script runs only in a trusted notebook, so
# the static picture of the same head stands beside it (what GitHub shows).

# %%
viz.show_attention(twice_cache, inspection.token_labels(model, twice))

# %%
viz.attention_heatmap(twice_cache["pattern", ind_layer], inspection.token_labels(model, twice), head=ind_head, layer=ind_layer)

# %% [markdown]
# ## Exercise
#
# How much of the copying does the single strongest induction head explain? Write
# `one_head_copy_loss(model)`: the second-copy loss of `inspection.copying_probe(model, seed=0)`
# with only head `ind_layer.ind_head` ablated. The check compares it with the full model's and
# with all induction heads ablated.

# %%
def one_head_copy_loss(model):
    # your code here: inspection.copying_probe(..., hooks=inspection.ablation_hooks([...]))
    return probe.second_copy_loss


def check_one_head_copy_loss(answer):
    expected = inspection.copying_probe(model, length=50, n_probe=4, seed=0,
                                        hooks=inspection.ablation_hooks([(ind_layer, ind_head)])).second_copy_loss
    if abs(answer - expected) > 1e-6:
        return f"not yet: got {answer:.3f}, expected {expected:.3f} (ablate head {ind_layer}.{ind_head} only)"
    share = (expected - probe.second_copy_loss) / (broken.second_copy_loss - probe.second_copy_loss)
    return f"correct: that head alone explains {share:.0%} of what all {len(heads)} induction heads do"


print(check_one_head_copy_loss(one_head_copy_loss(model)))
