"""Bad input never costs a user their work, their memory, or a traceback (issue 17, docs/reliability.md).

Each case of the issue has a test here; the sweep at the end feeds corrupted model folders and
out-of-range arguments to every command and asserts exit code 2, one line on stderr, no traceback.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import npgpt
import npgpt.cli
from npgpt.errors import ConfigError, InputError, NpgptError, WeightsError

TINY = npgpt.GPT2Config(n_vocab=300, n_ctx=16, n_embd=8, n_head=2, n_layer=1)
SHAKESPEARE = str(Path(__file__).resolve().parents[1] / "weights" / "shakespeare")


@pytest.fixture
def tiny_folder(tmp_path) -> Path:
    folder = tmp_path / "tiny"
    npgpt.save(npgpt.random_model(TINY, seed=0), folder)
    return folder


def cli(capsys, *argv) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``npgpt ARGV``; argparse's own exits count too."""
    try:
        code = npgpt.cli.main(list(argv))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *words):
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("npgpt: error: "), err
    for word in words:
        assert word in err, err


def with_config(folder: Path, **changes) -> Path:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def write_header(path: Path, header: dict, data: bytes = b"") -> Path:
    blob = json.dumps(header).encode()
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + data)
    return path


# ---- hangs and memory --------------------------------------------------------------------------


def test_a_billion_layers_in_config_json_fails_at_once(tiny_folder, capsys):
    with_config(tiny_folder, n_layer=1_000_000_000)
    start = time.perf_counter()
    with pytest.raises(WeightsError, match="n_layer=1000000000"):
        npgpt.load(tiny_folder)
    code, _, err = cli(capsys, "generate", "--model", str(tiny_folder), "hi")
    assert time.perf_counter() - start < 1.0
    assert_one_line_error(code, err, "do not belong together")


def test_a_billion_layers_fails_at_once_in_the_hub_path(tiny_folder):
    """convert() reads a Hub snapshot through normalize_checkpoint, which checks counts first."""
    from npgpt.weights import normalize_checkpoint, open_safetensors

    tensors = open_safetensors(tiny_folder / "model.safetensors")
    start = time.perf_counter()
    for huge in (TINY.replace(n_layer=10**9), TINY.replace(n_embd=10**6, n_head=1), TINY.replace(n_vocab=10**9)):
        with pytest.raises(WeightsError, match="do not belong together"):
            normalize_checkpoint(tensors, huge, "snapshot")
    assert time.perf_counter() - start < 1.0


def test_training_sizes_are_checked_against_memory_with_an_estimate():
    from npgpt.training.settings import check_memory

    with pytest.raises(ConfigError, match=r"needs about .* of memory but .* is available"):
        check_memory(TINY.replace(n_layer=10**9), batch_size=1, n_seq=16)
    with pytest.raises(ConfigError, match="--n-embd"):
        check_memory(TINY.replace(n_embd=10**6, n_head=1), batch_size=1, n_seq=16)
    check_memory(TINY, batch_size=2, n_seq=16)  # a small run passes


def test_train_with_a_billion_layers_stops_before_any_work(tmp_path, capsys):
    data = tmp_path / "data.txt"
    data.write_text("to be or not to be " * 50)
    start = time.perf_counter()
    code, _, err = cli(capsys, "train", "--data", str(data), "--out", str(tmp_path / "m"), "--n-layer", "1000000000")
    assert time.perf_counter() - start < 5
    assert_one_line_error(code, err, "needs about")
    assert not (tmp_path / "m").exists()


def test_tokenize_explain_is_capped_with_a_note(capsys):
    start = time.perf_counter()
    code, out, err = cli(capsys, "tokenize", "--explain", "--json", "a" * 100_000)
    assert code == 0 and time.perf_counter() - start < 15
    assert len(out) < 5_000_000
    assert "--explain shows the first 1,000 of the text's 100,000 characters" in err
    assert json.loads(out)["text"] == "a" * 1000


