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
- Only safetensors are read: a pickled ``pytorch_model.bin`` can run arbitrary code when loaded
  (``pickle_refused`` is the one error that says so, and how to convert it).

``normalize_checkpoint`` handles these quirks, once, for every path into npgpt: loading a folder
here, and converting a Hub checkpoint (``npgpt/hub/convert.py``), which then writes the canonical
names with ``write_safetensors``, the one safetensors writer (``save_folder`` uses it too).

The safetensors format is simple enough to read by hand, and doing so lets a folder load without
copying: ``open_safetensors`` maps the file into memory and every tensor is a NumPy view into the
mapping, so loading gpt2 costs the time to parse a JSON header, and the pages are read from disk
(or the OS page cache, shared by every process using the same file) only when the math touches
them. A safetensors file is::

    [8 bytes]  N, the header's length, a little-endian unsigned 64-bit integer
    [N bytes]  JSON: {"h.0.ln_1.weight": {"dtype": "F32", "shape": [768], "data_offsets": [b, e]},
                      ..., "__metadata__": {"format": "pt"}}, padded with spaces
    [rest]     the tensors' raw little-endian bytes, back to back; tensor i is bytes b..e of it

Every offset and size is checked against the file's length before a single view is made, so a
truncated file is an error, not a crash. Tensors stored as float16 or bfloat16 are converted to
the requested dtype (float32) at load, so the math always runs in float32.

The same reader serves a Hugging Face cache snapshot in place (its files are symlinks into
``blobs/``; shards listed by ``model.safetensors.index.json`` are merged in memory, views all), and
the Hub's own unpadded files, whose misaligned tensors are read one at a time into aligned arrays
(``open_safetensors``), never copied to disk.

