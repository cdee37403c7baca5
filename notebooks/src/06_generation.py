# %% [markdown]
# # 6. Generation: from logits to text
#
# **What this notebook teaches.** The model outputs a score (logit) for every token of the
# vocabulary; generating text means choosing one, appending it and repeating. How we choose
# decides what the text reads like:
#
# - **greedy**: always the most likely token (the same text every time);
# - **temperature**: sharpen or flatten the distribution before sampling;
# - **top-k**: sample among the k most likely tokens only;
# - **top-p** (nucleus): sample among the fewest tokens whose probabilities add up to p.
#
# We look at each as a distribution and as text, then stream text token by token. The functions
# are pure functions on a logits array in `npgpt/sampling.py` (also importable from
# `npgpt.generate`); every statement below is checked by an `assert` on what the model computed.
# The exercise at the end: write top-p yourself.

# %%
import matplotlib.pyplot as plt
import numpy as np

import npgpt
import viz
from npgpt.generate import apply_temperature, generate_ids, probabilities, score, top_k_filter, top_p_filter

model = npgpt.load("shakespeare")  # the bundled model; npgpt.load("gpt2") once downloaded
tok = model.tokenizer
print(model)
prompt = "ROMEO:\nWhat light through yonder window"
ids = tok.encode(prompt)
logits = model.logits(ids)[-1]  # the next token's logits: [n_vocab]


def entropy(p: np.ndarray) -> float:
    """How spread out a distribution is, in nats: 0 for one sure token, log(n_vocab) for uniform."""
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())

# %% [markdown]
# ## The next-token distribution

# %%
probs = probabilities(logits)  # softmax, in float64
assert probs.shape == (model.config.n_vocab,) and np.isclose(probs.sum(), 1)
top = np.argsort(-probs)[:12]
viz.next_token_distribution([tok.decode([int(t)]) for t in top], probs[top], title=f"after {prompt[-20:]!r}")

# %% [markdown]
# ## Temperature
#
# Dividing the logits by $T$ before the softmax: $T < 1$ sharpens the distribution towards the
# top token ($T \to 0$ is greedy), $T > 1$ flattens it towards uniform. Dividing by a positive
# number never changes the order of the tokens, so the most likely token stays the most likely.

# %%
temperatures = [0.05, 0.5, 1.0, 1.5, 100.0]
spread = {t: probabilities(apply_temperature(logits, t)) for t in temperatures}
for t, p in spread.items():
    print(f"T={t:<5}  top token {p.max():.3f}   entropy {entropy(p):.2f} nats   (uniform: {np.log(p.size):.2f})")
assert all(p.argmax() == probs.argmax() for p in spread.values())  # same top token at every T
entropies = [entropy(p) for p in spread.values()]
assert all(a < b for a, b in zip(entropies, entropies[1:]))  # hotter = flatter, at every step
tops = [p.max() for p in spread.values()]
assert all(a > b for a, b in zip(tops, tops[1:]))  # colder = more weight on the top token
assert entropies[-1] > 0.95 * np.log(probs.size)  # very hot: nearly uniform

# %%
fig, ax = plt.subplots(figsize=(7, 3))
for t in (0.5, 1.0, 1.5):
    ax.plot(np.sort(spread[t])[::-1][:30], "o-", ms=3, label=f"T={t}")
ax.set_xlabel("rank"); ax.set_ylabel("probability"); ax.legend(); ax.set_title("the 30 most likely tokens")
plt.show()

# %% [markdown]
# ## Top-k and top-p
#
# Both cut off the long tail of unlikely tokens, where most of the nonsense lives, by setting
# their logits to $-\infty$ (probability 0). Top-k keeps a fixed number; top-p keeps the fewest
# most likely tokens that hold at least probability p together.

# %%
k, p = 5, 0.9
kept_k = np.isfinite(top_k_filter(logits, k))
kept_p = np.isfinite(top_p_filter(logits, p))
for name, kept in [(f"top-k, k={k}", kept_k), (f"top-p, p={p}", kept_p)]:
    print(f"{name}: keeps {kept.sum()} tokens holding {probs[kept].sum():.3f} of the probability")
