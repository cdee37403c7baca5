"""The `npgpt generate`, `npgpt score` and `npgpt chat` commands, on a small model folder in tmp_path."""

from __future__ import annotations

import importlib.util
import io
import json

import numpy as np
import pytest

import npgpt
import npgpt.cli
from npgpt.generate import generate, score

MINE = ["generate", "score", "chat"]


@pytest.fixture(autouse=True)
def commands(monkeypatch):
    """npgpt.cli.COMMANDS with these commands in it, whether or not the lead has added them yet
    (and without listed modules that do not exist yet)."""
    present = [c for c in npgpt.cli.COMMANDS if importlib.util.find_spec(f"npgpt.commands.{c}")]
    monkeypatch.setattr(npgpt.cli, "COMMANDS", present + [c for c in MINE if c not in present])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    config = npgpt.GPT2Config(n_vocab=50257, n_ctx=128, n_embd=32, n_head=4, n_layer=2)
    model = npgpt.random_model(config, seed=5)
    model.tokenizer = npgpt.Tokenizer.gpt2()
    path = tmp_path_factory.mktemp("cli-model") / "tiny-gpt2"
    npgpt.save(model, path)
    return str(path)


@pytest.fixture(scope="module")
def model(folder):
    return npgpt.load(folder)


def cli(capsys, *argv):
    rc = npgpt.cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_generate_streams_the_prompt_and_continuation(capsys, folder, model):
    rc, out, err = cli(capsys, "generate", "Once upon a time", "--model", folder, "-n", "8", "--seed", "3")
    assert rc == 0
    assert out == "Once upon a time" + generate(model, "Once upon a time", max_new_tokens=8, seed=3) + "\n"
    assert "8 tokens" in err and "tok/s" in err and "first token" in err and "seed 3" in err and "length" in err
    assert cli(capsys, "generate", "Once upon a time", "--model", folder, "-n", "8", "--seed", "3")[1] == out


def test_generate_greedy_and_sampling_options(capsys, folder, model):
    rc, out, err = cli(capsys, "generate", "Hello", "--model", folder, "-n", "6", "--temperature", "0")
    assert rc == 0 and out == "Hello" + generate(model, "Hello", max_new_tokens=6, temperature=0) + "\n"
    assert "greedy" in err
    args = ["--top-k", "40", "--top-p", "0.9", "--min-p", "0.01", "--repetition-penalty", "1.2", "--temperature", "0.8"]
    rc, out, _ = cli(capsys, "generate", "Hello", "--model", folder, "-n", "6", "--seed", "1", *args)
    expected = generate(model, "Hello", max_new_tokens=6, seed=1, top_k=40, top_p=0.9, min_p=0.01, repetition_penalty=1.2, temperature=0.8)
    assert rc == 0 and out == "Hello" + expected + "\n"


def test_dtype_float16_holds_half_precision_and_computes_in_float32(capsys, folder, monkeypatch):
    # The folder is float32: --dtype float16 rounds the weights once; the rest is float32 arithmetic.
    loaded = []
    real_load = npgpt.load
    monkeypatch.setattr(npgpt, "load", lambda *a, **kw: loaded.append(real_load(*a, **kw)) or loaded[-1])
    rc, out, _ = cli(capsys, "generate", "Hello", "--model", folder, "-n", "6", "--temperature", "0", "--dtype", "float16")
    assert rc == 0 and loaded[0].params["wte"]["weight"].dtype == np.float16
    halved = npgpt.load(folder, dtype="float16")
    assert out == "Hello" + generate(halved, "Hello", max_new_tokens=6, temperature=0) + "\n"
    with pytest.raises(SystemExit) as exit:  # argparse's own error, exit code 2
        cli(capsys, "generate", "Hello", "--model", folder, "--dtype", "int8")
    assert exit.value.code == 2 and "invalid choice: 'int8'" in capsys.readouterr().err


