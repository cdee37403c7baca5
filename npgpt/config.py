"""GPT-2 hyper-parameters: one frozen dataclass, presets for the released sizes, config.json I/O.

The field names are the dimension letters used in every shape comment of ``npgpt/model.py``:

    n_vocab  tokens in the vocabulary (50257 for GPT-2: 256 bytes + 50000 merges + <|endoftext|>)
    n_ctx    longest sequence the learned positional embedding covers (1024)
    n_embd   width of the residual stream
    n_head   attention heads per layer; d_head = n_embd // n_head
    n_layer  transformer blocks
    n_inner  hidden width of the MLP, 4 * n_embd unless a checkpoint says otherwise

Hugging Face's ``config.json`` calls these ``vocab_size``, ``n_positions``, ``n_embd``, ``n_head``,
``n_layer``, ``n_inner`` and ``layer_norm_epsilon``; ``from_hf_dict`` / ``to_hf_dict`` translate.
Leaves out: the dropout rates (inference and our training use none) and the GPT-2 variants that
``transformers`` can express but no released GPT-2 uses (other activations, attention scaled by
the layer index, cross-attention); a config that asks for one is refused, not silently ignored.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, InputError


@dataclass(frozen=True)
class GPT2Config:
    n_vocab: int = 50257
    n_ctx: int = 1024
    n_embd: int = 768
    n_head: int = 12
    n_layer: int = 12
    layer_norm_eps: float = 1e-5
    n_inner: int | None = None  # None means 4 * n_embd, as in every released GPT-2

    def __post_init__(self):
        for name in ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"config field {name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): each head "
                "gets an equal slice of the residual stream"
            )
        if self.n_inner is not None and (not isinstance(self.n_inner, int) or self.n_inner < 1):
            raise ConfigError(f"n_inner must be a positive integer or None, got {self.n_inner!r}")
        if not self.layer_norm_eps > 0:
            raise ConfigError(f"layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")

    @property
    def d_head(self) -> int:
        return self.n_embd // self.n_head

    @property
    def d_mlp(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    def n_params(self) -> int:
        """Number of parameters, counting the tied embedding / LM head once."""
        C, F = self.n_embd, self.d_mlp
        per_block = 2 * 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + (C * F + F) + (F * C + C)
        return self.n_vocab * C + self.n_ctx * C + self.n_layer * per_block + 2 * C

    @property
    def eot_id(self) -> int:
        """The id of ``<|endoftext|>``: the last token of every GPT-2 vocabulary (50256 in gpt2's)."""
        return self.n_vocab - 1

    def check_ids(self, ids, what: str = "token id") -> None:
        """Refuse any id outside 0..n_vocab-1, naming the first one (the one check every entry point uses)."""
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_vocab):
            bad = ids[(ids < 0) | (ids >= self.n_vocab)].flat[0]
            raise InputError(f"{what} {int(bad)} is outside the vocabulary (0..{self.n_vocab - 1})")

    def replace(self, **changes) -> "GPT2Config":
        return dataclasses.replace(self, **changes)

    # ---- Hugging Face config.json -------------------------------------------------------------

    def to_hf_dict(self) -> dict:
        """The fields ``transformers.GPT2Config`` reads, so a saved folder loads there too."""
        return {
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": self.n_vocab,
            "n_positions": self.n_ctx,
            "n_ctx": self.n_ctx,
            "n_embd": self.n_embd,
            "n_head": self.n_head,
            "n_layer": self.n_layer,
            "n_inner": self.n_inner,
            "layer_norm_epsilon": self.layer_norm_eps,
            "activation_function": "gelu_new",
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
            "initializer_range": 0.02,
            "scale_attn_weights": True,
            "scale_attn_by_inverse_layer_idx": False,
            "reorder_and_upcast_attn": False,
            "tie_word_embeddings": True,
            # <|endoftext|> is the last id in GPT-2's vocabulary (50256) and in the ones npgpt trains
            "bos_token_id": self.n_vocab - 1,
            "eos_token_id": self.n_vocab - 1,
            "torch_dtype": "float32",
        }

    @classmethod
    def from_hf_dict(cls, d: dict) -> "GPT2Config":
        model_type = d.get("model_type", "gpt2")
        if model_type != "gpt2":
            raise ConfigError(
                f"config.json describes a {model_type!r} model; npgpt runs GPT-2 models only "
                "(model_type 'gpt2', e.g. gpt2, gpt2-medium, distilgpt2 or a GPT-2 fine-tune)"
            )
        activation = d.get("activation_function", "gelu_new")
        if activation not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ConfigError(
                f"config.json asks for activation_function={activation!r}; npgpt implements "
                "GPT-2's tanh approximation of GELU ('gelu_new') only"
            )
        unsupported = {
            "scale_attn_by_inverse_layer_idx": True,
            "add_cross_attention": True,
            "scale_attn_weights": False,
            "tie_word_embeddings": False,
        }
        for key, bad in unsupported.items():
            if d.get(key, not bad) == bad:
                raise ConfigError(
                    f"config.json sets {key}={bad}, which no released GPT-2 uses and npgpt does not "
                    "implement"
                )
        try:
            return cls(
                n_vocab=d["vocab_size"],
                n_ctx=d.get("n_positions", d.get("n_ctx", 1024)),
                n_embd=d["n_embd"],
                n_head=d["n_head"],
                n_layer=d["n_layer"],
                layer_norm_eps=float(d.get("layer_norm_epsilon", 1e-5)),
                n_inner=d.get("n_inner"),
            )
        except KeyError as e:
            raise ConfigError(f"config.json is missing the field {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:  # e.g. "layer_norm_epsilon": "x"
            raise ConfigError(f"config.json has a field of the wrong type ({e}); re-download or re-save the model") from None

    def save(self, path: str | os.PathLike) -> None:
        """Write ``config.json`` atomically (a temporary file renamed into place)."""
        from ._files import write_json

        write_json(path, self.to_hf_dict(), indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "GPT2Config":
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except FileNotFoundError:
            raise ConfigError(f"no config.json at {os.fspath(path)!r}") from None
        except OSError as e:  # a folder named config.json, no permission to read it, ...
            raise ConfigError(f"cannot read {os.fspath(path)!r} ({e.strerror}); it must be a readable JSON file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{os.fspath(path)!r} is not valid JSON ({e}); re-download or re-save the model") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{os.fspath(path)!r} must hold a JSON object")
        return cls.from_hf_dict(d)


PRESETS: dict[str, GPT2Config] = {
    "gpt2": GPT2Config(n_layer=12, n_embd=768, n_head=12),           # 124M
    "gpt2-medium": GPT2Config(n_layer=24, n_embd=1024, n_head=16),   # 355M
    "gpt2-large": GPT2Config(n_layer=36, n_embd=1280, n_head=20),    # 774M
    "gpt2-xl": GPT2Config(n_layer=48, n_embd=1600, n_head=25),       # 1558M
    "distilgpt2": GPT2Config(n_layer=6, n_embd=768, n_head=12),      # 82M
}


def get_config(config_or_preset: "GPT2Config | str") -> GPT2Config:
    """A config, or the preset of that name."""
    if isinstance(config_or_preset, GPT2Config):
        return config_or_preset
    try:
        return PRESETS[config_or_preset]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown preset {config_or_preset!r}; choose one of {', '.join(PRESETS)} "
            "or pass a GPT2Config"
        ) from None