# ---- lost work ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["file", "unwritable"])
def test_an_unusable_out_folder_is_found_before_training(tmp_path, capsys, kind):
    data = tmp_path / "data.txt"
    data.write_text("to be or not to be " * 50)
    if kind == "file":
        out = tmp_path / "a-file"
        out.write_text("not a folder")
    else:
        out = Path("/proc/nope/x")
    start = time.perf_counter()
    code, _, err = cli(capsys, "train", "--data", str(data), "--out", str(out), "--steps", "1000")
    assert time.perf_counter() - start < 5
    assert_one_line_error(code, err, "--out")


def test_save_replaces_a_model_folder_whole(tmp_path):
    folder = tmp_path / "m"
    with_tokenizer = npgpt.random_model(TINY.replace(n_vocab=50257), seed=0)
    npgpt.save(with_tokenizer, folder)
    (folder / "notes.txt").write_text("mine")
    assert (folder / "vocab.json").exists()
    npgpt.save(npgpt.random_model(TINY, seed=1), folder)  # no tokenizer
    assert not (folder / "vocab.json").exists() and not (folder / "merges.txt").exists()
    assert (folder / "notes.txt").read_text() == "mine"  # files that are not the model's are kept
    assert npgpt.load(folder).tokenizer is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folder left behind


