"""Models from the Hugging Face Hub: turn a model name into a local model folder.

``npgpt.load("gpt2")`` asks ``resolve`` for the folder, then ``npgpt/weights.py`` loads it; the
hub never builds a model and weights never looks up a name. ``resolve`` tries these places in
order and stops at the first that has the model:

    1. the weights folder      <weights>/gpt2 holding config.json (no network, and huggingface_hub
                               is not even imported, so this path loads in a fraction of a second)
    2. the bundled model       ``shakespeare``, inside the installed package
    3. the Hugging Face cache  a complete snapshot of the repo at that revision, as transformers
                               or huggingface_hub downloaded it: read in place, no network, no copy
    4. the Hub                 (or the mirror in HF_ENDPOINT): the files are downloaded into the
                               Hugging Face cache, verified, then read in place as in 3.

A converted copy in 1. is written only when asked (``convert_model``, ``npgpt convert``, or a
``storage`` other than the snapshot's, such as float16 for half the disk).

The modules, one job each:

    names.py    model names, repo ids, the weights folder, the bundled model
    cache.py    the Hugging Face cache's layout (refs, snapshots, blobs), read and checked offline
    fetch.py    the network: files from the Hub into that cache through huggingface_hub, verified
    convert.py  a Hugging Face folder or snapshot -> a self-contained npgpt model folder (when asked)

``HF_ENDPOINT`` (a mirror), ``HF_TOKEN`` (private and gated repos) and ``HF_HUB_OFFLINE=1`` (never
touch the network) behave as in the rest of the ecosystem; npgpt reads them at each call rather
than once at import. See docs/hub.md.

Leaves out: TensorFlow/Flax/GGUF weights; tokenizers other than byte-level BPE.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .._files import human_size
from ..config import GPT2Config
from ..errors import ConfigError, ModelNotFoundError
from ..weights import CONFIG_NAME, WEIGHTS_NAME, load_tokenizer
from .cache import cached_snapshot, cached_snapshots, hub_cache_dir, verify_file, weight_files_of
from .convert import (
    PROVENANCE_NAME,
    STORAGE_DTYPES,
    check_storage,
    convert,
    provenance_for,
    read_provenance,
    read_tokenizer_json,
    storage_of,
)
from .fetch import Unreachable, fetch, hub_endpoint, is_offline
from .names import (
    ALIASES,
    BUNDLED,
    SHORT_NAMES,
    bundled_folder,
    local_folder,
    local_name,
    looks_like_path,
    repo_id_for,
    weights_dir,
)

__all__ = [
    "resolve", "load_model", "download", "convert_model", "find_local", "list_models", "LocalModel", "convert",
    "ALIASES", "BUNDLED", "STORAGE_DTYPES", "weights_dir", "hub_cache_dir", "hub_endpoint", "is_offline",
    "looks_like_path", "repo_id_for", "local_name", "read_provenance", "read_tokenizer_json",
    "verify_file", "human_size",
]


def load_model(name: str, revision: str | None = None, *, storage: str | None = None, progress: bool = True, **load_options):
    """``npgpt.load(name)`` for a name that is not an existing folder: ``resolve``, then load the folder.

    ``storage`` ("float32" or "float16") asks for the weights stored that way on disk: a model in
    the Hugging Face cache stored otherwise is then converted into the weights folder, once. The
    model always computes in float32. ``load_options`` go to ``weights.load_folder``.
    """
    from ..weights import load_folder

    folder = resolve(name, revision, storage=storage, progress=progress)
    return load_folder(folder, name=local_name(repo_id_for(name), revision), **load_options)


def resolve(name: str, revision: str | None = None, *, storage: str | None = None, progress: bool = True) -> Path:
    """The local model folder for ``name``: weights folder, else bundled, else the snapshot in the
    Hugging Face cache (read in place), else a download into that cache.

    Only ``storage`` other than the snapshot's own converts (into the weights folder, once).
    """
    name = os.fspath(name)
    if looks_like_path(name):
        raise ModelNotFoundError(
            f"no model folder at {name!r}; pass a folder holding config.json and model.safetensors, "
            f"or a model name such as 'gpt2'"
        )
    check_storage(storage)
    repo_id = repo_id_for(name)
    folder = local_folder(repo_id, revision)
    if (folder / CONFIG_NAME).is_file() and (storage in (None, storage_of(folder)) or read_provenance(folder) is None):
        return folder  # converted before (or a folder npgpt did not convert, used as it is)
    bundled = bundled_folder(name, revision)
    if bundled is not None:
        return bundled
    cached = cached_snapshot(repo_id, revision)
    if cached is None:
        try:
            snapshot, commit = fetch(repo_id, revision, progress)
        except Unreachable as e:
            raise _not_available(name, repo_id, revision, folder, str(e)) from None
        cached = snapshot, repo_id, commit
    snapshot, source_repo, commit = cached
    if storage in (None, storage_of(snapshot)):
        return snapshot  # in place: no second copy
    return convert(snapshot, folder, storage=storage, progress=progress, verify=True,
                   provenance=provenance_for(source_repo, revision, commit, snapshot))


def download(
    name: str,
    revision: str | None = None,
    *,
    storage: str | None = None,
    to: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Fetch ``name`` from the Hub into the Hugging Face cache (unless it is there), verify it, and
    return the folder ``npgpt.load(name)`` then reads: the cache's snapshot, in place.

    Unlike ``resolve``, this asks the Hub which commit ``revision`` is now, so it also updates a
    model whose branch moved, and it checks the cached weights against their sha256. With no
    network it falls back to what is local, saying so on stderr. A converted folder is written
    only when asked: ``storage`` other than the snapshot's, ``to`` (a folder to write the model
    into), or a folder converted before (kept up to date); ``force`` converts again.
    """
    name = os.fspath(name)
    if looks_like_path(name):
        raise ModelNotFoundError(f"{name!r} looks like a folder, not a model name; `npgpt download` takes a name such as 'gpt2'")
    check_storage(storage)
    repo_id = repo_id_for(name)
    folder = Path(to).expanduser() if to is not None else local_folder(repo_id, revision)
    previous = read_provenance(folder)
    try:
        snapshot, commit = fetch(repo_id, revision, progress)
        source_repo = repo_id
    except Unreachable as e:
        cached = cached_snapshot(repo_id, revision)
        if previous is not None and not force and storage in (None, previous.get("storage")):
            _say(f"npgpt: {e}; using {folder} as it is, without checking for updates", progress)
            return folder
        if cached is None:
            raise _not_available(name, repo_id, revision, folder, str(e)) from None
        _say(f"npgpt: {e}; using the copy in the Hugging Face cache without checking for updates", progress)
        snapshot, source_repo, commit = cached
    verify_snapshot(snapshot)
    load_tokenizer(snapshot)  # a vocab.json or merges.txt that cannot be read fails the download, not a later load
    wanted = storage or (previous or {}).get("storage")
    if to is None and previous is None and wanted in (None, storage_of(snapshot)):
        return snapshot
    return _convert_once(snapshot, folder, previous, wanted or "float32", force, progress,
                         provenance_for(source_repo, revision, commit, snapshot))


