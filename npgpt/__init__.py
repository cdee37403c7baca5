"""npgpt: GPT-2 in NumPy, to read, step through and run on a laptop CPU.

    import npgpt
    model = npgpt.load("weights/gpt2")          # a model folder (config.json + model.safetensors)
    logits = model.logits([464, 2068, 7586])    # [n_seq, n_vocab]
    logits, cache = model.run_with_cache(ids)   # every intermediate, by name
    npgpt.save(model, "weights/copy")
    model = npgpt.random_model("gpt2", seed=0)  # random weights of gpt2's shape

Files follow the pipeline: ``config`` (hyper-parameters), ``tokenizer`` (byte-level BPE),
``weights`` (model folders), ``model`` (the forward pass), then generation and inspection.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .activations import ActivationCache
from .config import PRESETS, GPT2Config, get_config
from .errors import ConfigError, InputError, ModelNotFoundError, NpgptError, WeightsError
from .gpt2 import GPT2
from .kv_cache import KVCache
from .model import random_params
from .version import __version__  # noqa: F401 (npgpt.__version__)

__all__ = [
    "GPT2", "GPT2Config", "PRESETS", "KVCache", "ActivationCache", "Tokenizer",
    "load", "save", "random_model", "demo_model", "available_locally",
    "NpgptError", "ConfigError", "InputError", "ModelNotFoundError", "WeightsError",
]


def load(name_or_path: str | os.PathLike, **options) -> GPT2:
    """Load a model: a folder in Hugging Face layout (config.json + model.safetensors), or a name.

    A name (``gpt2``, ``gpt2-medium``, ``shakespeare``, a Hub repo id) is resolved by
    ``npgpt.hub.resolve``: a local model folder of that name first, then the Hugging Face cache,
    then a download (see ``npgpt/hub/``). Options: ``revision`` (a Hub branch, tag or commit),
    ``storage`` ("float32" or "float16": how a freshly converted folder stores its weights; the
    model always computes in float32), ``progress`` (progress bars on stderr), ``mmap``
    (memory-map the weights file, the default).
    """
    from .weights import load_folder

    path = Path(os.fspath(name_or_path))
    if path.is_dir():
        return load_folder(path, **options)
    from .hub import load_model

    return load_model(os.fspath(name_or_path), **options)


def save(model: GPT2, path: str | os.PathLike):
    """Write ``model`` as a Hugging Face model folder (loads in npgpt and in transformers)."""
    from .weights import save_folder

    return save_folder(model, path)


def random_model(config_or_preset: GPT2Config | str = "gpt2", seed: int | np.random.Generator = 0) -> GPT2:
    """A GPT-2 with random weights of the given config or preset (tokenizer: GPT-2's when it fits)."""
    config = get_config(config_or_preset)
    tokenizer = None
    if config.n_vocab == PRESETS["gpt2"].n_vocab:  # GPT-2's vocabulary: its tokenizer fits
        from .engine import tokenizer_class

        tokenizer = tokenizer_class().gpt2()
    name = config_or_preset if isinstance(config_or_preset, str) else None
    return GPT2(config=config, params=random_params(config, seed), tokenizer=tokenizer, name=name and f"random-{name}")


def available_locally(name: str) -> bool:
    """Whether ``npgpt.load(name)`` would succeed without the network (a folder, or weights on disk)."""
    if Path(os.fspath(name)).is_dir():
        return True
    from . import hub

    try:
        return hub.find_local(os.fspath(name)) is not None
    except NpgptError:
        return False


def demo_model(prefer=("gpt2", "shakespeare"), seed: int = 0, verbose: bool = True) -> GPT2:
    """The best model this machine has without a download, for notebooks and examples.

    The first of ``prefer`` whose weights are on disk (gpt2 if you have fetched it with
    ``npgpt download gpt2``, else the bundled Shakespeare model), else a random gpt2-shaped model,
    whose outputs are noise. Prints which one it picked unless ``verbose=False``.
    """
    for name in prefer:
        if available_locally(name):
            model = load(name)
            if verbose:
                print(f"using {name}: {model}")
            return model
    model = random_model("gpt2", seed=seed)
    if verbose:
        print(f"no trained model on this machine ({', '.join(prefer)}): using random weights, {model}")
    return model


def __getattr__(name):
    # The tokenizer is imported lazily so that `import npgpt` stays fast and the model works alone.
    if name == "Tokenizer":  # the fast engine: npgpt/engine.py chooses
        from .engine import tokenizer_class

        return tokenizer_class()
    raise AttributeError(f"module 'npgpt' has no attribute {name!r}")
