# %% [markdown]
# # 8. Applications: zero-shot tasks and perplexity
#
# **What this notebook teaches.** The GPT-2 paper's claim was that a language model trained only
# to predict the next token can do tasks it was never trained for, if the prompt makes the task
# look like a continuation of text ("zero-shot"). We try the paper's four prompt formats —
# generation, summarization with `TL;DR:`, translation from a few examples, question answering —
# and measure **perplexity**, how surprised a model is by a text.
#
# **Honestly:** the paper's results came from the 1.5B-parameter GPT-2 XL, and even there the
# summaries and translations were weak (translation: 5 BLEU on WMT-14 English to French and 11.5
# French to English, where the best unsupervised system of the time reached 33.5). The 124M gpt2 mostly produces plausible-looking text that is
# often wrong; the small bundled Shakespeare model (trained on 1 MB of plays) can do none of
# these tasks and writes pseudo-Shakespeare whatever you ask. Run this notebook with
# `npgpt download gpt2` (or gpt2-xl) done first to see what the real models do.

# %%
import numpy as np

import npgpt

model = npgpt.demo_model()
print("context length:", model.config.n_ctx, "tokens")

def complete(prompt: str, n: int = 30, **settings) -> str:
    room = model.config.n_ctx - len(model.tokenizer.encode(prompt))
    return model.generate(prompt, max_new_tokens=max(1, min(n, room)), **settings)

# %% [markdown]
# ## Text generation
#
# The plainest task: continue a text in its own style. The paper found the samples coherent over
# a paragraph or so, with the model losing the thread over longer spans.

# %%
print(complete("In a shocking finding, scientists discovered a herd of unicorns", n=50, top_k=40, seed=0))

# %% [markdown]
# ## Summarization: "TL;DR:"
#
# On Reddit, "TL;DR:" ("too long; didn't read") introduces a summary, so GPT-2 learned to write a
# summary after it. The paper sampled 100 tokens with top-k 2 after the article.

# %%
article = (
    "The city council voted on Tuesday to close the old bridge on Main Street for repairs. "
    "Engineers found cracks in two of its supports last month. The bridge will be closed for six "
    "months, and buses will use the river road instead. Shop owners near the bridge said they "
    "worried about losing customers during the closure."
)
print(complete(article + "\nTL;DR:", n=40, top_k=2, seed=0))

# %% [markdown]
# ## Translation from a few examples
#
# The paper conditioned on pairs in the format `english sentence = french sentence` and then
# gave `english sentence =`, greedy decoding.

# %%
examples = "good morning = bonjour\nthank you = merci\nthe cat = le chat\n"
print(complete(examples + "the dog =", n=8, temperature=0, stop=["\n"]))

# %% [markdown]
# ## Question answering
#
# A few question/answer pairs, then the question. The paper reported GPT-2 XL answering 4.1% of
# Natural Questions exactly; smaller models mostly answer with the most common kind of answer.

# %%
qa = "Q: What is the capital of France?\nA: Paris\nQ: Who wrote Hamlet?\nA: William Shakespeare\nQ: What is the largest planet in the solar system?\nA:"
print(complete(qa, n=8, temperature=0, stop=["\n"]))

# %% [markdown]
# ## Perplexity
#
# Perplexity is $\exp$ of the mean negative log-likelihood per token: "as unsure as a uniform
# choice among this many tokens". A model is less surprised by text like its training data.
# `npgpt.generate.score` gives every token's log-probability (long texts are scored in strided
# windows, as in the Hugging Face perplexity guide); `npgpt score` is the same on the command line.

# %%
from npgpt.generate import score

texts = {
    "Shakespeare": "ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun.",
    "modern English": "The quarterly earnings report showed revenue growth of twelve percent year over year.",
    "shuffled words": "sun window the is Juliet breaks and light east what It soft yonder through But",
}
for name, text in texts.items():
    s = score(model, text)
    print(f"{name:15} perplexity {s.perplexity:9.1f}   ({s.n_scored} tokens scored)")

# %% [markdown]
# Which tokens surprised the model most?

# %%
s = score(model, texts["Shakespeare"])
worst = np.argsort([lp if lp is not None else 0.0 for lp in s.logprobs])[:5]
for i in sorted(worst):
    print(f"{s.tokens[i]!r:12} log p = {s.logprobs[i]:.2f}")

# %% [markdown]
# ## What a small model can and cannot do
#
# - **Can**: continue text in the style of its training data; be measurably less surprised by
#   in-distribution text (the perplexities above); pick up a format from the prompt (Q:/A:, `=`).
# - **Cannot, reliably**: get facts right, summarise faithfully, translate, or stay coherent over
#   long spans. These improve with scale (the GPT-2 paper's curves rise with model size), and much
#   more with instruction tuning, which GPT-2 never had.
#
# ## Exercise
#
# 1. Score the same sentence with and without a typo. How much does the perplexity change?
# 2. Change the translation examples to another language pair. Does the format still work?
# 3. With gpt2 downloaded, compare the perplexity of a paragraph of Wikipedia and of a paragraph
#    of your own writing.
