"""``npgpt chat``: an interactive prompt loop for trying a model.

GPT-2 is not an instruction-tuned chat model: it continues text. Each line you type is appended
to the conversation so far (or, with --no-history, stands alone) and the model's continuation is
streamed back. The running text slides when it outgrows the context (the oldest tokens go).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ..errors import InputError
from .generate import add_model_argument, add_sampling_arguments, check_settings, fresh_seed, load_model, settings_from_args, utf8_text, write

EXAMPLES = r"""
examples:
  npgpt chat
  npgpt chat --model gpt2-medium --temperature 0.7 --top-p 0.9 --max-new-tokens 80
  npgpt chat --no-history --stop "\n"

in the loop:
  /reset   forget the conversation so far
  /quit    leave (so do Ctrl-D and Ctrl-C)
  /help    this list
"""

HELP = "commands: /reset forgets the conversation, /quit leaves, /help shows this"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="an interactive prompt loop",
        description="Type prompts and read the model's continuations, one after another.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_argument(parser)
    add_sampling_arguments(parser)
    parser.add_argument("--no-history", action="store_true", help="continue each prompt alone, forgetting earlier turns")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..generate import stream

    settings = settings_from_args(args)
    greedy = args.temperature == 0
    seed = settings["seed"] if settings["seed"] is not None else fresh_seed()
    check_settings({**settings, "seed": seed})
    settings["seed"] = np.random.default_rng(seed)  # one generator for the session: each turn draws from it
    settings["sliding_window"] = True  # a conversation outgrows any context
    model = load_model(args.model, args.dtype)
    if model.tokenizer is None:
        raise InputError(f"model {args.model!r} has no tokenizer (vocab.json + merges.txt); chat needs one")
    seed_note = "greedy" if greedy else f"seed {seed}"
    print(f"npgpt chat with {model!r} ({seed_note}). {HELP}; Ctrl-D also leaves.", file=sys.stderr)
    history = ""
    while True:
        try:
            line = utf8_text(input("> "), "that line")
        except EOFError:
            print(file=sys.stderr)
            return 0
        except (UnicodeDecodeError, InputError) as e:  # the one rule: text that is not UTF-8 is refused
            print(f"npgpt: error: {e if isinstance(e, InputError) else 'that line is not UTF-8 text; type it again'}",
                  file=sys.stderr)
            continue
        command = line.strip()
        if command in ("/quit", "/exit"):
            return 0
        if command == "/reset":
            history = ""
            print("(conversation forgotten)", file=sys.stderr)
            continue
        if command == "/help":
            print(HELP, file=sys.stderr)
            continue
        if not command:
            continue
        context = line if args.no_history or not history else f"{history}\n{line}"
        pieces = stream(model, context, **settings)
        for piece in pieces:
            write(piece)
        write("\n")
        completion = pieces.result.completions[0]
        print(f"[{pieces.result.stats.summary()}; stopped at: {completion.finish_reason}]", file=sys.stderr)
        history = context + completion.text
