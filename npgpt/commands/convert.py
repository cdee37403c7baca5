"""``npgpt convert``: write a self-contained copy of a model, for example in float16 (half the disk).

``npgpt.load`` reads a model in the Hugging Face cache in place, so no copy is ever needed to run
one; this command makes one when asked: one ``model.safetensors`` (float32, or float16 with
``--storage float16``), the tokenizer files and ``npgpt.json`` (where it came from). The folder's
path is the one line printed on stdout.
"""

from __future__ import annotations

import argparse

EXAMPLES = r"""
examples:
  npgpt convert gpt2-xl weights/gpt2-xl --storage float16   # 3.2 GB instead of 6.4 GB
  npgpt convert ~/models/my-finetune ~/models/my-finetune-f16 --storage float16
  npgpt convert someone/sharded-gpt2 merged                  # shards merged into one file

A folder converted into the weights folder under the model's own name (weights/gpt2-xl) is what
npgpt.load("gpt2-xl") then finds first.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "convert",
        help="write a self-contained copy of a model (e.g. float16: half the disk)",
        description="Write a self-contained npgpt model folder from a model name (found locally or\n"
        "downloaded into the Hugging Face cache) or a model folder.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", metavar="NAME_OR_FOLDER", help="gpt2, ..., a Hub repo id, or a model folder")
    p.add_argument("out", metavar="OUT", help="the folder to write (new, or one npgpt converted before)")
    p.add_argument("--storage", choices=["float32", "float16"], default="float32",
                   help="how the copy stores the weights; the model always computes in float32 (default: float32)")
    p.add_argument("--revision", default=None, help="branch, tag or commit hash of a Hub model (default: main)")
    p.add_argument("--force", action="store_true", help="convert again even if OUT is up to date")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import hub

    folder = hub.convert_model(args.name, args.out, storage=args.storage, revision=args.revision, force=args.force,
                               progress=not args.quiet)
    print(folder)
    return 0
