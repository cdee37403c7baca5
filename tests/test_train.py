"""Training (npgpt/training/), its commands (train, finetune, data) and the bundled Shakespeare model.

Everything trains tiny models on a text made up here, for a few dozen steps: the loss must fall,
a resumed run must end bit-identical to an uninterrupted one, and the output must be a model
folder that npgpt and transformers both load. Nothing reads /work/shared or the network.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

import npgpt
import npgpt.cli
from npgpt.training.backward import cross_entropy
from npgpt.errors import InputError, NpgptError
from npgpt.model import gpt2
from npgpt.training import (
    TrainSettings,
    encode_dataset,
    evaluate,
    finetune,
    format_duration,
    get_batch,
    load_checkpoint,
    nats_per_char,
    pretrain,
    repeat_spans,
    split_text,
)
from npgpt.training.optim import lr_schedule
from npgpt.weights import flatten

REPO = Path(__file__).resolve().parents[1]

TINY = npgpt.GPT2Config(n_vocab=320, n_ctx=32, n_embd=32, n_head=4, n_layer=2)
QUICK = TrainSettings(steps=40, batch_size=8, lr=3e-3, warmup_steps=5, eval_interval=20, sample_interval=20,
                      sample_tokens=12, sample_prompt="the")


def make_text(n_lines: int = 600, seed: int = 0) -> str:
    """Text with structure a small model can learn quickly: names, then short formulaic lines."""
    rng = np.random.default_rng(seed)
    names = ["ROMEO", "JULIET", "NURSE", "FRIAR"]
    verbs = ["loves", "fears", "sees", "calls", "waits for", "speaks to"]
    things = ["the night", "the moon", "the garden", "her lord", "the friar", "the sword"]
    lines = []
    for _ in range(n_lines):
        who, how = rng.choice(names), rng.choice(["fair", "sad", "old"])
        lines.append(f"{who}:\nThe {how} one {rng.choice(verbs)} {rng.choice(things)}.\n")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "plays.txt"
    path.write_text(make_text(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(text_file, tmp_path_factory):
    """One quick pre-training run, shared by the tests that only read its results."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    log = io.StringIO()
    result = pretrain(text_file, out, config=TINY, settings=QUICK, stream=log)
    return result, out, log.getvalue()


def run_cli(monkeypatch, argv):
    """npgpt's CLI with this issue's commands registered (whether or not cli.COMMANDS has them yet)."""
    missing = [c for c in ("train", "finetune", "data") if c not in npgpt.cli.COMMANDS]
    monkeypatch.setattr(npgpt.cli, "COMMANDS", npgpt.cli.COMMANDS + missing)
    return npgpt.cli.main(argv)


# ---- data and batches ---------------------------------------------------------------------------


def test_split_keeps_the_last_tenth_for_validation():
    train, val = split_text("abcdefghij" * 10, 0.1)
    assert train + val == "abcdefghij" * 10 and len(val) == 10 and val == "abcdefghij"


def test_get_batch_targets_are_inputs_shifted_by_one():
    ids = np.arange(100, dtype=np.int32)
    x, y = get_batch(ids, 4, 8, np.random.default_rng(0))
    assert x.shape == y.shape == (4, 8)
    assert np.array_equal(y, x + 1)  # with ids = arange, the next token is always id + 1
    x2, _ = get_batch(ids, 4, 8, np.random.default_rng(0))
    assert np.array_equal(x, x2)  # the same generator state, the same batch
    with pytest.raises(InputError, match="fewer than one window"):
        get_batch(ids[:5], 2, 8, np.random.default_rng(0))


def test_repeat_spans_writes_a_random_span_twice_in_the_chosen_rows():
    windows = np.arange(8 * 65, dtype=np.int32).reshape(8, 65) + 1000  # ids no span can hold
    out = repeat_spans(windows, 0.25, 1000, np.random.default_rng(0), min_len=8, max_len=20)
    assert np.array_equal(windows, np.arange(8 * 65).reshape(8, 65) + 1000)  # the input is left alone
    assert np.array_equal(out[2:], windows[2:])  # round(0.25 * 8) = 2 rows changed, the first two
    for row in out[:2]:
        changed = np.flatnonzero(row < 1000)  # the two copies, next to each other
        length = len(changed) // 2
        assert 8 <= length <= 20 and len(changed) == 2 * length
        assert np.array_equal(changed, np.arange(changed[0], changed[0] + 2 * length))
        assert np.array_equal(row[changed[:length]], row[changed[length:]])
    assert np.array_equal(repeat_spans(windows, 0.0, 1000, np.random.default_rng(0)), windows)