def test_generate_without_seed_reports_the_seed_it_drew(capsys, folder):
    rc, out, err = cli(capsys, "generate", "Hi", "--model", folder, "-n", "5")
    seed = int(err.split("seed ")[1].split(";")[0])
    assert cli(capsys, "generate", "Hi", "--model", folder, "-n", "5", "--seed", str(seed))[1] == out


def test_generate_json(capsys, folder, model):
    rc, out, _ = cli(capsys, "generate", "Hello", "Bye", "--model", folder, "-n", "5", "--seed", "2", "--num-samples", "2", "--json", "--alternatives", "3")
    assert rc == 0
    data = json.loads(out)
    assert [(c["prompt_index"], c["sample_index"]) for c in data["completions"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    expected = generate(model, ["Hello", "Bye"], max_new_tokens=5, seed=2, num_samples=2)
    assert [c["text"] for c in data["completions"]] == [t for pair in expected for t in pair]
    c = data["completions"][0]
    assert c["prompt"] == "Hello" and c["prompt_ids"] == [15496] and len(c["ids"]) == 5
    assert [t["id"] for t in c["tokens"]] == c["ids"] and all(0 < t["prob"] <= 1 for t in c["tokens"])
    assert all(len(t["top"]) == 3 for t in c["tokens"])
    assert data["stats"]["new_tokens"] == 20 and data["settings"]["seed"] == 2


def test_generate_several_prompts_and_samples(capsys, folder):
    rc, out, err = cli(capsys, "generate", "Hello", "Bye", "--model", folder, "-n", "4", "--num-samples", "2", "--seed", "0")
    assert rc == 0
    for label in ("prompt 1, sample 1", "prompt 1, sample 2", "prompt 2, sample 1", "prompt 2, sample 2"):
        assert f"--- {label} ---\n" in out
    assert "16 tokens" in err


def test_generate_reads_stdin(capsys, folder, model, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("From stdin"))
    rc, out, _ = cli(capsys, "generate", "-", "--model", folder, "-n", "4", "--temperature", "0")
    assert rc == 0 and out == "From stdin" + generate(model, "From stdin", max_new_tokens=4, temperature=0) + "\n"


def test_stop_option_understands_escapes():
    from npgpt.commands.generate import settings_from_args

    parser = npgpt.cli.build_parser()
    args = parser.parse_args(["generate", "x", "--stop", r"\n", "--stop", "END"])
    assert settings_from_args(args)["stop"] == ("\n", "END")


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--temperature", "-1"], "temperature"),
        (["--top-p", "1.5"], "top_p"),
        (["--top-p", "-0.1"], "top_p"),
        (["--top-k", "-2"], "top_k"),
        (["--min-p", "3"], "min_p"),
        (["--max-new-tokens", "-1"], "max_new_tokens"),
        (["--num-samples", "0"], "num_samples"),
        (["--repetition-penalty", "0"], "repetition_penalty"),
        (["--max-new-tokens", "500"], "sliding-window"),
        (["--alternatives", "3"], "--json"),
    ],
)
def test_invalid_settings_exit_2_with_one_clear_line(capsys, folder, argv, words):
    rc, out, err = cli(capsys, "generate", "Hello", "--model", folder, *argv)
    assert rc == 2 and out == ""
    assert err.startswith("npgpt: error: ") and words in err and err.count("\n") == 1


def test_unknown_model_exits_2(capsys, tmp_path):
    rc, _, err = cli(capsys, "generate", "Hello", "--model", str(tmp_path / "no-such-model"), "-n", "2")
    assert rc == 2 and err.startswith("npgpt: error: ")


