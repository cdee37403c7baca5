# %% [markdown]
# # 8. Applications and limits: what a small model can do, measured
#
# **What this notebook teaches.** The article lists what GPT models are used for (translation,
# summarization, question answering, text generation) and what limits them (data bias, cost).
# The GPT-2 paper's claim was that a model trained only to predict the next token can do tasks
# it was never trained for, if the task is made to look like text ("zero-shot"). Two ways to ask:
#
# - **generate** after a prompt that sets up the task: the paper's `TL;DR:` for summaries and
#   `Q: ... A:` for answers;
# - **score** a few candidate answers and pick the one the model finds most probable
#   (zero-shot multiple choice; the paper used it for the Children's Book Test and reported
#   93.3% on common nouns with its 1.5B model).
#
# The bundled model (`weights/shakespeare`, a few million parameters trained on about 1 MB of
# Shakespeare) is far too small for the first way. The second way works *inside its domain*,
# and we measure how well, with a chance baseline. Then the limits, measured on the same model:
# a bias (a log-probability gap between two continuations that differ in one gendered word) and
# the cost of a forward pass in FLOPs against the time it takes here.
#
# Every claim below is checked by an `assert` on this run's numbers; what needs gpt2 is run
# only when it is on disk (`npgpt download gpt2`) and is otherwise worded as what you would see.

# %%
import math
import time

import numpy as np

import npgpt
import viz
from npgpt.generate import score
from npgpt.model import log_softmax, softmax

model = npgpt.load("shakespeare")  # the bundled model: small, on disk, the same for every reader
tok = model.tokenizer
c = model.config
print(model)


def continuation_logprobs(model, prompt: str, continuation: str) -> np.ndarray:
    """log P(each token of ``continuation`` | ``prompt`` and the continuation's tokens before it).

    The two parts are tokenized separately and their ids joined, so every candidate is scored
    after exactly the same prompt tokens (tokenizing ``prompt + continuation`` as one string can
    merge the last prompt token with the first candidate token).
    """
    p, cont = model.tokenizer.encode(prompt), model.tokenizer.encode(continuation)
    assert p and cont, "both the prompt and the continuation need at least one token"
    s = score(model, p + cont)  # s.logprobs[t] = log P(ids[t] | ids[:t]), natural log
    return np.array(s.logprobs[len(p):])


def p_at_least(k: int, n: int, chance: float) -> float:
    """P(at least k right out of n) when every answer is a guess right with probability ``chance``."""
    return sum(math.comb(n, i) * chance**i * (1 - chance) ** (n - i) for i in range(k, n + 1))

# %% [markdown]
# ## Scoring a continuation
#
# One forward pass over prompt + continuation gives, at every position, the distribution of the
# next token. The continuation's score is the sum of its tokens' log-probabilities:
#
# $$\log P(\text{continuation} \mid \text{prompt}) = \sum_{t \in \text{continuation}} \log P(x_t \mid x_{<t}).$$
#
# A sum favours short candidates (every token costs something); the mean per token removes that,
# at the price of rewarding long candidates whose later tokens are easy once the first is chosen.
# We print both.

# %%
prompt, candidates = "Good morrow, my", [" lord", " table"]
for cand in candidates:
    lps = continuation_logprobs(model, prompt, cand)
    print(f"{prompt!r} + {cand!r:9} tokens {tok.decode_tokens(tok.encode(cand))}  "
          f"log-probs {np.round(lps, 2)}  total {lps.sum():6.2f}  per token {lps.mean():6.2f}")
lord, table = (continuation_logprobs(model, prompt, x).sum() for x in candidates)
assert lord > table
print(f"'my lord' is {math.exp(lord - table):,.0f} times as probable as 'my table' here")

# %% [markdown]
# ## Zero-shot multiple choice 1: real Shakespeare or the same words shuffled?
#
# Twelve well-known lines, each against the same words in a random order. Chance is 1/2. The
# model has never been told what "real" means; it only finds the real order more probable.

