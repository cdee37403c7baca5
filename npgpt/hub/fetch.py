"""Fetching a GPT-2 from the Hub into the Hugging Face cache, through huggingface_hub: only what npgpt reads.

One call, ``fetch(repo_id, revision)``, asks the Hub (or the mirror in ``HF_ENDPOINT``, with
``HF_TOKEN`` for private and gated repos) what the repo holds at that revision, then brings into
the cache, file by file:

- ``config.json`` first, which must describe a GPT-2, so a wrong repo costs kilobytes, not gigabytes;
- the safetensors weights (one file, or the shards an index lists); a repo with only a pickled
  ``pytorch_model.bin`` is refused before anything is downloaded, and nothing else is fetched;
- the tokenizer files (``vocab.json`` + ``merges.txt``, else ``tokenizer.json``).

Each transfer is huggingface_hub's ``hf_hub_download``, the client every Hugging Face user runs
against the real Hub and maintained against it: the Hub's redirects (a relative 307 to
``/api/resolve-cache/...`` for small files, possibly gzip-encoded without a length; a 302 carrying
``X-Linked-Etag``, ``X-Linked-Size``, ``X-Repo-Commit`` and ``X-Xet-Hash`` to a signed URL for the
weights), Xet storage (when hf_xet is installed and ``HF_HUB_DISABLE_XET`` is not set), its lock
per blob (two processes never write one file), its progress bars, and a retry with an HTTP Range
request when the network cuts a transfer. npgpt adds around it:

- the listing checked first (pickle-only repos refused, only config/safetensors/tokenizer files);
- a disk-space check before the weights (a partial file already there counts: see ``_make_room``);
- a signed link that expired before a retry (the storage answers 403): ``hf_hub_download`` again,
  which asks the Hub for a fresh link; network errors are retried a few times the same way;
- every file checked against the listing's sha256 (weights) or git blob id (small files);
- one-line errors that never print a signed URL (``_safe``).

Leaves out: resuming one file across processes. huggingface_hub 2.4 writes each transfer to a
fresh temporary file and deletes it when the transfer fails, so a download interrupted by Ctrl-C
starts that file again (a cut within one process is resumed by huggingface_hub itself).
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .._files import check_disk_space
from ..config import GPT2Config
from ..errors import ModelNotFoundError, WeightsError
from ..weights import CONFIG_NAME, PICKLES, WEIGHTS_NAME, pickle_refused
from .cache import (
    INDEX_NAME,
    SHA256_PATTERN,
    TOKENIZER_PAIRS,
    hub_cache_dir,
    repo_folder,
    shards_of,
    verify_file,
    write_ref,
)
from .names import SHORT_NAMES, local_folder

DEFAULT_ENDPOINT = "https://huggingface.co"
_MAX_TRIES = 4  # hf_hub_download calls for one file before npgpt gives up (each one retries cuts itself)


def hub_endpoint() -> str:
    """The Hub to ask: ``HF_ENDPOINT`` (a mirror) if set now, else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def is_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) set now, or huggingface_hub already in offline mode."""
    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    if flag.strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return True
    constants = sys.modules.get("huggingface_hub.constants")
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _short(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


class Unreachable(Exception):
    """The Hub could not be asked (offline mode, no connection, server error): try local copies."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repo at a commit, as the Hub lists it: size, and the hashes to check it by."""

    name: str
    size: int | None
    sha256: str | None  # the LFS oid, for files stored with Git LFS (the weights)
    git_sha1: str | None  # the git blob id, for files stored in git itself (config, tokenizer)


def check_remote_file(file: RemoteFile, repo_id: str) -> None:
    """Refuse a listing whose hashes or sizes could not have come from a Hub: the sha256 names a
    file in the cache, so it must be 64 hex digits before it goes anywhere near a path."""
    if file.sha256 is not None and not (isinstance(file.sha256, str) and SHA256_PATTERN.match(file.sha256)):
        raise WeightsError(
            f"{hub_endpoint()} lists {repo_id}/{file.name} with the sha256 {str(file.sha256)[:80]!r}, which is not "
            "64 hex digits; this server is not a Hugging Face Hub (check HF_ENDPOINT)"
        )
    if file.size is not None and not (isinstance(file.size, int) and file.size >= 0):
        raise WeightsError(f"{hub_endpoint()} lists {repo_id}/{file.name} with the size {file.size!r}; check HF_ENDPOINT")


