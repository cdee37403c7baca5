"""The ``npgpt`` command line: one subcommand per module in ``npgpt/commands/``.

Each command module has ``register(subparsers)``, which adds its parser and sets ``func`` to a
function ``(args) -> int`` (the exit code). Errors npgpt raises for things a user can fix
(``NpgptError``) print one line, ``npgpt: error: ...``, and exit with code 2, like argparse does
for bad flags.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import NpgptError

# Module names under npgpt.commands, in the order `npgpt --help` lists them.
COMMANDS = ["generate", "score", "chat", "tokenize", "download", "models", "viz", "train", "finetune", "data"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="npgpt",
        description="GPT-2 in NumPy: generate, tokenize, inspect and train on a CPU.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"npgpt.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NpgptError as e:
        print(f"npgpt: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `npgpt ... | head` closed the pipe: not an error
        return 0
    except KeyboardInterrupt:
        print("npgpt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