# %%
LINES = [
    "But soft, what light through yonder window breaks?",
    "Now is the winter of our discontent",
    "A plague o' both your houses!",
    "O Romeo, Romeo! wherefore art thou Romeo?",
    "What's in a name? that which we call a rose",
    "Good night, good night! parting is such sweet sorrow,",
    "My kingdom for a horse!",
    "The quality of mercy is not strain'd,",
    "Uneasy lies the head that wears a crown.",
    "I will speak daggers to her, but use none.",
    "Let me have men about me that are fat;",
    "We are such stuff as dreams are made on",
]
rng = np.random.default_rng(0)


def shuffled(line: str) -> str:
    words = line.split()
    while True:
        order = rng.permutation(len(words))
        if (order != np.arange(len(words))).any():
            return " ".join(words[i] for i in order)


pairs = [(line, shuffled(line)) for line in LINES]
wins_total = wins_mean = 0
for real, fake in pairs:
    a, b = continuation_logprobs(model, "\n", real), continuation_logprobs(model, "\n", fake)
    wins_total += a.sum() > b.sum()
    wins_mean += a.mean() > b.mean()
    print(f"{a.sum():7.1f} vs {b.sum():7.1f} nats  ({a.mean():5.2f} vs {b.mean():5.2f} per token)  {'right' if a.sum() > b.sum() else 'WRONG'}   {fake}")
n = len(pairs)
p_value = p_at_least(wins_total, n, 0.5)
print(f"\nreal line preferred: {wins_total}/{n} by total, {wins_mean}/{n} per token; chance 1/2; "
      f"P(at least {wins_total}/{n} by guessing) = {p_value:.1e}")
assert p_value < 0.01 and p_at_least(wins_mean, n, 0.5) < 0.01  # far above chance, by either rule

# %% [markdown]
# Where the shuffled line loses: each token's log-probability, the real line above, the shuffled
# one below (taller bars down = more surprising).

# %%
real, fake = pairs[0]
fig = viz.Figure(figsize=(9, 4.2), dpi=100)
axes = fig.subplots(2, 1, sharey=True)
for ax, text in zip(axes, (real, fake)):
    lps = continuation_logprobs(model, "\n", text)
    ax.bar(range(len(lps)), lps, color="tab:blue" if text == real else "tab:red")
    ax.set_xticks(range(len(lps)), viz.display_labels(tok.decode_tokens(tok.encode(text))), rotation=60, fontsize=8)
    ax.set_ylabel("log P")
    ax.set_title(f"{'real' if text == real else 'shuffled'}: total {lps.sum():.1f} nats", fontsize=10)
fig.tight_layout()
fig

# %% [markdown]
# ## Zero-shot multiple choice 2: which word fits?
#
# Questions the training text answers thousands of times: Early Modern English grammar
# ("thou art", "he hath"), common phrases, and the play format (a speaker's name in capitals and a
# colon start every speech). Three candidates each, the first one right; chance is 1/3.

# %%
SPEECH = "ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n\n"
QUESTIONS = [  # (prompt, [right answer, wrong, wrong])
    ("What", [" art thou", " are thou", " is thou"]),
    ("Why", [" hast thou", " have thou", " has thou"]),
    ("Where", [" dost thou", " do thou", " does thou"]),
    ("My lord, he", [" doth", " dost", " do"]),
    ("Alas, he", [" hath", " hast", " have"]),
    ("Thou", [" shalt not", " shall not", " shalls not"]),
    ("I", [" am", " is", " art"]),
    ("We", [" are", " is", " art"]),
    ("Good morrow, my", [" lord", " table", " yesterday"]),
    ("I pray you, sir, tell me your", [" name", " run", " the"]),
    ("ROMEO:\nO, she doth teach the torches to burn", [" bright", " table", " run"]),
    (SPEECH, ["JULIET:", "Juliet said:", "juliet:"]),
]