Leaves out: model names, downloading and converting Hub checkpoints (``npgpt/hub/``, which turns a
name into a model folder and, when asked, writes a converted copy); writing anything but the
float dtypes GPT-2 uses.
"""

from __future__ import annotations

import json
import math
import mmap as mmap_module
import os
import re
import shutil
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path

import numpy as np

from ._files import atomic_path, make_temp_folder, replace_folder
from .config import GPT2Config
from .errors import ConfigError, ModelNotFoundError, WeightsError

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
INDEX_NAME = "model.safetensors.index.json"  # a sharded checkpoint's {tensor: shard file} map
PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json")  # never read: see pickle_refused

TOKENIZER_PAIRS = (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe"))  # HF's names, OpenAI's
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
    _check_counts({k: tuple(v.shape) for k, v in flat.items()}, config, source)  # before expected_shapes: a config may claim a billion layers
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


def _check_counts(shapes: Mapping[str, tuple[int, ...]], config: GPT2Config, source: str) -> None:
    """Refuse a config that implies far more tensors than the checkpoint holds ({name: shape})
    before anything the size of the config is built (a config may claim a billion layers).

    Near misses (a layer more or less, another width) pass on to the checks that name the first
    tensor that differs, which are cheap once the counts are of the same order.
    """
    n_tensors = 12 * config.n_layer + 4
    if n_tensors > 4 * len(shapes) + 16:
        raise WeightsError(
            f"{source} holds {len(shapes)} tensors but config.json (n_layer={config.n_layer}) implies {n_tensors}; "
            "config.json and the weights do not belong together"
        )


def check_finite(flat: Mapping[str, np.ndarray], source: str) -> None:
    """Refuse NaN or infinite parameters, naming the first bad tensor.

    A sum is checked first (one pass, no copy): it is finite when every element is, barring an
    overflow, which the exact test then rules out.
    """
    for name, value in flat.items():
        if np.isfinite(value.sum()) or np.isfinite(value).all():
            continue
        bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
        raise WeightsError(
            f"{source}: tensor {name} holds {bad} NaN or infinite value(s); the file is damaged or its training "
            "diverged: use another checkpoint (npgpt.load(..., allow_nonfinite=True) loads it anyway, for debugging)"
        )


def folder_problem(folder: Path) -> str | None:
    """Why a model folder would not load, from config.json and the weights' header alone (no
    tensor is read), or None when it looks loadable (a sharded snapshot is not looked into)."""
    try:
        config = GPT2Config.load(folder / CONFIG_NAME)
        if not (folder / WEIGHTS_NAME).is_file():
            return None if (folder / "model.safetensors.index.json").is_file() else f"no {WEIGHTS_NAME}"
        entries, _ = read_safetensors_header(folder / WEIGHTS_NAME)
        bare = {name.removeprefix("transformer."): shape for name, (_, shape, _, _) in entries.items()}
        _check_counts({k: v for k, v in bare.items() if not _IGNORED.match(k) and k != "lm_head.weight"}, config, WEIGHTS_NAME)
    except (ConfigError, WeightsError) as e:
        return str(e)
    except OSError as e:
        return f"{e.strerror or e} ({e.filename})"
    return None


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


# ---- safetensors by hand: memory-mapped reading, streamed writing --------------------------------

# safetensors dtype name -> NumPy dtype (all little-endian). BF16 has no NumPy dtype: it is read as
# uint16 and widened to float32 by `bf16_to_f32` (bfloat16 is the top half of a float32).
SAFETENSORS_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
_DTYPE_NAMES = {np.dtype("<f8"): "F64", np.dtype("<f4"): "F32", np.dtype("<f2"): "F16"}
_MAX_HEADER = 100_000_000  # the safetensors library's own limit


def bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) -> float32: the 16 bits become the float32's high half."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


def read_safetensors_header(path: str | os.PathLike) -> tuple[dict, int]:
    """The checked header of a safetensors file: ({name: (dtype_name, shape, begin, end)}, data_start).

    ``begin``/``end`` are absolute byte offsets in the file. Raises ``WeightsError`` unless the
    tensors tile the data section exactly (no gaps, no overlaps, nothing past the end of the file).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise WeightsError(f"weights file {path!r} does not exist")

    def corrupt(detail: str) -> WeightsError:
        return WeightsError(
            f"weights file {path!r} is truncated or corrupt ({detail}); delete it and download or save it again"
        )

    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise corrupt(f"{size} bytes, shorter than the 8-byte header length")
        n = int.from_bytes(head, "little")
        if n > _MAX_HEADER or 8 + n > size:
            raise corrupt(f"header length {n} does not fit in a file of {size} bytes")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise corrupt(f"header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise corrupt("header is not a JSON object")
    data_start = 8 + n
    entries = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype_name, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise corrupt(f"tensor {name!r} has no dtype, shape or data_offsets") from None
        if dtype_name not in SAFETENSORS_DTYPES:
            raise WeightsError(
                f"weights file {path!r}: tensor {name} has dtype {dtype_name}, which npgpt cannot read; "
                "save the model as float32 or float16"
            )
        if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= size for d in (*shape, begin, end)):
            raise corrupt(f"tensor {name!r} has a bad shape or offsets (each must be an integer from 0 to the file's size)")
        nbytes = math.prod(shape) * SAFETENSORS_DTYPES[dtype_name].itemsize  # Python ints: no overflow
        if end - begin != nbytes:
            raise corrupt(f"tensor {name!r} of shape {list(shape)} needs {nbytes} bytes, the header gives {end - begin}")
        entries[name] = (dtype_name, shape, data_start + begin, data_start + end)
    position = data_start
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda item: (item[1][2], item[1][3])):
        if begin != position:
            raise corrupt(f"tensor {name!r} starts at byte {begin}, expected {position}")
        position = end
    if position > size:
        raise corrupt(f"the header describes {position} bytes but the file has {size}")
    if position < size:
        raise corrupt(f"{size - position} unexpected bytes after the last tensor")
    return entries, data_start


