"""A small numpy synthesiser (notebook 13): oscillators, ADSR envelopes, a few instrument timbres and a mixer.

Everything is deterministic (no noise sources) and returns float32 waveforms in [-1, 1] at 16 kHz by default.
The oscillators are *additive*: a square, sawtooth or triangle wave is the sum of its Fourier series, cut at the
Nyquist frequency ``sr / 2``. That is exactly band-limited, so nothing aliases (a naive ``sign(sin(...))``
square would fold its harmonics above 8 kHz back into the audible band), at the cost of one sine per harmonic.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = ["ADSR", "INSTRUMENTS", "SAMPLE_RATE", "WAVES", "Instrument", "envelope", "midi_to_hz", "mix",
           "normalize", "oscillator", "render_notes", "tone"]

SAMPLE_RATE = 16_000  # Hz, the whole chapter's rate: an 8 kHz bandwidth, enough for melodies and speech
WAVES = ("sine", "square", "sawtooth", "triangle")


def midi_to_hz(pitch: float | np.ndarray) -> float | np.ndarray:
    """Equal temperament: MIDI 69 is A4 = 440 Hz and each semitone multiplies by 2^(1/12) (notebook 13)."""
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69) / 12)


def _fourier_series(wave: str, max_harmonic: int) -> list[tuple[int, float]]:
    """(harmonic k, amplitude b_k) of sum_k b_k sin(k w t), the wave's Fourier series up to ``max_harmonic``."""
    if wave == "sine":
        return [(1, 1.0)]
    if wave == "sawtooth":  # 2/pi sum_k (-1)^(k+1) sin(k w t) / k
        return [(k, 2 / math.pi * (-1) ** (k + 1) / k) for k in range(1, max_harmonic + 1)]
    if wave == "square":  # 4/pi sum_{k odd} sin(k w t) / k
        return [(k, 4 / math.pi / k) for k in range(1, max_harmonic + 1, 2)]
    if wave == "triangle":  # 8/pi^2 sum_{k odd} (-1)^((k-1)/2) sin(k w t) / k^2
        return [(k, 8 / math.pi**2 * (-1) ** ((k - 1) // 2) / k**2) for k in range(1, max_harmonic + 1, 2)]
    raise ValueError(f"unknown wave {wave!r}: choose one of {', '.join(WAVES)}.")


def oscillator(wave: str, freq: float, n_samples: int, sr: int = SAMPLE_RATE, phase: float = 0.0) -> np.ndarray:
    """``n_samples`` of a band-limited periodic wave at ``freq`` Hz, peak about 1 (float64) (notebook 13).

    Harmonics at or above Nyquist (``sr / 2``) are left out, so nothing aliases. The truncated square and
    sawtooth overshoot by about 9% next to their jumps (the Gibbs phenomenon): :func:`normalize` after mixing.
    """
    if not 0 < freq < sr / 2:
        raise ValueError(f"freq={freq} Hz must be in (0, {sr / 2}) (below Nyquist for sr={sr}).")
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}.")
    t = np.arange(n_samples) / sr
    x = np.zeros(n_samples)
    for k, b_k in _fourier_series(wave, max_harmonic=int((sr / 2 - 1e-9) // freq)):
        x += b_k * np.sin(2 * math.pi * k * freq * t + k * phase)
    return x


@dataclass(frozen=True)
class ADSR:
    """Attack, decay and release times in seconds and the sustain level in [0, 1] (notebook 13)."""

    attack: float = 0.01
    decay: float = 0.1
    sustain: float = 0.7
    release: float = 0.05

    def __post_init__(self) -> None:
        for name in ("attack", "decay", "release"):
            if getattr(self, name) < 0:
                raise ValueError(f"ADSR.{name} is a time and must be >= 0 seconds, got {getattr(self, name)}.")
        if not 0 <= self.sustain <= 1:
            raise ValueError(f"ADSR.sustain is a level and must be in [0, 1], got {self.sustain}.")


def envelope(n_samples: int, adsr: ADSR, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Gain curve of exactly ``n_samples``: held for the first ``n_samples - release`` samples, then released.

    While held: a linear attack from 0 up to 1, a linear decay to ``sustain``, then the sustain level (a short
    note is let go wherever its attack or decay has got to). The release falls linearly from that level to
    exactly 0 on the last sample (notebook 13).
    """
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}.")
    n_release = min(round(adsr.release * sr), n_samples)
    n_held = n_samples - n_release
    n_attack, n_decay = round(adsr.attack * sr), round(adsr.decay * sr)
    held = np.concatenate([
        np.linspace(0.0, 1.0, n_attack, endpoint=False),  # 0 -> 1 (1 is reached on the next sample)
        np.linspace(1.0, adsr.sustain, n_decay, endpoint=False),  # 1 -> sustain
        np.full(max(n_held - n_attack - n_decay, 0), adsr.sustain),
    ])[:n_held]
    level = held[-1] if n_held else 0.0
    return np.concatenate([held, np.linspace(level, 0.0, n_release)])  # release ends on exactly 0


@dataclass(frozen=True)
class Instrument:
    """A timbre: ``partials[k-1]`` is the amplitude of harmonic k of the ``wave``, each fading as
    ``exp(-damping * k * t)`` (higher harmonics die first, as on a plucked string), under an :class:`ADSR`
    (notebook 13)."""

    partials: tuple[float, ...] = (1.0,)
    adsr: ADSR = ADSR()
    damping: float = 0.0  # 1/s per harmonic number; 0 = no extra fade beyond the envelope
    wave: str = "sine"

    def __post_init__(self) -> None:
        if self.wave not in WAVES:
            raise ValueError(f"unknown wave {self.wave!r}: choose one of {', '.join(WAVES)}.")
        if not self.partials or self.damping < 0:
            raise ValueError("an Instrument needs at least one partial and damping >= 0.")

    def voice(self, freq: float, n_samples: int, sr: int = SAMPLE_RATE) -> np.ndarray:
        """One note of ``n_samples`` (its release included) at ``freq`` Hz, float64 (notebook 13)."""
        t = np.arange(n_samples) / sr
        x = np.zeros(n_samples)
        for k, amplitude in enumerate(self.partials, start=1):
            if k * freq >= sr / 2:  # this partial and all above it would alias
                break
            x += amplitude * oscillator(self.wave, k * freq, n_samples, sr) * np.exp(-self.damping * k * t)
        return x * envelope(n_samples, self.adsr, sr)


INSTRUMENTS: dict[str, Instrument] = {
    # a pure tone with a little breath of 2nd and 3rd harmonic, a soft attack
    "flute": Instrument((1.0, 0.25, 0.08), ADSR(attack=0.06, decay=0.1, sustain=0.85, release=0.08)),
    # drawbars: the fundamental plus octaves and a fifth, switched on and off like a key contact
    "organ": Instrument((1.0, 0.6, 0.35, 0.3, 0.0, 0.15, 0.0, 0.1), ADSR(0.005, 0.0, 1.0, 0.03)),
    # a plucked string: bright partials that fade fast, then a quiet ring
    "pluck": Instrument((1.0, 0.7, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05), ADSR(0.002, 0.3, 0.2, 0.1), damping=3.0),
    # a soft, round bass: a triangle wave with a quick decay
    "bass": Instrument((1.0, 0.3), ADSR(0.005, 0.2, 0.6, 0.05), damping=1.0, wave="triangle"),
    # an 8-bit game lead: a band-limited square
    "chip": Instrument((1.0,), ADSR(0.002, 0.05, 0.6, 0.02), wave="square"),
}


def _instrument(instrument: str | Instrument) -> Instrument:
    if isinstance(instrument, Instrument):
        return instrument
    if instrument not in INSTRUMENTS:
        raise ValueError(f"unknown instrument {instrument!r}: choose one of {', '.join(INSTRUMENTS)} "
                         "or pass an Instrument(...).")
    return INSTRUMENTS[instrument]


def normalize(x: np.ndarray, peak: float = 0.9) -> np.ndarray:
    """Scale ``x`` so max |x| = ``peak`` (silence stays silence); float32 (notebook 13).

    Scaling, never clipping: a clipped wave gets flat tops, which sound as harsh distortion."""
    if not 0 < peak <= 1:
        raise ValueError(f"peak={peak} would clip (float audio lives in [-1, 1]): choose 0 < peak <= 1.")
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("the waveform has NaN or infinite samples: check the frequencies and gains.")
    top = np.abs(x).max(initial=0.0)
    return (x * (peak / top) if top > 0 else x).astype(np.float32)


def mix(tracks: Sequence[np.ndarray], gains: Sequence[float] | None = None, peak: float = 0.9) -> np.ndarray:
    """Sum tracks of any lengths (padded with silence) with ``gains``, then :func:`normalize` (notebook 13)."""
    if not tracks:
        raise ValueError("mix needs at least one track.")
    gains = [1.0] * len(tracks) if gains is None else list(gains)
    if len(gains) != len(tracks):
        raise ValueError(f"got {len(tracks)} tracks but {len(gains)} gains: pass one gain per track.")
    out = np.zeros(max(len(t) for t in tracks))
    for track, gain in zip(tracks, gains):
        out[: len(track)] += gain * np.asarray(track, dtype=np.float64)
    return normalize(out, peak)


class _NoteLike(Protocol):
    pitch: int
    start: int
    duration: int
    velocity: float


def render_notes(notes: Iterable[_NoteLike], instrument: str | Instrument = "flute", tempo: float = 120.0, *,
                 steps_per_beat: int = 4, sr: int = SAMPLE_RATE, peak: float | None = 0.9) -> np.ndarray:
    """Waveform (float32) of notes whose ``start`` and ``duration`` count grid steps (notebook 13).

    A step lasts ``60 / tempo / steps_per_beat`` seconds (a 16th note at the default 4 steps per beat); each
    note rings on for its instrument's release after its duration. Voices are added up and scaled to ``peak``
    (``peak=None`` keeps the raw sum, and raises if that sum would clip)."""
    inst = _instrument(instrument)
    notes = list(notes)
    if not notes:
        raise ValueError("render_notes got no notes: pass a non-empty melody.")
    if tempo <= 0 or steps_per_beat < 1:
        raise ValueError(f"tempo ({tempo} bpm) and steps_per_beat ({steps_per_beat}) must be positive.")
    bad = [n for n in notes if n.duration <= 0 or n.start < 0]
    if bad:
        raise ValueError(f"note {bad[0]} has start < 0 or duration <= 0: durations count grid steps, >= 1.")
    step = 60.0 / tempo / steps_per_beat * sr  # samples per grid step
    n_release = round(inst.adsr.release * sr)
    out = np.zeros(round(max(n.start + n.duration for n in notes) * step) + n_release)
    for n in notes:
        begin, end = round(n.start * step), round((n.start + n.duration) * step)  # no rounding drift
        n_samples = end - begin + n_release
        out[begin: begin + n_samples] += n.velocity * inst.voice(float(midi_to_hz(n.pitch)), n_samples, sr)
    if peak is not None:
        return normalize(out, peak)
    if np.abs(out).max() > 1:
        raise ValueError(f"the notes add up to a peak of {np.abs(out).max():.2f} > 1, which would clip: pass "
                         "peak=0.9 to scale them, or lower the velocities.")
    return out.astype(np.float32)


def tone(freq: float, seconds: float, sr: int = SAMPLE_RATE, wave: str = "sine", amplitude: float = 0.5,
         adsr: ADSR | None = None) -> np.ndarray:
    """A steady (or, with ``adsr``, enveloped) tone of ``freq`` Hz lasting ``seconds``, float32 (notebook 13)."""
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}.")
    if not 0 <= amplitude <= 1:
        raise ValueError(f"amplitude={amplitude} would clip: choose a value in [0, 1].")
    n = round(seconds * sr)
    x = amplitude * oscillator(wave, freq, n, sr)
    if adsr is not None:
        x *= envelope(n, adsr, sr)
    if wave in ("square", "sawtooth") and np.abs(x).max() > 1:  # the Gibbs overshoot of a loud square
        x = x / np.abs(x).max()
    return x.astype(np.float32)
