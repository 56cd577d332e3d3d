"""Tests for aigc_lib.data: offline sources, image folders, text corpora, splits and the trainer's loaders."""
from __future__ import annotations

import ast
import importlib.util
import json
import platform
import re
import struct
import sys
import sysconfig
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from aigc_lib import data
from aigc_lib.data import (
    COLORS,
    POSITIONS,
    SHAPES,
    DatasetLoader,
    DatasetUnavailableError,
    ImageData,
    TensorLoader,
    infinite,
    load_digits,
    load_image_dataset,
    load_image_folder,
    load_qa,
    load_text,
    make_font_digits,
    make_shapes,
    qa_sets,
    split,
    split_indices,
)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIGC_OFFLINE", "1")


# --------------------------------------------------------------------------------------------- digits
def test_font_digits_shape_range_balance_and_determinism() -> None:
    a, b, c = make_font_digits(1000, seed=0), make_font_digits(1000, seed=0), make_font_digits(1000, seed=1)
    assert a.images.shape == (1000, 1, 28, 28) and a.images.dtype == torch.float32
    assert a.labels.dtype == torch.long and a.classes == [str(d) for d in range(10)]
    assert a.images.min() >= -1 and a.images.max() <= 1
    assert a.images.max() > 0.9 and a.images.mean() < -0.5  # white digits on a black background
    assert torch.bincount(a.labels, minlength=10).tolist() == [100] * 10
    assert a.labels[:10].tolist() != list(range(10))  # classes are shuffled, not in blocks or cycles
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert make_font_digits(20, size=32).images.shape == (20, 1, 32, 32)


def test_generators_leave_the_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    make_font_digits(50, seed=3)
    make_shapes(50, seed=3)
    list(TensorLoader(torch.arange(10), batch_size=2, seed=3))
    assert torch.equal(state, torch.random.get_rng_state())


def test_font_digits_are_consistent_across_seeds() -> None:
    # 1-nearest-neighbour fit on seed 0, tested on seed 1: measured 0.962 (0.94-0.96 over seed pairs 0-3).
    train, test = make_font_digits(6000, seed=0), make_font_digits(1000, seed=1)
    nearest = torch.cdist(test.images.flatten(1), train.images.flatten(1)).argmin(1)
    accuracy = (train.labels[nearest] == test.labels).float().mean().item()
    assert accuracy > 0.9, accuracy


def test_font_digits_recognise_real_handwritten_digits() -> None:
    # The rendered digits stand in for MNIST, so they must look like handwriting: 1-NN on font digits (the
    # central 20x20 MNIST box, pooled to 8x8) labels scikit-learn's real 8x8 handwritten digits. Measured
    # 0.62-0.64 over seeds 0-2 (chance is 0.10); the threshold leaves room for font rendering differences.
    fonts = make_font_digits(6000, seed=0)
    x_font = F.interpolate(fonts.images[:, :, 4:24, 4:24], size=(8, 8), mode="area").flatten(1)
    real = load_image_dataset("sklearn-digits")
    nearest = torch.cdist(real.images.flatten(1), x_font).argmin(1)
    accuracy = (fonts.labels[nearest] == real.labels).float().mean().item()
    assert accuracy > 0.5, accuracy


def test_sklearn_digits_native_and_upsampled() -> None:
    native = load_image_dataset("sklearn-digits")
    assert native.images.shape == (1797, 1, 8, 8) and native.source == "sklearn-digits"
    assert native.images.min() == -1 and native.images.max() == 1
    up = load_digits(n=100, size=28, source="sklearn-digits")
    assert up.images.shape == (100, 1, 28, 28) and torch.equal(up.labels, native.labels[:100])


def test_load_digits_auto_offline_uses_font_digits(offline: None, tmp_path: Path, capsys) -> None:
    digits = load_digits(n=200, root=tmp_path)
    assert digits.source == "font-digits" and len(digits) == 200
    out = capsys.readouterr().out
    assert out.count("[aigc.data]") == 1 and "offline source 'font-digits'" in out
    assert "200 images 1x28x28" in out and "MNIST unavailable" in out


def test_forced_mnist_offline_without_cache_says_what_to_do(offline: None, tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailableError, match="font-digits"):
        load_digits(source="mnist", root=tmp_path)
    with pytest.raises(DatasetUnavailableError, match="offline"):
        load_image_dataset("cifar10", root=tmp_path)


