"""The activations of GPT-2's forward pass: one table of names and axes, the cache that holds them,
and the tap through which the forward pass shows them.

Every other place that needs an activation's name or the meaning of its axes reads ``ACTIVATIONS``:
the activation cache below, generation's traces (``npgpt/traces.py`` cuts batch rows out of it),
the hook-name check, the docs' table (``docs/architecture.md``) and a test that runs a forward pass
and compares every cached array's shape with this table. Names follow TransformerLens.

``{l}`` is the layer index. Axis letters are the dimension names of ``npgpt/config.py``; arrays in
the cache keep the batch axis (``GPT2.run_with_cache`` drops it for one sequence).

Leaves out: gradients (``npgpt/training/backward.py`` reads these activations, it adds none).
"""

from __future__ import annotations

import difflib
from typing import Callable, Mapping

import numpy as np

from .errors import InputError

Hooks = Mapping[str, Callable[[np.ndarray], np.ndarray]]

# name -> (axes, what it is). The order is the order of the forward pass.
ACTIVATIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "embed": (("batch", "n_seq", "n_embd"), "token embeddings wte[ids]"),
    "pos_embed": (("batch", "n_seq", "n_embd"), "positional embeddings wpe[positions]"),
    "blocks.{l}.resid_pre": (("batch", "n_seq", "n_embd"), "residual stream entering block l"),
    "blocks.{l}.ln1": (("batch", "n_seq", "n_embd"), "after ln_1, the attention's input"),
    "blocks.{l}.attn.q": (("batch", "n_head", "n_seq", "d_head"), "queries"),
    "blocks.{l}.attn.k": (("batch", "n_head", "n_seq", "d_head"), "keys of the tokens fed in this call"),
    "blocks.{l}.attn.v": (("batch", "n_head", "n_seq", "d_head"), "values of the tokens fed in this call"),
    "blocks.{l}.attn.scores": (("batch", "n_head", "n_seq", "n_kv"), "QK^T/sqrt(d_head) + mask, -inf where masked"),
    "blocks.{l}.attn.pattern": (("batch", "n_head", "n_seq", "n_kv"), "softmax(scores): each row sums to 1"),
    "blocks.{l}.attn.z": (("batch", "n_head", "n_seq", "d_head"), "pattern @ V, each head's output"),
    "blocks.{l}.attn_out": (("batch", "n_seq", "n_embd"), "heads merged and projected (c_proj)"),
    "blocks.{l}.resid_mid": (("batch", "n_seq", "n_embd"), "resid_pre + attn_out"),
    "blocks.{l}.ln2": (("batch", "n_seq", "n_embd"), "after ln_2, the MLP's input"),
    "blocks.{l}.mlp.pre": (("batch", "n_seq", "d_mlp"), "MLP hidden layer before GELU"),
    "blocks.{l}.mlp.post": (("batch", "n_seq", "d_mlp"), "after GELU"),
    "blocks.{l}.mlp_out": (("batch", "n_seq", "n_embd"), "MLP output (c_proj)"),
    "blocks.{l}.resid_post": (("batch", "n_seq", "n_embd"), "resid_mid + mlp_out"),
    "ln_final": (("batch", "n_seq", "n_embd"), "after ln_f, the LM head's input"),
    "logits": (("batch", "n_seq", "n_vocab"), "ln_final @ wte^T"),
}

BLOCK_PREFIX = "blocks.{l}."
# Short names for ``cache["pattern", 3]``: the part after "blocks.{l}.", and its last word alone.
SHORT_NAMES: dict[str, str] = {}
for _name in ACTIVATIONS:
    if _name.startswith(BLOCK_PREFIX):
        _suffix = _name[len(BLOCK_PREFIX):]
        SHORT_NAMES[_suffix.split(".")[-1]] = _suffix


def axes(name: str) -> tuple[str, ...]:
    """The axes of the activation ``name`` (``"blocks.3.attn.pattern"`` or its template)."""
    return ACTIVATIONS[template(name)][0]


def template(name: str) -> str:
    """``"blocks.3.attn.pattern"`` -> ``"blocks.{l}.attn.pattern"``; raises KeyError for unknown names."""
    parts = name.split(".", 2)
    if parts[0] == "blocks" and len(parts) == 3 and parts[1].lstrip("-").isdigit():
        name = BLOCK_PREFIX + parts[2]
    if name not in ACTIVATIONS:
        raise KeyError(name)
    return name


def check_names(names, n_layer: int) -> None:
    """Refuse an activation name the forward pass never produces (a hook on it would never run),
    suggesting the closest valid ones."""
    valid = [t.replace("{l}", str(l)) for t in ACTIVATIONS for l in (range(n_layer) if "{l}" in t else [0])]
    for name in names:
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else (
                "; names are listed in npgpt.activations.ACTIVATIONS, e.g. 'blocks.0.attn.pattern'")
            raise InputError(f"no activation is named {name!r} in a {n_layer}-layer model{hint}")


class Tap:
    """Where the forward pass shows its activations: ``tap(name, x)`` lets a hook replace ``x``
    (``hooks={name: fn}``, fn returns an array of the same shape) and records the result in
    ``cache``. ``tap.block(l)`` is the same tap with names prefixed ``blocks.{l}.``.

    The math functions of ``npgpt/model.py`` take one ``tap`` instead of hooks, a cache and a
    name prefix each; ``NO_TAP`` (the default) does nothing.
    """

    def __init__(self, hooks: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None,
                 cache: dict | None = None, prefix: str = ""):
        self.hooks, self.cache, self.prefix = hooks or {}, cache, prefix

    def block(self, layer: int) -> "Tap":
        return Tap(self.hooks, self.cache, f"blocks.{layer}.")

    def __call__(self, name: str, x: np.ndarray) -> np.ndarray:
        name = self.prefix + name
        hook = self.hooks.get(name)
        if hook is not None:
            replaced = np.asarray(hook(x))
            if replaced.shape != x.shape:
                raise InputError(f"hook on {name!r} returned shape {replaced.shape}; it must keep {x.shape}")
            x = replaced.astype(x.dtype, copy=False)
        if self.cache is not None:
            self.cache[name] = x
        return x


NO_TAP = Tap()


class ActivationCache(dict):
    """A dict of activations by name, also indexable as ``cache["pattern", 3]``.

    ``cache["pattern", 3]`` is ``cache["blocks.3.attn.pattern"]``; the short names are the last
    word of each block activation (resid_pre, ln1, q, k, v, scores, pattern, z, attn_out, resid_mid,
    ln2, pre, post, mlp_out, resid_post); the full suffixes (``"attn.pattern"``, ``"mlp.post"``)
    work too. Negative layers count from the end.
    """

    def __getitem__(self, key):
        if isinstance(key, tuple):
            short, layer = key
            suffix = SHORT_NAMES.get(short, short)
            if suffix not in SHORT_NAMES.values():
                raise KeyError(f"unknown activation {short!r}; short names are {', '.join(SHORT_NAMES)}")
            if layer < 0:
                layer += self.n_layer
            key = f"blocks.{layer}.{suffix}"
        return super().__getitem__(key)

    @property
    def n_layer(self) -> int:
        return sum(1 for k in self.keys() if k.endswith(".resid_pre"))


def markdown_table() -> str:
    """``ACTIVATIONS`` as a Markdown table (``docs/architecture.md`` holds it; a test keeps the two equal)."""
    rows = ["| name | axes | what it is |", "|---|---|---|"]
    rows += [f"| `{name}` | [{', '.join(axes)}] | {about} |" for name, (axes, about) in ACTIVATIONS.items()]
    return "\n".join(rows)
