# %% [markdown]
# # 6. Generation: from logits to text
#
# **What this notebook teaches.** The model outputs a score (logit) for every token of the
# vocabulary; generating text means choosing one, appending it and repeating. How we choose
# decides what the text reads like:
#
# - **greedy**: always the most likely token (repetitive);
# - **temperature**: sharpen or flatten the distribution before sampling;
# - **top-k**: sample among the k most likely tokens only;
# - **top-p** (nucleus): sample among the fewest tokens whose probabilities add up to p.
#
# We look at each as a distribution and as text, then stream text token by token. The functions
# are in `npgpt/generate.py`; each is a few lines on a logits array.

# %%
import matplotlib.pyplot as plt
import numpy as np

import npgpt
import viz
from npgpt.generate import apply_temperature, probabilities, top_k_filter, top_p_filter

model = npgpt.demo_model()
tok = model.tokenizer
prompt = "ROMEO:\nWhat light through yonder window"
ids = tok.encode(prompt)
logits = model.logits(ids)[-1]  # the next token's logits: [n_vocab]

# %% [markdown]
# ## The next-token distribution

# %%
probs = probabilities(logits)
top = np.argsort(-probs)[:12]
viz.next_token_distribution([tok.decode([int(t)]) for t in top], probs[top], title=f"after {prompt[-20:]!r}")

# %% [markdown]
# ## Temperature
#
# Dividing the logits by $T$ before the softmax: $T < 1$ sharpens the distribution towards the
# top token ($T \to 0$ is greedy), $T > 1$ flattens it towards uniform.

# %%
fig, ax = plt.subplots(figsize=(7, 3))
for t in (0.5, 1.0, 1.5):
    p = probabilities(apply_temperature(logits, t))
    ax.plot(np.sort(p)[::-1][:30], "o-", ms=3, label=f"T={t}")
ax.set_xlabel("rank"); ax.set_ylabel("probability"); ax.legend(); ax.set_title("the 30 most likely tokens")
plt.show()

# %% [markdown]
# ## Top-k and top-p
#
# Both cut off the long tail of unlikely tokens, where most of the nonsense lives. Top-k keeps a
# fixed number; top-p keeps as many as needed to cover probability p, so it keeps few tokens when
# the model is sure and many when it is not.

# %%
for name, filtered in [("top-k, k=5", top_k_filter(logits, 5)), ("top-p, p=0.9", top_p_filter(logits, 0.9))]:
    kept = np.isfinite(filtered)
    print(f"{name}: keeps {kept.sum()} tokens holding {probs[kept].sum():.2f} of the probability")

# %% [markdown]
# ## As text
#
# `temperature=0` is greedy. A `seed` makes a sample reproducible.

# %%
settings = {
    "greedy": dict(temperature=0),
    "T=0.7, top-k 40": dict(temperature=0.7, top_k=40, seed=1),
    "T=1.0, top-p 0.9": dict(temperature=1.0, top_p=0.9, seed=1),
    "T=1.5 (too hot)": dict(temperature=1.5, seed=1),
}
for name, s in settings.items():
    print(f"--- {name}\n{prompt}{model.generate(prompt, max_new_tokens=40, **s)}\n")

# %% [markdown]
# Same seed, same text; a different seed, a different text:

# %%
a = model.generate(prompt, max_new_tokens=20, top_k=40, seed=7)
b = model.generate(prompt, max_new_tokens=20, top_k=40, seed=7)
c = model.generate(prompt, max_new_tokens=20, top_k=40, seed=8)
print(a == b, a == c)

# %% [markdown]
# ## Streaming
#
# `model.stream` yields text as it is generated. A token can end in the middle of a multi-byte
# character; the stream holds such bytes back until the character is complete, so the pieces
# always join to the same text as `generate`.

# %%
pieces = []
for piece in model.stream(prompt, max_new_tokens=30, temperature=0.8, seed=3):
    pieces.append(piece)
print(pieces)
print("joined == generate:", "".join(pieces) == model.generate(prompt, max_new_tokens=30, temperature=0.8, seed=3))

# %% [markdown]
# ## Why was this token chosen?
#
# With `trace=True`, every step records the chosen token, its probability and the alternatives.

# %%
from npgpt.generate import generate_ids

result = generate_ids(model, prompt, max_new_tokens=8, temperature=0.8, seed=3, trace=True)
for step in result.completions[0].steps:
    alternatives = ", ".join(f"{t.text!r} {t.prob:.2f}" for t in step.top[:3])
    print(f"step {step.step}: chose {step.token_text!r} (p={step.prob:.2f})   top 3: {alternatives}")
print(result.stats.summary())

# %% [markdown]
# ## Exercise
#
# 1. Generate 5 samples at once (`num_samples=5`) at temperature 0.3 and at 1.2. How different
#    are the samples from each other?
# 2. With greedy decoding, generate 100 tokens. Where does the text start repeating itself? Try
#    `repetition_penalty=1.3`.
# 3. For the prompt above, how many tokens does top-p with p=0.5 keep? With p=0.99?
