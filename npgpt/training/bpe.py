"""Learning a byte-level BPE vocabulary from text, in the format ``npgpt.Tokenizer`` loads.

Training is the tokenizer's merge step run in reverse: instead of applying known merges, find
the pair of adjacent tokens that occurs most often in the text, make it a new token, and repeat
until the vocabulary has the size asked for. Each step is a function below:

    1. pre-tokenize   split with GPT-2's regex, exactly as encoding will (``tokenizer.pretokenize``),
                      and count each distinct piece: merges never cross a piece boundary, so a
                      piece that occurs 500 times is processed once with weight 500
    2. to bytes       each piece as its UTF-8 bytes, one ``bytes_to_unicode`` character per byte:
                      the 256 byte tokens are the starting vocabulary, so any text stays encodable
    3. merge          take the most frequent adjacent pair (ties: the smaller pair in string order,
                      so the result never depends on dict order), append "left right" to the
                      merges, join it in every piece that has it, update the pair counts of
                      those pieces only; repeat
    4. write          ``vocab.json`` (256 byte tokens in GPT-2's order, then one token per merge,
                      then ``<|endoftext|>`` last, as in GPT-2) and ``merges.txt``

For example, on the text "low lower lowest" the pieces are "low", " lower", " lowest"; the pairs
("l", "o") and ("o", "w") occur 3 times each, so merge 0 is "l o" (smaller in string order), and
merge 1 is "lo w".

A merge whose result is already a token (reached before by another route: "ab" + "c" after
"a" + "bc") is skipped, so that every token has exactly one merge and the files keep GPT-2's
invariant n_vocab = 256 + merges + 1. Pairs seen fewer than ``min_count`` times are never merged,
so a small text may give a smaller vocabulary than asked for.

Leaves out: special tokens other than ``<|endoftext|>``, HF ``tokenizers``' options (dropout,
continuing-subword prefixes, limits on token length). Reference: Sennrich et al. 2016, "Neural
Machine Translation of Rare Words with Subword Units"; Karpathy's minbpe; the tests check the
result against a slow, obvious implementation and check that HF ``tokenizers`` encodes with the
learned files exactly as ``npgpt.Tokenizer`` does.
"""

from __future__ import annotations

import heapq
import os
from collections import Counter, defaultdict
from typing import Callable

from ..errors import InputError
from ..tokenizer import ENDOFTEXT, Tokenizer, bytes_to_unicode, pretokenize, to_byte_chars

Pair = tuple[str, str]


def count_pieces(text: str) -> Counter:
    """Steps 1-2: how often each pre-token occurs, keyed by its byte characters.

    >>> count_pieces("the cat the")
    Counter({'the': 1, 'Ġcat': 1, 'Ġthe': 1})
    """
    return Counter(to_byte_chars(piece) for piece in pretokenize(text))


def merge_pair(parts: list[str], pair: Pair) -> list[str]:
    """Join every occurrence of ``pair`` in ``parts``, left to right, as encoding will.

    >>> merge_pair(["a", "a", "a", "b"], ("a", "a"))
    ['aa', 'a', 'b']
    """
    left, right = pair
    out, i = [], 0
    while i < len(parts):
        if i + 1 < len(parts) and parts[i] == left and parts[i + 1] == right:
            out.append(left + right)
            i += 2
        else:
            out.append(parts[i])
            i += 1
    return out


def apply_merge(pair: Pair, words: list[list[str]], weights: list[int], pair_counts: dict, where: dict) -> set[Pair]:
    """Merge ``pair`` in every piece that contains it, updating the pair counts (weighted by how
    often each piece occurs) and the pair -> pieces index; returns the pairs whose count changed."""
    changed: set[Pair] = set()
    for w in where.pop(pair):
        old = words[w]
        if len(old) < 2:
            continue
        merged = merge_pair(old, pair)
        if len(merged) == len(old):
            continue  # the set is an over-estimate: this piece lost the pair to an earlier merge
        for p in zip(old, old[1:]):
            pair_counts[p] -= weights[w]
            changed.add(p)
        for p in zip(merged, merged[1:]):
            pair_counts[p] += weights[w]
            where[p].add(w)
            changed.add(p)
        words[w] = merged
    pair_counts.pop(pair, None)
    return changed


