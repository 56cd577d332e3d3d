"""Text corpora: the project's files in data/text, the installed Python's docstrings ("stdlib-docs", built
once into data/cache) and tiny Shakespeare when online (notebook 04)."""
from __future__ import annotations

import ast
import json
import os
import platform
import sysconfig
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

from aigc_lib import runtime, storage
from aigc_lib.data.common import DATA_DIR, DatasetUnavailableError

__all__ = ["MIN_DOCSTRING_CHARS", "ONLINE_CORPORA", "STDLIB_CORPUS", "STDLIB_SKIP", "load_text", "text_corpora"]

ONLINE_CORPORA = {
    "tiny-shakespeare":
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
}
STDLIB_CORPUS = "stdlib-docs"  # the installed Python's docstrings, read at run time (never committed)
STDLIB_SKIP = frozenset({"test", "tests", "idlelib", "lib2to3", "site-packages", "dist-packages", "__pycache__"})
MIN_DOCSTRING_CHARS = 80


def text_corpora(root: str | os.PathLike | None = None) -> list[str]:
    """Names of the offline corpora: the files in ``data/text`` and ``stdlib-docs`` (notebook 04)."""
    files = [p.stem for p in (Path(root) if root else DATA_DIR).joinpath("text").glob("*.txt")]
    return sorted({*files, STDLIB_CORPUS})


def _download(url: str, dest: Path, timeout: float = 30) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = response.read()
    except OSError as error:
        raise DatasetUnavailableError(f"could not download {url} ({error}).") from error
    storage.atomic_write(dest, payload)  # never leave a half-written corpus in the cache


def _doc_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """The module, then every class and function in it (nested, or under ``if``/``try``), in source order."""
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        yield node
    for child in ast.iter_child_nodes(node):
        yield from _doc_nodes(child)


def _stdlib_docstrings(stdlib: Path) -> list[str]:
    """Cleaned module/class/function docstrings of the ``.py`` files under ``stdlib``: sorted paths, no tests,
    nothing shorter than ``MIN_DOCSTRING_CHARS``, no exact repeats."""
    docs, seen = [], set()
    for file in sorted(stdlib.rglob("*.py")):
        if STDLIB_SKIP.intersection(file.relative_to(stdlib).parts[:-1]):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid escape sequences and the like in old modules
                tree = ast.parse(file.read_bytes(), str(file))
        except (OSError, SyntaxError, ValueError):  # unreadable, Python 2 leftovers, null bytes
            continue
        for node in _doc_nodes(tree):
            doc = ast.get_docstring(node, clean=True)
            if doc and len(doc) >= MIN_DOCSTRING_CHARS and doc not in seen:
                seen.add(doc)
                docs.append(doc)
    return docs


def _stdlib_docs(cache: Path, rebuild: bool = False) -> tuple[str, str]:
    """The ``stdlib-docs`` text and how it was found: the cached build for this Python, or a fresh build."""
    python = f"{platform.python_implementation()} {platform.python_version()}"
    path = cache / f"{STDLIB_CORPUS}-{python.replace(' ', '-').lower()}.json"
    if path.is_file() and not rebuild:
        try:
            built = json.loads(path.read_text(encoding="utf-8"))
            return built["text"], (f"cached build {path} ({built['docstrings']:,} docstrings from {python}'s "
                                   "standard library)")
        except (ValueError, KeyError, TypeError):
            pass  # a damaged cache file is rebuilt below
    stdlib, start = Path(sysconfig.get_paths()["stdlib"]), time.perf_counter()
    docs = _stdlib_docstrings(stdlib)
    if not docs:
        raise FileNotFoundError(f"no docstrings found under {stdlib}: this Python was installed without the "
                                "sources of its standard library; use another corpus, e.g. 'fables'.")
    text = "\n\n".join(docs) + "\n"
    storage.atomic_write(path, json.dumps({"python": python, "stdlib": str(stdlib), "docstrings": len(docs),
                                           "text": text}))
    return text, (f"built from {len(docs):,} docstrings in {stdlib} ({python}) in "
                  f"{time.perf_counter() - start:.1f} s, cached in {path}")


def load_text(name: str = "fables", source: str = "auto", root: str | os.PathLike | None = None,
              max_chars: int | None = None) -> str:
    """A UTF-8 corpus: a project file in data/text (or a .txt path), the installed Python's docstrings
    ("stdlib-docs") or tiny Shakespeare (notebook 04).

    ``source``: "auto" (the local file or cached copy, else download), "local" (never the network) or
    "download" (fetch an online corpus again; rebuild "stdlib-docs"). ``root`` holds ``text/`` and
    ``cache/`` (default: data/). ``max_chars`` keeps the start of the corpus, cut at a blank line.
    """
    if source not in ("auto", "local", "download"):
        raise ValueError(f"unknown text source {source!r}: choose 'auto', 'local' or 'download'.")
    if max_chars is not None and max_chars < 1:
        raise ValueError(f"max_chars must be a positive number of characters or None, got {max_chars!r}.")
    base = Path(root) if root else DATA_DIR
    offline = f"offline corpora: {', '.join(text_corpora(base))} (files in {base / 'text'})"
    path = None
    if name == STDLIB_CORPUS:
        text, how = _stdlib_docs(base / "cache", rebuild=source == "download")
    elif name in ONLINE_CORPORA:
        url, path = ONLINE_CORPORA[name], base / "cache" / f"{name}.txt"
        if path.is_file() and source != "download":
            how = f"cached copy of {url} in {path}"
        elif source == "local" or not runtime.is_online():
            raise DatasetUnavailableError(f"{name} is not cached in {path.parent} and this machine is "
                                          f"offline (or source='local'): use one of the {offline}; or "
                                          "connect once to download it.")
        else:
            _download(url, path)
            how = f"downloaded {url} to {path}"
    else:
        path = Path(name) if name.endswith(".txt") else base / "text" / f"{name}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"no corpus {name!r} ({path} does not exist): {offline}; "
                                    f"online: {', '.join(ONLINE_CORPORA)}.")
        how = f"offline corpus {path}"
    if path is not None:
        text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise ValueError(f"corpus {name!r} ({path}) is empty: write UTF-8 text into it, or pick another.")
    if max_chars is not None and len(text) > max_chars:
        cut = text.rfind("\n\n", 0, max_chars)  # end on a whole paragraph when there is one
        how += f", first {max_chars:,} of {len(text):,} characters"
        text = text[:cut + 1] if cut > 0 else text[:max_chars]
    print(f"[aigc.data] text {name}: {how}, {len(text):,} characters, {len(text.splitlines()):,} lines")
    return text