@pytest.mark.parametrize("command", MINE)
def test_help_has_examples(capsys, command):
    with pytest.raises(SystemExit) as exit:
        npgpt.cli.main([command, "--help"])
    out = capsys.readouterr().out
    assert exit.value.code == 0 and "examples:" in out and f"npgpt {command}" in out
    if command != "score":
        for flag in ("--model", "--seed", "--temperature", "--top-k", "--top-p", "--max-new-tokens"):
            assert flag in out
    if command == "generate":
        assert "--num-samples" in out and "--json" in out


# ---- score -------------------------------------------------------------------------------------


TEXT = "The quick brown fox jumps over the lazy dog. It was not amused."


def test_score_text_json(capsys, folder, model):
    rc, out, _ = cli(capsys, "score", TEXT, "--model", folder, "--json")
    assert rc == 0
    data = json.loads(out)
    expected = score(model, TEXT)
    assert [t["id"] for t in data["tokens"]] == expected.ids
    assert data["tokens"][0]["logprob"] is None
    assert data["perplexity"] == pytest.approx(expected.perplexity) and data["scored_tokens"] == len(expected.ids) - 1


def test_score_file_table_and_windows(capsys, folder, model, tmp_path):
    path = tmp_path / "essay.txt"
    path.write_text(TEXT * 4, encoding="utf-8")
    rc, out, _ = cli(capsys, "score", str(path), "--model", folder, "--window", "32", "--stride", "16", "--bos")
    assert rc == 0
    expected = score(model, TEXT * 4, window=32, stride=16, prepend_eot=True)
    lines = out.splitlines()
    assert lines[0].split() == ["pos", "token", "logprob", "prob"]
    assert len(lines) == 1 + len(expected.ids) + 1
    assert f"perplexity {expected.perplexity:.3f}" in lines[-1] and "window 32, stride 16" in lines[-1]
    rc, out, _ = cli(capsys, "score", str(path), "--model", folder, "--quiet")
    assert rc == 0 and out.count("\n") == 1 and out.startswith("perplexity ")
    rc, out, _ = cli(capsys, "score", str(path), "--model", folder, "--quiet", "--text")  # the path itself, as text
    assert out.startswith("perplexity ") and f"over {len(model.tokenizer.encode(str(path))) - 1} tokens" in out


def test_score_errors(capsys, folder, tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("café".encode("latin-1"))
    rc, _, err = cli(capsys, "score", str(bad), "--model", folder)
    assert rc == 2 and "UTF-8" in err
    rc, _, err = cli(capsys, "score", TEXT, "--model", folder, "--stride", "0")
    assert rc == 2 and "stride" in err


# ---- chat --------------------------------------------------------------------------------------


def test_chat_loop_with_history_and_reset(capsys, folder, model, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("Hello\nWorld\n/reset\nAgain\n/help\n"))
    rc, out, err = cli(capsys, "chat", "--model", folder, "-n", "5", "--temperature", "0")
    assert rc == 0
    kw = dict(max_new_tokens=5, temperature=0, sliding_window=True)
    r1 = generate(model, "Hello", **kw)
    r2 = generate(model, f"Hello{r1}\nWorld", **kw)  # the conversation so far is the context
    r3 = generate(model, "Again", **kw)  # /reset forgot it
    assert out == "> " + r1 + "\n> " + r2 + "\n> > " + r3 + "\n> > "
    assert "forgotten" in err and "/reset" in err and err.count("tok/s") == 3


def test_chat_without_history_and_seeded(capsys, folder, model, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("Hello\nHello\n/quit\nnever read\n"))
    rc, out, err = cli(capsys, "chat", "--model", folder, "-n", "6", "--no-history", "--seed", "4")
    assert rc == 0 and "seed 4" in err
    replies = out.split("> ")[1:3]
    # one generator for the session: the two turns draw different samples, reproducibly
    rng = np.random.default_rng(4)
    kw = dict(max_new_tokens=6, sliding_window=True)
    assert replies == [generate(model, "Hello", seed=rng, **kw) + "\n", generate(model, "Hello", seed=rng, **kw) + "\n"]
    assert replies[0] != replies[1]
