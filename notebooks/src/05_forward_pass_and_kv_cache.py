# %% [markdown]
# # 5. The whole forward pass, and the KV cache
#
# **What this notebook teaches.** We assemble GPT-2 from the functions of notebooks 1-4 —
# tokenize, embed, add positions, run the blocks, final layer norm, LM head — and check that it
# gives exactly `model.logits`. Then we make generation fast with a **KV cache**, and we *count*
# what each generation step costs, with and without it, before we time it:
#
# - without a cache, the step at sequence length $n$ runs the whole sequence again: the matrix
#   products cost about $n \cdot d^2$ (every token goes through every weight matrix) and attention
#   about $n^2 \cdot d$ (every token looks at every earlier one);
# - with a cache, the step feeds one token: $d^2$ for the matrix products, $n \cdot d$ for
#   attention.
#
# The $n^2$ term is the one people quote, but it only wins once $n$ is larger than about
# $12\,d$ (thousands of tokens for every GPT-2), which is beyond the context of every GPT-2. At
# the lengths a GPT-2 can read, the cost of a step without a cache is a **straight line** in $n$,
# and that is what the clock shows. The quadratic is the *total* cost of generating $n$ tokens
# without a cache: $n$ steps of cost $\propto n$.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

import npgpt
from npgpt.generate import generate_ids
from npgpt.model import (embed, ffn, layer_norm, linear, merge_heads, pos_embed, softmax, split_heads,
                         transformer_block, unembed)

model = npgpt.load("shakespeare")  # the bundled model: small, on disk, the same for every reader
tok, cfg, params = model.tokenizer, model.config, model.params
print(model)

# %% [markdown]
# ## Text to logits, step by step

# %%
text = "First Citizen:\nBefore we proceed any further, hear me"
ids = np.array(tok.encode(text))[None]  # [batch=1, n_seq]
n_seq = ids.shape[1]

x = embed(ids, params["wte"]["weight"])  # [1, n_seq, n_embd]: one row of wte per token
x = x + pos_embed(np.arange(n_seq)[None], params["wpe"]["weight"])  # + one row of wpe per position
mask = np.triu(np.full((n_seq, n_seq), -np.inf, dtype=np.float32), k=1)[None, None]  # causal
for layer, block in enumerate(params["h"]):
    x = transformer_block(x, **block, n_head=cfg.n_head, eps=cfg.layer_norm_eps, mask=mask)
x = layer_norm(x, **params["ln_f"], eps=cfg.layer_norm_eps)
logits = x @ params["wte"]["weight"].T  # [1, n_seq, n_vocab]: the LM head reuses wte ("tied")

reference = model.logits(ids)
difference = float(np.abs(logits - reference).max())
assert logits.shape == (1, n_seq, cfg.n_vocab)
assert difference < 1e-3  # our assembly is the model, to float32 rounding
print("logits:", logits.shape, f" max |ours - model.logits| = {difference:.1e}")

# %% [markdown]
# Logits exist for **every** position: position `i` holds the model's guess for token `i+1`,
# computed from tokens `0..i` only. The last one predicts what comes after the prompt.

# %%
probs = softmax(logits[0, -1])
for t in np.argsort(probs)[::-1][:5]:
    print(f"{probs[t]:.3f}  {tok.decode([int(t)])!r}")
