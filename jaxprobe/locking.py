"""Exclusive file locks, so that runs sharing one cache never build the same thing twice at once.

``exclusive(lock_file, what)`` holds an advisory ``flock`` on ``lock_file`` for the duration of a ``with``
block; a second process asking for the same lock says it is waiting, waits, and then finds the work done (each
guarded step checks for a finished result after taking the lock). Locks are released by the kernel when a
process dies, so a killed run never leaves a stale lock. Used around phantom generation, dataset preparation
and each embedding store's extraction.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path

log = logging.getLogger("jaxprobe")


@contextlib.contextmanager
def exclusive(lock_file: str | os.PathLike, what: str):
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info(f"waiting for another process {what} ({lock_file})")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