def _write_idx(path: Path, array: np.ndarray) -> None:
    magic = 2051 if array.ndim == 3 else 2049  # idx3 (images) / idx1 (labels), unsigned bytes
    header = struct.pack(f">{1 + array.ndim}i", magic, *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_cached_mnist_is_used_offline(offline: None, tmp_path: Path, capsys) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.zeros((30, 28, 28), np.uint8)
    images[:, 10:18, 10:18] = 255
    for split_name in ("train", "t10k"):
        _write_idx(raw / f"{split_name}-images-idx3-ubyte", images)
        _write_idx(raw / f"{split_name}-labels-idx1-ubyte", np.arange(30) % 10)
    digits = load_digits(n=20, size=32, root=tmp_path)
    assert digits.source == "mnist" and digits.images.shape == (20, 1, 32, 32)
    assert digits.images.min() == -1 and digits.images.max() > 0.9
    assert digits.labels.tolist() == [i % 10 for i in range(20)]
    assert "cached in" in capsys.readouterr().out


def test_unknown_image_dataset_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="fashion-mnist.*shapes"):
        load_image_dataset("imagenet")
    with pytest.raises(ValueError, match="font-digits"):
        load_digits(source="emnist")


# --------------------------------------------------------------------------------------------- shapes
def test_shapes_shape_determinism_and_balance() -> None:
    a, b, c = make_shapes(600, seed=0), make_shapes(600, seed=0), make_shapes(600, seed=1)
    assert a.images.shape == (600, 3, 32, 32) and a.images.min() >= -1 and a.images.max() <= 1
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    assert not torch.equal(a.images, c.images)
    assert a.classes == list(SHAPES) and torch.bincount(a.labels).tolist() == [100] * len(SHAPES)
    assert set(a.attributes) == {"color", "shape", "position"}
    assert len(COLORS) >= 6 and len(POSITIONS) == 9


