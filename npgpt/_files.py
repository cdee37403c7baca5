"""Writing files all or nothing: a temporary file in the same folder, renamed into place.

Every file npgpt writes (configs, weights, tokenizer files, checkpoints, plots, HTML views,
downloads) goes through ``atomic_path``, so an interrupted or failed write never leaves half a
file under the real name, and never leaves the temporary file behind. A whole folder (a converted
model) is built under a temporary name and put in place by ``replace_folder``. Before a large
write, ``check_disk_space`` says how much is missing rather than failing halfway.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import InputError, WeightsError


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A fresh temporary path next to ``path`` to write to; renamed to ``path`` when the block ends
    normally, removed when it raises (even KeyboardInterrupt).

    The file gets the usual permissions (0666 minus the umask), not mkstemp's private 0600. Two
    processes writing the same path at once each write their own temporary file; the last rename wins.
    """
    path = Path(os.fspath(path))
    if not path.parent.is_dir():
        raise InputError(f"folder {str(path.parent)!r} does not exist; create it first")
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write(path: str | os.PathLike, write: Callable[[IO], object], binary: bool = True) -> Path:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") if binary else open(tmp, "w", encoding="utf-8", newline="\n") as f:
            write(f)
    return Path(os.fspath(path))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """``path.write_text(text)`` (UTF-8, "\\n" line ends on every OS), all or nothing."""
    return atomic_write(path, lambda f: f.write(text), binary=False)


def write_json(path: str | os.PathLike, obj, indent: int = 2) -> Path:
    """``obj`` as indented JSON with a final newline, all or nothing."""
    return write_text(path, json.dumps(obj, indent=indent) + "\n")


def replace_folder(new: Path, folder: Path) -> None:
    """Put ``new`` where ``folder`` is: two renames, so readers see the old or the new folder, whole."""
    old = None
    if folder.exists():
        old = folder.parent / f".{folder.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(folder, old)
    try:
        os.rename(new, folder)
    except BaseException:
        if old is not None:
            os.rename(old, folder)  # put the old folder back: a failed replace changes nothing
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def make_temp_folder(beside: Path) -> Path:
    """A new empty folder next to ``beside`` (a hidden name ending in .tmp), with the usual permissions."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{beside.name}.", suffix=".tmp", dir=beside.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private (0700)
    return tmp


def check_disk_space(folder: Path, needed: int, what: str) -> None:
    """Raise ``WeightsError`` unless ``folder``'s disk has ``needed`` bytes free for ``what``."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise WeightsError(f"{what} needs {human_size(needed)} but only {human_size(free)} is free in {folder}; free some space")


def human_size(n: float) -> str:
    """Bytes for people: ``human_size(498_000_000) == "498.0 MB"`` (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (os.umask can only set it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (a moment in which another thread could see 022)
    os.umask(mask)
    return mask