def test_a_failed_save_leaves_the_old_folder_intact(tmp_path, monkeypatch):
    import npgpt.weights

    folder = tmp_path / "m"
    npgpt.save(npgpt.random_model(TINY, seed=0), folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(npgpt.weights, "write_safetensors", disk_full)
    with pytest.raises(OSError):
        npgpt.save(npgpt.random_model(TINY, seed=1), folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    with pytest.raises(OSError):
        npgpt.save(npgpt.random_model(TINY, seed=1), tmp_path / "new")
    assert not (tmp_path / "new").exists()  # no empty folder either


def test_save_refuses_a_folder_holding_folders(tmp_path):
    (tmp_path / "project" / "src").mkdir(parents=True)
    with pytest.raises(WeightsError, match="holds folders"):
        npgpt.save(npgpt.random_model(TINY), tmp_path / "project")
    assert (tmp_path / "project" / "src").is_dir()


def test_a_partial_download_counts_in_the_disk_space_check(tmp_path, monkeypatch):
    """The bytes of a partial file count as room: huggingface_hub 2.4 does not resume it, so it is
    deleted (its space given back) before the transfer, which then needs the rest."""
    fetch = importlib.import_module("npgpt.hub.fetch")  # npgpt.hub.fetch is also a function's name

    asked = []
    monkeypatch.setattr(fetch, "check_disk_space", lambda folder, needed, what: asked.append(needed))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    sha = "a" * 64
    blobs = tmp_path / "models--o--r" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{sha}.incomplete").write_bytes(b"x" * 600)
    fetch._make_room("o/r", fetch.RemoteFile("model.safetensors", 1000, sha, None))
    assert asked == [400] and not (blobs / f"{sha}.incomplete").exists()
    fetch._make_room("o/r", fetch.RemoteFile("model.safetensors", 1000, sha, None))
    assert asked == [400, 1000]


# ---- security ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sha256", ["../../../../etc/x", "A" * 64, "a" * 63, "a" * 63 + "/", 12])
def test_a_server_sha256_must_be_64_hex_digits(sha256):
    from npgpt.hub.fetch import RemoteFile, check_remote_file

    with pytest.raises(WeightsError, match="not 64 hex digits"):
        check_remote_file(RemoteFile("model.safetensors", 10, sha256, None), "owner/name")
    check_remote_file(RemoteFile("model.safetensors", 10, "0123456789abcdef" * 4, None), "owner/name")


# ---- silent wrong results ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, bad, capsys):
    model = npgpt.random_model(TINY, seed=0)
    model.params["h"][0]["mlp"]["c_fc"]["weight"][3, 2] = bad
    npgpt.save(model, tmp_path / "m")
    with pytest.raises(WeightsError, match=r"h\.0\.mlp\.c_fc\.weight holds 1 NaN or infinite"):
        npgpt.load(tmp_path / "m")
    loaded = npgpt.load(tmp_path / "m", allow_nonfinite=True)  # for debugging
    assert not np.isfinite(loaded.params["h"][0]["mlp"]["c_fc"]["weight"][3, 2])
    code, _, err = cli(capsys, "score", "--model", str(tmp_path / "m"), "hello")
    assert_one_line_error(code, err, "allow_nonfinite")


def test_integer_tensors_are_refused(tmp_path):
    from npgpt.weights import flatten
    from safetensors.numpy import save_file

    npgpt.save(npgpt.random_model(TINY), tmp_path / "m")
    flat = flatten(npgpt.random_model(TINY).params)
    flat["ln_f.bias"] = np.zeros(8, dtype=np.int32)
    save_file({k: np.ascontiguousarray(v) for k, v in flat.items()}, str(tmp_path / "m" / "model.safetensors"))
    with pytest.raises(WeightsError, match="ln_f.bias holds int32 values"):
        npgpt.load(tmp_path / "m")


def test_json_output_never_holds_a_bare_nan():
    from npgpt.commands.generate import to_json

    text = to_json({"a": float("nan"), "b": [np.float32("inf"), 1.5], "c": {"d": -np.inf}})
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": {"d": None}}


def test_a_misspelled_hook_name_is_refused_with_a_suggestion():
    model = npgpt.random_model(TINY.replace(n_layer=2))
    with pytest.raises(InputError, match=r"did you mean 'blocks.1.attn.z'"):
        model.logits([1, 2, 3], hooks={"blocks.1.attn.zz": lambda x: x * 0})


def test_a_prompt_of_n_ctx_tokens_may_get_one_new_token():
    from npgpt.generate import generate_ids

    model = npgpt.random_model(TINY)
    result = generate_ids(model, [[1] * TINY.n_ctx], max_new_tokens=1, temperature=0)
    assert len(result.completions[0].ids) == 1
    with pytest.raises(InputError, match="context"):
        generate_ids(model, [[1] * TINY.n_ctx], max_new_tokens=2, temperature=0)
    with pytest.raises(InputError, match="context"):
        generate_ids(model, [[1] * (TINY.n_ctx + 1)], max_new_tokens=0, temperature=0)


def test_models_marks_folders_that_cannot_load(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NPGPT_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    npgpt.save(npgpt.random_model(TINY), tmp_path / "good")
    npgpt.save(npgpt.random_model(TINY), tmp_path / "bad")
    with_config(tmp_path / "bad", n_layer=1_000_000, n_embd=4096, n_head=32)
    code, out, err = cli(capsys, "models")
    assert code == 0, err
    assert "bad (cannot load)" in out and "bad cannot load:" in out
    assert "good (cannot load)" not in out
    code, out, _ = cli(capsys, "models", "--json")
    rows = {r["name"]: r for r in map(json.loads, out.splitlines())}
    assert rows["bad"]["problem"] and rows["bad"]["n_params"] is None and rows["good"]["problem"] is None


@pytest.mark.parametrize("command", [["generate"], ["score"], ["tokenize"]])
def test_one_rule_for_undecodable_input_bytes(command):
    """stdin that is not UTF-8: refused with the offset of the first bad byte, in every command."""
    result = subprocess.run([sys.executable, "-m", "npgpt", *command, "-"], input=b"caf\xe9 au lait",
                            capture_output=True, timeout=120)
    err = result.stderr.decode()
    assert_one_line_error(result.returncode, err, "standard input is not UTF-8 text (byte 3")


def test_undecodable_argument_bytes_follow_the_same_rule(capsys):
    from npgpt.commands.generate import utf8_text

    text = os.fsdecode(b"caf\xe9")  # what Python makes of an argument that is not UTF-8
    with pytest.raises(InputError, match=r"is not UTF-8 text \(byte 3"):
        utf8_text(text, "the text argument")
    code, _, err = cli(capsys, "tokenize", text)
    assert_one_line_error(code, err, "byte 3")


def test_resume_with_fewer_steps_than_done_is_refused(tmp_path, capsys):
    data = tmp_path / "data.txt"
    data.write_text("to be or not to be, that is the question. " * 40)
    out = str(tmp_path / "m")
    args = ["train", "--data", str(data), "--out", out, "--n-layer", "1", "--n-embd", "8", "--n-head", "2",
            "--n-ctx", "16", "--vocab-size", "260", "--batch-size", "2", "--steps", "3", "--eval-interval", "3",
            "--sample-interval", "0"]
    code, _, err = cli(capsys, *args)
    assert code == 0, err
    code, _, err = cli(capsys, "train", "--data", str(data), "--out", out, "--resume", "--steps", "2")
    assert_one_line_error(code, err, "already at step 3", "steps=2")


@pytest.mark.parametrize("flag, value", [("--grad-clip", "nan"), ("--weight-decay", "nan"), ("--lr", "inf"),
                                         ("--min-lr", "nan"), ("--dropout", "nan")])
def test_non_finite_training_settings_are_refused_at_once(tmp_path, capsys, flag, value):
    data = tmp_path / "data.txt"
    data.write_text("hello " * 100)
    code, _, err = cli(capsys, "train", "--data", str(data), "--out", str(tmp_path / "m"), flag, value)
    assert_one_line_error(code, err, "finite")
    assert not (tmp_path / "m").exists()


# ---- tracebacks instead of one line ------------------------------------------------------------


def test_config_json_that_is_a_folder(tiny_folder, capsys):
    (tiny_folder / "config.json").unlink()
    (tiny_folder / "config.json").mkdir()
    code, _, err = cli(capsys, "score", "--model", str(tiny_folder), "hello")
    assert_one_line_error(code, err, "config.json", "Is a directory")


def test_a_model_name_over_255_characters(capsys):
    code, _, err = cli(capsys, "generate", "--model", "x" * 300, "hi")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("error, words", [
    (PermissionError(13, "Permission denied", "/ro/weights/x"), ["Permission denied", "/ro/weights/x", "permissions"]),
    (OSError(28, "No space left on device"), ["No space left", "free some space"]),
    (OSError(36, "File name too long", "x" * 300), ["File name too long", "shorter name"]),
    (OSError(30, "Read-only file system", "/ro"), ["read-only"]),
])
def test_the_cli_turns_os_errors_into_one_line(capsys, monkeypatch, error, words):
    import npgpt.commands.models as models

    def fail(args):
        raise error

    monkeypatch.setattr(models, "run", fail)
    code, _, err = cli(capsys, "models")
    assert_one_line_error(code, err, *words)


def test_stdout_on_a_full_device_is_one_line():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "npgpt", "tokenize", "hello"], stdout=full,
                                stderr=subprocess.PIPE, timeout=120)
    assert_one_line_error(result.returncode, result.stderr.decode(), "No space left")


def test_interrupted_goes_on_its_own_line(capsys, monkeypatch):
    import npgpt.commands.models as models

    def stream_then_ctrl_c(args):
        sys.stdout.write("To be or not")
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "run", stream_then_ctrl_c)
    code, out, err = cli(capsys, "models")
    assert code == 130 and out == "To be or not" and err == "\nnpgpt: interrupted\n"
    monkeypatch.setattr(models, "run", lambda args: (_ for _ in ()).throw(KeyboardInterrupt))
    code, out, err = cli(capsys, "models")
    assert code == 130 and err == "npgpt: interrupted\n"


