"""Training speed: npgpt's NumPy training step against the same model in PyTorch (CPU, float32), in one run.

Both train the same GPT-2 shape (default: the bundled Shakespeare model's, 4 layers, n_embd 192,
n_vocab 1024, n_ctx 256) from the same initial weights (built with transformers, read by npgpt),
on the same random batches, with the same step: forward, mean cross-entropy, backward, global
gradient-norm clipping at 1.0 and an AdamW update (weight decay on matrices only). Torch runs
``GPT2LMHeadModel`` in training mode (dropout 0) with its default attention ("sdpa") and again with
"eager" attention, which builds the attention pattern as npgpt does; both use
``torch.optim.AdamW`` and ``torch.nn.utils.clip_grad_norm_``. Both libraries get the same thread
count (torch.set_num_threads = NumPy's BLAS threads, from OPENBLAS_NUM_THREADS or the CPU count).

The libraries alternate, a few steps each, for several rounds; each rate is the median over
rounds of training tokens (batch * n_seq) per second, and each ratio the median over rounds of
the ratio within a round (both sides then ran under the same load). The machine may be shared:
compare the ratios, and re-run when it is quiet (with 2 threads, OpenBLAS slows down far more
than torch when other processes want the cores).

    python benchmarks/bench_train.py                    # the default shape (4 x 192), batch 12 x 256
    python benchmarks/bench_train.py --quick            # 2 rounds
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_train.py
    python benchmarks/bench_train.py --n-layer 6 --n-embd 384 --n-head 6 --batch-size 8

Target (issue 8): npgpt >= 0.7x torch's tokens/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def threads() -> int:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def build(config, attn: str):
    import torch
    import transformers

    torch.manual_seed(0)
    hf_config = transformers.GPT2Config(**config.to_hf_dict())
    hf_config._attn_implementation = attn
    return transformers.GPT2LMHeadModel(hf_config).train()


def npgpt_stepper(hf, config, lr=1e-3):
    from npgpt.training.optim import AdamW
    from npgpt.training import train_step
    from npgpt.weights import flatten, params_from_checkpoint

    params = params_from_checkpoint({k: v.detach().numpy() for k, v in hf.state_dict().items()}, config, "hf")
    optimizer = AdamW(flatten(params), lr=lr, betas=(0.9, 0.99), weight_decay=0.1)

    def step(inputs, targets):
        return train_step(params, config, optimizer, inputs, targets, lr=lr, grad_clip=1.0)["loss"]

    return step


def torch_stepper(hf, lr=1e-3):
    import torch

    decay = [p for n, p in hf.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in hf.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=lr, betas=(0.9, 0.99))

    def step(inputs, targets):
        inputs, targets = torch.as_tensor(inputs), torch.as_tensor(targets)
        logits = hf(inputs).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hf.parameters(), 1.0)
        optimizer.step()
        return loss.item()

    return step


def tokens_per_s(step, batches) -> float:
    start = time.perf_counter()
    for inputs, targets in batches:
        step(inputs, targets)
    return sum(x.size for x, _ in batches) / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=192)
    parser.add_argument("--n-head", type=int, default=6)
    parser.add_argument("--n-vocab", type=int, default=1024)
    parser.add_argument("--n-seq", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=None, help="alternations (default 6, quick 2)")
    parser.add_argument("--steps", type=int, default=None, help="steps per library per round (default 2)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 6)
    steps = args.steps or 2

    import torch

    import npgpt

    n_threads = threads()
    torch.set_num_threads(n_threads)
    config = npgpt.GPT2Config(n_vocab=args.n_vocab, n_ctx=args.n_seq, n_embd=args.n_embd, n_head=args.n_head,
                              n_layer=args.n_layer)
    contenders = {
        "npgpt (NumPy)": npgpt_stepper(build(config, "eager"), config),
        "torch, sdpa attention": torch_stepper(build(config, "sdpa")),
        "torch, eager attention": torch_stepper(build(config, "eager")),
    }
    rng = np.random.default_rng(0)

    def batches(n):
        out = []
        for _ in range(n):
            ids = rng.integers(0, args.n_vocab, size=(args.batch_size, args.n_seq + 1))
            out.append((ids[:, :-1], ids[:, 1:]))
        return out

    print(
        f"{config.n_params() / 1e6:.2f}M parameters (n_layer={args.n_layer}, n_embd={args.n_embd}, "
        f"n_head={args.n_head}, n_vocab={args.n_vocab}), batch {args.batch_size} x {args.n_seq} tokens, float32, "
        f"{n_threads} threads (torch {torch.__version__}: {torch.get_num_threads()}); median of {rounds} rounds "
        f"of {steps} steps, AdamW + clipping included"
    )
    for step in contenders.values():  # warm-up: allocation, kernel selection
        tokens_per_s(step, batches(1))
    rates = {name: [] for name in contenders}
    for _ in range(rounds):
        data = batches(steps)
        for name, step in contenders.items():
            rates[name].append(tokens_per_s(step, data))
    medians = {name: statistics.median(r) for name, r in rates.items()}
    ours = rates["npgpt (NumPy)"]
    ratios = {name: statistics.median(a / b for a, b in zip(ours, r)) for name, r in rates.items()}
    for name, rate in medians.items():
        spread = f"{min(rates[name]):,.0f}-{max(rates[name]):,.0f}"
        ratio = "" if name.startswith("npgpt") else f"   npgpt / this = {ratios[name]:.2f}x"
        print(f"  {name:24s} {rate:9,.0f} tokens/s  (rounds: {spread}){ratio}")
    print(f"npgpt vs torch (default sdpa): {ratios['torch, sdpa attention']:.2f}x  (target >= 0.7x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