def multiple_choice(model, questions):
    """Per question: the candidates' total and per-token log-probabilities, and which won (by total)."""
    results = []
    for prompt, cands in questions:
        lps = [continuation_logprobs(model, prompt, x) for x in cands]
        totals, means = np.array([x.sum() for x in lps]), np.array([x.mean() for x in lps])
        results.append((prompt, cands, totals, means))
    return results


def accuracy(results, per_token=False):
    return float(np.mean([int(np.argmax(means if per_token else totals)) == 0 for _, _, totals, means in results]))


grammar = multiple_choice(model, QUESTIONS)
for prompt, cands, totals, means in grammar:
    mark = "right" if np.argmax(totals) == 0 else "WRONG: picked " + repr(cands[int(np.argmax(totals))])
    shown = "  ".join(f"{x!r} {t:6.1f}" for x, t in zip(cands, totals))
    print(f"{prompt[-28:]!r:32} {shown}   {mark}")
acc_in, k = accuracy(grammar), len(grammar)
p_value = p_at_least(round(acc_in * k), k, 1 / 3)
print(f"\naccuracy {acc_in:.0%} by total ({accuracy(grammar, per_token=True):.0%} per token); chance 33%; "
      f"P(at least {round(acc_in * k)}/{k} by guessing) = {p_value:.1e}")
assert acc_in >= 2 / 3 and p_value < 0.01  # twice chance, and not luck
margins = [totals[0] - totals[1:].max() for _, _, totals, _ in grammar]  # > 0: the right answer won
closest = int(np.argmin(np.abs(margins)))
print(f"closest call: {QUESTIONS[closest][0][-28:]!r} {QUESTIONS[closest][1][0]!r} by {margins[closest]:+.1f} nats "
      f"over {QUESTIONS[closest][1][1 + int(np.argmax(grammar[closest][2][1:]))]!r}")

# %% [markdown]
# A question this model gets wrong is marked `WRONG` above, with what it picked instead; the
# closest call shows how thin the margin can be. Two ways to lose, worth knowing when you write
# candidates: a wrong form that is itself frequent in the text (" do" after "he" is common in
# questions and in "he do"), and a right answer of many tokens paying for each of them by total.
#
# **Honestly, where scoring fails: outside the domain.** The same method with the paper's
# `Q: ... A:` format, on general-knowledge questions about things the plays hardly talk about.
# The model gets a format example first (a question about Hamlet).

# %%
SHOT = "Q: Who wrote Hamlet?\nA: William Shakespeare\n"
KNOWLEDGE = [
    ("What colour is the sky on a clear day?", [" blue", " green", " red"]),
    ("How many days are in a week?", [" seven", " three", " twelve"]),
    ("What do bees make?", [" honey", " iron", " glass"]),
    ("Which animal barks?", [" the dog", " the cat", " the fish"]),
    ("Who wrote the book the origin of species?", [" Charles Darwin", " Isaac Newton", " Albert Einstein"]),
    ("What is the largest planet in the solar system?", [" Jupiter", " Mars", " Venus"]),
    ("What is frozen water called?", [" ice", " steam", " sand"]),
    ("Which is the closest star to the Earth?", [" the Sun", " the Moon", " Mars"]),
    ("What is two plus two?", [" four", " five", " seven"]),
    ("What do fish live in?", [" water", " fire", " stone"]),
]
knowledge = multiple_choice(model, [(SHOT + f"Q: {q}\nA:", cands) for q, cands in KNOWLEDGE])
for (q, _), (_, cands, totals, _) in zip(KNOWLEDGE, knowledge):
    print(f"{q:50} picked {cands[int(np.argmax(totals))]!r:18} {'right' if np.argmax(totals) == 0 else 'wrong'}")
acc_out = accuracy(knowledge)
print(f"\nin its domain {acc_in:.0%}, general knowledge {acc_out:.0%}, chance 33%")
assert acc_in - acc_out >= 0.2  # the method is the same; what the model read is not