def test_shape_captions_match_attributes_and_pixels() -> None:
    shapes = make_shapes(300, seed=2)
    names = list(COLORS), list(POSITIONS)
    for i in range(300):
        color, shape, where = (shapes.attributes[k][i].item() for k in ("color", "shape", "position"))
        assert shapes.captions[i].endswith(f"{names[0][color]} {SHAPES[shape]} {POSITIONS[names[1][where]]}")
        assert shapes.labels[i] == shape
        image = shapes.images[i] * 0.5 + 0.5  # (3, H, W) in [0, 1]
        ink = image.sum(0) > 0.5 * image.sum(0).max()  # the shape's pixels
        ys, xs = ink.nonzero().float().mean(0)
        assert (int(ys // (32 / 3)), int(xs // (32 / 3))) == divmod(where, 3), shapes.captions[i]
        brightest = image.flatten(1)[:, image.sum(0).argmax()] * 255  # an interior pixel: the pure colour
        assert torch.allclose(brightest, torch.tensor(COLORS[names[0][color]], dtype=torch.float32), atol=0.5)
    assert make_shapes(1, colors=["orange"]).captions[0].startswith("an orange ")


def _ink_box(shape: str) -> torch.Tensor:
    """The shape's mask (drawn big, in the centre) cropped to its bounding box."""
    image = make_shapes(1, size=96, shapes=[shape], positions=["center"], seed=0).images[0]
    ink = (image * 0.5 + 0.5).sum(0) > 0.5
    rows, cols = ink.any(1).nonzero().squeeze(1), ink.any(0).nonzero().squeeze(1)
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].float()


def test_shape_geometry() -> None:
    fill = {shape: _ink_box(shape).mean().item() for shape in SHAPES}
    assert fill["square"] > 0.95 and 0.7 < fill["circle"] < 0.85 and 0.4 < fill["diamond"] < 0.6
    for shape in ("triangle", "star"):  # apex up, symmetric left to right
        box = _ink_box(shape)
        h, w = box.shape
        cy, cx = (box.nonzero().float().mean(0) + 0.5) / torch.tensor([h, w])
        assert abs(cx - 0.5) < 0.03 and cy > 0.52, (shape, cy, cx)
        top = box[0].nonzero().float().mean() / w
        assert abs(top - 0.5) < 0.05 and box[0].sum() < 0.2 * w  # a single tip, in the middle
    star, cross = _ink_box("star"), _ink_box("cross")
    assert star[-1, star.shape[1] // 2] == 0 and star[-1].sum() > 0  # two feet, a gap between them
    assert cross[0, 0] == 0 and cross[-1, -1] == 0 and cross[cross.shape[0] // 2].mean() > 0.95


def test_shapes_subset_selects_labels_but_keeps_global_attributes() -> None:
    subset = make_shapes(100, shapes=["star", "circle"], colors=["red"], positions=["center"], seed=0)
    assert subset.classes == ["star", "circle"] and set(subset.labels.tolist()) == {0, 1}
    assert torch.equal(subset.attributes["shape"], torch.tensor([SHAPES.index("star"), 0])[subset.labels])
    assert all(c.startswith("a red ") and c.endswith(" in the center") for c in subset.captions)
    with pytest.raises(ValueError, match="hexagon"):
        make_shapes(10, shapes=["circle", "hexagon"])


# --------------------------------------------------------------------------------------------- folders
def _png(path: Path, size: tuple[int, int] = (12, 10), mode: str = "L", value: int = 255) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, 0, 0)).save(path)  # size is (width, height)


def test_image_folder_classes_and_flat(tmp_path: Path, capsys) -> None:
    for name in ("a.png", "b.png"):
        _png(tmp_path / "cats" / name, value=255)
    _png(tmp_path / "dogs" / "c.png", value=0)
    folder = load_image_folder(tmp_path)
    assert folder.classes == ["cats", "dogs"] and folder.labels.tolist() == [0, 0, 1]
    assert folder.images.shape == (3, 1, 10, 12)
    assert folder.images[0].min() == 1 and folder.images[2].max() == -1
    assert "3 images 1x10x12" in capsys.readouterr().out
    flat = load_image_folder(tmp_path / "cats", size=8, resize=True, channels=1)
    assert flat.labels.tolist() == [0, 0] and flat.images.shape == (2, 1, 8, 8)


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        load_image_folder(tmp_path / "empty")
    _png(tmp_path / "mixed" / "ok.png")
    (tmp_path / "mixed" / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.txt.*\.png"):
        load_image_folder(tmp_path / "mixed")
    _png(tmp_path / "broken" / "ok.png")
    (tmp_path / "broken" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read .*bad\.png"):
        load_image_folder(tmp_path / "broken")
    _png(tmp_path / "sizes" / "a.png", size=(12, 10))
    with pytest.raises(ValueError, match=r"a\.png is 10x12.*8x8.*resize=True"):
        load_image_folder(tmp_path / "sizes", size=8)
    _png(tmp_path / "sizes" / "b.png", size=(16, 16))
    with pytest.raises(ValueError, match=r"b\.png.*resize=True"):
        load_image_folder(tmp_path / "sizes")
    _png(tmp_path / "colour" / "a.png", mode="RGB")
    with pytest.raises(ValueError, match=r"a\.png has 3 channel.*channels=1.*convert\('L'\)"):
        load_image_folder(tmp_path / "colour", channels=1)
    assert load_image_folder(tmp_path / "colour", channels=3).images.shape == (1, 3, 10, 12)


# --------------------------------------------------------------------------------------------- text
def test_fables_corpus(capsys) -> None:
    text = load_text("fables")
    assert 8_000 <= len(text.encode("utf-8")) <= 12_000
    assert text.isascii() and text.count("\n\n") >= 8  # several stories separated by blank lines
    assert "[aigc.data] text fables: offline corpus" in capsys.readouterr().out
    assert "fables" in data.text_corpora()


def test_text_errors(tmp_path: Path, offline: None) -> None:
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "tales.txt").write_text("Once upon a time.\n")
    (tmp_path / "text" / "blank.txt").write_text("  \n\n ")
    assert load_text("tales", root=tmp_path) == "Once upon a time.\n"
    with pytest.raises(ValueError, match="corpus 'blank' .* is empty"):
        load_text("blank", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="no corpus 'poems'.*tales.*tiny-shakespeare"):
        load_text("poems", root=tmp_path)
    with pytest.raises(DatasetUnavailableError, match="offline.*tales"):
        load_text("tiny-shakespeare", root=tmp_path)


def test_tiny_shakespeare_cached_copy_is_reused_offline(tmp_path: Path, offline: None, capsys) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "tiny-shakespeare.txt").write_text("First Citizen:\nSpeak, speak.\n")
    assert load_text("tiny-shakespeare", root=tmp_path).startswith("First Citizen")
    assert "cached copy" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------- splits
def test_split_indices_disjoint_complete_deterministic() -> None:
    train, val, test = split_indices(103, seed=4)
    assert (len(train), len(val), len(test)) == (62, 21, 20)
    assert sorted(torch.cat([train, val, test]).tolist()) == list(range(103))
    assert all(torch.equal(a, b) for a, b in zip(split_indices(103, seed=4), (train, val, test)))
    assert not torch.equal(split_indices(103, seed=5)[0], train)
    with pytest.raises(ValueError, match="sum to 1"):
        split_indices(10, (0.5, 0.3))
    with pytest.raises(ValueError, match="too small"):
        split_indices(2, (0.6, 0.2, 0.2))


def test_split_image_data_and_lists() -> None:
    shapes = make_shapes(50, seed=0)
    parts = split(shapes, (0.8, 0.2), seed=1)
    assert [len(p) for p in parts] == [40, 10] and isinstance(parts[1], ImageData)
    index = split_indices(50, (0.8, 0.2), seed=1)[1]
    assert parts[1].captions == [shapes.captions[i] for i in index.tolist()]
    assert torch.equal(parts[1].attributes["color"], shapes.attributes["color"][index])
    lines = [f"line {i}" for i in range(10)]
    train, val, test = split(lines)
    assert sorted(train + val + test) == sorted(lines) and len(val) == 2
    with pytest.raises(TypeError, match="splitlines"):
        split("one long string")


# --------------------------------------------------------------------------------------------- loaders
class Items(torch.utils.data.Dataset):
    """A dataset of its own indices that counts how often items were loaded."""

    def __init__(self, n: int) -> None:
        self.n, self.loads = n, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        self.loads += 1
        return i


def make_loader(kind: str, n: int, batch_size: int, **kwargs):
    if kind == "tensor":
        return TensorLoader(torch.arange(n), batch_size=batch_size, **kwargs)
    return DatasetLoader(Items(n), batch_size=batch_size, **kwargs)


LOADERS = ["tensor", "dataset"]


@pytest.mark.parametrize("kind", LOADERS)
def test_epoch_covers_every_index_once(kind: str) -> None:
    loader = make_loader(kind, 24, 4, seed=1)
    assert len(loader) == 6
    first = torch.cat(list(loader))
    assert sorted(first.tolist()) == list(range(24)) and loader.state_dict() == {"epoch": 1, "position": 0}
    second = torch.cat(list(loader))
    assert not torch.equal(first, second)  # a new permutation each epoch ...
    assert torch.equal(first, torch.cat(list(make_loader(kind, 24, 4, seed=1))))  # ... fixed by seed + epoch
    ordered = make_loader(kind, 10, 4, shuffle=False, drop_last=False)
    assert [b.tolist() for b in ordered] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and len(ordered) == 3


@pytest.mark.parametrize("kind", LOADERS)
def test_state_dict_resume_yields_exactly_the_remaining_batches(kind: str) -> None:
    reference = make_loader(kind, 30, 4, seed=7)
    reference.load_state_dict({"epoch": 2, "position": 0})
    full = [b.tolist() for b in reference]
    loader = make_loader(kind, 30, 4, seed=7)
    loader.load_state_dict({"epoch": 2, "position": 0})
    stream = iter(loader)
    seen = [next(stream).tolist() for _ in range(3)]
    state = loader.state_dict()
    assert state == {"epoch": 2, "position": 3}
    resumed = make_loader(kind, 30, 4, seed=7)
    resumed.load_state_dict(state)
    assert seen + [b.tolist() for b in resumed] == full
    assert resumed.state_dict() == {"epoch": 3, "position": 0}
    if kind == "dataset":
        assert resumed.dataset.loads == 4 * 4  # resuming skipped the first three batches without loading them
    at_end = make_loader(kind, 30, 4, seed=7)
    stream = iter(at_end)
    for _ in range(len(at_end)):  # every batch taken, but the generator not yet finished
        next(stream)
    assert at_end.state_dict() == {"epoch": 1, "position": 0}
    with pytest.raises(ValueError, match="position"):
        resumed.load_state_dict({"epoch": 0, "position": 99})


@pytest.mark.parametrize("kind", LOADERS)
def test_two_shards_equal_one_process_with_twice_the_batch(kind: str) -> None:
    whole = make_loader(kind, 40, 8, seed=3)
    shards = [make_loader(kind, 40, 4, seed=3).shard(2, i) for i in range(2)]
    assert len(whole) == len(shards[0]) == len(shards[1]) == 5
    for _ in range(2):  # two epochs
        for big, part0, part1 in zip(whole, *shards, strict=True):
            assert torch.equal(big, torch.cat([part0, part1]))
    with pytest.raises(ValueError, match="drop_last"):
        make_loader(kind, 40, 4, drop_last=False).shard(2, 0)
    with pytest.raises(ValueError, match="fewer than one batch"):
        make_loader(kind, 10, 4).shard(4, 0)


@pytest.mark.parametrize("kind", LOADERS)
def test_loader_validation(kind: str) -> None:
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        make_loader(kind, 10, 0)
    with pytest.raises(ValueError, match="fewer than one batch"):
        make_loader(kind, 3, 4)
    assert len(make_loader(kind, 3, 4, drop_last=False)) == 1
    with pytest.raises(ValueError, match="empty"):
        make_loader(kind, 0, 4, drop_last=False)


def test_tensor_loader_tuples_device_and_channels_last() -> None:
    images, labels = torch.randn(12, 3, 4, 4), torch.arange(12)
    loader = TensorLoader(images, labels, batch_size=5, device="cpu", channels_last=True)
    x, y = next(iter(loader))
    assert x.shape == (5, 3, 4, 4) and torch.equal(x, images[y])
    assert loader.tensors[0].is_contiguous(memory_format=torch.channels_last)
    assert loader.tensors[1].dtype == torch.long  # only 4-D float tensors change layout
    with pytest.raises(ValueError, match="equal first dimensions"):
        TensorLoader(images, labels[:5], batch_size=2)


def test_dataset_loader_collate_and_workers_keep_the_protocol() -> None:
    loader = DatasetLoader(Items(12), batch_size=3, seed=2, collate_fn=lambda items: sorted(items))
    batches = list(loader)
    assert len(batches) == 4 and all(isinstance(b, list) and b == sorted(b) for b in batches)
    reference = [b.tolist() for b in TensorLoader(torch.arange(12), batch_size=3, seed=2)]
    assert [sorted(b) for b in reference] == batches  # the same order as TensorLoader with the same seed


@pytest.mark.parametrize("kind", LOADERS)
def test_infinite_runs_across_epochs(kind: str) -> None:
    loader = make_loader(kind, 10, 4, seed=0)
    stream = infinite(loader)
    batches = [next(stream).tolist() for _ in range(5)]  # two batches per epoch
    assert loader.state_dict() == {"epoch": 2, "position": 1}
    second_epoch = make_loader(kind, 10, 4, seed=0)
    second_epoch.load_state_dict({"epoch": 1, "position": 0})
    assert batches[2:4] == [b.tolist() for b in second_epoch]


# --------------------------------------------------------------------------------------------- stdlib-docs
def test_stdlib_docs_corpus_is_real_english_prose(capsys) -> None:
    text = load_text("stdlib-docs")  # built once into data/cache (a few seconds), then read from there
    assert 500_000 < len(text) < 5_000_000 and "stdlib-docs" in data.text_corpora()
    out = capsys.readouterr().out
    assert "docstrings" in out and platform.python_version() in out
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    doctest = sum(line.startswith((">>>", "...")) for line in lines)
    assert doctest < 0.1 * len(lines), doctest  # prose, not code: measured ~4% on CPython 3.11
    words = text.split()
    assert sum(w.isalpha() for w in words) > 0.6 * len(words)
    assert "Return" in text and "def test_" not in text
    short = load_text("stdlib-docs", max_chars=10_000)
    assert len(short) <= 10_000 and text.startswith(short) and short.endswith("\n")


def test_stdlib_docs_build_is_deterministic_and_cached(tmp_path: Path, monkeypatch, capsys) -> None:
    json_dir = Path(sysconfig.get_paths()["stdlib"]) / "json"
    docs = data._stdlib_docstrings(json_dir)
    assert docs == data._stdlib_docstrings(json_dir) and len(docs) == len(set(docs))
    assert all(len(d) >= data.MIN_DOCSTRING_CHARS for d in docs)
    assert docs[0] == ast.get_docstring(ast.parse((json_dir / "__init__.py").read_text()))  # the module first
    builds = []

    def fake_build(stdlib: Path) -> list[str]:
        builds.append(stdlib)
        return docs

    monkeypatch.setattr(data.text, "_stdlib_docstrings", fake_build)  # where load_text looks it up
    first = load_text("stdlib-docs", root=tmp_path)
    assert "built from" in capsys.readouterr().out and len(builds) == 1
    assert first == "\n\n".join(docs) + "\n" and first in load_text("stdlib-docs")  # json's part of the whole
    assert load_text("stdlib-docs", root=tmp_path) == first and len(builds) == 1  # the cache, no rebuild
    assert "cached build" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [
        f"stdlib-docs-{platform.python_implementation().lower()}-{platform.python_version()}.json"]
    load_text("stdlib-docs", root=tmp_path, source="download")
    assert len(builds) == 2


# --------------------------------------------------------------------------------------------- Q&A
def _shop_generator(monkeypatch: pytest.MonkeyPatch):
    """tools/make_shop_qa.py imported as a module (registered first, as its dataclass needs)."""
    spec = importlib.util.spec_from_file_location("make_shop_qa", data.DATA_DIR.parent / "tools" / "make_shop_qa.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_shop_qa_set(capsys) -> None:
    pairs = load_qa("shop")
    assert "[aigc.data] qa shop: offline set" in capsys.readouterr().out and qa_sets() == ["shop"]
    assert len(pairs) >= 500 and all(set(p) == {"id", "intent", "question", "answer"} for p in pairs)
    assert all(v.strip() and v.isascii() for p in pairs for v in p.values())
    assert len({p["id"] for p in pairs}) == len(pairs) and pairs[0]["id"] == "qa-0001"
    assert len({p["question"] for p in pairs}) == len(pairs)
    per_intent = Counter(p["intent"] for p in pairs)
    assert len(per_intent) >= 20 and min(per_intent.values()) >= 10, per_intent
    assert max(len(p["answer"]) for p in pairs) < 300  # one to three sentences
    orders = [p for p in pairs if p["intent"] == "order_tracking"]
    assert all(re.search(r"WK-\d{5}", p["question"])[0] in p["answer"] for p in orders)  # slots fill both


def test_shop_qa_generator_is_deterministic_and_matches_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    generator = _shop_generator(monkeypatch)
    records = generator.make_records()
    assert records == generator.make_records() and records != generator.make_records(seed=1)
    assert generator.to_jsonl(records) == (data.DATA_DIR / "qa" / "shop_qa.jsonl").read_text(encoding="utf-8")


def test_qa_errors(tmp_path: Path) -> None:
    (tmp_path / "qa").mkdir()
    good = {"id": "qa-1", "intent": "hello", "question": "Hi?", "answer": "Hello!"}
    (tmp_path / "qa" / "tiny_qa.jsonl").write_text(json.dumps(good) + "\n\n")
    assert load_qa("tiny", root=tmp_path) == [good]
    with pytest.raises(FileNotFoundError, match="no Q&A set 'bank'.*tiny"):
        load_qa("bank", root=tmp_path)
    (tmp_path / "qa" / "broken_qa.jsonl").write_text(json.dumps(good) + '\n{"id": "qa-2", "question": \n')
    with pytest.raises(ValueError, match=r"broken_qa\.jsonl, line 2: not valid JSON"):
        load_qa("broken", root=tmp_path)
    (tmp_path / "qa" / "partial_qa.jsonl").write_text(json.dumps({**good, "answer": ""}) + "\n")
    with pytest.raises(ValueError, match=r"partial_qa\.jsonl, line 1: need non-empty text fields"):
        load_qa("partial", root=tmp_path)


def _answers(pairs) -> set[str]:
    return {" ".join(p["answer"].lower().split()) for p in pairs}


def test_qa_split_keeps_every_answer_in_one_split_on_the_shop_set() -> None:
    pairs = load_qa("shop")
    train, val, test = data.qa_split(pairs, seed=0)
    assert sorted(p["id"] for p in train + val + test) == sorted(p["id"] for p in pairs)  # a partition
    assert not (_answers(train) & _answers(val) or _answers(train) & _answers(test) or _answers(val) & _answers(test))
    for part, fraction in zip((train, val, test), (0.6, 0.2, 0.2)):
        assert abs(len(part) / len(pairs) - fraction) < 0.05, [len(p) for p in (train, val, test)]
    intents = {p["intent"] for p in pairs}
    assert {p["intent"] for p in train} == intents  # every intent is seen in training
    assert len({p["intent"] for p in test}) >= 15 and len(test) >= 100  # enough unseen answers to score
    # the leak it fixes: a random split puts most test answers, word for word, into training
    random_train, _, random_test = split(pairs, (0.6, 0.2, 0.2), seed=0)
    leaked = sum(a in _answers(random_train) for a in (" ".join(p["answer"].lower().split()) for p in random_test))
    assert leaked > 0.5 * len(random_test), leaked


def test_qa_split_is_deterministic_per_seed() -> None:
    pairs = load_qa("shop")
    ids = [[[p["id"] for p in part] for part in data.qa_split(pairs, seed=s)] for s in (0, 0, 1)]
    assert ids[0] == ids[1] and ids[0] != ids[2]


def test_qa_split_groups_answers_that_differ_only_in_case_and_spacing() -> None:
    pairs = []
    for intent in ("hours", "shipping", "returns"):
        for g in range(6):
            answer = f"Answer {g} of the {intent} intent."
            variants = (answer, answer.upper(), "  " + answer.replace(" ", "   ") + "\n", answer.lower())
            pairs += [{"id": f"{intent}-{g}-{v}", "intent": intent, "question": f"q {intent} {g} {v}", "answer": a}
                      for v, a in enumerate(variants)]
    pairs.append({"id": "alone", "intent": "greeting", "question": "hi", "answer": "Hello!"})
    train, val, test = data.qa_split(pairs, seed=3)
    where = {}
    for name, part in (("train", train), ("val", val), ("test", test)):
        for p in part:
            where.setdefault(" ".join(p["answer"].lower().split()), set()).add(name)
    assert len(where) == 19 and all(len(names) == 1 for names in where.values()), where
    assert all(len(part) % 4 == 0 for part in (val, test)) and val and test  # variants travel together
    assert {p["intent"] for p in test} <= {p["intent"] for p in train}
    assert next(p for p in pairs if p["id"] == "alone") in train  # an intent with one answer: train only


def test_qa_split_errors() -> None:
    pairs = load_qa("shop")
    for bad in ((0.8, 0.2), (0.6, 0.3, 0.2), (0.6, 0.4, 0.0), (1.2, -0.1, -0.1)):
        with pytest.raises(ValueError, match="three positive numbers"):
            data.qa_split(pairs, bad)
    same = [{"id": str(i), "intent": "x", "question": f"q{i}", "answer": "Same." if i % 2 else "SAME. "}
            for i in range(50)]
    with pytest.raises(ValueError, match="only 1 distinct answers"):
        data.qa_split(same)
    with pytest.raises(ValueError, match="'intent' and 'answer'"):
        data.qa_split([{"question": "q", "answer": "a"}] * 5)


def test_split_seen_answers_holds_out_new_wordings_of_answers_kept_in_train() -> None:
    train, _, test = data.qa_split(load_qa("shop"), seed=0)
    rest, seen = data.split_seen_answers(train, 40, seed=0)
    assert len(rest) + len(seen) == len(train) and len(seen) == 40
    assert not {p["id"] for p in seen} & {p["id"] for p in rest}
    assert _answers(seen) <= _answers(rest)  # every held-out answer is still in training: recall, not generalisation
    assert not _answers(test) & (_answers(rest) | _answers(seen))  # the unseen test shares no answer with either
    assert [p["id"] for p in data.split_seen_answers(train, 40, seed=0)[1]] == [p["id"] for p in seen]
    with pytest.raises(ValueError, match="n must be between 1 and"):
        data.split_seen_answers(train, 10_000)
