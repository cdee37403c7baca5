# %% [markdown]
# # 9. Pre-training, then fine-tuning, in NumPy
#
# **What this notebook teaches.** A language model is trained by one objective: at every position,
# predict the next token. The *loss* is the cross-entropy
#
# $$L = -\frac{1}{N}\sum_{i=1}^{N} \log p_\theta(t_i \mid \text{the tokens before } t_i),$$
#
# the average surprise, in nats, of the model at the $N$ tokens $t_i$ that actually came next.
# Training repeats four steps: run the model forward (keeping its activations), compute $L$, run
# the chain rule backward to get $\partial L / \partial \theta$ for every parameter, and move each
# parameter a little against its gradient (AdamW).
#
# The article's central idea is that this is done twice. **Pre-training**: the loop runs for a
# long time on a large general text, from random weights. **Fine-tuning**: the same loop, started
# from the pre-trained weights, runs briefly on a small text of the kind you care about. Here:
#
# 1. the loss on one batch of a small new text, for the bundled (pre-trained) model and for a
#    random model of the same shape;
# 2. the gradient at the logits, $(\mathrm{softmax} - \text{one-hot})/N$, checked numerically;
# 3. the backward pass through the whole model (`npgpt/training/backward.py`), checked numerically;
# 4. AdamW steps;
# 5. what pre-training cost the bundled model (its training record);
# 6. **fine-tuning from the bundled model and from random weights**, on the same text with the same
#    steps, and their losses on held-out text side by side;
# 7. an exercise: write the gradient at the logits yourself.
#
# Open `npgpt/training/backward.py` beside this notebook: each `<name>_backward` mirrors `<name>`
# in `npgpt/model.py`. `npgpt/training/step.py` holds the whole step in four lines.

# %%
import io
import json
import time

import numpy as np

import npgpt
import viz
from npgpt.activations import Tap
from npgpt.hub import resolve
from npgpt.model import gpt2, random_params, softmax
from npgpt.training import (TrainSettings, copy_params, encode_dataset, get_batch, loss_and_grads, split_text,
                            train, train_step)
from npgpt.training.backward import cross_entropy, cross_entropy_backward, gpt2_backward
from npgpt.training.optim import AdamW
from npgpt.weights import flatten

bundled = npgpt.load("shakespeare")  # pre-trained on Shakespeare's plays; its tokenizer is used throughout
config = bundled.config
print(bundled)

# %% [markdown]
# ## The new text
#
# Fifty lines of plain kitchen instructions, written for this notebook: modern prose, nothing like
# a play. The first forty lines are for training; the last ten are held out, to measure how well a
# model predicts text *of that kind* that it has never trained on. Both parts are encoded with the
# bundled model's tokenizer, so the random model below has the same vocabulary.