def fetch(repo_id: str, revision: str | None, progress: bool) -> tuple[Path, str]:
    """Download what npgpt needs of ``repo_id`` at ``revision`` into the HF cache: (snapshot, commit).

    Raises ``Unreachable`` when the Hub cannot be asked, so that the caller can try local copies.
    """
    if is_offline():
        raise Unreachable("offline mode is on (HF_HUB_OFFLINE=1)")
    info = _model_info(repo_id, revision)
    commit = info.sha
    if not commit:
        raise ModelNotFoundError(f"{hub_endpoint()} did not say which commit {repo_id}@{revision or 'main'} is; is HF_ENDPOINT a Hub?")
    remote = {
        s.rfilename: RemoteFile(
            s.rfilename,
            s.lfs.size if s.lfs else s.size,
            s.lfs.sha256 if s.lfs else None,
            None if s.lfs else s.blob_id,
        )
        for s in info.siblings or []
    }
    for file in remote.values():
        check_remote_file(file, repo_id)
    config_path = _fetch_file(repo_id, commit, remote, CONFIG_NAME, progress)
    GPT2Config.load(config_path)  # refuse a non-GPT-2 before fetching gigabytes of it
    weight_files = _weight_files_to_fetch(repo_id, commit, remote, progress)
    for filename in weight_files + _tokenizer_files_to_fetch(remote):
        _fetch_file(repo_id, commit, remote, filename, progress)
    write_ref(repo_id, revision or "main", commit)
    return repo_folder(repo_id) / "snapshots" / commit, commit


def _model_info(repo_id: str, revision: str | None):
    """The Hub's description of the repo at ``revision``, every Hub error turned into a clear one."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    from ..version import __version__

    endpoint = hub_endpoint()
    api = HfApi(endpoint=endpoint, library_name="npgpt", library_version=__version__)
    try:
        return api.model_info(repo_id, revision=revision, files_metadata=True, timeout=constants.HF_HUB_ETAG_TIMEOUT)
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
            raise ModelNotFoundError(f"the Hub at {endpoint} refused to describe {repo_id} ({_safe(_short(e))})") from None
        raise Unreachable(f"the Hugging Face Hub at {endpoint} answered with an error ({status})") from None
    except Exception as e:  # connection refused, DNS, timeout, offline mode: all mean "no Hub now"
        if _is_network_error(e):
            raise Unreachable(f"the Hugging Face Hub at {endpoint} cannot be reached ({_safe(_short(e))})") from None
        raise


def _is_network_error(e: BaseException) -> bool:
    import httpx2
    from huggingface_hub.errors import OfflineModeIsEnabled

    return isinstance(e, (httpx2.TransportError, OfflineModeIsEnabled, ConnectionError, TimeoutError))


def _weight_files_to_fetch(repo_id: str, commit: str, remote: dict[str, RemoteFile], progress: bool) -> list[str]:
    if WEIGHTS_NAME in remote:
        return [WEIGHTS_NAME]
    if INDEX_NAME in remote:
        index = _fetch_file(repo_id, commit, remote, INDEX_NAME, progress)
        shards = shards_of(Path(index))
        missing = [s for s in shards if s not in remote]
        if missing:
            raise WeightsError(f"{repo_id}'s {INDEX_NAME} lists shards the repo does not have: {', '.join(missing)}")
        return shards
    pickles = [f for f in PICKLES if f in remote]
    if pickles:
        raise pickle_refused(
            repo_id, pickles[0], str(local_folder(repo_id)),
            more=f", and npgpt.load('{SHORT_NAMES.get(repo_id, repo_id)}') then finds that folder first. Or ask the "
            "author to add safetensors: the Hub's safetensors/convert Space opens a pull request, which loads with "
            "revision='refs/pr/N'.",
        )
    raise WeightsError(f"{repo_id} has no {WEIGHTS_NAME}; npgpt needs GPT-2 weights in safetensors format")


def _tokenizer_files_to_fetch(remote: dict[str, RemoteFile]) -> list[str]:
    for pair in TOKENIZER_PAIRS:
        if all(f in remote for f in pair):
            return list(pair)
    return ["tokenizer.json"] if "tokenizer.json" in remote else []


def _fetch_file(repo_id: str, commit: str, remote: dict[str, RemoteFile], filename: str, progress: bool) -> str:
    """Bring one file of the repo at ``commit`` into the cache through ``hf_hub_download``, check it
    against the listing, and return its snapshot path."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    from ..version import __version__

    info = remote.get(filename)
    if info is None:
        raise WeightsError(f"{repo_id}@{commit[:7]} has no {filename}")
    if info.sha256 is not None:
        _make_room(repo_id, info)
    for attempt in range(1, _MAX_TRIES + 1):
        try:
            # For a file already in the cache this only returns its path (no request at all).
            path = hf_hub_download(
                repo_id, filename, revision=commit, cache_dir=hub_cache_dir(), endpoint=hub_endpoint(),
                library_name="npgpt", library_version=__version__, tqdm_class=_tqdm_class(progress),
            )
            break
        except RemoteEntryNotFoundError:
            raise WeightsError(f"{repo_id}@{commit[:7]} lists {filename} but the server does not have it") from None
        except Exception as e:
            if attempt == _MAX_TRIES or not _worth_retrying(e):
                raise _download_error(e, filename, repo_id) from None
            _pause(min(0.25 * 2 ** (attempt - 1), 4.0))  # then ask the Hub again: a fresh link, a fresh transfer
    verify_file(path, size=info.size, sha256=info.sha256, git_sha1=info.git_sha1)
    if info.sha256 is not None:
        Path(path).resolve().with_name(f"{info.sha256}.incomplete").unlink(missing_ok=True)  # see _make_room
    return path


