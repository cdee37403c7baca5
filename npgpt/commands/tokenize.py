"""npgpt tokenize: show the GPT-2 tokens and ids of a text, or every step with --explain.

    npgpt tokenize "Hello world!"            coloured tokens (on a terminal), ids, counts
    npgpt tokenize --explain "Hello world!"  pre-tokens, bytes, mapped characters, each merge
    echo "some text" | npgpt tokenize -      read standard input (keeps its final newline)
    npgpt tokenize --file notes.txt --ids-only
    npgpt tokenize --json "Hello"            machine-readable

Without colour (a pipe, NO_COLOR set, or --no-color) the tokens are printed as a table, one per
line, with Python string quoting so spaces and newlines are visible. A token that holds only part
of a character (emoji and many non-Latin characters take 2-4 tokens) shows its bytes instead:
b' \\xf0\\x9f\\x91' is a space and the first 3 bytes of 👍.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..errors import InputError, ModelNotFoundError
from ..engine import tokenizer_class
from ..tokenizer import GPT2_MODEL_NAMES, Tokenizer

# 256-colour backgrounds in the spirit of the online tokenizer views: purple, green, orange,
# red, blue; black text on top.
_BACKGROUNDS = (183, 151, 222, 217, 117)
_RESET = "\x1b[0m"
EXPLAIN_MAX_CHARS = 1000  # --explain's output grows with the square of a word's length


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "tokenize",
        help="show how GPT-2 splits a text into tokens",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("text", nargs="?", metavar="TEXT", help='the text; "-" reads standard input')
    parser.add_argument("--file", "-f", metavar="F", help="read the text from this UTF-8 file")
    parser.add_argument("--explain", action="store_true", help="print every step of the encoding")
    parser.add_argument("--ids-only", action="store_true", help="print only the ids, space-separated")
    parser.add_argument("--json", action="store_true", help="print JSON (with --explain: every step)")
    parser.add_argument(
        "--color",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="colour the tokens (default: when standard output is a terminal and NO_COLOR is unset)",
    )
    parser.add_argument(
        "--special",
        choices=("raise", "allow", "text"),
        default="raise",
        help="what to do with <|endoftext|> in the text: raise an error (default), encode it as "
        "the special token (allow), or as plain text (text)",
    )
    parser.add_argument(
        "--model",
        metavar="NAME_OR_PATH",
        help="take the tokenizer from this model folder (default: GPT-2's, no download)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    text = _read_text(args)
    tok = _load_tokenizer(args.model)
    special = {
        "raise": {},
        "allow": {"allowed_special": "all"},
        "text": {"disallowed_special": ()},
    }[args.special]
    try:
        if args.explain:
            text = _explainable(text)
            explanation = tok.explain(text, **special)
            ids = explanation.ids
        else:
            ids = tok.encode(text, **special)
    except InputError as e:
        if args.special == "raise" and tok.eot_token in text:
            raise InputError(
                f"the text contains {tok.eot_token}: pass --special allow to encode it as the "
                f"special token {tok.eot_id}, or --special text to encode it as plain text"
            ) from e
        raise
    out = sys.stdout

    if args.json:
        record = {"text": text, "n_tokens": len(ids), "ids": ids, "tokens": tok.decode_tokens(ids)}
        if args.explain:
            record["pieces"] = [_piece_json(p) for p in explanation.pieces]
        json.dump(record, out, ensure_ascii=False)
        out.write("\n")
        return 0
    if args.ids_only:
        out.write(" ".join(map(str, ids)) + "\n")
        return 0
    if args.explain:
        out.write(str(explanation) + "\n")
        return 0

    pieces = [tok.token_bytes(i) for i in ids]
    if _use_color(args.color, out):
        out.write(colorize([p.decode("utf-8", "backslashreplace") for p in pieces]) + "\n\n")
        out.write(f"ids: {ids}\n")
    else:
        width = max((len(str(i)) for i in ids), default=1)
        for n, (i, p) in enumerate(zip(ids, pieces)):
            out.write(f"{n:>5}  {i:>{width}}  {_show(p)}\n")
    n_bytes = len(text.encode("utf-8", "surrogatepass"))
    out.write(f"{_count(len(ids), 'token')}, {_count(len(text), 'character')}, {_count(n_bytes, 'byte')}\n")
    return 0


def _explainable(text: str) -> str:
    """The part of ``text`` that --explain shows: every merge of a long word lists all its parts, so
    the output grows with the square of a word's length; past EXPLAIN_MAX_CHARS it is cut, with a note."""
    if len(text) <= EXPLAIN_MAX_CHARS:
        return text
    print(f"npgpt: --explain shows the first {EXPLAIN_MAX_CHARS:,} of the text's {len(text):,} characters "
          "(every step of a long text is more than anyone reads); without --explain every token is shown",
          file=sys.stderr)
    return text[:EXPLAIN_MAX_CHARS]


