"""``npgpt score``: how likely a model finds a text, token by token, and its perplexity."""

from __future__ import annotations

import argparse
import math
import os

from ..errors import InputError
from .generate import add_model_argument, decode_utf8, finite_or_none, load_model, read_stdin, to_json, utf8_text

EXAMPLES = r"""
examples:
  npgpt score "The quick brown fox jumps over the lazy dog."
  npgpt score essay.txt --quiet                 # just the perplexity
  npgpt score essay.txt --window 1024 --stride 512 --json > scores.json
  cat essay.txt | npgpt score - --bos

The argument is read as a file when a file of that name exists ('-' reads stdin); otherwise it is
the text itself (--text forces that). Each token gets log P(token | the tokens before it) in nats;
the first token has no context and gets none unless --bos puts <|endoftext|> before the text.
Perplexity = exp(mean negative log-probability over the scored tokens). Texts longer than the
window are read in overlapping windows that start every --stride tokens (Hugging Face's
perplexity guide), so every token sees at least window - stride tokens of context.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "score",
        help="per-token log-probabilities and perplexity of a text",
        description="Score a text with a GPT-2: log-probability of every token and the perplexity.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", metavar="FILE|TEXT", help="a file to score ('-' for stdin), or the text itself")
    parser.add_argument("--text", action="store_true", help="treat the argument as text even if a file has that name")
    add_model_argument(parser)
    parser.add_argument("--window", type=int, default=None, help="tokens per window (default: the model's n_ctx)")
    parser.add_argument("--stride", type=int, default=None, help="tokens between window starts (default: window / 2)")
    parser.add_argument("--bos", action="store_true", help="put <|endoftext|> before the text so the first token is scored too")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the perplexity line")
    parser.add_argument("--json", action="store_true", help="print one JSON object with every token's score")
    parser.set_defaults(func=run)


def read_source(source: str, force_text: bool) -> tuple[str, str]:
    """(text, where it came from): '-' is stdin, an existing file is read, anything else is text."""
    if force_text:
        return utf8_text(source, "the text argument"), "text"
    if source == "-":
        return read_stdin(), "stdin"
    if os.path.isfile(source):
        with open(source, "rb") as f:
            return decode_utf8(f.read(), source), source
    return utf8_text(source, "the text argument"), "text"


def run(args: argparse.Namespace) -> int:
    from ..scoring import score

    text, origin = read_source(args.source, args.text)
    if not text:
        raise InputError("nothing to score: the text is empty")
    model = load_model(args.model, args.dtype)
    if model.tokenizer is None:
        raise InputError(f"model {args.model!r} has no tokenizer (vocab.json + merges.txt); scoring text needs one")
    result = score(model, text, window=args.window, stride=args.stride, prepend_eot=args.bos)

    if args.json:
        print(to_json({
            "model": args.model,
            "source": origin,
            "tokens": [{"id": i, "text": t, "logprob": lp} for i, t, lp in zip(result.ids, result.tokens, result.logprobs)],
            "scored_tokens": result.n_scored,
            "mean_nll": finite_or_none(result.mean_nll),
            "perplexity": finite_or_none(result.perplexity),
            "window": result.window,
            "stride": result.stride,
        }, ensure_ascii=False, indent=2))
        return 0
    if not args.quiet:
        print(f"{'pos':>6}  {'token':<24}{'logprob':>9}{'prob':>9}")
        for pos, (tok, lp) in enumerate(zip(result.tokens, result.logprobs)):
            shown = repr(tok)[:24]
            if lp is None:
                print(f"{pos:>6}  {shown:<24}{'-':>9}{'-':>9}")
            else:
                print(f"{pos:>6}  {shown:<24}{lp:>9.3f}{math.exp(lp):>9.4f}")
    print(
        f"perplexity {result.perplexity:.3f} (mean -log p {result.mean_nll:.4f} nats over {result.n_scored} "
        f"tokens; window {result.window}, stride {result.stride})"
    )
    return 0
