"""A labelled set of synthetic sound effects: tones, chirps, sirens, beeps, noise bursts and percussive hits.

The audio counterpart of the offline digits and shapes: one-second clips at 16 kHz, made here from a seed,
with a class label each, so the audio judge (:mod:`aigc_lib.audio.judge`) and the chapter's generators have real
data without a download. Every clip draws its own pitch, length, position, loudness and background noise, so
no single number (loudness, duration, mean pitch) tells the classes apart; the spectrogram's shape does
(notebook 13). Each generator is a few lines of signal math, written to be read.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from aigc_lib.audio.features import SAMPLE_RATE

__all__ = ["EFFECT_CLASSES", "EffectsData", "effects_dataset", "effects_split", "make_effect"]

EFFECT_CLASSES = ("tone", "chirp", "siren", "beeps", "noise_burst", "hit")


class EffectsData(NamedTuple):
    """Clips, labels and class names; unpacks as ``waves, labels, classes = effects_dataset(...)``."""

    waves: Tensor  # (N, L) float32 in [-1, 1]
    labels: Tensor  # (N,) int64, indices into classes
    classes: tuple[str, ...]


# ------------------------------------------------------------------------------------------- random draws
def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=g, dtype=torch.float64).item()


def _log_uniform(g: torch.Generator, low: float, high: float) -> float:
    return math.exp(_uniform(g, math.log(low), math.log(high)))  # pitches: every octave equally likely


def _integer(g: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (), generator=g).item())  # low..high, both included


def _time(seconds: float, sample_rate: int) -> Tensor:
    return torch.arange(max(1, round(seconds * sample_rate)), dtype=torch.float64) / sample_rate  # (n,) in s


def _gate(t: Tensor, fade: float) -> Tensor:
    """1 inside the event with linear fades of ``fade`` seconds at both ends (no clicks)."""
    end = t[-1].item() + 1e-9
    return (t / fade).clamp(max=1) * ((end - t) / fade).clamp(max=1)  # (n,)


# ------------------------------------------------------------------------------------------- the classes
def _tone(g: torch.Generator, sr: int) -> Tensor:
    """A steady note: a sine at f plus weak 2nd and 3rd harmonics, 0.4-1 s long."""
    t, f = _time(_uniform(g, 0.4, 1.0), sr), _log_uniform(g, 200, 2000)
    h2, h3 = _uniform(g, 0, 0.4), _uniform(g, 0, 0.3)
    x = sum(a * torch.sin(2 * math.pi * k * f * t) for k, a in ((1, 1.0), (2, h2), (3, h3)))
    return x * _gate(t, 0.01)


def _chirp(g: torch.Generator, sr: int) -> Tensor:
    """An exponential sweep over 1-2.6 octaves, rising or falling, 0.3-0.9 s long."""
    duration = _uniform(g, 0.3, 0.9)
    t = _time(duration, sr)
    f0 = _log_uniform(g, 200, 1000)
    f1 = f0 * _log_uniform(g, 2, 6)
    if _uniform(g, 0, 1) < 0.5:
        f0, f1 = f1, f0  # falling
    # f(t) = f0 k^(t/T) with k = f1 / f0; phase = 2 pi int_0^t f = 2 pi f0 T (k^(t/T) - 1) / ln k
    k = f1 / f0
    phase = 2 * math.pi * f0 * duration * (k ** (t / duration) - 1) / math.log(k)
    return torch.sin(phase) * _gate(t, 0.01)


def _siren(g: torch.Generator, sr: int) -> Tensor:
    """A pitch that swings up and down around f_c at 3-7 Hz, 0.5-1 s long."""
    t = _time(_uniform(g, 0.5, 1.0), sr)
    f_c, rate = _log_uniform(g, 400, 1500), _uniform(g, 3, 7)  # at least 1.5 swings: not a sweep
    depth = f_c * _uniform(g, 0.25, 0.5)
    # f(t) = f_c + depth sin(2 pi rate t); phase = 2 pi (f_c t - depth / (2 pi rate) cos(2 pi rate t))
    phase = 2 * math.pi * f_c * t - depth / rate * torch.cos(2 * math.pi * rate * t)
    return torch.sin(phase) * _gate(t, 0.01)


def _beeps(g: torch.Generator, sr: int) -> Tensor:
    """Two to five short beeps at one pitch, evenly spaced."""
    count, f = _integer(g, 2, 5), _log_uniform(g, 400, 2500)
    on, off = _uniform(g, 0.04, 0.12), _uniform(g, 0.04, 0.15)
    t = _time(count * (on + off), sr)
    beep = _gate(_time(on, sr), 0.005)  # (n_on,)
    envelope = torch.zeros_like(t)
    for i in range(count):
        start = round(i * (on + off) * sr)
        envelope[start:start + len(beep)] = beep[: len(t) - start]
    return torch.sin(2 * math.pi * f * t) * envelope


def _noise_burst(g: torch.Generator, sr: int) -> Tensor:
    """Band-pass noise (a hiss, a whoosh) with a fast attack and an exponential release, 0.1-0.6 s long."""
    t = _time(_uniform(g, 0.1, 0.6), sr)
    white = torch.randn(len(t), generator=g, dtype=torch.float64)
    f_c, octaves = _log_uniform(g, 300, 5000), _uniform(g, 0.3, 1.5)
    # a Gaussian band in log frequency: gain(f) = exp(-(log2(f / f_c))^2 / (2 (octaves / 2)^2))
    f = torch.fft.rfftfreq(len(t), 1 / sr, dtype=torch.float64).clamp(min=1.0)  # (n // 2 + 1,)
    gain = torch.exp(-0.5 * (torch.log2(f / f_c) / (octaves / 2)).square())
    band = torch.fft.irfft(torch.fft.rfft(white) * gain, n=len(t))  # (n,)
    attack, release = _uniform(g, 0.005, 0.05), _uniform(g, 0.05, 0.3)
    envelope = (t / attack).clamp(max=1) * torch.exp(-(t - attack).clamp(min=0) / release)
    return band * envelope * _gate(t, 0.005)


def _hit(g: torch.Generator, sr: int) -> Tensor:
    """A drum-like hit: a click, then a low sine whose pitch and level fall exponentially."""
    tau = _uniform(g, 0.03, 0.2)  # level decay time
    t = _time(min(1.0, 6 * tau), sr)
    f, drop, tau_f = _log_uniform(g, 50, 200), _uniform(g, 0.5, 2), _uniform(g, 0.01, 0.04)
    # f(t) = f (1 + drop e^{-t / tau_f}); phase = 2 pi f (t + drop tau_f (1 - e^{-t / tau_f}))
    phase = 2 * math.pi * f * (t + drop * tau_f * (1 - torch.exp(-t / tau_f)))
    body = torch.sin(phase) * torch.exp(-t / tau)
    click = torch.randn(len(t), generator=g, dtype=torch.float64) * torch.exp(-t / _uniform(g, 0.001, 0.004))
    return body + _uniform(g, 0.2, 0.8) * click


_MAKERS: dict[str, Callable[[torch.Generator, int], Tensor]] = {
    "tone": _tone, "chirp": _chirp, "siren": _siren, "beeps": _beeps, "noise_burst": _noise_burst,
    "hit": _hit}


def _clip(kind: str, g: torch.Generator, sample_rate: int, length: int) -> Tensor:
    """One clip (length,): the event at a random place and peak level, over faint background noise."""
    event = _MAKERS[kind](g, sample_rate)[:length]  # (n,)
    event = event / event.abs().max().clamp(min=1e-12) * _uniform(g, 0.3, 0.9)  # peak 0.3-0.9
    start = _integer(g, 0, length - len(event))
    clip = torch.randn(length, generator=g, dtype=torch.float64) * _log_uniform(g, 1e-4, 3e-3)  # (length,)
    clip[start:start + len(event)] += event
    return clip.clamp(-1, 1).float()


def make_effect(kind: str, seed: int = 0, sample_rate: int = SAMPLE_RATE, seconds: float = 1.0) -> Tensor:
    """One clip (L,) of one class, e.g. ``make_effect("chirp", seed=3)`` (notebook 13)."""
    if kind not in _MAKERS:
        raise ValueError(f"unknown sound effect {kind!r}: choose one of {', '.join(EFFECT_CLASSES)}.")
    return _clip(kind, torch.Generator().manual_seed(seed), sample_rate, round(seconds * sample_rate))


def effects_dataset(n: int, seed: int = 0, sample_rate: int = SAMPLE_RATE, seconds: float = 1.0,
                    classes: tuple[str, ...] = EFFECT_CLASSES) -> EffectsData:
    """n labelled clips (N, L), the classes balanced and shuffled, all drawn from ``seed`` (notebook 13)."""
    unknown = [c for c in classes if c not in _MAKERS]
    if unknown or len(set(classes)) < 2:
        raise ValueError(f"classes must be two or more distinct names from {EFFECT_CLASSES}, got {classes}.")
    length = round(seconds * sample_rate)
    if n < 1 or length < 1600:
        raise ValueError(f"need n >= 1 clips of at least 0.1 s, got n={n} and {seconds} s.")
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % len(classes))[torch.randperm(n, generator=g)]  # (N,) balanced, shuffled
    waves = torch.stack([_clip(classes[k], g, sample_rate, length) for k in labels.tolist()])  # (N, L)
    return EffectsData(waves, labels, tuple(classes))


def effects_split(n_train: int, n_test: int, seed: int = 0,
                  **kwargs: object) -> tuple[EffectsData, EffectsData]:
    """Disjoint train and test sets: the first n_train and last n_test clips of one dataset (notebook 13)."""
    if n_train < 1 or n_test < 1:
        raise ValueError(f"need n_train >= 1 and n_test >= 1, got {n_train} and {n_test}.")
    data = effects_dataset(n_train + n_test, seed, **kwargs)  # labels already shuffled: both parts balanced
    return (EffectsData(data.waves[:n_train], data.labels[:n_train], data.classes),
            EffectsData(data.waves[n_train:], data.labels[n_train:], data.classes))
