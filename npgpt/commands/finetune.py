"""``npgpt finetune``: continue training an existing model on a text file, with its own tokenizer."""

from __future__ import annotations

import argparse
from pathlib import Path

from .train import add_training_arguments, command_line, report, resume_base, settings_from_args

EXAMPLES = r"""
examples:
  npgpt finetune --model gpt2 --data my_letters.txt --out weights/gpt2-letters
  npgpt finetune --model weights/shakespeare --data sonnets.txt --steps 100 --lr 3e-4
  npgpt finetune --model gpt2 --data my_letters.txt --out weights/gpt2-letters --resume
"""


def register(subparsers) -> None:
    from ..training import FINETUNE_SETTINGS as defaults

    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a model on a text file",
        description="Fine-tune an existing GPT-2 (a model folder or a name such as gpt2) on a text file, in NumPy.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="a model folder, or a name npgpt.load knows (gpt2, shakespeare)")
    parser.add_argument("--data", required=True, metavar="FILE", help="a UTF-8 text file; its last 10%% is held out")
    parser.add_argument("--out", metavar="DIR", help="the model folder to write (default: weights/MODEL-finetuned)")
    add_training_arguments(parser, defaults)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training import FINETUNE_SETTINGS, finetune

    out = args.out or str(Path("weights") / f"{Path(args.model).name}-finetuned")
    settings = settings_from_args(args, resume_base(args, FINETUNE_SETTINGS))
    result = finetune(
        args.model, args.data, out, settings=settings, checkpoint=args.checkpoint, resume=args.resume,
        overwrite=args.overwrite, record={"command": command_line("finetune", args)},
    )
    report(result, out)
    return 0