def test_dropout_and_repeated_spans_train_and_resume_exactly(text_file, tmp_path):
    settings = QUICK.replace(steps=8, eval_interval=4, sample_interval=0, dropout=0.2, repeat_fraction=0.25)
    straight = pretrain(text_file, tmp_path / "a", config=TINY, settings=settings, stream=io.StringIO())
    plain = pretrain(text_file, tmp_path / "p", config=TINY, settings=QUICK.replace(steps=8, eval_interval=4, sample_interval=0),
                     stream=io.StringIO())
    assert straight.history[0]["loss"] != plain.history[0]["loss"]  # the masks and spans took effect

    def stop_at_5(step, metrics):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(text_file, tmp_path / "b", config=TINY, settings=settings, stream=io.StringIO(), on_step=stop_at_5)
    resumed = pretrain(text_file, tmp_path / "b", config=TINY, settings=settings, stream=io.StringIO(), resume=True)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    with pytest.raises(npgpt.errors.ConfigError, match="dropout"):
        TrainSettings(dropout=1.0)


def test_sinusoidal_position_init_starts_wpe_from_the_original_encoding(text_file, tmp_path):
    from npgpt.model import random_params, sinusoidal_positions

    pe = sinusoidal_positions(50, 8)
    assert np.allclose(pe[:, 0::2], np.sin(np.arange(50)[:, None] / 10000 ** (np.arange(0, 8, 2) / 8)))
    assert np.allclose(pe[:, 1::2], np.cos(np.arange(50)[:, None] / 10000 ** (np.arange(0, 8, 2) / 8)))
    for k in (1, 3):  # PE[p + k] is one linear map of PE[p], the same at every p
        shift, *_ = np.linalg.lstsq(pe[:-k], pe[k:], rcond=None)
        assert np.allclose(pe[:-k] @ shift, pe[k:], atol=1e-8)
    wpe = random_params(TINY, position_init="sinusoidal")["wpe"]["weight"]
    assert np.allclose(wpe, 0.02 * np.sqrt(2) * sinusoidal_positions(TINY.n_ctx, TINY.n_embd), atol=1e-7)
    assert abs(np.sqrt(np.mean(wpe.astype(np.float64) ** 2)) - 0.02) < 0.002  # the token embeddings' size
    with pytest.raises(ValueError, match="position_init"):
        random_params(TINY, position_init="rotary")
    with pytest.raises(npgpt.errors.ConfigError, match="position_init"):
        TrainSettings(position_init="rotary")
    run = pretrain(text_file, tmp_path / "s", config=TINY, stream=io.StringIO(),
                   settings=QUICK.replace(steps=2, eval_interval=2, sample_interval=0, position_init="sinusoidal"))
    start = np.allclose(run.model.params["wpe"]["weight"], wpe, atol=0.01)  # learned: it moved, but from there
    assert start and not np.array_equal(run.model.params["wpe"]["weight"], wpe)


def test_init_std_scales_every_initial_weight(text_file, tmp_path):
    from npgpt.model import random_params

    base, wide = random_params(TINY, seed=3), random_params(TINY, seed=3, init_std=0.1)
    flat_base, flat_wide = flatten(base), flatten(wide)
    for name, value in flat_base.items():  # the same draws, 5x as large; layer norms and biases unchanged
        expected = value if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")) or name.endswith("bias") else 5 * value
        assert np.allclose(flat_wide[name], expected, rtol=1e-6, atol=1e-7), name
    block = wide["h"][0]
    assert abs(block["attn"]["c_attn"]["weight"].std() - 0.1) < 0.01
    assert abs(block["attn"]["c_proj"]["weight"].std() - 0.1 / np.sqrt(2 * TINY.n_layer)) < 0.01
    for bad in (0, -0.02, float("nan")):
        with pytest.raises(ValueError, match="init_std"):
            random_params(TINY, init_std=bad)
        with pytest.raises(npgpt.errors.ConfigError, match="init_std"):
            TrainSettings(init_std=bad)
    run = pretrain(text_file, tmp_path / "w", config=TINY, stream=io.StringIO(),
                   settings=QUICK.replace(steps=1, eval_interval=1, sample_interval=0, init_std=0.1))
    assert json.loads((tmp_path / "w" / "train_log.json").read_text())["settings"]["init_std"] == 0.1
    assert run.model.params["h"][0]["attn"]["c_attn"]["weight"].std() > 0.05  # started from 0.1, not 0.02


