"""The one family of exceptions for everything a user can cause; every command prints ``error: ...`` and exits 2.

A ``JaxprobeError`` means "the input is wrong, and the message says which file, row or key, and what was
expected" — never a bug in jaxprobe. Each subclass also derives from the built-in exception its callers
would have caught before (``ValueError``, ``RuntimeError``, ...), so library users who catch those keep working.
"""
from __future__ import annotations

import sys
from typing import Callable


class JaxprobeError(Exception):
    """Base of every error a user can cause (bad config, data, store, checkpoint, training, prediction files)."""


class ConfigError(JaxprobeError, ValueError):
    """A config file, a command-line override or a combination of settings that cannot work."""


class DataError(JaxprobeError, ValueError):
    """A problem with one input item; ``item`` is the file, row or key, ``problem`` what was expected."""

    def __init__(self, item: str, problem: str):
        super().__init__(f"{item}: {problem}")
        self.item = str(item)
        self.problem = problem

    def __reduce__(self):  # picklable across worker processes despite the two-argument constructor
        return (type(self), (self.item, self.problem))


class StoreError(JaxprobeError, RuntimeError):
    """An embedding store on disk does not match its metadata or the request (stale, truncated, incomplete)."""


class ConversionError(JaxprobeError, ValueError):
    """An original checkpoint does not fit the expected architecture, or its conversion failed parity."""


class CheckpointError(JaxprobeError, ValueError):
    """A converted encoder folder or a training checkpoint that cannot be read."""


class TrainingError(JaxprobeError, FloatingPointError):
    """Training cannot go on (a non-finite loss); the message names the head, member, epoch and step."""


class PredictionFileError(JaxprobeError, ValueError):
    """A prediction file (or folder of masks) that is missing, malformed or does not match the others."""


class RunError(JaxprobeError, RuntimeError):
    """A run whose work directory, cache or inputs contradict each other; the message says what to change."""


def read_json(path, error: type[JaxprobeError], hint: str = ""):
    """The JSON in ``path``; a missing or damaged file is ``error`` naming the file (and what to do, ``hint``)."""
    import json
    from pathlib import Path

    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{path}: not found{'; ' + hint if hint else ''}") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise error(f"{path}: unreadable ({type(e).__name__}: {e}){'; ' + hint if hint else ''}") from None


def guarded(main: Callable[[], int | None]) -> int:
    """Run a command body; anything a user can cause ends in ``error: ...`` on stderr and exit status 2."""
    try:
        return int(main() or 0)
    except JaxprobeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
