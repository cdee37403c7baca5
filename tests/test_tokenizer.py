"""Tests of npgpt.tokenizer and npgpt.fast.tokenizer: GPT-2's byte-level BPE, step by step and against tiktoken.

Layers:
  1. the helpers on hand-derived examples (bytes_to_unicode, pretokenize, bpe's merges);
  2. loading, checking and saving the vocabulary files (both namings, malformed files);
  3. ids identical to tiktoken's ``gpt2`` encoding (loaded offline from the same files) on
     tricky strings, random Unicode (hypothesis) and >= 5 MB of real multilingual text, with
     ``decode(encode(s)) == s`` on all of them;
  4. special tokens, decoding, streaming, explain(), and the ``npgpt tokenize`` command.
"""

from __future__ import annotations

import copy
import gc
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import string
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import regex
from conftest_tokenizer_helpers import (
    LOCALE_ROOT,
    english_text,
    multilingual_corpus,
    tiktoken_gpt2,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npgpt.fast.tokenizer
from npgpt import cli
from npgpt.commands import tokenize as tokenize_command
from npgpt.errors import InputError, ModelNotFoundError
from npgpt.fast.tokenizer import (
    _ASCII_SPAN,
    GPT2_MERGES_SHA256,
    GPT2_SPLIT_PATTERN_ASCII,
    GPT2_SPLIT_PATTERN_POSSESSIVE,
    GPT2_VOCAB_SHA256,
    FastTokenizer,
    _pretokenize_by_stretches,
    _read_gpt2_files,
    bpe_flat,
    bpe_heap,
    bpe_long,
    bpe_many,
    bpe_rows,
    pretokenize_fast,
)
from npgpt import Tokenizer  # the fast engine, as every model loads it (npgpt/engine.py)
from npgpt.tokenizer import (
    ENDOFTEXT,
    GPT2_SPLIT_PATTERN,
    Explanation,
    TokenizerFileError,
    _check_vocab_and_merges,
    bpe,
    bytes_to_unicode,
    from_byte_chars,
    gpt2_files,
    pretokenize,
    read_merges,
    read_vocab,
    replace_lone_surrogates,
    to_byte_chars,
)
from npgpt.tokenizer import Tokenizer as ReferenceTokenizer

# hypothesis: no example database in the working folder, no deadline on a busy machine
PROPERTY = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="session")
def tok() -> Tokenizer:
    return Tokenizer.gpt2()


@pytest.fixture(scope="session")
def oracle(tmp_path_factory):
    """tiktoken's gpt2 encoding, from the same files, with no network."""
    pytest.importorskip("tiktoken")
    return tiktoken_gpt2(str(tmp_path_factory.mktemp("tiktoken-cache")))


def reference_bpe(chars: str, ranks: dict) -> list[str]:
    """GPT-2's encoder.py merge loop, unchanged in substance: every occurrence of the best pair
    per turn, the pairs rebuilt each turn. Slow and obvious; bpe() must agree with it."""
    word = list(chars)
    while len(word) > 1:
        pairs = set(pairwise(word))
        best = min(pairs, key=lambda pair: ranks.get(pair, float("inf")))
        if best not in ranks:
            break
        merged, i = [], 0
        while i < len(word):
            if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                merged.append(word[i] + word[i + 1])
                i += 2
            else:
                merged.append(word[i])
                i += 1
        word = merged
    return word


# ---------------------------------------------------------------------------------------------
# 1. The helpers, by hand


def test_bytes_to_unicode_is_a_printable_one_to_one_alphabet():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256))
    assert len(set(table.values())) == 256
    assert all(c.isprintable() and not c.isspace() for c in table.values())
    # printable Latin-1 bytes stand for themselves, the other 68 are moved to 256, 257, ...
    assert table[ord("A")] == "A" and table[ord("~")] == "~" and table[0xE9] == "é"
    assert table[0] == "Ā" and table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ"
    moved = [b for b, c in table.items() if ord(c) != b]
    assert len(moved) == 68 and [ord(table[b]) for b in moved] == list(range(256, 256 + 68))


def test_to_byte_chars_examples():
    assert to_byte_chars(" world") == "Ġworld"
    assert to_byte_chars("é") == "Ã©"  # C3 A9
    assert to_byte_chars("\n") == "Ċ"
    assert to_byte_chars("") == ""
    table = bytes_to_unicode()
    for text in ["日本", "👍🏽", "\x00\x7f\xad"]:
        assert to_byte_chars(text) == "".join(table[b] for b in text.encode("utf-8"))


def test_pretokenize_docstring_example():
    assert pretokenize("Hello world! It's 2024...\n\n") == [
        "Hello", " world", "!", " It", "'s", " 2024", "...", "\n\n",
    ]
    assert pretokenize("IT'S") == ["IT", "'", "S"]  # contractions are lower-case only
    assert pretokenize("a   b") == ["a", "  ", " b"]  # the last space goes with the word
    assert pretokenize("") == []


def test_docstring_examples():
    import doctest

    import npgpt.tokenizer

    result = doctest.testmod(npgpt.tokenizer)
    assert result.failed == 0 and result.attempted >= 8


def test_replace_lone_surrogates_examples():
    assert replace_lone_surrogates("a\ud800b") == "a\ufffdb"
    assert replace_lone_surrogates("\ud83d\ude00") == "😀"
    assert replace_lone_surrogates("plain") == "plain"


def test_bpe_worked_example(tok):
    trace = []
    assert bpe("Ġworld", tok.ranks, trace) == ["Ġworld"]
    assert [(m.rank, m.left, m.right) for m in trace] == [
        (10, "Ġ", "w"), (17, "o", "r"), (79, "l", "d"), (220, "Ġw", "or"), (739, "Ġwor", "ld"),
    ]
    assert trace[0].position == 0 and trace[2].position == 2 and trace[-1].merged == "Ġworld"
    assert bpe("", tok.ranks) == [] and bpe("x", tok.ranks) == ["x"]


def test_bpe_on_a_tiny_merge_list_with_repeated_pairs():
    ranks = {("a", "a"): 0, ("aa", "a"): 1, ("b", "c"): 2}
    # leftmost first, no overlaps: aaaaa -> aa aa a -> then (aa, a) merges at the right
    for word in ["aaaaa", "aaa", "abcbc", "bcaabc", "cb"]:
        assert bpe(word, ranks) == reference_bpe(word, ranks), word
    assert bpe("aaaaa", ranks) == ["aa", "aaa"]


