# %% [markdown]
# # 11. Watch heads form: a previous-token head and an induction head appear during training
#
# **What this notebook teaches.** Attention heads are not designed, they are *learned*: at step 0
# every head spreads its attention almost evenly over the past; a thousand steps later one head of
# the first layer looks at the previous token, and one head of the second layer has become an
# **induction head**: at a token it has seen before, it looks at what came *after* that token
# last time, and the model predicts the same again. Here a small GPT-2 is trained from scratch, in
# NumPy, in about a minute, on a made-up language, and we watch both heads appear together in a
# sudden **phase change** (Olsson et al., "In-context Learning and Induction Heads", 2022), with
# snapshots of their patterns and the loss falling at the same moment.
#
# Everything here is npgpt's public API: `random_params` (with `position_init="sinusoidal"`, see
# notebook 02), `npgpt.training.loss_and_grads` (forward and backward, notebook 09), `AdamW`, and
# `npgpt.inspection` for the scores (notebook 07).

# %%
import time

import numpy as np

import npgpt
import viz
from npgpt import inspection
from npgpt.training import loss_and_grads
from npgpt.training.optim import AdamW, clip_grad_norm, lr_schedule
from npgpt.weights import flatten

N_VOCAB, N_CTX, BATCH, STEPS, LR = 64, 64, 32, 2000, 3e-3
config = npgpt.GPT2Config(n_vocab=N_VOCAB, n_ctx=N_CTX, n_embd=64, n_head=4, n_layer=2)
params = npgpt.random_params(config, seed=0, position_init="sinusoidal")
ATTENTION_START = 6.0  # the query, key and value weights start 6x GPT-2's 0.02 (see below)
for block in params["h"]:
    block["attn"]["c_attn"]["weight"] *= np.float32(ATTENTION_START)
model = npgpt.GPT2(config=config, params=params, tokenizer=None, name="two-token language")
print(model)

# %% [markdown]
# One change from GPT-2's recipe: the attention's query, key and value weights start six times
# larger than GPT-2's N(0, 0.02). That 0.02 was chosen for 768-wide models; in a 64-wide one the
# queries and keys start so small that every head attends evenly, and the gradient that would
# sharpen a head is tiny. With GPT-2's start, the same language, steps and learning rate grew
# previous-token heads (0.70-0.78) but no induction head in 4,000 steps, for two seeds (best
# induction score 0.08, second copy as costly as the first; `weights/README.md` lists such runs);
# with this one it leaves its plateau within the budget.
#
# ## The language: the next token depends on the two before it, and passages repeat
#
# A fixed random table `rule[a, b]` gives, for each pair of tokens, the token that often comes
# next: half the time the next token is `rule[previous, current]`, otherwise any token. Predicting
# well needs the *previous* token as well as the current one, and in a transformer only attention
# can bring it to the current position. Then, in each row, a stretch of the row (8 to 32 tokens)
# is written again right after itself: the second copy can be predicted far better by copying the
# first than by the rule, but only by a model that can find where it is in the first copy.

# %%
rule = np.random.default_rng(123).integers(0, N_VOCAB, (N_VOCAB, N_VOCAB))  # [a, b] -> next token
data_rng = np.random.default_rng(0)


