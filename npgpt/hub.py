"""Models from the Hugging Face Hub: find, download, verify, convert and cache GPT-2 checkpoints.

``npgpt.load("gpt2")`` turns a name into a model folder, trying these places in order and stopping
at the first that has it (``resolve`` does this):

    1. the weights folder      <weights>/gpt2 holding config.json (no network, and huggingface_hub
                               is not even imported, so this path loads in a fraction of a second)
    2. the Hugging Face cache  a complete snapshot of the repo at that revision, as transformers
                               or huggingface_hub downloaded it: converted into 1., no network
    3. the Hub                 (or the mirror in HF_ENDPOINT): the files are downloaded into the
                               Hugging Face cache, verified, then converted into 1.

``<weights>`` is ``$NPGPT_WEIGHTS`` if set, else the ``weights/`` folder of the npgpt checkout when
running from one, else ``$XDG_CACHE_HOME/npgpt/weights`` (``~/.cache/npgpt/weights``). A model
folder's name there is its short name (``gpt2``, ``distilgpt2``), or ``owner--name`` for a repo id
``owner/name``, with ``@revision`` appended for a revision other than ``main``.

Names: the five released sizes (``gpt2``, ``gpt2-medium``, ``gpt2-large``, ``gpt2-xl``,
``distilgpt2``) map to their repos on the Hub (``openai-community/gpt2``, ...); the cache is searched
under both spellings, so a model a transformers user fetched as ``gpt2`` is not fetched again. Any
other ``owner/name`` is a Hub repo id, which must hold a GPT-2 (``model_type: gpt2``). A string that
looks like a path (absolute, starting with ``.`` or ``~``, more than one ``/``, or whose first
component is an existing folder) is never sent to the Hub.

The Hugging Face cache is huggingface_hub's own (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else
``~/.cache/huggingface/hub``), shared with transformers. ``HF_ENDPOINT`` (a mirror), ``HF_TOKEN``
(private and gated repos) and ``HF_HUB_OFFLINE=1`` (never touch the network) behave as in the rest
of the ecosystem; npgpt reads them at each call rather than once at import.

A download, file by file:

- Only ``config.json``, the safetensors weights (one file, or the shards an index lists) and the
  tokenizer files are fetched. A repo with only a pickled ``pytorch_model.bin`` is refused before
  anything is downloaded: unpickling can run arbitrary code.
- ``config.json`` comes first and must describe a GPT-2, so a wrong repo costs kilobytes, not
  gigabytes.
- The weights go to ``blobs/<sha256>.incomplete`` in the cache under huggingface_hub's own lock for
  that blob (so two processes never write one file). A transfer the server cuts is resumed with an
  HTTP Range request; an interrupted process leaves the partial file, and the next run continues it.
  The sha256 is computed as the bytes arrive and must equal the one the Hub gives (the LFS oid)
  before the file is renamed to its final name; a mismatch deletes the file. Small files are fetched
  by ``hf_hub_download`` and checked against their git blob id.
- Progress bars go to stderr.

Conversion writes a self-contained npgpt model folder: ``config.json``, ``model.safetensors`` (the
canonical tensor names and order, float32, or float16 to halve disk use), the tokenizer files and
``npgpt.json`` (where it came from: repo, revision, commit, sha256 of the source). It is built in a
temporary folder next to the destination and renamed into place, under a lock file, so a reader
sees the old folder or the complete new one and two processes converting at once do the work once.
A converted folder loads memory-mapped (``npgpt/weights.py``).

Leaves out: Xet transfers (files come over plain HTTP, which the Hub and its mirrors serve for
every file; huggingface_hub itself would use hf-xet when installed); TensorFlow/Flax/GGUF weights;
tokenizers other than byte-level BPE.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import GPT2Config
from ._files import write_json, write_text
from .errors import ConfigError, ModelNotFoundError, WeightsError
from .weights import (
    _IGNORED,
    CONFIG_NAME,
    WEIGHTS_NAME,
    bf16_to_f32,
    check_flat,
    expected_shapes,
    open_safetensors,
    read_safetensors_header,
    write_safetensors,
)

# The released GPT-2s: short name -> repo on the Hub. The Hub still answers to the short names
# (it redirects), and older caches hold them under those names, so both spellings are searched.
ALIASES = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
    "distilgpt2": "distilbert/distilgpt2",
}
_SHORT_NAMES = {repo: short for short, repo in ALIASES.items()}
# Models that ship inside the npgpt package (a wheel carries weights/shakespeare there; see
# pyproject.toml). A folder of the same name in the weights folder takes precedence.
BUNDLED = {"shakespeare": Path(__file__).resolve().parent / "bundled" / "shakespeare"}

STORAGE_DTYPES = {"float32": np.float32, "float16": np.float16}
PROVENANCE_NAME = "npgpt.json"
INDEX_NAME = "model.safetensors.index.json"
TOKENIZER_PAIRS = (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe"))
PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
DEFAULT_ENDPOINT = "https://huggingface.co"

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}(/[\w.\-]{1,96})?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GIT_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_VERIFIED: set[str] = set()  # blobs this process has already hashed (each file is hashed once)
_MAX_TRIES = 6  # consecutive failed attempts (no new bytes) before a transfer gives up
_CHUNK = 1 << 20


# ---- where things live ----------------------------------------------------------------------------


def weights_dir() -> Path:
    """Where converted model folders live: $NPGPT_WEIGHTS, the checkout's weights/, or a user cache."""
    env = os.environ.get("NPGPT_WEIGHTS")
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parent.parent / "weights"
    if checkout.is_dir():
        return checkout
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "npgpt" / "weights"


