"""``python -m npgpt`` is the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_python_dash_m_npgpt_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "npgpt", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0 and "usage: npgpt" in out.stdout and "generate" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "npgpt", "tokenize", "--model", "no-such-model-here", "hi"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60, env={"HF_HUB_OFFLINE": "1", "PATH": ""})
    assert bad.returncode == 2 and bad.stderr.startswith("npgpt: error:") and "Traceback" not in bad.stderr