first_half = model.logits(ids[:, : n_seq // 2])  # the prompt cut in half ...
assert np.allclose(first_half, reference[:, : n_seq // 2], atol=1e-4)  # ... gives the same logits there

# %% [markdown]
# That last check is the whole idea of the KV cache. The causal mask stops every token from
# seeing later ones, so nothing a token computes — its keys and values in every layer included —
# changes when more tokens are appended. Keys and values of the past can be kept instead of
# recomputed:

# %%
_, cache_half = model.run_with_cache(ids[0, : n_seq // 2])
_, cache_full = model.run_with_cache(ids[0])
for l in range(cfg.n_layer):
    for name in ("k", "v"):  # [n_head, n_seq, d_head]
        assert np.allclose(cache_half[name, l], cache_full[name, l][:, : n_seq // 2], atol=1e-5)
print(f"keys and values of the first {n_seq // 2} tokens are the same in all {cfg.n_layer} layers")

# %% [markdown]
# ## Counting the cost of one step
#
# A floating-point operation (FLOP) here is a multiply or an add; a matrix product `x @ W` costs
# 2 FLOPs per weight per token. Per layer, every token goes through four weight matrices:
# `c_attn` ($d \times 3d$), attention's `c_proj` ($d \times d$), the MLP's `c_fc`
# ($d \times 4d$) and `c_proj` ($4d \times d$), $12\,d^2$ weights; and the LM head reads `wte`
# ($V \times d$) at every position. Attention itself has no weights: a query that looks at
# $n_{kv}$ keys costs $2 n_{kv} d$ for $QK^\top$ and $2 n_{kv} d$ for the pattern times $V$, per
# layer (all heads together: $n_{head} \cdot d_{head} = d$). Layer norms, GELU and the softmax
# cost a few FLOPs per number, far fewer; we leave them out.
#
# Everything below is read from `model.config` and the parameters, not typed in.

# %%
L, d, V = cfg.n_layer, cfg.n_embd, cfg.n_vocab
matrices = [block[part][name]["weight"] for block in params["h"]
            for part, name in [("attn", "c_attn"), ("attn", "c_proj"), ("mlp", "c_fc"), ("mlp", "c_proj")]]
weights_per_token = sum(w.size for w in matrices) + params["wte"]["weight"].size  # + the LM head
assert cfg.d_mlp == 4 * d and weights_per_token == 12 * L * d * d + d * V
matmul_per_token = 2 * weights_per_token  # FLOPs of the matrix products, per token


def step_flops(n: int, cached: bool) -> tuple[int, int]:
    """(matrix products, attention) FLOPs of the step that reads a sequence of n tokens and
    predicts token n+1."""
    if cached:  # one new token through the weights; its query looks at all n keys
        return matmul_per_token, 4 * L * d * n
    # the whole sequence through the weights; the query at position i looks at i keys, i = 1..n
    return n * matmul_per_token, 4 * L * d * (n * (n + 1) // 2)


# Without a cache, attention catches up with the matrix products where
# n * matmul_per_token = 2 L d n (n + 1), i.e. at n + 1 = matmul_per_token / (2 L d) = 12 d + V / L.
crossover = matmul_per_token / (2 * L * d) - 1
mm, att = step_flops(cfg.n_ctx, cached=False)
print(f"matrix products: {matmul_per_token / 1e6:.1f} MFLOP per token ({weights_per_token:,} weights)")
print(f"attention overtakes them at n = {crossover:,.0f} tokens; the context holds n_ctx = {cfg.n_ctx}")
print(f"at n = n_ctx, attention is {att / (mm + att):.0%} of a step without cache")
assert crossover > cfg.n_ctx  # the n^2 term never dominates a step of this model
assert att < mm  # at the longest sequence it can read

# %% [markdown]
# The same count for every released GPT-2 size (from `npgpt.PRESETS`, nothing downloaded): the
# crossover, $12\,d + V/L$, lies far beyond their 1024-token context too.

# %%
for name, p in npgpt.PRESETS.items():
    n_star = 12 * p.n_embd + p.n_vocab / p.n_layer
    print(f"{name:12} d={p.n_embd:5}  crossover n = {n_star:8,.0f}   n_ctx = {p.n_ctx}")
    assert n_star > p.n_ctx

# %%
n_axis = np.unique(np.geomspace(1, 4 * crossover, 200).astype(int))
fig, ax = plt.subplots(figsize=(6.5, 3.4))
ax.loglog(n_axis, [step_flops(n, False)[0] for n in n_axis], label="no cache: matrix products (~ n d²)")
ax.loglog(n_axis, [step_flops(n, False)[1] for n in n_axis], label="no cache: attention (~ n² d)")
ax.loglog(n_axis, [sum(step_flops(n, True)) for n in n_axis], "--", label="KV cache: whole step")
ax.axvline(cfg.n_ctx, color="k", lw=1)
ax.text(cfg.n_ctx, ax.get_ylim()[1], " n_ctx", va="top")
ax.axvline(crossover, color="grey", lw=1, ls=":")
ax.text(crossover, ax.get_ylim()[0], " crossover", va="bottom", color="grey")
ax.set_xlabel("sequence length n"); ax.set_ylabel("FLOPs of one step"); ax.legend(fontsize=8); ax.grid(alpha=0.3)
ax.set_title(f"one generation step, counted for {model.name or 'this model'}")
plt.show()

# %% [markdown]
# Left of the `n_ctx` line is everything this model can run. There the matrix products (slope 1
# on this log-log scale) lie above attention (slope 2) at every length: they only meet at the
# crossover, far to the right.
#
# ## Timing one step, with and without the cache
#
# `model.new_kv_cache()` holds keys and values; `model.logits(new_ids, kv_cache=kv)` feeds only
# `new_ids`, attends over everything the cache holds, and appends the new keys and values. We
# time the step that reads `n` tokens, for several `n`: without a cache, `model.logits` on all
# `n` tokens; with one, a single token after the cache was filled with the other `n - 1` (best of
# several runs, to take out the noise of a shared machine).

# %%
long_ids = tok.encode(text * (cfg.n_ctx // 4))[: cfg.n_ctx]
lengths = sorted({max(8, cfg.n_ctx * eighths // 8) for eighths in (1, 2, 4, 6, 8)})  # up to n_ctx


def best_of(fn, repeats=7) -> float:
    times = []
    for _ in range(repeats):
        setup = fn()  # returns the timed call, after any untimed preparation
        start = time.perf_counter()
        setup()
        times.append(time.perf_counter() - start)
    return min(times)


def no_cache_step(n):
    return lambda: model.logits(long_ids[:n])  # the whole sequence, every time


def cached_step(n):
    kv = model.new_kv_cache(capacity=n)
    model.logits(long_ids[: n - 1], kv_cache=kv)  # fill the cache (not timed)
    return lambda: model.logits(long_ids[n - 1 : n], kv_cache=kv)  # one token


best_of(lambda: no_cache_step(lengths[0]), 2), best_of(lambda: cached_step(lengths[0]), 2)  # warm-up
t_plain = np.array([best_of(lambda: no_cache_step(n)) for n in lengths])
t_cached = np.array([best_of(lambda: cached_step(n)) for n in lengths])
f_plain = np.array([sum(step_flops(n, False)) for n in lengths])
f_cached = np.array([sum(step_flops(n, True)) for n in lengths])
for n, a, fa, b, fb in zip(lengths, t_plain, f_plain, t_cached, f_cached):
    print(f"n={n:4d}  no cache {a * 1e3:6.2f} ms ({fa / 1e6:7.1f} MFLOP)   KV cache {b * 1e3:5.2f} ms ({fb / 1e6:5.1f} MFLOP)")

# %% [markdown]
# Does the clock agree with the count? A cost that grows like $n^k$ is a straight line of slope
# $k$ on a log-log scale, so we fit that slope to the times and to the FLOP counts. Linear work
# gives a slope near 1, attention's $n^2$ alone would give 2. Times are noisy, small calls pay a
# fixed Python overhead (which flattens the curve) and larger arrays may fit the CPU's caches
# less well (which steepens it), so we ask only that the measured slope is closer to the count's than to 2,
# and that the time grows at all. Timings are printed, not asserted: on a busy machine other
# programs bend them (the FLOP counts above are asserted; on a quiet machine, as when these
# outputs were stored, the clock agrees with them).

# %%
def slope(values) -> float:
    """k in values ~ n^k, fitted over the lengths on a log-log scale."""
    return float(np.polyfit(np.log(lengths), np.log(values), 1)[0])


measured, counted = slope(t_plain), slope(f_plain)
print(f"no cache: time ~ n^{measured:.2f}, FLOP count ~ n^{counted:.2f}, attention alone ~ n^2")
agrees = measured > 0.5 and abs(measured - counted) < abs(measured - 2)  # grows, like the count, not like n^2
print("the clock agrees with the count" if agrees else "the clock disagrees here: is the machine busy? run this cell again")

cached_growth = t_cached.max() / t_cached.min()
speedup = t_plain[-1] / t_cached[-1]
print(f"KV cache: time ~ n^{slope(t_cached):.2f}, FLOP count ~ n^{slope(f_cached):.2f}; "
      f"slowest step / fastest = {cached_growth:.2f}")
print(f"at n = {lengths[-1]}: the cached step is {speedup:.0f}x faster (FLOP count: {f_plain[-1] / f_cached[-1]:.0f}x)")
flat = slope(t_cached) < 0.5 and cached_growth < 2  # a step costs about the same at any length
print("the cached step is nearly flat" if flat else "the cached step is not flat here: is the machine busy?",
      "and the gain is large but less than the FLOPs saved" if 4 < speedup < f_plain[-1] / f_cached[-1] else
      "(the gain is outside 4x .. the FLOP ratio here)")
assert f_plain[-1] / f_cached[-1] > 4  # the count: the cache saves most of the arithmetic

# %% [markdown]
# The cached step is faster by less than its FLOP count promises: a step of one token does so
# little arithmetic that the fixed cost of the Python calls (a few dozen per layer) is a large
# part of it. Below, the measured times beside the FLOP count scaled by one number, the median
# time per FLOP of the uncached steps.

# %%
seconds_per_flop = float(np.median(t_plain / f_plain))
fig, ax = plt.subplots(figsize=(6.5, 3.4))
ax.plot(lengths, t_plain * 1e3, "o-", label="no cache (measured)")
ax.plot(lengths, f_plain * seconds_per_flop * 1e3, "k:", label="no cache (FLOP count, scaled)")
ax.plot(lengths, t_cached * 1e3, "o-", label="KV cache (measured)")
ax.plot(lengths, f_cached * seconds_per_flop * 1e3, "k--", lw=1, label="KV cache (FLOP count, scaled)")
ax.set_xlabel("sequence length n"); ax.set_ylabel("ms for one step"); ax.legend(fontsize=8); ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## Generation with and without the cache gives the same logits
#
# Two greedy loops: one feeds the whole sequence at every step, the other feeds the prompt once
# and then one token per step into a cache. They choose the same tokens, and their logits agree
# to float32 rounding: the sums inside the matrix products run in a different order for a
# [n, d] input than for a [1, d] one, so the last bits may differ.

# %%
def greedy(prompt_ids, n_tokens: int, use_cache: bool):
    """Greedy generation; (all ids, the logits each step chose from [n_tokens, n_vocab])."""
    seq, chosen_from = list(prompt_ids), []
    kv = model.new_kv_cache(capacity=len(seq) + n_tokens) if use_cache else None
    for _ in range(n_tokens):
        if use_cache:
            new = seq if kv.length == 0 else seq[-1:]  # only what the cache has not seen
            step = model.logits(new, kv_cache=kv)[-1]
        else:
            step = model.logits(seq)[-1]  # the whole sequence, every time
        chosen_from.append(step)
        seq.append(int(np.argmax(step)))
    return seq, np.array(chosen_from)


n_new = min(40, cfg.n_ctx - n_seq)
plain_ids, plain_logits = greedy(ids[0], n_new, use_cache=False)
cached_ids, cached_logits = greedy(ids[0], n_new, use_cache=True)
largest = float(np.abs(plain_logits - cached_logits).max())
assert cached_ids == plain_ids
assert largest < 1e-4
print(f"same {n_new} tokens; largest logit difference {largest:.1e}"
      f" ({'bit for bit equal' if largest == 0 else 'float32 rounding'})")
npgpt_ids = generate_ids(model, plain_ids[:n_seq], max_new_tokens=n_new, temperature=0, ignore_eos=True).completions[0].ids
assert npgpt_ids == cached_ids[n_seq:]  # npgpt's own loop (model.generate) chooses the same tokens
print(repr(tok.decode(cached_ids)))

# %% [markdown]
# The cache's size: two tensors (K and V) per layer, `n_head x n_ctx x d_head` floats each, so
# $2 \cdot L \cdot n_{ctx} \cdot d$ floats in all.

# %%
kv = model.new_kv_cache()
print("keys:", kv.keys.shape, "= [n_layer, batch, n_head, capacity, d_head]")
kv_bytes = kv.keys.nbytes + kv.values.nbytes
assert kv_bytes == 2 * L * cfg.n_ctx * d * kv.keys.itemsize
print(f"KV cache for {cfg.n_ctx} tokens: {kv_bytes / 1e6:.1f} MB (model weights in float32: {cfg.n_params() * 4 / 1e6:.1f} MB)")

# %% [markdown]
# ## Exercise: one decode step of attention with a KV cache
#
# Write `my_decode_attention(q, k_past, v_past, k_new, v_new)` for **one head group of one
# layer** at a decode step:
#
# - `q`, `k_new`, `v_new`: the new token's query, key and value, each `[n_head, 1, d_head]`;
# - `k_past`, `v_past`: what the cache holds, `[n_head, n_past, d_head]` (`n_past` may be 0);
# - return `(z, k_all, v_all)`: the keys and values with the new token's appended after the past
#   ones (`[n_head, n_past + 1, d_head]`, what the cache holds next), and
#   `z = softmax(q k_all^T / sqrt(d_head)) v_all`, `[n_head, 1, d_head]`.
#
# No mask is needed: the new token is the last, so it may look at every key, its own included.
# `check_decode_attention` compares your `z` with the activations the model recorded, then runs
# a whole decode step of the model with your function in every layer, reading the past keys and
# values from a real `KVCache`, and compares the logits with `model.logits`. (A solution is in
# `notebooks/solutions/05_forward_pass_and_kv_cache.py`.)

# %%
def check_decode_attention(my_decode_attention, model=model, prompt_ids=tuple(ids[0])):
    """Test ``my_decode_attention`` on every layer's recorded q, k, v, then in a full decode step
    against ``model.logits``. True when right; raises AssertionError saying what is wrong."""
    c, p = model.config, model.params
    prompt_ids = list(prompt_ids)
    n = len(prompt_ids)
    _, rec = model.run_with_cache(prompt_ids)
    scale = np.sqrt(c.d_head)
    for l in range(c.n_layer):
        q, k, v, z = rec["q", l], rec["k", l], rec["v", l], rec["z", l]  # [n_head, n, d_head]
        for n_past in (0, n - 1):  # the first token (an empty cache), then the last one
            args = (q[:, n_past : n_past + 1], k[:, :n_past], v[:, :n_past], k[:, n_past : n_past + 1], v[:, n_past : n_past + 1])
            try:
                got = my_decode_attention(*(a.copy() for a in args))
            except NotImplementedError:
                print("not done yet: fill in my_decode_attention, then run this cell again")
                return False
            except Exception as error:  # an empty cache is the usual trap
                hint = (" With an empty cache (n_past=0) the new token still attends to itself: "
                        "append k_new, v_new before attending.") if n_past == 0 else ""
                raise AssertionError(f"layer {l}, n_past={n_past}: your function raised {error!r}.{hint}") from error
            assert isinstance(got, tuple) and len(got) == 3, "return three arrays: (z, k_all, v_all)"
            got_z, k_all, v_all = (np.asarray(a) for a in got)
            k_want, v_want = k[:, : n_past + 1], v[:, : n_past + 1]
            where = f"layer {l}, n_past={n_past}"
            assert k_all.shape == k_want.shape, \
                f"{where}: k_all has shape {k_all.shape}; expected {k_want.shape} = [n_head, n_past + 1, d_head]: append k_new to k_past along the positions (axis -2)"
            if n_past and np.allclose(k_all, np.concatenate([args[3], args[1]], axis=-2)):
                raise AssertionError(f"{where}: k_all has the new key first; the new key goes after the past ones (position order)")
            assert np.allclose(k_all, k_want) and np.allclose(v_all, v_want), \
                f"{where}: k_all / v_all should be k_past / v_past with k_new / v_new appended after the past ones"
            assert got_z.shape == z[:, n_past : n_past + 1].shape, \
                f"{where}: z has shape {got_z.shape}; expected {z[:, n_past:n_past + 1].shape} = [n_head, 1, d_head]"
            want = z[:, n_past : n_past + 1]
            if np.allclose(got_z, want, atol=1e-4):
                continue
            assert np.all(np.isfinite(got_z)), \
                f"{where}: z holds nan or inf; with an empty cache the new token still attends to itself: append k_new, v_new before attending"
            if n_past:
                past_only = softmax(args[0] @ args[1].swapaxes(-1, -2) / scale) @ args[2]
                assert not np.allclose(got_z, past_only, atol=1e-4), \
                    f"{where}: z attends over the past keys only; append k_new, v_new first: the new token attends to itself too"
            raw = args[0] @ k_want.swapaxes(-1, -2)  # [n_head, 1, n_past + 1]
            assert not np.allclose(got_z, softmax(raw) @ v_want, atol=1e-4), \
                f"{where}: z is unscaled; divide the scores by sqrt(d_head) = {scale:g} before the softmax"
            assert not np.allclose(got_z, softmax(raw / c.d_head) @ v_want, atol=1e-4), \
                f"{where}: the scores were divided by d_head; divide them by sqrt(d_head) = {scale:g}"
            if n_past:
                assert not np.allclose(got_z, softmax(raw / scale, axis=-2) @ v_want, atol=1e-4), \
                    f"{where}: the softmax ran over the wrong axis: each query's weights must sum to 1 over the keys (last axis)"
            raise AssertionError(f"{where}: z is off by up to {np.abs(got_z - want).max():.3g}; "
                                 "it is softmax(q @ k_all^T / sqrt(d_head)) @ v_all")
    # A whole decode step of the model: the prompt less its last token in a KVCache, then the last
    # token through every layer by hand, with your attention.
    kv = model.new_kv_cache()
    model.logits(prompt_ids[:-1], kv_cache=kv)
    eps = c.layer_norm_eps
    x = embed(np.array(prompt_ids[-1:]), p["wte"]["weight"]) + pos_embed(np.array([n - 1]), p["wpe"]["weight"])  # [1, n_embd]
    for l, block in enumerate(p["h"]):
        h = layer_norm(x, **block["ln_1"], eps=eps)
        q, k, v = (split_heads(t[None], c.n_head)[0] for t in np.split(linear(h, **block["attn"]["c_attn"]), 3, axis=-1))
        past_k, past_v = kv.keys[l, 0, :, : kv.length], kv.values[l, 0, :, : kv.length]  # [n_head, n_past, d_head]
        z, _, _ = my_decode_attention(q, past_k.copy(), past_v.copy(), k, v)
        x = x + linear(merge_heads(np.asarray(z)[None])[0], **block["attn"]["c_proj"])
        x = x + ffn(layer_norm(x, **block["ln_2"], eps=eps), **block["mlp"])
    got = unembed(layer_norm(x, **p["ln_f"], eps=eps), p["wte"]["weight"])[-1]
    want = model.logits(prompt_ids)[-1]
    assert np.allclose(got, want, atol=1e-3), \
        f"a decode step with your attention gives logits off by up to {np.abs(got - want).max():.3g} from model.logits"
    print(f"correct: your decode step matches every layer's attention and the model's next-token logits "
          f"(largest difference {np.abs(got - want).max():.1e})")
    return True


# %%
def my_decode_attention(q, k_past, v_past, k_new, v_new):
    raise NotImplementedError  # your code: k_all = ..., v_all = ..., z = ...; return z, k_all, v_all


check_decode_attention(my_decode_attention);