# %%
KITCHEN_NOTES = """\
Bread needs four things: flour, water, salt and yeast. Everything else is a matter of time.
Start with a large bowl and a kitchen scale, because cups are not precise enough for baking.
Weigh five hundred grams of strong white flour and ten grams of salt into the bowl.
Warm three hundred and fifty grams of water until it feels just warm on the back of your hand.
Stir seven grams of dried yeast into the water and wait a few minutes until it looks cloudy.
Pour the water into the flour and mix with a spoon until no dry flour is left in the bowl.
The dough will be sticky and rough at first. Do not add more flour yet; it will come together.
Tip the dough onto a clean table and knead it for ten minutes, pushing it away and folding it back.
After a few minutes the dough becomes smooth and springs back when you press it with a finger.
Put it back in the bowl, cover it with a damp towel and leave it somewhere warm for an hour.
When the dough has doubled in size, press it down gently to let the large bubbles escape.
Shape it into a round loaf by folding the edges into the middle and turning it over.
Place the loaf on a baking tray dusted with flour and let it rise again for forty minutes.
Meanwhile, heat the oven to two hundred and twenty degrees and put a tray of water at the bottom.
The steam keeps the crust soft for the first minutes, so the loaf can grow in the oven.
Cut a shallow line across the top of the loaf with a sharp knife just before baking.
Bake for thirty minutes, until the crust is deep brown and the bottom sounds hollow when tapped.
Let the bread cool on a rack for at least an hour before you cut it, or the inside will be gummy.
If the loaf is flat, the dough was probably too wet or it rose for too long in a warm room.
If the loaf is dense and heavy, the yeast may have been old or the water may have been too hot.
Water that is too hot kills the yeast; water that is too cold only makes it work more slowly.
A slow rise in a cool kitchen often gives a better flavour than a fast rise in a warm one.
Some bakers leave the dough in the fridge overnight and bake it the next morning.
Whole wheat flour drinks more water than white flour, so add a little more water when you use it.
Rye flour makes a darker and denser loaf with a sour taste that many people love.
Seeds, nuts and dried fruit can be folded into the dough after the first rise.
Soup is even simpler than bread. Most soups start with an onion, a carrot and a stick of celery.
Chop the vegetables into small pieces and cook them slowly in a little oil for ten minutes.
Add a clove of garlic near the end, because garlic burns quickly and turns bitter.
Pour in a litre of stock or water, bring it to the boil and then turn the heat down low.
Add potatoes, beans or lentils to make the soup thick enough to be a meal on its own.
Lentils need about twenty minutes; dried beans need to soak overnight and cook for an hour.
Taste the soup before you add salt, since many stock cubes are already very salty.
A squeeze of lemon juice at the end makes the flavours brighter without making the soup sour.
Fresh herbs such as parsley or basil should go in just before serving, not at the start.
Leftover soup keeps for three days in the fridge and freezes well for up to three months.
Rice is easy once you know the ratio: one cup of rice to one and a half cups of water.
Rinse the rice in cold water until the water runs clear, to wash away the loose starch.
Bring the water to the boil, add the rice and a pinch of salt, then cover the pan with a lid.
Turn the heat to the lowest setting and leave the lid on for fifteen minutes without looking.
Take the pan off the heat and let it rest, still covered, for five more minutes.
Fluff the rice with a fork before serving, so the grains stay separate and light.
Brown rice needs more water and about twice as long, because the outer layer is still on the grain.
Pasta needs a large pot of water, plenty of salt and a timer set two minutes short of the packet.
Save a cup of the cooking water before you drain the pasta; its starch helps the sauce cling.
Toss the pasta with the sauce in the pan for a minute, adding a splash of the water if it looks dry.
Eggs are best cooked gently. Put them in boiling water for six minutes for a soft yolk.
Cool them at once in cold water, so they stop cooking and the shells come away more easily.
For scrambled eggs, beat them with a pinch of salt and stir them slowly over a low heat.
Take them off the heat while they still look a little wet; they finish cooking on the plate.
"""

lines = KITCHEN_NOTES.splitlines(keepends=True)
held_out_text = "".join(lines[-10:])
data = encode_dataset(KITCHEN_NOTES, bundled.tokenizer, val_fraction=len(held_out_text) / len(KITCHEN_NOTES))
train_text, val_text = split_text(KITCHEN_NOTES, len(held_out_text) / len(KITCHEN_NOTES))
assert val_text == held_out_text and len(lines) == 50  # the cut falls exactly between lines 40 and 41
assert data.tokenizer is bundled.tokenizer
print(f"training part: {len(train_text):,} characters, {len(data.train_ids):,} tokens")
print(f"held-out part: {len(val_text):,} characters, {len(data.val_ids):,} tokens; it starts:")
print(val_text[:160])

# %% [markdown]
# ## 1. The loss on one batch
#
# A batch is `batch` random windows of `n_seq + 1` tokens from the training ids; the inputs are the
# first `n_seq`, the targets the same window shifted by one (the token that comes next, at every
# position). We compare two models of the same shape: the bundled one, and one with GPT-2's random
# initialisation. With random weights the logits are all near 0, so every token gets probability
# about $1/n_\text{vocab}$ and the loss is about $\ln n_\text{vocab}$.