def test_attn_init_std_sets_the_query_key_value_weights_alone(text_file, tmp_path):
    from npgpt.model import random_params

    base, sharp = random_params(TINY, seed=3), random_params(TINY, seed=3, attn_init_std=0.12)
    for name, value in flatten(base).items():
        expected = 6 * value if name.endswith("attn.c_attn.weight") else value
        assert np.allclose(flatten(sharp)[name], expected, rtol=1e-6, atol=1e-7), name
    with pytest.raises(ValueError, match="attn_init_std"):
        random_params(TINY, attn_init_std=0.0)
    with pytest.raises(npgpt.errors.ConfigError, match="attn_init_std"):
        TrainSettings(attn_init_std=-1.0)
    run = pretrain(text_file, tmp_path / "a", config=TINY, stream=io.StringIO(),
                   settings=QUICK.replace(steps=1, eval_interval=1, sample_interval=0, attn_init_std=0.12))
    assert json.loads((tmp_path / "a" / "train_log.json").read_text())["settings"]["attn_init_std"] == 0.12
    assert run.model.params["h"][0]["attn"]["c_attn"]["weight"].std() > 0.08


def test_repeat_spans_of_the_text_itself():
    rng = np.random.default_rng(0)
    windows = np.arange(4 * 65).reshape(4, 65) % 1000  # every token distinct within a row
    out = repeat_spans(windows, 0.5, 1000, rng, source="text")
    assert np.array_equal(out[2:], windows[2:])  # half the rows untouched
    for row, original in zip(out[:2], windows[:2]):
        changed = np.flatnonzero(row != original)
        start, stop = changed[0], changed[-1] + 1
        length = stop - start  # the second copy: the stretch just before it, written again
        assert 8 <= length <= 32 and np.array_equal(row[start:stop], original[start - length:start])
        assert np.array_equal(row[:start], original[:start]) and np.array_equal(row[stop:], original[stop:])
    random = repeat_spans(windows, 1.0, 1000, np.random.default_rng(0), source="random")
    assert not np.isin(random[0], windows[0]).all()  # random spans bring tokens the row did not hold
    with pytest.raises(ValueError, match="source"):
        repeat_spans(windows, 0.5, 1000, rng, source="shuffled")
    with pytest.raises(npgpt.errors.ConfigError, match="repeat_source"):
        TrainSettings(repeat_source="shuffled")


def test_evaluate_predicts_every_token_once(tiny_model):
    ids = np.random.default_rng(1).integers(0, tiny_model.config.n_vocab, 23).astype(np.int32)
    total, count = evaluate(tiny_model.params, tiny_model.config, ids, n_seq=8, batch_size=2)
    assert count == 22
    expected = 0.0
    for start in range(0, 22, 8):  # windows [0:9], [8:17], [16:23]: consecutive, overlapping by one
        window = ids[start : min(start + 9, 23)][None]
        expected += cross_entropy(gpt2(window[:, :-1], tiny_model.params, tiny_model.config), window[:, 1:])[0]
    assert total == pytest.approx(expected, rel=1e-6)
    assert evaluate(tiny_model.params, tiny_model.config, ids, n_seq=8, max_tokens=10)[1] == 10


def test_nats_per_character_counts_the_predicted_characters(trained):
    result, out, _ = trained
    text = make_text()
    data = encode_dataset(text, result.model.tokenizer, 0.1)
    _, val_text = split_text(text, 0.1)
    first = result.model.tokenizer.decode(data.val_ids[:1].tolist())
    assert data.val_chars == len(val_text) - len(first)
    per_token, per_char = nats_per_char(result.model, val_text, n_seq=TINY.n_ctx)
    assert per_char == pytest.approx(result.val_nats_per_char, rel=1e-5)  # the final evaluation is over all of it
    assert per_token == pytest.approx(result.val_loss, rel=1e-5)


# ---- training -----------------------------------------------------------------------------------


