"""Converting a Hugging Face model folder (or cache snapshot) into a self-contained npgpt model folder.

The source holds ``config.json``, ``model.safetensors`` (or shards and their index; float32, float16
or bfloat16; with or without the ``transformer.`` prefix) and tokenizer files. The npgpt folder
gets ``config.json``, one ``model.safetensors`` (the canonical tensor names and order, float32, or
float16 to halve disk use), ``vocab.json`` + ``merges.txt`` and ``npgpt.json`` (its provenance:
repo, revision, commit, storage, the source files' sizes and sha256).

The checkpoint's quirks are handled by ``weights.normalize_checkpoint``, the same function that
loads a folder; this module only streams the result into one file, a tensor at a time (bfloat16 is
widened one tensor at a time too), so converting gpt2-xl never holds two copies of it in memory.

The folder is built in a temporary folder next to the destination and renamed into place, under a
lock file, so a reader sees the old folder or the complete new one, and two processes converting
at once do the work once. A converted folder loads memory-mapped (``npgpt/weights.py``).

Leaves out: tokenizers other than byte-level BPE; TensorFlow, Flax and GGUF weights.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from pathlib import Path

import numpy as np

from .._files import check_disk_space, replace_folder, write_json
from ..config import GPT2Config
from ..errors import ConfigError, WeightsError
from ..weights import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    add_shard,
    bf16_to_f32,
    normalize_checkpoint,
    open_safetensors,
    read_safetensors_header,
    read_tokenizer_json,
    require_weight_files,
    write_safetensors,
)
from .cache import TOKENIZER_PAIRS, blob_sha256, verify_file

STORAGE_DTYPES = {"float32": np.float32, "float16": np.float16}
PROVENANCE_NAME = "npgpt.json"


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
    check_storage(storage)
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
            replace_folder(tmp, folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return folder


def provenance_for(repo_id: str, revision: str | None, commit: str, snapshot: Path) -> dict:
    """What ``npgpt.json`` records of a folder converted from a Hub snapshot."""
    return {"repo_id": repo_id, "revision": revision or "main", "commit": commit, "snapshot": str(snapshot)}


def read_provenance(folder: str | os.PathLike) -> dict | None:
    """A converted folder's ``npgpt.json`` (where it came from), or None for other folders."""
    try:
        with open(Path(folder) / PROVENANCE_NAME, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_storage(storage: str | None) -> None:
    """Raise ``ConfigError`` unless ``storage`` is None or one of ``STORAGE_DTYPES``."""
    if storage is not None and storage not in STORAGE_DTYPES:
        raise ConfigError(f"storage must be one of {', '.join(STORAGE_DTYPES)}, got {storage!r}")


def storage_of(folder: Path) -> str | None:
    """How a model folder stores its weights ("float32", "float16"), or None if mixed or unreadable."""
    provenance = read_provenance(folder)
    if provenance and provenance.get("storage"):
        return provenance["storage"]
    try:
        entries, _ = read_safetensors_header(folder / WEIGHTS_NAME)
    except WeightsError:
        return None
    kinds = {dtype for dtype, *_ in entries.values()}
    return {frozenset({"F32"}): "float32", frozenset({"F16"}): "float16"}.get(frozenset(kinds))


def _same_conversion(a: dict, b: dict) -> bool:
    keys = ("repo_id", "commit", "storage", "source")
    return all(a.get(k) == b.get(k) for k in keys)


def _convert_into(source: Path, out: Path, storage: str, progress: bool, verify: bool, provenance: dict) -> dict:
    """Write the converted files into the empty folder ``out``; the source weight files' sizes and hashes."""
    config = GPT2Config.load(source / CONFIG_NAME)
    weight_files = require_weight_files(source)
    if verify:
        for name in [CONFIG_NAME, *weight_files]:
            if (source / name).is_symlink():  # a cache snapshot: the blob's name is its hash
                verify_file(source / name)
    tensors, raw_bf16 = {}, set()
    for name in weight_files:  # shards are merged here: one dict of memory-mapped views
        entries, _ = read_safetensors_header(source / name)
        raw_bf16 |= {k for k, (dtype, *_) in entries.items() if dtype == "BF16"}
        add_shard(tensors, open_safetensors(source / name, widen_bf16=False), name, source)
    flat, bf16 = normalize_checkpoint(tensors, config, str(source), raw_bf16)
    _write_weights(out / WEIGHTS_NAME, flat, bf16, storage, provenance.get("repo_id") or source.name, progress)
    hf = config.to_hf_dict()
    hf["torch_dtype"] = storage
    write_json(out / CONFIG_NAME, hf)
    _copy_tokenizer(source, out)
    files = {}
    for name in weight_files:
        sha256 = blob_sha256(source / name)
        files[name] = {"size": os.path.getsize(source / name), **({"sha256": sha256} if sha256 else {})}
    return files


def _write_weights(path: Path, flat: dict[str, np.ndarray], bf16: set[str], storage: str, label: str, progress: bool) -> None:
    """``flat`` (bare names, canonical order) as one safetensors file in ``storage``, with a progress bar."""
    from tqdm.auto import tqdm

    dtype = np.dtype(STORAGE_DTYPES[storage])
    total = sum(int(np.prod(v.shape)) for v in flat.values()) * dtype.itemsize
    check_disk_space(path.parent, total, f"converting {label}")
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"converting {label} ({storage})",
              file=sys.stderr, disable=not progress) as bar:
        write_safetensors(
            path, {f"transformer.{k}": v for k, v in flat.items()}, dtype=dtype, metadata={"format": "pt"},
            on_tensor=lambda _name, nbytes: bar.update(nbytes),
            prepare=lambda name, value: bf16_to_f32(value) if name.removeprefix("transformer.") in bf16 else value,
        )


def _copy_tokenizer(source: Path, out: Path) -> None:
    """vocab.json + merges.txt into ``out``: copied, or written from a byte-level BPE tokenizer.json."""
    for vocab, merges in TOKENIZER_PAIRS:
        if (source / vocab).is_file() and (source / merges).is_file():
            shutil.copyfile(source / vocab, out / "vocab.json")
            shutil.copyfile(source / merges, out / "merges.txt")
            return
    if (source / "tokenizer.json").is_file():
        found = read_tokenizer_json(source / "tokenizer.json")
        if found is not None:
            from ..tokenizer import Tokenizer

            Tokenizer(*found, name=source.name).save(out)  # the one writer of vocab.json + merges.txt
