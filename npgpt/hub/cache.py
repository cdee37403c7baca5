"""The Hugging Face cache, read (and checked) without huggingface_hub.

The cache is huggingface_hub's own, shared with transformers: ``HF_HUB_CACHE``, else
``HF_HOME/hub``, else ``~/.cache/huggingface/hub``, read at each call. Its layout::

    models--{owner}--{name}/
        refs/{revision}             the commit hash a branch or tag pointed at when last fetched
        snapshots/{commit}/{file}   a symlink to the blob holding that file at that commit
        blobs/{hash}                the file's bytes, named by its hash: the sha256 for Git LFS
                                    files (the weights), the git blob id (sha1) for the others

so a cached file can be checked offline against its own name (``verify_file``), each one once per
process.

Leaves out: writing blobs and snapshots (``fetch.py``, and huggingface_hub's ``hf_hub_download``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from .._files import write_text
from ..errors import WeightsError
from ..weights import CONFIG_NAME, INDEX_NAME, TOKENIZER_PAIRS, WEIGHTS_NAME, shards_of, weight_files_of  # noqa: F401 (re-exported)
from .names import SHORT_NAMES

CHUNK = 1 << 20  # bytes read or hashed at a time

SHA256_PATTERN = _SHA256 = re.compile(r"^[0-9a-f]{64}$")  # an LFS oid: safe in a path
_GIT_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_VERIFIED: set[str] = set()  # blobs this process has already hashed (each file is hashed once)


def hub_cache_dir() -> Path:
    """huggingface_hub's cache folder, by the same environment variables, read now."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.path.expandvars(os.environ[var])).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def repo_folder(repo_id: str) -> Path:
    """``models--{owner}--{name}`` in the cache (whether or not it exists)."""
    return hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))


def is_commit(revision: str) -> bool:
    return bool(_GIT_SHA1.match(revision))


def blob_sha256(path: str | os.PathLike) -> str | None:
    """The sha256 a cached file's blob is named by (Git LFS files), or None."""
    name = Path(os.path.realpath(path)).name
    return name if _SHA256.match(name) else None


def cached_snapshot(repo_id: str, revision: str | None) -> tuple[Path, str, str] | None:
    """(snapshot folder, repo id it was found under, commit) of a complete cached snapshot, or None.

    Complete means config.json and every weights file are there. A released GPT-2 is looked for
    under both spellings (``openai-community/gpt2`` and ``gpt2``).
    """
    revision = revision or "main"
    short = SHORT_NAMES.get(repo_id)
    for candidate in [repo_id] + ([short] if short else []):
        storage = repo_folder(candidate)
        commit = revision if is_commit(revision) else _read_text(storage / "refs" / revision)
        if not commit:
            continue
        snapshot = storage / "snapshots" / commit
        if (snapshot / CONFIG_NAME).is_file() and weight_files_of(snapshot) is not None:
            return snapshot, candidate, commit
    return None


def cached_snapshots() -> Iterator[tuple[str, str | None, Path]]:
    """(repo id, revision or None, snapshot) of every complete snapshot in the cache.

    The revision is a branch or tag that points at the snapshot's commit (refs/), if one does.
    """
    cache = hub_cache_dir()
    if not cache.is_dir():
        return
    for storage in sorted(cache.glob("models--*")):
        repo_id = storage.name[len("models--"):].replace("--", "/")
        refs = {}
        for ref in (storage / "refs").rglob("*") if (storage / "refs").is_dir() else []:
            if ref.is_file():
                refs.setdefault(_read_text(ref), ref.relative_to(storage / "refs").as_posix())
        for snapshot in sorted((storage / "snapshots").glob("*")) if (storage / "snapshots").is_dir() else []:
            if (snapshot / CONFIG_NAME).is_file() and weight_files_of(snapshot) is not None:
                yield repo_id, refs.get(snapshot.name), snapshot


def write_ref(repo_id: str, revision: str, commit: str) -> None:
    """Record which commit a branch or tag name pointed at (refs/{revision}), as huggingface_hub does."""
    if revision == commit:
        return
    ref = repo_folder(repo_id) / "refs" / revision
    if _read_text(ref) == commit:
        return
    ref.parent.mkdir(parents=True, exist_ok=True)
    write_text(ref, commit)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


# ---- checking cached files against their hashes --------------------------------------------------


def verify_file(
    path: str | os.PathLike, size: int | None = None, sha256: str | None = None, git_sha1: str | None = None
) -> None:
    """Check a cached file against the Hub's size and hash; delete it (and raise) if it does not match.

    Without a hash, the blob's own name in the cache is the hash (sha256 for LFS files, the git
    blob id for the others), so files cached by anyone can be checked offline.
    """
    real = Path(os.path.realpath(path))
    if str(real) in _VERIFIED:
        return
    if sha256 is None and git_sha1 is None:
        sha256 = real.name if _SHA256.match(real.name) else None
        git_sha1 = real.name if _GIT_SHA1.match(real.name) else None
    actual_size = real.stat().st_size
    problem = None
    if size is not None and actual_size != size:
        problem = f"it has {actual_size} bytes, the Hub says {size}"
    elif sha256 is not None:
        digest = hash_file(real, hashlib.sha256())
        if digest != sha256:
            problem = f"its sha256 is {digest}, expected {sha256}"
    elif git_sha1 is not None:
        digest = hash_file(real, hashlib.sha1(f"blob {actual_size}\0".encode()))
        if digest != git_sha1:
            problem = f"its git blob id is {digest}, expected {git_sha1}"
    if problem:
        for p in {Path(path), real}:
            p.unlink(missing_ok=True)
        raise WeightsError(
            f"{Path(path).name} in the Hugging Face cache is corrupt: {problem}. It was deleted; run the "
            "same command again to download it afresh"
        )
    mark_verified(real)


def mark_verified(blob: Path) -> None:
    """Remember that ``blob`` was hashed in this process (a download hashes as the bytes arrive)."""
    _VERIFIED.add(str(Path(os.path.realpath(blob))))


def forget_verified() -> None:
    """Hash every cached file again when next used, as a new process would."""
    _VERIFIED.clear()


def hash_file(path: Path, hasher) -> str:
    """``hasher`` (a hashlib object) fed the whole file, as a hex digest."""
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()
