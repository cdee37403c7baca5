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

from .config import PRESETS, GPT2Config, get_config
from .errors import ConfigError, InputError, ModelNotFoundError, NpgptError, WeightsError
from .model import GPT2, ActivationCache, KVCache, random_params

__version__ = "0.1.0"

__all__ = [
    "GPT2", "GPT2Config", "PRESETS", "KVCache", "ActivationCache", "Tokenizer",
    "load", "save", "random_model",
    "NpgptError", "ConfigError", "InputError", "ModelNotFoundError", "WeightsError",
]


def load(name_or_path: str | os.PathLike, **options) -> GPT2:
    """Load a model: a folder in Hugging Face layout (config.json + model.safetensors), or a name.

    A name (``gpt2``, ``gpt2-medium``, ``shakespeare``, a Hub repo id) is resolved by
    ``npgpt.hub.resolve``: a local model folder of that name first, then the Hugging Face cache,
    then a download. ``options`` go to the resolver and loader (e.g. ``revision``).
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
    if config.n_vocab == 50257:
        try:
            tokenizer = Tokenizer.gpt2()
        except (ImportError, NameError, FileNotFoundError):
            tokenizer = None
    name = config_or_preset if isinstance(config_or_preset, str) else None
    return GPT2(config=config, params=random_params(config, seed), tokenizer=tokenizer, name=name and f"random-{name}")


def __getattr__(name):
    # The tokenizer is imported lazily so that `import npgpt` stays fast and the model works alone.
    if name == "Tokenizer":
        from .tokenizer import Tokenizer

        return Tokenizer
    raise AttributeError(f"module 'npgpt' has no attribute {name!r}")