def hub_cache_dir() -> Path:
    """huggingface_hub's cache folder, by the same environment variables, read now."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.path.expandvars(os.environ[var])).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def is_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) set now, or huggingface_hub already in offline mode."""
    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    if flag.strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return True
    constants = sys.modules.get("huggingface_hub.constants")
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def looks_like_path(name: str) -> bool:
    """True for strings meant as folders, which must never be sent to the Hub as repo ids."""
    name = os.fspath(name)
    return (
        os.path.isabs(name)
        or name.startswith((".", "~"))
        or "\\" in name
        or name.count("/") > 1
        or name.endswith("/")
        or ("/" in name and os.path.isdir(name.split("/")[0]))
    )


def repo_id_for(name: str) -> str:
    """The Hub repo id a model name stands for (``gpt2`` -> ``openai-community/gpt2``)."""
    if name in ALIASES:
        return ALIASES[name]
    if not _REPO_ID.match(name) or "--" in name or ".." in name:
        raise ModelNotFoundError(
            f"{name!r} is neither a model folder nor a model name: use one of {', '.join(ALIASES)}, "
            "a Hub repo id such as 'owner/name', or the path of a folder holding config.json and model.safetensors"
        )
    return name


def local_name(repo_id: str, revision: str | None = None) -> str:
    """The folder name of a converted model: ``gpt2``, ``owner--name``, ``owner--name@v1``."""
    name = _SHORT_NAMES.get(repo_id, repo_id.replace("/", "--"))
    if revision and revision != "main":
        name += "@" + revision.replace("/", "--")
    return name


def _repo_folder(repo_id: str) -> Path:
    return hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))


def _cache_candidates(repo_id: str) -> list[str]:
    short = _SHORT_NAMES.get(repo_id)
    return [repo_id] + ([short] if short else [])


# ---- the public entry points ----------------------------------------------------------------------


def load_model(name: str, revision: str | None = None, *, storage: str | None = None, progress: bool = True, **load_options):
    """``npgpt.load(name)`` for a name that is not an existing folder; see the module docstring.

    ``storage`` ("float32" or "float16") is how a freshly converted folder stores its weights;
    the model always computes in float32. ``load_options`` go to ``weights.load_folder``.
    """
    from .weights import load_folder

    return load_folder(resolve(name, revision, storage=storage, progress=progress), **load_options)


def resolve(name: str, revision: str | None = None, *, storage: str | None = None, progress: bool = True) -> Path:
    """The local model folder for ``name``: weights folder, else Hugging Face cache, else a download."""
    name = os.fspath(name)
    if looks_like_path(name):
        raise ModelNotFoundError(
            f"no model folder at {name!r}; pass a folder holding config.json and model.safetensors, "
            f"or a model name such as 'gpt2'"
        )
    _check_storage(storage)
    repo_id = repo_id_for(name)
    folder = weights_dir() / local_name(repo_id, revision)
    if (folder / CONFIG_NAME).is_file() and (storage in (None, _storage_of(folder)) or read_provenance(folder) is None):
        return folder  # a folder npgpt did not convert is used as it is
    bundled = _bundled(name, revision)
    if bundled is not None:
        return bundled
    cached = _cached_snapshot(repo_id, revision)
    if cached is not None:
        snapshot, source_repo, commit = cached
        return convert(snapshot, folder, storage=storage or "float32", progress=progress, verify=True,
                       provenance=_provenance_for(source_repo, revision, commit, snapshot))
    snapshot, commit = _fetch_or_explain(name, repo_id, revision, folder, progress)
    return convert(snapshot, folder, storage=storage or "float32", progress=progress, verify=True,
                   provenance=_provenance_for(repo_id, revision, commit, snapshot))


