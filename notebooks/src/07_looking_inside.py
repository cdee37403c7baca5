# %% [markdown]
# # 7. Looking inside: find the heads, show them, break them
#
# **What this notebook teaches.** How to ask a trained model *why* it predicts what it does,
# with the tools interpretability research uses, on the bundled Shakespeare model
# (`weights/shakespeare`, trained by npgpt itself; its card is `weights/README.md`):
#
# - attention heatmaps of every head of every layer;
# - scores that **find** two kinds of heads: **previous-token** heads and **induction** heads
#   (the heads that let a model continue a pattern it has seen earlier in the context), in the
#   bundled model and in a second one that has learned to copy (`shakespeare-induction`);
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
Am bold to show myself a forward guest.
"""
ids = np.array(tok.encode(text))
assert len(ids) <= model.config.n_ctx  # one window of the model's context
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
# held-out Shakespeare. This small model has no clean one: its most previous-token-like head
# gives the token just before less than half of its attention, yet picks it as its favourite key
# for more than 30% of tokens (both printed, and checked, below). With gpt2 (`npgpt download gpt2`)
# you would find a clean one, head 4.11, which gives it
# nearly all of its attention.

# %%
windows = inspection.text_windows(model, text * 4, n_seq=64, count=8)
scores = inspection.mean_head_scores(model, windows)
prev_layer, prev_head = inspection.best_head(scores.previous_token)
prev_score = scores.previous_token[prev_layer, prev_head]
pattern = cache["pattern", prev_layer][prev_head]  # [n_seq, n_seq], on the passage above
favourite = np.mean(np.argmax(pattern[1:], axis=-1) == np.arange(len(pattern) - 1))
print(f"strongest previous-token head: {prev_layer}.{prev_head}, score {prev_score:.2f}; "
      f"the token just before is its favourite key for {favourite:.0%} of the passage's tokens")
assert 0.3 < favourite and prev_score < 0.5 and prev_score == scores.previous_token.max()
viz.head_heatmap(scores.previous_token, title="previous-token score per head (held-out Shakespeare)", label="score")

# %% [markdown]
# Its pattern on the passage: the broken line one step below the diagonal.

# %%
first = slice(0, 32)
viz.attention_heatmap(cache["pattern", prev_layer][:, first, first], tokens[first], head=prev_head, layer=prev_layer)

# %% [markdown]
# ## Induction heads, and a model that has none yet
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
print(f"highest induction score: head {ind_layer}.{ind_head}, {ind_score:.2f}")
print(f"loss on the first copy: {probe.first_copy_loss:.2f} nats (uniform over {model.config.n_vocab} tokens: "
      f"{np.log(model.config.n_vocab):.2f}); on the second copy: {probe.second_copy_loss:.2f} nats")
assert ind_score < 0.2 and probe.ratio > 0.8  # no head does it, and the second copy is no cheaper
viz.head_heatmap(probe.scores.induction, title="induction score per head (random tokens repeated)", label="score")

# %% [markdown]
# The bundled model has not learned induction: no head scores above 0.2, and the second copy
# costs about as much as the first (both checked above). Induction heads appear in training as a
# sudden phase change after a long plateau (Olsson et al., 2022, "In-context Learning and
# Induction Heads"); this model, trained for under an hour on two CPU cores, has not reached it
# (`weights/README.md` records the recipe and what we tried to make induction come sooner). With gpt2 (`npgpt download gpt2`, then
# `model = npgpt.load("gpt2")` above) you would see heads such as 5.1, 5.5 and 6.9 score above 0.5
# and the second copy's loss fall to a fraction of the first.
#
# What an induction head's pattern on the probe looks like, drawn by hand (not learned): in the
# second half, each token attends to the token after its first occurrence, a stripe 49 tokens
# to the left of the diagonal.

# %%
n = 100
ideal = np.eye(n)  # the first copy: attend to yourself
for i in range(51, n):
    ideal[i] = 0.0
    ideal[i, i - 49] = 1.0  # the token after this token's earlier occurrence
viz.attention_heatmap(ideal, inspection.token_labels(model, probe.ids[0]), title="an induction head's pattern, made by hand")

# %% [markdown]
# ## A model that has learned it: find, show and break its induction head
#
# The second bundled model, `shakespeare-induction` (2 layers, trained by npgpt in 7 minutes on
# Shakespeare in which every window repeats a stretch of itself; see `weights/README.md`), has
# learned to copy. The same scores find its heads: a previous-token head in the first layer, on
# held-out Shakespeare, and an induction head in the second, on the random-token probe.

# %%
second = npgpt.load("shakespeare-induction")
second_scores = inspection.mean_head_scores(second, inspection.text_windows(second, text * 4, n_seq=64, count=8))
s_prev = inspection.best_head(second_scores.previous_token)
second_probe = inspection.copying_probe(second, length=50, n_probe=4, seed=0)
s_ind = inspection.best_head(second_probe.scores.induction)
print(f"previous-token head {s_prev[0]}.{s_prev[1]}: {second_scores.previous_token[s_prev]:.2f}; "
      f"induction head {s_ind[0]}.{s_ind[1]}: {second_probe.scores.induction[s_ind]:.2f}")
print(f"loss on the first copy {second_probe.first_copy_loss:.2f} nats, on the second {second_probe.second_copy_loss:.2f} "
      f"(ratio {second_probe.ratio:.2f})")
assert s_prev[0] == 0 and second_scores.previous_token[s_prev] >= 0.5  # a clean previous-token head
assert s_ind[0] == 1 and second_probe.scores.induction[s_ind] >= 0.4  # an induction head, after it
assert second_probe.ratio <= 0.5  # the second copy costs at most half the first: it copies

# %% [markdown]
# Its induction head on three lines of Richard II written twice: from the second copy on, each
# token attends to the token that followed its first occurrence (the stripe below the diagonal).

# %%
passage = "Let's talk of graves, of worms, and epitaphs;\nMake dust our paper and with rainy eyes\nWrite sorrow on the bosom of the earth.\n"
passage_ids = np.array(second.tokenizer.encode(passage * 2))
half = len(passage_ids) // 2
_, passage_cache = second.run_with_cache(passage_ids)
ind_pattern = passage_cache["pattern", s_ind[0]][s_ind[1]]  # [n_seq, n_seq]
later = np.arange(half + 1, len(passage_ids))  # the second copy (its first token has no earlier successor shown)
on_stripe = ind_pattern[later, later - half + 1].mean()
print(f"attention of the second copy's tokens to the token after their first occurrence: {on_stripe:.2f}")
assert on_stripe > 0.5
viz.attention_heatmap(ind_pattern[None], inspection.token_labels(second, passage_ids), head=0, layer=s_ind[0],
                      title=f"shakespeare-induction: head {s_ind[0]}.{s_ind[1]} on a passage written twice")

# %% [markdown]
# Break it: zero the induction head's output with a hook (`inspection.ablation_hooks`) and the
# second copy costs as much as the first again. Zeroing the previous-token head breaks copying
# too, though that head copies nothing itself: it is the first half of the circuit.

# %%
no_ind = inspection.copying_probe(second, length=50, n_probe=4, seed=0, hooks=inspection.ablation_hooks([s_ind]))
no_prev = inspection.copying_probe(second, length=50, n_probe=4, seed=0, hooks=inspection.ablation_hooks([s_prev]))
print(f"second copy: {second_probe.second_copy_loss:.2f} nats; without the induction head {no_ind.second_copy_loss:.2f}; "
      f"without the previous-token head {no_prev.second_copy_loss:.2f} (first copy {second_probe.first_copy_loss:.2f})")
assert no_ind.ratio > 0.9 and no_prev.ratio > second_probe.ratio + 0.2
viz.copy_losses(second_probe, ablated=no_ind, title="shakespeare-induction: 50 random tokens written twice")

# %% [markdown]
# ## Break a head
#
# A hook on `blocks.{l}.attn.z` replaces chosen heads' outputs with zeros
# (`inspection.ablation_hooks`). Knock out each head in turn and measure the loss on held-out
# Shakespeare: the previous-token head is one the model leans on.

# %%
def mean_loss(hooks=None):
    losses = []
    for w in windows:
        logits = model.logits(w, hooks=hooks)
        losses.append(-npgpt.model.log_softmax(logits[:-1])[np.arange(len(w) - 1), w[1:]].mean())
    return float(np.mean(losses))


clean = mean_loss()
delta = np.array([[mean_loss(inspection.ablation_hooks([(l, h)])) - clean for h in range(model.config.n_head)]
                  for l in range(model.config.n_layer)])  # [n_layer, n_head]: loss rise per ablated head
rank = int(np.sum(delta > delta[prev_layer, prev_head]))  # heads that matter more than it
print(f"loss {clean:.3f} nats/token; without head {prev_layer}.{prev_head} (previous-token): "
      f"{clean + delta[prev_layer, prev_head]:.3f}: rise number {rank + 1} of the {delta.size} heads")
assert delta[prev_layer, prev_head] > np.median(delta)
viz.head_heatmap(delta, title="rise in held-out loss when each head is zeroed (nats/token)", label="Δ loss")

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
viz.show_attention(cache, tokens)

# %%
viz.attention_heatmap(cache["pattern", prev_layer][:, first, first], tokens[first], head=prev_head, layer=prev_layer)

# %% [markdown]
# ## Exercise: break two heads at once
#
# Knock out the previous-token head and a second head together: does the loss rise by more than
# the sum of their single rises? Write `two_heads_loss(mean_loss, ablation_hooks, first, other)`
# returning the mean held-out loss with heads `first` and `other` (each a `(layer, head)` pair)
# both zeroed in one run, using the `mean_loss` function above and `inspection.ablation_hooks`
# (passed in as arguments). `check_two_heads_loss` runs it with `first` = the previous-token head
# and a few choices of `other`, and compares with npgpt's own ablation. (A solution is in `notebooks/solutions/07_looking_inside.py`.)

# %%
def check_two_heads_loss(answer):
    """Compare ``answer(mean_loss, ablation_hooks, first, other)`` with the loss with both heads zeroed, for three other heads. True when right."""
    others = [(l, h) for l in range(model.config.n_layer) for h in range(model.config.n_head) if (l, h) != (prev_layer, prev_head)]
    for other in others[:: max(1, len(others) // 3)][:3]:
        try:
            got = answer(mean_loss, inspection.ablation_hooks, (prev_layer, prev_head), other)
        except NotImplementedError:
            print("not done yet: fill in two_heads_loss, then run this cell again")
            return False
        expected = mean_loss(inspection.ablation_hooks([(prev_layer, prev_head), other]))
        assert np.ndim(got) == 0, f"return one number (the mean loss), got shape {np.shape(got)}"
        assert not np.isclose(got, clean, atol=1e-6), "that is the loss with nothing zeroed: pass hooks to mean_loss"
        for alone in [(prev_layer, prev_head), other]:
            assert not np.isclose(got, mean_loss(inspection.ablation_hooks([alone])), atol=1e-6), \
                f"that is the loss with head {alone[0]}.{alone[1]} alone zeroed: list both heads in one ablation_hooks call"
        assert not np.isclose(got, clean + delta[prev_layer, prev_head] + delta[other], atol=1e-6), \
            "that adds the two single rises: zero both heads in one run and measure"
        assert np.isclose(got, expected, atol=1e-6), f"with heads {prev_layer}.{prev_head} and {other[0]}.{other[1]} zeroed: got {got:.4f}, expected {expected:.4f}"
        together, apart = expected - clean, delta[prev_layer, prev_head] + delta[other]
        print(f"heads {prev_layer}.{prev_head} + {other[0]}.{other[1]}: together {together:+.4f} nats/token, "
              f"the single rises add up to {apart:+.4f}")
    print("correct: your ablation matches npgpt's")
    return True


# %%
def two_heads_loss(mean_loss, ablation_hooks, first, other):
    raise NotImplementedError  # your code: mean_loss(hooks=ablation_hooks([...]))


check_two_heads_loss(two_heads_loss);