def open_safetensors(path: str | os.PathLike, *, widen_bf16: bool = True,
                     skip: Callable[[str], bool] | None = None) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a view into a copy-on-write memory map (no copy).

    The arrays are writable, but writes stay private to this process: the file never changes.
    bfloat16 tensors are widened to float32 (a copy), or with ``widen_bf16=False`` returned as
    their uint16 bit patterns (see ``bf16_to_f32``). Tensors for which ``skip(name)`` is true
    (the mask buffers, say) are left out without reading a byte of them.

    A tensor whose offset is not a multiple of its item size cannot be viewed as an array that
    NumPy's fast paths accept. The Hub's own gpt2 file is such a file: its header is not padded, so
    its data start at byte 14,291 and every float32 is 3 bytes off. Each such tensor is read, one
    at a time, from the file into a fresh aligned array (``_read_aligned``); its pages are never
    mapped, so memory holds one copy of the model, not the mapping and a copy.
    """
    entries, _ = read_safetensors_header(path)
    entries = {k: v for k, v in entries.items() if skip is None or not skip(k)}
    if not entries:
        return {}
    with open(path, "rb", buffering=0) as f:
        # ACCESS_COPY = MAP_PRIVATE: pages come from the page cache, shared with every other process
        # reading the file, until (if ever) someone writes to them.
        mapping = mmap_module.mmap(f.fileno(), 0, access=mmap_module.ACCESS_COPY)
        tensors = {}
        for name, (dtype_name, shape, begin, end) in entries.items():
            dtype = SAFETENSORS_DTYPES[dtype_name]
            if begin % dtype.itemsize:
                array = _read_aligned(f, begin, dtype, shape)
            else:
                array = np.frombuffer(mapping, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=begin)
                array = array.reshape(shape)
            if dtype_name == "BF16" and widen_bf16:
                array = bf16_to_f32(array)
            tensors[name] = array
    return tensors


def _read_aligned(f, begin: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor read from the open (unbuffered) file ``f`` at byte ``begin`` into a new array."""
    array = np.empty(shape, dtype)
    view = memoryview(array.reshape(-1).view(np.uint8))
    f.seek(begin)
    done = 0
    while done < len(view):  # readinto may return less than asked: read on until full
        n = f.readinto(view[done:])
        if not n:
            raise WeightsError(f"weights file {f.name!r} ended inside a tensor; download or save it again")
        done += n
    return array


def is_mask_buffer(name: str) -> bool:
    """True for the ``attn.bias`` / ``attn.masked_bias`` buffers (either naming): not parameters."""
    return bool(_IGNORED.match(name.removeprefix("transformer.")))


def write_safetensors(
    path: str | os.PathLike,
    tensors: Mapping[str, np.ndarray],
    dtype=None,
    metadata: dict[str, str] | None = None,
    on_tensor: Callable[[str, int], None] | None = None,
    prepare: Callable[[str, np.ndarray], np.ndarray] | None = None,
) -> None:
    """Write ``tensors`` as a safetensors file, one tensor in memory at a time.

    ``dtype`` (e.g. np.float16) converts every tensor as it is written; None keeps each one's own
    (float64/32/16 only). Values that overflow the target dtype are an error, not a silent inf.
    The file is written under a temporary name, flushed to disk, then renamed into place
    (``_files.atomic_path``), so ``path`` is either the old file or the complete new one. ``on_tensor(name, nbytes)`` is called
    after each tensor (for a progress bar). ``prepare(name, value)``, if given, is applied to each
    value just before it is written and must keep its shape (e.g. widening bfloat16 bit patterns
    with ``bf16_to_f32``, so that only one tensor at a time is ever widened).
    """
    path = os.fspath(path)
    header: dict = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    plan = []
    for name, value in tensors.items():
        out_dtype = np.dtype(dtype if dtype is not None else value.dtype).newbyteorder("<")
        if out_dtype not in _DTYPE_NAMES:
            raise WeightsError(f"cannot write tensor {name} as {out_dtype}; npgpt writes float64/32/16")
        nbytes = int(np.prod(value.shape, dtype=np.int64)) * out_dtype.itemsize
        header[name] = {"dtype": _DTYPE_NAMES[out_dtype], "shape": list(value.shape), "data_offsets": [offset, offset + nbytes]}
        plan.append((name, value, out_dtype))
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-(8 + len(blob)) % 8)  # pad so the data starts 8-byte aligned
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        for name, value, out_dtype in plan:
            if prepare is not None:
                value = prepare(name, value)
            with np.errstate(over="ignore"):  # overflow is checked just below, with a clear message
                array = np.ascontiguousarray(value, dtype=out_dtype)  # one tensor converted at a time
            if out_dtype.itemsize < np.dtype(value.dtype).itemsize and not np.array_equal(
                np.isfinite(array), np.isfinite(value)
            ):
                raise WeightsError(
                    f"tensor {name} has values outside the range of {out_dtype}; store this model as float32"
                )
            f.write(array.data)
            if on_tensor is not None:
                on_tensor(name, array.nbytes)
        f.flush()
        os.fsync(f.fileno())  # on disk before atomic_path renames it into place


