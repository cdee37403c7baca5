# %% [markdown]
# # 9. Pre-training and fine-tuning, in NumPy
#
# **What this notebook teaches.** A language model is trained by one objective: at every position,
# predict the next token. The *loss* is the cross-entropy
#
# $$L = -\frac{1}{N}\sum_{t} \log p_\theta(x_{t+1} \mid x_{\le t}),$$
#
# the average surprise, in nats, of the model at the token that actually came next. Training is
# repeating four steps: run the model forward (keeping its activations), compute $L$, run the
# chain rule backward to get $\partial L / \partial \theta$ for every parameter, and move each
# parameter a little against its gradient (AdamW). Here we:
#
# 1. learn a byte-level BPE tokenizer from a text (`npgpt/bpe_train.py`);
# 2. take one training step by hand: forward, loss, backward (`npgpt/backward.py`), and check a
#    gradient numerically;
# 3. pre-train a tiny GPT-2 from random weights for about a minute and watch the loss fall and the
#    samples turn from noise into something English-shaped (`npgpt/train.py`);
# 4. fine-tune the bundled Shakespeare model on a different text.
#
# Open `npgpt/backward.py` beside this notebook: each `<name>_backward` mirrors `<name>` in
# `npgpt/model.py`.

# %%
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import npgpt
from npgpt.training.backward import cross_entropy, cross_entropy_backward, gpt2_backward
from npgpt.training.bpe import learn_merges, learn_tokenizer
from npgpt.activations import Tap
from npgpt.model import gpt2
from npgpt.training import TrainSettings, encode_dataset, sample_text, split_text, train


def load_text() -> tuple[str, str]:
    """tinyshakespeare if it is on disk or can be downloaded; else text written by the bundled model."""
    for path in [Path("data/tinyshakespeare.txt"), Path("../data/tinyshakespeare.txt")]:
        if path.is_file():
            return path.read_text(encoding="utf-8"), str(path)
    try:
        from npgpt.training.data import download

        path = download("tinyshakespeare", Path("../data/tinyshakespeare.txt"), timeout=10)
        return path.read_text(encoding="utf-8"), str(path)
    except npgpt.NpgptError:  # offline: let the bundled model write a small corpus in one batch
        bundled = npgpt.load("shakespeare")
        texts = bundled.generate(["\n"] * 16, max_new_tokens=250, temperature=0.8, seed=0, ignore_eos=True)
        return "\n".join(texts), "samples of the bundled Shakespeare model (offline)"


text, source = load_text()
print(f"{len(text):,} characters from {source}")
print(text[:300])

# %% [markdown]
# ## 1. A tokenizer learned from the text
#
# Byte-level BPE starts from the 256 bytes and repeatedly merges the most frequent adjacent pair
# into a new token. The first merges are the commonest pairs of the text: a space before a letter,
# `th`, `he`... We learn only from the training part (the first 90%); the last 10% is held out
# for validation.

# %%
train_text, val_text = split_text(text, 0.1)
for (left, right), count in learn_merges(train_text[:200_000], 270)[:12]:
    print(f"{left!r:>8} + {right!r:<8} -> {left + right!r:<10} seen {count:,} times")

# %%
t0 = time.perf_counter()
tokenizer = learn_tokenizer(train_text, 512)
data = encode_dataset(text, tokenizer, val_fraction=0.1)
print(f"learned {tokenizer.n_vocab} tokens in {time.perf_counter() - t0:.1f} s")
print(f"{len(data.train_ids):,} training tokens, {len(data.val_ids):,} validation tokens, "
      f"{data.val_chars_per_token:.2f} characters per token")
print(tokenizer.decode_tokens(tokenizer.encode("ROMEO: But soft, what light through yonder window breaks?")))

# %% [markdown]
# ## 2. One training step, by hand
#
# A tiny model: 2 layers, `n_embd` 96, a context of 64 tokens. With random weights it predicts
# every token with probability about $1/n_\text{vocab}$, so its loss starts near
# $\ln n_\text{vocab}$.

# %%
config = npgpt.GPT2Config(n_vocab=tokenizer.n_vocab, n_ctx=64, n_embd=96, n_head=4, n_layer=2)
model = npgpt.GPT2(config=config, params=npgpt.model.random_params(config, seed=0), tokenizer=tokenizer, name="tiny")
print(model)

rng = np.random.default_rng(0)
starts = rng.integers(0, len(data.train_ids) - 65, size=8)
windows = data.train_ids[starts[:, None] + np.arange(65)]  # [batch, n_seq + 1]
inputs, targets = windows[:, :-1], windows[:, 1:]  # the targets are the inputs shifted by one

cache = {}
logits = gpt2(inputs, model.params, config, tap=Tap(cache=cache))  # forward, keeping every activation
total, count = cross_entropy(logits, targets)
print(f"loss {total / count:.3f} nats/token; ln(n_vocab) = {np.log(config.n_vocab):.3f}")

# %% [markdown]
# Backward: the gradient of the mean loss with respect to the logits is
# $(\mathrm{softmax}(\text{logits}) - \text{onehot}(\text{target}))/N$; `gpt2_backward` carries it
# back through the LM head, each block (MLP, layer norm, attention, in reverse order) and the
# embeddings. The result has exactly the shape of the parameters.

# %%
dlogits = cross_entropy_backward(logits, targets, scale=1.0 / count)
grads = gpt2_backward(dlogits, inputs, model.params, config, cache)
for name in ["wte", "wpe"]:
    print(name, grads[name]["weight"].shape)
print("h.0.attn.c_attn.weight", grads["h"][0]["attn"]["c_attn"]["weight"].shape)