def make_batch(rng, batch=BATCH, n=N_CTX + 1, p_rule=0.5):
    w = np.empty((batch, n), dtype=np.int64)
    w[:, :2] = rng.integers(0, N_VOCAB, (batch, 2))
    for t in range(2, n):
        follows = rng.random(batch) < p_rule
        w[:, t] = np.where(follows, rule[w[:, t - 2], w[:, t - 1]], rng.integers(0, N_VOCAB, batch))
    for row in w:  # a stretch of the row written again right after itself
        length = rng.integers(8, n // 2 + 1)
        start = rng.integers(0, n - 2 * length + 1)
        row[start + length : start + 2 * length] = row[start : start + length]
    return w


sample = make_batch(np.random.default_rng(1), batch=1)[0]
follows = np.mean(sample[2:] == rule[sample[:-2], sample[1:-1]])
print("a row:", sample[:24], "...")
print(f"{follows:.0%} of its tokens follow the rule")
assert 0.3 < follows < 0.9

# %% [markdown]
# What a reader of the rule alone could reach: half the tokens are predictable from the last two,
# the rest are uniform. Its loss (ignoring the copies) is the entropy of that mixture; copying
# the repeated stretch does better on it than any rule.

# %%
p_hit = 0.5 + 0.5 / N_VOCAB  # the rule's token
best_loss = -(p_hit * np.log(p_hit) + (N_VOCAB - 1) * (0.5 / N_VOCAB) * np.log(0.5 / N_VOCAB))
print(f"uniform guessing: {np.log(N_VOCAB):.2f} nats; knowing the rule: about {best_loss:.2f} nats")

# %% [markdown]
# ## Training, with snapshots
#
# Every 100 steps, on a probe of random tokens written twice (`inspection.copying_probe`; the
# training data never holds such rows, and nothing in them follows the rule): the training loss,
# every head's previous-token and induction scores, the loss on the second copy against the
# first, and the patterns of both layers, kept to draw later.

# %%
optimizer = AdamW(flatten(params), lr=LR, betas=(0.9, 0.99), weight_decay=0.0)
PROBE_LENGTH = N_CTX // 2 - 2  # 30 random tokens, then the same 30 again
history, snapshots, snapshot_scores = [], {}, {}


def measure(step, loss):
    probe = inspection.copying_probe(model, length=PROBE_LENGTH, n_probe=2, seed=0)
    _, cache = model.run_with_cache(probe.ids[0])
    history.append({"step": step, "loss": loss, "previous": probe.scores.previous_token.copy(),
                    "induction": probe.scores.induction.copy(), "copy_ratio": probe.ratio})
    snapshots[step] = cache["pattern", 0].copy()  # [n_head, n_seq, n_seq]: layer 0 on the first probe
    snapshot_scores[step] = inspection.head_scores(cache).previous_token[0].copy()  # [n_head]
    probe_snapshots[step] = cache["pattern", 1].copy()  # layer 1 on the same probe


probe_snapshots = {}
t0 = time.perf_counter()
measure(0, float(np.log(N_VOCAB)))
for step in range(1, STEPS + 1):
    w = make_batch(data_rng)
    loss, grads = loss_and_grads(params, config, w[:, :-1], w[:, 1:])
    grads, _ = clip_grad_norm(flatten(grads), 1.0)
    optimizer.step(flatten(params), grads, lr=lr_schedule(step - 1, max_lr=LR, total_steps=STEPS, warmup_steps=50, min_lr=LR / 10))
    if step % 100 == 0:
        measure(step, loss)
elapsed = time.perf_counter() - t0
steps = np.array([h["step"] for h in history])
losses = np.array([h["loss"] for h in history])
previous = np.array([h["previous"] for h in history])  # [snapshots, n_layer, n_head]
induction = np.array([h["induction"] for h in history])
copy_ratio = np.array([h["copy_ratio"] for h in history])
print(f"{STEPS} steps in {elapsed:.0f} s; loss {losses[0]:.2f} -> {losses[-1]:.2f} nats")

# %% [markdown]
# ## The induction head forms, suddenly
#
# The head with the highest induction score at the end is found, not chosen. Its score and the
# probe's copy ratio (second copy's loss / first copy's) over the steps: a plateau, then a jump
# within a few hundred steps.

# %%
ind_layer, ind_head = inspection.best_head(induction[-1])
ind_curve = induction[:, ind_layer, ind_head]
print(f"induction head {ind_layer}.{ind_head}:", ", ".join(f"{s}: {v:.2f}" for s, v in zip(steps, ind_curve)))
print("copy ratio:", ", ".join(f"{s}: {v:.2f}" for s, v in zip(steps, copy_ratio)))
assert ind_layer == 1  # an induction head needs a head before it (next section)
assert ind_curve[0] < 0.15 and ind_curve[-1] >= 0.4  # from nothing to most of its attention
assert copy_ratio[0] > 0.9 and copy_ratio[-1] <= 0.5  # and copying now pays: the second copy costs at most half
plateau_end = int(steps[np.flatnonzero(ind_curve < 0.15).max()])  # the last snapshot still on the plateau
risen = int(steps[np.flatnonzero(ind_curve >= 0.4).min()])  # the first with the head formed
print(f"on the plateau (score < 0.15) until step {plateau_end}; formed (score >= 0.4) by step {risen}")
assert plateau_end >= 500 and risen - plateau_end <= 500  # a long plateau, then a jump within 500 steps

# %% [markdown]
# ## The previous-token head forms at the same moment
#
# An induction head needs, at each earlier position, to know which token came *before* it: that is
# written there by a previous-token head in the first layer (notebook 07). The strongest one here
# grows in the same stretch of steps (how far it gets in this budget is printed; it goes on
# sharpening with more steps): the two heads form together, as in Olsson et al.

# %%
layer, head = inspection.best_head(previous[-1])
curve = previous[:, layer, head]
print(f"head {layer}.{head}: previous-token score", ", ".join(f"{s}: {v:.2f}" for s, v in zip(steps, curve)))
assert layer == 0 and curve[-1] > 3 * curve[0]  # a first-layer head, several times more on the previous token


def halfway(c):
    """The first step at which a curve has covered half of its way from start to end."""
    return int(steps[np.flatnonzero(c >= (c[0] + c[-1]) / 2).min()])


print(f"halfway: the previous-token head at step {halfway(curve)}, the induction head at step {halfway(ind_curve)}")
assert abs(halfway(curve) - halfway(ind_curve)) <= 300  # they form together
before = losses[(steps <= plateau_end) & (steps > plateau_end - 300)].mean()
after = losses[(steps >= risen) & (steps < risen + 300)].mean()
print(f"training loss: {before:.2f} nats just before, {after:.2f} just after")
assert before - after > 0.2

# %%
fig = viz.Figure(figsize=(10, 3))
ax1 = fig.add_subplot(1, 2, 1)
ax1.plot(steps, losses, marker="o")
ax1.axhline(best_loss, color="grey", ls="--", label="knowing the rule only")
ax1.set(xlabel="step", ylabel="training loss (nats)", title="loss")
ax1.legend()
ax2 = fig.add_subplot(1, 2, 2)
ax2.plot(steps, curve, lw=2, label=f"previous-token score, head {layer}.{head}")
ax2.plot(steps, ind_curve, lw=2, label=f"induction score, head {ind_layer}.{ind_head}")
ax2.plot(steps, copy_ratio, "k--", label="copy ratio (2nd / 1st copy loss)")
ax2.set(xlabel="step", ylabel="score", title="the two heads form together", ylim=(0, 1.1))
ax2.legend(fontsize=7)
fig.tight_layout()
fig

# %% [markdown]
# ## Snapshots of the two patterns
#
# Top: the previous-token head on the first 24 tokens of the probe, at four moments; its line just
# below the diagonal appears. Bottom: the induction head on the probe (30 random tokens written twice);
# from the second copy on, each token looks at the token that followed its first occurrence: a
# stripe 29 places below the diagonal.

# %%
moments = [0, plateau_end, risen, STEPS]
fig = viz.Figure(figsize=(11, 5.5))
for i, s in enumerate(moments):
    ax = fig.add_subplot(2, len(moments), i + 1)
    ax.imshow(snapshots[s][head][:24, :24], cmap="Blues", vmin=0, vmax=1)
    ax.set(title=f"step {s}: prev {curve[list(steps).index(s)]:.2f}", xlabel="key", ylabel="query" if i == 0 else "")
    ax = fig.add_subplot(2, len(moments), len(moments) + i + 1)
    ax.imshow(probe_snapshots[s][ind_head], cmap="Oranges", vmin=0, vmax=1)
    ax.set(title=f"step {s}: induction {ind_curve[list(steps).index(s)]:.2f}", xlabel="key", ylabel="query" if i == 0 else "")
fig.tight_layout()
first, last = snapshots[0][head][:24, :24], snapshots[STEPS][head][:24, :24]
sub = np.arange(8, 24)
print(f"attention on the previous token (queries 8-23): {first[sub, sub - 1].mean():.2f} at step 0, {last[sub, sub - 1].mean():.2f} at the end")
assert last[sub, sub - 1].mean() > 3 * first[sub, sub - 1].mean()
queries = np.arange(PROBE_LENGTH, 2 * PROBE_LENGTH)  # the second copy
stripe = probe_snapshots[STEPS][ind_head][queries, queries - PROBE_LENGTH + 1].mean()
before = probe_snapshots[0][ind_head][queries, queries - PROBE_LENGTH + 1].mean()
print(f"attention on the stripe: {before:.2f} at step 0, {stripe:.2f} at the end")
assert stripe > 0.4 > before
fig

# %% [markdown]
# The probe's tokens are random: nothing in them can be predicted from the rule, and the model
# never saw them. The induction head is a general copying mechanism, not a memory of the data.
# Notebook 07 shows how to find such heads in a trained model and break them with hooks.

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
