"""Shared fixtures. Anything slow to build (Hugging Face oracle models) is session-scoped."""

from __future__ import annotations

import numpy as np
import pytest

import npgpt


def hf_gpt2(config: npgpt.GPT2Config, seed: int = 0):
    """A transformers GPT2LMHeadModel of ``config``'s shape, eager attention, every parameter random.

    transformers initialises layer norms to weight 1 / bias 0 and linear biases to 0; those are
    perturbed here, or the terms they multiply would go untested.
    """
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    hf_config = transformers.GPT2Config(**config.to_hf_dict())
    hf_config._attn_implementation = "eager"  # the only implementation that returns attention patterns
    model = transformers.GPT2LMHeadModel(hf_config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.05 * torch.randn_like(p))
            elif ".ln_" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
    return model


@pytest.fixture(scope="session")
def oracle_pair(tmp_path_factory):
    """oracle_pair(preset, n_layer) -> (hf_model, npgpt_model, folder): the same weights in both.

    The HF model is written with ``save_pretrained`` and read back with ``npgpt.load``.
    """
    made = {}

    def make(preset: str, n_layer: int = 2):
        key = (preset, n_layer)
        if key not in made:
            config = npgpt.PRESETS[preset].replace(n_layer=n_layer)
            hf = hf_gpt2(config, seed=len(made))
            folder = tmp_path_factory.mktemp(f"hf-{preset}-{n_layer}")
            hf.save_pretrained(folder)
            made[key] = (hf, npgpt.load(folder), folder)
        return made[key]

    return make


def hf_logits(hf_model, ids, **kwargs):
    import torch

    with torch.no_grad():
        out = hf_model(torch.as_tensor(np.atleast_2d(ids)), **kwargs)
    return out


@pytest.fixture(scope="session")
def tiny_model():
    """A small random model for fast tests of plumbing (not of numbers against an oracle)."""
    config = npgpt.GPT2Config(n_vocab=300, n_ctx=64, n_embd=32, n_head=4, n_layer=2)
    model = npgpt.random_model(config, seed=1)
    rng = np.random.default_rng(2)
    for block in model.params["h"]:  # non-trivial layer norms and biases, as in a trained model
        for ln in (block["ln_1"], block["ln_2"]):
            ln["weight"] += rng.normal(0, 0.2, ln["weight"].shape).astype(np.float32)
            ln["bias"] += rng.normal(0, 0.1, ln["bias"].shape).astype(np.float32)
    return model
