"""The fast tokenizer (npgpt/fast/tokenizer.py) against the reference (npgpt/tokenizer.py).

``FastTokenizer`` must give exactly the reference ``Tokenizer``'s ids, decodings and explanations:
on hand-picked tricky strings, random Unicode, random bytes decoded with errors="replace", a whole
play-like text made here (cold and warm word cache, every merge path), and vocabularies other than
GPT-2's. Also: npgpt.engine chooses the fast engine, the loaders build their own class, and the reference
module runs without ever importing the fast one. (The fast paths step by step, each against the
plain step it replaces, and both against tiktoken: tests/test_tokenizer.py.)
"""

from __future__ import annotations

import ast
import doctest
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npgpt
import npgpt.fast.tokenizer
from npgpt.errors import InputError
from npgpt.fast.tokenizer import FastTokenizer
from npgpt.engine import tokenizer_class
from npgpt.tokenizer import ENDOFTEXT, GPT2_N_VOCAB, Tokenizer, bytes_to_unicode, gpt2_files

PROPERTY = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="session")
def fast() -> FastTokenizer:
    return FastTokenizer.gpt2()


@pytest.fixture(scope="session")
def ref() -> Tokenizer:
    return Tokenizer.gpt2()


def fresh_pair(vocab, merges, **fast_settings) -> tuple[Tokenizer, FastTokenizer]:
    fast = FastTokenizer(vocab, merges)
    for name, value in fast_settings.items():
        setattr(fast, name, value)
    return Tokenizer(vocab, merges), fast


def play(n_lines: int = 4000, seed: int = 0) -> str:
    """A play-like text (~150 kB): speakers, verse, stage directions, made-up names that need
    merging, numbers, long words, whitespace runs, a few non-ASCII characters."""
    rng = np.random.default_rng(seed)
    speakers = ["ROMEO", "JULIET", "NURSE", "FRIAR LAURENCE", "MERCUTIO", "Lady CAPULET", "BENVOLIO"]
    words = ("thou art the sun and I the moon o night thy gentle love doth fear what light through yonder "
             "window breaks 'tis but thy name that is my enemy wherefore art I'll we're they've").split()
    odd = ["Zürich", "naïve", "façade", "Ælfred", "—", "“quoth”", "’tis", "日本", "🌹", "\t", "   ", "1597", "3.14"]
    letters = list("abcdefghijklmnopqrstuvwxyz")
    lines = []
    for n in range(n_lines):
        if n % 25 == 0:
            lines.append(f"\nACT {n // 25 + 1}. SCENE {rng.integers(1, 6)}.  [Enter {rng.choice(speakers)}]\n")
        line = " ".join(rng.choice(words, int(rng.integers(3, 12))))
        if rng.random() < 0.3:
            line += " " + "".join(rng.choice(letters, int(rng.integers(4, 14))))  # a new word
        if rng.random() < 0.1:
            line += " " + str(rng.choice(odd))
        if rng.random() < 0.01:
            line += " " + "".join(rng.choice(letters, 300))  # a word of hundreds of bytes (bpe_heap)
        lines.append(f"{rng.choice(speakers)}:\n{line.capitalize()}{rng.choice(['.', ',', '!', '?', ';', ''])}")
    return "\n".join(lines)


