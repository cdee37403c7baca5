"""Training text: a small public-domain corpus to download, and a text turned into what the loop
eats (token ids of a training part and a held-out part, and random batches of windows).

``npgpt data tinyshakespeare`` downloads the corpus the bundled model was trained on.

Any UTF-8 text file can be trained on (``npgpt train --data FILE``); this module only fetches the
one the bundled model was trained on, so that its training can be reproduced:

    tinyshakespeare   1,115,394 characters of Shakespeare's plays (40,000 lines), public domain,
                      from Andrej Karpathy's char-rnn repository

The download is checked against the file's SHA-256 before it is put in place (written to a
temporary file, then renamed), so a cut connection never leaves a partial file under the real name.

Data for the loop, in the order it is used:

    split         the text's last ``val_fraction`` (10%) is held out for validation; the first part
                  is for training (and is all a new tokenizer learns from)
    encode        both parts become arrays of token ids, once
    batches       ``batch_size`` random windows of ``n_seq + 1`` tokens from the training ids; the
                  targets are the inputs shifted by one (predict the next token everywhere)
    repeat_spans  optionally, some windows get a random span written twice (to teach copying)

Leaves out: other corpora, archives, streaming large datasets (the encoded text is held in
memory: fine for the few MB a CPU can train on), several files or document boundaries.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._files import atomic_write
from ..errors import InputError, NpgptError


@dataclass(frozen=True)
class TextSource:
    url: str
    sha256: str
    filename: str
    about: str


DATASETS = {
    "tinyshakespeare": TextSource(
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        filename="tinyshakespeare.txt",
        about="1.1 MB of Shakespeare's plays (public domain), from karpathy/char-rnn",
    ),
}

DEFAULT_FOLDER = "data"


def download(name: str, out: str | os.PathLike | None = None, *, timeout: float = 60.0, force: bool = False) -> Path:
    """Download the text ``name`` to ``out`` (default ``data/<name>.txt``) and return its path.

    A file already there with the right SHA-256 is kept (no download); one with another content is
    refused unless ``force``.
    """
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)} (or train on any text file)")
    source = DATASETS[name]
    path = Path(out) if out is not None else Path(DEFAULT_FOLDER) / source.filename
    if path.is_dir():
        path = path / source.filename
    if path.exists() and not force:
        if _sha256(path.read_bytes()) == source.sha256:
            return path
        raise InputError(f"{path} exists and is not {name}; pass --force to replace it, or choose another --out")
    try:
        with urllib.request.urlopen(source.url, timeout=timeout) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as e:
        raise NpgptError(
            f"could not download {name} from {source.url} ({e}); check the network, or download that URL "
            f"yourself and pass the file to --data"
        ) from None
    digest = _sha256(data)
    if digest != source.sha256:
        raise NpgptError(
            f"the download of {name} has SHA-256 {digest[:12]}..., expected {source.sha256[:12]}...; "
            "it is incomplete or changed upstream, so it was not saved. Try again"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda f: f.write(data))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- a text as training data -------------------------------------------------------------------


@dataclass
class Dataset:
    """A text encoded for training: token ids of its training part and of its validation part."""

    train_ids: np.ndarray  # int32 [n_train_tokens]
    val_ids: np.ndarray  # int32 [n_val_tokens]
    val_chars: int  # characters of the validation text that evaluation predicts (all but the first token's)
    tokenizer: object

    @property
    def val_chars_per_token(self) -> float:
        return self.val_chars / max(len(self.val_ids) - 1, 1)


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """(train, validation): the validation text is the last ``val_fraction`` of the characters.

    The end, not a random sample: a held-out block tests whether the model generalises to text it
    has not seen, not to lines shuffled in between lines it has.
    """
    cut = int(round(len(text) * (1.0 - val_fraction)))
    return text[:cut], text[cut:]


def encode_dataset(text: str, tokenizer, val_fraction: float = 0.1) -> Dataset:
    """Split ``text`` and encode both parts (``<|endoftext|>`` in the text is read as plain text)."""
    train_text, val_text = split_text(text, val_fraction)
    train_ids = np.asarray(tokenizer.encode_ordinary(train_text), dtype=np.int32)
    val_ids = np.asarray(tokenizer.encode_ordinary(val_text), dtype=np.int32)
    if len(val_ids) < 2:
        raise InputError(
            f"the validation part ({val_fraction:.0%} of the text) has {len(val_ids)} token(s); "
            "give more text or a larger val_fraction"
        )
    first = tokenizer.decode(val_ids[:1].tolist())
    return Dataset(train_ids, val_ids, val_chars=len(val_text) - len(first), tokenizer=tokenizer)


def get_batch(ids: np.ndarray, batch_size: int, n_seq: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``batch_size`` random windows of the token ids: inputs [batch, n_seq] and targets (the same
    windows shifted one token to the right: the token that comes next at every position)."""
    if len(ids) < n_seq + 1:
        raise InputError(
            f"the training text has {len(ids)} tokens, fewer than one window of n_seq + 1 = {n_seq + 1}; "
            "give more text or a smaller --n-seq"
        )
    starts = rng.integers(0, len(ids) - n_seq, size=batch_size)  # [batch]
    windows = ids[starts[:, None] + np.arange(n_seq + 1)]  # [batch, n_seq + 1]
    return windows[:, :-1], windows[:, 1:]


REPEAT_SOURCES = ("random", "text")


def repeat_spans(windows: np.ndarray, fraction: float, n_vocab: int, rng: np.random.Generator,
                 min_len: int = 8, max_len: int = 64, source: str = "random") -> np.ndarray:
    """A copy of ``windows`` [batch, n_seq + 1] in which the first ``round(fraction * batch)`` rows
    each hold a span of random tokens followed at once by the same span again, at a random place.

    Natural text rarely rewards copying within a few million tokens of training, so a small model
    learns induction heads (attend to the token after the earlier occurrence of the current one,
    and predict it) late or never. In these rows the second span is unpredictable except by
    copying, which gives induction a strong, clean signal; the first span's tokens are noise
    the model learns to expect (loss near log n_vocab). Rows keep their text around the spans.

    ``source="text"``: the span is a stretch of the row's own text, written again right after
    itself (the row's text then goes on): the rows stay text, and the second copy is predicted
    better by copying than by anything the model knows of the language.
    """
    if source not in REPEAT_SOURCES:
        raise ValueError(f"source must be one of {', '.join(REPEAT_SOURCES)}, got {source!r}")
    windows = windows.copy()
    n_rows = int(round(fraction * len(windows)))
    width = windows.shape[1]
    for row in range(n_rows):
        length = int(rng.integers(min_len, min(max_len, width // 2) + 1))
        start = int(rng.integers(0, width - 2 * length + 1))
        if source == "random":
            windows[row, start : start + length] = rng.integers(0, n_vocab, size=length)
        windows[row, start + length : start + 2 * length] = windows[row, start : start + length]
    return windows