def normalize_checkpoint(
    tensors: Mapping[str, np.ndarray], config: GPT2Config, source: str, raw_bf16: AbstractSet[str] = frozenset()
) -> tuple[dict[str, np.ndarray], set[str]]:
    """A checkpoint's parameters under their bare names (``h.0.ln_1.weight``), in ``expected_shapes``
    order, with every checkpoint quirk of the module docstring handled here and nowhere else:

    - the ``transformer.`` prefix is dropped, so both namings give the same names;
    - the ``attn.bias`` / ``attn.masked_bias`` mask buffers are dropped: they are not parameters;
    - ``lm_head.weight``, when present, must equal ``wte.weight`` (the tied LM head) and is dropped;
    - every name and shape is checked against ``config``; Conv1D weights stay [n_in, n_out].

    ``raw_bf16`` names the tensors (as named in ``tensors``) that hold bfloat16 bit patterns
    (``open_safetensors(widen_bf16=False)``); they are returned as they are, and the second result
    gives their bare names, so that a caller can widen them (``bf16_to_f32``) one at a time.
    """
    flat, lm_head, bf16 = {}, None, set()
    for name, value in tensors.items():
        bare = name.removeprefix("transformer.")
        if _IGNORED.match(bare):
            continue  # mask buffers, not parameters
        if bare == "lm_head.weight":
            lm_head = _widened(value, name in raw_bf16)
            continue
        if name in raw_bf16:
            bf16.add(bare)
        flat[bare] = value
    check_flat(flat, config, source)
    if lm_head is not None:
        wte = _widened(flat["wte.weight"], "wte.weight" in bf16)
        if not (lm_head.shape == wte.shape and np.array_equal(lm_head, wte)):
            raise WeightsError(f"{source}: lm_head.weight differs from wte.weight; npgpt supports GPT-2's tied LM head only")
    return {name: flat[name] for name in expected_shapes(config)}, bf16


def _widened(value: np.ndarray, is_bf16: bool) -> np.ndarray:
    return bf16_to_f32(value) if is_bf16 else value


def params_from_checkpoint(tensors: dict[str, np.ndarray], config: GPT2Config, source: str, dtype=np.float32,
                           allow_nonfinite: bool = False) -> dict:
    """Map a checkpoint's tensors (either naming) to nested params, checking every name, shape and
    dtype, and that every value is finite (``allow_nonfinite=True`` skips that, for debugging)."""
    flat, _ = normalize_checkpoint(tensors, config, source)
    for name, value in flat.items():
        if value.dtype.kind != "f":
            raise WeightsError(f"{source}: tensor {name} holds {value.dtype} values, not floats; a GPT-2's parameters are floats")
    with np.errstate(over="ignore"):  # float64 values beyond float32's range become inf, refused just below
        flat = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in flat.items()}
    if not allow_nonfinite:
        check_finite(flat, source)
    return unflatten(flat, config)


def pickle_refused(source: str, pickle_name: str, save_to: str, more: str = "") -> WeightsError:
    """The one error for a checkpoint whose weights are only a pickle (``PICKLES``): why npgpt will
    not read it, and the command that converts it once into ``save_to``; ``more`` adds hints."""
    return WeightsError(
        f"{source} has its weights only as {pickle_name}, a Python pickle, and loading a pickle can run "
        "arbitrary code hidden in the file; npgpt reads safetensors only. To convert it once, on a "
        "machine where you trust the model's author: pip install torch transformers, then "
        f"python -c \"from transformers import GPT2LMHeadModel as M; M.from_pretrained('{source}')"
        f".save_pretrained('{save_to}')\" (this writes {WEIGHTS_NAME}){more}"
    )