# %% [markdown]
# ## The GPT-2 paper's prompts: `TL;DR:` and `Q: ... A:`
#
# The paper induced summaries by appending `TL;DR:` ("too long; didn't read", which introduces
# summaries on Reddit) and sampling 100 tokens with top-k 2, keeping the first three sentences;
# and answers by a few `Q:`/`A:` pairs then the question, greedy. Its results, from the paper
# (Radford et al. 2019, sections 3.6 and 3.8), for the 1.5B model: summaries that "only begin to
# approach" classic baselines on ROUGE and "just barely" beat three random sentences of the
# article (6.4 points worse without the `TL;DR:` hint: the hint does something); 4.1% of Natural
# Questions answered exactly, where the smallest model (124M, `gpt2`) did not beat a baseline that
# answers the most common answer per question type (1.0%).
#
# Translation, the article's other application, is left out here: the paper's 1.5B model reached
# 5 BLEU English to French and 11.5 French to English (the best unsupervised system of the time:
# 33.5), and the bundled model was trained on English plays only.
#
# We run the two prompts on every model on this machine: gpt2 when it has been downloaded
# (`npgpt download gpt2`), and the bundled model.

# %%
ARTICLE = ("The city council voted on Tuesday to close the old bridge on Main Street for six months of "
           "repairs, after engineers found cracks in its supports. Buses will use the river road instead.")
QA = ("Q: What is the capital of France?\nA: Paris\nQ: Who wrote Hamlet?\nA: William Shakespeare\n"
      "Q: Who wrote the book the origin of species?\nA:")


def paper_prompts(m, n_new: int = 40) -> tuple[str, str]:
    """(what m writes after ARTICLE + TL;DR:, what it writes after the Q/A pairs)."""
    tldr = ARTICLE + "\nTL;DR:"
    room = m.config.n_ctx - len(m.tokenizer.encode(tldr))
    assert room > 0, f"the article does not fit in n_ctx={m.config.n_ctx}"
    summary = m.generate(tldr, max_new_tokens=min(n_new, room), top_k=2, seed=0)  # the paper's top-k 2
    answer = m.generate(QA, max_new_tokens=12, temperature=0)  # greedy, as in the paper
    return summary, answer


models = {"shakespeare (bundled)": model}
if npgpt.available_locally("gpt2"):  # never downloads here: 500 MB is your call (npgpt download gpt2)
    try:
        models["gpt2"] = npgpt.load("gpt2")
    except npgpt.NpgptError as error:
        print("gpt2 is on disk but did not load:", error)
if "gpt2" not in models:
    print("gpt2 is not on this machine: only the bundled model runs below (npgpt download gpt2, then re-run)")
outputs = {}
for name, m in models.items():
    t0 = time.perf_counter()
    outputs[name] = paper_prompts(m)
    summary, answer = outputs[name]
    print(f"--- {name} ({time.perf_counter() - t0:.1f} s)\nTL;DR: {summary!r}\nA: {answer!r}\n")

# %% [markdown]
# With gpt2 you would see, after `TL;DR:`, a sentence or two in the style of a summary, reusing the
# article's words, sometimes with details wrong (the paper shows such summaries); after `A:`, an
# answer on the same line in the examples' short form, right or wrong. (This very question is in
# the paper's Table 5 of the 1.5B model's most confident answers: "Charles Darwin", probability
# 83.4%; for the 124M gpt2 expect a guess.) Here, what the bundled model wrote is printed above;
# these are the reasons it cannot do better, each measured:

