"""Models read in place from a Hugging Face cache laid out as the real one is: no second copy.

A cache is built here as huggingface_hub leaves it (``refs/main``, ``snapshots/<commit>/`` whose
files are relative symlinks into ``blobs/``, blobs named by sha256 or git blob id), holding
checkpoints laid out as the Hub's own files are (``hub_server.hub_safetensors``): the real names,
the ``attn.bias`` buffers, no ``lm_head.weight`` and an unpadded header, so every float32 of gpt2's
file is misaligned. Nothing here touches the network: HF_HUB_OFFLINE is set.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import npgpt
import npgpt.hub
from npgpt.tokenizer import gpt2_files
from npgpt.weights import expected_shapes, flatten, read_safetensors_header

sys.path.insert(0, str(Path(__file__).parent))
from hub_server import git_blob_id, hub_safetensors, real_config

IDS = [15496, 995, 11, 616, 1438, 318]  # "Hello world, my name is"


def write_cache(cache: Path, repo_id: str, files: dict[str, bytes], commit: str = "607a30d783dfa663caf39e06633721c8d4cfcd7e") -> Path:
    """``files`` as huggingface_hub stores them in ``cache``; the snapshot folder."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        blob = hashlib.sha256(data).hexdigest() if name.endswith(".safetensors") else git_blob_id(data)
        (repo / "blobs" / blob).write_bytes(data)
        os.symlink(f"../../blobs/{blob}", snapshot / name)
    return snapshot


def tokenizer_files() -> dict[str, bytes]:
    """GPT-2's vocab.json + merges.txt, as the Hub serves them (the tokenizer writes them byte for byte)."""
    tokenizer = npgpt.Tokenizer.from_files(*gpt2_files())
    return {"vocab.json": json.dumps(dict(sorted(tokenizer.encoder.items(), key=lambda i: i[1]))).encode(),
            "merges.txt": ("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in tokenizer.merges)).encode()}


def random_flat(config: npgpt.GPT2Config, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    flat = {}
    for name, shape in expected_shapes(config).items():
        scale = 0.02 if name.endswith("weight") and len(shape) == 2 else 0.1
        flat[name] = rng.normal(1.0 if ".ln_" in name and name.endswith("weight") else 0.0, scale, shape).astype(np.float32)
    return flat


def tree(root: Path) -> dict[str, int]:
    """Every file under ``root`` (symlinks as links), with its size: to see that nothing was written."""
    return {str(p.relative_to(root)): p.lstat().st_size for p in root.rglob("*")}


@pytest.fixture
def offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("NPGPT_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return tmp_path


@pytest.mark.oracle
def test_gpt2_in_a_real_cache_layout_loads_in_place_and_matches_transformers(offline):
    """gpt2's width and layout (2 layers, to keep it quick), read where it lies, equal to transformers."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config_json = real_config("gpt2", n_layer=2)
    config = npgpt.GPT2Config.from_hf_dict(json.loads(config_json))
    flat = random_flat(config, seed=0)
    weights_file = hub_safetensors(flat, config.n_ctx)
    snapshot = write_cache(offline / "hf" / "hub", "openai-community/gpt2",
                           {"config.json": config_json, "model.safetensors": weights_file, **tokenizer_files()})
    entries, data_start = read_safetensors_header(snapshot / "model.safetensors")
    assert data_start % 4 and "h.1.attn.bias" in entries and "lm_head.weight" not in entries  # as on the Hub
    before = tree(offline)

    model = npgpt.load("gpt2")

    assert tree(offline) == before  # nothing written: not in the weights folder, not in the cache
    assert model.name == "gpt2" and model.tokenizer.encode("Hello world, my name is") == IDS
    for name, value in flatten(model.params).items():
        assert value.flags.aligned and value.dtype == np.float32, name  # made aligned at load, in memory
        np.testing.assert_array_equal(value, flat[name])
    ours = model.logits(IDS)

    theirs_model = transformers.GPT2LMHeadModel.from_pretrained(snapshot).eval()
    with torch.no_grad():
        theirs = theirs_model(torch.tensor([IDS])).logits[0].numpy()
    assert np.max(np.abs(theirs - ours)) < 1e-4
    assert tree(offline) == before


def test_distilgpt2_layout_and_real_configs_load_in_place(offline):
    """distilgpt2's names carry the transformer. prefix (with the buffers), its config label maps;
    gpt2-medium's config has n_special and predict_special_tokens. Small widths, real layouts."""
    for kind, repo_id, prefix in (("distilgpt2", "distilbert/distilgpt2", "transformer."),
                                  ("gpt2-medium", "openai-community/gpt2-medium", "")):
        config_json = real_config(kind, n_layer=2, n_embd=32, n_head=4, n_ctx=64)
        config = npgpt.GPT2Config.from_hf_dict(json.loads(config_json))
        flat = random_flat(config, seed=1)
        snapshot = write_cache(offline / "hf" / "hub", repo_id, {"config.json": config_json,
                               "model.safetensors": hub_safetensors(flat, config.n_ctx, prefix=prefix), **tokenizer_files()})
        before = tree(offline)
        model = npgpt.load(kind)
        assert tree(offline) == before
        assert npgpt.hub.find_local(kind) == snapshot
        for name, value in flatten(model.params).items():
            assert value.flags.aligned
            np.testing.assert_array_equal(value, flat[name])
    assert {(m.name, m.kind) for m in npgpt.hub.list_models()} >= {("distilgpt2", "hf-cache"), ("gpt2-medium", "hf-cache")}


def test_misaligned_tensors_are_read_not_mapped_and_buffers_not_read(tmp_path):
    """Aligned tensors stay views of the mapped file; misaligned ones are fresh aligned arrays."""
    from npgpt.weights import is_mask_buffer, open_safetensors

    flat = {"h.0.ln_1.weight": np.arange(5, dtype=np.float32), "wte.weight": np.ones((3, 4), np.float32)}
    path = tmp_path / "m.safetensors"
    for n_ctx in (8, 16, 100, 1000, 10000):  # the buffer's shape sets the header's length: find an odd one
        path.write_bytes(hub_safetensors(flat, n_ctx=n_ctx))
        if read_safetensors_header(path)[1] % 4:
            break
    tensors = open_safetensors(path, skip=is_mask_buffer)
    assert set(tensors) == set(flat)
    for name, value in tensors.items():
        assert value.flags.aligned and value.flags.owndata  # read into its own aligned array, not a view
        np.testing.assert_array_equal(value, flat[name])