def load_folder(path: str | os.PathLike, dtype="float32", mmap: bool = True, allow_nonfinite: bool = False,
                name: str | None = None):
    """Load a model folder (``config.json`` + ``model.safetensors``) into a ``GPT2``.

    The folder may be one npgpt wrote, one ``save_pretrained`` wrote, or a snapshot in the Hugging
    Face cache (``snapshots/<commit>/``, whose files are symlinks into ``blobs/``), read in place:
    one ``model.safetensors`` or the shards a ``model.safetensors.index.json`` lists.

    With ``mmap=True`` (the default) the parameters are views into a copy-on-write memory map of
    the weights (see ``open_safetensors``): nothing is copied when the file already holds
    ``dtype`` at aligned offsets, and editing a parameter in place never changes the file. ``mmap=False`` reads
    everything into ordinary arrays. Tensors stored in another float type (float16, bfloat16)
    are converted to ``dtype`` here, once.

    ``dtype`` is how the parameters are held in memory: "float32" (the default, the fastest), or
    "float16", half the memory: a float16-stored folder is then used as it is on disk, and each
    weight matrix is widened to float32 just before it is used, so the arithmetic stays float32
    (see ``model.linear``) at the price of that widening on every forward pass.

    A tensor holding NaN or infinity is refused (``WeightsError`` naming it): such a model
    would only print nonsense. ``allow_nonfinite=True`` loads it anyway, for debugging.
    ``name`` names the model (default: the folder's name).
    """
    from .gpt2 import GPT2

    dtype = _memory_dtype(dtype)
    folder = Path(path)
    if not folder.is_dir():
        raise ModelNotFoundError(
            f"no model folder at {os.fspath(path)!r}; pass a folder holding config.json and model.safetensors"
        )
    files = require_weight_files(folder)
    config = GPT2Config.load(folder / CONFIG_NAME)
    tensors: dict = {}
    for file in files:  # shards are merged here: one dict of views
        add_shard(tensors, open_safetensors(folder / file, skip=is_mask_buffer) if mmap else read_safetensors(folder / file),
                  file, folder)
    source = str(folder / files[0]) if len(files) == 1 else str(folder)
    params = params_from_checkpoint(tensors, config, source=source, dtype=dtype, allow_nonfinite=allow_nonfinite)
    return GPT2(config=config, params=params, tokenizer=load_tokenizer(folder), name=name or folder.name)


def add_shard(tensors: dict, shard: dict, file: str, folder) -> None:
    """Merge one shard's tensors into ``tensors``, refusing a tensor that an earlier shard holds
    too: two copies of a weight, and no way to tell which one is right."""
    repeated = sorted(tensors.keys() & shard.keys())
    if repeated:
        raise WeightsError(f"{folder}: the shards overlap: {repeated[0]} is in {file} and in another shard "
                           f"({len(repeated)} tensor(s) twice); download or convert the model again")
    tensors.update(shard)


def require_weight_files(folder: Path) -> list[str]:
    """The safetensors files of a model folder (``weight_files_of``), or the one clear error: a
    pickled checkpoint refused with the command that converts it, or no weights at all."""
    files = weight_files_of(folder)
    if files is None:
        pickles = [name for name in PICKLES if (folder / name).exists()]
        if pickles:
            raise pickle_refused(str(folder), pickles[0], str(folder))
        raise WeightsError(f"{folder} has no {WEIGHTS_NAME}; a model folder needs config.json and {WEIGHTS_NAME}")
    return files


def weight_files_of(folder: Path) -> list[str] | None:
    """The safetensors files a model folder's weights are in, if all of them are present."""
    if (folder / WEIGHTS_NAME).is_file():
        return [WEIGHTS_NAME]
    if (folder / INDEX_NAME).is_file():
        shards = shards_of(folder / INDEX_NAME)
        if shards and all((folder / shard).is_file() for shard in shards):
            return shards
    return None


