"""Reading and writing GPT-2 model folders in Hugging Face's layout.

A model folder holds ``config.json`` (see ``npgpt/config.py``) and ``model.safetensors``; it may
also hold the tokenizer's ``vocab.json`` + ``merges.txt``. Loading is a name map from the
checkpoint's flat names (``h.3.attn.c_attn.weight``) to the nested params dict ``npgpt/model.py``
uses (``params["h"][3]["attn"]["c_attn"]["weight"]``), with every shape checked against the config.

Checkpoint quirks, each handled here:
- Names come with a ``transformer.`` prefix (``GPT2LMHeadModel.save_pretrained``) or without it
  (the ``gpt2`` repo on the Hub, ``GPT2Model``); both load.
- GPT-2's linear layers are "Conv1D": weights stored [n_in, n_out], used as ``x @ W`` untransposed.
- The LM head is tied to the token embedding ``wte``; ``lm_head.weight`` is usually absent, and
  when present it must equal ``wte.weight``.
- ``attn.bias`` (the causal mask as a [1, 1, n_ctx, n_ctx] buffer) and ``attn.masked_bias`` are not
  parameters; older checkpoints store them, and they are ignored.
- Only safetensors are read: a pickled ``pytorch_model.bin`` can run arbitrary code when loaded.

Leaves out: downloading (``npgpt/hub.py``); sharded checkpoints.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .config import GPT2Config
from .errors import ModelNotFoundError, WeightsError

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"

_IGNORED = re.compile(r"^h\.\d+\.attn\.(bias|masked_bias)$")


def expected_shapes(config: GPT2Config) -> dict[str, tuple[int, ...]]:
    """Every parameter's flat checkpoint name and its shape under ``config``."""
    C, F = config.n_embd, config.d_mlp
    shapes = {"wte.weight": (config.n_vocab, C), "wpe.weight": (config.n_ctx, C)}
    for l in range(config.n_layer):
        p = f"h.{l}."
        shapes.update({
            p + "ln_1.weight": (C,), p + "ln_1.bias": (C,),
            p + "attn.c_attn.weight": (C, 3 * C), p + "attn.c_attn.bias": (3 * C,),
            p + "attn.c_proj.weight": (C, C), p + "attn.c_proj.bias": (C,),
            p + "ln_2.weight": (C,), p + "ln_2.bias": (C,),
            p + "mlp.c_fc.weight": (C, F), p + "mlp.c_fc.bias": (F,),
            p + "mlp.c_proj.weight": (F, C), p + "mlp.c_proj.bias": (C,),
        })
    shapes.update({"ln_f.weight": (C,), "ln_f.bias": (C,)})
    return shapes


def flatten(params: dict) -> dict[str, np.ndarray]:
    """Nested params -> {"h.0.ln_1.weight": array, ...} (the checkpoint's names)."""
    flat = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, f"{prefix}{key}.")
        elif isinstance(node, (list, tuple)):
            for i, child in enumerate(node):
                walk(child, f"{prefix}{i}.")
        else:
            flat[prefix[:-1]] = node

    walk(params, "")
    return flat


def unflatten(flat: dict[str, np.ndarray], config: GPT2Config) -> dict:
    """{"h.0.ln_1.weight": array, ...} -> the nested params dict, blocks as a list."""
    params: dict = {"h": [{} for _ in range(config.n_layer)]}
    for name, value in flat.items():
        parts = name.split(".")
        node = params
        if parts[0] == "h":
            node, parts = params["h"][int(parts[1])], parts[2:]
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return params


def check_params(params: dict, config: GPT2Config) -> None:
    """Raise ``WeightsError`` unless params has exactly the tensors and shapes ``config`` implies."""
    check_flat(flatten(params), config, source="params")


