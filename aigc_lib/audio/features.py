"""Audio representations: waveform, STFT, mel-spectrogram and mu-law, and Griffin-Lim back to a waveform.

A waveform is a float tensor (..., L) in [-1, 1] at ``sample_rate`` samples per second. Its short-time Fourier
transform (STFT) is complex (..., F, T) with F = n_fft // 2 + 1 frequency bins and T = 1 + L // hop frames
(centred frames). A mel-spectrogram keeps only the power |STFT|^2 pooled into n_mels triangular bands spaced
evenly in mel, a pitch scale close to hearing; it throws the phase away, so turning it back into sound needs
:func:`mel_to_linear` (undo the pooling, least squares) and :func:`griffin_lim` (guess a phase), and both cost
quality: :func:`spectral_convergence` and :func:`log_spectral_distance` measure how much (notebook 13).
Everything is torch, on any device; the filterbank follows librosa's ``filters.mel`` (checked in the tests).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from aigc_lib.audio.synth import SAMPLE_RATE  # 16 kHz, the chapter's one rate

__all__ = ["SAMPLE_RATE", "MelConfig", "griffin_lim", "hz_to_mel", "istft", "log_mel", "log_spectral_distance",
           "magnitude", "mel_filterbank", "mel_spectrogram", "mel_to_hz", "mel_to_linear", "mu_law_decode",
           "mu_law_encode", "power", "spectral_convergence", "stft"]



@dataclass(frozen=True)
class MelConfig:
    """How a waveform becomes a mel-spectrogram: frame size, hop, bands and their scale (notebook 13)."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 512  # 32 ms frames at 16 kHz; F = 257 bins of 31.25 Hz
    hop: int = 128  # 8 ms between frames
    n_mels: int = 64
    f_min: float = 0.0
    f_max: float | None = None  # None: the Nyquist frequency sample_rate / 2
    norm: str | None = None  # None: triangles of height 1; "slaney": triangles of area 1 (in Hz)
    mel_scale: str = "htk"  # "htk": 2595 log10(1 + f / 700); "slaney": linear below 1 kHz, log above

    def __post_init__(self) -> None:
        if self.n_fft < 8 or not 0 < self.hop <= self.n_fft or self.n_mels < 1:
            raise ValueError(f"need n_fft >= 8, 0 < hop <= n_fft and n_mels >= 1, got {self}.")


# ------------------------------------------------------------------------------------------------ STFT
def _hann(n_fft: int, device: torch.device | None = None) -> Tensor:
    return torch.hann_window(n_fft, periodic=True, device=device)  # periodic: overlap-adds to a constant


def stft(wave: Tensor, n_fft: int = 512, hop: int = 128, window: Tensor | None = None) -> Tensor:
    """Complex STFT (..., F, T) of waves (..., L), Hann window, centred frames (notebook 13)."""
    if wave.shape[-1] < n_fft // 2 + 1:
        raise ValueError(f"a wave of {wave.shape[-1]} samples is too short for n_fft={n_fft}: give at least "
                         f"{n_fft // 2 + 1} samples or a smaller n_fft.")
    window = _hann(n_fft, wave.device) if window is None else window
    # X[f, t] = sum_n x[n + t * hop] w[n] exp(-2 pi i f n / n_fft), frames centred by reflect padding
    spec = torch.stft(wave.reshape(-1, wave.shape[-1]).float(), n_fft, hop, window=window, center=True,
                      pad_mode="reflect", return_complex=True)  # (B, F, T)
    return spec.reshape(*wave.shape[:-1], *spec.shape[-2:])  # (..., F, T)


def istft(spec: Tensor, n_fft: int = 512, hop: int = 128, length: int | None = None,
          window: Tensor | None = None) -> Tensor:
    """Waves (..., L) from a complex STFT (..., F, T) by overlap-add, the inverse of stft (notebook 13)."""
    window = _hann(n_fft, spec.device) if window is None else window
    wave = torch.istft(spec.reshape(-1, *spec.shape[-2:]), n_fft, hop, window=window, center=True,
                       length=length)  # (B, L)
    return wave.reshape(*spec.shape[:-2], wave.shape[-1])  # (..., L)


def magnitude(spec: Tensor) -> Tensor:
    """|X|, the magnitude (..., F, T) of a complex STFT (notebook 13)."""
    return spec.abs()


def power(spec: Tensor) -> Tensor:
    """|X|^2, the power (..., F, T) of a complex STFT (notebook 13)."""
    return spec.real.square() + spec.imag.square()


