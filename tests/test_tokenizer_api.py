"""tiktoken's interface on npgpt's tokenizers: each method against tiktoken's ``gpt2`` encoding.

``encode_batch``, ``encode_ordinary_batch``, ``decode_with_offsets``, ``decode_bytes``,
``decode_tokens_bytes``, ``encode_single_token``, ``n_vocab``, ``max_token_value``,
``special_tokens_set`` (and ``eot_id``, tiktoken's ``eot_token``), on the reference ``Tokenizer``
and on ``FastTokenizer``, over tricky texts (emoji, Korean, combining characters, special
tokens, lone surrogates) and random ids, including tokens that hold part of a character.
Also: a vocabulary without its byte tokens is refused when the tokenizer is built.
"""

from __future__ import annotations

import pytest
from conftest_tokenizer_helpers import tiktoken_gpt2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npgpt.errors import InputError
from npgpt.fast.tokenizer import FastTokenizer
from npgpt.tokenizer import (
    ENDOFTEXT,
    Tokenizer,
    TokenizerFileError,
    UnknownTokenError,
    bytes_to_unicode,
    replace_lone_surrogates,
)

PROPERTY = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow,
                                                                                          HealthCheck.function_scoped_fixture])

TEXTS = [
    "", "Hello world", "  spaces  and\ttabs\n\n", "👍", "👍🏽 ok", "👨‍👩‍👧‍👦 family", "🇫🇷🇯🇵", "한국어 텍스트입니다",
    "e\u0301 a\u0300\u0301\u0302 \u0301x", "日本語のテキスト。", "مرحبا", "a\ud800b", "\ud83d\ude00", "x\x00y",
    "text<|endoftext|>more", "<|endoftext|>", "It's 2024... \r\n", "Zürich naïve façade " * 3,
]


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    pytest.importorskip("tiktoken")
    return tiktoken_gpt2(str(tmp_path_factory.mktemp("tiktoken-cache")))


@pytest.fixture(scope="module", params=["reference", "fast"])
def tok(request) -> Tokenizer:
    return Tokenizer.gpt2() if request.param == "reference" else FastTokenizer.gpt2()


def byte_token(tok, value: int) -> int:
    return tok.encoder[bytes_to_unicode()[value]]


# ---- encode_batch, encode_ordinary_batch -------------------------------------------------------


@pytest.mark.parametrize("num_threads", [1, 3, 8])
def test_encode_ordinary_batch_equals_tiktoken_and_one_by_one(tok, oracle, num_threads):
    ours = tok.encode_ordinary_batch(TEXTS, num_threads=num_threads)
    assert ours == oracle.encode_ordinary_batch(TEXTS, num_threads=num_threads)
    assert ours == [tok.encode_ordinary(t) for t in TEXTS]
    assert tok.encode_ordinary_batch(iter(TEXTS[:3])) == ours[:3] and tok.encode_ordinary_batch([]) == []


@pytest.mark.parametrize("options", [{"allowed_special": "all"}, {"allowed_special": {ENDOFTEXT}}, {"disallowed_special": ()}])
def test_encode_batch_equals_tiktoken_and_one_by_one(tok, oracle, options):
    ours = tok.encode_batch(TEXTS, **options)
    assert ours == oracle.encode_batch(TEXTS, **options)
    assert ours == [tok.encode(t, **options) for t in TEXTS]


def test_encode_batch_refuses_a_special_token_like_tiktoken(tok, oracle):
    with pytest.raises(ValueError):
        oracle.encode_batch(["fine", "a<|endoftext|>"])
    with pytest.raises(InputError, match="allowed_special"):
        tok.encode_batch(["fine", "a<|endoftext|>"])
    assert tok.encode_batch(["fine"]) == oracle.encode_batch(["fine"])


@pytest.mark.parametrize("call", ["encode_batch", "encode_ordinary_batch"])
def test_batch_argument_errors(tok, call):
    with pytest.raises(InputError, match="one text"):
        getattr(tok, call)("a single string")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="num_threads"):
            getattr(tok, call)(["a"], num_threads=bad)


# ---- decode_bytes, decode_tokens_bytes, decode_with_offsets -----------------------------------


def test_decoders_equal_tiktoken_on_tricky_texts(tok, oracle):
    for text in TEXTS:
        ids = tok.encode(text, allowed_special="all")
        assert tok.decode_bytes(ids) == oracle.decode_bytes(ids)
        assert tok.decode_tokens_bytes(ids) == oracle.decode_tokens_bytes(ids)
        assert tok.decode_with_offsets(ids) == oracle.decode_with_offsets(ids)
        assert tok.decode_with_offsets(ids)[0] == replace_lone_surrogates(text)


def test_offsets_of_tokens_that_split_a_character(tok, oracle):
    thumbs = [byte_token(tok, b) for b in "👍".encode()]  # F0 9F 91 8D, one token each
    for ids in ([*thumbs], [15496, *thumbs, 995], [*thumbs, *thumbs], tok.encode("한국어 👍🏽 e\u0301")):
        assert tok.decode_with_offsets(ids) == oracle.decode_with_offsets(ids)
    assert tok.decode_with_offsets([15496, *thumbs, 995]) == ("Hello👍 world", [0, 5, 5, 5, 5, 6])
    assert tok.decode_with_offsets([]) == ("", [])