def check_flat(flat: dict[str, np.ndarray], config: GPT2Config, source: str) -> None:
    expected = expected_shapes(config)
    missing = [k for k in expected if k not in flat]
    unexpected = [k for k in flat if k not in expected]
    if missing:
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise WeightsError(
            f"{source} lacks {len(missing)} tensor(s) the config needs, e.g. {', '.join(missing[:5])}{more}; "
            "the file may be from another model or incomplete"
        )
    if unexpected:
        raise WeightsError(f"{source} has tensors a GPT-2 does not: {', '.join(unexpected[:5])}")
    for name, shape in expected.items():
        if tuple(flat[name].shape) != shape:
            raise WeightsError(
                f"{source}: tensor {name} has shape {tuple(flat[name].shape)} but the config implies "
                f"{shape}; config.json and the weights do not belong together"
            )


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a NumPy array, with a clear error if the file is bad."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = os.fspath(path)
    if not os.path.exists(path):
        raise WeightsError(f"weights file {path!r} does not exist")
    try:
        return load_file(path)
    except SafetensorError as e:
        raise WeightsError(
            f"weights file {path!r} is truncated or corrupt ({e}); delete it and download or save it again"
        ) from None
    except (TypeError, ValueError) as e:  # e.g. bfloat16, which NumPy has no dtype for
        raise WeightsError(f"cannot read {path!r} into NumPy ({e}); save it as float32 or float16") from None


def params_from_checkpoint(tensors: dict[str, np.ndarray], config: GPT2Config, source: str, dtype=np.float32) -> dict:
    """Map a checkpoint's tensors (either naming) to nested params, checking every name and shape."""
    flat: dict[str, np.ndarray] = {}
    lm_head = None
    for name, value in tensors.items():
        if name.startswith("transformer."):
            name = name[len("transformer."):]
        if _IGNORED.match(name):
            continue  # mask buffers, not parameters
        if name == "lm_head.weight":
            lm_head = value
            continue
        flat[name] = value
    check_flat(flat, config, source)
    if lm_head is not None and not (lm_head.shape == flat["wte.weight"].shape and np.array_equal(lm_head, flat["wte.weight"])):
        raise WeightsError(f"{source}: lm_head.weight differs from wte.weight; npgpt supports GPT-2's tied LM head only")
    flat = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in flat.items()}
    return unflatten(flat, config)


def load_folder(path: str | os.PathLike, dtype=np.float32):
    """Load a model folder (``config.json`` + ``model.safetensors``) into a ``GPT2``."""
    from .model import GPT2

    folder = Path(path)
    if not folder.is_dir():
        raise ModelNotFoundError(
            f"no model folder at {os.fspath(path)!r}; pass a folder holding config.json and model.safetensors"
        )
    if not (folder / WEIGHTS_NAME).exists():
        if (folder / "pytorch_model.bin").exists():
            raise WeightsError(
                f"{folder} has only pytorch_model.bin, a pickle that can run arbitrary code when loaded; "
                "npgpt reads safetensors only. Convert it once where you trust the file: "
                "GPT2LMHeadModel.from_pretrained(folder).save_pretrained(folder, safe_serialization=True)"
            )
        raise WeightsError(f"{folder} has no {WEIGHTS_NAME}; a model folder needs config.json and {WEIGHTS_NAME}")
    config = GPT2Config.load(folder / CONFIG_NAME)
    tensors = read_safetensors(folder / WEIGHTS_NAME)
    params = params_from_checkpoint(tensors, config, source=str(folder / WEIGHTS_NAME), dtype=dtype)
    return GPT2(config=config, params=params, tokenizer=_load_tokenizer(folder, config), name=folder.name)


def _load_tokenizer(folder: Path, config: GPT2Config):
    """The folder's own tokenizer files, else GPT-2's vocabulary when the sizes match, else None."""
    try:
        from .tokenizer import Tokenizer
    except ImportError:  # pragma: no cover - the tokenizer module is part of the package
        return None
    try:
        return Tokenizer.from_folder(folder)
    except FileNotFoundError:
        pass
    if config.n_vocab == 50257:
        return Tokenizer.gpt2()
    return None


def save_folder(model, path: str | os.PathLike) -> Path:
    """Write ``model`` as a Hugging Face model folder that ``transformers`` and npgpt both load.

    Files are written under temporary names and renamed into place, so an interrupted save never
    leaves a half-written ``model.safetensors`` behind under its real name.
    """
    from safetensors.numpy import save_file

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    check_params(model.params, model.config)
    flat = {f"transformer.{k}": np.ascontiguousarray(v) for k, v in flatten(model.params).items()}
    tmp = folder / f".{WEIGHTS_NAME}.tmp{os.getpid()}"
    try:
        save_file(flat, str(tmp), metadata={"format": "pt"})  # "pt": transformers checks this field
        os.replace(tmp, folder / WEIGHTS_NAME)
    finally:
        if tmp.exists():
            tmp.unlink()
    model.config.save(folder / CONFIG_NAME)
    if model.tokenizer is not None and hasattr(model.tokenizer, "save"):
        model.tokenizer.save(folder)
    return folder
