"""Training text: ``npgpt data tinyshakespeare`` downloads a small public-domain corpus.

Any UTF-8 text file can be trained on (``npgpt train --data FILE``); this module only fetches the
one the bundled model was trained on, so that its training can be reproduced:

    tinyshakespeare   1,115,394 characters of Shakespeare's plays (40,000 lines), public domain,
                      from Andrej Karpathy's char-rnn repository

The download is checked against the file's SHA-256 before it is put in place (written to a
temporary file, then renamed), so a cut connection never leaves a partial file under the real name.

Leaves out: other corpora, archives, streaming large datasets.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ._files import atomic_write
from .errors import InputError, NpgptError


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
