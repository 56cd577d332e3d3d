"""Where the course's data lives, and the error an unreachable online source raises (notebooks 02-04)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["DATA_DIR", "DatasetUnavailableError"]

DATA_DIR = Path(__file__).resolve().parent.parent.parent / "data"  # the repository's data/, whatever the cwd


class DatasetUnavailableError(RuntimeError):
    """An online dataset was asked for that is neither cached nor downloadable from here."""