kth = np.sort(logits)[::-1][k - 1]
assert kept_k.sum() == (logits >= kth).sum() >= k  # the k largest (more only if some tie with the k-th)
assert np.all(probs[kept_p].min() >= probs[~kept_p].max())  # the most likely ones ...
assert probs[kept_p].sum() >= p  # ... holding at least p ...
assert probs[kept_p].sum() - probs[kept_p].min() < p  # ... and the fewest: without the least likely, below p

# %% [markdown]
# So top-p keeps few tokens where the model is sure and many where it is not. Along a longer
# text, at every position: the entropy of the next-token distribution against the number of
# tokens top-p (p=0.9) keeps.

# %%
passage = prompt + " breaks? It is the east, and Juliet is the sun.\n\nJULIET:\nO Romeo, Romeo! wherefore art thou Romeo?"
all_logits = model.logits(tok.encode(passage))  # [n_seq, n_vocab]: every position's next-token logits
position_entropy = np.array([entropy(row) for row in probabilities(all_logits)])
position_kept = np.isfinite(top_p_filter(all_logits, p)).sum(axis=-1)  # works row by row
rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731
rank_correlation = np.corrcoef(rank(position_entropy), rank(position_kept))[0, 1]
sure, unsure = position_entropy.argmin(), position_entropy.argmax()
print(f"most sure position: entropy {position_entropy[sure]:.2f}, top-p keeps {position_kept[sure]}")
print(f"least sure:         entropy {position_entropy[unsure]:.2f}, top-p keeps {position_kept[unsure]}")
print(f"rank correlation of entropy and tokens kept over {len(position_kept)} positions: {rank_correlation:.2f}")
assert position_kept[sure] < position_kept[unsure]
assert rank_correlation > 0.5

# %%
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.scatter(position_entropy, position_kept, s=12)
ax.set_yscale("log"); ax.set_xlabel("entropy of the next-token distribution (nats)")
ax.set_ylabel(f"tokens kept by top-p, p={p}"); ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## As text
#
# `temperature=0` is greedy (npgpt's default is `temperature=1.0`, sampling from the model's own
# distribution). A `seed` makes a sample reproducible. Beside each text, its mean log-probability
# per token under the model (`score`): how likely the model finds what it wrote.

# %%
settings = {
    "greedy": dict(temperature=0),
    "T=0.7, top-k 40": dict(temperature=0.7, top_k=40, seed=1),
    "T=1.0, top-p 0.9": dict(temperature=1.0, top_p=0.9, seed=1),
    "T=1.5 (hot)": dict(temperature=1.5, seed=1),
}
mean_logprob = {}
for name, s in settings.items():
    out = generate_ids(model, prompt, max_new_tokens=40, **s).completions[0]
    mean_logprob[name] = float(np.mean(score(model, ids + out.ids).logprobs[len(ids):]))
    print(f"--- {name}   (mean log-probability per new token: {mean_logprob[name]:.2f})\n{prompt}{out.text}\n")
assert mean_logprob["greedy"] > mean_logprob["T=1.5 (hot)"]  # hot sampling wanders into what the model finds unlikely

# %% [markdown]
# Greedy is nothing but "argmax, append, repeat". A loop of our own gives the same text as
# `model.generate(..., temperature=0)`:

# %%
seq = list(ids)
for _ in range(20):
    seq.append(int(np.argmax(model.logits(seq)[-1])))  # the most likely next token, every time
greedy_text = model.generate(prompt, max_new_tokens=20, temperature=0, ignore_eos=True)
assert tok.decode(seq[len(ids):]) == greedy_text
print(repr(greedy_text))

# %% [markdown]
# Greedy text has no randomness to break a loop: once the model's favourite continuation of a
# line leads back to the same line, it repeats. Below, the share of 4-token sequences that occur
# more than once in up to 150 tokens (as many as the context holds), greedy against sampled.

# %%
def repeated_share(token_ids, n=4) -> float:
    grams = [tuple(token_ids[i : i + n]) for i in range(len(token_ids) - n + 1)]
    return 1 - len(set(grams)) / len(grams)


