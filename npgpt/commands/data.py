"""``npgpt data NAME``: download a training text (``tinyshakespeare``) to train on."""

from __future__ import annotations

import argparse

EXAMPLES = r"""
examples:
  npgpt data tinyshakespeare                        # -> data/tinyshakespeare.txt
  npgpt data tinyshakespeare --out ~/texts/shakespeare.txt
  npgpt train --data data/tinyshakespeare.txt --out weights/my-shakespeare
"""


def register(subparsers) -> None:
    from ..training.data import DATASETS

    parser = subparsers.add_parser(
        "data",
        help="download a training text",
        description="Download a text to train on. "
        + "; ".join(f"{name}: {source.about}" for name, source in DATASETS.items()),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=sorted(DATASETS), help="which text")
    parser.add_argument("--out", metavar="PATH", help="file (or folder) to write (default: data/NAME.txt)")
    parser.add_argument("--force", action="store_true", help="replace a different file already at --out")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.data import download

    path = download(args.name, args.out, force=args.force)
    print(f"{path} ({path.stat().st_size:,} bytes)")
    return 0
