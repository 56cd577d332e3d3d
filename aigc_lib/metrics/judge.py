"""The offline judge: a small classifier trained here whose features and predictions score generated images.

Inception cannot be downloaded offline, so the course's offline metric is a small classifier, the *judge*,
that :meth:`ImageJudge.train` fits on the offline digits or shapes. Its pooled features give a Frechet
distance ("FD-digits"), its predictions give class coverage (mode collapse shows as missing classes) and, for
captioned shapes, prompt accuracy (:func:`shapes_judge`). A trained judge is cached under a key hashed from
its data, its settings and the code that trains it (:func:`aigc_lib.storage.cache_key`).
"""
from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aigc_lib import storage
from aigc_lib.data import DATA_DIR, ImageData, TensorLoader, make_shapes, split_indices
from aigc_lib.metrics.image import as_images, class_coverage, frechet_distance
from aigc_lib.runtime import pick_device, steps_scale
from aigc_lib.shapes import SHAPE_ATTRIBUTES
from aigc_lib.train import TrainConfig, Trainer

__all__ = ["JUDGE_CACHE", "JUDGE_STEPS", "ClassifierConfig", "ImageClassifier", "ImageJudge", "real_baseline_fd",
           "shapes_judge"]

JUDGE_CACHE = DATA_DIR / "cache" / "judges"
# steps of the judge per profile: chapters 08 and 09 pass the same number so they share one cached judge
# (200 steps already read real shapes 100% right at 32 px; measured on a 2-core CPU, 7.8 s)
JUDGE_STEPS = {"smoke": 200, "quick": 600, "full": 600}


# --------------------------------------------------------------------------------------------- classifier
@dataclass(frozen=True)
class ClassifierConfig:
    """A judge network: input channels, heads as (name, classes) pairs, input size and base width."""

    channels: int
    heads: tuple[tuple[str, int], ...]  # (("digit", 10),) or (("color", 6), ("shape", 6), ("position", 9))
    size: int = 32  # inputs are resized to size x size, so one judge scores 28, 32 or 64 px images
    width: int = 32  # channels of the first conv; features have 4 * width dimensions

    def __post_init__(self) -> None:
        if self.channels < 1 or not self.heads or any(n < 1 for _, n in self.heads):
            raise ValueError(f"need channels >= 1 and at least one head with >= 1 class, got {self}.")
        if self.size < 8 or self.width < 8 or self.width % 8:
            raise ValueError(f"need size >= 8 and width a multiple of 8, got {self.size} and {self.width}.")


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    # GroupNorm, not BatchNorm: an image's features never depend on the other images in its batch
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.GroupNorm(8, c_out), nn.SiLU())


