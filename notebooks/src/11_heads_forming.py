# %% [markdown]
# # 11. Watch heads form: a previous-token head appears during training
#
# **What this notebook teaches.** Attention heads are not designed, they are *learned*: at step 0
# every head spreads its attention almost evenly over the past; a few hundred steps later the
# heads of the first layer look mostly at one place. Here a small GPT-2 is trained from scratch, in NumPy, in about
# a minute, on a made-up language in which the next token depends on the **two** tokens before
# it. The model can only read the token before the current one through attention, so it grows a
# **previous-token head**: we take snapshots of that head's pattern and score as it forms, and
# see the sudden change in the loss that comes with it.
#
# The same loop also tracks the **induction score** (attention to the token after an earlier
# occurrence of the current one, notebook 07): the training text holds spans written twice, so
# copying would pay. Whether an induction head forms within this budget is measured below, not
# assumed: in Olsson et al. (2022) it forms in a sudden *phase change*, after a plateau that is
# long compared with a notebook's minute.
#
# Everything here is npgpt's public API: `random_params` (with `position_init="sinusoidal"`, see
# notebook 02), `npgpt.training.loss_and_grads` (forward and backward, notebook 09), `AdamW`, and
# `npgpt.inspection` for the scores.

# %%
import time

import numpy as np

import npgpt
import viz
from npgpt import inspection
from npgpt.training import loss_and_grads
from npgpt.training.optim import AdamW, clip_grad_norm, lr_schedule
from npgpt.weights import flatten

N_VOCAB, N_CTX, BATCH, STEPS, LR = 64, 64, 32, 1500, 3e-3
config = npgpt.GPT2Config(n_vocab=N_VOCAB, n_ctx=N_CTX, n_embd=64, n_head=4, n_layer=2)
model = npgpt.GPT2(config=config, params=npgpt.random_params(config, seed=0, position_init="sinusoidal"),
                   tokenizer=None, name="trigram")
print(model)

# %% [markdown]
# ## The language: the next token depends on the two before it
#
# A fixed random table `rule[a, b]` gives, for each pair of tokens, the token that usually comes
# next: 70% of the time the next token is `rule[previous, current]`, otherwise any token.
# Predicting well needs the *previous* token as well as the current one, and in a transformer only
# attention can bring it to the current position. In each row a random span is then written twice
# in a row, so copying could pay as well.

# %%
rule = np.random.default_rng(123).integers(0, N_VOCAB, (N_VOCAB, N_VOCAB))  # [a, b] -> next token
data_rng = np.random.default_rng(0)


def make_batch(rng, batch=BATCH, n=N_CTX + 1, p_rule=0.7):
    w = np.empty((batch, n), dtype=np.int64)
    w[:, :2] = rng.integers(0, N_VOCAB, (batch, 2))
    for t in range(2, n):
        follows = rng.random(batch) < p_rule
        w[:, t] = np.where(follows, rule[w[:, t - 2], w[:, t - 1]], rng.integers(0, N_VOCAB, batch))
    for row in w:  # a span written twice
        length = rng.integers(8, 25)
        start = rng.integers(0, n - 2 * length + 1)
        row[start + length : start + 2 * length] = row[start : start + length]
    return w


sample = make_batch(np.random.default_rng(1), batch=1)[0]
follows = np.mean(sample[2:] == rule[sample[:-2], sample[1:-1]])
print("a row:", sample[:24], "...")
print(f"{follows:.0%} of its tokens follow the rule")
assert 0.5 < follows < 0.95

# %% [markdown]
# What a perfect reader of this language could reach: 70% of tokens are predictable from the last
# two, the rest are uniform. Its loss (ignoring the copies) is the entropy of that mixture.

# %%
p_hit = 0.7 + 0.3 / N_VOCAB  # the rule's token
best_loss = -(p_hit * np.log(p_hit) + (N_VOCAB - 1) * (0.3 / N_VOCAB) * np.log(0.3 / N_VOCAB))
print(f"uniform guessing: {np.log(N_VOCAB):.2f} nats; knowing the rule: about {best_loss:.2f} nats")

