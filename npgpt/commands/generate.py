"""``npgpt generate``: continue a prompt, streaming the text to the terminal.

Also holds the options and helpers that ``npgpt chat`` and ``npgpt score`` share: ``--model``,
the sampling options, and loading a model with a clear error.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

from ..errors import InputError

EXAMPLES = r"""
examples:
  npgpt generate "Once upon a time"
  npgpt generate "Once upon a time" --temperature 0.8 --top-p 0.95 --seed 1
  npgpt generate "The capital of France is" --temperature 0 --max-new-tokens 20   # greedy
  npgpt generate "Q: What is a prime number?\nA:" --stop "\n" --seed 3
  npgpt generate "Hello" "Goodbye" --num-samples 3 --max-new-tokens 20
  npgpt generate "The meaning of life" --json --alternatives 5 > out.json
  npgpt generate --model weights/my-gpt2 "ROMEO:" --max-new-tokens 500 --sliding-window
  echo "Once upon a time" | npgpt generate -

The text goes to stdout (prompt, then the continuation as it is generated); a one-line summary
(tokens, tokens/s, time to first token, the seed) goes to stderr. Without --seed a random seed is
drawn and shown in the summary, so any sample can be reproduced with --seed.
"""


# ---- shared by generate, chat and score --------------------------------------------------------


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", "-m", default="gpt2", metavar="NAME_OR_PATH",
        help="a model folder (config.json + model.safetensors) or a name such as gpt2, gpt2-medium (default: gpt2)",
    )
    parser.add_argument(
        "--dtype", choices=["float32", "float16"], default="float32",
        help="how the weights are held in memory: float32 (default, fastest) or float16 (half the memory, "
        "widened to float32 as each is used: slower; the arithmetic is float32 either way)",
    )


def add_sampling_arguments(parser: argparse.ArgumentParser, max_new_tokens: int = 50) -> None:
    g = parser.add_argument_group("sampling")
    g.add_argument("--max-new-tokens", "-n", type=int, default=max_new_tokens, metavar="N",
                   help=f"most tokens to generate (default: {max_new_tokens})")
    g.add_argument("--temperature", "-t", type=float, default=1.0, metavar="T",
                   help="> 1 more random, < 1 more focused, 0 greedy (default: 1.0)")
    g.add_argument("--top-k", type=int, default=None, metavar="K", help="sample from the K most likely tokens only")
    g.add_argument("--top-p", type=float, default=None, metavar="P",
                   help="nucleus sampling: the fewest tokens whose probabilities add up to P, in (0, 1]")
    g.add_argument("--min-p", type=float, default=None, metavar="P",
                   help="drop tokens less likely than P times the most likely one, in [0, 1]")
    g.add_argument("--repetition-penalty", type=float, default=1.0, metavar="R",
                   help="> 1 discourages repeating tokens already in the text (default: 1.0, none)")
    g.add_argument("--seed", type=int, default=None, help="random seed, for reproducible samples")
    g.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help=r"stop when the output contains TEXT (repeatable; \n and \t are understood)")
    g.add_argument("--ignore-eos", action="store_true", help="do not stop at <|endoftext|>")
    g.add_argument("--sliding-window", action="store_true",
                   help="generate past the context length by dropping the oldest tokens (default: refuse)")


def settings_from_args(args: argparse.Namespace) -> dict:
    """The generation settings the shared options describe (checked by GenerationSettings)."""
    return {
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "min_p": args.min_p,
        "repetition_penalty": args.repetition_penalty,
        "seed": args.seed,
        "stop": tuple(s.replace("\\n", "\n").replace("\\t", "\t") for s in args.stop),
        "ignore_eos": args.ignore_eos,
        "sliding_window": args.sliding_window,
    }


def check_settings(settings: dict) -> None:
    """Raise InputError for invalid settings before a model is loaded (loading can take seconds)."""
    from ..generate import GenerationSettings

    GenerationSettings.from_kwargs(settings)


def fresh_seed() -> int:
    """A random seed to show the user, so an unseeded sample can be reproduced."""
    return int(np.random.SeedSequence().generate_state(1)[0])


def load_model(name_or_path: str, dtype: str = "float32"):
    """``npgpt.load``: a name or path that does not resolve raises its own clear ``ModelNotFoundError``."""
    import npgpt

    return npgpt.load(name_or_path, dtype=dtype)


def read_prompt(prompt: str) -> str:
    """A prompt argument: '-' reads stdin. Text that is not UTF-8 is refused (``utf8_text``)."""
    if prompt == "-":
        return read_stdin()
    return utf8_text(prompt, "the text argument")


# One rule for input bytes that are not UTF-8, in every command (generate, score, tokenize, chat):
# refused with the offset of the first bad byte, never replaced or guessed.


def decode_utf8(data: bytes, where: str) -> str:
    """``data`` as UTF-8 text, or an ``InputError`` naming the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(
            f"{where} is not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r}); convert it first, "
            "e.g. iconv -f latin1 -t utf-8"
        ) from None