@pytest.mark.parametrize("header, words", [
    ({"a": {"dtype": "F32", "shape": [2**32, 2**32], "data_offsets": [0, 0]}}, ["bad shape"]),
    ({"a": {"dtype": "F32", "shape": [0, 10**30], "data_offsets": [0, 0]}}, ["bad shape"]),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, ["starts at byte"]),
    ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, ["bad shape"]),
    ({"a": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, ["bad shape"]),
])
def test_bad_safetensors_headers_are_one_weights_error(tmp_path, header, words):
    from npgpt.weights import open_safetensors

    path = write_header(tmp_path / "model.safetensors", header, b"\0" * 16)
    with pytest.raises(WeightsError, match="truncated or corrupt") as info:
        open_safetensors(path)
    for word in words:
        assert word in str(info.value)


def test_a_server_error_on_the_weights_metadata_is_one_clear_error(tmp_path, monkeypatch):
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    fetch = importlib.import_module("npgpt.hub.fetch")
    signed = "http://localhost/cdn/x?Expires=1&Signature=secret"
    response = httpx2.Response(503, request=httpx2.Request("HEAD", signed))
    calls = []

    def unavailable(*args, **kwargs):  # what hf_hub_download raises when its HEAD request got a 503
        calls.append(args)
        try:
            raise HfHubHTTPError(f"503 Service Unavailable for url {signed}", response=response)
        except HfHubHTTPError as e:
            raise LocalEntryNotFoundError("An error happened while trying to locate the file") from e

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.hf_hub_download", unavailable)
    monkeypatch.setattr(fetch, "_pause", lambda seconds: None)
    remote = {"model.safetensors": fetch.RemoteFile("model.safetensors", 10, "a" * 64, None)}
    with pytest.raises(npgpt.errors.ModelNotFoundError, match="HTTP 503.*run the same command again") as info:
        fetch._fetch_file("o/r", "c" * 40, remote, "model.safetensors", False)
    assert len(calls) == fetch._MAX_TRIES and "secret" not in str(info.value)