def test_bpe_many_is_bpe_in_lockstep(tok):
    words = ["Ġworld", "Hello", "x", "ĠZÃ¼rich", "ĠĠĠĠĠĠĠĠĠĠ", "aaaaaaaaaaa", to_byte_chars("日本語のテキスト")]
    words += [to_byte_chars(replace_lone_surrogates(text)) for text in EDGE_CASES if text]
    expected = [tuple(tok.encoder[t] for t in bpe(w, tok.ranks)) for w in words]
    utf8 = [from_byte_chars(w) for w in words]
    assert bpe_many(utf8, tok.merge_table) == expected
    assert bpe_many([], tok.merge_table) == []


@PROPERTY
@given(st.lists(st.binary(min_size=1, max_size=30) | st.text(min_size=1, max_size=12).map(str.encode), max_size=30))
def test_bpe_many_matches_bpe_on_random_pieces(tok, pieces):
    expected = [tuple(tok.encoder[t] for t in bpe(to_chars(p), tok.ranks)) for p in pieces]
    assert bpe_many(pieces, tok.merge_table) == expected


def to_chars(utf8: bytes) -> str:
    table = bytes_to_unicode()
    return "".join(table[b] for b in utf8)


def test_merge_table_ranks_every_merge_and_no_other_pair(tok):
    table = tok.merge_table
    left = np.array([tok.encoder[a] for a, _ in tok.merges])
    right = np.array([tok.encoder[b] for _, b in tok.merges])
    assert table.rank(left, right).tolist() == list(range(len(tok.merges)))
    assert table.slot_keys.dtype == np.uint32 and table.probes > 1  # some keys sit past their home
    rng = np.random.default_rng(0)  # pairs of any tokens, and of early ones (often merges)
    pairs = np.concatenate([rng.integers(0, tok.n_vocab, (2, 100_000)), rng.integers(0, 600, (2, 100_000))], 1)
    token = {i: t for t, i in tok.encoder.items()}
    expected = [tok.ranks.get((token[a], token[b]), table.no_merge_rank) for a, b in pairs.T.tolist()]
    assert table.rank(pairs[0], pairs[1]).tolist() == expected
    assert 1000 < sum(r != table.no_merge_rank for r in expected) < len(expected)


def test_merge_table_knows_how_far_each_token_reaches_and_whether_merges_came_in_order(tok, tmp_path):
    table = tok.merge_table
    left, right = np.zeros(tok.n_vocab, dtype=int), np.zeros(tok.n_vocab, dtype=int)
    for a, b in tok.merges:  # the longest token merged on each side of each token
        left[tok.encoder[b]] = max(left[tok.encoder[b]], len(a))
        right[tok.encoder[a]] = max(right[tok.encoder[a]], len(b))
    assert table.reach_left.tolist() == left.tolist() and table.reach_right.tolist() == right.tolist()
    assert table.in_order and (table.reach_left.max(), table.reach_right.max()) == (64, 64)
    # "bc b" before "b c": not learned in order. bpe makes "bcb" "c" of "bcbc" (the first "bc", then
    # "bc b" at once); bpe_long would make both "bc" in one round. So long pieces take bpe_heap.
    files = tiny_files(tmp_path, merges=(("bc", "b"), ("b", "c")))
    reference, out_of_order = ReferenceTokenizer.from_files(*files), Tokenizer.from_files(*files)
    bcb, bc = reference.encoder["bcb"], reference.encoder["bc"]
    assert reference.encode("bcbc") == [bcb, reference.encoder["c"]] and not out_of_order.merge_table.in_order
    assert bpe_long(b"bcbc", out_of_order.merge_table).tolist() == [bc, bc]  # wrong, as said
    out_of_order.long_piece = out_of_order.huge_piece = 0
    text = "bcbc" * 2000 + " " + "abcbcbc" * 1000
    assert out_of_order.encode(text) == reference.encode(text)


def _lower_ascii(word: str) -> bool:
    return word.isascii() and word.isalpha() and word.islower()


def test_merges_out_of_learned_order_give_what_bpe_gives(tmp_path):
    # "a b", "b c", "a bc": BPE makes "ab" + "c" of "abc", although "abc" is a token. tiktoken's
    # shortcut (a piece that is a whole token is that token) would give "abc"; npgpt takes it only
    # for tokens that BPE makes of their own bytes, so every path gives what bpe and explain give
    vocab_path, merges_path = tiny_files(tmp_path, merges=(("a", "b"), ("b", "c"), ("a", "bc")))
    short, long_text = "abc x abc", "abc\n" * 5000  # the long text goes through the word cache
    reference = Tokenizer.from_files(vocab_path, merges_path)
    expected = {text: reference.explain(text).ids for text in (short, long_text)}
    assert expected[short][:2] == [reference.encoder["ab"], reference.encoder["c"]]
    for batch_min in (1, 10**9):
        tokenizer = Tokenizer.from_files(vocab_path, merges_path)
        tokenizer.batch_min = batch_min
        assert tokenizer._unmade_tokens == {258}  # "abc"
        assert tokenizer.encode(short) == expected[short]
        assert tokenizer.encode(long_text) == expected[long_text]
        tokenizer.huge_piece = 0  # every piece by bpe_long: "bc" is made before "a bc", in order
        assert tokenizer.merge_table.in_order and tokenizer.encode(long_text) == expected[long_text]
    assert Tokenizer.gpt2()._unmade_tokens == frozenset()
    fresh = FastTokenizer(Tokenizer.gpt2().encoder, Tokenizer.gpt2().merges)
    assert fresh._unmade_tokens == frozenset()  # the check itself, on GPT-2's vocabulary


def test_a_vocabulary_of_more_than_65536_tokens():
    # every pair of bytes is a merge: 256 + 65536 tokens, so the pair keys need 64 bits
    # (n_vocab**2 > 2**32) and the cache's packed ids 4 bytes each; pairs of lower-case letters
    # are merged last, so that they get the ids above 65535
    chars = list(bytes_to_unicode().values())
    merges = sorted(((a, b) for a in chars for b in chars), key=lambda pair: _lower_ascii(pair[0] + pair[1]))
    vocab = {c: i for i, c in enumerate(chars)} | {a + b: 256 + r for r, (a, b) in enumerate(merges)}
    big = FastTokenizer(vocab, merges)
    assert big.merge_table.slot_keys.dtype == np.uint64 and big._id_type == np.uint32
    text = "Zürich, 日本語, 👍🏽 and words: " + new_words(5, 300)
    ids = big.encode(text)
    assert max(ids) >= 1 << 16 and big.decode(ids) == text
    reference = FastTokenizer(vocab, merges)
    reference.batch_min = 10**9  # bpe(), one piece at a time
    assert reference.encode(text) == ids
    pieces = [p.encode() for p in pretokenize(text)]
    flat, ends = bpe_flat(pieces, big.merge_table)
    assert np.split(flat, ends[:-1])[3].tolist() == list(reference.encode(pretokenize(text)[3]))


