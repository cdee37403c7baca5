"""Checkpoints and the model folder a run writes.

A checkpoint holds everything a run needs to continue exactly (parameters, AdamW's moments, the
loop's state), written so that the folder always holds one complete checkpoint; the model folder
is an ordinary ``npgpt.save`` folder plus ``train_log.json`` and ``loss.png``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from .._files import atomic_path, write_json
from ..config import GPT2Config
from ..errors import InputError, WeightsError
from ..gpt2 import GPT2
from ..weights import flatten, read_safetensors, unflatten
from .optim import AdamW
from .progress import plot_losses

CHECKPOINT_STATE = "state.json"


def save_checkpoint(folder: str | os.PathLike, model: GPT2, optimizer: AdamW, state: dict) -> None:
    """Write everything a run needs to continue exactly: params, AdamW's m and v, the loop's state.

    Tensors go to ``checkpoint-{step}.safetensors``, then ``state.json`` (which names that file) is
    replaced atomically, then older tensor files are removed: at every moment the folder holds one
    complete checkpoint, even if the process is killed while writing.
    """
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays, scalars = optimizer.state_dict()
    tensors = {f"params.{k}": np.ascontiguousarray(v) for k, v in flatten(model.params).items()}
    tensors.update({f"adam.{k}": np.ascontiguousarray(v) for k, v in arrays.items()})
    name = f"checkpoint-{state['step']}.safetensors"
    with atomic_path(folder / name) as tmp:
        save_file(tensors, str(tmp))
    model.config.save(folder / "config.json")
    if model.tokenizer is not None:
        model.tokenizer.save(folder)
    full_state = dict(state, tensors=name, optimizer=scalars)
    write_json(folder / CHECKPOINT_STATE, full_state, indent=1)
    for old in folder.glob("checkpoint-*.safetensors"):
        if old.name != name:
            old.unlink()


def load_checkpoint(folder: str | os.PathLike) -> tuple[GPT2, dict, dict, dict]:
    """(model, optimizer arrays, optimizer scalars, state) of the checkpoint in ``folder``."""
    from ..engine import tokenizer_class

    folder = Path(folder)
    state_path = folder / CHECKPOINT_STATE
    if not state_path.is_file():
        raise WeightsError(f"no checkpoint in {folder} (no {CHECKPOINT_STATE}); start a new run without --resume")
    with open(state_path, encoding="utf-8") as f:
        state = json.load(f)
    config = GPT2Config.load(folder / "config.json")
    tensors = read_safetensors(folder / state["tensors"])
    params = unflatten({k[len("params."):]: v for k, v in tensors.items() if k.startswith("params.")}, config)
    adam = {k[len("adam."):]: v for k, v in tensors.items() if k.startswith("adam.")}
    model = GPT2(config=config, params=params, tokenizer=tokenizer_class().from_folder(folder), name=state.get("name"))
    return model, adam, state["optimizer"], state


def write_model_folder(model: GPT2, out, result, settings, record: dict, final: bool,
                       n_val_tokens: int | None = None) -> None:
    """The model folder (``npgpt.save``) plus ``train_log.json`` and ``loss.png``."""
    from ..weights import save_folder

    out = Path(out)
    save_folder(model, out)
    log = {
        "completed": final, "step": result.history[-1]["step"] if result.history else 0,
        "elapsed_s": round(result.elapsed_s, 1), "cpu_s": round(result.cpu_s, 1),
        "machine": {"cpus": os.cpu_count(), "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
                    "numpy": np.__version__},
        "config": model.config.to_hf_dict(),
        "settings": dataclasses.asdict(settings), **record,
        "final": result.evals[-1] if result.evals else None, "evals": result.evals, "samples": result.samples,
    }
    write_json(out / "train_log.json", log, indent=1)
    title = f"{model.name or out.name}: val {result.val_nats_per_char:.3f} nats/char" if result.evals else str(out.name)
    plot_losses(result.history, result.evals, out / "loss.png", title=title, n_val_tokens=n_val_tokens)


def check_out_folders(out, checkpoint, resume: bool, overwrite: bool) -> None:
    """Refuse to train over an existing model or checkpoint unless told (nothing is lost silently),
    and refuse folders that cannot be written before any training (not after every step of it)."""
    out, checkpoint = Path(out), Path(checkpoint)
    for folder, flag in ((out, "--out"), (checkpoint, "--checkpoint")):
        check_writable_folder(folder, flag)
    if resume:
        if not (checkpoint / CHECKPOINT_STATE).is_file():
            raise WeightsError(f"nothing to resume: no checkpoint in {checkpoint}; run without --resume to start")
        return
    if overwrite:
        if checkpoint.exists():
            shutil.rmtree(checkpoint)
        return
    if (checkpoint / CHECKPOINT_STATE).is_file():
        raise InputError(
            f"a checkpoint of an earlier run is in {checkpoint}: pass --resume to continue it, "
            "or --overwrite to start again from scratch"
        )
    if (out / "model.safetensors").exists():
        raise InputError(f"{out} already holds a model; pass --overwrite to replace it, or choose another --out")


def check_writable_folder(folder: Path, flag: str) -> None:
    """Raise ``InputError`` unless ``folder`` is (or can be created as) a folder npgpt can write in.

    Creates the folder's parent (as the save would) and a test file there, removed at once."""
    import tempfile

    if folder.exists() and not folder.is_dir():
        raise InputError(f"{flag} {folder} is a file, not a folder; choose another {flag}")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".npgpt-write-test.", dir=folder.parent)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise InputError(f"cannot write {flag} {folder} ({e.strerror or e}); choose a folder you can write to") from None


def default_checkpoint(out) -> Path:
    """Where a run's checkpoint goes unless told: ``OUT-checkpoint`` beside the model folder (kept
    out of it, since it is 3x the model's size: the parameters plus AdamW's two moments)."""
    out = Path(out)
    return out.with_name(out.name + "-checkpoint")


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
