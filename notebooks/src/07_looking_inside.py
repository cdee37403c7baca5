# %% [markdown]
# # 7. Looking inside: attention heads, the logit lens, ablations
#
# **What this notebook teaches.** How to ask a trained model *why* it predicts what it does,
# with the tools interpretability research uses:
#
# - attention heatmaps of every head of every layer;
# - scores that find **previous-token** and **induction** heads (the heads that let a model
#   continue a pattern it has seen earlier in the context);
# - the **logit lens**: reading each layer's residual stream as if it were the last one;
# - **ablating** a head (zeroing its output through a hook) and watching the prediction change;
# - the interactive attention view, inline.
#
# Everything reads the activation cache of `model.run_with_cache` (`npgpt.inspection` computes,
# `viz` draws).

# %%
# %matplotlib inline
import numpy as np

import npgpt
import viz
from npgpt import inspection
from npgpt.model import softmax

model = npgpt.demo_model()
tok = model.tokenizer
text = "ROMEO:\nI will go to the house of Capulet.\nJULIET:\nGo to the house of Capulet, Romeo"
ids = np.array(tok.encode(text))
tokens = inspection.token_labels(model, ids)
logits, cache = model.run_with_cache(ids)
print(len(ids), "tokens; the model's next-token guess:", repr(tok.decode([int(logits[-1].argmax())])))

# %% [markdown]
# ## Every head of every layer
#
# One thumbnail per head: rows are layers, columns heads. Each is a causal (lower-triangular)
# pattern; the diagonal stripes are heads that look a fixed distance back.

# %%
viz.attention_grid(cache, tokens)

# %% [markdown]
# ## Finding heads by what they do
#
# A **previous-token head** puts its attention on position `i - 1`. An **induction head** looks
# for an earlier occurrence of the current token and attends to the token *after* it, so that the
# model can copy what followed last time. A clean probe: a random token sequence repeated twice.
# In the second copy, an induction head attends from each token to the one after that token's
# first occurrence.

# %%
probe = inspection.repeated_random_tokens(model.config.n_vocab, length=30, repeats=2, seed=0)
_, probe_cache = model.run_with_cache(probe)
scores = inspection.head_scores(probe_cache, probe)
for name in ("previous_token", "induction"):
    values = getattr(scores, name)
    layer, head = np.unravel_index(np.argmax(values), values.shape)
    print(f"strongest {name} head: layer {layer}, head {head} (score {values[layer, head]:.2f})")

# %%
viz.head_heatmap(scores.induction, title="induction score per head (repeated random tokens)", label="score")

# %% [markdown]
# Does the model actually use its induction ability? On the second copy of the random sequence
# the loss should drop far below the first copy's, if the model has learned to copy.

# %%
probe_logits = model.logits(probe)
logp = np.log(softmax(probe_logits.astype(np.float64)))  # [n_seq, n_vocab] log-probabilities
token_loss = -logp[np.arange(len(probe) - 1), probe[1:]]
half = len(probe) // 2
print(f"mean loss on the first copy: {token_loss[:half - 1].mean():.2f} nats, on the second copy: {token_loss[half:].mean():.2f} nats")

# %% [markdown]
# What you see here depends on the model. Trained GPT-2 has strong induction heads (in gpt2,
# heads in layers 5-7 such as 5.1, 5.5 and 6.9 score highly) and its loss on the second copy
# falls to a fraction of the first. The small bundled Shakespeare model (4 layers, trained for
# 30 minutes) has not learned to copy: its induction scores stay near zero and its loss does not
# fall. Induction heads appear in training as a sudden phase change, after much more data than
# this model saw (Olsson et al., 2022).
#
# Here is the strongest induction head's pattern on the probe: look for the off-diagonal stripe
# in the second half.

# %%
layer, head = np.unravel_index(np.argmax(scores.induction), scores.induction.shape)
viz.attention_heatmap(probe_cache["pattern", int(layer)], inspection.token_labels(model, probe), head=int(head), layer=int(layer))

# %% [markdown]
# ## The logit lens
#
# Each layer writes into the residual stream; what would the model predict if it stopped there?
# Put each layer's stream through the final layer norm and the unembedding. The last row is the
# model's real output.

# %%
lens = inspection.logit_lens(model, cache, ids, k=3)
viz.logit_lens_heatmap(lens, max_positions=16)

# %% [markdown]
# ## Direct logit attribution
#
# The final residual stream is a sum of what every head and MLP wrote. With the final layer norm
# linearised at the last position, each part's contribution to the logit of the predicted token
# adds up exactly to that logit.

# %%
dla = inspection.direct_logit_attribution(model, cache)
print(f"target {tok.decode([dla.target])!r}: logit {dla.logit:.3f}, sum of parts "
      f"{dla.embed + dla.pos_embed + dla.heads.sum() + dla.attn_bias.sum() + dla.mlp.sum() + dla.ln_final_bias:.3f}")
viz.logit_attribution(dla)

# %% [markdown]
# ## Ablation: remove a head and see what breaks
#
# A hook replaces one head's output `z` with zeros. The change in the log-probability of the
# predicted token says how much the prediction depended on that head.

# %%
scan = inspection.ablation_scan(model, ids)  # [n_layer, n_head]: change in log p(target)
layer, head = np.unravel_index(np.argmin(scan), scan.shape)
print(f"the most important head for this prediction: layer {layer}, head {head} "
      f"(log p changes by {scan[layer, head]:+.3f} when it is zeroed)")
viz.head_heatmap(scan, title="change in log p(prediction) when each head is zeroed", diverging=True)

# %% [markdown]
# The hooks behind it are ordinary functions; you can write your own:

# %%
def zero_head(z, head=int(head)):  # z: [batch, n_head, n_seq, d_head]
    z = z.copy()
    z[:, head] = 0.0
    return z

ablated = model.logits(ids, hooks={f"blocks.{int(layer)}.attn.z": zero_head})
print("top-5 before:", tok.decode_tokens(np.argsort(-logits[-1])[:5]))
print("top-5 after: ", tok.decode_tokens(np.argsort(-ablated[-1])[:5]))

# %% [markdown]
# ## The interactive view
#
# Tokens in two columns with lines weighted by attention; choose the layer and head, hover a
# token to focus on it, or switch to the heatmap. It is one self-contained HTML file (no network);
# `.save("view.html")` writes it for any browser.

# %%
viz.show_attention(cache, tokens)

# %% [markdown]
# ## Exercise
#
# 1. Ablate the strongest induction head and recompute the loss on the second copy of the probe.
#    How much of the drop does that one head explain?
# 2. In the logit lens, at which layer does the final prediction first appear in the top 3?
# 3. Try `mode="mean"` in `inspection.ablation_scan`: which heads change rank, and why might
#    zero-ablation overstate a head's importance?
