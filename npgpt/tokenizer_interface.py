"""tiktoken's interface on npgpt's tokenizers: batches, offsets, single tokens.

``Tokenizer`` (``npgpt/tokenizer.py``) inherits these, and so does the fast engine; they are
built from the tokenizer's own ``encode``, ``encode_ordinary``, ``token_bytes`` and tables, so they
give tiktoken's results by construction (``tests/test_tokenizer_api.py`` checks them against
tiktoken). They are apart so that ``npgpt/tokenizer.py`` stays the algorithm a learner reads.

Leaves out: tiktoken's thread pool (Python threads would only take turns here) and its
``_encode_*`` internals.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from collections.abc import Set as AbstractSet
from functools import cached_property
from typing import Literal

from .errors import InputError


class UnknownTokenError(InputError, KeyError):
    """A token id or token text that is not in the vocabulary. A ``KeyError`` too, as tiktoken
    raises, but printed as its message (a plain ``KeyError`` prints the repr of its argument)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class TiktokenInterface:
    """tiktoken's methods, for a class with ``encoder``, ``special_tokens``, ``encode``,
    ``encode_ordinary``, ``token_bytes`` and ``_bytes`` (id -> the token's bytes)."""

    @property
    def max_token_value(self) -> int:
        return max(self.encoder.values())

    @property
    def special_tokens_set(self) -> set[str]:
        return set(self.special_tokens)

    @cached_property
    def _ids_by_bytes(self) -> dict[bytes, int]:
        """b" world" -> 995: each token's id by its bytes (special tokens by their text's bytes)."""
        return {data: token_id for token_id, data in self._bytes.items()}

    def encode_batch(self, texts: Iterable[str], *, num_threads: int = 8,
                     allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
                     disallowed_special: Literal["all"] | Collection[str] = "all") -> list[list[int]]:
        """``[encode(text) for text in texts]``, with ``encode``'s special-token arguments (tiktoken's
        ``encode_batch``). The texts are encoded one after another: in Python, threads would only take
        turns; ``num_threads`` (> 0) is accepted for tiktoken's signature."""
        texts = _check_batch(texts, num_threads)
        return [self.encode(t, allowed_special=allowed_special, disallowed_special=disallowed_special) for t in texts]

    def encode_ordinary_batch(self, texts: Iterable[str], *, num_threads: int = 8) -> list[list[int]]:
        """``[encode_ordinary(text) for text in texts]`` (tiktoken's ``encode_ordinary_batch``)."""
        return [self.encode_ordinary(t) for t in _check_batch(texts, num_threads)]

    def encode_single_token(self, text_or_bytes: str | bytes) -> int:
        """The id of the one token whose text (or bytes) this is, special tokens included:
        "hello" -> 31373, b" world" -> 995. ``UnknownTokenError`` (a ``KeyError``, as in tiktoken)
        if no single token is."""
        data = text_or_bytes.encode("utf-8") if isinstance(text_or_bytes, str) else text_or_bytes
        if not isinstance(data, (bytes, bytearray)):
            raise InputError(f"encode_single_token takes a str or bytes, got {type(text_or_bytes).__name__}")
        token = self._ids_by_bytes.get(bytes(data))
        if token is None:
            raise UnknownTokenError(f"{text_or_bytes!r} is not one token of this vocabulary; encode() gives "
                                    "the tokens of any text")
        return token

    def decode_single_token_bytes(self, token_id: int) -> bytes:
        """tiktoken's name for ``token_bytes``."""
        return self.token_bytes(token_id)

    def decode_tokens_bytes(self, ids: Iterable[int]) -> list[bytes]:
        """The bytes of each token: [15496, 995] -> [b'Hello', b' world']."""
        ids = ids.tolist() if hasattr(ids, "tolist") else ids
        return [self.token_bytes(i) for i in ids]

    def decode_with_offsets(self, ids: Iterable[int]) -> tuple[str, list[int]]:
        """The text and, for each token, the index in it of the character where the token starts
        (tiktoken's ``decode_with_offsets``): [15496, 995] -> ('Hello world', [0, 5]).

        A token that starts inside a character (its first byte is a UTF-8 continuation byte,
        0x80-0xBF) gets that character's index: the emoji 👍, bytes F0 9F 91 8D, as the tokens
        b'\xf0\x9f' + b'\x91\x8d' gives offsets [0, 0]. Like tiktoken it decodes strictly: ids that
        end inside a character raise ``UnicodeDecodeError`` (``decode`` gives U+FFFD instead).
        """
        pieces = self.decode_tokens_bytes(ids)
        offsets, n_chars = [], 0
        for data in pieces:  # each character has exactly one byte that is no continuation byte
            offsets.append(max(0, n_chars - (0x80 <= data[0] < 0xC0)))
            n_chars += sum(1 for byte in data if not 0x80 <= byte < 0xC0)
        return b"".join(pieces).decode("utf-8", errors="strict"), offsets


def _check_batch(texts, num_threads) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise InputError("expected a list of texts, got one text: use encode(text), or encode_batch([text])")
    if not hasattr(num_threads, "__index__") or isinstance(num_threads, bool) or num_threads < 1:
        raise InputError(f"num_threads must be an integer >= 1, got {num_threads!r}")
    return list(texts)
