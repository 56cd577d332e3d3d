"""Image metrics for generated images: Frechet distance, class coverage, prompt accuracy, Inception FID.

Inception cannot be downloaded offline, so the course's offline metric is a small classifier, the *judge*,
that :meth:`ImageJudge.train` fits on the offline digits or shapes. Its pooled features give a Frechet
distance ("FD-digits"), its predictions give class coverage (mode collapse shows as missing classes) and, for
captioned shapes, prompt accuracy. Online, :func:`inception_fd` is the usual FID (torchmetrics' Inception).

FD-digits, like any FD on our small classifier's features, is NOT comparable to published Inception FID
numbers, nor to the FD of another judge. Compare it only with the real-vs-real FD of two disjoint real sets
of the same size, measured with the same judge (:func:`real_baseline_fd`); FD depends on N, so keep N equal.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save
from torch import Tensor, nn

from aigc_lib.data import COLORS, DATA_DIR, POSITIONS, SHAPES, ImageData, TensorLoader, split_indices
from aigc_lib.hub import ModelNotAvailableError
from aigc_lib.runtime import is_online, pick_device
from aigc_lib.train import TrainConfig, Trainer

JUDGE_CACHE = DATA_DIR / "cache" / "judges"
_CACHE_VERSION = 1  # part of the cache key: bump it when ImageClassifier or the training recipe changes
_SHAPE_NAMES = {"color": list(COLORS), "shape": list(SHAPES), "position": list(POSITIONS)}  # make_shapes


# ------------------------------------------------------------------------------------------ Frechet distance
def feature_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (F,) and covariance (F, F) of a feature set (N, F), in float64 (notebook 03 "DCGAN")."""
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need features of shape (N, F) with N >= 2 samples, got {tuple(features.shape)}.")
    x = features.detach().to("cpu", torch.float64)  # (N, F)
    if not torch.isfinite(x).all():
        raise ValueError("features contain NaN or inf: so do the images (did the generator diverge?).")
    return x.mean(0), torch.cov(x.T)  # mu (F,), sigma (F, F) divided by N - 1


def frechet_distance_from_stats(mu_a: Tensor, sigma_a: Tensor, mu_b: Tensor, sigma_b: Tensor) -> float:
    """Frechet distance between the Gaussians N(mu_a, sigma_a) and N(mu_b, sigma_b) (notebook 03 "DCGAN")."""
    mu_a, sigma_a, mu_b, sigma_b = (t.detach().to("cpu", torch.float64)
                                    for t in (mu_a, sigma_a, mu_b, sigma_b))
    f = mu_a.shape[-1]
    if mu_a.shape != (f,) or mu_b.shape != (f,) or sigma_a.shape != (f, f) or sigma_b.shape != (f, f):
        raise ValueError(f"feature dimensions differ: mu {tuple(mu_a.shape)} / {tuple(mu_b.shape)}, sigma "
                         f"{tuple(sigma_a.shape)} / {tuple(sigma_b.shape)}; use one feature extractor.")
    # d^2 = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})
    # Tr((S_a S_b)^{1/2}) = sum_i sqrt(lambda_i), lambda_i the eigenvalues of S_a S_b; that product is similar
    # to the PSD matrix S_a^{1/2} S_b S_a^{1/2}, so lambda_i are real and >= 0 (round-off parts are dropped)
    lambdas = torch.linalg.eigvals(sigma_a @ sigma_b).real.clamp(min=0)  # (F,)
    d2 = (mu_a - mu_b).square().sum() + sigma_a.trace() + sigma_b.trace() - 2 * lambdas.sqrt().sum()
    return max(float(d2), 0.0)  # >= 0 exactly; round-off can give -1e-12 for identical sets