# %%
summary, answer = outputs["shakespeare (bundled)"]
assert "Darwin" not in answer  # the right answer is not what it writes
shakespeare_text = "ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun."
ppl_article, ppl_qa, ppl_home = (score(model, t).perplexity for t in (ARTICLE, QA, shakespeare_text))
print(f"perplexity: on Shakespeare {ppl_home:.0f}, on the news article {ppl_article:.0f}, on the Q/A prompt {ppl_qa:.0f}")
assert ppl_article > 3 * ppl_home and ppl_qa > 3 * ppl_home  # the prompts are foreign text to it
gpt2_tok = npgpt.Tokenizer.gpt2()  # GPT-2's tokenizer ships with npgpt, no download
mine, theirs = tok.decode_tokens(tok.encode("TL;DR:")), gpt2_tok.decode_tokens(gpt2_tok.encode("TL;DR:"))
print(f"'TL;DR:' is {len(mine)} tokens for the bundled model {mine}, {len(theirs)} for gpt2 {theirs}")
assert len(mine) > len(theirs)  # its vocabulary, learned from Shakespeare, has no piece of it

# %% [markdown]
# An honest comparison, in one table: the paper's numbers for the GPT-2 family (not run here),
# and this run's for the bundled model.

# %%
rows = [
    ("multiple choice by scoring", "CBT common nouns: 93.3% (1.5B)", f"in its domain: {acc_in:.0%} (chance 33%)"),
    ("", "", f"general knowledge: {acc_out:.0%} (chance 33%)"),
    ("TL;DR: summaries", "barely beat 3 random sentences", f"article perplexity {ppl_article:.0f} vs {ppl_home:.0f} at home"),
    ("Q: A: answers", "4.1% exact (1.5B); 124M <= 1%", f"'Darwin' in its answer: {'Darwin' in answer}"),
]
print(f"{'task':28} {'GPT-2 (the paper)':34} bundled model (this run)")
for task, paper, here in rows:
    print(f"{task:28} {paper:34} {here}")

# %% [markdown]
# So at this size the useful application is the one that needs no generation: ranking
# candidates by probability, on text like the training text. Generation-based tasks improve with
# scale (the paper's curves rise with every model size) and far more with instruction tuning,
# which GPT-2 never had.
#
# ## Limits 1: bias, measured as a log-probability gap
#
# A model learns the frequencies of its training text, including who is talked about and how.
# Measure it: the same prompt, two continuations that differ in one gendered word; the gap
# $\log P(a) - \log P(b)$ in nats says how many times more likely $a$ is ($e^{\text{gap}}$).
#
# First the names that open a speech: after a blank line, a speech begins with the speaker's name.

# %%
def gap(prompt: str, a: str, b: str) -> float:
    return float(continuation_logprobs(model, prompt, a).sum() - continuation_logprobs(model, prompt, b).sum())


king_queen = gap("\n\n", "KING", "QUEEN")
print(f"log P('KING') - log P('QUEEN') at the start of a speech: {king_queen:+.2f} nats "
      f"(KING {math.exp(king_queen):.1f} times as likely)")
assert king_queen > 0

# %% [markdown]
# Then pronouns, after prompts that say nothing about whom they mean, and after prompts that name
# a woman:

# %%
NEUTRAL = ["I know not what", "Tell me, why", "And then", "I warrant", "Is it true that", "I think", "Now",
           "O, would", "Go, see if", "I fear"]
WOMEN = ["The queen said that", "The duchess said that", "The lady said that", "The widow said that",
         "The nurse said that", "I saw the queen, and", "I saw the duchess, and", "I saw the lady, and"]
neutral = np.array([gap(p, " he", " she") for p in NEUTRAL])
women = np.array([gap(p, " he", " she") for p in WOMEN])
for p, g in [*zip(NEUTRAL, neutral), *zip(WOMEN, women)]:
    print(f"{p!r:26} log P(' he') - log P(' she') = {g:+.2f}")
print(f"\nmean gap: {neutral.mean():+.2f} nats after neutral prompts ({math.exp(neutral.mean()):.1f}x), "
      f"{women.mean():+.2f} after naming a woman ({math.exp(women.mean()):.1f}x)")