n_long = min(150, model.config.n_ctx - len(ids))
long_greedy = generate_ids(model, prompt, max_new_tokens=n_long, temperature=0, ignore_eos=True).completions[0].ids
long_sampled = generate_ids(model, prompt, max_new_tokens=n_long, temperature=1.0, seed=0, ignore_eos=True).completions[0].ids
g, s = repeated_share(long_greedy), repeated_share(long_sampled)
print(f"repeated 4-grams in {n_long} tokens: greedy {g:.0%}, sampled (T=1) {s:.0%}")
print("here greedy repeats itself more than sampling" if g > s else "here greedy does not repeat itself more than sampling")

# %% [markdown]
# Same seed, same text; other seeds, other texts:

# %%
a = model.generate(prompt, max_new_tokens=20, top_k=40, seed=7)
b = model.generate(prompt, max_new_tokens=20, top_k=40, seed=7)
others = {model.generate(prompt, max_new_tokens=20, top_k=40, seed=s) for s in range(8, 13)}
assert a == b
assert len(others | {a}) > 1  # not all the same
print(repr(a))
print(f"{len(others | {a})} different texts from 6 seeds")

# %% [markdown]
# ## Streaming
#
# `model.stream` yields text as it is generated. A token can end in the middle of a multi-byte
# character; the stream holds such bytes back until the character is complete, so the pieces
# always join to the same text as `generate`. The tokenizer's stream decoder shows it on `é`
# (two bytes in UTF-8):

# %%
decoder = tok.stream_decoder()
e_ids = tok.encode("é")
e_pieces = [decoder.feed(i) for i in e_ids]
print(f"'é' is {len(e_ids)} token(s); the stream decoder hands out {e_pieces}")
assert "".join(e_pieces) == "é"
if len(e_ids) > 1:  # split across tokens: nothing comes out until the character is whole
    assert e_pieces[:-1] == [""] * (len(e_ids) - 1)

pieces = list(model.stream(prompt, max_new_tokens=30, temperature=0.8, seed=3))
print(pieces)
assert "".join(pieces) == model.generate(prompt, max_new_tokens=30, temperature=0.8, seed=3)

# %% [markdown]
# ## Why was this token chosen?
#
# With `trace=True`, every step records the chosen token, its probability under the model's own
# distribution (`prob`, before temperature and filters), its probability in the distribution it
# was drawn from (`sampled_prob`), and the most likely alternatives. Without top-k or top-p every
# token with a probability above 0 can be drawn, now and then one the model gives a fraction of a
# percent: look for the steps with a small `sampled_prob`.

# %%
result = generate_ids(model, prompt, max_new_tokens=8, temperature=0.8, seed=3, trace=True)
completion = result.completions[0]
for step in completion.steps:
    alternatives = ", ".join(f"{t.text!r} {t.prob:.2f}" for t in step.top[:3])
    print(f"step {step.step}: chose {step.token_text!r} (p={step.prob:.3f}, sampled from p={step.sampled_prob:.3f})"
          f"   top 3: {alternatives}")
print(result.stats.summary())
assert [step.token_id for step in completion.steps] == completion.ids
first = completion.steps[0]
assert np.isclose(first.prob, probs[first.token_id])  # the model's own probability, as computed above
assert np.isclose(first.sampled_prob, probabilities(apply_temperature(logits, 0.8))[first.token_id])
assert all(a.prob >= b.prob for a, b in zip(first.top, first.top[1:]))  # alternatives, most likely first

# %% [markdown]
# ## Exercise: top-p (nucleus) filtering
#
# Write `my_top_p(logits, p)`: `logits` is one row, `[n_vocab]`; return a new array of the same
# shape where the kept tokens have their logits unchanged and the others are `-inf`. Keep **the
# fewest most likely tokens whose probabilities add up to at least `p`**, and:
#
# - always at least the most likely token (`p=0` keeps it alone);
# - `p=1` means no filter: return the logits unchanged, even tokens whose probability rounds to 0;
# - ties: among tokens of equal probability, the one with the **lower id is dropped first**
#   (transformers' rule: sort from least to most likely with a stable sort, drop from the start);
# - do not change the input array.
#
# `check_top_p` compares your function with `npgpt.sampling.top_p_filter` on the model's logits
# and on small hand-made cases, and says what differs. (A solution is in
# `notebooks/solutions/06_generation.py`.)

