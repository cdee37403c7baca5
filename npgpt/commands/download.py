"""``npgpt download``: fetch a GPT-2 from the Hugging Face Hub once, into the Hugging Face cache.

Files go into huggingface_hub's cache (shared with transformers) and are verified; ``npgpt.load``
then reads them there, in place (see ``npgpt/hub/`` for the order in which it looks for a name).
``--storage float16`` or ``--to`` also write a converted copy (``npgpt convert`` does only that).
Progress goes to stderr; the folder's path is the one line printed on stdout, so
``$(npgpt download gpt2)`` is the folder.
"""

from __future__ import annotations

import argparse
import sys

EXAMPLES = r"""
examples:
  npgpt download gpt2                          # 124M parameters, ~500 MB
  npgpt download gpt2-xl --storage float16     # and a converted copy in float16: half the disk
  npgpt download someone/my-gpt2-finetune --revision v1.0
  npgpt download distilgpt2 --to ~/models/distilgpt2

Names: gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2, or any Hub repo id (owner/name) of a
GPT-2 model with safetensors weights. HF_ENDPOINT selects a mirror, HF_TOKEN reads private or
gated repos, HF_HUB_OFFLINE=1 forbids the network. An interrupted download resumes when the same
command is run again. Run it again later to update a model whose branch moved.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "download",
        help="fetch a GPT-2 from the Hugging Face Hub into the Hugging Face cache",
        description="Fetch a GPT-2 checkpoint from the Hugging Face Hub (once) into the Hugging Face cache and\n"
        "verify it; npgpt.load(NAME) and --model NAME then read it there, in place.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", help="gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2 or a Hub repo id (owner/name)")
    p.add_argument("--revision", default=None, help="branch, tag or commit hash (default: main)")
    p.add_argument("--storage", choices=["float32", "float16"], default=None,
                   help="also write a converted copy storing the weights so (float16: half the disk) into the "
                        "weights folder, unless the snapshot already stores them so; the model always computes in float32")
    p.add_argument("--to", metavar="DIR", default=None, help="also write a converted copy of the model into DIR")
    p.add_argument("--force", action="store_true", help="verify and convert again even if the folder is up to date")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import hub

    folder = hub.download(args.name, args.revision, storage=args.storage, to=args.to, force=args.force,
                          progress=not args.quiet)
    provenance = hub.read_provenance(folder) or {}
    if not args.quiet:
        source = f"{provenance.get('repo_id', args.name)}@{provenance.get('commit', folder.name)[:7]}"
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        where = f"converted ({provenance['storage']})" if provenance.get("storage") else "in the Hugging Face cache, read in place"
        print(f"{args.name}: {source}, {hub.human_size(size)}, {where}: {folder}", file=sys.stderr)
    print(folder)
    return 0