def read_stdin() -> str:
    """Standard input's bytes as UTF-8 text (a text-only stdin, e.g. a StringIO in tests, as it is)."""
    buffer = getattr(sys.stdin, "buffer", None)
    return decode_utf8(buffer.read(), "standard input") if buffer is not None else sys.stdin.read()


def utf8_text(text: str, where: str) -> str:
    """A command-line argument: bytes that were not UTF-8 arrive as lone surrogates; refuse them."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            raw = os.fsencode(text)
        except UnicodeEncodeError:
            raw = text.encode("utf-8", "surrogatepass")
        return decode_utf8(raw, where)


def to_json(obj, **options) -> str:
    """``json.dumps`` in which every non-finite float (NaN, infinity) is null: JSON has none of them,
    and a bare NaN makes the whole output unreadable to other programs."""

    def clean(x):
        if isinstance(x, float) or isinstance(x, np.floating):
            return float(x) if math.isfinite(x) else None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(obj), allow_nan=False, **options)


def finite_or_none(x: float) -> float | None:
    """JSON has no NaN or infinity: write null instead."""
    return x if np.isfinite(x) else None


def write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


# ---- npgpt generate ----------------------------------------------------------------------------


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="continue a prompt (streams to the terminal)",
        description="Generate text after one or more prompts with a GPT-2, on the CPU.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("prompts", nargs="+", metavar="PROMPT", help="text to continue ('-' reads stdin); several run as one batch")
    add_model_argument(parser)
    add_sampling_arguments(parser)
    parser.add_argument("--num-samples", "-s", type=int, default=1, metavar="N", help="samples per prompt (default: 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (text, ids, per-token probabilities, timing)")
    parser.add_argument("--alternatives", type=int, default=0, metavar="K",
                        help="with --json: the K most likely tokens at each step, with their probabilities")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..generate import generate_ids, stream

    settings = settings_from_args(args)
    settings["num_samples"] = args.num_samples
    greedy = args.temperature == 0
    if settings["seed"] is None and not greedy:
        settings["seed"] = fresh_seed()
    if args.alternatives < 0:
        raise InputError(f"--alternatives must be >= 0, got {args.alternatives}")
    if args.alternatives and not args.json:
        raise InputError("--alternatives adds the top tokens of each step to the JSON output: add --json")
    if args.json:
        settings.update(trace=True, trace_top_k=args.alternatives)
    check_settings(settings)
    prompts = [read_prompt(p) for p in args.prompts]
    model = load_model(args.model, args.dtype)
    if model.tokenizer is None:
        raise InputError(f"model {args.model!r} has no tokenizer (vocab.json + merges.txt); text prompts need one")

    if args.json:
        result = generate_ids(model, prompts, **settings)
        print(to_json(_json_result(args, model, prompts, settings, result), ensure_ascii=False, indent=2))
        return 0

    if len(prompts) == 1 and args.num_samples == 1:
        pieces = stream(model, prompts[0], **settings)  # checks the prompt's length before anything is printed
        write(prompts[0])
        for piece in pieces:
            write(piece)
        write("\n")
        result = pieces.result
    else:
        result = generate_ids(model, prompts, **settings)
        for c in result.completions:
            label = f"prompt {c.prompt_index + 1}" if len(prompts) > 1 else ""
            if args.num_samples > 1:
                label += (", " if label else "") + f"sample {c.sample_index + 1}"
            write(f"--- {label} ---\n{prompts[c.prompt_index]}{c.text}\n")
    print(_summary(result, settings, greedy), file=sys.stderr)
    return 0


def _summary(result, settings: dict, greedy: bool) -> str:
    reasons = sorted({c.finish_reason for c in result.completions})
    seed = "greedy" if greedy else f"seed {settings['seed']}"
    return f"[{result.stats.summary()}; {seed}; stopped at: {', '.join(reasons)}]"


def _json_result(args, model, prompts, settings, result) -> dict:
    stats = result.stats
    return {
        "model": args.model,
        "settings": {k: v for k, v in settings.items() if k not in ("trace", "trace_top_k")},
        "completions": [
            {
                "prompt_index": c.prompt_index,
                "sample_index": c.sample_index,
                "prompt": prompts[c.prompt_index],
                "text": c.text,
                "finish_reason": c.finish_reason,
                "prompt_ids": c.prompt_ids,
                "ids": c.ids,
                "tokens": [
                    {
                        "id": t.token_id,
                        "text": t.token_text,
                        "prob": t.prob,
                        **({"top": [{"id": a.id, "text": a.text, "prob": a.prob} for a in t.top]} if args.alternatives else {}),
                    }
                    for t in c.steps
                ],
            }
            for c in result.completions
        ],
        "stats": {
            "prompt_tokens": stats.prompt_tokens,
            "new_tokens": stats.new_tokens,
            "time_to_first_token_s": stats.time_to_first_token,
            "total_time_s": stats.total_time,
            "decode_tokens_per_s": finite_or_none(stats.decode_tokens_per_s),
        },
    }