# ------------------------------------------------------------------------------------------------- mel
def hz_to_mel(hz: Tensor | float, mel_scale: str = "htk") -> Tensor:
    """Hz to mel: HTK's 2595 log10(1 + f / 700), or Slaney's linear-then-log scale (notebook 13)."""
    f = torch.as_tensor(hz, dtype=torch.float64)
    if mel_scale == "htk":
        return 2595.0 * torch.log10(1.0 + f / 700.0)
    _check_scale(mel_scale)
    # Slaney (Auditory Toolbox): 3 mels per 200 Hz up to 1 kHz (= 15 mel), then 27 mels per factor 6.4
    linear = f / (200.0 / 3.0)
    log = 15.0 + torch.log(f.clamp(min=1e-10) / 1000.0) / (math.log(6.4) / 27.0)
    return torch.where(f >= 1000.0, log, linear)


def mel_to_hz(mel: Tensor | float, mel_scale: str = "htk") -> Tensor:
    """Mel back to Hz, the inverse of :func:`hz_to_mel` (notebook 13)."""
    m = torch.as_tensor(mel, dtype=torch.float64)
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    _check_scale(mel_scale)
    return torch.where(m >= 15.0, 1000.0 * torch.exp((m - 15.0) * (math.log(6.4) / 27.0)), m * (200.0 / 3.0))


def _check_scale(mel_scale: str) -> None:
    if mel_scale not in ("htk", "slaney"):
        raise ValueError(f"mel_scale must be 'htk' or 'slaney', got {mel_scale!r}.")