# %%
BATCH, N_SEQ = 8, 64  # small, so that everything below runs in seconds on one core
inputs, targets = get_batch(data.train_ids, BATCH, N_SEQ, np.random.default_rng(0))  # [batch, n_seq] each
assert (targets[:, :-1] == inputs[:, 1:]).all()  # the targets are the inputs shifted by one
random_model = npgpt.GPT2(config=config, params=random_params(config, seed=0), tokenizer=bundled.tokenizer, name="random")


def mean_loss(logits, targets):
    """The loss by hand: -log softmax(logits)[target], averaged over the batch's N positions."""
    shifted = logits - logits.max(axis=-1, keepdims=True)  # the same softmax, without overflow
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))  # [batch, n_seq, n_vocab]
    return -np.take_along_axis(log_probs, targets[..., None], axis=-1).mean()


losses = {}
for label, m in {"pre-trained": bundled, "random": random_model}.items():
    logits = gpt2(inputs, m.params, config)  # [batch, n_seq, n_vocab]
    total, count = cross_entropy(logits, targets)  # npgpt's loss: summed nats, and N
    assert count == BATCH * N_SEQ and np.isclose(mean_loss(logits, targets), total / count, rtol=1e-5)
    losses[label] = total / count
    print(f"{label:>12}: loss {total / count:.3f} nats per token (as unsure as a uniform choice among "
          f"{np.exp(total / count):,.0f} tokens)")
print(f"{'ln(n_vocab)':>12}: {np.log(config.n_vocab):.3f}")
assert abs(losses["random"] - np.log(config.n_vocab)) < 0.2
assert losses["pre-trained"] < losses["random"] - 1.0

# %% [markdown]
# Before any fine-tuning, the pre-trained model is already far less surprised by kitchen notes than
# the random one (the asserts: at least 1 nat per token less; the printed numbers say how much).
# Presumably what it learned from Shakespeare (spelling, common words, punctuation) carries over.
#
# ## 2. The gradient at the logits
#
# For one position with logits $z$ and target $t$, the loss is $\log\sum_j e^{z_j} - z_t$. Its
# derivative with respect to $z_j$ is $\mathrm{softmax}(z)_j - [j = t]$: push every logit down in
# proportion to its probability, and the target's up by 1. The loss is the mean over $N$ positions,
# so
#
# $$\frac{\partial L}{\partial z} = \frac{\mathrm{softmax}(z) - \mathrm{onehot}(t)}{N}.$$
#
# `cross_entropy_backward` computes it. We check three consequences, and the value at one logit
# against a finite difference $(L(z + h) - L(z - h)) / 2h$:

# %%
cache = {}
logits = gpt2(inputs, bundled.params, config, tap=Tap(cache=cache))  # forward, keeping every activation
total, count = cross_entropy(logits, targets)
dlogits = cross_entropy_backward(logits, targets, scale=1.0 / count)  # [batch, n_seq, n_vocab]
assert dlogits.shape == logits.shape
assert np.allclose(dlogits.sum(axis=-1), 0, atol=1e-6)  # probabilities sum to 1, the one-hot too
at_target = np.take_along_axis(dlogits, targets[..., None], axis=-1)[..., 0]  # [batch, n_seq]
assert (at_target < 0).all() and (dlogits >= -1e-12).sum() == dlogits.size - count  # only the targets go up

b, i, h = 2, 5, 1e-2
bumped = logits.astype(np.float64)
bumped[b, i, targets[b, i]] += h
up = mean_loss(bumped, targets)
bumped[b, i, targets[b, i]] -= 2 * h
down = mean_loss(bumped, targets)
numerical = (up - down) / (2 * h)
print(f"dL/dz at batch {b}, position {i}, its target: numerical {numerical:+.3e}, backward {dlogits[b, i, targets[b, i]]:+.3e}")
assert np.isclose(numerical, dlogits[b, i, targets[b, i]], rtol=1e-3)

# %% [markdown]
# **The exercise at the end** asks you to write this gradient yourself. This is the check it will
# use: it compares your function with `cross_entropy_backward` on small random logits and on the
# batch above, and tells you what looks wrong. (A solution is in `notebooks/solutions/09_training.py`.)

