"""Writing files and caches safely: one atomic-write helper and cache keys that include the code.

Training never loses progress and a reader never sees half a file: every file or folder the course writes
(checkpoints, results, cached judges, offline models) goes through :func:`atomic_write` or
:func:`atomic_dir`, which write beside the target and rename in one step (``os.replace``).

Cached artefacts are keyed by :func:`cache_key`, a hash of their recipe *and* of the source code of the
modules that build them, so changing that code can never serve a stale model (nothing to bump by hand).
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

R = TypeVar("R")

__all__ = ["atomic_dir", "atomic_write", "cache_key", "named_recipe", "source_hash"]


def atomic_write(path: str | os.PathLike, data: str | bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` so that a reader sees the old file or the complete new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


@contextmanager
def atomic_dir(folder: str | os.PathLike) -> Iterator[Path]:
    """Fill a temporary folder beside ``folder``; on success it replaces ``folder`` in one rename.

    >>> with atomic_dir("data/cache/model") as tmp:   # doctest: +SKIP
    ...     model.save_pretrained(tmp)
    If the block raises, the temporary folder is removed and ``folder`` is left as it was.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = folder.with_name(f".{folder.name}.{os.getpid()}.old")
    if folder.exists():
        os.replace(folder, old)  # a folder cannot be replaced in place: move it aside, then rename
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def source_hash(*modules: ModuleType | Any) -> str:
    """SHA-256 (16 hex digits) of the source code of ``modules`` (or classes/functions)."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:16]


def cache_key(recipe: Any, *code: ModuleType | Any) -> str:
    """Key of a cached artefact: the recipe (a JSON-able dict or dataclass) plus the code that builds it."""
    if is_dataclass(recipe) and not isinstance(recipe, type):
        recipe = asdict(recipe)
    payload = json.dumps({"recipe": recipe, "code": source_hash(*code) if code else ""}, sort_keys=True,
                         default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def named_recipe(recipe: str | R, recipes: Mapping[str, R], kind: type[R], what: str, table: str) -> R:
    """The recipe of a cached build: a name from ``recipes`` (the profiles: smoke, quick, full) or an instance of
    ``kind``; anything else gets an error that says what to pass. ``what`` names the build ("DCGAN") and ``table``
    the recipes' variable name, for the message."""
    if isinstance(recipe, str):
        if recipe not in recipes:
            raise ValueError(f"unknown {what} recipe {recipe!r}: choose one of {', '.join(recipes)}, or give a "
                             f"{kind.__name__} (dataclasses.replace({table}['quick'], steps=...)).")
        return recipes[recipe]
    if not isinstance(recipe, kind):
        raise TypeError(f"recipe must be a name ({', '.join(recipes)}) or a {kind.__name__}, got "
                        f"{type(recipe).__name__}.")
    return recipe
