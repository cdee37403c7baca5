"""The exceptions npgpt raises for problems a user can fix.

Each message names the problem and says what to do next. They subclass the built-in exception a
Python user would expect (``ValueError`` for bad arguments, ``FileNotFoundError`` for missing
files), so ``except ValueError`` keeps working.
"""


class NpgptError(Exception):
    """Base class of every npgpt error."""


class ConfigError(NpgptError, ValueError):
    """A model configuration that is invalid or describes something other than GPT-2."""


class WeightsError(NpgptError, ValueError):
    """A weights file that is missing, truncated, or does not match its configuration."""


class ModelNotFoundError(NpgptError, FileNotFoundError):
    """A model name or folder that cannot be found locally (or, for Hub names, downloaded)."""


class InputError(NpgptError, ValueError):
    """Token ids or a prompt the model cannot take (out of vocabulary, longer than the context)."""