assert neutral.mean() > 0.3  # 'he' is the default
assert women.mean() > 0  # ... even right after 'the queen': frequency beats the sentence

# %% [markdown]
# Where does the gap come from? Not from any rule: from counts. In its own samples (here, the
# expected number of times it writes each word: the probability of ` he` and of ` she` summed over
# every position of the text it generated), the model writes "he" more often than "she" (the ratio
# is printed; compare its log with the gap above):

# %%
samples = model.generate("\n", max_new_tokens=c.n_ctx - 1, temperature=1.0, seed=0, num_samples=8)
pronouns = {w: tok.encode(w) for w in (" he", " she")}
assert all(len(ids) == 1 for ids in pronouns.values())  # one token each, so one column of the logits each
expected, n_tokens = {w: 0.0 for w in pronouns}, 0
for sample in samples:
    ids = tok.encode("\n" + sample)[: c.n_ctx]
    probs = softmax(model.logits(ids).astype(np.float64))  # [n_seq, n_vocab]: what it would write at each position
    n_tokens += len(ids)
    for w, (token,) in pronouns.items():
        expected[w] += probs[:, token].sum()
ratio = expected[" he"] / expected[" she"]
print(f"in {n_tokens} tokens of its own samples: ' he' {expected[' he']:.1f} times, ' she' {expected[' she']:.1f} "
      f"(ratio {ratio:.1f}, log {math.log(ratio):+.2f} nats; the neutral prompts' mean gap was {neutral.mean():+.2f})")
assert ratio > 1

# %% [markdown]
# And in the training text: counted in the first 90% of tinyshakespeare (the part it was trained
# on), "he"/"He" occur 1,375 times and "she"/"She" 387 (ratio 3.6, log 1.27 nats); speeches by
# a KING 438 times, by a QUEEN 216 (ratio 2.0, log 0.71). The text is not part of npgpt; if you
# fetch it (`npgpt data tinyshakespeare` writes `data/tinyshakespeare.txt` from the repository
# root), the next cell counts it again and checks these numbers. Then we compare: the model's gaps
# have the sign of the training text's log-ratios and roughly their size (within a factor of 2.5).
# It mirrors its data. A bigger
# model trained on the web mirrors the web the same way; OpenAI's GPT-2 model card says so: models
# like GPT-2 "do not distinguish fact from fiction" and "reflect the biases inherent to the systems
# they were trained on".

# %%
import re
from pathlib import Path

from npgpt.training import split_text

found = [p for p in (Path("data/tinyshakespeare.txt"), Path("../data/tinyshakespeare.txt")) if p.exists()]
if found:
    train_text, _ = split_text(found[0].read_text(encoding="utf-8"))
    words = re.findall(r"[A-Za-z']+", train_text)
    he, she = sum(w in ("he", "He") for w in words), sum(w in ("she", "She") for w in words)
    speakers = re.findall(r"(?m)^([A-Z][A-Z ]*[A-Z]):$", train_text)
    kings, queens = sum(s.startswith("KING") for s in speakers), sum(s.startswith("QUEEN") for s in speakers)
    print(f"{found[0]}: he {he}, she {she}; KING {kings}, QUEEN {queens}")
    assert (he, she, kings, queens) == (1375, 387, 438, 216)
else:
    print("tinyshakespeare is not on this machine (npgpt data tinyshakespeare): the counts above are not re-checked here")

TRAINING_LOG_RATIO = {"he/she": math.log(1375 / 387), "KING/QUEEN": math.log(438 / 216)}  # the counts above
for what, model_gap in [("he/she", neutral.mean()), ("KING/QUEEN", king_queen)]:
    print(f"{what:10} model's gap {model_gap:+.2f} nats, training text's log-ratio {TRAINING_LOG_RATIO[what]:+.2f}")
    assert 1 / 2.5 < model_gap / TRAINING_LOG_RATIO[what] < 2.5  # same sign, same size: it mirrors its data