class ImageClassifier(nn.Module):
    """A small CNN with one classification head per attribute; its pooled features feed FD (notebook 03)."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.body = nn.Sequential(
            _block(config.channels, w, 2),  # (N, w, s/2, s/2)
            _block(w, 2 * w, 2),  # (N, 2w, s/4, s/4)
            _block(2 * w, 4 * w, 2),  # (N, 4w, s/8, s/8)
            _block(4 * w, 4 * w, 1),  # (N, 4w, s/8, s/8): each position now sees the whole image
        )
        self.heads = nn.ModuleDict({name: nn.Linear(4 * w, n) for name, n in config.heads})

    def features(self, x: Tensor) -> Tensor:
        """Globally pooled features (N, 4 * width) of images (N, C, H, W) in [-1, 1]."""
        s = self.config.size
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, (s, s), mode="bilinear", antialias=True, align_corners=False)  # (N, C, s, s)
        return self.body(x).mean((2, 3))  # (N, 4w)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        f = self.features(x)  # (N, 4w)
        return {name: head(f) for name, head in self.heads.items()}  # name -> (N, classes) logits


@torch.no_grad()
def _outputs(model: ImageClassifier, images: Tensor,
             batch_size: int = 512) -> tuple[Tensor, dict[str, Tensor]]:
    """Features (N, F) and logits per head, float32 on the CPU, computed in batches without gradients."""
    device = next(model.parameters()).device
    features, logits = [], {name: [] for name in model.heads}
    for chunk in images.split(batch_size):
        f = model.features(chunk.to(device, torch.float32))  # (B, F)
        features.append(f.float().cpu())
        for name, head in model.heads.items():
            logits[name].append(head(f).float().cpu())  # (B, classes)
    return torch.cat(features), {name: torch.cat(parts) for name, parts in logits.items()}


def _accuracy(model: ImageClassifier, images: Tensor, labels: Mapping[str, Tensor]) -> dict[str, float]:
    logits = _outputs(model, images)[1]
    return {name: (logits[name].argmax(1) == y.cpu()).float().mean().item() for name, y in labels.items()}


def _fit(model: ImageClassifier, images: Tensor, labels: Mapping[str, Tensor], *, steps: int,
         batch_size: int, lr: float, device: torch.device, seed: int, progress: bool) -> dict[str, float]:
    """AdamW with a one-cycle LR on 80% of the data; returns the accuracy per head on a held-out 10%."""
    train, val, test = split_indices(len(images), (0.8, 0.1, 0.1), seed)
    names = list(labels)
    loader = TensorLoader(images[train], *(labels[n][train] for n in names),
                          batch_size=min(batch_size, len(train)), seed=seed, device=device)

    def step(trainer: Trainer, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        x, *ys = batch  # (B, C, H, W), then one (B,) label tensor per head
        logits = trainer.model(x)
        # L = sum_heads CE(logits_head, y_head): every head learns from the same shared features
        loss = sum(F.cross_entropy(logits[n], y) for n, y in zip(names, ys, strict=True))
        trainer.backward(loss)
        trainer.optimizer_step()
        return {"loss": loss}

    def evaluate(trainer: Trainer) -> dict[str, float]:
        accuracy = _accuracy(model, images[val], {n: labels[n][val] for n in names})
        return {f"val_acc_{n}": a for n, a in accuracy.items()}

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    config = TrainConfig(max_steps=steps, precision="fp32", device=str(device), progress=progress,
                         log_every=max(1, min(50, steps)), scale_steps=True)
    Trainer(model, optimizer, step, loader, config, schedulers={"model": schedule}, eval_fn=evaluate,
            run_config=asdict(model.config)).fit()
    return _accuracy(model, images[test], {n: labels[n][test] for n in names})


def _class_names(data: ImageData, head: str, labels: Tensor) -> list[str]:
    if labels is data.labels:
        return list(data.classes)
    if data.source == "shapes" and head in SHAPE_ATTRIBUTES:  # attributes index the full lists, in any subset
        return list(SHAPE_ATTRIBUTES[head])
    return [str(k) for k in range(int(labels.max()) + 1)]


def _cache_key(name: str, images: Tensor, labels: Mapping[str, Tensor], **settings: object) -> str:
    sample = images[:: max(1, len(images) // 16)].double()  # a cheap fingerprint of the data
    fingerprint = [round(float(sample.sum()), 3), round(float(sample.square().mean()), 6),
                   *(int(y.sum()) for y in labels.values())]
    payload = {"name": name, "n": len(images), "shape": list(images.shape[1:]), "fingerprint": fingerprint,
               "steps_scale": steps_scale(), **settings}  # a rehearsal's short-trained judge is cached apart
    # the code that trains a judge is part of its key: changing it can never serve a stale judge
    return storage.cache_key(payload, ClassifierConfig, _block, ImageClassifier, _fit)


def _percent(accuracy: Mapping[str, float]) -> str:
    return ", ".join(f"{head} {a:.1%}" for head, a in accuracy.items())


# --------------------------------------------------------------------------------------------- judge
class ImageJudge:
    """A trained ImageClassifier that scores generated images: FD, coverage, prompt accuracy (notebook 03)."""

    def __init__(self, model: ImageClassifier, classes: Mapping[str, list[str]],
                 accuracy: Mapping[str, float], name: str = "judge", device: str | torch.device | None = None,
                 path: Path | None = None, loaded_from_cache: bool = False) -> None:
        self.model = model.to(pick_device(device)).eval().requires_grad_(False)
        self.config: ClassifierConfig = model.config
        self.classes, self.accuracy = dict(classes), dict(accuracy)  # head -> class names / test accuracy
        self.name, self.path, self.loaded_from_cache = name, path, loaded_from_cache

    @classmethod
    def train(cls, data: ImageData, heads: Mapping[str, Tensor] | None = None, *, steps: int = 300,
              batch_size: int = 128, lr: float = 2e-3, device: str | torch.device | None = None,
              seed: int = 0, name: str = "digits", cache_dir: str | os.PathLike | None = JUDGE_CACHE,
              progress: bool = False) -> ImageJudge:
        """Train a judge on real images, or load the one cached for this data and settings (notebook 03)."""
        labels = {"class": data.labels} if heads is None else dict(heads)
        bad = [n for n, y in labels.items()
               if y.shape != (len(data),) or y.dtype != torch.long or y.min() < 0]
        if not labels or bad:
            raise ValueError(f"heads must map names to (N,) = ({len(data)},) int64 labels >= 0: "
                             f"{bad or 'no heads given'}.")
        classes = {n: _class_names(data, n, y) for n, y in labels.items()}
        config = ClassifierConfig(data.images.shape[1], tuple((n, len(c)) for n, c in classes.items()))
        if min(n for _, n in config.heads) < 2:  # e.g. a flat folder of unlabelled images
            print(f"[aigc.metrics] warning: judge {name!r} has a head with one class: it learns nothing, its "
                  "features stay random and FD on them is weak. Give labels, or use inception_fd online.")
        key = _cache_key(name, data.images, labels, config=asdict(config), steps=steps, seed=seed,
                         batch_size=batch_size, lr=lr)
        path = Path(cache_dir) / f"{re.sub(r'[^A-Za-z0-9_-]', '_', name)}-{key}" if cache_dir else None
        if path is not None and (judge := cls._load(path, key, device)) is not None:
            return judge
        device = pick_device(device)
        with torch.random.fork_rng(devices=[]):  # seeded weights; the caller's random state is left alone
            torch.manual_seed(seed)
            model = ImageClassifier(config)
        start = time.perf_counter()
        accuracy = _fit(model, data.images, labels, steps=steps, batch_size=batch_size, lr=lr, device=device,
                        seed=seed, progress=progress)
        seconds = time.perf_counter() - start
        judge = cls(model, classes, accuracy, name, device, path)
        if path is not None:
            judge._save(path, key, seconds)
        print(f"[aigc.metrics] trained judge {name!r} ({len(data)} images, {steps} steps on {device}): test "
              f"accuracy {_percent(accuracy)} in {seconds:.1f} s" + (f"; saved to {path}.*" if path else ""))
        return judge

    def _save(self, path: Path, key: str, seconds: float) -> None:
        storage.save_model_entry(path, self.model.state_dict(), {
            "key": key, "name": self.name, "config": asdict(self.config), "classes": self.classes,
            "accuracy": self.accuracy, "train_seconds": round(seconds, 2)})

    @classmethod
    def _load(cls, path: Path, key: str, device: str | torch.device | None) -> ImageJudge | None:
        def build(meta: dict, weights: dict) -> ImageClassifier:
            config = dict(meta["config"])
            heads = tuple((str(n), int(k)) for n, k in config.pop("heads"))
            model = ImageClassifier(ClassifierConfig(heads=heads, **config))
            model.load_state_dict(weights)
            return model

        if (entry := storage.load_model_entry(path, key, build, "judge", "aigc.metrics")) is None:
            return None
        model, meta = entry
        judge = cls(model, meta["classes"], meta["accuracy"], meta["name"], device, path, True)
        print(f"[aigc.metrics] loaded cached judge {judge.name!r} (test accuracy {_percent(judge.accuracy)}) "
              f"from {path.with_suffix('.safetensors')}")
        return judge

    def _head(self, head: str | None) -> str:
        head = head or next(iter(self.classes))  # None: the first head
        if head not in self.classes:
            raise ValueError(f"judge {self.name!r} has no head {head!r}; its heads are {list(self.classes)}.")
        return head

    def _run(self, images: Tensor | ImageData, batch_size: int = 512) -> tuple[Tensor, dict[str, Tensor]]:
        x = as_images(images)
        if x.shape[1] != self.config.channels:
            raise ValueError(f"judge {self.name!r} was trained on {self.config.channels}-channel images, got "
                             f"{x.shape[1]} channels: score images of the kind it was trained on.")
        return _outputs(self.model, x, batch_size)

    def features(self, images: Tensor | ImageData, batch_size: int = 512) -> Tensor:
        """Pooled features (N, F), float32 on the CPU, of images in [-1, 1] (notebook 03)."""
        return self._run(images, batch_size)[0]

    def probabilities(self, images: Tensor | ImageData, head: str | None = None) -> Tensor:
        """Class probabilities (N, classes) from one head (default: the first) (notebook 02)."""
        return self._run(images)[1][self._head(head)].softmax(1)

    def predict(self, images: Tensor | ImageData, head: str | None = None) -> Tensor:
        """Predicted labels (N,) from one head (default: the first) (notebook 02)."""
        return self._run(images)[1][self._head(head)].argmax(1)

    def fd(self, fake: Tensor | ImageData, real: Tensor | ImageData) -> float:
        """Frechet distance between generated and real images in this judge's features (notebook 03)."""
        return frechet_distance(self.features(fake), self.features(real))

    def evaluate(self, fake: Tensor | ImageData, real: Tensor | ImageData,
                 head: str | None = None) -> dict[str, float]:
        """FD to real images, plus coverage, entropy, max share and confidence of fake ones (notebook 03)."""
        head = self._head(head)
        f_fake, logits = self._run(fake)
        p = logits[head].softmax(1)  # (N, classes)
        stats = class_coverage(p.argmax(1), p.shape[1])
        return {"fd": frechet_distance(f_fake, self.features(real)), "coverage": stats.covered,
                "num_classes": stats.num_classes, "entropy": stats.entropy, "max_share": stats.max_share,
                "confidence": p.max(1).values.mean().item()}

    def prompt_accuracy(self, images: Tensor | ImageData, targets: Mapping[str, Tensor]) -> dict[str, float]:
        """Share of images whose predicted labels match the prompt, per head and for "all" (notebook 08)."""
        if not targets:
            raise ValueError(f"give target labels for at least one head of {list(self.classes)}.")
        logits = self._run(images)[1]
        right = []
        for head, target in targets.items():
            target = torch.as_tensor(target).long().cpu()
            if target.shape != (len(logits[self._head(head)]),):
                raise ValueError(f"targets[{head!r}] has shape {tuple(target.shape)}: one label per image.")
            right.append(logits[head].argmax(1) == target)  # (N,) bool
        result = {head: r.float().mean().item() for head, r in zip(targets, right, strict=True)}
        result["all"] = torch.stack(right).all(0).float().mean().item()
        return result


def real_baseline_fd(judge: ImageJudge, real: Tensor | ImageData, n: int, seed: int = 0) -> float:
    """FD between two disjoint random sets of n real images, the floor for a generator's FD (notebook 03)."""
    real = as_images(real)
    if n < 2 or len(real) < 2 * n:
        raise ValueError(f"need 2 * n = {2 * n} real images (n >= 2) for two disjoint sets, got {len(real)}.")
    order = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))
    return judge.fd(real[order[:n]], real[order[n:2 * n]])


def shapes_judge(image_size: int = 32, n: int = 12000, steps: int = 600, seed: int = 0,
                 device: Any = None, progress: bool = False) -> ImageJudge:
    """The prompt-accuracy judge: an ImageJudge with colour, shape and position heads trained on real shapes of
    all six kinds (held-out ones included), cached after the first run (notebooks 08 and 09)."""
    data = make_shapes(n, size=image_size, seed=seed + 1000)  # not the images the generators train on
    return ImageJudge.train(data, heads=data.attributes, steps=steps, seed=seed, device=device,
                            name=f"shapes-{image_size}px", progress=progress)