# %% [markdown]
# Is it right? Nudge one weight by $\pm h$ and compare the change in the loss with the gradient.
# (The test suite checks every backward function against PyTorch autograd, and a whole model's
# gradients against Hugging Face's `GPT2LMHeadModel`.)

# %%
def loss_of(params):
    total, count = cross_entropy(gpt2(inputs, params, config), targets)
    return total / count


w = model.params["h"][1]["mlp"]["c_fc"]["weight"]
i, j, h = 3, 7, 1e-2
saved = w[i, j]
w[i, j] = saved + h
up = loss_of(model.params)
w[i, j] = saved - h
down = loss_of(model.params)
w[i, j] = saved
print(f"numerical  (L(w+h) - L(w-h)) / 2h = {(up - down) / (2 * h):+.6f}")
print(f"backward   dL/dw                  = {grads['h'][1]['mlp']['c_fc']['weight'][i, j]:+.6f}")

# %% [markdown]
# ## 3. Pre-training for a minute
#
# `npgpt.train.train` repeats the step with AdamW, a warm-up then cosine-decaying learning rate
# and gradient clipping, evaluates on the held-out text and writes samples as it goes.
# `on_step` lets us watch; we stop after about a minute.

# %%
settings = TrainSettings(steps=400, batch_size=12, n_seq=64, lr=3e-3, min_lr=3e-4, warmup_steps=20,
                         eval_interval=50, eval_tokens=8192, sample_interval=50, sample_tokens=40,
                         sample_prompt="ROMEO:")
losses = []
start = time.perf_counter()


def watch(step, metrics):
    losses.append(metrics["loss"])
    if time.perf_counter() - start > 60:
        raise KeyboardInterrupt  # a minute is enough for a notebook


import io

log = io.StringIO()
try:
    result = train(model, data, settings, stream=log, on_step=watch)
except KeyboardInterrupt:
    pass
print(f"{len(losses)} steps in {time.perf_counter() - start:.0f} s; loss {losses[0]:.2f} -> {np.mean(losses[-10:]):.2f}")
print("\n".join(line for line in log.getvalue().splitlines() if "validation" in line))

# %% [markdown]
# The training loss (each step's batch) and the validation loss (text the model never trains on):

# %%
evals = [line for line in log.getvalue().splitlines() if "validation loss" in line]
eval_steps = [int(line.split(":")[0].split()[1]) for line in evals]
eval_losses = [float(line.split("validation loss ")[1].split()[0]) for line in evals]
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(np.arange(1, len(losses) + 1), losses, alpha=0.5, label="training loss (per batch)")
ax.plot(eval_steps, eval_losses, "o-", label="validation loss")
ax.axhline(np.log(config.n_vocab), color="gray", linestyle=":", label="ln(n_vocab): uniform guessing")
ax.set_xlabel("step"); ax.set_ylabel("nats per token"); ax.legend(); ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# And the samples written during training: noise at first, then the shape of a play (names in
# capitals, a colon, line breaks), then words.

# %%
for line in log.getvalue().splitlines():
    if "sample" in line:
        print(line[:160])
print("now:", repr("ROMEO:" + sample_text(model, "ROMEO:", 40, seed=1)))

# %% [markdown]
# The bundled model (`weights/shakespeare`) is the same recipe at a larger scale: 8 layers,
# `n_embd` 192, 1024 tokens, trained with `npgpt train` for 3000 steps with dropout (the commands
# and the run's history are in its card, `weights/README.md`). Its loss curve:

# %%
from npgpt.hub import resolve  # noqa: E402  (the folder of a model name)

try:
    folder = Path(resolve("shakespeare"))
    img = plt.imread(folder / "loss.png")
    plt.figure(figsize=(8, 4.5)); plt.imshow(img); plt.axis("off"); plt.show()
except Exception as e:  # the figure is optional
    print("no loss.png for the bundled model:", e)

# %% [markdown]
# ## 4. Fine-tuning
#
# Fine-tuning is the same loop started from trained weights, with a small learning rate and few
# steps. Here the bundled Shakespeare model reads a short text in a very different style, and
# its loss on held-out lines of that text falls within a few steps. `npgpt finetune --model
# shakespeare --data FILE` does the same from the command line and writes a model folder.

# %%
modern = "\n".join(
    f"Q: What is {a} plus {b}?\nA: {a} plus {b} is {a + b}.\n" for a in range(1, 40) for b in range(1, 12)
)
bundled = npgpt.load("shakespeare")
tuned = npgpt.GPT2(config=bundled.config, params=npgpt.training.copy_params(bundled.params),
                   tokenizer=bundled.tokenizer, name="shakespeare-arithmetic")
ft_data = encode_dataset(modern, tuned.tokenizer, 0.1)
ft_settings = TrainSettings(steps=60, batch_size=8, n_seq=64, lr=1e-3, min_lr=1e-4, warmup_steps=5,
                            weight_decay=0.0, eval_interval=20, sample_interval=0)
log = io.StringIO()
ft = train(tuned, ft_data, ft_settings, stream=log)
for e in ft.evals:
    print(f"step {e['step']:3d}: validation loss {e['val_loss']:.3f} nats/token")
print("before:", repr(bundled.generate("Q: What is 3 plus 4?\nA:", max_new_tokens=12, temperature=0, ignore_eos=True)))
print("after: ", repr(tuned.generate("Q: What is 3 plus 4?\nA:", max_new_tokens=12, temperature=0, ignore_eos=True)))

# %% [markdown]
# Sixty steps taught it the *form* (the question, the answer line, "plus", "is"); whether the sum
# is right is another matter for a 3.8M-parameter model that has seen a few hundred examples.
#
# **Where to go next.** `npgpt train --help` lists every knob; `python benchmarks/bench_train.py`
# compares this NumPy training step with PyTorch's on the same model.