def frechet_distance(features_a: Tensor, features_b: Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N, F) (notebook 03 "DCGAN")."""
    if features_a.ndim != 2 or features_b.ndim != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"need two feature sets (N, F) with the same F, got {tuple(features_a.shape)} and "
                         f"{tuple(features_b.shape)}.")
    return frechet_distance_from_stats(*feature_stats(features_a), *feature_stats(features_b))


# -------------------------------------------------------------------------------------------- class coverage
@dataclass(frozen=True)
class ClassStats:
    """How many classes a set of (predicted) labels covers, and how evenly."""

    covered: int  # classes that get at least min_share of their fair share N / K
    num_classes: int
    entropy: float  # H(p) / log K of the class histogram: 1 = uniform, 0 = a single class
    max_share: float  # the largest class's share of N (1 / K when balanced)
    histogram: tuple[int, ...]


def class_coverage(labels: Tensor, num_classes: int, min_share: float = 0.25) -> ClassStats:
    """Class coverage and normalized entropy of labels; mode collapse shows as missing classes (notebook 02).

    A class counts as covered when it gets at least ``min_share`` of its fair share N / K: with 0.25, a
    class given a quarter of the images a balanced set would give it is covered; a forgotten class is not.
    """
    labels = torch.as_tensor(labels).detach().cpu().long().flatten()
    if len(labels) == 0 or num_classes < 1:
        raise ValueError(f"need at least one label and num_classes >= 1, got {len(labels)}, {num_classes}.")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got "
                         f"{int(labels.min())}..{int(labels.max())}.")
    counts = torch.bincount(labels, minlength=num_classes)  # (K,)
    p = counts.double() / len(labels)  # (K,)
    p_nonzero = p[p > 0]
    # H = -sum_k p_k log p_k, divided by log K so that a uniform histogram gives 1
    entropy = float(-(p_nonzero * p_nonzero.log()).sum() / math.log(num_classes)) if num_classes > 1 else 1.0
    covered = int(((counts > 0) & (counts >= min_share * len(labels) / num_classes)).sum())
    return ClassStats(covered, num_classes, max(entropy, 0.0), float(p.max()), tuple(counts.tolist()))


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


# --------------------------------------------------------------------------------------------- training
def _as_images(images: Tensor | ImageData) -> Tensor:
    x = images.images if isinstance(images, ImageData) else images
    if not torch.is_tensor(x) or x.ndim != 4 or not x.is_floating_point():
        got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"expected float images (N, C, H, W) in [-1, 1], got {got}.")
    return x


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
                         log_every=max(1, min(50, steps)))
    Trainer(model, optimizer, step, loader, config, schedulers={"model": schedule}, eval_fn=evaluate,
            run_config=asdict(model.config)).fit()
    return _accuracy(model, images[test], {n: labels[n][test] for n in names})


def _class_names(data: ImageData, head: str, labels: Tensor) -> list[str]:
    if labels is data.labels:
        return list(data.classes)
    if data.source == "shapes" and head in _SHAPE_NAMES:  # attributes index the full lists, in any subset
        return _SHAPE_NAMES[head]
    return [str(k) for k in range(int(labels.max()) + 1)]


def _cache_key(name: str, images: Tensor, labels: Mapping[str, Tensor], **settings: object) -> str:
    sample = images[:: max(1, len(images) // 16)].double()  # a cheap fingerprint of the data
    fingerprint = [round(float(sample.sum()), 3), round(float(sample.square().mean()), 6),
                   *(int(y.sum()) for y in labels.values())]
    payload = {"version": _CACHE_VERSION, "name": name, "n": len(images), "shape": list(images.shape[1:]),
               "fingerprint": fingerprint, **settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _write_atomic(path: Path, payload: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)  # a reader sees the old file or the complete new one


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
        path.parent.mkdir(parents=True, exist_ok=True)
        weights = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        _write_atomic(path.with_suffix(".safetensors"), save(weights))
        meta = {"key": key, "name": self.name, "config": asdict(self.config), "classes": self.classes,
                "accuracy": self.accuracy, "train_seconds": round(seconds, 2)}
        # the JSON goes last: it marks the cache entry complete
        _write_atomic(path.with_suffix(".json"), json.dumps(meta, indent=2).encode())

    @classmethod
    def _load(cls, path: Path, key: str, device: str | torch.device | None) -> ImageJudge | None:
        meta_file, weights_file = path.with_suffix(".json"), path.with_suffix(".safetensors")
        if not (meta_file.is_file() and weights_file.is_file()):
            return None
        try:
            meta = json.loads(meta_file.read_text())
            if meta["key"] != key:
                return None
            heads = tuple((str(n), int(k)) for n, k in meta["config"].pop("heads"))
            model = ImageClassifier(ClassifierConfig(heads=heads, **meta["config"]))
            model.load_state_dict(load_file(weights_file))  # safetensors: plain tensors, never pickle
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
            print(f"[aigc.metrics] ignoring the unreadable cached judge {path} ({error}); training again")
            return None
        judge = cls(model, meta["classes"], meta["accuracy"], meta["name"], device, path, True)
        print(f"[aigc.metrics] loaded cached judge {judge.name!r} (test accuracy {_percent(judge.accuracy)}) "
              f"from {weights_file}")
        return judge

    def _head(self, head: str | None) -> str:
        head = head or next(iter(self.classes))  # None: the first head
        if head not in self.classes:
            raise ValueError(f"judge {self.name!r} has no head {head!r}; its heads are {list(self.classes)}.")
        return head

    def _run(self, images: Tensor | ImageData, batch_size: int = 512) -> tuple[Tensor, dict[str, Tensor]]:
        x = _as_images(images)
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
    real = _as_images(real)
    if n < 2 or len(real) < 2 * n:
        raise ValueError(f"need 2 * n = {2 * n} real images (n >= 2) for two disjoint sets, got {len(real)}.")
    order = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))
    return judge.fd(real[order[:n]], real[order[n:2 * n]])


# --------------------------------------------------------------------------------------------- Inception FID
_FID_HELP = ("FID needs the Inception weights from the internet (~100 MB, downloaded once into {folder}), "
             "but {why}. Connect once (and unset HF_HUB_OFFLINE / AIGC_OFFLINE) to download them; offline, "
             "use the judge's FD instead (FD-digits: ImageJudge.train(...).fd(fake, real)).")


@lru_cache(maxsize=2)
def _inception(device: torch.device) -> nn.Module:
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"  # torch hub's cache, which torch-fidelity uses
    if not is_online() and not any(checkpoints.glob("weights-inception-*")):
        why = "this machine is offline (or HF_HUB_OFFLINE / AIGC_OFFLINE is set) and they are not cached"
        raise ModelNotAvailableError(_FID_HELP.format(folder=checkpoints, why=why))
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError as error:
        raise ModelNotAvailableError(f"FID needs torchmetrics and torch-fidelity ({error}): "
                                     "pip install torchmetrics torch-fidelity") from None
    try:
        # download into the torch hub cache and check that it holds plain tensors (weights_only=True);
        # torch-fidelity then reads that same cached file
        torch.hub.load_state_dict_from_url(URL_INCEPTION_V3, progress=False, weights_only=True)
        net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"])
    except OSError as error:  # URLError, HTTPError, a truncated file
        why = f"loading them failed ({error})"
        raise ModelNotAvailableError(_FID_HELP.format(folder=checkpoints, why=why)) from error
    return net.to(device)


def inception_features(images: Tensor | ImageData, device: str | torch.device | None = None,
                       batch_size: int = 64) -> Tensor:
    """Inception-v3 pool features (N, 2048) of images in [-1, 1], the ones FID uses (notebook 03, online)."""
    images = _as_images(images)
    if images.shape[1] not in (1, 3):
        raise ValueError(f"Inception takes 1- or 3-channel images, got {images.shape[1]} channels.")
    device = pick_device(device)
    net = _inception(device)
    out = []
    with torch.no_grad():
        for chunk in images.split(batch_size):
            # [-1, 1] -> uint8 [0, 255] with 3 channels; NoTrainInceptionV3 resizes to 299 px itself
            x = ((chunk.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (B, C, H, W)
            x = x.expand(-1, 3, -1, -1)  # (B, 3, H, W): gray images repeat their one channel
            out.append(net(x.to(device)).float().cpu())  # (B, 2048)
    return torch.cat(out)


def inception_fd(fake: Tensor | ImageData, real: Tensor | ImageData,
                 device: str | torch.device | None = None) -> float:
    """FID: the Frechet distance of Inception-v3 features, comparable to published numbers (notebook 03)."""
    return frechet_distance(inception_features(fake, device), inception_features(real, device))