# %%
def check_cross_entropy_grad(my_grad, logits=logits, targets=targets):
    """Compare ``my_grad(logits, targets)`` with npgpt's gradient of the mean loss. True when right."""
    rng = np.random.default_rng(1)
    small_logits = rng.standard_normal((2, 3, 7)) * 2  # [batch, n_seq, n_vocab]
    small_targets = rng.integers(0, 7, size=(2, 3))
    for z, t in [(small_logits, small_targets), (logits, targets)]:
        try:
            got = my_grad(z.copy(), t.copy())
        except NotImplementedError:
            print("not done yet: fill in my_cross_entropy_grad, then run this cell again")
            return False
        got = np.asarray(got, dtype=np.float64)
        n = t.size
        want = cross_entropy_backward(z, t, scale=1.0 / n).astype(np.float64)
        p = want + (np.arange(z.shape[-1]) == t[..., None]) / n  # softmax(z) / N
        assert got.shape == z.shape, f"your gradient has shape {got.shape}; it must have the logits' shape {z.shape}"

        def close(a):
            return np.allclose(got, a, rtol=1e-4, atol=1e-6 / n)

        assert not close(want * n), f"your gradient is N = {n} times too large: divide by N, the number of positions (batch * n_seq)"
        assert not close(-want), "your gradient has the wrong sign: it is softmax(z) - onehot(t), so the target's entry is negative"
        assert not close(p), "you forgot the one-hot: subtract 1 (divided by N) at each position's target token"
        assert not close(p * n), "you forgot the one-hot and the division by N: (softmax(z) - onehot(t)) / N"
        for axis in range(z.ndim - 1):
            wrong = (softmax(z, axis=axis) - (np.arange(z.shape[-1]) == t[..., None])) / n
            assert not close(wrong), f"your softmax is over axis {axis}; it must be over the last axis (the vocabulary)"
        if not close(want):
            ratio = np.median(got[np.abs(want) > 1e-9] / want[np.abs(want) > 1e-9])
            worst = np.unravel_index(np.argmax(np.abs(got - want)), z.shape)
            hint = f" (it looks scaled by {ratio:.3g}: divide by N = {n}, the number of positions)" if close(want * ratio) else ""
            if not hint and not ((got < 0) == (want < 0)).all():
                hint = " (its negative entries are not at the targets: subtract the one-hot at each position's own target t[b, i])"
            raise AssertionError(f"your gradient differs from npgpt's by up to {np.abs(got - want).max():.3g}, "
                                 f"e.g. at {tuple(map(int, worst))}: {got[worst]:.4g} instead of {want[worst]:.4g}{hint}")
    print(f"correct: your gradient matches npgpt's cross_entropy_backward on random logits and on the batch "
          f"({logits.shape[0]} x {logits.shape[1]} positions, {logits.shape[2]} tokens each)")
    return True

# %% [markdown]
# ## 3. Backward through the whole model
#
# `gpt2_backward` carries $\partial L / \partial z$ back through the LM head, the final layer norm,
# each block in reverse order (MLP, layer norm, attention, layer norm) and the embeddings, reading
# the activations the forward pass kept in `cache`. It returns one gradient per parameter, in a
# nested dict shaped exactly like the parameters. `loss_and_grads` is these three calls in one.

# %%
grads = gpt2_backward(dlogits, inputs, bundled.params, config, cache)
flat_params, flat_grads = flatten(bundled.params), flatten(grads)
assert flat_grads.keys() == flat_params.keys()
assert all(flat_grads[k].shape == p.shape for k, p in flat_params.items())
loss, same_grads = loss_and_grads(bundled.params, config, inputs, targets)
assert np.isclose(loss, total / count) and all(np.array_equal(same_grads_k, flat_grads[k])
                                               for k, same_grads_k in flatten(same_grads).items())
print(f"{len(flat_grads)} gradient arrays, {sum(g.size for g in flat_grads.values()):,} numbers, one per parameter")
print("h.0.attn.c_attn.weight:", flat_grads["h.0.attn.c_attn.weight"].shape)

# %% [markdown]
# Is it right? For a few tensors across the model, nudge the entry with the largest gradient by
# $\pm h$ and compare the change of the loss with the gradient. (The test suite also checks every
# backward function against PyTorch autograd, and a whole model's gradients against Hugging Face's
# `GPT2LMHeadModel`.)

