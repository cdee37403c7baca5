"""npgpt/_files.py: every file npgpt writes is written all or nothing."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

import npgpt
from npgpt._files import atomic_path, atomic_write, write_json, write_text


def test_a_write_lands_whole_with_the_usual_permissions(tmp_path):
    path = write_json(tmp_path / "a.json", {"x": [1, 2]})
    assert json.loads(path.read_text()) == {"x": [1, 2]} and path.read_text().endswith("\n")
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's private 0600
    write_text(tmp_path / "b.txt", "one\ntwo\n")
    assert (tmp_path / "b.txt").read_bytes() == b"one\ntwo\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.txt"]  # no temporary file left


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path, error):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"old")

    def half_then_fail(f):
        f.write(b"new, half")
        raise error("interrupted")

    with pytest.raises(error):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
    with pytest.raises(error), atomic_path(tmp_path / "other.bin") as tmp:
        tmp.write_bytes(b"partial")
        raise error("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_a_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(npgpt.InputError, match="does not exist; create it first"):
        write_text(tmp_path / "nope" / "a.txt", "x")


def test_saving_a_model_over_an_old_one_fails_cleanly(tmp_path, monkeypatch):
    # weights.save_folder writes model.safetensors (weights.write_safetensors) through atomic_path:
    # a failure mid-write keeps the previous weights and leaves no temporary file.
    config = npgpt.GPT2Config(n_vocab=300, n_ctx=16, n_embd=16, n_head=2, n_layer=1)
    old = npgpt.random_model(config, seed=0)
    npgpt.save(old, tmp_path / "m")
    before = (tmp_path / "m" / "model.safetensors").read_bytes()

    def broken_fsync(fd):  # every tensor is in the temporary file; the disk refuses to keep it
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        npgpt.save(npgpt.random_model(config, seed=1), tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == before
    assert not [p for p in (tmp_path / "m").iterdir() if p.name.startswith(".")]
    np.testing.assert_array_equal(npgpt.load(tmp_path / "m").params["wte"]["weight"], old.params["wte"]["weight"])
