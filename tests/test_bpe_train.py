"""Learning BPE merges (npgpt/training/bpe.py): a hand-worked case, a slow obvious reference, the
saved files loading in npgpt.Tokenizer and in Hugging Face ``tokenizers`` with identical ids."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from npgpt.training.bpe import build_vocab, count_pieces, learn_merges, learn_tokenizer, learn_tokenizer_from_file, merge_pair
from npgpt.errors import InputError
from npgpt.tokenizer import ENDOFTEXT, Tokenizer, bytes_to_unicode, pretokenize, to_byte_chars

TRICKY = ["", " ", "a", "Hello world!", "  two  spaces\n\n\ttab", "한국어 텍스트", "emoji 🎉👍🏽 done",
          "naïve café", "<|endoftext|> as text", "numbers 12345 and 3.14", "it's we'll THEY'RE", "\x00\x7f\u00ad"]


def sample_text(n_words: int = 3000, seed: int = 0) -> str:
    """Text with Zipf-like word frequencies, punctuation, newlines and some non-ASCII words."""
    rng = np.random.default_rng(seed)
    words = ["the", "and", "to", "of", "a", "thou", "thee", "lord", "king", "love", "night", "sweet", "romeo",
             "juliet", "café", "naïve", "über", "한국", "🎉", "sword", "crown", "speak", "heaven", "death", "live"]
    p = 1.0 / np.arange(1, len(words) + 1)
    picks = rng.choice(len(words), size=n_words, p=p / p.sum())
    out = []
    for i, w in enumerate(picks):
        word = words[w]
        out.append(word.capitalize() if rng.random() < 0.1 else word)
        r = rng.random()
        out.append(",\n" if r < 0.05 else ". " if r < 0.1 else "  " if r < 0.12 else " ")
    return "".join(out)


def reference_merges(text: str, vocab_size: int, min_count: int = 2) -> list[tuple[str, str]]:
    """The slow, obvious algorithm: recount every pair in every piece before each merge."""
    pieces = Counter(to_byte_chars(p) for p in pretokenize(text))
    words = {chars: list(chars) for chars in pieces}
    tokens = set(bytes_to_unicode().values())
    merges, banned = [], set()
    while len(merges) < vocab_size - 257:
        counts = Counter()
        for chars, parts in words.items():
            for pair in zip(parts, parts[1:]):
                counts[pair] += pieces[chars]
        candidates = [(c, pair) for pair, c in counts.items() if pair not in banned]
        if not candidates:
            break
        best_count = max(c for c, _ in candidates)
        if best_count < min_count:
            break
        pair = min(p for c, p in candidates if c == best_count)
        if pair[0] + pair[1] in tokens:
            banned.add(pair)
            continue
        tokens.add(pair[0] + pair[1])
        merges.append(pair)
        words = {chars: merge_pair(parts, pair) for chars, parts in words.items()}
    return merges


def test_merge_pair_and_count_pieces_by_hand():
    assert merge_pair(["a", "a", "a", "b"], ("a", "a")) == ["aa", "a", "b"]  # left to right, no overlap
    assert merge_pair(["a", "b", "a", "b"], ("a", "b")) == ["ab", "ab"]
    assert merge_pair(["x"], ("x", "y")) == ["x"]
    assert count_pieces("the cat the") == Counter({"the": 1, "Ġcat": 1, "Ġthe": 1})


def test_learn_merges_by_hand():
    # pieces "low", " lower", " lowest": (l,o) and (o,w) occur 3 times; ties go to the smaller pair
    merges = learn_merges("low lower lowest", vocab_size=1000)
    assert merges == [(("l", "o"), 3), (("lo", "w"), 3), (("low", "e"), 2), (("Ġ", "lowe"), 2)]  # then only 1s
    assert learn_merges("low lower lowest", vocab_size=259) == merges[:2]  # 256 bytes + 2 merges + <|endoftext|>


def test_matches_the_slow_reference():
    text = sample_text()
    fast = [pair for pair, _ in learn_merges(text, 400)]
    assert len(fast) > 50
    assert fast == reference_merges(text, 400)


def test_merge_to_an_existing_token_is_skipped():
    # "ab"+"c" and "a"+"bc" both make "abc": only the first is kept, so every token has one merge
    text = "ab ab ab abc abc abc abc xbc xbc xbc xbc xbc abc"
    merges = [pair for pair, _ in learn_merges(text, 1000)]
    results = ["".join(p) for p in merges]
    assert len(results) == len(set(results))
    assert merges == reference_merges(text, 1000)


def test_vocab_layout_is_gpt2s():
    merges = [("Ġ", "t"), ("h", "e")]
    vocab = build_vocab(merges)
    assert list(vocab)[:3] == ["!", '"', "#"] and vocab["!"] == 0  # byte tokens in GPT-2's order
    assert vocab["Ġt"] == 256 and vocab["he"] == 257
    assert vocab[ENDOFTEXT] == 258 == len(vocab) - 1  # <|endoftext|> last


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bpe")
    path = folder / "text.txt"
    path.write_text(sample_text(4000, seed=1), encoding="utf-8")
    tok = learn_tokenizer_from_file(path, 320, out=folder)
    return tok, folder


def test_saved_files_load_with_npgpt_tokenizer(learned):
    tok, folder = learned
    assert tok.n_vocab == 320 and tok.eot_id == 319
    lines = (folder / "merges.txt").read_text(encoding="utf-8").split("\n")
    assert lines[0] == "#version: 0.2" and len([line for line in lines[1:] if line]) == 320 - 257
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    assert vocab[ENDOFTEXT] == max(vocab.values()) == 319
    loaded = Tokenizer.from_folder(folder)
    assert loaded.encoder == tok.encoder and loaded.merges == tok.merges
    text = sample_text(300, seed=2)
    ids = loaded.encode(text)
    assert len(ids) < len(text.encode("utf-8")) * 0.6  # the merges compress this kind of text
    assert loaded.decode(ids) == text


@pytest.mark.parametrize("text", TRICKY)
def test_round_trip_tricky_strings(learned, text):
    tok, _ = learned
    assert tok.decode(tok.encode_ordinary(text)) == text


def test_huggingface_tokenizers_encode_identically(learned):
    tokenizers = pytest.importorskip("tokenizers")
    tok, folder = learned
    hf = tokenizers.Tokenizer(tokenizers.models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt")))
    hf.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = tokenizers.decoders.ByteLevel()
    for text in [sample_text(500, seed=3)] + TRICKY[1:8]:
        assert hf.encode(text).ids == tok.encode_ordinary(text), text


def test_bad_input_is_refused(tmp_path):
    with pytest.raises(InputError, match="at least 257"):
        learn_merges("some text", 100)
    with pytest.raises(InputError, match="empty"):
        learn_tokenizer("", 300)
    with pytest.raises(InputError, match="no text file"):
        learn_tokenizer_from_file(tmp_path / "missing.txt", 300)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("café".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        learn_tokenizer_from_file(bad, 300)


def test_small_text_gives_a_smaller_vocabulary():
    tok = learn_tokenizer("abc abc", 1000)
    assert tok.n_vocab < 1000 and tok.n_vocab == 256 + len(tok.merges) + 1
    assert tok.decode(tok.encode("abc abc")) == "abc abc"