# %%
def loss_with(name, index, delta):
    """The batch's loss with one parameter entry moved by delta (on a copy: the model is unchanged)."""
    params = copy_params(bundled.params)
    flatten(params)[name][index] += delta
    total, count = cross_entropy(gpt2(inputs, params, config), targets)
    return total / count


h = 1e-2
for name in ["wte.weight", "h.0.attn.c_attn.weight", f"h.{config.n_layer - 1}.mlp.c_fc.weight", "ln_f.weight"]:
    index = np.unravel_index(np.argmax(np.abs(flat_grads[name])), flat_grads[name].shape)
    numerical = (loss_with(name, index, h) - loss_with(name, index, -h)) / (2 * h)
    backward = flat_grads[name][index]
    print(f"{name:>24}{str(tuple(map(int, index))):>12}: numerical {numerical:+.5f}, backward {backward:+.5f}")
    assert np.isclose(numerical, backward, rtol=0.01), name

# %% [markdown]
# ## 4. AdamW
#
# AdamW keeps two running averages per parameter, of the gradient ($m$) and of its square ($v$),
# and moves each parameter by $\text{lr} \cdot \hat m / (\sqrt{\hat v} + \epsilon)$, plus a weight
# decay applied to the weights directly (`npgpt/training/optim.py`). On the first step
# $\hat m = g$ and $\hat v = g^2$, so *every* parameter moves by about $\text{lr}$, whatever the
# size of its gradient: Adam divides each gradient by its own running size. `train_step` is the
# whole step: forward, loss, backward, gradient clipping, AdamW. Several steps on the same batch:

# %%
LR = 3e-4
params = copy_params(bundled.params)  # a copy: the bundled model stays as it is
optimizer = AdamW(flatten(params), lr=LR, weight_decay=0.0)
before = flatten(copy_params(params))
step_losses = [train_step(params, config, optimizer, inputs, targets, lr=LR, grad_clip=1.0)["loss"]]
moved = np.concatenate([np.abs(flatten(params)[k] - before[k]).ravel() for k in before])
big = np.concatenate([(np.abs(flat_grads[k]) > 1e-5).ravel() for k in before])  # where Adam's eps is negligible
print(f"first step: parameters with a gradient moved by {np.median(moved[big]):.2e} (median; lr = {LR:.0e}), "
      f"from {moved[big].min():.2e} to {moved[big].max():.2e}")
assert np.allclose(moved[big], LR, rtol=0.02)
for _ in range(5):
    step_losses.append(train_step(params, config, optimizer, inputs, targets, lr=LR, grad_clip=1.0)["loss"])
print("loss on this batch, before each step:", " ".join(f"{x:.3f}" for x in step_losses))
assert all(b < a for a, b in zip(step_losses, step_losses[1:]))

# %% [markdown]
# The loss on this batch falls at every step. That alone says little: a model can learn one
# batch by heart. What matters is the loss on the held-out lines, which no step ever sees: the
# training loop below measures it every few steps.
#
# ## 5. What pre-training cost
#
# The bundled model was pre-trained with this same loop (`npgpt train`, the recipe in its card,
# `weights/README.md`) on tinyshakespeare, from random weights. Its folder keeps the run's record,
# `train_log.json`: the settings, and the held-out loss at every evaluation.