def mel_filterbank(n_fft: int = 512, n_mels: int = 64, sample_rate: int = SAMPLE_RATE, f_min: float = 0.0,
                   f_max: float | None = None, norm: str | None = None, mel_scale: str = "htk") -> Tensor:
    """Triangular mel filters (n_mels, F): mel = filters @ |STFT|^2, as librosa.filters.mel (notebook 13)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2 = {sample_rate / 2}, got "
                         f"f_min={f_min}, f_max={f_max}.")
    if norm not in (None, "slaney"):
        raise ValueError(f"norm must be None or 'slaney', got {norm!r}.")
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)  # (F,) bin centres in Hz
    # n_mels + 2 edges evenly spaced in mel: filter m rises from edge m to edge m+1 and falls to edge m+2
    edges = mel_to_hz(torch.linspace(float(hz_to_mel(f_min, mel_scale)), float(hz_to_mel(f_max, mel_scale)),
                                     n_mels + 2, dtype=torch.float64), mel_scale)  # (n_mels + 2,)
    width = edges.diff()  # (n_mels + 1,)
    rise = (bins[None, :] - edges[:-2, None]) / width[:-1, None]  # (n_mels, F)
    fall = (edges[2:, None] - bins[None, :]) / width[1:, None]  # (n_mels, F)
    filters = torch.minimum(rise, fall).clamp(min=0)  # (n_mels, F), peak 1 at the centre edge m+1
    if norm == "slaney":
        filters = filters * (2.0 / (edges[2:] - edges[:-2]))[:, None]  # area 1 in Hz: height 2 / base
    empty = (filters.amax(1) == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"mel filters {empty} fall between two FFT bins and are empty: {n_mels} mels are "
                         f"too many for n_fft={n_fft}; use fewer mels, a larger n_fft or a higher f_min.")
    return filters.float()


def mel_spectrogram(wave: Tensor, config: MelConfig = MelConfig(), filters: Tensor | None = None) -> Tensor:
    """Mel power spectrogram (..., n_mels, T) of waves (..., L) (notebook 13)."""
    if filters is None:
        filters = mel_filterbank(config.n_fft, config.n_mels, config.sample_rate, config.f_min, config.f_max,
                                 config.norm, config.mel_scale).to(wave.device)
    spec = power(stft(wave, config.n_fft, config.hop))  # (..., F, T)
    return filters @ spec  # (n_mels, F) @ (..., F, T) -> (..., n_mels, T)


def log_mel(mel: Tensor, eps: float = 1e-5, db: bool = False) -> Tensor:
    """log(mel + eps), or 10 log10(max(mel, eps)) in decibels with ``db=True`` (notebook 13)."""
    if db:
        return 10.0 * torch.log10(mel.clamp(min=eps))
    return torch.log(mel + eps)  # eps: silent bands give log(eps), not -inf


def mel_to_linear(mel: Tensor, filters: Tensor) -> Tensor:
    """Non-negative least-squares guess (..., F, T) of the power spectrogram behind mel (..., n_mels, T)."""
    # min_S ||filters S - mel||^2 has the minimum-norm solution S = pinv(filters) mel; power is >= 0, so clamp
    inverse = torch.linalg.pinv(filters.double()).to(mel.dtype)  # (F, n_mels)
    return (inverse @ mel).clamp(min=0)  # (..., F, T)


# ------------------------------------------------------------------------------------------- Griffin-Lim
def griffin_lim(magnitude: Tensor, n_iter: int = 32, n_fft: int = 512, hop: int = 128, momentum: float = 0.99,
                length: int | None = None, seed: int = 0) -> Tensor:
    """Waves (..., L) whose STFT magnitude approaches ``magnitude`` (..., F, T): fast Griffin-Lim (notebook 13).

    Griffin & Lim (1984) alternate two projections: keep the phase, impose the target magnitude (P1); go to a
    wave and back, which makes the STFT consistent (P2). Perraudin, Balazs & Sondergaard (2013) add momentum.
    """
    if n_iter < 1 or not 0 <= momentum < 1:
        raise ValueError(f"need n_iter >= 1 and 0 <= momentum < 1 (0.99 is usual), got {n_iter} and "
                         f"{momentum}.")
    if magnitude.shape[-2] != n_fft // 2 + 1:
        raise ValueError(f"magnitude has {magnitude.shape[-2]} frequency bins, n_fft={n_fft} needs "
                         f"{n_fft // 2 + 1}: pass the n_fft it was computed with.")
    generator = torch.Generator().manual_seed(seed)
    phase = torch.rand(magnitude.shape, generator=generator, dtype=torch.float64) * (2 * math.pi)
    angles = torch.polar(torch.ones_like(phase), phase).to(magnitude.device, torch.complex64)  # (..., F, T)
    magnitude = magnitude.float()
    length = length if length is not None else hop * (magnitude.shape[-1] - 1)
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        rebuilt = stft(istft(magnitude * angles, n_fft, hop, length), n_fft, hop)  # P2(P1(c_n)), (..., F, T)
        # t_n = c_n + alpha (c_n - c_{n-1})  (Perraudin et al. 2013, Algorithm 2); only its phase is used, and
        # (1 + alpha) c_n - alpha c_{n-1} has the same phase as c_n - alpha / (1 + alpha) c_{n-1}
        angles = rebuilt - (momentum / (1 + momentum)) * previous
        angles = angles / (angles.abs() + 1e-16)  # unit modulus: a pure phase
        previous = rebuilt
    return istft(magnitude * angles, n_fft, hop, length)  # (..., L)


def spectral_convergence(target: Tensor, estimate: Tensor) -> Tensor:
    """||S - S_hat||_F / ||S||_F per item (...,) of two magnitude spectrograms (..., F, T) (notebook 13)."""
    if target.shape != estimate.shape:
        raise ValueError(f"spectrogram shapes differ: {tuple(target.shape)} vs {tuple(estimate.shape)}.")
    return (target - estimate).flatten(-2).norm(dim=-1) / target.flatten(-2).norm(dim=-1).clamp(min=1e-12)


def log_spectral_distance(target: Tensor, estimate: Tensor, eps: float = 1e-8) -> Tensor:
    """Log-spectral distance in dB per item (...,) of two magnitude spectrograms (..., F, T) (notebook 13)."""
    if target.shape != estimate.shape:
        raise ValueError(f"spectrogram shapes differ: {tuple(target.shape)} vs {tuple(estimate.shape)}.")
    # LSD = mean_t sqrt(mean_f (10 log10(S^2 / S_hat^2))^2), with power S^2 = |X|^2
    diff = 20.0 * (torch.log10(target.clamp(min=eps)) - torch.log10(estimate.clamp(min=eps)))  # (..., F, T)
    return diff.square().mean(-2).sqrt().mean(-1)


# ------------------------------------------------------------------------------------------------ mu-law
def mu_law_encode(wave: Tensor, channels: int = 256) -> Tensor:
    """Integer codes in [0, channels) of waves in [-1, 1], by mu-law companding (WaveNet) (notebook 13)."""
    mu = channels - 1
    x = wave.clamp(-1, 1).double()
    # F(x) = sign(x) ln(1 + mu |x|) / ln(1 + mu): fine steps near 0, where speech and music spend their time
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)  # (..., L) in [-1, 1]
    return ((y + 1) / 2 * mu + 0.5).floor().long()  # (..., L) in {0, ..., mu}


def mu_law_decode(codes: Tensor, channels: int = 256) -> Tensor:
    """Waves in [-1, 1] from mu-law codes: :func:`mu_law_encode` undone up to quantisation (notebook 13)."""
    mu = channels - 1
    y = codes.double() / mu * 2 - 1  # (..., L) in [-1, 1]
    # F^-1(y) = sign(y) ((1 + mu)^|y| - 1) / mu
    return (torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu).float()