def test_bpe_rows_gives_each_piece_once_in_blocks_of_one_length(tok):
    pieces = [w.encode() for w in ["a", "ab", "abc", " world", " Zürich", "日本語", "ab", "x" * 40]]
    seen = []
    for index, ids in bpe_rows(pieces, tok.merge_table):
        assert ids.ndim == 2 and ids.shape[0] == index.size > 0
        seen += index.tolist()
    assert sorted(seen) == list(range(len(pieces)))
    with pytest.raises(ValueError, match="at least one byte"):
        bpe_many([b"a", b""], tok.merge_table)


@PROPERTY
@given(
    st.binary(max_size=200)
    | st.text(max_size=60).map(str.encode)
    | st.sampled_from([b"a", b"ab", b" "]).map(lambda b: b * 150)  # long runs of one repeated pair
)
def test_bpe_heap_matches_bpe(tok, utf8):
    chars = to_chars(utf8)
    assert bpe_heap(chars, tok.ranks) == bpe(chars, tok.ranks)


def test_long_pieces_are_fast_and_right(tok, oracle):
    for text in ["a" * 10_000, "日本語のテキスト" * 600, "ACGT" * 2500, " " * 10_000 + "x"]:
        start = time.perf_counter()
        ids = tok.encode(text)
        assert time.perf_counter() - start < 2  # bpe() alone takes seconds on these
        assert ids == oracle.encode(text)


@PROPERTY
@given(
    st.binary(min_size=1, max_size=300)
    | st.text(min_size=1, max_size=100).map(str.encode)
    | st.text(st.sampled_from("ab \n0"), min_size=1, max_size=300).map(str.encode)  # runs, pairs of one rank
    | st.text(st.sampled_from(string.digits), min_size=1, max_size=300).map(str.encode)
    | st.tuples(st.sampled_from([b"a", b"ab", b" ", b"00", "あ".encode()]), st.integers(1, 200)).map(lambda t: t[0] * t[1])
)
def test_bpe_long_matches_bpe(tok, utf8):
    expected = [tok.encoder[part] for part in bpe(to_chars(utf8), tok.ranks)]
    assert bpe_long(utf8, tok.merge_table).tolist() == expected


def random_text(alphabet: str, n: int, seed: int = 0) -> str:
    return "".join(np.random.default_rng(seed).choice(list(alphabet), n))