# %% [markdown]
# ## Training, with snapshots
#
# Every 100 steps: the training loss, every head's previous-token score and induction score
# (on a probe of random tokens written twice, `inspection.copying_probe`), and the attention
# pattern of every layer-0 head on one fixed row, kept to draw later.

# %%
params = model.params
optimizer = AdamW(flatten(params), lr=LR, betas=(0.9, 0.99), weight_decay=0.0)
probe_row = make_batch(np.random.default_rng(2), batch=1)[0][:N_CTX]
history, snapshots, snapshot_scores = [], {}, {}


def measure(step, loss):
    probe = inspection.copying_probe(model, length=N_CTX // 2 - 2, n_probe=2, seed=0)
    _, cache = model.run_with_cache(probe_row)
    scores = inspection.head_scores(cache)
    history.append({"step": step, "loss": loss, "previous": scores.previous_token.copy(),
                    "induction": probe.scores.induction.copy(), "copy_ratio": probe.ratio})
    snapshots[step] = cache["pattern", 0].copy()  # [n_head, n_seq, n_seq]: layer 0 on the fixed row
    snapshot_scores[step] = scores.previous_token[0].copy()  # [n_head]


t0 = time.perf_counter()
measure(0, float(np.log(N_VOCAB)))
for step in range(1, STEPS + 1):
    w = make_batch(data_rng)
    loss, grads = loss_and_grads(params, config, w[:, :-1], w[:, 1:])
    grads, _ = clip_grad_norm(flatten(grads), 1.0)
    optimizer.step(flatten(params), grads, lr=lr_schedule(step - 1, max_lr=LR, total_steps=STEPS, warmup_steps=50, min_lr=LR / 2))
    if step % 100 == 0:
        measure(step, loss)
elapsed = time.perf_counter() - t0
steps = np.array([h["step"] for h in history])
losses = np.array([h["loss"] for h in history])
previous = np.array([h["previous"] for h in history])  # [snapshots, n_layer, n_head]
induction = np.array([h["induction"] for h in history])
print(f"{STEPS} steps in {elapsed:.0f} s; loss {losses[0]:.2f} -> {losses[-1]:.2f} nats")

# %% [markdown]
# ## The previous-token head forms
#
# Here every layer-0 head turns to the previous token (the language rewards it that much); the
# strongest one is found, not chosen, and followed below.

# %%
layer, head = inspection.best_head(previous[-1])
curve = previous[:, layer, head]
print(f"head {layer}.{head}: previous-token score", ", ".join(f"{s}: {v:.2f}" for s, v in zip(steps, curve)))
assert curve[0] < 0.2 and curve[-1] > 0.5  # from spread out to mostly one key
assert np.all(previous[-1, 0] > 2 * previous[0, 0])  # every layer-0 head moved towards the previous token
jump = int(np.argmax(np.diff(curve)))  # the 100 steps in which it grew most
print(f"it grew most between steps {steps[jump]} and {steps[jump + 1]} (+{np.diff(curve)[jump]:.2f})")
assert np.diff(curve)[jump] > 3 * np.median(np.abs(np.diff(curve)))  # sudden, not a steady drift
loss_drop = losses[jump] - losses[jump + 2] if jump + 2 < len(losses) else losses[jump] - losses[-1]
print(f"the loss fell by {loss_drop:.2f} nats over the same stretch")
assert loss_drop > 0.2

# %%
fig = viz.Figure(figsize=(9, 3))
ax1 = fig.add_subplot(1, 2, 1)
ax1.plot(steps, losses, marker="o")
ax1.axhline(best_loss, color="grey", ls="--", label="knowing the rule")
ax1.set(xlabel="step", ylabel="training loss (nats)", title="loss")
ax1.legend()
ax2 = fig.add_subplot(1, 2, 2)
for h in range(config.n_head):
    ax2.plot(steps, previous[:, 0, h], label=f"0.{h}", lw=2 if (layer, head) == (0, h) else 1)
ax2.plot(steps, induction.max(axis=(1, 2)), "k--", label="best induction")
ax2.set(xlabel="step", ylabel="score", title="previous-token score of layer 0's heads", ylim=(0, 1))
ax2.legend(fontsize=7)
fig.tight_layout()
fig

# %% [markdown]
# ## Snapshots of its pattern
#
# The same 24 tokens at four moments. At step 0 each row is spread over the whole past (the
# first rows look sharp only because they have few keys); by the end, the line just below the
# diagonal: each token looks at the one before it.

# %%
moments = [0, int(steps[jump]), int(steps[min(jump + 2, len(steps) - 1)]), STEPS]
fig = viz.Figure(figsize=(11, 3))
for i, s in enumerate(moments):
    ax = fig.add_subplot(1, len(moments), i + 1)
    ax.imshow(snapshots[s][head][:24, :24], cmap="Blues", vmin=0, vmax=1)
    score = curve[list(steps).index(s)]
    ax.set(title=f"step {s}: score {score:.2f}", xlabel="key", ylabel="query" if i == 0 else "")
fig.tight_layout()
first, last = snapshots[0][head][:24, :24], snapshots[STEPS][head][:24, :24]
sub = np.arange(1, 24)
assert last[sub, sub - 1].mean() > 0.5 > first[sub[8:], sub[8:] - 1].mean()
fig

# %% [markdown]
# ## And the induction head?
#
# The data also rewards copying, and the previous-token head is the first half of an induction
# circuit (notebook 07). But within this minute no head's induction score rises and the second
# copy of the probe costs as much as the first: the induction head's phase change comes after a
# much longer plateau (in our own runs on this machine, small models trained on random spans
# written twice had not left it after thousands of steps, as `weights/README.md` records). The assert below states what ran here; if you train longer, it is the one to watch.

# %%
print(f"best induction score at the end: {induction[-1].max():.2f}; "
      f"second copy / first copy loss: {history[-1]['copy_ratio']:.2f}")
if induction[-1].max() < 0.4:
    assert history[-1]["copy_ratio"] > 0.8  # no induction head yet: copying does not pay off
else:
    print("an induction head formed in this run: look at notebook 07 for how to find and break it")

# %% [markdown]
# ## Exercise: a previous-token score
#
# Write `my_previous_token_score(pattern)` for one head's pattern `[n_seq, n_seq]` (row = query,
# column = key): the mean, over queries 1 .. n_seq - 1, of the attention each gives the key just
# before it. `check_previous_token_score` compares it with `npgpt.inspection.head_scores` on every
# snapshot above. (A solution is in `notebooks/solutions/11_heads_forming.py`.)

# %%
def check_previous_token_score(answer):
    """Compare ``answer(pattern)`` with npgpt's score on every snapshot's heads. True when right."""
    for s, patterns in snapshots.items():
        for h, pattern in enumerate(patterns):
            expected = snapshot_scores[s][h]  # inspection.head_scores on the same cache
            try:
                got = answer(pattern.copy())
            except NotImplementedError:
                print("not done yet: fill in my_previous_token_score, then run this cell again")
                return False
            assert np.ndim(got) == 0, f"return one number per pattern, got shape {np.shape(got)}"
            diagonal = np.mean(np.diag(pattern)[1:])
            assert not np.isclose(got, diagonal, atol=1e-6) or np.isclose(got, expected, atol=1e-6), \
                "that is the attention each token gives itself (the diagonal): take the key one to the left"
            including_first = np.mean(np.r_[pattern[0, 0], pattern[np.arange(1, len(pattern)), np.arange(len(pattern) - 1)]])
            assert not np.isclose(got, including_first, atol=1e-6) or np.isclose(got, expected, atol=1e-6), \
                "query 0 has no previous token: average over queries 1 .. n_seq - 1 only"
            assert np.isclose(got, expected, atol=1e-6), \
                f"step {s}, head {h}: got {got:.4f}, expected {expected:.4f} (mean of pattern[i, i - 1] for i >= 1)"
    print(f"correct: your score matches npgpt's on all {len(snapshots) * config.n_head} snapshots")
    return True


# %%
def my_previous_token_score(pattern):
    raise NotImplementedError  # your code: pattern[i, i - 1] for i = 1 .. n_seq - 1, averaged


check_previous_token_score(my_previous_token_score);
