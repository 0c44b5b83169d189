"""Bad input: one exception type that names the offending item, and the raise-or-skip policy.

Every loader reports a problem as a ``DataError`` whose message starts with the file, row or key at fault.
Under ``on_error="raise"`` the first one stops the load; under ``on_error="skip"`` the item is left out,
written with its reason to a CSV file the caller names, and counted in the log, so nothing disappears
without a trace.
"""
from __future__ import annotations

import csv
import logging
import os
from typing import Literal

from ..errors import DataError

OnError = Literal["raise", "skip"]

log = logging.getLogger("jaxprobe.data")


class BadItems:
    """Collects skipped items for one load and writes them to ``skipped_file`` at the end.

    ``skipped_file`` is required with ``on_error="skip"``: a skip policy without a list of what was skipped
    would drop data silently.
    """

    def __init__(self, source: str, on_error: OnError = "raise", skipped_file: str | os.PathLike | None = None):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if on_error == "skip" and skipped_file is None:
            raise ValueError(f"{source}: on_error='skip' needs skipped_file=PATH so that skipped items are listed")
        self.source = source
        self.on_error = on_error
        self.skipped_file = skipped_file
        self.rows: list[tuple[str, str, str]] = []  # (kind, item, reason)

    def bad(self, error: DataError) -> None:
        """A defect: raise it, or remember it as skipped."""
        if self.on_error == "raise":
            raise error
        self.rows.append(("skipped", error.item, error.problem))

    def note(self, kind: str, item: str, reason: str) -> None:
        """An item left out by design (no label, filtered by quality), listed whatever the policy."""
        self.rows.append((kind, str(item), reason))

    def count(self, kind: str) -> int:
        return sum(1 for k, _, _ in self.rows if k == kind)

    def finish(self) -> None:
        """Log the counts per kind and, where a file was named, write every row to it."""
        kinds = sorted({k for k, _, _ in self.rows})
        for kind in kinds:
            examples = [item for k, item, _ in self.rows if k == kind][:3]
            log.warning("%s: %d item(s) %s, e.g. %s", self.source, self.count(kind), kind.replace("_", " "), examples)
        if self.skipped_file is not None:
            os.makedirs(os.path.dirname(os.path.abspath(self.skipped_file)), exist_ok=True)
            with open(self.skipped_file, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["source", "kind", "item", "reason"])
                for kind, item, reason in self.rows:
                    writer.writerow([self.source, kind, item, reason])
            if self.rows:
                log.warning("%s: %d left-out item(s) listed in %s", self.source, len(self.rows), self.skipped_file)
