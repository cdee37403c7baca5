"""Writing output files atomically: npgpt's own helper (a temporary file renamed into place)."""

from npgpt._files import atomic_write

__all__ = ["atomic_write"]
