"""Headline sentiment: a hashed n-gram classifier, its metrics and calibration, and a daily index with alerts.

:func:`train_sentiment_classifier` fits a fastText-style model (mean of hashed word/character n-gram embeddings,
a hidden layer and a 3-way head) with the course trainer; English is split into words, Chinese into
characters and character bigrams (no word segmenter needed). :func:`sentiment_index` turns per-headline
scores into a daily, exponentially smoothed index and :func:`alerts` flags days whose change is unusual
against the recent past; :func:`score_alerts` checks them against the planted shocks of
:func:`aigc_lib.apps.finance.news_stream` (notebook 14).
"""
from __future__ import annotations

import datetime as dt
import re
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aigc_lib.apps.finance import LABELS, Headline, Shock
from aigc_lib.data import TensorLoader
from aigc_lib.train import TrainConfig, Trainer

__all__ = ["Alert", "DailyIndex", "SentimentClassifier", "SentimentConfig", "accuracy", "alerts",
           "expected_calibration_error", "featurize", "macro_f1", "polarity", "reliability_bins", "score_alerts",
           "sentiment_index", "train_sentiment_classifier"]

PAD = 0  # hashed n-gram ids are 1..n_buckets-1; 0 pads a row and is ignored by the mean
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+(?:\.\d+)?%?|[\u4e00-\u9fff]")


@dataclass(frozen=True)
class SentimentConfig:
    """The classifier: hashing buckets, n-gram orders, widths and training settings (notebook 14)."""

    n_buckets: int = 2**15
    word_ngrams: int = 2  # English: word 1..n-grams; Chinese: character 1..n-grams
    dim: int = 32  # n-gram embedding width
    hidden: int = 32  # 0: a linear model on the mean embedding
    max_tokens: int = 64  # n-grams kept per headline
    steps: int = 400
    batch_size: int = 64
    lr: float = 1e-2
    weight_decay: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_buckets < 16 or self.word_ngrams < 1 or self.dim < 1 or self.hidden < 0 or self.steps < 1:
            raise ValueError(f"need n_buckets >= 16, word_ngrams >= 1, dim >= 1, hidden >= 0, steps >= 1; got {self}.")


def _tokens(text: str) -> list[str]:
    """Lower-cased words, numbers as ``<num>``, each Chinese character a token."""
    return ["<num>" if t[0].isdigit() else t for t in _WORD.findall(text.lower())]


