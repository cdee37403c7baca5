"""``npgpt train``: pre-train a small GPT-2 from scratch on a text file, with a tokenizer learned from it.

The shape comes from a preset (``--preset gpt2`` etc.) or from flags; the defaults make a quick
4-layer model (the bundled Shakespeare model's command, longer and 8 layers deep, is in
``weights/README.md``). The hyper-parameter flags are shared with ``npgpt finetune``
(``add_training_arguments``); each defaults to ``TrainSettings``' value.
"""

from __future__ import annotations

import argparse
import dataclasses

from ..config import PRESETS

EXAMPLES = r"""
examples:
  npgpt data tinyshakespeare
  npgpt train --data data/tinyshakespeare.txt --out weights/my-shakespeare
  npgpt train --data notes.txt --out weights/tiny --n-layer 2 --n-embd 64 --n-head 2 --steps 300
  npgpt train --data data/tinyshakespeare.txt --out weights/my-shakespeare --resume    # after Ctrl-C
  npgpt train --data data/tinyshakespeare.txt --out weights/my-shakespeare --resume --steps 3000  # longer

The model folder (config.json, model.safetensors, vocab.json, merges.txt, loss.png, train_log.json)
is rewritten at every evaluation; checkpoints go to OUT-checkpoint unless --checkpoint says where.
"""


def register(subparsers) -> None:
    from ..training import DEFAULT_CONFIG

    parser = subparsers.add_parser(
        "train",
        help="pre-train a small GPT-2 on a text file",
        description="Learn a BPE tokenizer from a text file and pre-train a GPT-2 on it, in NumPy.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", required=True, metavar="FILE", help="a UTF-8 text file; its last 10%% is held out")
    parser.add_argument("--out", required=True, metavar="DIR", help="the model folder to write, e.g. weights/NAME")
    shape = parser.add_argument_group("model shape (a preset, then flags override it)")
    shape.add_argument("--preset", choices=sorted(PRESETS), help="start from a released GPT-2's shape")
    c = DEFAULT_CONFIG
    shape.add_argument("--n-layer", type=int, help=f"transformer blocks (default {c.n_layer})")
    shape.add_argument("--n-embd", type=int, help=f"width of the residual stream (default {c.n_embd})")
    shape.add_argument("--n-head", type=int, help=f"attention heads (default {c.n_head})")
    shape.add_argument("--n-ctx", type=int, help=f"context length (default {c.n_ctx})")
    shape.add_argument("--vocab-size", type=int, help=f"tokens in the learned BPE vocabulary, <|endoftext|> included (default {c.n_vocab})")
    add_training_arguments(parser)
    parser.set_defaults(func=run)


def add_training_arguments(parser, defaults=None) -> None:
    """The hyper-parameter and run-control flags of ``train`` and ``finetune``."""
    from ..training import TrainSettings

    d = defaults or TrainSettings()
    g = parser.add_argument_group("training")
    g.add_argument("--steps", type=int, help=f"optimiser steps in the whole run (default {d.steps})")
    g.add_argument("--batch-size", type=int, help=f"windows per step (default {d.batch_size})")
    g.add_argument("--n-seq", type=int, help="tokens per window (default: the context length)")
    g.add_argument("--lr", type=float, help=f"peak learning rate (default {d.lr})")
    g.add_argument("--min-lr", type=float, help=f"learning rate at the end of the cosine decay (default {d.min_lr})")
    g.add_argument("--warmup", type=int, dest="warmup_steps", help=f"warm-up steps (default {d.warmup_steps})")
    g.add_argument("--weight-decay", type=float, help=f"AdamW weight decay (default {d.weight_decay})")
    g.add_argument("--beta2", type=float, help=f"AdamW beta2 (default {d.beta2})")
    g.add_argument("--grad-clip", type=float, help=f"largest gradient norm, 0 for none (default {d.grad_clip})")
    g.add_argument("--seed", type=int, help=f"seed of the initial weights, batches and samples (default {d.seed})")
    g.add_argument("--dropout", type=float, help=f"dropout on the embeddings and every block's outputs (default {d.dropout})")
    g.add_argument("--repeat-fraction", type=float, help="share of windows holding a random span written twice, to teach copying "
                   f"(default {d.repeat_fraction})")
    g.add_argument("--position-init", choices=("normal", "sinusoidal"),
                   help=f"how the learned position embeddings start (default {d.position_init}; see TrainSettings)")
    g.add_argument("--init-std", type=float, help=f"standard deviation of the initial weights (default GPT-2's {d.init_std})")
    g.add_argument("--attn-init-std", type=float, help="standard deviation of the query, key and value weights alone "
                   "(default: --init-std; 0.12 let weights/shakespeare-induction's heads form)")
    g.add_argument("--repeat-source", choices=("random", "text"),
                   help=f"what --repeat-fraction's spans hold: random tokens or a stretch of the text (default {d.repeat_source})")
    g.add_argument("--val-fraction", type=float, help=f"share of the text held out at its end (default {d.val_fraction})")
    g = parser.add_argument_group("evaluation, samples and checkpoints")
    g.add_argument("--eval-interval", type=int, help=f"steps between validation + checkpoint (default {d.eval_interval})")
    g.add_argument("--eval-tokens", type=int, help="validation tokens per periodic evaluation (default: all; the last uses all)")
    g.add_argument("--sample-interval", type=int, help=f"steps between samples, 0 for none (default {d.sample_interval})")
    g.add_argument("--sample-tokens", type=int, help=f"tokens per sample (default {d.sample_tokens})")
    g.add_argument("--sample-prompt", help="text the samples start from (default: a newline)")
    g.add_argument("--checkpoint", metavar="DIR", help="checkpoint folder (default: OUT-checkpoint)")
    g.add_argument("--resume", action="store_true", help="continue the run saved in the checkpoint (its settings; --steps may make it longer or shorter)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing model folder / checkpoint")