def _pause(seconds: float) -> None:
    time.sleep(seconds)


def _worth_retrying(e: BaseException) -> bool:
    """A failure that asking again can cure: the network, the Hub busy (5xx, 408, 429), a signed
    link that expired (401/403 from the storage host, not the Hub), a transfer that came up short."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    if isinstance(e, HfHubHTTPError):
        status = getattr(getattr(e, "response", None), "status_code", None)
        return status is None or status >= 500 or status in (408, 429) or (status in (401, 403) and _from_storage(e))
    if isinstance(e, LocalEntryNotFoundError):  # the HEAD request failed: a network error, or the Hub down
        return isinstance(e.__cause__, Exception) and (_is_network_error(e.__cause__) or _worth_retrying(e.__cause__))
    return _is_network_error(e) or "Consistency check failed" in str(e)


def _from_storage(e: BaseException) -> bool:
    """Whether an HTTP error came from a host other than the Hub's (the signed storage URL)."""
    from urllib.parse import urlsplit

    try:
        url = str(e.response.request.url)
    except (AttributeError, RuntimeError):
        return False
    return urlsplit(url).netloc != urlsplit(hub_endpoint()).netloc or "/resolve/" not in urlsplit(url).path


def _download_error(e: BaseException, filename: str, repo_id: str) -> Exception:
    """The one-line error for a transfer that failed for good; never the signed URL."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    if isinstance(e, OSError) and not isinstance(e, (HfHubHTTPError, LocalEntryNotFoundError)) \
            and not _is_network_error(e) and "Consistency check failed" not in str(e):
        return e  # a local problem (disk full, permissions), not the network: the CLI prints it as one line
    cause = e.__cause__ if isinstance(e, LocalEntryNotFoundError) and e.__cause__ is not None else e
    status = getattr(getattr(cause, "response", None), "status_code", None)
    if isinstance(cause, HfHubHTTPError) and status is not None:
        expired = status in (401, 403) and _from_storage(cause)
        why = f"HTTP {status}" + (" from the storage server: the download link expired or was refused" if expired else "")
    else:
        why = _safe(_short(cause))
    return ModelNotFoundError(
        f"downloading {filename} of {repo_id} from {hub_endpoint()} failed ({why}); run the same command again "
        "(later, if the Hub is busy)"
    )


def _safe(text: str) -> str:
    """``text`` with the query string of every URL in it removed (signed URLs carry their signature there)."""
    return re.sub(r"(https?://[^\s?'\"<>]*)\?[^\s'\"<>]*", r"\1?...", text)


def _make_room(repo_id: str, info: RemoteFile) -> None:
    """Before the weights: refuse early, in one line, when the disk cannot hold them.

    The bytes of a partial file already there (``blobs/<sha256>.incomplete``, left by an earlier
    npgpt or huggingface_hub) count as room: huggingface_hub 2.4 no longer resumes such a file, so
    it is deleted here, under huggingface_hub's own lock for that blob, and its space is given back.
    """
    from huggingface_hub.utils import WeakFileLock

    storage = repo_folder(repo_id)
    blob = storage / "blobs" / info.sha256
    if blob.exists() or info.size is None:
        return
    blob.parent.mkdir(parents=True, exist_ok=True)
    partial = blob.with_name(f"{info.sha256}.incomplete")
    if not partial.exists():  # the usual case: no lock taken (another process may hold it, downloading)
        check_disk_space(blob.parent, info.size, f"{info.name} of {repo_id}")
        return
    lock = hub_cache_dir() / ".locks" / storage.name / f"{info.sha256}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(lock):
        have = partial.stat().st_size if partial.exists() else 0
        check_disk_space(blob.parent, info.size - min(have, info.size), f"{info.name} of {repo_id}")
        partial.unlink(missing_ok=True)


def _tqdm_class(progress: bool):
    """Progress bars on stderr, as every npgpt command shows them (huggingface_hub's own show only on a
    terminal); none with ``progress=False`` or ``HF_HUB_DISABLE_PROGRESS_BARS=1``."""
    from huggingface_hub.utils import are_progress_bars_disabled
    from tqdm.auto import tqdm

    silent = not progress or are_progress_bars_disabled()

    class NpgptTqdm(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = silent
            kwargs.setdefault("file", sys.stderr)
            super().__init__(*args, **kwargs)

    return NpgptTqdm