# ---- viz ---------------------------------------------------------------------------------------


def test_viz_takes_options_before_the_text(tmp_path, capsys):
    out = tmp_path / "x.png"
    code, _, err = cli(capsys, "viz", "attention", "--model", SHAKESPEARE, "The cat", "-o", str(out))
    assert code == 0, err
    assert out.stat().st_size > 0


@pytest.mark.parametrize("args, words", [
    (["--gamma", "-1"], ["--gamma must be a number > 0"]),
    (["--gamma", "nan"], ["--gamma"]),
    (["--dpi", "0"], ["--dpi must be between"]),
    (["--dpi", "100000"], ["--dpi must be between"]),
])
def test_viz_arguments_out_of_range(tmp_path, capsys, args, words):
    code, _, err = cli(capsys, "viz", "attention", "The cat", "--model", SHAKESPEARE, "-o", str(tmp_path / "x.png"), *args)
    assert_one_line_error(code, err, *words)


def test_viz_layers_names_the_flag(tmp_path, capsys):
    code, _, err = cli(capsys, "viz", "html", "The cat", "--model", SHAKESPEARE, "--layers", "0,9", "-o", str(tmp_path / "v.html"))
    assert_one_line_error(code, err, "--layers 0,9", "layer 9 does not exist")


# ---- the sweep ---------------------------------------------------------------------------------

CORRUPT_CONFIGS = [
    {"n_layer": 1_000_000_000}, {"n_layer": 0}, {"n_layer": -1}, {"n_layer": 1.5}, {"n_layer": "2"},
    {"n_layer": None}, {"n_layer": True}, {"n_embd": 10**12}, {"n_head": 3}, {"n_head": 0},
    {"vocab_size": 10**15}, {"vocab_size": 0}, {"n_positions": 10**12}, {"n_positions": -5},
    {"n_inner": 10**9}, {"n_inner": -1}, {"layer_norm_epsilon": -1}, {"layer_norm_epsilon": "x"},
    {"model_type": "llama"}, {"activation_function": "relu"}, {"tie_word_embeddings": False},
]
CORRUPT_CONFIG_FILES = [b"", b"{", b"[1, 2]", b"null", b"\xff\xfe", b'{"vocab_size": 300}', b"1e999999"]


@pytest.mark.parametrize("changes", CORRUPT_CONFIGS, ids=lambda c: json.dumps(c))
def test_sweep_corrupted_configs(tiny_folder, capsys, changes):
    with_config(tiny_folder, **changes)
    start = time.perf_counter()
    with pytest.raises(NpgptError):
        npgpt.load(tiny_folder)
    code, _, err = cli(capsys, "score", "--model", str(tiny_folder), "hello")
    assert time.perf_counter() - start < 2
    assert_one_line_error(code, err)


@pytest.mark.parametrize("content", CORRUPT_CONFIG_FILES, ids=repr)
def test_sweep_corrupted_config_files(tiny_folder, capsys, content):
    (tiny_folder / "config.json").write_bytes(content)
    code, _, err = cli(capsys, "generate", "--model", str(tiny_folder), "hello")
    assert_one_line_error(code, err)


