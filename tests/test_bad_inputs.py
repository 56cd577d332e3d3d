"""Every bad input the foundation promises a clear error for, in one table.

Each case names what was wrong and the message must also say what to do. The modules' own tests cover the
happy paths; this file is the checklist a reviewer reads.
"""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from aigc_lib.data import TensorLoader, load_image_folder, load_text
from aigc_lib.hub import ModelNotAvailableError, load_pretrained
from aigc_lib.runtime import DeviceUnavailableError, pick_device
from aigc_lib.train import TrainConfig


def _folder_with(tmp_path, files: dict[str, tuple[int, int, str] | bytes]):
    folder = tmp_path / "images"
    folder.mkdir()
    for name, spec in files.items():
        if isinstance(spec, bytes):
            (folder / name).write_bytes(spec)
        else:
            height, width, mode = spec
            Image.new(mode, (width, height)).save(folder / name)
    return folder


CASES = {
    "missing dataset path": (
        lambda tmp: load_image_folder(tmp / "nope"), FileNotFoundError, r"does not exist"),
    "empty dataset path": (
        lambda tmp: load_image_folder(_folder_with(tmp, {})), ValueError, r"no images in .*add image files"),
    "non-image files in an image folder": (
        lambda tmp: load_image_folder(_folder_with(tmp, {"a.png": (8, 8, "L"), "notes.txt": b"hello"})),
        ValueError, r"not images: notes\.txt.*accepted"),
    "wrong image size": (
        lambda tmp: load_image_folder(_folder_with(tmp, {"a.png": (30, 30, "L")}), size=28),
        ValueError, r"30x30.*28x28.*resize=True"),
    "wrong number of channels": (
        lambda tmp: load_image_folder(_folder_with(tmp, {"a.png": (8, 8, "RGB")}), channels=1),
        ValueError, r"3 channel.*channels=1"),
    "empty corpus": (
        lambda tmp: (tmp / "empty.txt").write_text("  \n\n") and load_text(str(tmp / "empty.txt")),
        ValueError, r"is empty: write UTF-8 text"),
    "unknown model name offline": (
        lambda tmp: load_pretrained(torch.nn.Module, "gpt3-medium"), ModelNotAvailableError,
        r"offline.*local_dir.*never published"),
    "cuda asked for on a CPU machine": (
        lambda tmp: pick_device("cuda"), DeviceUnavailableError, r"no CUDA GPU.*'auto' or 'cpu'"),
    "non-positive steps": (
        lambda tmp: TrainConfig(max_steps=0), ValueError, r"max_steps must be a positive integer, got 0"),
    "non-positive batch size": (
        lambda tmp: TensorLoader(torch.zeros(8, 2), batch_size=0), ValueError,
        r"batch_size must be a positive integer, got 0"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_a_clear_error(case, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    call, error, message = CASES[case]
    with pytest.raises(error, match=message):
        call(tmp_path)
