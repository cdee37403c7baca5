"""Token strings made safe to draw, and tick positions thinned so labels never overlap.

A GPT-2 token is raw text: it may start with a space, be a newline, a tab, a control byte, half of
a UTF-8 character (decoded as U+FFFD), or a character the plotting font lacks. ``token_label``
turns each into a short visible string:

    " the"  -> "·the"      "\\n" -> "⏎"      "\\t" -> "⇥"      "\\x00" -> "\\x00"      "" -> "∅"

and, for matplotlib (``for_font=True``), characters DejaVu Sans cannot draw become ``\\uXXXX``
escapes instead of empty boxes and warnings. The HTML view keeps them, since browsers fall back to
other fonts.
"""

from __future__ import annotations

import math
import unicodedata
from functools import lru_cache

SPACE, NEWLINE, TAB, EMPTY = "·", "⏎", "⇥", "∅"
MAX_LABEL = 16  # characters; longer tokens are cut with "…"


@lru_cache(maxsize=1)
def _font_charmap() -> frozenset[int]:
    """Code points matplotlib's default font can draw (empty set: don't filter)."""
    try:
        from matplotlib import font_manager, ft2font

        return frozenset(ft2font.FT2Font(font_manager.findfont("DejaVu Sans")).get_charmap())
    except Exception:  # no matplotlib or no font file: leave characters as they are
        return frozenset()


def token_label(text: str, *, for_font: bool = False, max_len: int = MAX_LABEL) -> str:
    """One token's text as a visible label (see the module docstring)."""
    charmap = _font_charmap() if for_font else frozenset()
    out = []
    for ch in text:
        if ch == " ":
            out.append(SPACE)
        elif ch == "\n":
            out.append(NEWLINE)
        elif ch == "\t":
            out.append(TAB)
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") or ch == "\r":
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        elif charmap and ord(ch) not in charmap:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    label = "".join(out) or EMPTY
    if len(label) > max_len:
        label = label[: max_len - 1] + "…"
    return label


def display_labels(tokens, *, for_font: bool = False, max_len: int = MAX_LABEL) -> list[str]:
    return [token_label(str(t), for_font=for_font, max_len=max_len) for t in tokens]


def tick_step(n: int, length_in: float, fontsize: float, spacing: float = 1.35) -> int:
    """Every how many ticks to label so that n labels fit along length_in inches without overlap.

    A label along an axis takes about ``fontsize * spacing`` points across (its line height), so
    ``length_in * 72 / (fontsize * spacing)`` of them fit.
    """
    fit = max(1, int(length_in * 72 / (fontsize * spacing)))
    return max(1, math.ceil(n / fit))


def thinned(labels: list[str], step: int) -> tuple[list[int], list[str]]:
    """Positions 0, step, 2*step, ... and their labels; with step > 1 each label starts with its index."""
    positions = list(range(0, len(labels), step))
    if step == 1:
        return positions, [labels[i] for i in positions]
    return positions, [f"{i} {labels[i]}" for i in positions]