def colorize(tokens: list[str]) -> str:
    """Each token's text on its own background colour, cycling, so token edges are visible.

    A newline inside a token is shown as "↵" and then printed, so lines still break; other
    control characters are shown escaped ("\\t" stays a tab). The caller passes bytes that are
    not a whole character escaped ("\\xf0\\x9f"), so a split emoji shows what each token holds.
    """
    spans = []
    for n, token in enumerate(tokens):
        visible = "".join(
            "↵" + _RESET + "\n" + _bg(n) if c == "\n" else c if c == "\t" or c.isprintable() else repr(c)[1:-1]
            for c in token
        )
        spans.append(_bg(n) + visible + _RESET)
    return "".join(spans)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _show(token: bytes) -> str:
    """A token for the table: its text quoted ('Hello'), or, when it holds only part of a
    character, its bytes (b' \\xf0\\x9f\\x91')."""
    try:
        return repr(token.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(token)


def _bg(n: int) -> str:
    return f"\x1b[38;5;16;48;5;{_BACKGROUNDS[n % len(_BACKGROUNDS)]}m"


def _use_color(flag: bool | None, stream) -> bool:
    if flag is not None:
        return flag
    return stream.isatty() and "NO_COLOR" not in os.environ


def _read_text(args) -> str:
    if args.file is not None and args.text is not None:
        raise InputError("give the text either as TEXT or with --file, not both")
    if args.file is not None:
        try:
            with open(args.file, "rb") as f:
                data = f.read()
        except OSError as e:
            raise InputError(f"cannot read {args.file}: {e.strerror}") from e
        return _decode(data, args.file)
    if args.text == "-":
        return _decode(sys.stdin.buffer.read(), "standard input")
    if args.text is None:
        raise InputError('nothing to tokenize: give TEXT, "-" for standard input, or --file F')
    from .generate import utf8_text

    return utf8_text(args.text, "the text argument")


def _decode(data: bytes, where: str) -> str:
    from .generate import decode_utf8

    return decode_utf8(data, where)


def _load_tokenizer(name_or_path: str | None) -> Tokenizer:
    """GPT-2's tokenizer, or that of a model folder: a path, or the name of a model already on
    this machine (``npgpt.hub.find_local``: the weights folder or the Hugging Face cache). Never
    downloads."""
    if name_or_path is None:
        return tokenizer_class().gpt2()
    from ..hub import find_local

    folder = find_local(name_or_path)
    if folder is not None:
        return tokenizer_class().from_folder(folder, fallback_to_gpt2=True)
    if name_or_path.removeprefix("openai-community/") in GPT2_MODEL_NAMES:
        return tokenizer_class().gpt2()  # every released GPT-2 size shares one tokenizer
    raise ModelNotFoundError(
        f"no model folder {name_or_path!r}; give a folder with vocab.json + merges.txt, the name of a "
        f"model on this machine, or one of {', '.join(GPT2_MODEL_NAMES)}"
    )


def _piece_json(piece) -> dict:
    return {
        "text": piece.text,
        "utf8": piece.utf8.hex(" "),
        "chars": piece.chars,
        "merges": [
            {"rank": m.rank, "left": m.left, "right": m.right, "position": m.position, "parts_after": list(after)}
            for m, after in zip(piece.merges, piece.steps()[1:])
        ],
        "tokens": list(piece.tokens),
        "ids": list(piece.ids),
        "special": piece.special,
    }