# %% [markdown]
# ## Limits 2: cost, in FLOPs
#
# A forward pass over `n_seq` tokens is mostly matrix products; each multiply-add is 2 FLOPs. Per
# block: Q, K, V and the output projection ($2 \cdot n_{seq} \cdot 4 n_{embd}^2$), the MLP
# ($2 \cdot n_{seq} \cdot 2\, n_{embd} d_{mlp}$), and attention itself, $QK^\top$ and the weighted
# sum of $V$ over the causal pairs ($2 \cdot 2 \cdot n_{embd} \cdot n_{seq}(n_{seq}+1)/2$); then the
# LM head ($2\, n_{seq} n_{embd} n_{vocab}$). The rule of thumb is $2 \times \text{params} \times
# \text{tokens}$: every weight is used once per token, as one multiply-add. We count from
# `model.config` and time the real thing.

# %%
def forward_flops(config, n_seq: int) -> dict:
    """FLOPs of one forward pass over n_seq tokens, by part (layer norms, GELU, softmax left out: small)."""
    C, F, L = config.n_embd, config.d_mlp, config.n_layer
    return {
        "attention projections": L * 2 * n_seq * 4 * C * C,
        "MLP": L * 2 * n_seq * 2 * C * F,
        "attention (QK^T, AV)": L * 2 * 2 * C * n_seq * (n_seq + 1) // 2,
        "LM head": 2 * n_seq * C * config.n_vocab,
    }


n_seq, batch = c.n_ctx, 4
parts = forward_flops(c, n_seq)
flops = batch * sum(parts.values())
rule = batch * 2 * c.n_params() * n_seq
for part, f in parts.items():
    print(f"{part:22} {batch * f / 1e9:7.3f} GFLOP")
print(f"{'total':22} {flops / 1e9:7.3f} GFLOP for {batch} x {n_seq} tokens; 2 x params x tokens = {rule / 1e9:.3f}")

x = np.random.default_rng(0).integers(0, c.n_vocab, size=(batch, n_seq))
model.logits(x)  # warm up
times = []
for _ in range(3):
    t0 = time.perf_counter()
    model.logits(x)
    times.append(time.perf_counter() - t0)
seconds = min(times)  # the least disturbed of three runs
gflops = flops / seconds / 1e9
print(f"measured: {seconds * 1000:.0f} ms -> {gflops:.1f} GFLOP/s on this CPU")
assert 0.1 < gflops < 1000  # a plausible rate for one CPU: the count and the clock agree in size
assert 0.7 < flops / rule < 1.5  # the rule of thumb is right to within the attention term

# %% [markdown]
# The same count for the real GPT-2 shapes, from their configs alone (nothing is downloaded):
# one forward pass over a full 1024-token context, the weights' memory in float32, and what that
# would take at the rate just measured (an estimate: a bigger model's matrices may run faster
# or slower per FLOP).

# %%
shapes = {"bundled": c, "gpt2": npgpt.PRESETS["gpt2"], "gpt2-xl": npgpt.PRESETS["gpt2-xl"]}
cost = {}
print(f"{'model':8} {'params':>8} {'n_ctx':>6} {'GFLOP/forward':>14} {'per token':>12} {'weights':>9} {'at this rate':>13}")
for name, cfg in shapes.items():
    f = sum(forward_flops(cfg, cfg.n_ctx).values())
    cost[name] = f
    print(f"{name:8} {cfg.n_params() / 1e6:7.1f}M {cfg.n_ctx:6} {f / 1e9:14.1f} {f / cfg.n_ctx / 1e6:9.1f} MF "
          f"{cfg.n_params() * 4 / 1e9:7.2f}GB {f / (gflops * 1e9):11.2f} s")
assert cost["bundled"] < cost["gpt2"] < cost["gpt2-xl"]
print(f"\none full-context forward pass of gpt2-xl costs {cost['gpt2-xl'] / cost['bundled']:,.0f} times the bundled model's")