def _convert_once(snapshot: Path, folder: Path, previous: dict | None, storage: str, force: bool, progress: bool,
                  provenance: dict) -> Path:
    """``convert`` into ``folder`` unless it already holds this commit in this storage."""
    if (folder / CONFIG_NAME).exists() and previous is None:
        raise ModelNotFoundError(
            f"{folder} already holds a model that npgpt did not convert (it has no {PROVENANCE_NAME}); "
            "move it away, or pass --to with another folder"
        )
    up_to_date = previous is not None and (previous.get("commit"), previous.get("storage")) == (provenance["commit"], storage)
    if not force and up_to_date and (folder / WEIGHTS_NAME).is_file():
        return folder
    return convert(snapshot, folder, storage=storage, progress=progress, force=force, verify=True, provenance=provenance)


def verify_snapshot(snapshot: Path) -> None:
    """Check a snapshot's config and weights against the hashes their blobs are named by (each file
    once per process); a corrupt file is deleted and the error says to download again."""
    for file in [CONFIG_NAME, *(weight_files_of(snapshot) or [])]:
        if (snapshot / file).is_symlink():
            verify_file(snapshot / file)


def convert_model(
    name_or_folder: str | os.PathLike,
    out: str | os.PathLike,
    *,
    storage: str = "float32",
    revision: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Write a self-contained model folder ``out`` (one ``model.safetensors`` in ``storage``, the
    tokenizer files, ``npgpt.json``) from a model folder or a name (found as ``npgpt.load`` finds
    it: downloaded into the Hugging Face cache if need be). The only way npgpt copies a model."""
    check_storage(storage)
    source = Path(os.fspath(name_or_folder)).expanduser()
    provenance = {"source": str(source.resolve())}
    if not source.is_dir():
        name = os.fspath(name_or_folder)
        source = resolve(name, revision, progress=progress)
        repo_id = repo_id_for(name)
        cached = cached_snapshot(repo_id, revision)
        if cached is not None and cached[0] == source:
            provenance = provenance_for(cached[1], revision, cached[2], source)
        else:
            provenance = {k: v for k, v in (read_provenance(source) or {}).items() if k != "files"} or {"source": str(source)}
    return convert(source, Path(out).expanduser(), storage=storage, progress=progress, force=force, verify=True,
                   provenance=provenance)


def find_local(name: str, revision: str | None = None) -> Path | None:
    """Where ``npgpt.load(name)`` would find ``name`` without the network (a model folder or a
    snapshot in the Hugging Face cache), or None. Never touches the network."""
    name = os.fspath(name)
    if looks_like_path(name):
        return Path(name).expanduser() if Path(name).expanduser().is_dir() else None
    try:
        repo_id = repo_id_for(name)
    except ModelNotFoundError:
        return None
    folder = local_folder(repo_id, revision)
    if (folder / CONFIG_NAME).is_file():
        return folder
    bundled = bundled_folder(name, revision)  # in the order resolve() takes
    if bundled is not None:
        return bundled
    cached = cached_snapshot(repo_id, revision)
    return cached[0] if cached else None


def _say(message: str, enabled: bool = True) -> None:
    if enabled:
        print(message, file=sys.stderr)


def _not_available(name: str, repo_id: str, revision: str | None, folder: Path, reason: str) -> ModelNotFoundError:
    revision_text = f" at revision {revision!r}" if revision else ""
    return ModelNotFoundError(
        f"model {name!r}{revision_text} is not available locally (not in {folder}, nor in the Hugging Face "
        f"cache {hub_cache_dir()}) and {reason}. Connect and run `npgpt download {name}` once, or place the "
        f"files by hand: download config.json, model.safetensors, vocab.json and merges.txt from "
        f"{hub_endpoint()}/{repo_id}/tree/{revision or 'main'} on another machine and copy them into {folder}/"
    )


# ---- what is here --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalModel:
    """A model that loads without a download: a model folder, or a snapshot in the HF cache."""

    name: str  # what to pass to npgpt.load
    path: Path
    n_params: int | None
    storage: str | None
    size: int  # bytes on disk
    source: str  # "openai-community/gpt2@607a30d", or "local" for folders npgpt did not convert
    kind: str  # "folder" or "hf-cache"
    problem: str | None = None  # why it would not load (``weights.folder_problem``), or None


def list_models() -> list[LocalModel]:
    """Model folders in the weights folder, the bundled models, then GPT-2 snapshots in the HF cache."""
    found = []
    root = weights_dir()
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if folder.name.startswith(".") or not (folder / CONFIG_NAME).is_file():
            continue
        provenance = read_provenance(folder) or {}
        source = f"{provenance['repo_id']}@{provenance.get('commit', '?')[:7]}" if "repo_id" in provenance else "local"
        found.append(_local_model(folder.name, folder, source, "folder"))
    for name in BUNDLED:
        folder = bundled_folder(name)
        if folder is not None and name not in {model.name for model in found}:
            found.append(_local_model(name, folder, "bundled with npgpt", "folder"))
    for repo_id, revision, snapshot in cached_snapshots():
        if _n_params(snapshot) is None:
            continue  # not a GPT-2
        name = SHORT_NAMES.get(repo_id, repo_id) if revision == "main" else f"{repo_id}@{revision or snapshot.name[:7]}"
        found.append(_local_model(name, snapshot, f"{repo_id}@{snapshot.name[:7]}", "hf-cache"))
    return found


def _local_model(name: str, folder: Path, source: str, kind: str) -> LocalModel:
    from ..weights import folder_problem

    storage = storage_of(folder) if kind == "folder" else None
    problem = folder_problem(folder)
    n_params = None if problem else _n_params(folder)
    return LocalModel(name, folder, n_params, storage, _folder_size(folder), source, kind, problem)


def _n_params(folder: Path) -> int | None:
    try:
        return GPT2Config.load(folder / CONFIG_NAME).n_params()
    except (ConfigError, OSError):
        return None


def _folder_size(folder: Path) -> int:
    """Bytes of the files in a folder, following the cache's symlinks to their blobs."""
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            pass
    return total
