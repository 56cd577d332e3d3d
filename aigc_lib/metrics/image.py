"""Image metrics for generated images: Frechet distance, class coverage and Inception FID (notebooks 02, 03).

FD on a small classifier's features (the offline *judge*, :mod:`aigc_lib.metrics.judge`) is NOT comparable to
published Inception FID numbers, nor to the FD of another judge. Compare it only with the real-vs-real FD of
two disjoint real sets of the same size, measured with the same judge; FD depends on N, so keep N equal.
Online, :func:`inception_fd` is the usual FID (torchmetrics' Inception).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor, nn

from aigc_lib.data import ImageData
from aigc_lib.hub import ModelNotAvailableError
from aigc_lib.runtime import is_online, pick_device

__all__ = ["ClassStats", "as_images", "class_coverage", "feature_stats", "frechet_distance",
           "frechet_distance_from_stats", "inception_fd", "inception_features"]


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


def as_images(images: Tensor | ImageData) -> Tensor:
    """The (N, C, H, W) float images of a tensor or an ImageData, checked (notebook 03 scores both)."""
    x = images.images if isinstance(images, ImageData) else images
    if not torch.is_tensor(x) or x.ndim != 4 or not x.is_floating_point():
        got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"expected float images (N, C, H, W) in [-1, 1], got {got}.")
    return x


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
    images = as_images(images)
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