def test_pretraining_lowers_the_loss_and_writes_a_model_folder(trained):
    result, out, log = trained
    first, last = result.evals[0], result.evals[-1]
    assert first["step"] == 0 and last["step"] == 40
    assert first["val_loss"] > np.log(TINY.n_vocab) - 0.5  # a random model is near-uniform
    assert last["val_loss"] < first["val_loss"] - 1.5, result.evals
    assert result.history[-1]["loss"] < result.history[0]["loss"] - 1.5
    assert [s["step"] for s in result.samples] == [20, 40]
    assert "tok/s" in log and "ETA" in log and "validation loss" in log and "sample" in log
    for name in ["config.json", "model.safetensors", "vocab.json", "merges.txt", "loss.png", "train_log.json"]:
        assert (out / name).is_file(), name
    record = json.loads((out / "train_log.json").read_text())
    assert record["completed"] and record["final"]["val_nats_per_char"] == result.val_nats_per_char
    loaded = npgpt.load(out)
    assert loaded.config == result.model.config.replace() and loaded.tokenizer.n_vocab == loaded.config.n_vocab
    ids = loaded.tokenizer.encode("ROMEO:\nThe fair one")
    assert np.array_equal(loaded.logits(ids), result.model.logits(ids))
    assert isinstance(loaded.generate("ROMEO:", max_new_tokens=5, seed=0), str)


def test_the_output_folder_loads_in_transformers(trained):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    result, out, _ = trained
    hf = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
    ids = result.model.tokenizer.encode("JULIET:\nThe sad one sees the moon.")
    with torch.no_grad():
        theirs = hf(torch.as_tensor([ids])).logits[0].numpy()
    assert np.max(np.abs(theirs - result.model.logits(ids))) < 1e-4


def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(text_file, tmp_path):
    settings = QUICK.replace(steps=12, eval_interval=4, sample_interval=0)
    straight = pretrain(text_file, tmp_path / "a", config=TINY, settings=settings, stream=io.StringIO())

    def stop_at_7(step, metrics):
        if step == 7:
            raise KeyboardInterrupt

    log = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        pretrain(text_file, tmp_path / "b", config=TINY, settings=settings, stream=log, on_step=stop_at_7)
    assert "checkpoint of step 7 saved" in log.getvalue()
    _, _, _, state = load_checkpoint(tmp_path / "b-checkpoint")
    assert state["step"] == 7
    resumed = pretrain(text_file, tmp_path / "b", config=TINY, settings=settings, stream=io.StringIO(), resume=True)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    for name, value in flatten(straight.model.params).items():
        assert np.array_equal(value, flatten(resumed.model.params)[name]), name
    assert np.array_equal(npgpt.load(tmp_path / "b").params["wte"]["weight"], straight.model.params["wte"]["weight"])


def test_resume_can_extend_a_finished_run(text_file, tmp_path):
    settings = QUICK.replace(steps=4, eval_interval=2, sample_interval=0)
    pretrain(text_file, tmp_path / "m", config=TINY, settings=settings, stream=io.StringIO())
    longer = pretrain(text_file, tmp_path / "m", config=TINY, settings=settings.replace(steps=6), resume=True,
                      stream=io.StringIO())
    assert longer.history[-1]["step"] == 6 and len(longer.history) == 6


def test_resume_can_shorten_an_unfinished_run(text_file, tmp_path):
    # A run planned for 12 steps, interrupted at step 5, resumed with --steps 8:
    # it ends at step 8, its learning rate decays to min_lr over 8 steps, and the record says so.
    settings = QUICK.replace(steps=12, eval_interval=4, sample_interval=0)

    def stop_at_5(step, metrics):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(text_file, tmp_path / "s", config=TINY, settings=settings, stream=io.StringIO(), on_step=stop_at_5)
    short = pretrain(text_file, tmp_path / "s", config=TINY, settings=settings.replace(steps=8), resume=True,
                     stream=io.StringIO())
    assert [h["step"] for h in short.history] == list(range(1, 9))
    assert short.history[-1]["lr"] == pytest.approx(lr_schedule(7, max_lr=settings.lr, total_steps=8,
                                                                warmup_steps=settings.warmup_steps, min_lr=settings.min_lr))
    record = json.loads((tmp_path / "s" / "train_log.json").read_text())
    assert record["completed"] and record["settings"]["steps"] == 8
    assert record["resumed_at"] == [5] and record["steps_at_resume"] == [8]


def test_finetune_starts_from_the_given_weights_and_leaves_them_alone(text_file, tmp_path, trained):
    base_result, base_folder, _ = trained
    before = (base_folder / "model.safetensors").read_bytes()
    other = tmp_path / "other.txt"
    other.write_text(make_text(300, seed=5).replace("ROMEO", "HAMLET"), encoding="utf-8")
    settings = TrainSettings(steps=20, batch_size=8, lr=3e-3, warmup_steps=2, eval_interval=10, sample_interval=0)
    result = finetune(base_folder, other, tmp_path / "ft", settings=settings, stream=io.StringIO())
    assert result.evals[0]["val_loss"] < np.log(TINY.n_vocab) - 1.0  # it started from trained weights
    assert result.evals[-1]["val_loss"] < result.evals[0]["val_loss"]  # and learned the new names
    assert (base_folder / "model.safetensors").read_bytes() == before
    tuned = npgpt.load(tmp_path / "ft")
    assert tuned.tokenizer.encoder == base_result.model.tokenizer.encoder


