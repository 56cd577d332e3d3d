"""The audio judge: a small CNN on log-mel spectrograms whose features and predictions score generated sound.

The offline analogue of Frechet Audio Distance (FAD, Kilgour et al. 2019), which compares clips in the
features of VGGish, a network that cannot be downloaded offline. :meth:`AudioJudge.train` fits a classifier on labelled
clips (the sound effects of :mod:`aigc_lib.audio.effects`); its pooled features give a Frechet distance, its
predictions give class accuracy and coverage, exactly as :class:`aigc_lib.metrics.ImageJudge` does for images.
Compare an FD only with the real-vs-real FD of two disjoint real sets of the same size, scored by the same
judge. A trained judge is cached under a key hashed from its data, its settings and its code (notebook 13).
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aigc_lib import storage
from aigc_lib.audio import features as audio_features
from aigc_lib.audio.features import SAMPLE_RATE, log_mel, mel_filterbank, power, stft
from aigc_lib.data import TensorLoader, split_indices
from aigc_lib.metrics.image import class_coverage, frechet_distance
from aigc_lib.metrics.judge import JUDGE_CACHE
from aigc_lib.runtime import pick_device, steps_scale
from aigc_lib.train import TrainConfig, Trainer

__all__ = ["AudioClassifier", "AudioClassifierConfig", "AudioJudge"]


@dataclass(frozen=True)
class AudioClassifierConfig:
    """An audio judge network: classes, the log-mel front end and the base width (notebook 13)."""

    num_classes: int
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 512
    hop: int = 256  # 16 ms frames: a 1 s clip is a (40, 63) log-mel image
    n_mels: int = 40
    width: int = 16  # channels of the first conv; features have 4 * width dimensions

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise ValueError(f"a judge needs >= 2 classes to learn features, got {self.num_classes}.")
        if self.width < 8 or self.width % 8 or self.n_mels < 8:
            raise ValueError(f"need width a multiple of 8 and n_mels >= 8, got {self.width} and "
                             f"{self.n_mels}.")


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    # GroupNorm, not BatchNorm: a clip's features never depend on the other clips in its batch
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.GroupNorm(8, c_out), nn.SiLU())


class AudioClassifier(nn.Module):
    """Log-mel front end, four conv blocks, global pooling and a linear head (notebook 13)."""

    def __init__(self, config: AudioClassifierConfig) -> None:
        super().__init__()
        self.config = c = config
        filters = mel_filterbank(c.n_fft, c.n_mels, c.sample_rate)  # (n_mels, F), rebuilt from the config
        self.register_buffer("filters", filters, persistent=False)
        w = c.width
        self.body = nn.Sequential(
            _block(1, w, 2),  # (N, w, M/2, T/2)
            _block(w, 2 * w, 2),  # (N, 2w, M/4, T/4)
            _block(2 * w, 4 * w, 2),  # (N, 4w, M/8, T/8)
            _block(4 * w, 4 * w, 1),  # (N, 4w, M/8, T/8)
        )
        self.head = nn.Linear(4 * w, c.num_classes)

    def spectrogram(self, waves: Tensor) -> Tensor:
        """Scaled log-mel spectrograms (N, 1, n_mels, T) of waves (N, L)."""
        mel = self.filters @ power(stft(waves, self.config.n_fft, self.config.hop))  # (N, n_mels, T)
        return (log_mel(mel, eps=1e-6) / 5).unsqueeze(1)  # (N, 1, M, T), roughly in [-3, 2]

    def embed(self, spec: Tensor) -> Tensor:
        """Pooled features (N, 4 * width) of log-mel spectrograms (N, 1, M, T)."""
        return self.body(spec).mean((2, 3))  # (N, 4w): any clip length pools to one vector

    def forward(self, spec: Tensor) -> Tensor:
        return self.head(self.embed(spec))  # (N, classes) logits


@torch.no_grad()
def _outputs(model: AudioClassifier, waves: Tensor, batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """Features (N, F) and logits (N, K), float32 on the CPU, in batches without gradients."""
    device = model.filters.device
    features, logits = [], []
    for chunk in waves.split(batch_size):
        f = model.embed(model.spectrogram(chunk.to(device, torch.float32)))  # (B, F)
        features.append(f.float().cpu())
        logits.append(model.head(f).float().cpu())  # (B, K)
    return torch.cat(features), torch.cat(logits)


def _fit(model: AudioClassifier, waves: Tensor, labels: Tensor, *, steps: int, batch_size: int, lr: float,
         device: torch.device, seed: int, progress: bool) -> float:
    """AdamW with a one-cycle LR on 80% of the clips; returns the accuracy on a held-out 10%."""
    train, val, test = split_indices(len(waves), (0.8, 0.1, 0.1), seed)
    model.to(device)
    with torch.no_grad():  # the front end has no weights: compute the log-mels once, not every step
        specs = torch.cat([model.spectrogram(w.to(device)) for w in waves[train].split(256)])  # (N, 1, M, T)
    loader = TensorLoader(specs, labels[train], batch_size=min(batch_size, len(train)), seed=seed,
                          device=device)

    def step(trainer: Trainer, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x, y = batch  # (B, 1, M, T), (B,)
        loss = F.cross_entropy(trainer.model(x), y)  # L = CE(logits, y)
        trainer.backward(loss)
        trainer.optimizer_step()
        return {"loss": loss}

    def evaluate(trainer: Trainer) -> dict[str, float]:
        return {"val_acc": (_outputs(model, waves[val])[1].argmax(1) == labels[val]).float().mean().item()}

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    config = TrainConfig(max_steps=steps, precision="fp32", device=str(device), progress=progress,
                         log_every=max(1, min(50, steps)), scale_steps=True)
    Trainer(model, optimizer, step, loader, config, schedulers={"model": schedule}, eval_fn=evaluate,
            run_config=asdict(model.config)).fit()
    return (_outputs(model, waves[test])[1].argmax(1) == labels[test]).float().mean().item()


def _check_waves(waves: Tensor, what: str = "waves") -> Tensor:
    if not (isinstance(waves, Tensor) and waves.ndim == 2 and waves.is_floating_point() and len(waves) >= 1):
        raise ValueError(f"{what} must be a float tensor (N, L) of N clips, got "
                         f"{tuple(waves.shape) if isinstance(waves, Tensor) else type(waves).__name__}; "
                         "stack single clips with torch.stack.")
    return waves


def _cache_key(name: str, waves: Tensor, labels: Tensor, **settings: object) -> str:
    sample = waves[:: max(1, len(waves) // 16)].double()  # a cheap fingerprint of the data
    payload = {"name": name, "n": len(waves), "length": waves.shape[1], "steps_scale": steps_scale(),
               "fingerprint": [round(float(sample.sum()), 3), round(float(sample.square().mean()), 6),
                               int(labels.sum())], **settings}
    # the code that trains a judge and computes its log-mels is part of its key: no stale judge after a change
    return storage.cache_key(payload, AudioClassifierConfig, _block, AudioClassifier, _fit, audio_features)


# ----------------------------------------------------------------------------------------------- judge
class AudioJudge:
    """A trained AudioClassifier that scores generated clips: FD, class accuracy, coverage (notebook 13)."""

    def __init__(self, model: AudioClassifier, classes: list[str], accuracy: float, name: str = "audio",
                 device: str | torch.device | None = None, path: Path | None = None,
                 loaded_from_cache: bool = False) -> None:
        self.model = model.to(pick_device(device)).eval().requires_grad_(False)
        self.config: AudioClassifierConfig = model.config
        self.classes, self.accuracy = list(classes), float(accuracy)  # class names, held-out test accuracy
        self.name, self.path, self.loaded_from_cache = name, path, loaded_from_cache

    @classmethod
    def train(cls, waves: Tensor, labels: Tensor, classes: list[str] | tuple[str, ...], *, steps: int = 300,
              batch_size: int = 64, lr: float = 3e-3, device: str | torch.device | None = None, seed: int = 0,
              name: str = "effects", cache_dir: str | os.PathLike | None = JUDGE_CACHE, n_mels: int = 40,
              width: int = 16, progress: bool = False) -> AudioJudge:
        """Train a judge on labelled clips (N, L), or load the one cached for this recipe (notebook 13)."""
        waves = _check_waves(waves)
        if labels.shape != (len(waves),) or labels.dtype != torch.long or labels.min() < 0 \
                or labels.max() >= len(classes):
            raise ValueError(f"labels must be (N,) = ({len(waves)},) int64 in [0, {len(classes)}), one per "
                             f"clip, indexing classes; got {tuple(labels.shape)} {labels.dtype}.")
        config = AudioClassifierConfig(len(classes), n_mels=n_mels, width=width)
        key = _cache_key(name, waves, labels, config=asdict(config), classes=list(classes), steps=steps,
                         seed=seed, batch_size=batch_size, lr=lr)
        path = Path(cache_dir) / f"{re.sub(r'[^A-Za-z0-9_-]', '_', name)}-{key}" if cache_dir else None
        if path is not None and (judge := cls._load(path, key, device)) is not None:
            return judge
        device = pick_device(device)
        with torch.random.fork_rng(devices=[]):  # seeded weights; the caller's random state is left alone
            torch.manual_seed(seed)
            model = AudioClassifier(config)
        start = time.perf_counter()
        accuracy = _fit(model, waves, labels, steps=steps, batch_size=batch_size, lr=lr, device=device,
                        seed=seed, progress=progress)
        seconds = time.perf_counter() - start
        judge = cls(model, list(classes), accuracy, name, device, path)
        if path is not None:
            judge._save(path, key, seconds)
        print(f"[aigc.audio] trained audio judge {name!r} ({len(waves)} clips, {steps} steps on {device}): "
              f"test accuracy {accuracy:.1%} in {seconds:.1f} s" + (f"; saved to {path}.*" if path else ""))
        return judge

    def _save(self, path: Path, key: str, seconds: float) -> None:
        storage.save_model_entry(path, self.model.state_dict(), {
            "key": key, "name": self.name, "config": asdict(self.config), "classes": self.classes,
            "accuracy": self.accuracy, "train_seconds": round(seconds, 2)})

    @classmethod
    def _load(cls, path: Path, key: str, device: str | torch.device | None) -> AudioJudge | None:
        def build(meta: dict, weights: dict) -> AudioClassifier:
            model = AudioClassifier(AudioClassifierConfig(**meta["config"]))
            model.load_state_dict(weights)
            return model

        if (entry := storage.load_model_entry(path, key, build, "audio judge", "aigc.audio")) is None:
            return None
        model, meta = entry
        judge = cls(model, meta["classes"], meta["accuracy"], meta["name"], device, path, True)
        print(f"[aigc.audio] loaded cached audio judge {judge.name!r} (test accuracy {judge.accuracy:.1%}) "
              f"from {path.with_suffix('.safetensors')}")
        return judge

    def features(self, waves: Tensor, batch_size: int = 256) -> Tensor:
        """Pooled features (N, 4 * width), float32 on the CPU, of clips (N, L) (notebook 13)."""
        return _outputs(self.model, _check_waves(waves), batch_size)[0]

    def probabilities(self, waves: Tensor) -> Tensor:
        """Class probabilities (N, classes) of clips (N, L) (notebook 13)."""
        return _outputs(self.model, _check_waves(waves))[1].softmax(1)

    def predict(self, waves: Tensor) -> Tensor:
        """Predicted labels (N,) of clips (N, L) (notebook 13)."""
        return _outputs(self.model, _check_waves(waves))[1].argmax(1)

    def class_accuracy(self, waves: Tensor, labels: Tensor) -> dict[str, float]:
        """Accuracy per class name, plus "all", of clips (N, L) with known labels (N,) (notebook 13)."""
        labels = torch.as_tensor(labels).long().cpu()
        if labels.shape != (len(waves),):
            raise ValueError(f"labels have shape {tuple(labels.shape)}: one label per clip, ({len(waves)},).")
        right = self.predict(waves) == labels  # (N,) bool
        result = {c: right[labels == k].float().mean().item() for k, c in enumerate(self.classes)
                  if (labels == k).any()}
        return {**result, "all": right.float().mean().item()}

    def fd(self, fake: Tensor, real: Tensor) -> float:
        """Frechet distance between generated and real clips in this judge's features (notebook 13)."""
        return frechet_distance(self.features(fake), self.features(real))

    def evaluate(self, fake: Tensor, real: Tensor) -> dict[str, float]:
        """FD to real clips, plus coverage, entropy, max share and confidence of fake ones (notebook 13)."""
        f_fake, logits = _outputs(self.model, _check_waves(fake, "fake"))
        p = logits.softmax(1)  # (N, classes)
        stats = class_coverage(p.argmax(1), p.shape[1])
        return {"fd": frechet_distance(f_fake, self.features(real)), "coverage": stats.covered,
                "num_classes": stats.num_classes, "entropy": stats.entropy, "max_share": stats.max_share,
                "confidence": p.max(1).values.mean().item()}

    def real_baseline_fd(self, real: Tensor, n: int, seed: int = 0) -> float:
        """FD between two disjoint sets of n real clips: the floor for a generator's FD (notebook 13)."""
        if n < 2 or len(real) < 2 * n:
            raise ValueError(f"need 2 * n = {2 * n} real clips (n >= 2) for two disjoint sets, got "
                             f"{len(real)}.")
        order = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))
        return self.fd(real[order[:n]], real[order[n:2 * n]])
