"""Fetching a GPT-2 from the Hub into the Hugging Face cache: only what npgpt reads, verified.

One call, ``fetch(repo_id, revision)``, asks the Hub (or the mirror in ``HF_ENDPOINT``, with
``HF_TOKEN`` for private and gated repos) what the repo holds at that revision, then brings into
the cache, file by file:

- ``config.json`` first, which must describe a GPT-2, so a wrong repo costs kilobytes, not gigabytes;
- the safetensors weights (one file, or the shards an index lists); a repo with only a pickled
  ``pytorch_model.bin`` is refused before anything is downloaded;
- the tokenizer files (``vocab.json`` + ``merges.txt``, else ``tokenizer.json``).

The weights go to ``blobs/<sha256>.incomplete`` under huggingface_hub's own lock for that blob (so
two processes never write one file). A transfer the server cuts is resumed with an HTTP Range
request; an interrupted process leaves the partial file, and the next run continues it. The
sha256 is computed as the bytes arrive and must equal the Hub's (the LFS oid) before the file is
renamed to its final name; a mismatch deletes the file. Small files are fetched by
``hf_hub_download`` and checked against their git blob id. Progress bars go to stderr.

Everything that speaks HTTP is in this module, so that it can be replaced as one piece.

Leaves out: Xet transfers (files come over plain HTTP, which the Hub and its mirrors serve for
every file; huggingface_hub itself would use hf-xet when installed).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .._files import check_disk_space, human_size
from ..config import GPT2Config
from ..errors import ModelNotFoundError, WeightsError
from ..weights import CONFIG_NAME, PICKLES, WEIGHTS_NAME, pickle_refused
from .cache import (
    CHUNK,
    SHA256_PATTERN,
    INDEX_NAME,
    TOKENIZER_PAIRS,
    hub_cache_dir,
    mark_verified,
    repo_folder,
    shards_of,
    verify_file,
    write_ref,
)
from .names import SHORT_NAMES, local_folder

DEFAULT_ENDPOINT = "https://huggingface.co"
_MAX_TRIES = 6  # consecutive failed attempts (no new bytes) before a transfer gives up


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
            raise ModelNotFoundError(f"the Hub at {endpoint} refused to describe {repo_id} ({e})") from None
        raise Unreachable(f"the Hugging Face Hub at {endpoint} answered with an error ({status})") from None
    except Exception as e:  # connection refused, DNS, timeout, offline mode: all mean "no Hub now"
        if _is_network_error(e):
            raise Unreachable(f"the Hugging Face Hub at {endpoint} cannot be reached ({type(e).__name__}: {e})") from None
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
    """Bring one file of the repo at ``commit`` into the cache (verified) and return its snapshot path."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError

    info = remote.get(filename)
    if info is None:
        raise WeightsError(f"{repo_id}@{commit[:7]} has no {filename}")
    pointer = repo_folder(repo_id) / "snapshots" / commit / filename
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
        verify_file(path, size=info.size, sha256=info.sha256, git_sha1=info.git_sha1)
    return path