# Issue 18's worst cases for the tokenizer, at any size n: each (nearly) one pre-token of n bytes
WORST_CASES = {
    "one word": lambda n: "a" * n,
    "digits": lambda n: random_text(string.digits, n),
    "letters, no spaces": lambda n: random_text(string.ascii_letters, n),
    "runs of two letters": lambda n: "".join(c * (1 + i % 7) for i, c in enumerate(random_text("ab", n // 4)))[:n],
    "Japanese, no spaces": lambda n: random_text("日本語のテキストです", n // 3),
    "spaces": lambda n: " " * n + "x",
    "punctuation": lambda n: random_text("!?.,;:-_=+*/()[]", n),
}


@pytest.mark.parametrize("case", WORST_CASES)
def test_the_worst_cases_give_the_references_ids_and_tiktokens(tok, oracle, case):
    """Pieces of many kilobytes (bpe_long): the same ids as the reference tokenizer (whose bpe takes
    quadratic time, so 6 kB) and as tiktoken (200 kB)."""
    small, large = WORST_CASES[case](6_000), WORST_CASES[case](200_000)
    assert max(map(len, map(str.encode, pretokenize(small)))) > tok.huge_piece  # bpe_long's, not bpe_heap's
    assert tok.encode(small) == ReferenceTokenizer(tok.encoder, tok.merges).encode(small)
    assert tok.encode(large) == oracle.encode(large)


def test_a_megabyte_in_one_piece_takes_few_rounds_and_little_memory(tok, monkeypatch):
    """bpe_long merges in rounds (not one merge at a time: a million for a megabyte) and keeps its
    parts in NumPy arrays (bpe_heap's Python lists took 130-190 MB here; the ids alone, as a list
    of ints, take ~30 MB)."""
    rounds = []
    sure_pairs = npgpt.fast.tokenizer._sure_pairs
    monkeypatch.setattr(npgpt.fast.tokenizer, "_sure_pairs", lambda *args: rounds.append(1) or sure_pairs(*args))
    for case in ("one word", "digits", "letters, no spaces"):
        text = WORST_CASES[case](1_000_000)
        fresh = FastTokenizer(tok.encoder, tok.merges)
        fresh.merge_table  # (built before measuring)
        rounds.clear()
        tracemalloc.start()
        try:
            ids = fresh.encode(text)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert len(ids) > 200_000 and 0 < len(rounds) < 30 and peak < 100e6, (case, len(rounds), peak)


def test_encode_gives_the_same_ids_with_and_without_the_numpy_path(tok):
    text = "Lockstep BPE: the same merges for every word, 日本語, Ελληνικά, नमस्ते, 👍🏽. " * 3
    one_by_one = FastTokenizer(tok.encoder, tok.merges)
    one_by_one.batch_min = 10**9
    all_at_once = FastTokenizer(tok.encoder, tok.merges)
    all_at_once.batch_min = 1
    heap_for_all = FastTokenizer(tok.encoder, tok.merges)
    heap_for_all.long_piece = 0
    rounds_for_all = FastTokenizer(tok.encoder, tok.merges)
    rounds_for_all.long_piece = rounds_for_all.huge_piece = 0  # bpe_long for every piece
    ids = tok.encode(text)
    assert one_by_one.encode(text) == all_at_once.encode(text) == heap_for_all.encode(text) == ids
    assert rounds_for_all.encode(text) == ids


def test_the_two_split_patterns_agree_on_hand_picked_cases():
    original = regex.compile(GPT2_SPLIT_PATTERN)
    for text in EDGE_CASES:
        text = replace_lone_surrogates(text)
        assert original.findall(text) == regex.findall(GPT2_SPLIT_PATTERN_POSSESSIVE, text), repr(text)


def test_ascii_classes_are_the_unicode_classes_on_ascii():
    """What GPT2_SPLIT_PATTERN_ASCII and the cuts of _ASCII_SPAN rely on, for all 128 characters."""
    for c in map(chr, range(128)):
        is_space = bool(regex.fullmatch(r"\s", c))
        assert bool(re.fullmatch("[A-Za-z]", c)) == bool(regex.fullmatch(r"\p{L}", c)), ascii(c)
        assert bool(re.fullmatch("[0-9]", c)) == bool(regex.fullmatch(r"\p{N}", c)), ascii(c)
        assert bool(re.fullmatch("[\t\n\x0b\x0c\r ]", c)) == is_space, ascii(c)
        if re.fullmatch("[!-~]", c):  # the character before a cut is never a space
            assert not is_space


ASCII_BITS = [
    " ", "  ", "\n", "\n\n", "\r\n", "\t", "\x0b", "\x0c", "\x1c", "\x1f", "\x00", "\x7f", "'", "'s", "'LL",
    "re", "a", "Zebra", " word", "  two", "42", " 7", "!", "...", " (x)", "<|", "endoftext", "|>",
]
NON_ASCII_BITS = ["é", " café", "日本", "👍🏽", "\xa0", " \xa0", "\u3000", "\u2028", "\x85", "٣", "\u0301", "’"]


@st.composite
def mostly_ascii(draw):
    """ASCII text of up to ~1000 characters with a few non-ASCII characters in it."""
    parts = draw(st.lists(st.sampled_from(ASCII_BITS), min_size=20, max_size=300))
    for _ in range(draw(st.integers(1, 6))):
        parts.insert(draw(st.integers(0, len(parts))), draw(st.sampled_from(NON_ASCII_BITS)))
    return "".join(parts)


STRETCHY = [  # long ASCII stretches next to non-ASCII characters that join or split pieces
    "word " * 20 + "café" + " word" * 20,
    "ab " * 40 + "xé" + " y" * 40,
    "Zebra. " * 12 + "\xa0" + " more" * 15,
    " " * 100 + "\u3000x" + "  \n" * 30,
    "it's " * 15 + "’s 日本" + "\n\n  " * 30,
    "1234 " * 20 + "٣٤" + "5678" * 20,
    "end.\n" * 20 + "👍🏽" + "\t\t x" * 30,
]


@PROPERTY
@given(st.lists(st.sampled_from(ASCII_BITS), max_size=60).map("".join) | st.text(st.characters(max_codepoint=127)))
def test_the_ascii_pattern_splits_ascii_text_like_gpt2s(text):
    assert re.findall(GPT2_SPLIT_PATTERN_ASCII, text) == pretokenize(text) == pretokenize_fast(text)


@pytest.mark.parametrize("text", STRETCHY, ids=lambda s: ascii(s)[:30])
def test_splitting_by_ascii_stretches_on_hand_picked_cases(text):
    assert len(_ASCII_SPAN.split(text)) >= 3  # at least one stretch
    assert _pretokenize_by_stretches(text) == pretokenize(text)


@PROPERTY
@given(mostly_ascii() | st.text(st.characters(exclude_categories=()), max_size=80))
def test_splitting_by_ascii_stretches_gives_gpt2s_pieces(text):
    text = replace_lone_surrogates(text)
    assert _pretokenize_by_stretches(text) == pretokenize(text) == pretokenize_fast(text)
    chunks = _ASCII_SPAN.split(text)
    assert "".join(chunks) == text
    for stretch in chunks[1::2]:  # the ASCII stretches: long, and cut where GPT-2's pattern cuts
        assert stretch.isascii() and len(stretch) >= 64


def test_english_text_takes_the_ascii_stretches_path_and_matches_tiktoken(tok, oracle):
    text = english_text()  # Python's help topics: English, with a few hundred non-ASCII characters
    assert not text.isascii() and (len(text.encode()) - len(text)) * 100 <= len(text)
    assert len(_ASCII_SPAN.split(text)) > 100  # many stretches, so the path is really exercised
    assert pretokenize_fast(text) == pretokenize(text)
    tok.clear_cache()
    assert tok.encode_ordinary(text) == oracle.encode_ordinary(text)


# ---------------------------------------------------------------------------------------------
# 2. Files


def test_gpt2_vocabulary_sizes(tok):
    assert tok.n_vocab == 50257
    assert len(tok.merges) == 50000
    assert tok.eot_id == 50256 and tok.eot_token == ENDOFTEXT == "<|endoftext|>"
    assert tok.token_bytes(50256) == b"<|endoftext|>"
    assert Tokenizer.gpt2() is tok  # shared


def test_every_gpt2_token_is_what_bpe_makes_of_its_own_text(tok):
    """Justifies starting the word cache from the vocabulary: a piece that is a whole token
    becomes that token."""
    wrong = [t for t in tok.encoder if t != ENDOFTEXT and bpe(t, tok.ranks) != [t]]
    assert wrong == []


def test_gpt2_merges_only_use_parts_made_earlier(tok):
    """The condition under which bpe() (one occurrence per turn) equals encoder.py (all at once)."""
    made = set(bytes_to_unicode().values())
    for left, right in tok.merges:
        assert left in made and right in made
        made.add(left + right)


@pytest.mark.parametrize("names", [("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")])
def test_from_files_and_from_folder_with_either_naming(tmp_path, tok, names):
    encoder_json, vocab_bpe = gpt2_files()
    shutil.copyfile(encoder_json, tmp_path / names[0])
    shutil.copyfile(vocab_bpe, tmp_path / names[1])
    for loaded in (Tokenizer.from_files(tmp_path / names[0], tmp_path / names[1]), Tokenizer.from_folder(tmp_path)):
        assert loaded.n_vocab == 50257 and loaded.eot_id == 50256
        assert loaded.encode("Hello world") == tok.encode("Hello world") == [15496, 995]


def test_from_folder_without_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        Tokenizer.from_folder(tmp_path)
    with pytest.raises(ModelNotFoundError):
        Tokenizer.from_folder(tmp_path / "missing")
    assert Tokenizer.from_folder(tmp_path, fallback_to_gpt2=True) is Tokenizer.gpt2()
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 300}))
    with pytest.raises(ModelNotFoundError, match="vocab_size=300"):
        Tokenizer.from_folder(tmp_path, fallback_to_gpt2=True)
    with pytest.raises(FileNotFoundError):
        Tokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")


def test_save_writes_the_hub_files_byte_for_byte(tmp_path, tok):
    tok.save(tmp_path / "out")
    encoder_json, vocab_bpe = gpt2_files()
    assert (tmp_path / "out" / "vocab.json").read_bytes() == Path(encoder_json).read_bytes()
    assert (tmp_path / "out" / "merges.txt").read_bytes() == Path(vocab_bpe).read_bytes()
    assert sorted(os.listdir(tmp_path / "out")) == ["merges.txt", "vocab.json"]  # no temp files left
    again = Tokenizer.from_folder(tmp_path / "out")
    assert again.encode("round trip ✓") == tok.encode("round trip ✓")


def test_gpt2_files_are_the_pinned_ones_and_pass_the_full_check(tmp_path):
    """Loading skips parsing and checking for exactly these two files; here both run on them."""
    encoder_json, vocab_bpe = gpt2_files()
    assert hashlib.sha256(Path(encoder_json).read_bytes()).hexdigest() == GPT2_VOCAB_SHA256
    assert hashlib.sha256(Path(vocab_bpe).read_bytes()).hexdigest() == GPT2_MERGES_SHA256
    vocab, merges = read_vocab(encoder_json), read_merges(vocab_bpe)
    _check_vocab_and_merges(vocab, merges, encoder_json, vocab_bpe)
    fast_vocab, fast_merges = _read_gpt2_files(encoder_json, vocab_bpe)  # what loading does instead
    assert list(fast_vocab.items()) == list(vocab.items()) and fast_merges == merges
    # a file that differs by one merge is checked again
    shutil.copyfile(encoder_json, tmp_path / "vocab.json")
    (tmp_path / "merges.txt").write_bytes(Path(vocab_bpe).read_bytes() + "Ġ Ġzzz\n".encode())
    with pytest.raises(TokenizerFileError, match="do not belong together"):
        Tokenizer.from_folder(tmp_path)


def test_read_merges_line_ends_header_and_errors(tmp_path):
    path = tmp_path / "merges.txt"
    for text in ["#version: 0.2\r\nh e\r\nl l\r\n", "h e\n\nl l", "#version: 0.2\nh e\nl l\n\n"]:
        path.write_bytes(text.encode())
        assert read_merges(path) == [("h", "e"), ("l", "l")], repr(text)
    for text, line in [("h e\nl  l\n", 2), ("#version: 0.2\nh e\n l\n", 3), ("h e\nl \n", 2), ("he\n", 1)]:
        path.write_bytes(text.encode())
        with pytest.raises(TokenizerFileError, match=f"line {line}: expected two tokens"):
            read_merges(path)


def test_construction_leaves_the_derived_tables_for_first_use(tok):
    fresh = FastTokenizer(tok.encoder, tok.merges)
    assert not {"ranks", "merge_table", "_bytes", "_token_words"} & set(vars(fresh))
    assert fresh.decode([995]) == " world" and fresh.ranks[("Ġ", "t")] == 0
    fresh.encode("Hello world, a short text")
    assert "_token_words" not in vars(fresh)  # not worth building for a short text
    text = english_text()[:50_000]
    assert len(pretokenize(text)) >= fresh.words_min
    assert fresh.encode_ordinary(text) == tok.encode_ordinary(text)
    def unpack(packed):  # the word cache keeps each word's ids packed (Tokenizer._pack)
        return np.frombuffer(packed, dtype=fresh._id_type).tolist()

    assert fresh._id_type == np.uint16  # GPT-2's ids fit in 2 bytes
    assert unpack(fresh._cache[" the"]) == [262]  # a long text: the vocabulary's words are in the cache
    words = fresh._token_words
    assert unpack(words[" world"]) == [995] and unpack(words["Hello"]) == [15496] and ENDOFTEXT not in words
    assert len(words) == fresh.n_vocab - 1
    for text, packed in list(words.items())[::50]:
        (i,) = unpack(packed)
        assert text.encode("utf-8", "surrogateescape") == fresh.token_bytes(i)


def tiny_files(folder, merges=(("h", "e"), ("l", "l"), ("he", "ll"), ("Ġ", "w")), eot=True):
    """A 256 + len(merges) (+1) token vocabulary, in GPT-2's file formats."""
    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    for a, b in merges:
        vocab[a + b] = len(vocab)
    if eot:
        vocab[ENDOFTEXT] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    return folder / "vocab.json", folder / "merges.txt"


def test_a_small_vocabulary_of_our_own(tmp_path):
    vocab, merges = tiny_files(tmp_path)
    small = Tokenizer.from_files(vocab, merges)
    assert small.n_vocab == 256 + 4 + 1 and small.eot_id == 260
    ids = small.encode("hello world")
    assert small.decode_tokens(ids) == ["hell", "o", " w", "o", "r", "l", "d"]
    assert small.decode(ids) == "hello world"
    assert small.explain("hello").ids == small.encode("hello")


@pytest.mark.parametrize(
    "vocab_text, merges_text, message",
    [
        ("{not json", None, "vocab.json: not a JSON"),
        ("[1, 2]", None, "expected a JSON object"),
        (None, "#version: 0.2\nh e\nl l x\n", "merges.txt, line 3: expected two tokens"),
        (None, "#version: 0.2\n", "no merges"),
        (None, "#version: 0.2\nh e\nl l\nhe ll\nĠ w\nq z\n", "do not belong together"),
        (None, "#version: 0.2\nh e\nl l\nhe ll\nĠ x\n", "'Ġx'.*not in"),
    ],
)
def test_malformed_files_say_which_file_and_what(tmp_path, vocab_text, merges_text, message):
    vocab, merges = tiny_files(tmp_path)
    if vocab_text is not None:
        vocab.write_text(vocab_text)
    if merges_text is not None:
        merges.write_text(merges_text, encoding="utf-8")
    with pytest.raises(TokenizerFileError, match=message) as error:
        Tokenizer.from_files(vocab, merges)
    assert isinstance(error.value, ValueError)


def test_vocabulary_without_byte_tokens_is_refused(tmp_path):
    vocab, merges = tiny_files(tmp_path)
    data = json.loads(vocab.read_text())
    del data["Ġ"]
    vocab.write_text(json.dumps(data))
    with pytest.raises(TokenizerFileError, match="byte tokens are missing"):
        Tokenizer.from_files(vocab, merges)


# ---------------------------------------------------------------------------------------------
# 3. Same ids as tiktoken

EDGE_CASES = [
    "", " ", "  ", "   ", "a ", "a  ", "a   b", " a", "  a", "trailing spaces   ",
    "\n", "\n\n\n", "a\n\n\nb", "\r\n", "line\r\nline\r\n", "\t", "\ta\t", "a\t\tb", "  \n  ", " \n x",
    "'s 't 're 've 'm 'll 'd", "it's I'm we're they've you'll he'd don't",
    "IT'S I'M WE'RE THEY'VE YOU'LL HE'D DON'T", "'S 'T 'RE 'VE 'M 'LL 'D", "'Ll 'rE", "''s", "'", "rock'n'roll",
    "1", "12", "123", "1234567890123", "3.14159", "1,000,000", " 2024", "x1y2z3", "٣٤٥ ۱۲", "①② ½",
    "👍", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇫🇷🇯🇵", "a👍b", " 👋🏿 hi",
    "日本語のテキストです。", "中文文本，标点。", "한국어 텍스트", "مرحبا بالعالم", "שלום עולם",
    "नमस्ते दुनिया", "สวัสดีชาวโลก", "Ελληνικά", "Привет, мир!",
    "e\u0301", "a\u0300\u0301\u0302", "\u0301", " \u0301x", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d",
    "\ud800", "a\udfffb", "\ud83d\ude00", "\ude00\ud83d", "x\ud83d",
    "\x00", "a\x00b", "\x01\x02\x1b[31mred\x1b[0m", "\x7f", "\x85", "a\u00a0b", "\u2028\u2029", "\u3000x",
    "\ufeffBOM", "\x1c\x1d\x1e\x1f", "a\x1cb", "zero\u200bwidth", "\u200d", "\U0010ffff\U000e0001",
    "<|endoftext|>", "text<|endoftext|>more", "<|endoftext|><|endoftext|>", "<|endoftext", "<|",
    " " * 300, "a" * 300, "\n" * 50 + "x", "ab" * 200, "Hello, world! How's it going?  \n",
]


@pytest.mark.parametrize("text", EDGE_CASES, ids=lambda s: ascii(s)[:40])
def test_edge_cases_match_tiktoken_and_round_trip(tok, oracle, text):
    ids = tok.encode_ordinary(text)
    assert ids == oracle.encode_ordinary(text)
    assert tok.decode(ids) == replace_lone_surrogates(text)
    assert tok.explain(text, disallowed_special=()).ids == ids


tricky = st.sampled_from(
    [" ", "  ", "\n", "\r", "\t", "'", "s", "t", "re", "LL", "a", "Z", "é", "1", "42", "!", ".", "\x00",
     "\u00a0", "\u3000", "\u2028", "\x1c", "\x85", "\u0301", "日", "ñ", "👍", "🏽", "\u200d", "<|endoftext|>",
     "\ud83d", "\ude00"]
)


@PROPERTY
@given(st.text(st.characters(exclude_categories=()), max_size=60))
def test_random_unicode_matches_tiktoken(tok, oracle, text):
    ids = tok.encode_ordinary(text)
    assert ids == oracle.encode_ordinary(text)
    assert tok.decode(ids) == replace_lone_surrogates(text)


@PROPERTY
@given(st.lists(tricky, max_size=25).map("".join))
def test_random_tricky_strings_match_tiktoken(tok, oracle, text):
    ids = tok.encode_ordinary(text)
    assert ids == oracle.encode_ordinary(text)
    assert tok.decode(ids) == replace_lone_surrogates(text)
    clean = replace_lone_surrogates(text)
    assert regex.findall(GPT2_SPLIT_PATTERN_POSSESSIVE, clean) == pretokenize(clean)
    assert tok.encode(text, allowed_special="all") == oracle.encode(text, allowed_special="all")


@pytest.fixture(scope="session")
def corpus() -> str:
    text = multilingual_corpus(5_000_000)
    n_bytes = len(text.encode("utf-8"))
    if n_bytes < 5_000_000:
        pytest.skip(
            f"only {n_bytes / 1e6:.1f} MB of translated text on this machine ({LOCALE_ROOT}/*/LC_MESSAGES/*.mo); "
            "a Debian/Ubuntu install with its locale files has tens of MB"
        )
    return text


@pytest.mark.slow
def test_five_megabytes_of_multilingual_text_match_tiktoken(tok, oracle, corpus):
    assert len(corpus.encode("utf-8")) >= 5_000_000
    assert len(set(corpus)) > 2000  # many scripts, not one language
    start = time.perf_counter()
    ids = tok.encode_ordinary(corpus)
    expected = oracle.encode_ordinary(corpus)
    assert len(ids) == len(expected)
    if ids != expected:
        first = next(i for i, (a, b) in enumerate(zip(ids, expected)) if a != b)
        pytest.fail(f"first difference at token {first}: {tok.decode(expected[max(first - 5, 0):first + 5])!r}")
    assert tok.decode(ids) == corpus
    assert time.perf_counter() - start < 60


@pytest.mark.slow
def test_corpus_splits_and_merges_like_the_original_gpt2_code(tok, corpus):
    text = corpus[:1_500_000]
    pieces = pretokenize(text)
    assert regex.findall(GPT2_SPLIT_PATTERN_POSSESSIVE, text) == pieces == pretokenize_fast(text)
    assert _pretokenize_by_stretches(text) == pieces
    words = sorted(set(pieces))
    for piece in words[::9]:  # a deterministic sample of distinct pieces
        chars = to_byte_chars(piece)
        assert bpe(chars, tok.ranks) == reference_bpe(chars, tok.ranks), piece
    # and the NumPy path against the plain loop, on all of them
    expected = [tuple(tok.encoder[t] for t in bpe(to_byte_chars(w), tok.ranks)) for w in words]
    assert bpe_many([w.encode() for w in words], tok.merge_table) == expected


# ---------------------------------------------------------------------------------------------
# 4. Special tokens, decoding, streaming, explain


def test_special_token_in_text_is_refused_by_default(tok, oracle):
    with pytest.raises(InputError, match=r"allowed_special=\{'<\|endoftext\|>'\}.*encode_ordinary") as error:
        tok.encode("a<|endoftext|>b")
    assert isinstance(error.value, ValueError)
    with pytest.raises(ValueError):
        oracle.encode("a<|endoftext|>b")


@pytest.mark.parametrize(
    "options",
    [
        {"allowed_special": {"<|endoftext|>"}},
        {"allowed_special": "all"},
        {"allowed_special": frozenset({"<|endoftext|>"})},
        {"disallowed_special": ()},
        {"allowed_special": "all", "disallowed_special": ()},
    ],
)
def test_special_token_options_match_tiktoken(tok, oracle, options):
    for text in ["<|endoftext|>", "a <|endoftext|> b", "x<|endoftext|><|endoftext|>\n", "none here"]:
        assert tok.encode(text, **options) == oracle.encode(text, **options)
    assert tok.encode("<|endoftext|>", allowed_special="all") == [50256]


def test_encode_ordinary_reads_special_tokens_as_text(tok):
    ids = tok.encode_ordinary("<|endoftext|>")
    assert len(ids) == 7 and 50256 not in ids
    assert tok.decode(ids) == "<|endoftext|>"


def test_bad_special_arguments(tok):
    with pytest.raises(InputError, match="does not have"):
        tok.encode("x", allowed_special={"<|fim_prefix|>"})
    with pytest.raises(InputError, match="allowed_special=\\{'<\\|endoftext\\|>'\\}"):
        tok.encode("x", allowed_special="<|endoftext|>")
    with pytest.raises(InputError, match="bytes"):
        tok.encode(b"bytes")
    with pytest.raises(InputError, match="special token 'forbidden'"):
        tok.encode("a forbidden word", disallowed_special={"forbidden"})


def test_decode_never_raises_on_a_cut_character(tok):
    ids = tok.encode("👍")
    assert len(ids) > 1
    assert tok.decode(ids[:1]) == "\ufffd"
    assert tok.decode(ids) == "👍"
    with pytest.raises(UnicodeDecodeError):
        tok.decode(ids[:1], errors="strict")


@pytest.mark.parametrize("bad", [[50257], [-1], [1, 2, 99999], ["7"], [None]])
def test_decode_out_of_range_ids(tok, bad):
    with pytest.raises(InputError, match="not in the vocabulary"):
        tok.decode(bad)


def test_decode_takes_numpy_ids_and_iterators(tok):
    ids = tok.encode("NumPy ids")
    assert tok.decode(np.array(ids, dtype=np.int32)) == "NumPy ids"
    assert tok.decode(iter(ids)) == "NumPy ids"
    assert tok.decode_tokens(np.array(ids)) == tok.decode_tokens(ids) == ["Num", "Py", " ", "ids"]
    assert tok.token_bytes(np.int64(995)) == b" world"


def test_decode_tokens_gives_each_tokens_text(tok):
    assert tok.decode_tokens([15496, 995]) == ["Hello", " world"]
    assert tok.decode_tokens([]) == []


def test_stream_decoder_waits_for_complete_characters(tok):
    ids = tok.encode("ok 👍🏽!")
    decoder = tok.stream_decoder()
    pieces = [decoder.feed(i) for i in ids]
    assert "\ufffd" not in "".join(pieces)
    assert "".join(pieces) + decoder.flush() == "ok 👍🏽!"
    assert decoder.feed(np.int64(0)) == "!"
    cut = tok.stream_decoder()
    assert tok.token_bytes(ids[1]) == b" \xf0\x9f\x91"  # a space and 3 of the 4 bytes of 👍
    assert cut.feed(ids[1:2]) == " " and cut.flush() == "\ufffd"  # unfinished at the end


@PROPERTY
@given(st.lists(st.integers(0, 50256), max_size=40))
def test_streaming_equals_decoding_all_at_once(tok, ids):
    decoder = tok.stream_decoder()
    assert "".join(decoder.feed(i) for i in ids) + decoder.flush() == tok.decode(ids)


def test_explain_gives_every_intermediate(tok):
    e = tok.explain("Hello world's 👍")
    assert isinstance(e, Explanation)
    assert [p.text for p in e.pieces] == ["Hello", " world", "'s", " 👍"]
    world = e.pieces[1]
    assert world.utf8 == b" world" and world.chars == "Ġworld"
    assert [m.rank for m in world.merges] == [10, 17, 79, 220, 739]
    assert world.tokens == ("Ġworld",) and world.ids == (995,)
    thumb = e.pieces[3]
    assert thumb.utf8 == " 👍".encode() and len(thumb.ids) > 1
    assert e.ids == tok.encode("Hello world's 👍")
    assert e.tokens == tok.decode_tokens(e.ids)
    for piece in e.pieces:  # merges come in rank order, and the last one leaves the final tokens
        ranks = [m.rank for m in piece.merges]
        assert ranks == sorted(ranks)
        steps = piece.steps()
        assert len(steps) == len(piece.merges) + 1 and steps[-1] == piece.tokens
    assert "rank   739" in str(e) and "Ġwor + ld" in str(e)


def test_explain_with_special_tokens(tok):
    e = tok.explain("a<|endoftext|>b", allowed_special="all")
    assert [p.special for p in e.pieces] == [False, True, False]
    assert e.ids == [64, 50256, 65]
    with pytest.raises(InputError, match="allowed_special"):
        tok.explain("a<|endoftext|>b")


def test_cache_is_bounded_and_does_not_change_results(tok):
    small = FastTokenizer(tok.encoder, tok.merges)
    small.cache_size = 5
    assert small.encode("one two") == tok.encode("one two")
    text = "one two three four five six seven eight nine ten"  # more new words than fit
    assert small.encode(text) == tok.encode(text) == small.encode(text)
    assert small.encode("one") == tok.encode("one")
    assert len(small._cache) <= 10


def new_words(seed: int, n: int = 300) -> str:
    """Text of made-up words, nearly all new to any cache."""
    rng = np.random.default_rng(seed)
    letters = list("abcdefghijklmnopqrstuvwxyzäöüß")
    return " ".join("".join(rng.choice(letters, int(rng.integers(3, 12)))) for _ in range(n))


# where the interrupt comes: the function that raises it (its first call), and batch_min
INTERRUPTED = {
    "merging, NumPy path": ("bpe_rows", 1),
    "merging, one piece at a time": ("bpe", 10**9),
    # a Ctrl-C that arrives during the C loop of lookups is raised at the next Python line
    "just after the lookups": ("islice", 1),
}


@pytest.mark.parametrize("where", INTERRUPTED)
def test_an_interrupted_encode_leaves_no_unfilled_words_in_the_cache(tok, monkeypatch, where):
    import npgpt.fast.tokenizer as module

    name, batch_min = INTERRUPTED[where]
    fresh = FastTokenizer(tok.encoder, tok.merges)
    fresh.batch_min = batch_min
    real, calls = getattr(module, name), []

    def interrupted_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, interrupted_once)
    text = new_words(0, 50)
    with pytest.raises(KeyboardInterrupt):
        fresh.encode(text)
    monkeypatch.undo()
    assert calls and all(fresh._cache.values())  # no empty entry was left behind
    assert fresh.encode(text) == tok.encode(text)


