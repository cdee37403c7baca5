"""GPT-2's tokenizer, fast: ``npgpt/tokenizer.py``'s ids, by faster paths.

``FastTokenizer`` is a subclass of the reference ``Tokenizer``, with the same interface; only
``encode_ordinary`` (and the loading of GPT-2's own files) take other paths to the same results.
``npgpt/engine.py`` chooses it: ``npgpt.Tokenizer`` and every model's tokenizer are this class. Each path is checked against the plain step it replaces by the tests
(``tests/test_tokenizer_fast.py``):

- step 1, ``pretokenize_fast``: tiktoken's possessive form of GPT-2's pattern
  (``GPT2_SPLIT_PATTERN_POSSESSIVE``), one ``findall`` per text without releasing the GIL between
  matches, and for stretches of ASCII text Python's own ``re`` with ASCII classes;
- steps 2-4, a word cache: pre-token -> its ids, which takes in the vocabulary's own words before
  the first long text (a pre-token that is a whole token, most English words, is never merged),
  read with one ``map`` over all the pieces of a text, so that words seen before cost no Python
  loop. The ids are kept packed, two bytes each (four above 65,536 tokens; ``_pack``), so that
  the ids of all the pieces join in one ``bytes.join``, and so that the garbage collector has
  nothing in the cache to walk through. A new piece gets an empty ``bytearray`` in that same
  ``map`` (the cache is a ``defaultdict``); all the new pieces of the text are then merged
  together in NumPy (``bpe_rows``: ``bpe``'s loop run by all of them in lockstep, the pieces of
  one length as the columns of one array, the ranks of their pairs read from a hash table,
  ``MergeTable``) and their bytearrays filled;
- a heap for pieces of hundreds of bytes (``bpe_heap``), where ``bpe`` takes quadratic time, and for
  pieces of many kilobytes (a megabyte of digits), rounds of many merges at once in NumPy (``bpe_long``);
- loading: GPT-2's own two files, recognized by their SHA-256, are read without parsing or checks
  (``_read_gpt2_files``), and the tables that only some uses need are built on first use.

How fast, and where the time goes: docs/tokenizer.md (``benchmarks/bench_tokenizer.py``).

Leaves out: threads working in parallel (one lock around the word cache); the split stays in
``regex``, in C, for non-ASCII text.
"""

from __future__ import annotations

import hashlib
import heapq
import operator
import re
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import accumulate, chain, count, islice, pairwise, repeat

import numpy as np
import regex

from ..tokenizer import (
    _BYTE_TO_CHAR,
    _CHAR_TO_BYTE,
    ENDOFTEXT,
    GPT2_N_VOCAB,
    Tokenizer,
    _check_text,
    bpe,
    folder_name,
    replace_lone_surrogates,
    require_files,
    to_byte_chars,
)

