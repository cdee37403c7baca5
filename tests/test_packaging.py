"""The wheel: every module, the CLI and the bundled model, for a plain (not editable) `pip install`.

Builds the wheel from this checkout (no network: `--no-deps --no-build-isolation`), installs it
with `--no-deps --target` into a temporary folder, and runs it from there with an empty weights
folder and Hugging Face cache, offline: `npgpt.load("shakespeare")` and `npgpt generate` must find
the model inside the installed package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import npgpt

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    pytest.importorskip("setuptools")  # --no-build-isolation builds with the venv's own setuptools
    tmp = tmp_path_factory.mktemp("wheel")
    # a copy of what the build reads, so that no stale build/ folder of the checkout leaks in
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("npgpt", "viz"):
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    for model in ("shakespeare", "shakespeare-induction"):
        shutil.copytree(ROOT / "weights" / model, source / "weights" / model)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    build = subprocess.run(pip + ["wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), "-q"],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp / "dist").glob("npgpt-*.whl")
    site = tmp / "site"
    install = subprocess.run(pip + ["install", "--no-deps", "--target", str(site), str(wheel), "-q"],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    return wheel, site, tmp


def test_the_wheel_holds_every_module_and_the_bundled_model(installed):
    wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("npgpt", "npgpt/commands", "npgpt/fast", "npgpt/hub", "viz"):
        for module in (ROOT / package).glob("*.py"):
            assert f"{package}/{module.name}" in names, f"{package}/{module.name} is missing from the wheel"
    for name in ("config.json", "model.safetensors", "vocab.json", "merges.txt"):
        assert f"npgpt/bundled/shakespeare/{name}" in names
        assert f"npgpt/bundled/shakespeare_induction/{name}" in names
    assert not [n for n in names if n.startswith(("tests/", "weights/", "benchmarks/", "notebooks/"))]


def run_installed(site: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NPGPT_", "HF_", "HUGGINGFACE_", "XDG_"))}
    env.update(PYTHONPATH=str(site), HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=tmp, env=env, timeout=300)


def test_the_installed_package_loads_the_bundled_model_offline(installed):
    _, site, tmp = installed
    script = (
        "import npgpt, npgpt.hub as hub; "
        "print(npgpt.__file__); "
        "m = npgpt.load('shakespeare'); "
        "print(hub.find_local('shakespeare')); "
        "print([x.name for x in hub.list_models()]); "
        "print(repr(m.generate('ROMEO:', max_new_tokens=8, temperature=0))); "
        "print(hub.find_local('shakespeare-induction'))"
    )
    result = run_installed(site, tmp, "-c", script)
    assert result.returncode == 0, result.stderr[-2000:]
    file, folder, models, text, second = result.stdout.strip().splitlines()
    assert Path(file).is_relative_to(site)  # the installed copy, not this checkout
    assert Path(folder) == site / "npgpt" / "bundled" / "shakespeare"
    assert models == "['shakespeare', 'shakespeare-induction']"
    assert Path(second) == site / "npgpt" / "bundled" / "shakespeare_induction"
    checkout_model = npgpt.load(ROOT / "weights" / "shakespeare")  # the same weights, from this checkout
    assert text == repr(checkout_model.generate("ROMEO:", max_new_tokens=8, temperature=0))

    cli = run_installed(site, tmp, "-m", "npgpt.cli", "generate", "--model", "shakespeare", "ROMEO:", "-n", "8", "--seed", "0")
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert cli.stdout == "ROMEO:" + checkout_model.generate("ROMEO:", max_new_tokens=8, seed=0) + "\n"