def download(
    name: str,
    revision: str | None = None,
    *,
    storage: str | None = None,
    to: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Fetch ``name`` from the Hub (unless the local copy is up to date) and convert it; the folder.

    Unlike ``resolve``, this asks the Hub which commit ``revision`` is now, so it also updates a
    model whose branch moved. With no network it falls back to what is local, saying so on stderr.
    ``to`` writes the model folder there instead of the weights folder; ``force`` converts again
    (and re-verifies the source files) even when the folder is up to date.
    """
    name = os.fspath(name)
    if looks_like_path(name):
        raise ModelNotFoundError(f"{name!r} looks like a folder, not a model name; `npgpt download` takes a name such as 'gpt2'")
    _check_storage(storage)
    repo_id = repo_id_for(name)
    folder = Path(to).expanduser() if to is not None else weights_dir() / local_name(repo_id, revision)
    previous = read_provenance(folder)
    if (folder / CONFIG_NAME).exists() and previous is None:
        raise ModelNotFoundError(
            f"{folder} already holds a model that npgpt did not convert (it has no {PROVENANCE_NAME}); "
            "move it away, or pass --to with another folder"
        )
    storage = storage or (previous or {}).get("storage") or "float32"
    try:
        if is_offline():
            raise _Unreachable("offline mode is on (HF_HUB_OFFLINE=1)")
        snapshot, commit = _fetch(repo_id, revision, progress)
        source_repo = repo_id
    except _Unreachable as e:
        cached = _cached_snapshot(repo_id, revision)
        if previous is not None and not force and previous.get("storage") == storage:
            _say(f"npgpt: {e}; using {folder} as it is, without checking for updates", progress)
            return folder
        if cached is None:
            raise _not_available(name, repo_id, revision, folder, str(e)) from None
        _say(f"npgpt: {e}; converting the copy in the Hugging Face cache without checking for updates", progress)
        snapshot, source_repo, commit = cached
    if (
        not force
        and previous is not None
        and previous.get("commit") == commit
        and previous.get("storage") == storage
        and (folder / WEIGHTS_NAME).is_file()
    ):
        return folder
    return convert(snapshot, folder, storage=storage, progress=progress, force=force, verify=True,
                   provenance=_provenance_for(source_repo, revision, commit, snapshot))


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
    folder = weights_dir() / local_name(repo_id, revision)
    if (folder / CONFIG_NAME).is_file():
        return folder
    bundled = _bundled(name, revision)  # in the order resolve() takes
    if bundled is not None:
        return bundled
    cached = _cached_snapshot(repo_id, revision)
    return cached[0] if cached else None


def _bundled(name: str, revision: str | None) -> Path | None:
    """The folder of a model that ships inside the package (``BUNDLED``), if this install has it."""
    folder = BUNDLED.get(name)
    if folder is None or revision not in (None, "main") or not (folder / CONFIG_NAME).is_file():
        return None
    return folder


def read_provenance(folder: str | os.PathLike) -> dict | None:
    """A converted folder's ``npgpt.json`` (where it came from), or None for other folders."""
    try:
        with open(Path(folder) / PROVENANCE_NAME, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _check_storage(storage: str | None) -> None:
    if storage is not None and storage not in STORAGE_DTYPES:
        raise ConfigError(f"storage must be one of {', '.join(STORAGE_DTYPES)}, got {storage!r}")


def _storage_of(folder: Path) -> str | None:
    provenance = read_provenance(folder)
    if provenance and provenance.get("storage"):
        return provenance["storage"]
    try:
        entries, _ = read_safetensors_header(folder / WEIGHTS_NAME)
    except WeightsError:
        return None
    kinds = {dtype for dtype, *_ in entries.values()}
    return {frozenset({"F32"}): "float32", frozenset({"F16"}): "float16"}.get(frozenset(kinds))


def _say(message: str, enabled: bool = True) -> None:
    if enabled:
        print(message, file=sys.stderr)


class _Unreachable(Exception):
    """The Hub could not be asked (offline mode, no connection, server error): try local copies."""


def _not_available(name: str, repo_id: str, revision: str | None, folder: Path, reason: str) -> ModelNotFoundError:
    revision_text = f" at revision {revision!r}" if revision else ""
    return ModelNotFoundError(
        f"model {name!r}{revision_text} is not available locally (not in {folder}, nor in the Hugging Face "
        f"cache {hub_cache_dir()}) and {reason}. Connect and run `npgpt download {name}` once, or place the "
        f"files by hand: download config.json, model.safetensors, vocab.json and merges.txt from "
        f"{hub_endpoint()}/{repo_id}/tree/{revision or 'main'} on another machine and copy them into {folder}/"
    )


# ---- the Hugging Face cache, read without huggingface_hub ----------------------------------------


def _cached_snapshot(repo_id: str, revision: str | None) -> tuple[Path, str, str] | None:
    """(snapshot folder, repo id it was found under, commit) of a complete cached snapshot, or None.

    Complete means config.json and every weights file are there; the cache layout is
    models--{owner}--{name}/refs/{revision} (a commit hash) and snapshots/{commit}/{file}.
    """
    revision = revision or "main"
    for candidate in _cache_candidates(repo_id):
        storage = _repo_folder(candidate)
        commit = revision if _GIT_SHA1.match(revision) else _read_text(storage / "refs" / revision)
        if not commit:
            continue
        snapshot = storage / "snapshots" / commit
        if (snapshot / CONFIG_NAME).is_file() and _weight_files_of(snapshot) is not None:
            return snapshot, candidate, commit
    return None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _weight_files_of(folder: Path) -> list[str] | None:
    """The safetensors files a model folder's weights are in, if all of them are present."""
    if (folder / WEIGHTS_NAME).is_file():
        return [WEIGHTS_NAME]
    if (folder / INDEX_NAME).is_file():
        shards = _shards_of(folder / INDEX_NAME)
        if shards and all((folder / shard).is_file() for shard in shards):
            return shards
    return None


def _shards_of(index_path: Path) -> list[str]:
    try:
        with open(index_path, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
        return sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise WeightsError(f"{index_path} is not a valid safetensors index (no weight_map); download it again") from None


# ---- fetching from the Hub -----------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repo at a commit, as the Hub lists it: size, and the hashes to check it by."""

    name: str
    size: int | None
    sha256: str | None  # the LFS oid, for files stored with Git LFS (the weights)
    git_sha1: str | None  # the git blob id, for files stored in git itself (config, tokenizer)


def _fetch_or_explain(name, repo_id, revision, folder, progress) -> tuple[Path, str]:
    if is_offline():
        raise _not_available(name, repo_id, revision, folder, "offline mode is on (HF_HUB_OFFLINE=1)")
    try:
        return _fetch(repo_id, revision, progress)
    except _Unreachable as e:
        raise _not_available(name, repo_id, revision, folder, str(e)) from None


def _fetch(repo_id: str, revision: str | None, progress: bool) -> tuple[Path, str]:
    """Download what npgpt needs of ``repo_id`` at ``revision`` into the HF cache: (snapshot, commit)."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from . import __version__

    endpoint = hub_endpoint()
    api = HfApi(endpoint=endpoint, library_name="npgpt", library_version=__version__)
    try:
        info = api.model_info(repo_id, revision=revision, files_metadata=True, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except GatedRepoError:
        raise ModelNotFoundError(
            f"{repo_id} on {endpoint} is gated: accept its terms on {endpoint}/{repo_id} and set HF_TOKEN "
            "to a token of that account"
        ) from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"no model {repo_id!r} on {endpoint}: check the name (Hub ids look like 'owner/name'); if the repo "
            "is private, set HF_TOKEN to a token that can read it"
        ) from None
    except RevisionNotFoundError:
        raise ModelNotFoundError(
            f"{repo_id} on {endpoint} has no revision {revision!r}: use a branch, tag or commit hash it has"
        ) from None
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status is not None and status < 500 and status not in (408, 429):
            raise ModelNotFoundError(f"the Hub at {endpoint} refused to describe {repo_id} ({e})") from None
        raise _Unreachable(f"the Hugging Face Hub at {endpoint} answered with an error ({status})") from None
    except Exception as e:  # connection refused, DNS, timeout, offline mode: all mean "no Hub now"
        if _is_network_error(e):
            raise _Unreachable(f"the Hugging Face Hub at {endpoint} cannot be reached ({type(e).__name__}: {e})") from None
        raise
    commit = info.sha
    if not commit:
        raise ModelNotFoundError(f"{endpoint} did not say which commit {repo_id}@{revision or 'main'} is; is HF_ENDPOINT a Hub?")
    remote = {
        s.rfilename: RemoteFile(
            s.rfilename,
            s.lfs.size if s.lfs else s.size,
            s.lfs.sha256 if s.lfs else None,
            None if s.lfs else s.blob_id,
        )
        for s in info.siblings or []
    }
    snapshot = _repo_folder(repo_id) / "snapshots" / commit
    config_path = _fetch_file(repo_id, commit, remote, CONFIG_NAME, progress)
    GPT2Config.load(config_path)  # refuse a non-GPT-2 before fetching gigabytes of it
    weight_files = _weight_files_to_fetch(repo_id, commit, remote, progress)
    for filename in weight_files + _tokenizer_files_to_fetch(remote):
        _fetch_file(repo_id, commit, remote, filename, progress)
    _write_ref(_repo_folder(repo_id), revision or "main", commit)
    return snapshot, commit


def _is_network_error(e: BaseException) -> bool:
    import httpx2
    from huggingface_hub.errors import OfflineModeIsEnabled

    return isinstance(e, (httpx2.TransportError, OfflineModeIsEnabled, ConnectionError, TimeoutError))


def _weight_files_to_fetch(repo_id: str, commit: str, remote: dict[str, RemoteFile], progress: bool) -> list[str]:
    if WEIGHTS_NAME in remote:
        return [WEIGHTS_NAME]
    if INDEX_NAME in remote:
        index = _fetch_file(repo_id, commit, remote, INDEX_NAME, progress)
        shards = _shards_of(Path(index))
        missing = [s for s in shards if s not in remote]
        if missing:
            raise WeightsError(f"{repo_id}'s {INDEX_NAME} lists shards the repo does not have: {', '.join(missing)}")
        return shards
    pickles = [f for f in PICKLES if f in remote]
    if pickles:
        raise WeightsError(
            f"{repo_id} has its weights only as {pickles[0]}, a Python pickle, and loading a pickle can run "
            "arbitrary code hidden in the file; npgpt reads safetensors only. To convert it once, on a "
            "machine where you trust the repo's author: pip install torch transformers, then "
            f"python -c \"from transformers import GPT2LMHeadModel as M; M.from_pretrained('{repo_id}')"
            f".save_pretrained('{weights_dir() / local_name(repo_id)}')\" (this writes model.safetensors, and "
            f"npgpt.load('{_SHORT_NAMES.get(repo_id, repo_id)}') then finds that folder first). Or ask the author "
            "to add safetensors: the Hub's safetensors/convert Space opens a pull request, which loads with "
            "revision='refs/pr/N'."
        )
    raise WeightsError(f"{repo_id} has no {WEIGHTS_NAME}; npgpt needs GPT-2 weights in safetensors format")


def _tokenizer_files_to_fetch(remote: dict[str, RemoteFile]) -> list[str]:
    for pair in TOKENIZER_PAIRS:
        if all(f in remote for f in pair):
            return list(pair)
    return ["tokenizer.json"] if "tokenizer.json" in remote else []


def _fetch_file(repo_id: str, commit: str, remote: dict[str, RemoteFile], filename: str, progress: bool) -> str:
    """Bring one file of the repo at ``commit`` into the cache (verified) and return its snapshot path."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError

    info = remote.get(filename)
    if info is None:
        raise WeightsError(f"{repo_id}@{commit[:7]} has no {filename}")
    pointer = _repo_folder(repo_id) / "snapshots" / commit / filename
    if not pointer.exists() and info.sha256 is not None:
        _download_blob(repo_id, commit, info, progress)  # large LFS files: resumable, hashed on the fly
    try:
        # For a file already in the cache this only links it into the snapshot (no download).
        path = hf_hub_download(
            repo_id, filename, revision=commit, cache_dir=hub_cache_dir(), endpoint=hub_endpoint(),
            library_name="npgpt", tqdm_class=None if progress else _silent_tqdm(),
        )
    except RemoteEntryNotFoundError:
        raise WeightsError(f"{repo_id}@{commit[:7]} lists {filename} but the server does not have it") from None
    except Exception as e:  # the network went away after the listing, or a transfer came up short
        if isinstance(e, LocalEntryNotFoundError) or _is_network_error(e) or "Consistency check failed" in str(e):
            raise ModelNotFoundError(
                f"downloading {filename} of {repo_id} failed ({type(e).__name__}: {e}); run the same command again"
            ) from None
        raise
    if info.sha256 is None:  # the weights were hashed while downloading; small files are checked here
        verify_file(path, info)
    return path


def _silent_tqdm():
    from tqdm.auto import tqdm

    class SilentTqdm(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return SilentTqdm


def _write_ref(storage: Path, revision: str, commit: str) -> None:
    """Record which commit a branch or tag name pointed at (refs/{revision}), as huggingface_hub does."""
    if revision == commit:
        return
    ref = storage / "refs" / revision
    if _read_text(ref) == commit:
        return
    ref.parent.mkdir(parents=True, exist_ok=True)
    write_text(ref, commit)


def _download_blob(repo_id: str, commit: str, info: RemoteFile, progress: bool) -> None:
    """Download one LFS file into the cache's blobs/<sha256>, resumably, verifying as it goes.

    The lock is huggingface_hub's own for this blob, so it and npgpt never write the same blob at
    once. The partial file, blobs/<sha256>.incomplete, survives an interrupted process; the next
    call asks the server only for the missing bytes (an HTTP Range request).
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import WeakFileLock, build_hf_headers

    from . import __version__

    endpoint = hub_endpoint()
    url = hf_hub_url(repo_id, info.name, revision=commit, endpoint=endpoint)
    headers = build_hf_headers(library_name="npgpt", library_version=__version__)
    try:
        meta = get_hf_file_metadata(url, headers=headers, endpoint=endpoint)
    except Exception as e:
        if _is_network_error(e):
            raise ModelNotFoundError(
                f"cannot reach {endpoint} to download {info.name} of {repo_id} ({type(e).__name__}: {e}); "
                "run the same command again when the network is back"
            ) from None
        raise
    sha256 = info.sha256
    if meta.etag != sha256 or (meta.size is not None and info.size is not None and meta.size != info.size):
        raise WeightsError(
            f"the Hub describes {repo_id}/{info.name} two ways (sha256 {sha256} and size {info.size} in its "
            f"listing, etag {meta.etag} and size {meta.size} when asked for the file); try again later"
        )
    size = info.size if info.size is not None else meta.size
    storage = _repo_folder(repo_id)
    blob = storage / "blobs" / sha256
    lock = hub_cache_dir() / ".locks" / storage.name / f"{sha256}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    blob.parent.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(lock):
        if blob.exists():
            return  # another process finished it while this one waited for the lock
        if size is not None:
            _check_disk_space(blob.parent, size, f"{info.name} of {repo_id}")
        if urlsplit_netloc(meta.location) != urlsplit_netloc(url):
            headers.pop("authorization", None)  # never send a Hub token to a CDN
        partial = blob.with_name(f"{sha256}.incomplete")
        _transfer(meta.location, partial, size, sha256, headers, f"{info.name}", progress)
        os.replace(partial, blob)


def urlsplit_netloc(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).netloc


def _check_disk_space(folder: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise WeightsError(f"{what} needs {human_size(needed)} but only {human_size(free)} is free in {folder}; free some space")


def _transfer(url: str, partial: Path, size: int | None, sha256: str, headers: dict, desc: str, progress: bool) -> None:
    """GET ``url`` into ``partial``, continuing what is already there; check size and sha256 at the end."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import get_session, hf_raise_for_status
    from tqdm.auto import tqdm

    hasher = hashlib.sha256()
    have = partial.stat().st_size if partial.exists() else 0
    if size is not None and have > size:
        partial.unlink()
        have = 0
    if have:
        with open(partial, "rb") as f:  # the sha256 covers the whole file, the old part included
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                hasher.update(chunk)
    bar = tqdm(total=size, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
               file=sys.stderr, disable=not progress, leave=True)
    failures = 0
    try:
        while size is None or have < size:
            request_headers = {**headers, "Accept-Encoding": "identity"}
            if have:
                request_headers["Range"] = f"bytes={have}-"
            before = have
            try:
                with get_session().stream("GET", url, headers=request_headers, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT) as r:
                    hf_raise_for_status(r)
                    if have and r.status_code != 206:  # the server ignored the Range: start over
                        hasher, have = hashlib.sha256(), 0
                        bar.reset(total=size)
                    with open(partial, "ab" if have else "wb") as f:
                        for chunk in r.iter_bytes():  # as received: a cut keeps every byte that came
                            f.write(chunk)
                            hasher.update(chunk)
                            have += len(chunk)
                            bar.update(len(chunk))
                            if size is not None and have > size:
                                break
                if size is None:
                    break
                if have > size:
                    partial.unlink()
                    raise WeightsError(f"the server sent more than the {size} bytes of {desc}; the download was deleted, run again")
                if have < size:
                    raise httpx2.RemoteProtocolError(f"the connection ended after {have} of {size} bytes")
            except (httpx2.TransportError, OSError) as e:
                status = getattr(getattr(e, "response", None), "status_code", None)
                if isinstance(e, HfHubHTTPError) and status is not None and status < 500 and status not in (408, 429):
                    raise ModelNotFoundError(f"the server refused to send {desc} ({status}: {e})") from None
                if isinstance(e, OSError) and not isinstance(e, HfHubHTTPError) and not _is_network_error(e):
                    raise  # a local problem (disk full, permissions), not the network
                failures = 1 if have > before else failures + 1
                if failures >= _MAX_TRIES:
                    raise ModelNotFoundError(
                        f"downloading {desc} failed ({type(e).__name__}: {e}); the {human_size(have)} received so far "
                        f"are kept in {partial}: run the same command again to resume"
                    ) from None
                time.sleep(min(0.25 * 2 ** (failures - 1), 4.0))
    finally:
        bar.close()
    digest = hasher.hexdigest()
    if digest != sha256:
        partial.unlink(missing_ok=True)
        raise WeightsError(
            f"the download of {desc} is corrupt: its sha256 is {digest}, the Hub says {sha256}. The file was "
            "deleted; run the same command again to download it afresh"
        )
    _VERIFIED.add(str(partial.with_name(sha256).resolve()))


def verify_file(path: str | os.PathLike, expected: RemoteFile | None = None) -> None:
    """Check a cached file against the Hub's size and hash; delete it (and raise) if it does not match.

    Without ``expected``, the blob's own name in the cache is the hash (sha256 for LFS files, the
    git blob id for the others), so files cached by anyone can be checked offline.
    """
    real = Path(os.path.realpath(path))
    if str(real) in _VERIFIED:
        return
    name = real.name
    size = real.stat().st_size
    expected_size = expected.size if expected else None
    sha256 = expected.sha256 if expected else (name if _SHA256.match(name) else None)
    git_sha1 = expected.git_sha1 if expected else (name if _GIT_SHA1.match(name) else None)
    problem = None
    if expected_size is not None and size != expected_size:
        problem = f"it has {size} bytes, the Hub says {expected_size}"
    elif sha256 is not None:
        digest = _hash_file(real, hashlib.sha256())
        if digest != sha256:
            problem = f"its sha256 is {digest}, expected {sha256}"
    elif git_sha1 is not None:
        digest = _hash_file(real, hashlib.sha1(f"blob {size}\0".encode()))
        if digest != git_sha1:
            problem = f"its git blob id is {digest}, expected {git_sha1}"
    if problem:
        for p in {Path(path), real}:
            p.unlink(missing_ok=True)
        raise WeightsError(
            f"{Path(path).name} in the Hugging Face cache is corrupt: {problem}. It was deleted; run the "
            "same command again to download it afresh"
        )
    _VERIFIED.add(str(real))


def _hash_file(path: Path, hasher) -> str:
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


# ---- conversion into an npgpt model folder -------------------------------------------------------


def _provenance_for(repo_id: str, revision: str | None, commit: str, snapshot: Path) -> dict:
    return {"repo_id": repo_id, "revision": revision or "main", "commit": commit, "snapshot": str(snapshot)}


def convert(
    source: str | os.PathLike,
    folder: str | os.PathLike,
    *,
    storage: str = "float32",
    provenance: dict | None = None,
    progress: bool = True,
    force: bool = False,
    verify: bool = False,
) -> Path:
    """Write a self-contained npgpt model folder from a Hugging Face model folder (or cache snapshot).

    ``source`` holds config.json, model.safetensors (or shards and their index, in float32, float16
    or bfloat16, with or without the ``transformer.`` prefix) and tokenizer files. ``folder`` gets
    config.json, one model.safetensors in ``storage`` ("float32" or "float16") with the canonical
    names, vocab.json + merges.txt (when the source has a tokenizer) and npgpt.json. With
    ``verify``, source files in the cache are checked against their hashes first.
    """
    _check_storage(storage)
    source, folder = Path(source), Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    provenance = {**(provenance or {"source": str(source)}), "storage": storage}
    from filelock import FileLock  # a dependency of huggingface_hub

    with FileLock(str(folder.parent / f".{folder.name}.lock")):
        done = read_provenance(folder)
        if not force and done and _same_conversion(done, provenance) and (folder / WEIGHTS_NAME).is_file():
            return folder  # another process converted it while this one waited for the lock
        if done is None and folder.exists() and any(folder.iterdir()):
            raise WeightsError(
                f"{folder} exists and is not a model folder npgpt converted (no {PROVENANCE_NAME}); npgpt will "
                "not replace it: move it away or choose another folder"
            )
        tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            provenance["files"] = _convert_into(source, tmp, storage, progress, verify, provenance)
            write_json(tmp / PROVENANCE_NAME, provenance)
            _replace_folder(tmp, folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _same_conversion(a: dict, b: dict) -> bool:
    keys = ("repo_id", "commit", "storage", "source")
    return all(a.get(k) == b.get(k) for k in keys)


def _convert_into(source: Path, out: Path, storage: str, progress: bool, verify: bool, provenance: dict) -> dict:
    config = GPT2Config.load(source / CONFIG_NAME)
    weight_files = _weight_files_of(source)
    if weight_files is None:
        if any((source / p).exists() for p in PICKLES):
            raise WeightsError(
                f"{source} has only pytorch_model.bin, a pickle that can run arbitrary code when loaded; "
                "npgpt reads safetensors only"
            )
        raise WeightsError(f"{source} has no {WEIGHTS_NAME}")
    if verify:
        for name in [CONFIG_NAME, *weight_files]:
            if (source / name).is_symlink():  # a cache snapshot: the blob's name is its hash
                verify_file(source / name)
    tensors, bf16 = {}, set()
    for name in weight_files:
        entries, _ = read_safetensors_header(source / name)
        bf16 |= {k for k, (dtype, *_) in entries.items() if dtype == "BF16"}
        tensors.update(open_safetensors(source / name, widen_bf16=False))
    flat, bf16 = _checkpoint_names(tensors, bf16, config, str(source))
    ordered = {f"transformer.{k}": flat[k] for k in expected_shapes(config)}
    dtype = np.dtype(STORAGE_DTYPES[storage])
    total = sum(int(np.prod(v.shape)) for v in ordered.values()) * dtype.itemsize
    _check_disk_space(out, total, f"converting {provenance.get('repo_id', source)}")
    from tqdm.auto import tqdm

    label = provenance.get("repo_id") or source.name
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"converting {label} ({storage})",
              file=sys.stderr, disable=not progress) as bar:
        write_safetensors(
            out / WEIGHTS_NAME, ordered, dtype=dtype, metadata={"format": "pt"},
            on_tensor=lambda _name, nbytes: bar.update(nbytes),
            prepare=lambda name, value: bf16_to_f32(value) if name.removeprefix("transformer.") in bf16 else value,
        )
    hf = config.to_hf_dict()
    hf["torch_dtype"] = storage
    write_json(out / CONFIG_NAME, hf)
    _copy_tokenizer(source, out)
    files = {}
    for name in weight_files:
        blob = Path(os.path.realpath(source / name)).name
        files[name] = {"size": os.path.getsize(source / name), **({"sha256": blob} if _SHA256.match(blob) else {})}
    return files


def _checkpoint_names(tensors: dict, bf16: set, config: GPT2Config, source: str) -> tuple[dict, set]:
    """The checkpoint's tensors under their bare names (h.0.ln_1.weight), with every quirk handled.

    Also returns the bare names of the tensors stored as bfloat16 (still raw uint16 here).
    """
    flat, lm_head, bf16_bare = {}, None, set()
    for name, value in tensors.items():
        bare = name.removeprefix("transformer.")
        if _IGNORED.match(bare):
            continue
        if bare == "lm_head.weight":
            lm_head = (name, value)
            continue
        if name in bf16:
            bf16_bare.add(bare)
        flat[bare] = value
    check_flat(flat, config, source)
    if lm_head is not None:
        name, value = lm_head
        wte = flat["wte.weight"]
        same = value.shape == wte.shape and np.array_equal(
            bf16_to_f32(value) if name in bf16 else value, bf16_to_f32(wte) if "wte.weight" in bf16_bare else wte
        )
        if not same:
            raise WeightsError(f"{source}: lm_head.weight differs from wte.weight; npgpt supports GPT-2's tied LM head only")
    return flat, bf16_bare


def _copy_tokenizer(source: Path, out: Path) -> None:
    for vocab, merges in TOKENIZER_PAIRS:
        if (source / vocab).is_file() and (source / merges).is_file():
            shutil.copyfile(source / vocab, out / "vocab.json")
            shutil.copyfile(source / merges, out / "merges.txt")
            return
    if (source / "tokenizer.json").is_file():
        files = tokenizer_files_from_json(source / "tokenizer.json")
        if files is not None:
            (out / "vocab.json").write_text(files[0], encoding="utf-8")
            (out / "merges.txt").write_text(files[1], encoding="utf-8")


def tokenizer_files_from_json(path: str | os.PathLike) -> tuple[str, str] | None:
    """vocab.json and merges.txt text from a byte-level BPE ``tokenizer.json``; None for other kinds.

    Hugging Face's fast-tokenizer file holds the same vocabulary and merges; merges are either
    "a b" strings (older files) or ["a", "b"] pairs (newer ones).
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        model = data["model"]
        if model.get("type") != "BPE" or (data.get("pre_tokenizer") or {}).get("type") != "ByteLevel":
            return None
        vocab = dict(model["vocab"])
        for added in data.get("added_tokens") or []:
            vocab.setdefault(added["content"], added["id"])
        merges = [m.split(" ") if isinstance(m, str) else m for m in model["merges"]]
        vocab = dict(sorted(vocab.items(), key=lambda item: item[1]))
        return json.dumps(vocab), "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _replace_folder(new: Path, folder: Path) -> None:
    """Put ``new`` where ``folder`` is: two renames, so readers see the old or the new folder, whole."""
    old = None
    if folder.exists():
        old = folder.parent / f".{folder.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(folder, old)
    os.rename(new, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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


def list_models() -> list[LocalModel]:
    """Model folders in the weights folder, then GPT-2 snapshots in the Hugging Face cache."""
    found = []
    root = weights_dir()
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            if folder.name.startswith(".") or not (folder / CONFIG_NAME).is_file():
                continue
            provenance = read_provenance(folder) or {}
            source = f"{provenance['repo_id']}@{provenance.get('commit', '?')[:7]}" if "repo_id" in provenance else "local"
            found.append(LocalModel(folder.name, folder, _n_params(folder), _storage_of(folder),
                                    _folder_size(folder), source, "folder"))
    for name in BUNDLED:
        folder = _bundled(name, None)
        if folder is not None and name not in {model.name for model in found}:
            found.append(LocalModel(name, folder, _n_params(folder), _storage_of(folder), _folder_size(folder),
                                    "bundled with npgpt", "folder"))
    cache = hub_cache_dir()
    if cache.is_dir():
        for storage in sorted(cache.glob("models--*")):
            repo_id = storage.name[len("models--"):].replace("--", "/")
            refs = {}
            for ref in (storage / "refs").rglob("*") if (storage / "refs").is_dir() else []:
                if ref.is_file():
                    refs.setdefault(_read_text(ref), ref.relative_to(storage / "refs").as_posix())
            for snapshot in sorted((storage / "snapshots").glob("*")) if (storage / "snapshots").is_dir() else []:
                if _weight_files_of(snapshot) is None or not _is_gpt2(snapshot / CONFIG_NAME):
                    continue
                revision = refs.get(snapshot.name)
                name = _SHORT_NAMES.get(repo_id, repo_id) if revision == "main" else f"{repo_id}@{revision or snapshot.name[:7]}"
                found.append(LocalModel(name, snapshot, _n_params(snapshot), None, _folder_size(snapshot),
                                        f"{repo_id}@{snapshot.name[:7]}", "hf-cache"))
    return found


def _is_gpt2(config_path: Path) -> bool:
    try:
        GPT2Config.load(config_path)
        return True
    except (ConfigError, OSError):
        return False


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


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