# The same split written with possessive quantifiers (`++`: never give characters back), as
# tiktoken does. The regex engine then never backtracks into a run of letters, which makes
# `findall` faster. `\s++\Z` (a whitespace run that ends the text) and the final
# `\s` are what `\s+(?!\S)|\s+` matches in the cases that need backtracking; the tests check that
# it gives the pieces of GPT-2's pattern as released (the reference's GPT2_SPLIT_PATTERN).
GPT2_SPLIT_PATTERN_POSSESSIVE = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++\Z|\s+(?!\S)|\s"""
)

_SPLIT_REGEX = regex.compile(GPT2_SPLIT_PATTERN_POSSESSIVE)

# The same split for text made only of ASCII characters, written for Python's own `re` module,
# which splits such text faster than `regex`. On ASCII the Unicode classes are short
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

# SHA-256 of GPT-2's own encoder.json and vocab.bpe, as tiktoken pins them: two files with these
# contents (under either pair of names) are read without checks (see _read_gpt2_files).
GPT2_VOCAB_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
GPT2_MERGES_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"

_BYTE_OF_CODE_POINT = np.zeros(256 + 68, dtype=np.uint8)  # bytes_to_unicode backwards, by code point
_BYTE_OF_CODE_POINT[[ord(c) for c in _CHAR_TO_BYTE]] = list(_CHAR_TO_BYTE.values())


# ---------------------------------------------------------------------------------------------
# Step 1, faster


def pretokenize_fast(text: str) -> list[str]:
    """``pretokenize``, the same pieces, faster; ``encode`` uses it.

    - ``regex`` runs without releasing the GIL between matches (``concurrent=False``);
    - text that is all ASCII is split by ``re`` with ``GPT2_SPLIT_PATTERN_ASCII``, which is faster;
    - text that is almost all ASCII (English prose with a few accents, emoji or curly quotes) is
      cut where every split of GPT-2's pattern cuts (``_ASCII_SPAN``) into long ASCII stretches,
      split by ``re``, and the rest, split by ``regex``.

    >>> pretokenize_fast("Hello world! It's 2024...\\n\\n")  # as pretokenize
    ['Hello', ' world', '!', ' It', "'s", ' 2024', '...', '\\n\\n']
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
# Step 3, faster: one long piece, many pieces at once


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
    no_merge_rank: int  # the "rank" of a pair that is no merge: n_merges, above every real rank
    # (not bpe's _NO_MERGE: a rank this small still fits in 32 bits after bpe_rows shifts it left)
    slot_keys: np.ndarray  # [n_slots] the key of the merge in each slot; all ones where empty
    slot_ranks: np.ndarray  # [n_slots] the rank of that merge (int32)
    shift: int  # home slot of a key: (key * HASH_MULTIPLIER) >> shift, in the key's integer type
    probes: int  # slots a lookup may have to read: 1 + the furthest any key sits from its home
    merged: np.ndarray  # [n_merges] id of the token that merge r makes, by rank r
    byte_ids: np.ndarray  # [256] id of the token of each single byte
    byte_pair_ranks: np.ndarray  # [256 * 256] rank of the merge of bytes (a, b) at a * 256 + b
    reach_left: np.ndarray  # [n_vocab] bytes of the longest x in a merge (x, token); 0 if none
    reach_right: np.ndarray  # [n_vocab] bytes of the longest y in a merge (token, y); 0 if none
    in_order: bool  # every merge comes after the merges that make its two tokens (see bpe_long)

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
        return cls(n_vocab, n_merges, slot_keys, slot_ranks, shift, probes, merged, byte_ids, byte_pair_ranks,
                   *_reaches(left, right, merged, lefts, rights, n_vocab))

    def rank(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Rank of each pair of token ids, given as two arrays (int32); ``no_merge_rank`` for a pair
        that is no merge."""
        keys = _pair_keys(left, right, self.n_vocab, self.slot_keys.dtype.type)
        empty = np.iinfo(self.slot_keys.dtype).max
        slot = _home_slots(keys, self.shift)
        found = self.slot_keys[slot]
        ranks = self.slot_ranks[slot]
        missed = found != keys
        ranks[missed] = self.no_merge_rank
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


def _reaches(left, right, merged, lefts, rights, n_vocab) -> tuple[np.ndarray, np.ndarray, bool]:
    """``MergeTable``'s reach_left, reach_right and in_order, from the merges (ids and texts)."""
    reach_left, reach_right = np.zeros(n_vocab, dtype=np.int32), np.zeros(n_vocab, dtype=np.int32)
    np.maximum.at(reach_left, right, np.fromiter(map(len, lefts), dtype=np.int32, count=len(lefts)))
    np.maximum.at(reach_right, left, np.fromiter(map(len, rights), dtype=np.int32, count=len(rights)))
    made_by = np.full(n_vocab, -1)  # [n_vocab] the last merge that makes each token; -1: none
    np.maximum.at(made_by, merged, np.arange(merged.size))
    rank = np.arange(merged.size)
    return reach_left, reach_right, bool(((made_by[left] < rank) & (made_by[right] < rank)).all())


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

    >>> bpe_many([b" world", b"Hello", b" Z\\xc3\\xbcrich"], FastTokenizer.gpt2().merge_table)
    [(995,), (15496,), (1168, 9116, 7527)]

    See ``bpe_rows``, which does the work.
    """
    ids, ends = bpe_flat(pieces, table)
    ids, ends = ids.tolist(), ends.tolist()
    return [tuple(ids[start:end]) for start, end in zip([0, *ends[:-1]], ends)]


def bpe_flat(pieces: list[bytes], table: MergeTable) -> tuple[np.ndarray, np.ndarray]:
    """``bpe_many`` as two arrays: the token ids of all the pieces, end to end in the order of
    ``pieces`` (int32), and where each piece's ids end.

    >>> ids, ends = bpe_flat([b" world", b" Z\\xc3\\xbcrich"], FastTokenizer.gpt2().merge_table)
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


# How bpe_rows works: the pieces of n bytes are the columns of an [n, w] array of token ids, one part
# per byte, and bpe runs in all of them at once. In a round, every piece merges its lowest-ranked pair,
# the leftmost if tied, exactly as bpe does; a piece with no pair left to merge is finished and leaves.
# The others are all one part shorter now: pieces of n parts have become pieces of n - 1 parts, the
# same shape as the pieces that were n - 1 bytes long to begin with, which join them. So the loop
# walks down from the longest piece's length to 1, one round per length, and each round is a fixed
# number of NumPy calls for all the pieces. (Pieces are columns, not rows, so that "part j of every
# piece" is one contiguous row of memory for those calls.) It pays off from a few dozen pieces
# (FastTokenizer.batch_min), e.g. the new words of a long text. Pieces longer than a few hundred
# bytes cost a round per byte each: bpe_heap is better for them.
def bpe_rows(pieces: list[bytes], table: MergeTable) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``bpe`` for many pieces in lockstep: yields blocks ``(index, ids)``, ``ids[k]`` = pieces[index[k]]'s."""
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
    key_type = np.int32 if (table.no_merge_rank + 1) << bits < 2**31 else np.int64
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
        done = best == table.no_merge_rank
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


# How bpe_long works. bpe makes one merge at a time, the lowest-ranked pair (the leftmost of equals):
# a word of a million bytes takes a million steps. bpe_long makes many merges at once, in rounds,
# each one that bpe is sure to make with the parts as they are now, so making it first changes
# nothing. That needs merges learned in order (each after the merges that make its two tokens:
# MergeTable.in_order), so that a merge makes only pairs that rank above it. Pair i (parts P_i and
# P_{i+1}, rank r) is sure if nothing takes P_i or P_{i+1} first. Only a merge (x, P_i) ranked
# below r takes P_i, with x = P_{i-1} (pair i - 1) or a token made of P_j .. P_{i-1} by merges
# ranked below r, the first of which merges a pair there now; x has at most reach_left[P_i] bytes,
# so j >= i - reach_left[P_i]. So if no pair from i - reach_left[P_i] to i - 1 ranks below r, nor
# any from i + 1 to i + reach_right[P_{i+1}] (the same, on the right), bpe merges pair i as it is.
# Pairs of equal rank are the same pair: in a run x x x x bpe merges the 1st, 3rd, ... pair, unless
# the run's first x is taken first. The leftmost lowest pair is always sure, so every round merges
# something; a million random letters take about 15 rounds.
def bpe_long(utf8: bytes, table: MergeTable) -> np.ndarray:
    """``bpe`` for one long piece, its UTF-8 bytes in and its token ids out (int32), in rounds of
    merges made at once; for merge tables learned in order (``table.in_order``), such as GPT-2's.

    >>> bpe_long(b"a" * 10, FastTokenizer.gpt2().merge_table).tolist()  # "aaaa" "aaaa" "aa"
    [24794, 24794, 7252]
    """
    byte = np.frombuffer(utf8, dtype=np.uint8)
    ids = table.byte_ids[byte]  # [n] the parts, one per byte to begin with
    ranks = table.byte_pair_ranks[(byte[:-1].astype(np.int32) << 8) | byte[1:]]  # [n - 1] of each pair
    while True:
        at = _sure_pairs(ids, ranks, table)  # [k] the pairs merged this round, left to right
        if not at.size:
            return ids
        ids[at] = table.merged[ranks[at]]  # the left part becomes the merged token ...
        ids = np.delete(ids, at + 1)  # ... and the right part goes
        ranks = np.delete(ranks, at)
        at -= np.arange(at.size, dtype=at.dtype)  # where the merged parts are now
        # only the pairs on either side of a merged part have changed
        changed = np.concatenate([at[at > 0] - 1, at[at < ids.size - 1]])
        ranks[changed] = table.rank(ids[changed], ids[changed + 1])


def _sure_pairs(ids: np.ndarray, ranks: np.ndarray, table: MergeTable) -> np.ndarray:
    """The pairs ``bpe_long`` merges in one round (see above): those with no lower-ranked pair
    within reach on either side, and in a run of one pair only the first, third, ... ."""
    n_pairs = ranks.size
    lowest = ranks < table.no_merge_rank  # [n_pairs] no lower-ranked neighbour: may be sure
    lowest[1:] &= ranks[1:] <= ranks[:-1]
    lowest[:-1] &= ranks[:-1] <= ranks[1:]
    at = np.flatnonzero(lowest)  # [k] the pairs still in question
    rank = ranks[at]
    left, right = table.reach_left[ids[at]], table.reach_right[ids[at + 1]]  # [k] bytes, >= parts
    pad = 1 + int(max(left.max(initial=0), right.max(initial=0)))
    no_pair = np.full(pad, table.no_merge_rank, dtype=ranks.dtype)
    padded = np.concatenate([no_pair, ranks, no_pair])  # [pad + n_pairs + pad] no index checks
    sure = []
    for d in count(2):
        finished = (left < d) & (right < d)  # nothing further within reach: sure
        sure.append(at[finished])
        at, rank, left, right = at[~finished], rank[~finished], left[~finished], right[~finished]
        if not at.size:
            break
        lower = (left >= d) & (padded[at + (pad - d)] < rank)  # pair at - d, on the left
        lower |= (right >= d) & (padded[at + (pad + d)] < rank)  # pair at + d, on the right
        at, rank, left, right = at[~lower], rank[~lower], left[~lower], right[~lower]
    at = np.sort(np.concatenate(sure))
    rank = ranks[at]
    in_run = padded[at + (pad - 1)] == rank  # [k] the pair before has the same rank: a run
    if in_run.any():  # sure if the run's first pair is, and it is 2, 4, ... pairs after that
        # (a run's sure pairs are the pairs of one rank in a row in at, from its first on)
        starts = np.flatnonzero((np.diff(at, prepend=-2) != 1) | (np.diff(rank, prepend=-1) != 0))
        first = starts[np.searchsorted(starts, np.arange(at.size), side="right") - 1]  # [k] in at
        at = at[~in_run[first] & ((at - at[first]) % 2 == 0)]
    return at


# ---------------------------------------------------------------------------------------------
# Loading and decoding tables, faster


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


# ---------------------------------------------------------------------------------------------
# The tokenizer, fast


class FastTokenizer(Tokenizer):
    """``Tokenizer`` with a faster ``encode_ordinary`` (the same ids); what the loaders build.

    >>> tok = FastTokenizer.gpt2()
    >>> tok.encode("Hello world"), tok.explain(" world").ids
    ([15496, 995], [995])
    """

    cache_size = 1 << 18  # pre-tokens remembered (~40 MB when full)
    batch_min = 64  # from this many new words in one text, merge them all at once (bpe_rows)
    words_min = 4096  # a text of this many pieces first puts the vocabulary's words in the cache
    long_piece = 128  # a piece of more bytes than this is merged with bpe_heap
    huge_piece = 4096  # and of more than this, with bpe_long, if the merges were learned in order

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], *, name: str = "bpe"):
        super().__init__(vocab, merges, name=name)
        self._cache: defaultdict[str, bytes | bytearray] | None = None  # see _word_cache
        self._id_type = _id_type(self.encoder)
        self._cache_has_words = False
        self._lock = threading.Lock()

    @classmethod
    def from_files(cls, vocab_path, merges_path) -> Tokenizer:
        """``Tokenizer.from_files``; GPT-2's own two files (``_read_gpt2_files``) without parsing
        or checks."""
        require_files(vocab_path, merges_path)
        gpt2 = _read_gpt2_files(vocab_path, merges_path)
        if gpt2 is None:
            return super().from_files(vocab_path, merges_path)
        tokenizer = cls(*gpt2, name=folder_name(vocab_path))
        tokenizer._unmade_tokens = frozenset()  # (its merges were learned in order: see _unmade_tokens)
        return tokenizer

    @cached_property
    def merge_table(self) -> MergeTable:
        """The merges as NumPy arrays, for ``bpe_many`` (built on first use)."""
        return MergeTable.build(self.encoder, self.merges)

    @cached_property
    def _bytes(self) -> dict[int, bytes]:
        """``Tokenizer._bytes``, all tokens translated in one NumPy call (``_token_bytes``)."""
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
                slot += self._packed_piece(piece)
            return
        utf8 = list(map(str.encode, pieces))  # step 2, as bytes: bpe_flat maps bytes to tokens itself
        lengths = np.fromiter(map(len, utf8), dtype=np.int64, count=len(utf8))
        long = np.flatnonzero(lengths > self.long_piece).tolist()  # the rare pieces of hundreds of bytes
        for i in long:
            utf8[i] = b"\0"  # a stand-in here: merged one at a time, below (bpe_heap, bpe_long)
        ids, ends = bpe_flat(utf8, self.merge_table)  # steps 3-4 for all the others at once
        packed = ids.astype(self._id_type).tobytes()
        ends = (ends * self._id_type.itemsize).tolist()
        # in order, so that memory is walked in the order the slots were made (far fewer cache misses)
        for slot, start, end in zip(slots, [0, *ends[:-1]], ends):
            slot += packed[start:end]
        for i in long:
            slots[i][:] = self._packed_piece(pieces[i])

    def _packed_piece(self, piece: str) -> bytes:
        """Steps 2-4 for one pre-token, packed (``_pack``); one of many kilobytes by ``bpe_long``."""
        utf8 = piece.encode("utf-8")
        if len(utf8) > self.huge_piece and self.merge_table.in_order:
            return bpe_long(utf8, self.merge_table).astype(self._id_type).tobytes()
        return self._pack(self._encode_piece(piece))

    def _encode_piece(self, piece: str) -> tuple[int, ...]:
        """Steps 2-4 for one pre-token: " Zürich" -> (1168, 9116, 7527)."""
        chars = to_byte_chars(piece)  # " Zürich" -> "ĠZÃ¼rich"
        token = self.encoder.get(chars)
        if token is not None and token not in self._unmade_tokens:  # a whole token (see _token_words)
            return (token,)
        merge = bpe if len(chars) <= self.long_piece else bpe_heap  # the same merges, see bpe_heap
        return tuple(map(self.encoder.__getitem__, merge(chars, self.ranks)))

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
        the vocabulary's own words go in (``_token_words``): building them takes time, once, which only
        a long text repays; after that, copying them in is one quick ``update``.
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
        self._cache, self._cache_has_words, self._lock = None, False, threading.Lock()


def _id_type(encoder: dict[str, int]) -> np.dtype:
    """How the word cache packs ids: 2-byte numbers when they fit (GPT-2's do), else 4."""
    return np.dtype(np.uint16 if max(encoder.values(), default=0) < 1 << 16 else np.uint32)
