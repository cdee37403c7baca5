"""Model names: which Hub repo a name stands for, and which local folder holds it.

A name is one of the five released sizes (``gpt2``, ``gpt2-medium``, ``gpt2-large``, ``gpt2-xl``,
``distilgpt2``), which stand for their repos on the Hub (``openai-community/gpt2``, ...), the
bundled ``shakespeare``, or any Hub repo id ``owner/name``. A string that looks like a path is
never a name, so it is never sent to the Hub.

A converted model lives in ``<weights>/<local name>``: the short name (``gpt2``), or
``owner--name`` for a repo id, with ``@revision`` appended for a revision other than ``main``.
``<weights>`` is ``$NPGPT_WEIGHTS`` if set, else the ``weights/`` folder of the npgpt checkout when
running from one, else ``$XDG_CACHE_HOME/npgpt/weights`` (``~/.cache/npgpt/weights``).

Leaves out: the Hugging Face cache (``cache.py``), the network (``fetch.py``), conversion
(``convert.py``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import ModelNotFoundError
from ..weights import CONFIG_NAME

# The released GPT-2s: short name -> repo on the Hub. The Hub still answers to the short names
# (it redirects), and older caches hold them under those names, so both spellings are searched.
ALIASES = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
    "distilgpt2": "distilbert/distilgpt2",
}
SHORT_NAMES = {repo: short for short, repo in ALIASES.items()}
# Models that ship inside the npgpt package (a wheel carries weights/shakespeare and
# weights/shakespeare-induction there; see
# pyproject.toml). A folder of the same name in the weights folder takes precedence.
BUNDLED = {"shakespeare": Path(__file__).resolve().parent.parent / "bundled" / "shakespeare",
           "shakespeare-induction": Path(__file__).resolve().parent.parent / "bundled" / "shakespeare_induction"}

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}(/[\w.\-]{1,96})?$")


def weights_dir() -> Path:
    """Where converted model folders live: $NPGPT_WEIGHTS, the checkout's weights/, or a user cache."""
    env = os.environ.get("NPGPT_WEIGHTS")
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parent.parent.parent / "weights"
    if checkout.is_dir():
        return checkout
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "npgpt" / "weights"


def looks_like_path(name: str) -> bool:
    """True for strings meant as folders, which must never be sent to the Hub as repo ids."""
    name = os.fspath(name)
    return (
        os.path.isabs(name)
        or name.startswith((".", "~"))
        or "\\" in name
        or name.count("/") > 1
        or name.endswith("/")
        or ("/" in name and os.path.isdir(name.split("/")[0]))
    )


def repo_id_for(name: str) -> str:
    """The Hub repo id a model name stands for (``gpt2`` -> ``openai-community/gpt2``)."""
    if name in ALIASES:
        return ALIASES[name]
    if not _REPO_ID.match(name) or "--" in name or ".." in name:
        raise ModelNotFoundError(
            f"{name!r} is neither a model folder nor a model name: use one of {', '.join(ALIASES)}, "
            "a Hub repo id such as 'owner/name', or the path of a folder holding config.json and model.safetensors"
        )
    return name


def local_name(repo_id: str, revision: str | None = None) -> str:
    """The folder name of a converted model: ``gpt2``, ``owner--name``, ``owner--name@v1``."""
    name = SHORT_NAMES.get(repo_id, repo_id.replace("/", "--"))
    if revision and revision != "main":
        name += "@" + revision.replace("/", "--")
    return name


def local_folder(repo_id: str, revision: str | None = None) -> Path:
    """Where the converted model of ``repo_id`` at ``revision`` lives (whether or not it exists yet)."""
    return weights_dir() / local_name(repo_id, revision)


def bundled_folder(name: str, revision: str | None = None) -> Path | None:
    """The folder of a model that ships inside the package (``BUNDLED``), if this install has it."""
    folder = BUNDLED.get(name)
    if folder is None or revision not in (None, "main") or not (folder / CONFIG_NAME).is_file():
        return None
    return folder