def _bad_weights(folder: Path, kind: str) -> None:
    path = folder / "model.safetensors"
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    name = max((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])  # the last
    if kind == "truncated":
        path.write_bytes(data[:-10])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "huge-header-length":
        path.write_bytes((2**63).to_bytes(8, "little") + data[8:])
    elif kind == "not-json":
        path.write_bytes(data[:8] + b"x" * n + data[8 + n:])
    else:
        header[name] = {
            "missing-tensor": None, "overflow": {"dtype": "F32", "shape": [2**32, 2**32], "data_offsets": [0, 0]},
            "bad-dtype": dict(header[name], dtype="Q9"), "int-dtype": dict(header[name], dtype="I32"),
            "overlap": dict(header[name], data_offsets=[0, header[name]["data_offsets"][1] - header[name]["data_offsets"][0]]),
        }[kind]
        if header[name] is None:
            del header[name]
        blob = json.dumps(header).encode()
        path.write_bytes(len(blob).to_bytes(8, "little") + blob + data[8 + n:])


@pytest.mark.parametrize("kind", ["truncated", "empty", "huge-header-length", "not-json", "missing-tensor", "overflow",
                                  "bad-dtype", "int-dtype", "overlap"])
def test_sweep_corrupted_weights(tiny_folder, capsys, kind):
    _bad_weights(tiny_folder, kind)
    with pytest.raises(WeightsError):
        npgpt.load(tiny_folder)
    code, _, err = cli(capsys, "score", "--model", str(tiny_folder), "hello")
    assert_one_line_error(code, err)


SWEEP_ARGS = [
    ["generate", "hi", "--max-new-tokens", "-1"], ["generate", "hi", "--temperature", "-1"],
    ["generate", "hi", "--temperature", "nan"], ["generate", "hi", "--top-p", "2"], ["generate", "hi", "--top-k", "-1"],
    ["generate", "hi", "--min-p", "-0.5"], ["generate", "hi", "--repetition-penalty", "0"],
    ["generate", "hi", "--num-samples", "0"], ["generate", "hi", "--alternatives", "-1"],
    ["generate", "hi", "--max-new-tokens", "100000"],
    ["score", "hello there", "--window", "0"], ["score", "hello there", "--stride", "-1"], ["score", ""],
    ["score", "hello there", "--window", "100000"],
    ["chat", "--top-p", "1.5"], ["chat", "--temperature", "inf"],
    ["tokenize"], ["tokenize", "--file", "/nonexistent/file.txt"], ["tokenize", "x", "--file", "y"],
    ["tokenize", "--model", "/nonexistent/model", "x"], ["tokenize", "<|endoftext|>"],
    ["viz", "attention", "hi", "--layer", "99"], ["viz", "attention", "hi", "--head", "-1"], ["viz", "next-token", "hi", "--k", "0"],
    ["viz", "attention", "hi", "-o", "x.gif"], ["viz", "html", "hi", "-o", "x.png"], ["viz", "attention"],
    ["viz", "next-token", "hi", "--position", "99"],
    ["train", "--steps", "0"], ["train", "--batch-size", "-1"], ["train", "--lr", "-1"], ["train", "--beta2", "1"],
    ["train", "--val-fraction", "1.5"], ["train", "--dropout", "1"], ["train", "--n-head", "7"], ["train", "--n-layer", "0"],
    ["finetune", "--steps", "0"], ["finetune", "--lr", "inf"], ["finetune", "--repeat-fraction", "2"],
    ["download", "/not/a/name"], ["download", "x" * 300],
]


@pytest.mark.parametrize("argv", SWEEP_ARGS, ids=lambda a: " ".join(a)[:60])
def test_sweep_arguments_out_of_range(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("NPGPT_WEIGHTS", str(tmp_path / "weights"))
    data = tmp_path / "data.txt"
    data.write_text("to be or not to be " * 50)
    extra = {
        "generate": ["--model", SHAKESPEARE], "score": ["--model", SHAKESPEARE], "chat": ["--model", SHAKESPEARE],
        "viz": ["--model", SHAKESPEARE], "train": ["--data", str(data), "--out", str(tmp_path / "m")],
        "finetune": ["--model", SHAKESPEARE, "--data", str(data), "--out", str(tmp_path / "m")],
    }.get(argv[0], [])
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(""))
    start = time.perf_counter()
    code, _, err = cli(capsys, *argv, *extra)
    assert time.perf_counter() - start < 10
    assert_one_line_error(code, err)
    assert not (tmp_path / "m").exists()