# %%
def check_top_p(my_top_p, logits=logits):
    """Compare ``my_top_p`` with npgpt's ``top_p_filter``; True when right, else an AssertionError
    that says what is wrong."""
    cases = [
        ("probabilities 0.5, 0.33, 0.17, ~0 (the docstring's example)", np.log([3.0, 2.0, 1.0, 1e-9]), 0.6),
        *[(f"the model's next-token logits, p={p}", logits, p) for p in (0.1, 0.5, 0.9, 0.95)],
        ("the model's logits, p=0", logits, 0.0),
        ("the model's logits, p=1", logits, 1.0),
        ("logits 0, -1, -800, -inf with p=1", np.array([0.0, -1.0, -800.0, -np.inf]), 1.0),
        ("8 equal logits, p=0.5", np.zeros(8), 0.5),
        ("probabilities 0.5, 0.25, 0.25, p=0.75", np.log([0.5, 0.25, 0.25]), 0.75),
    ]
    for what, x, p in cases:
        given = x.copy()
        try:
            out = my_top_p(given, p)
        except NotImplementedError:
            print("not done yet: fill in my_top_p, then run this cell again")
            return False
        except Exception as error:
            raise AssertionError(f"{what}: your function raised {error!r}") from error
        out = np.asarray(out)
        want = top_p_filter(x, p)
        assert np.array_equal(given, x, equal_nan=True), f"{what}: your function changed its input; work on a copy"
        assert out.shape == x.shape, f"{what}: you returned shape {out.shape}; return the logits' shape {x.shape}"
        kept, want_kept = np.isfinite(out), np.isfinite(want)
        assert np.all(np.isneginf(out[~kept])), f"{what}: removed tokens must be -inf (you returned nan or +inf)"
        assert np.array_equal(out[kept], x[kept]), (f"{what}: keep the kept logits unchanged and set only the removed ones "
                                                     "to -inf (did you return probabilities, or rescale?)")
        if np.array_equal(kept, want_kept):
            continue
        probs = probabilities(x)
        if p == 1:
            raise AssertionError(f"{what}: p=1 means no filter: return the logits unchanged; you removed "
                                 f"{int((want_kept & ~kept).sum())} token(s)")
        assert kept.any(), f"{what}: you removed every token; always keep at least the most likely one (p=0 keeps it alone)"
        mass = probs[kept].sum()
        assert mass >= p - 1e-9, (f"{what}: the tokens you kept hold only {mass:.4f} < p={p}; keep adding the most likely "
                                  "tokens until they hold at least p (the token that crosses p stays)")
        assert kept.sum() <= want_kept.sum(), (f"{what}: you kept {kept.sum()} tokens; the fewest that hold at least p={p} are "
                                               f"{want_kept.sum()}: stop as soon as the kept tokens reach p")
        if kept.sum() == want_kept.sum() and np.allclose(np.sort(probs[kept]), np.sort(probs[want_kept])):
            raise AssertionError(f"{what}: right number of tokens, but among tokens of equal probability you dropped the "
                                 f"wrong ones: kept ids {np.flatnonzero(kept).tolist()}, expected "
                                 f"{np.flatnonzero(want_kept).tolist()}; the lower id is dropped first (a stable sort from "
                                 "least to most likely)")
        raise AssertionError(f"{what}: you kept ids {np.flatnonzero(kept)[:10].tolist()}..., expected "
                             f"{np.flatnonzero(want_kept)[:10].tolist()}...: keep the most likely tokens")
    print(f"correct: your top-p agrees with npgpt's top_p_filter on all {len(cases)} cases, ties and p=1 included")
    return True


# %%
def my_top_p(logits, p):
    raise NotImplementedError  # your code: return logits with -inf outside the nucleus


check_top_p(my_top_p);