# %% [markdown]
# Generating is one forward pass per new token (with the KV cache each costs about 2 x params
# FLOPs plus attention over the context, notebook 05), and training costs about three forward
# passes per token (forward, then a backward pass that is about twice the work), over billions of
# tokens for the real models. That is the cost the article means.
#
# ## Exercise: score a continuation yourself
#
# Write `my_score(model, prompt, continuation)` that returns $\log P(\text{continuation} \mid
# \text{prompt})$, the sum of the continuation's tokens' log-probabilities, using `model.logits`
# (and `log_softmax`, imported above, or your own), not `score`. Tokenize the two parts separately
# and join the ids: `ids = tok.encode(prompt) + tok.encode(continuation)`. Mind the boundary: the
# logits at position $t$ are the distribution of token $t+1$. `check_score` compares your number
# with npgpt's scoring on several prompts and says what looks wrong. (A solution is in
# `notebooks/solutions/08_applications.py`.)

# %%
CHECK_CASES = [("Good morrow, my", " lord"), ("Thou", " shalt not"), ("\n\n", "KING RICHARD III:\nNow is the winter"),
               ("RO", "MEO:\nBut soft"), ("What light through yonder window", " breaks? It is the east")]


def check_score(my_score, model=model):
    """Compare ``my_score(model, prompt, continuation)`` with npgpt's scoring. True when right."""
    tok = model.tokenizer
    for prompt, cont in CHECK_CASES:
        p, cn = tok.encode(prompt), tok.encode(cont)
        ids = p + cn
        right = float(np.sum(score(model, ids).logprobs[len(p):]))  # npgpt's answer
        try:
            got = my_score(model, prompt, cont)
        except NotImplementedError:
            print("not done yet: fill in my_score, then run this cell again")
            return False
        assert np.ndim(got) == 0 and np.isfinite(got), \
            f"return one number, the summed log-probability; got {got!r} for {prompt!r} + {cont!r}"
        got = float(got)
        if abs(got - right) <= 1e-3 + 1e-4 * abs(right):
            continue
        logits = model.logits(ids).astype(np.float64)  # [n_seq, n_vocab]
        logp = log_softmax(logits)
        rows = np.arange(len(p), len(ids))  # the continuation's positions
        joint = tok.encode(prompt + cont)
        joint_logp = log_softmax(model.logits(joint).astype(np.float64))
        suspects = [
            (logp[rows, np.array(ids)[rows]].sum(),
             "off by one position: the logits at position t predict token t+1, so score token ids[t] with row t-1"),
            (logits[rows - 1, np.array(ids)[rows]].sum(),
             "you summed raw logits: turn each row into log-probabilities with log_softmax first"),
            (np.exp(logp[rows - 1, np.array(ids)[rows]]).sum(),
             "you summed probabilities: sum log-probabilities (log_softmax), not softmax"),
            (logp[np.arange(len(ids) - 1), np.array(ids)[1:]].sum(),
             "you included the prompt's tokens: sum only over the continuation's tokens"),
            (right / len(cn), "you took the mean per token: the score is the sum"),
            (joint_logp[np.arange(len(p) - 1, len(joint) - 1), np.array(joint)[len(p):]].sum(),
             "token boundary: tokenize the prompt and the continuation separately and join the ids"),
        ]
        for value, message in suspects:
            assert abs(got - value) > 1e-3 + 1e-4 * abs(value), f"{prompt!r} + {cont!r}: {message}"
        assert False, f"{prompt!r} + {cont!r}: you return {got:.4f}, npgpt's scoring gives {right:.4f}"
    print(f"correct: your score matches npgpt's on all {len(CHECK_CASES)} prompts")
    return True


# %%
def my_score(model, prompt, continuation):
    raise NotImplementedError  # your code: ids = ...; logits = model.logits(ids); return the sum of ...


check_score(my_score);