def shards_of(index_path: Path) -> list[str]:
    """The shard files a ``model.safetensors.index.json`` lists, sorted."""
    try:
        with open(index_path, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        shards = None
    if not shards or not all(isinstance(s, str) and "/" not in s and "\\" not in s and s not in (".", "..") for s in shards):
        raise WeightsError(f"{index_path} is not a valid safetensors index (no weight_map); download it again")
    return shards


def _memory_dtype(dtype) -> np.dtype:
    """np.dtype of a ``dtype`` option, which must be float32, float16 or float64."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved not in (np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.float64)):
        raise ConfigError(f"dtype must be 'float32' or 'float16' (float64 for gradient checks), got {dtype!r}")
    return resolved


def load_tokenizer(folder: Path):
    """The folder's own tokenizer files (``vocab.json`` + ``merges.txt``, OpenAI's names, or a
    byte-level BPE ``tokenizer.json``), else GPT-2's when config.json's vocab_size fits, else None.
    A ``tokenizer.json`` that holds GPT-2's vocabulary gives GPT-2's tokenizer itself (shared)."""
    from .engine import tokenizer_class

    cls = tokenizer_class()
    has_pair = any((folder / a).is_file() and (folder / b).is_file() for a, b in TOKENIZER_PAIRS)
    if not has_pair and (folder / "tokenizer.json").is_file():
        found = read_tokenizer_json(folder / "tokenizer.json")
        if found is not None:
            gpt2 = _gpt2_or_none(cls)
            if gpt2 is not None and found == (gpt2.encoder, gpt2.merges):
                return gpt2
            return cls(*found, name=folder.name)
    try:
        return cls.from_folder(folder, fallback_to_gpt2=True)
    except ModelNotFoundError:
        return None


def _gpt2_or_none(cls):
    try:
        return cls.gpt2()
    except ModelNotFoundError:
        return None


def read_tokenizer_json(path: str | os.PathLike) -> tuple[dict[str, int], list[tuple[str, str]]] | None:
    """(vocab, merges) of a byte-level BPE ``tokenizer.json``; None for other kinds.

    Hugging Face's fast-tokenizer file holds the same vocabulary and merges as vocab.json and
    merges.txt; merges are either "a b" strings (older files) or ["a", "b"] pairs (newer ones).
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
        merges = [tuple(m.split(" ") if isinstance(m, str) else m) for m in model["merges"]]
        return dict(sorted(vocab.items(), key=lambda item: item[1])), merges
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


# Files that make up a model: a save replaces all of them, so none survives from an older model.
MODEL_FILES = frozenset({
    CONFIG_NAME, WEIGHTS_NAME, "vocab.json", "merges.txt", "encoder.json", "vocab.bpe", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "npgpt.json",
    "model.safetensors.index.json", *PICKLES,
})


def save_folder(model, path: str | os.PathLike) -> Path:
    """Write ``model`` as a Hugging Face model folder that ``transformers`` and npgpt both load.

    The folder is built whole under a temporary name beside ``path`` and then put in its place
    (``_files.replace_folder``): a failed or interrupted save leaves the old folder as it was, and
    a successful one leaves no file of an older model (a stale ``vocab.json`` beside new weights).
    Other plain files in the folder (``train_log.json``, notes) are kept; a folder holding
    sub-folders is refused rather than replaced.
    """
    folder = Path(path)
    check_params(model.params, model.config)
    kept = _files_to_keep(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_folder(folder)
    try:
        flat = {f"transformer.{k}": v for k, v in flatten(model.params).items()}
        write_safetensors(tmp / WEIGHTS_NAME, flat, metadata={"format": "pt"})  # "pt": transformers checks this field
        model.config.save(tmp / CONFIG_NAME)
        if model.tokenizer is not None and hasattr(model.tokenizer, "save"):
            model.tokenizer.save(tmp)
        for file in kept:
            shutil.copy2(file, tmp / file.name)
        replace_folder(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _files_to_keep(folder: Path) -> list[Path]:
    """The plain files of ``folder`` that are not part of a model; refuses a folder that is not a model's."""
    if not folder.exists():
        return []
    if not folder.is_dir():
        raise WeightsError(f"{folder} is a file, not a folder; save the model to a folder")
    entries = [e for e in folder.iterdir() if not (e.name.startswith(".") and e.name.endswith(".tmp"))]
    subfolders = [e.name for e in entries if e.is_dir()]
    if subfolders:
        raise WeightsError(
            f"{folder} holds folders ({', '.join(sorted(subfolders)[:3])}); saving replaces a model folder whole, "
            "so save to a new folder or to one that holds only a model"
        )
    return [e for e in entries if e.name not in MODEL_FILES]