# %%
log_path = resolve("shakespeare") / "train_log.json"
if log_path.is_file():
    record = json.loads(log_path.read_text(encoding="utf-8"))
    s = record["settings"]
    pretrain_tokens = record["step"] * s["batch_size"] * (s["n_seq"] or record["config"]["n_ctx"])
    evals = [e for e in record["evals"] if e["val_tokens"] == record["evals"][0]["val_tokens"]]  # the same held-out text
    print(f"{record.get('mode', 'training')} on {record.get('data', '?')}")
    print(f"pre-training: {record['step']:,} steps of {s['batch_size']} windows, {pretrain_tokens:,} tokens, "
          f"{record['cpu_s'] / 60:,.0f} CPU-minutes; held-out loss {evals[0]['val_loss']:.2f} -> {evals[-1]['val_loss']:.2f} nats per token")
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 1.0
    fig = viz.Figure(figsize=(7, 3))
    ax = fig.add_subplot()
    ax.plot([e["step"] for e in evals], [e["val_loss"] for e in evals], "o-", color="tab:blue")
    ax.set(xlabel="step", ylabel="held-out loss (nats per token)",
           title=f"pre-training the bundled model (held-out loss on {evals[0]['val_tokens']:,} tokens)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
else:
    pretrain_tokens, fig = None, None
    print("this install's bundled model has no train_log.json; its card, weights/README.md, tells how it was trained")
fig

# %% [markdown]
# ## 6. Fine-tuning: from the pre-trained model and from random weights
#
# Now the same training loop, `npgpt.training.train`, runs on the forty training lines twice, with
# identical settings: the same steps, the same batches (drawn from the seed and the step number),
# the same learning rate with its warm-up and decay, no weight decay. One run starts from the
# bundled model's weights; the other from random weights of the same shape. Every few steps each
# is evaluated on the ten held-out lines.
#
# Is a learning rate chosen for fine-tuning unfair to the random start? A third run answers that:
# the random start again, with a larger learning rate (`LR_RANDOM`; the others use `LR`).

# %%
LR_RANDOM = 1e-3
SEED = 0  # the batches of every run (and the random starts) derive from it: change it and rerun
settings = TrainSettings(steps=30, batch_size=BATCH, n_seq=N_SEQ, lr=LR, min_lr=LR / 10, warmup_steps=3,
                         weight_decay=0.0, eval_interval=3, sample_interval=0, seed=SEED)
starts = {
    f"pre-trained start, lr {LR:g}": (copy_params(bundled.params), settings),
    f"random start, lr {LR:g}": (random_params(config, seed=SEED), settings),
    f"random start, lr {LR_RANDOM:g}": (random_params(config, seed=SEED), settings.replace(lr=LR_RANDOM, min_lr=LR_RANDOM / 10)),
}
runs, seconds = {}, {}
for label, (start_params, run_settings) in starts.items():
    model = npgpt.GPT2(config=config, params=start_params, tokenizer=bundled.tokenizer, name=label)
    t0 = time.perf_counter()
    runs[label] = train(model, data, run_settings, stream=io.StringIO())  # the progress lines go to a buffer
    seconds[label] = time.perf_counter() - t0
    curve = " ".join(f"{e['val_loss']:.2f}" for e in runs[label].evals)
    print(f"{label:>28} ({seconds[label]:.1f} s): held-out loss {curve}")

# %%
fig = viz.Figure(figsize=(9, 3.6))
ax = fig.add_subplot()
for (label, run), style in zip(runs.items(), ["o-", "s-", "s--"]):
    ax.plot([e["step"] for e in run.evals], [e["val_loss"] for e in run.evals], style, label=label)
ax.axhline(np.log(config.n_vocab), color="gray", linestyle=":", label="ln(n_vocab): uniform guessing")
ax.set(xlabel="fine-tuning step", ylabel="held-out loss (nats per token)",
       title=f"the same {settings.steps} steps on {len(data.train_ids):,} tokens of kitchen notes")
ax.grid(alpha=0.3)
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
fig.tight_layout()
fig

# %%
pre, rand, rand_fast = (runs[label].evals for label in starts)
margin = rand[-1]["val_loss"] - pre[-1]["val_loss"]
print(f"after {settings.steps} steps: pre-trained start {pre[-1]['val_loss']:.3f}, random start {rand[-1]['val_loss']:.3f}, "
      f"random start with lr {LR_RANDOM:g} {rand_fast[-1]['val_loss']:.3f} nats per token")
print(f"margin: {margin:.3f} nats per token ({margin / rand[-1]['val_loss']:.0%} of the random start's loss; "
      f"{margin / data.val_chars_per_token:.3f} nats per character)")
print(f"the pre-trained model before fine-tuning: {pre[0]['val_loss']:.3f}")
assert all(a["step"] == b["step"] for a, b in zip(pre, rand))  # evaluated at the same steps
assert margin >= 0.2 * rand[-1]["val_loss"]  # the pre-trained start wins by at least a fifth
assert all(p["val_loss"] < r["val_loss"] for p, r in zip(pre, rand))  # and at every evaluation
assert rand_fast[-1]["val_loss"] < rand[-1]["val_loss"]  # the larger rate does help the random start ...
assert pre[-1]["val_loss"] < rand_fast[-1]["val_loss"]  # ... but not enough
assert pre[0]["val_loss"] < rand[-1]["val_loss"]  # zero steps from Shakespeare beat these steps from scratch
third = len(pre) // 3
first_change = pre[third]["val_loss"] - pre[0]["val_loss"]
last_change = pre[-1]["val_loss"] - pre[-1 - third]["val_loss"]
best = min(pre, key=lambda e: e["val_loss"])
print(f"pre-trained start: held-out loss {first_change:+.3f} over the first {pre[third]['step']} steps, "
      f"{last_change:+.3f} over the last {settings.steps - pre[-1 - third]['step']}; lowest {best['val_loss']:.3f} at step {best['step']}")
assert first_change < 0 and abs(last_change) < abs(first_change) / 3  # its gain comes early, then it flattens
if pretrain_tokens:
    finetune_tokens = settings.steps * settings.batch_size * settings.n_seq
    print(f"fine-tuning saw {finetune_tokens:,} tokens, {pretrain_tokens / finetune_tokens:,.0f} times fewer than pre-training")
    assert pretrain_tokens > 100 * finetune_tokens

# %% [markdown]
# What the asserts establish, for the models and settings that ran here: with the same steps,
# batches and learning rate, the pre-trained start ends with a held-out loss lower by at least a
# fifth (the margin is printed above), and is ahead at every evaluation; before any fine-tuning
# it is already ahead of where the random start ends; the random start with the larger learning
# rate gets closer but stays behind. The pre-training was paid for once, on a different text;
# fine-tuning reuses it for a small fraction of the cost.
#
# The curves also show the limit of fine-tuning on forty lines: the pre-trained run's held-out loss
# moves most in its first steps, then flattens (asserted above: its last third of the steps changes
# it less than a third as much as its first third). If its lowest point (printed) comes before the
# last step, the loss has begun to rise again: the model is learning the forty training lines by
# heart rather than the kind of text. Try more steps or a larger learning rate and watch for it.
# `npgpt finetune --model shakespeare --data FILE --out FOLDER` runs the same loop from the command
# line and writes a model folder.
#
# Samples from the two runs, for reading (the measurement is the held-out loss above; a few
# sampled words prove nothing either way):

# %%
prompt = "To boil an egg,"
for label in list(starts)[:2]:
    print(f"{label}: {prompt + runs[label].model.generate(prompt, max_new_tokens=30, temperature=0.8, top_k=40, seed=0)!r}")

# %% [markdown]
# ## 7. Exercise: the gradient at the logits
#
# Write `my_cross_entropy_grad(logits, targets)`: `logits` is `[batch, n_seq, n_vocab]`, `targets`
# is `[batch, n_seq]` (integer ids); return $\partial L / \partial\,\text{logits}$ for the *mean*
# loss $L$, an array of the logits' shape. Section 2 has the formula; `softmax` from
# `npgpt.model` takes an `axis`. `check_cross_entropy_grad` (defined in section 2) compares your
# answer with `npgpt.training.backward.cross_entropy_backward` and says what looks wrong: the
# division by $N$, the sign, the one-hot, or the softmax's axis.
#
# **Where to go next.** `npgpt train --help` and `npgpt finetune --help` list every setting;
# `python benchmarks/bench_train.py` compares this NumPy training step with PyTorch's on the same
# model. A harder exercise, unchecked: write `layer_norm_backward` from its docstring's formula in
# `npgpt/training/backward.py` and compare it with finite differences as in section 3.

# %%
def my_cross_entropy_grad(logits, targets):
    raise NotImplementedError  # your code: return (softmax(logits) - onehot(targets)) / N


check_cross_entropy_grad(my_cross_entropy_grad);