def settings_from_args(args, base):
    """``base`` (a TrainSettings) with every training flag that was given."""
    changes = {f.name: getattr(args, f.name) for f in dataclasses.fields(base)
               if getattr(args, f.name, None) is not None}
    return base.replace(**changes)


def resume_base(args, default):
    """The settings flags apply to: with --resume, the checkpoint's own (so that --steps is the
    only change asked for); else ``default``."""
    import json
    from pathlib import Path

    from ..training import TrainSettings
    from ..training.checkpoint import CHECKPOINT_STATE, default_checkpoint

    if not args.resume:
        return default
    checkpoint = Path(args.checkpoint) if args.checkpoint else default_checkpoint(args.out)
    try:
        with open(checkpoint / CHECKPOINT_STATE, encoding="utf-8") as f:
            return TrainSettings(**json.load(f)["settings"])
    except (OSError, ValueError, KeyError, TypeError):
        return default  # no readable checkpoint: pretrain says so


def run(args: argparse.Namespace) -> int:
    from ..training import DEFAULT_CONFIG, TrainSettings, pretrain

    config = PRESETS[args.preset].replace(n_vocab=DEFAULT_CONFIG.n_vocab, n_ctx=DEFAULT_CONFIG.n_ctx) if args.preset else DEFAULT_CONFIG
    shape = {"n_layer": args.n_layer, "n_embd": args.n_embd, "n_head": args.n_head, "n_ctx": args.n_ctx, "n_vocab": args.vocab_size}
    config = config.replace(**{k: v for k, v in shape.items() if v is not None})
    settings = settings_from_args(args, resume_base(args, TrainSettings()))
    result = pretrain(
        args.data, args.out, config=config, settings=settings, checkpoint=args.checkpoint, resume=args.resume,
        overwrite=args.overwrite, record={"command": command_line("train", args)},
    )
    report(result, args.out)
    return 0


def report(result, out) -> None:
    from ..training import format_duration

    print(
        f"{out}: validation loss {result.val_loss:.4f} nats/token, {result.val_nats_per_char:.4f} nats/char; "
        f"trained {format_duration(result.elapsed_s)} (h:mm:ss, evaluations included; "
        f"{format_duration(result.cpu_s)} of CPU time)"
    )


def command_line(command: str, args: argparse.Namespace) -> str:
    """The command as typed, rebuilt from the parsed flags (for train_log.json): the flags given,
    in the parser's order."""
    import shlex

    words = ["npgpt", command]
    for name, value in vars(args).items():
        if name in ("func", "command") or value is None or value is False:
            continue
        flag = "--" + {"warmup_steps": "warmup"}.get(name, name).replace("_", "-")
        words += [flag] if value is True else [flag, shlex.quote(str(value))]
    return " ".join(words)