def featurize(texts: Sequence[str], config: SentimentConfig = SentimentConfig()) -> Tensor:
    """Hashed n-gram ids (N, max_tokens), padded with 0; crc32 hashing, the same in every process (notebook 14)."""
    rows = torch.full((len(texts), config.max_tokens), PAD, dtype=torch.long)
    for i, text in enumerate(texts):
        tokens = _tokens(text)
        grams = [" ".join(tokens[j:j + n]) for n in range(1, config.word_ngrams + 1)
                 for j in range(len(tokens) - n + 1)]
        ids = [1 + zlib.crc32(g.encode()) % (config.n_buckets - 1) for g in grams][: config.max_tokens]
        rows[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return rows


class SentimentClassifier(nn.Module):
    """Mean of hashed n-gram embeddings -> (hidden ReLU layer) -> 3 logits in ``LABELS`` order (notebook 14)."""

    def __init__(self, config: SentimentConfig = SentimentConfig()) -> None:
        super().__init__()
        self.config = c = config
        self.embed = nn.EmbeddingBag(c.n_buckets, c.dim, mode="mean", padding_idx=PAD)
        self.body = nn.Sequential(nn.Linear(c.dim, c.hidden), nn.ReLU()) if c.hidden else nn.Identity()
        self.head = nn.Linear(c.hidden or c.dim, len(LABELS))

    def forward(self, ids: Tensor) -> Tensor:
        return self.head(self.body(self.embed(ids)))  # (N, L) ids -> (N, D) -> (N, 3) logits

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities (N, 3) in ``LABELS`` order: negative, neutral, positive."""
        was_training = self.training
        self.eval()
        device = self.head.weight.device
        probs = self(featurize(texts, self.config).to(device)).softmax(-1).float().cpu().numpy()
        self.train(was_training)
        return probs

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The most probable label of each text."""
        return [LABELS[i] for i in self.predict_proba(texts).argmax(1)]


def _label_ids(labels: Sequence[str] | np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype.kind in "iu":
        return labels.astype(np.int64)
    unknown = sorted(set(labels.tolist()) - set(LABELS))
    if unknown:
        raise ValueError(f"labels must be in {LABELS} (or their indices), got {unknown[:3]}.")
    return np.array([LABELS.index(label) for label in labels], dtype=np.int64)


def train_sentiment_classifier(train: Sequence[Headline], config: SentimentConfig = SentimentConfig(),
                               val: Sequence[Headline] = (), progress: bool = False) -> SentimentClassifier:
    """Fit :class:`SentimentClassifier` on headlines with the course trainer; deterministic from config.seed.

    Loss: cross-entropy L = -mean log softmax(f(x))_y, AdamW with a one-cycle learning rate. With ``val``,
    ``val_acc`` is logged at the end (trainer.history) (notebook 14).
    """
    if len(train) < config.batch_size:
        raise ValueError(f"need at least batch_size={config.batch_size} training headlines, got {len(train)}.")
    torch.manual_seed(config.seed)  # the initial weights
    model = SentimentClassifier(config)
    ids = featurize([h.text for h in train], config)  # (N, L)
    labels = torch.from_numpy(_label_ids([h.label for h in train]))  # (N,)
    loader = TensorLoader(ids, labels, batch_size=config.batch_size, seed=config.seed, device="cpu")

    def step(trainer: Trainer, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x, y = batch  # (B, L), (B,)
        loss = F.cross_entropy(trainer.model(x), y)
        trainer.backward(loss)
        trainer.optimizer_step()
        return {"loss": loss}

    def evaluate(trainer: Trainer) -> dict[str, float]:
        return {"val_acc": accuracy([h.label for h in val], model.predict([h.text for h in val]))}

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=config.steps)
    train_config = TrainConfig(max_steps=config.steps, precision="fp32", device="cpu", progress=progress,
                               log_every=max(1, min(50, config.steps)))
    Trainer(model, optimizer, step, loader, train_config, schedulers={"model": schedule},
            eval_fn=evaluate if val else None, run_config=asdict(config)).fit()
    return model.eval()


# ----------------------------------------------------------------------------------------------- metrics
def accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    """The share of predictions equal to the truth (notebook 14)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1 or len(y_true) == 0:
        raise ValueError(f"need two equally long, non-empty 1-D label lists, got {y_true.shape} and {y_pred.shape}.")
    return float((y_true == y_pred).mean())


def macro_f1(y_true: Sequence, y_pred: Sequence) -> float:
    """Unweighted mean over classes (those in y_true or y_pred) of F1 = 2 TP / (2 TP + FP + FN) (notebook 14).

    A class with 2 TP + FP + FN = 0 cannot occur; one never predicted correctly scores 0, as in sklearn.
    """
    accuracy(y_true, y_pred)  # the same shape checks
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    scores = []
    for c in np.union1d(y_true, y_pred):
        tp = np.sum((y_pred == c) & (y_true == c))
        fp, fn = np.sum((y_pred == c) & (y_true != c)), np.sum((y_pred != c) & (y_true == c))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def reliability_bins(probs: np.ndarray, labels: Sequence, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Per equal-width confidence bin: lower/upper edges, mean confidence, accuracy and count (notebook 14).

    Confidence is the top probability max_k p_k; bin b holds confidences in (b/B, (b+1)/B] (the first also
    holds 0). Empty bins have count 0 and NaN confidence and accuracy.
    """
    probs = np.asarray(probs, dtype=np.float64)
    y = _label_ids(labels)
    if probs.ndim != 2 or len(probs) != len(y) or len(y) == 0 or n_bins < 1:
        raise ValueError(f"need probs (N, K), N labels (N >= 1) and n_bins >= 1, got {probs.shape}, {len(y)} "
                         f"labels and n_bins={n_bins}.")
    confidence, correct = probs.max(1), (probs.argmax(1) == y).astype(np.float64)
    index = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)  # (N,) bin of each item
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, confidence, n_bins) / count
        mean_acc = np.bincount(index, correct, n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return {"lower": edges[:-1], "upper": edges[1:], "confidence": mean_conf, "accuracy": mean_acc,
            "count": count}


def expected_calibration_error(probs: np.ndarray, labels: Sequence, n_bins: int = 10) -> float:
    """ECE = sum_b (n_b / N) |acc(b) - conf(b)| over equal-width bins of top-class confidence (notebook 14).

    acc(b) is the share of items in bin b whose top class is right, conf(b) their mean top probability
    (Guo et al. 2017, eq. 3); bins as in :func:`reliability_bins`.
    """
    bins = reliability_bins(probs, labels, n_bins)
    full = bins["count"] > 0
    weights = bins["count"][full] / bins["count"].sum()
    return float(np.sum(weights * np.abs(bins["accuracy"][full] - bins["confidence"][full])))


# ----------------------------------------------------------------------------------------------- monitoring
@dataclass(frozen=True)
class DailyIndex:
    """A daily sentiment index: the raw daily mean score and its exponential smoothing (notebook 14)."""

    days: tuple
    raw: np.ndarray  # (D,) mean of P(pos) - P(neg) over the day's headlines
    smoothed: np.ndarray  # (D,) s_t = a x_t + (1 - a) s_{t-1}, s_0 = x_0
    counts: np.ndarray  # (D,) headlines per day


@dataclass(frozen=True)
class Alert:
    """A day whose index change is unusual: its z-score and direction (notebook 14)."""

    date: object
    z: float
    sign: int


def polarity(probs: np.ndarray) -> np.ndarray:
    """P(positive) - P(negative) per row of (N, 3) probabilities in ``LABELS`` order, in [-1, 1] (notebook 14)."""
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[1] != len(LABELS):
        raise ValueError(f"need probabilities (N, 3) in the order {LABELS}, got shape {probs.shape}.")
    return probs[:, LABELS.index("positive")] - probs[:, LABELS.index("negative")]


def sentiment_index(dates: Sequence, scores: Sequence[float], smoothing: float = 0.5) -> DailyIndex:
    """The daily mean of ``scores`` (e.g. :func:`polarity`), exponentially smoothed with weight a (notebook 14)."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(dates) != len(scores) or len(scores) == 0 or not 0 < smoothing <= 1:
        raise ValueError(f"need as many dates as scores (>= 1) and 0 < smoothing <= 1, got {len(dates)}, "
                         f"{len(scores)} and {smoothing}.")
    days = sorted(set(dates))
    where = {d: i for i, d in enumerate(days)}
    index = np.array([where[d] for d in dates])
    counts = np.bincount(index, minlength=len(days))
    raw = np.bincount(index, scores, len(days)) / counts
    smoothed = raw.copy()
    for t in range(1, len(days)):
        smoothed[t] = smoothing * raw[t] + (1 - smoothing) * smoothed[t - 1]
    return DailyIndex(tuple(days), raw, smoothed, counts)


def alerts(index: DailyIndex, threshold: float = 2.5, window: int = 14) -> list[Alert]:
    """Days whose change d_t = s_t - s_{t-1} has |z| >= threshold against the previous ``window`` changes.

    z_t = (d_t - mean(d_{t-w..t-1})) / std(d_{t-w..t-1}): causal, as a live monitor sees it; the first
    ``window`` changes only fill the window (notebook 14).
    """
    if window < 3 or threshold <= 0:
        raise ValueError(f"need window >= 3 and threshold > 0, got {window} and {threshold}.")
    change = np.diff(index.smoothed)  # change[t - 1] = s_t - s_{t-1}
    found = []
    for t in range(window, len(change)):
        past = change[t - window:t]
        z = (change[t] - past.mean()) / max(past.std(ddof=1), 1e-9)
        if abs(z) >= threshold:
            found.append(Alert(index.days[t + 1], float(z), int(np.sign(z))))
    return found


def _gap(a: object, b: object) -> float:
    delta = a - b  # dates give a timedelta, day numbers a number
    return abs(delta.days if isinstance(delta, dt.timedelta) else delta)


def score_alerts(found: Sequence[Alert], shocks: Sequence[Shock], tolerance: int = 1,
                 match_sign: bool = True) -> dict[str, float]:
    """Precision, recall and F1 of alerts against known shocks, a hit within +-tolerance days (notebook 14).

    precision = alerts near a shock (of the same sign, by default) / alerts; recall = shocks with such an
    alert / shocks. With no alerts precision is 0 (and with no shocks recall is 1).
    """
    def near(alert: Alert, shock: Shock) -> bool:
        return _gap(alert.date, shock.date) <= tolerance and (not match_sign or alert.sign == shock.sign)

    hits = sum(any(near(a, s) for s in shocks) for a in found)
    caught = sum(any(near(a, s) for a in found) for s in shocks)
    precision = hits / len(found) if found else 0.0
    recall = caught / len(shocks) if shocks else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "alerts": len(found), "shocks": len(shocks)}