def test_threads_sharing_one_tokenizer_get_the_right_ids(tok):
    texts = [new_words(seed) for seed in range(8)]
    expected = [tok.encode(text) for text in texts]
    shared = FastTokenizer(tok.encoder, tok.merges)
    shared.batch_min = 1
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            shared.clear_cache()
            assert list(pool.map(shared.encode, texts)) == expected


def test_a_tokenizer_can_be_pickled_and_deep_copied(tok):
    text = "Hello world, Zürich 👍 " + new_words(1, 20)
    for twin in (pickle.loads(pickle.dumps(tok)), copy.deepcopy(tok)):
        assert twin.encode(text) == tok.encode(text) and twin.n_vocab == tok.n_vocab
    long_text = english_text()[:50_000]
    tok.encode(long_text)  # builds the derived tables, which pickles leave out
    assert not {"merge_table", "_token_words", "_lock"} & set(tok.__getstate__())
    # a pickle from before the word cache packed its ids: no _id_type, tables in older formats
    old = tok.__getstate__() | {"_token_words": {" the": (262,)}, "merge_table": "an older table"}
    del old["_id_type"]
    twin = FastTokenizer.__new__(FastTokenizer)
    twin.__setstate__(old)
    assert twin.encode(long_text) == tok.encode(long_text) and twin.encode(text) == tok.encode(text)