# ---- the commands -------------------------------------------------------------------------------


def test_train_command_end_to_end(monkeypatch, text_file, tmp_path, capsys):
    out = tmp_path / "cli-model"
    argv = ["train", "--data", str(text_file), "--out", str(out), "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
            "--n-ctx", "16", "--vocab-size", "280", "--steps", "6", "--batch-size", "4", "--eval-interval", "3",
            "--sample-interval", "0"]
    assert run_cli(monkeypatch, argv) == 0
    assert "nats/char" in capsys.readouterr().out
    model = npgpt.load(out)
    assert (model.config.n_layer, model.config.n_embd, model.config.n_ctx, model.config.n_vocab) == (1, 16, 16, 280)
    assert json.loads((out / "train_log.json").read_text())["command"].startswith("npgpt train --data")
    # a second run must not replace the model silently
    assert run_cli(monkeypatch, argv) == 2
    assert "--resume" in capsys.readouterr().err
    assert run_cli(monkeypatch, argv + ["--overwrite", "--steps", "3"]) == 0


def test_finetune_command(monkeypatch, text_file, tmp_path, trained, capsys):
    _, base_folder, _ = trained
    out = tmp_path / "ft-cli"
    argv = ["finetune", "--model", str(base_folder), "--data", str(text_file), "--out", str(out), "--steps", "3",
            "--eval-interval", "3", "--batch-size", "2", "--sample-interval", "0"]
    assert run_cli(monkeypatch, argv) == 0
    assert npgpt.load(out).config == npgpt.load(base_folder).config


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "missing.txt", "--out", "OUT"], "no text file"),
    (["train", "--data", "DATA", "--out", "OUT", "--resume"], "nothing to resume"),
    (["train", "--data", "DATA", "--out", "OUT", "--lr", "-1"], "lr > 0"),
    (["train", "--data", "DATA", "--out", "OUT", "--n-embd", "30", "--n-head", "4"], "divisible"),
    (["finetune", "--model", "no-such-folder-xyz", "--data", "DATA", "--out", "OUT"], ""),
])
def test_user_errors_are_one_clear_line(monkeypatch, text_file, tmp_path, capsys, argv, message):
    argv = [str(text_file) if a == "DATA" else str(tmp_path / "out") if a == "OUT" else a for a in argv]
    monkeypatch.chdir(tmp_path)
    assert run_cli(monkeypatch, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("npgpt: error: ") and message in err
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_data_command_downloads_checks_and_keeps(monkeypatch, tmp_path, capsys):
    import hashlib
    import urllib.request

    from npgpt.training import data

    body = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"
    calls = []

    class FakeResponse(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_urlopen(url, timeout=None):
        calls.append(url)
        return FakeResponse(body)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    source = data.DATASETS["tinyshakespeare"]
    faked = data.TextSource(source.url, hashlib.sha256(body).hexdigest(), source.filename, source.about)
    monkeypatch.setitem(data.DATASETS, "tinyshakespeare", faked)
    monkeypatch.chdir(tmp_path)
    assert run_cli(monkeypatch, ["data", "tinyshakespeare"]) == 0
    assert (tmp_path / "data" / "tinyshakespeare.txt").read_bytes() == body
    assert calls == [source.url]
    assert run_cli(monkeypatch, ["data", "tinyshakespeare"]) == 0 and len(calls) == 1  # already there: no download

    # a corrupted download is refused and leaves nothing behind
    monkeypatch.setitem(data.DATASETS, "tinyshakespeare", source)
    out = tmp_path / "elsewhere.txt"
    assert run_cli(monkeypatch, ["data", "tinyshakespeare", "--out", str(out)]) == 2
    assert "SHA-256" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.glob(".*tmp*")) == []


def test_data_download_failure_says_what_to_do(monkeypatch, tmp_path):
    import urllib.error
    import urllib.request

    from npgpt.training import data

    def offline(url, timeout=None):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(NpgptError, match="--data"):
        data.download("tinyshakespeare", tmp_path / "t.txt")
    with pytest.raises(InputError, match="unknown dataset"):
        data.download("wikipedia", tmp_path / "w.txt")


def test_format_duration():
    assert format_duration(65) == "1:05" and format_duration(3725) == "1:02:05" and format_duration(float("nan")) == "?"