TEXTS = [
    "", " ", "   ", "a  b", "trailing   ", "\n\n\n", "\r\n", " \t \n x", "\u3000\u00a0\u2028", " " * 300,
    "it's IT'S 'll 'LL rock'n'roll", "1 12 1234567890123 3.14159 ٣٤٥ ①②",
    "한국어 텍스트입니다, 안녕하세요!", "日本語のテキストです。", "مرحبا بالعالم", "नमस्ते दुनिया", "Привет, мир!",
    "👍", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷🇯🇵", "a👍b", " 👋🏿 hi",
    "e\u0301", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d", "\x00\x01\x1b[31mred\x1b[0m\x7f\x85",
    "\ud800", "a\udfffb", "\ud83d\ude00", "zero\u200bwidth\ufeff",
    "a" * 1000, "ab" * 400, "pneumonoultramicroscopicsilicovolcanoconiosis", "x" + "é" * 300,
    "Hello, world! How's it going?  \n", "<|endoftext|>", "a<|endoftext|>b<|endoftext|>",
]


@pytest.mark.parametrize("text", TEXTS, ids=lambda s: ascii(s)[:30])
def test_the_same_ids_and_explanations_on_tricky_strings(fast, ref, text):
    ids = ref.encode_ordinary(text)
    assert fast.encode_ordinary(text) == ids
    assert fast.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
    assert fast.decode(ids) == ref.decode(ids) and fast.decode_tokens(ids) == ref.decode_tokens(ids)
    explained = ref.explain(text, disallowed_special=())
    assert str(fast.explain(text, disallowed_special=())) == str(explained) and explained.ids == ids


@PROPERTY
@given(st.text(st.characters(exclude_categories=()), max_size=80))
def test_the_same_ids_on_random_unicode(fast, ref, text):
    assert fast.encode_ordinary(text) == ref.encode_ordinary(text)


@PROPERTY
@given(st.binary(max_size=300))
def test_the_same_ids_on_random_bytes_decoded_with_replacement(fast, ref, data):
    text = data.decode("utf-8", errors="replace")
    ids = ref.encode_ordinary(text)
    assert fast.encode_ordinary(text) == ids and fast.decode(ids) == text


@pytest.mark.parametrize("settings", [{}, {"batch_min": 1}, {"batch_min": 10**9}, {"long_piece": 0},
                                      {"long_piece": 0, "huge_piece": 0}, {"words_min": 1}],
                         ids=["default", "all in NumPy", "one at a time", "all by heap", "all in rounds", "vocabulary words first"])
def test_the_same_ids_on_a_whole_play_cold_and_warm(fast, ref, settings):
    text = play()
    assert len(text) > 100_000
    expected = ref.encode_ordinary(text)
    reference_alone = Tokenizer(ref.encoder, ref.merges)  # a reference with an empty cache, too
    assert reference_alone.encode_ordinary(text) == expected
    _, engine = fresh_pair(fast.encoder, fast.merges, **settings)
    assert engine.encode_ordinary(text) == expected  # cold: every new word merged
    assert engine.encode_ordinary(text) == expected  # warm: every word from the cache
    assert engine.decode(expected) == text
    lines = text.splitlines(keepends=True)[:300]  # short texts, one at a time, with what is cached
    assert [engine.encode(line) for line in lines] == [ref.encode(line) for line in lines]


def test_the_same_ids_with_vocabularies_other_than_gpt2s(tmp_path):
    chars = list(bytes_to_unicode().values())
    learned = [("h", "e"), ("l", "l"), ("he", "ll"), ("Ġ", "w"), ("o", "r")]
    out_of_order = [("a", "b"), ("b", "c"), ("a", "bc")]  # BPE makes "ab" "c" of "abc"
    every_pair = [(a, b) for a in chars[:60] for b in chars[:60]]  # many merges of two bytes
    text = "hello world, abc abcabc " * 50 + "日本語 👍🏽 " + "".join(chars[:60]) * 3 + " " + "abc" * 2000
    not_learned_in_order = [("bc", "b"), ("b", "c"), ("a", "b")]  # "bc b" before "bc" is made: bpe_heap
    for merges in (learned, out_of_order, every_pair, not_learned_in_order):
        vocab = {c: i for i, c in enumerate(chars)}
        for a, b in merges:
            vocab.setdefault(a + b, len(vocab))
        vocab[ENDOFTEXT] = len(vocab)
        for settings in ({}, {"batch_min": 1}, {"words_min": 1}, {"long_piece": 0, "huge_piece": 0}):
            reference, engine = fresh_pair(vocab, merges, **settings)
            assert engine.encode(text) == reference.encode(text) == reference.explain(text).ids
            assert engine.decode(reference.encode(text)) == text


def test_the_same_tables_and_decoding(fast, ref):
    assert fast.encoder == ref.encoder and fast.merges == ref.merges and fast.ranks == ref.ranks
    assert fast._bytes == ref._bytes  # NumPy's translation of every token, and the plain one
    ids = list(range(GPT2_N_VOCAB))
    assert fast.decode_bytes(ids) == ref.decode_bytes(ids)
    for bad in ([GPT2_N_VOCAB], [-1], [None]):
        with pytest.raises(InputError, match="not in the vocabulary"):
            ref.decode(bad)
    a, b = ref.stream_decoder(), fast.stream_decoder()
    assert [a.feed(i) for i in ref.encode("ok 👍🏽!")] == [b.feed(i) for i in ref.encode("ok 👍🏽!")]


def test_the_engine_module_chooses_the_fast_tokenizer_and_the_loaders_build_their_own_class(tmp_path, fast, ref):
    assert type(fast) is FastTokenizer and isinstance(fast, Tokenizer) and npgpt.Tokenizer.gpt2() is fast
    assert npgpt.Tokenizer is tokenizer_class() is tokenizer_class("fast") is FastTokenizer
    assert type(ref) is Tokenizer and Tokenizer.gpt2() is ref and tokenizer_class("reference") is Tokenizer
    with pytest.raises(InputError, match="engine must be one of"):
        tokenizer_class("rust")
    encoder_json, vocab_bpe = gpt2_files()
    (tmp_path / "vocab.json").write_bytes(Path(encoder_json).read_bytes())
    (tmp_path / "merges.txt").write_bytes(Path(vocab_bpe).read_bytes())
    assert type(FastTokenizer.from_folder(tmp_path)) is FastTokenizer
    assert type(Tokenizer.from_folder(tmp_path)) is Tokenizer
    loaded = Tokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert loaded.encoder == fast.encoder and loaded.merges == fast.merges  # fully parsed and checked
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": GPT2_N_VOCAB}))
    (tmp_path / "vocab.json").unlink()
    assert Tokenizer.from_folder(tmp_path, fallback_to_gpt2=True) is ref
    assert type(npgpt.load("shakespeare").tokenizer) is FastTokenizer  # models load the fast one


def test_the_reference_runs_without_importing_the_fast_module():
    script = (
        "import sys\n"
        "from npgpt.tokenizer import Tokenizer\n"
        "tok = Tokenizer.gpt2()\n"
        "assert tok.encode('Hello world 👍') == [15496, 995, 50169, 235]\n"
        "assert tok.explain(' world').ids == [995]\n"
        "assert 'npgpt.fast.tokenizer' not in sys.modules, 'the reference imported the fast tokenizer'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).parent.parent)


def test_the_reference_never_imports_the_fast_module():
    tree = ast.parse(Path(npgpt.tokenizer.__file__).read_text(encoding="utf-8"))
    imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert imports and not any("fast" in (getattr(node, "module", None) or "") or
                               any("fast" in alias.name for alias in node.names) for node in imports)


def test_a_reference_tokenizer_pickles_without_its_cache(ref):
    fresh = Tokenizer(ref.encoder, ref.merges)
    fresh.encode("Hello world, Zürich")
    twin = pickle.loads(pickle.dumps(fresh))
    assert twin._cache == {} and twin.encode("Hello world, Zürich") == fresh.encode("Hello world, Zürich")


def test_the_fast_module_docstring_examples():
    result = doctest.testmod(npgpt.fast.tokenizer)
    assert result.failed == 0 and result.attempted >= 5