def test_offsets_of_a_cut_character_raise_like_tiktoken(tok, oracle):
    ids = tok.encode("👍")[:1]
    with pytest.raises(UnicodeDecodeError):
        oracle.decode_with_offsets(ids)
    with pytest.raises(UnicodeDecodeError):
        tok.decode_with_offsets(ids)
    assert tok.decode(ids) == "\ufffd"  # decode stays lenient


GPT2_BYTE_IDS = {b: i for i, b in enumerate(bytes_to_unicode())}  # GPT-2's ids 0-255, in bytes_to_unicode order
# any id; a single byte of a multi-byte character; GPT-2 tokens that hold part of a character
split_ids = st.lists(st.one_of(st.integers(0, 50256), st.integers(0x80, 0xFF).map(GPT2_BYTE_IDS.__getitem__),
                               st.sampled_from([41840, 235, 8582, 237, 121, 10545, 245, 98, 17312, 105, 47991, 250,
                                                31479, 12520, 5008, 169, 120])), max_size=12)


@PROPERTY
@given(split_ids)
def test_random_ids_decode_and_offsets_equal_tiktoken(tok, oracle, ids):
    assert tok.decode_bytes(ids) == oracle.decode_bytes(ids)
    assert tok.decode(ids) == oracle.decode(ids)
    try:
        expected = oracle.decode_with_offsets(ids)
    except UnicodeDecodeError:
        with pytest.raises(UnicodeDecodeError):
            tok.decode_with_offsets(ids)
    else:
        assert tok.decode_with_offsets(ids) == expected


@pytest.mark.parametrize("bad", [50257, 10**9])
def test_unknown_ids_raise_a_key_error_as_in_tiktoken(tok, oracle, bad):
    with pytest.raises(KeyError):
        oracle.decode_bytes([1, bad])
    for call in (tok.decode_bytes, tok.decode_with_offsets, tok.decode_tokens_bytes):
        with pytest.raises(UnknownTokenError, match=f"token id {bad} is not in the vocabulary") as error:
            call([1, bad])
        assert isinstance(error.value, KeyError) and isinstance(error.value, InputError)


# ---- encode_single_token ---------------------------------------------------------------------


def test_encode_single_token_equals_tiktoken_on_every_token(tok, oracle):
    for token_id in range(tok.n_vocab):
        data = oracle.decode_single_token_bytes(token_id)
        assert tok.decode_single_token_bytes(token_id) == data
        assert tok.encode_single_token(data) == oracle.encode_single_token(data) == token_id
    for text in ["hello", " world", ENDOFTEXT, "!", "\n"]:
        assert tok.encode_single_token(text) == oracle.encode_single_token(text)


@pytest.mark.parametrize("not_one_token", ["hello world", "", b"\xff\xfe", "👍", "<|endoftext", b"\xf0\x9f\x91\x8d"])
def test_encode_single_token_of_a_non_token_is_a_clear_key_error(tok, oracle, not_one_token):
    with pytest.raises(KeyError):
        oracle.encode_single_token(not_one_token)
    with pytest.raises(KeyError) as error:
        tok.encode_single_token(not_one_token)
    assert isinstance(error.value, UnknownTokenError)
    assert str(error.value) == f"{not_one_token!r} is not one token of this vocabulary; encode() gives the tokens of any text"


def test_encode_single_token_argument_type(tok):
    with pytest.raises(InputError, match="str or bytes"):
        tok.encode_single_token(31373)


# ---- the vocabulary's numbers ------------------------------------------------------------------


def test_vocabulary_attributes_equal_tiktoken(tok, oracle):
    assert tok.n_vocab == oracle.n_vocab == 50257
    assert tok.max_token_value == oracle.max_token_value == 50256
    assert tok.special_tokens_set == oracle.special_tokens_set == {ENDOFTEXT}
    assert tok.eot_id == oracle.eot_token  # tiktoken's eot_token is the id: npgpt's eot_id
    assert tok.eot_token == ENDOFTEXT  # npgpt's eot_token stays the text (docs/tokenizer.md)


# ---- a vocabulary without its byte tokens -------------------------------------------------------


@pytest.mark.parametrize("cls", [Tokenizer, FastTokenizer])
def test_a_vocabulary_without_byte_tokens_is_refused_when_built(cls):
    vocab = {"h": 0, "e": 1, "l": 2, "o": 3, "he": 4}
    with pytest.raises(TokenizerFileError) as error:
        cls(vocab, [("h", "e")])  # (was: built, then KeyError: 'Ā' at the first encode)
    message = str(error.value)
    assert f"{cls.__name__}(vocab, merges): 252 of the 256 byte tokens are missing" in message
    assert "'Ā' (byte 0x00), 'ā' (byte 0x01), 'Ă' (byte 0x02)" in message
    assert "bytes_to_unicode" in message and "Add them" in message
    assert isinstance(error.value, ValueError)


def test_the_byte_check_does_not_refuse_a_full_alphabet():
    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    assert Tokenizer(vocab, []).encode("hi") == [vocab["h"], vocab["i"]]