def learn_merges(
    text: str, vocab_size: int, *, min_count: int = 2, progress: Callable[[int, Pair, int], None] | None = None
) -> list[tuple[Pair, int]]:
    """Step 3: the merges, in the order learned, each with how often its pair occurred then.

    ``vocab_size`` counts the 256 byte tokens and ``<|endoftext|>``, so at most
    ``vocab_size - 257`` merges are learned. ``progress(n, pair, count)`` is called after each one.

    Pair counts are kept up to date incrementally: merging a pair changes only the pieces that
    contain it, so only their pairs are recounted. The most frequent pair comes from a heap whose
    stale entries (a count that changed since it was pushed) are re-pushed when they surface.
    """
    if vocab_size < 257:
        raise InputError(f"vocab_size must be at least 257 (256 byte tokens + <|endoftext|>), got {vocab_size}")
    pieces = count_pieces(text)
    words = [list(chars) for chars in pieces]  # each distinct piece as its current parts
    weights = list(pieces.values())  # how often that piece occurs in the text
    pair_counts: dict[Pair, int] = defaultdict(int)
    where: dict[Pair, set[int]] = defaultdict(set)  # pair -> pieces that (may) contain it
    for w, parts in enumerate(words):
        for pair in zip(parts, parts[1:]):
            pair_counts[pair] += weights[w]
            where[pair].add(w)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    tokens = set(bytes_to_unicode().values())
    merges: list[tuple[Pair, int]] = []
    while heap and len(merges) < vocab_size - 257:
        neg_count, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count != -neg_count:  # stale: the pair's count changed after this entry was pushed
            if count > 0:
                heapq.heappush(heap, (-count, pair))
            continue
        if count < min_count:
            break  # the heap's best is too rare, so every other pair is too
        new = pair[0] + pair[1]
        if new in tokens:
            continue  # already a token by another route: skip this pair for good
        tokens.add(new)
        merges.append((pair, count))
        for p in apply_merge(pair, words, weights, pair_counts, where):
            if pair_counts.get(p, 0) > 0:
                heapq.heappush(heap, (-pair_counts[p], p))
            else:
                pair_counts.pop(p, None)
        if progress is not None:
            progress(len(merges), pair, count)
    return merges


def build_vocab(merges: list[Pair]) -> dict[str, int]:
    """Step 4: token string -> id. Byte tokens first in GPT-2's order ("!" = 0), then one token per
    merge in the order learned, then ``<|endoftext|>`` as the last id."""
    vocab = {char: i for i, char in enumerate(bytes_to_unicode().values())}
    for left, right in merges:
        vocab[left + right] = len(vocab)
    vocab[ENDOFTEXT] = len(vocab)
    return vocab


def learn_tokenizer(text: str, vocab_size: int, *, min_count: int = 2, name: str = "bpe", progress=None) -> Tokenizer:
    """Learn a byte-level BPE tokenizer of (at most) ``vocab_size`` tokens from ``text``.

    ``tokenizer.save(folder)`` writes it as ``vocab.json`` + ``merges.txt``, which
    ``Tokenizer.from_folder`` and Hugging Face load.
    """
    if not text:
        raise InputError("cannot learn a tokenizer from empty text; give a text file with some content")
    merges = [pair for pair, _ in learn_merges(text, vocab_size, min_count=min_count, progress=progress)]
    from ..engine import tokenizer_class

    return tokenizer_class()(build_vocab(merges), merges, name=name)


def learn_tokenizer_from_file(path: str | os.PathLike, vocab_size: int, out: str | os.PathLike | None = None, **options) -> Tokenizer:
    """``learn_tokenizer`` on a UTF-8 text file; with ``out``, also save it there."""
    text = read_text(path)
    tokenizer = learn_tokenizer(text, vocab_size, **options)
    if out is not None:
        tokenizer.save(out)
    return tokenizer


def read_text(path: str | os.PathLike) -> str:
    """A whole UTF-8 text file, or one clear error."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(
            f"no text file at {path!r}; pass a UTF-8 text file (for Shakespeare: npgpt data tinyshakespeare)"
        )
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise InputError(f"{path!r} is not UTF-8 text ({e}); convert it to UTF-8 first") from None
