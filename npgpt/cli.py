"""The ``npgpt`` command line: one subcommand per module in ``npgpt/commands/``.

Each command module has ``register(subparsers)``, which adds its parser and sets ``func`` to a
function ``(args) -> int`` (the exit code). Errors npgpt raises for things a user can fix
(``NpgptError``) print one line, ``npgpt: error: ...``, and exit with code 2, like argparse does
for bad flags. So do the operating system's refusals (no permission, a full disk, a name too
long, a broken output device): one line each, never a traceback. Ctrl-C prints "npgpt:
interrupted" on a line of its own and exits with 130.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from .errors import NpgptError

# Module names under npgpt.commands, in the order `npgpt --help` lists them.
COMMANDS = ["generate", "score", "chat", "tokenize", "download", "convert", "models", "viz", "train", "finetune", "data"]


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
    args, extra = parser.parse_known_args(argv)
    extra = _late_text(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    out = _LineTracker(sys.stdout)
    sys.stdout = out
    try:
        code = int(args.func(args) or 0)
        out.flush()  # a full or broken output device fails here, inside the net, not at exit
        return code
    except NpgptError as e:
        return _fail(str(e))
    except BrokenPipeError:  # `npgpt ... | head` closed the pipe: not an error
        _silence_stdout()
        return 0
    except KeyboardInterrupt:
        _flush(out)
        print(("\n" if out.mid_line else "") + "npgpt: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        return _fail("out of memory: use a smaller model, batch or text (or --dtype float16)")
    except OSError as e:  # the safety net: permissions, a full disk, a name too long, a broken device
        try:
            out.flush()
        except (OSError, ValueError):
            _silence_stdout()  # stdout itself is what failed: drop what is buffered, or exit would fail again
        return _fail(_os_error_line(e))
    finally:
        if sys.stdout is out:
            sys.stdout = out.stream


def _fail(message: str) -> int:
    print(f"npgpt: error: {message}", file=sys.stderr)
    return 2


def _os_error_line(e: OSError) -> str:
    """One line for an OSError: what failed, where, and what to do."""
    where = f" ({e.filename})" if getattr(e, "filename", None) else ""
    what = e.strerror or str(e) or type(e).__name__
    hints = {
        errno.EACCES: "check the folder's permissions, or choose another one",
        errno.EPERM: "check the folder's permissions, or choose another one",
        errno.EROFS: "the file system is read-only: choose another folder",
        errno.ENOSPC: "the disk is full: free some space and run the same command again",
        errno.EDQUOT: "the disk quota is used up: free some space and run the same command again",
        errno.ENAMETOOLONG: "a file name is too long: use a shorter name",
        errno.EIO: "the device failed: check it, or write somewhere else",
    }
    return f"{what}{where}; {hints.get(e.errno, 'check the path and try again')}"


def _late_text(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """argparse gives a second, optional positional (``viz VIEW [TEXT]``) nothing when an option
    follows the first; the text then arrives here, as an unrecognised argument. It is taken back."""
    if getattr(args, "text", "absent") is None and extra and (extra[0] == "-" or not extra[0].startswith("-")):
        args.text = extra[0]
        return extra[1:]
    return extra


class _LineTracker:
    """sys.stdout, remembering whether the last text written ended a line (so that "interrupted"
    goes on a line of its own after streamed text)."""

    def __init__(self, stream):
        self.stream, self.mid_line = stream, False

    def write(self, text: str) -> int:
        n = self.stream.write(text)
        if text:
            self.mid_line = not text.endswith("\n")
        return n

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _flush(out) -> None:
    try:
        out.flush()
    except (OSError, ValueError):
        pass


def _silence_stdout() -> None:
    """After a closed pipe, send what Python flushes at exit to /dev/null (no second error)."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
