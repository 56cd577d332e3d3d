"""Load pretrained models the same way online and offline: hub id when reachable, else a local folder.

Learners online get ``gpt2`` or Stable Diffusion from the Hugging Face hub; offline (CI, the course's GPU
machine, a plane) the same call loads a model the chapter trained and saved with ``save_pretrained``.
The path that ran is always printed. Derived in notebook 00; used from chapter 05 on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from aigc_lib.runtime import is_online

MARKER_FILES = ("config.json", "model_index.json", "tokenizer_config.json", "adapter_config.json")
# Names learners meet in tutorials that do not exist as open weights (the seed articles load 'gpt3-medium').
HINTS = {
    "gpt3": "GPT-3 weights were never published; the open GPT-2 family is 'gpt2', 'gpt2-medium', 'gpt2-large', "
            "'gpt2-xl' (and 'distilgpt2').",
    "gpt-3": "GPT-3 weights were never published; use 'gpt2' or 'gpt2-medium'.",
}
T = TypeVar("T")


class Pretrained(Protocol[T]):
    """Any class with ``from_pretrained``: transformers and diffusers models, tokenizers, pipelines."""

    def from_pretrained(self, name_or_path: str, **kwargs: Any) -> T: ...


class ModelNotAvailableError(RuntimeError):
    """Neither the hub, the local cache nor a local folder can provide the model."""


@dataclass(frozen=True)
class ModelSource:
    """Where a pretrained model will come from: ``hub``, the local ``cache`` of the hub, or a ``local`` folder."""

    kind: str
    location: str

    def describe(self) -> str:
        return {
            "hub": f"{self.location!r} from the Hugging Face hub (online path)",
            "cache": f"{self.location!r} from the local Hugging Face cache (offline, downloaded earlier)",
            "local": f"local folder {self.location} (offline path: a model built or trained by this course)",
        }[self.kind]


def _hint(hub_id: str) -> str:
    base = hub_id.lower().split("/")[-1]
    return next((f" Note: {text}" for key, text in HINTS.items() if base.startswith(key)), "")


def _in_cache(hub_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(hub_id, name), str) for name in MARKER_FILES)


def _check_local_dir(path: Path) -> None:
    if not path.is_dir():
        raise ModelNotAvailableError(f"local model folder {path} does not exist. Train or build it first "
                                     "(each chapter's quick profile does) or fix the path.")
    if not any((path / name).is_file() for name in MARKER_FILES):
        raise ModelNotAvailableError(
            f"folder {path} holds no {' / '.join(MARKER_FILES[:2])}: it was not written by save_pretrained. "
            "Save the model with model.save_pretrained(folder) (and the tokenizer with tokenizer.save_pretrained).")


def find_source(hub_id: str | None, local_dir: str | os.PathLike | None = None,
                online: bool | None = None) -> ModelSource:
    """Decide hub > cache > local folder for a model, or raise a clear error that says what to do."""
    if hub_id is None and local_dir is None:
        raise ValueError("give a hub id (e.g. 'gpt2'), a local_dir made with save_pretrained, or both.")
    online = is_online() if online is None else online
    if hub_id is not None and online:
        return ModelSource("hub", hub_id)
    if hub_id is not None and _in_cache(hub_id):
        return ModelSource("cache", hub_id)
    if local_dir is not None:
        _check_local_dir(Path(local_dir))
        return ModelSource("local", str(local_dir))
    raise ModelNotAvailableError(
        f"cannot load {hub_id!r}: this machine is offline (no network, or HF_HUB_OFFLINE=1), the model is not in "
        "the local Hugging Face cache, and no local_dir was given. Either connect to the internet (and unset "
        f"HF_HUB_OFFLINE), download it once on a connected machine (`hf download {hub_id}`), or pass "
        "local_dir= a folder written by save_pretrained (the chapter's offline path builds one)." + _hint(hub_id))


def load_pretrained(cls: Pretrained[T], hub_id: str | None, local_dir: str | os.PathLike | None = None,
                    *, online: bool | None = None, verbose: bool = True, **kwargs: Any) -> T:
    """``cls.from_pretrained`` from the hub when reachable, else the cache, else ``local_dir``; prints which ran."""
    source = find_source(hub_id, local_dir, online)
    if source.kind == "cache":
        kwargs.setdefault("local_files_only", True)
    try:
        obj = cls.from_pretrained(source.location, **kwargs)
    except OSError as error:  # transformers/diffusers raise OSError for unknown repos and missing files
        if source.kind == "hub" and local_dir is not None:
            if verbose:
                print(f"[aigc.hub] hub load of {hub_id!r} failed ({type(error).__name__}); using {local_dir}")
            return load_pretrained(cls, None, local_dir, online=False, verbose=verbose, **kwargs)
        raise ModelNotAvailableError(f"could not load {source.describe()}: {error}{_hint(source.location)}") from error
    if verbose:
        print(f"[aigc.hub] {getattr(cls, '__name__', cls)}: {source.describe()}")
    return obj