def _silent_tqdm():
    from tqdm.auto import tqdm

    class SilentTqdm(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return SilentTqdm


# ---- one large file, resumable, hashed as it arrives ---------------------------------------------


def _download_blob(repo_id: str, commit: str, info: RemoteFile, progress: bool) -> None:
    """Download one LFS file into the cache's blobs/<sha256>, resumably, verifying as it goes.

    The lock is huggingface_hub's own for this blob, so it and npgpt never write the same blob at
    once. The partial file, blobs/<sha256>.incomplete, survives an interrupted process; the next
    call asks the server only for the missing bytes (an HTTP Range request).
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import WeakFileLock, build_hf_headers

    from ..version import __version__

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
        from huggingface_hub.errors import HfHubHTTPError

        if isinstance(e, HfHubHTTPError):  # a 5xx, or a mirror that lists a file it then will not describe
            raise ModelNotFoundError(
                f"{endpoint} could not describe {info.name} of {repo_id} ({_short(e)}); run the same command again later"
            ) from None
        raise
    sha256 = info.sha256
    if meta.etag != sha256 or (meta.size is not None and info.size is not None and meta.size != info.size):
        raise WeightsError(
            f"the Hub describes {repo_id}/{info.name} two ways (sha256 {sha256} and size {info.size} in its "
            f"listing, etag {meta.etag} and size {meta.size} when asked for the file); try again later"
        )
    size = info.size if info.size is not None else meta.size
    storage = repo_folder(repo_id)
    blob = storage / "blobs" / sha256
    lock = hub_cache_dir() / ".locks" / storage.name / f"{sha256}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    blob.parent.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(lock):
        if blob.exists():
            return  # another process finished it while this one waited for the lock
        partial = blob.with_name(f"{sha256}.incomplete")
        if size is not None:  # the bytes already downloaded count: a download stopped by a full disk resumes
            have = partial.stat().st_size if partial.exists() else 0
            check_disk_space(blob.parent, size - min(have, size), f"the rest of {info.name} of {repo_id}")
        if _netloc(meta.location) != _netloc(url):
            headers.pop("authorization", None)  # never send a Hub token to a CDN
        _transfer(meta.location, partial, size, sha256, headers, f"{info.name}", progress)
        os.replace(partial, blob)


def _netloc(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).netloc


def _transfer(url: str, partial: Path, size: int | None, sha256: str, headers: dict, desc: str, progress: bool) -> None:
    """GET ``url`` into ``partial``, continuing what is already there; check size and sha256 at the end."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session, hf_raise_for_status
    from tqdm.auto import tqdm

    hasher, have = _resume(partial, size)
    bar = tqdm(total=size, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
               file=sys.stderr, disable=not progress, leave=True)
    failures = 0
    try:
        while size is None or have < size:
            request_headers = {**headers, "Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
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
                failures = _retry_or_raise(e, 1 if have > before else failures + 1, desc, partial, have)
    finally:
        bar.close()
    digest = hasher.hexdigest()
    if digest != sha256:
        partial.unlink(missing_ok=True)
        raise WeightsError(
            f"the download of {desc} is corrupt: its sha256 is {digest}, the Hub says {sha256}. The file was "
            "deleted; run the same command again to download it afresh"
        )
    mark_verified(partial.with_name(sha256))


def _resume(partial: Path, size: int | None) -> tuple[object, int]:
    """(sha256 hasher fed the bytes already in ``partial``, their count): where a transfer continues."""
    hasher = hashlib.sha256()
    have = partial.stat().st_size if partial.exists() else 0
    if size is not None and have > size:
        partial.unlink()
        return hasher, 0
    if have:
        with open(partial, "rb") as f:  # the sha256 covers the whole file, the old part included
            for chunk in iter(lambda: f.read(CHUNK), b""):
                hasher.update(chunk)
    return hasher, have


def _retry_or_raise(e: BaseException, failures: int, desc: str, partial: Path, have: int) -> int:
    """After a failed GET: raise if retrying cannot help, else wait (backing off) and return ``failures``."""
    from huggingface_hub.errors import HfHubHTTPError

    status = getattr(getattr(e, "response", None), "status_code", None)
    if isinstance(e, HfHubHTTPError) and status is not None and status < 500 and status not in (408, 429):
        raise ModelNotFoundError(f"the server refused to send {desc} ({status}: {e})") from None
    if isinstance(e, OSError) and not isinstance(e, HfHubHTTPError) and not _is_network_error(e):
        raise e  # a local problem (disk full, permissions), not the network
    if failures >= _MAX_TRIES:
        raise ModelNotFoundError(
            f"downloading {desc} failed ({type(e).__name__}: {e}); the {human_size(have)} received so far "
            f"are kept in {partial}: run the same command again to resume"
        ) from None
    time.sleep(min(0.25 * 2 ** (failures - 1), 4.0))
    return failures