def test_encoding_new_words_gives_the_garbage_collector_nothing_to_walk(tok):
    # the word cache keeps ids packed in bytes, which the cycle collector does not track: lists
    # of ints, one per new word, made a collection walk every id of every new word (~50 ms for
    # 2 MB of multilingual text)
    fresh = FastTokenizer(tok.encoder, tok.merges)
    fresh.batch_min = 1
    text = new_words(2, 500)
    was_enabled = gc.isenabled()
    gc.disable()  # (the counts still grow; no collection resets them during the encode)
    try:
        before = gc.get_count()[0]
        ids = fresh.encode(text)
        made = gc.get_count()[0] - before
    finally:
        if was_enabled:
            gc.enable()
    assert len(set(pretokenize(text))) > 400 and ids == tok.encode(text)
    assert made < 50, f"{made} objects for the collector to track"


# ---------------------------------------------------------------------------------------------
# The command line


def run_cli(capsys, *argv):
    code = cli.main(["tokenize", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_a_table_without_colour(capsys):
    code, out, _ = run_cli(capsys, "Hello world")
    assert code == 0
    assert out.splitlines() == ["    0  15496  'Hello'", "    1    995  ' world'", "2 tokens, 11 characters, 11 bytes"]
    assert "\x1b[" not in out
    _, out, _ = run_cli(capsys, "👍")  # a token that is part of a character shows its bytes
    assert out.splitlines()[:2] == ["    0  41840  b'\\xf0\\x9f\\x91'", "    1    235  b'\\x8d'"]


def test_cli_colour_and_formats(capsys):
    code, out, _ = run_cli(capsys, "--color", "Hello world\n")
    assert code == 0 and "\x1b[" in out and "ids: [15496, 995, 198]" in out and "↵" in out
    assert run_cli(capsys, "--ids-only", "Hello world")[1] == "15496 995\n"
    record = json.loads(run_cli(capsys, "--json", "Hello world")[1])
    assert record["ids"] == [15496, 995] and record["tokens"] == ["Hello", " world"]
    record = json.loads(run_cli(capsys, "--json", "--explain", " world")[1])
    assert [m["rank"] for m in record["pieces"][0]["merges"]] == [10, 17, 79, 220, 739]
    code, out, _ = run_cli(capsys, "--explain", " world")
    assert "chars  Ġ w o r l d" in out and "ids: [995]" in out


def test_cli_colour_default_follows_the_terminal_and_no_color(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert tokenize_command._use_color(None, Terminal()) is True
    assert tokenize_command._use_color(None, io.StringIO()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert tokenize_command._use_color(None, Terminal()) is False
    assert tokenize_command._use_color(True, io.StringIO()) is True


def test_cli_reads_stdin_and_files(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"hi\n")))
    assert run_cli(capsys, "--ids-only", "-")[1] == "5303 198\n"
    path = tmp_path / "text.txt"
    path.write_text("Hello world", encoding="utf-8")
    assert run_cli(capsys, "--ids-only", "--file", str(path))[1] == "15496 995\n"


def test_cli_special_tokens(capsys):
    code, _, err = run_cli(capsys, "a<|endoftext|>b")
    assert code == 2 and "--special allow" in err
    assert run_cli(capsys, "--ids-only", "--special", "allow", "a<|endoftext|>b")[1] == "64 50256 65\n"
    assert len(run_cli(capsys, "--ids-only", "--special", "text", "<|endoftext|>")[1].split()) == 7


def test_cli_user_errors_exit_2(capsys, tmp_path):
    assert run_cli(capsys)[0] == 2
    assert run_cli(capsys, "x", "--file", "y")[0] == 2
    assert run_cli(capsys, "--file", str(tmp_path / "missing.txt"))[0] == 2
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe")
    code, _, err = run_cli(capsys, "--file", str(tmp_path / "bad.txt"))
    assert code == 2 and "not UTF-8" in err
    code, _, err = run_cli(capsys, "--model", str(tmp_path / "nope"), "x")
    assert code == 2 and "no model folder" in err


def test_cli_model_folder_and_name(capsys, tmp_path, monkeypatch):
    tiny_files(tmp_path)
    assert run_cli(capsys, "--model", str(tmp_path), "--ids-only", "hello")[1] == "258 78\n"  # "hell" "o"
    monkeypatch.setenv("NPGPT_WEIGHTS", str(tmp_path.parent))  # a model on this machine, by name
    (tmp_path / "config.json").write_text("{}")  # a model folder has one; npgpt.hub.find_local looks for it
    assert run_cli(capsys, "--model", tmp_path.name, "--ids-only", "hello")[1] == "258 78\n"
    assert run_cli(capsys, "--model", "gpt2-medium", "--ids-only", "hello")[1] == "31373\n"
