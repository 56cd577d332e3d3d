"""Audio representations against closed forms and references: STFT, mel filterbank, mu-law, Griffin-Lim."""
from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import torch

from aigc_lib.audio.features import (
    MelConfig,
    griffin_lim,
    hz_to_mel,
    istft,
    log_mel,
    log_spectral_distance,
    magnitude,
    mel_filterbank,
    mel_spectrogram,
    mel_to_hz,
    mel_to_linear,
    mu_law_decode,
    mu_law_encode,
    power,
    spectral_convergence,
    stft,
)

SR = 16000
pytestmark = pytest.mark.usefixtures("one_thread")  # small FFTs: one thread (tests/conftest.py)


def _chirp(seconds: float = 0.5, f0: float = 200.0, f1: float = 4000.0) -> torch.Tensor:
    t = torch.arange(round(seconds * SR), dtype=torch.float64) / SR
    k = f1 / f0  # exponential sweep: phase = 2 pi f0 T (k^(t/T) - 1) / ln k
    return (0.5 * torch.sin(2 * math.pi * f0 * seconds * (k ** (t / seconds) - 1) / math.log(k))).float()


# ------------------------------------------------------------------------------------------------ STFT
def test_stft_equals_windowed_frames_through_an_fft():
    x = torch.randn(2, 1000, generator=torch.Generator().manual_seed(0))
    n_fft, hop = 256, 64
    padded = torch.nn.functional.pad(x[:, None], (n_fft // 2, n_fft // 2), mode="reflect")[:, 0]  # centred
    frames = padded.unfold(-1, n_fft, hop)  # (2, T, n_fft)
    window = 0.5 - 0.5 * torch.cos(2 * math.pi * torch.arange(n_fft) / n_fft)  # periodic Hann, closed form
    expected = torch.fft.rfft(frames * window, dim=-1).transpose(-1, -2)  # (2, F, T)
    spec = stft(x, n_fft, hop)
    assert spec.shape == (2, n_fft // 2 + 1, 1 + 1000 // hop)
    torch.testing.assert_close(spec, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(power(spec), magnitude(spec).square(), atol=1e-4, rtol=1e-5)


def test_stft_istft_round_trip_and_leading_dims():
    x = torch.randn(3, 2, 4000, generator=torch.Generator().manual_seed(1)) * 0.3
    spec = stft(x)  # (3, 2, 257, 32)
    assert spec.shape == (3, 2, 257, 32) and spec.is_complex()
    torch.testing.assert_close(istft(spec, length=4000), x, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="too short"):
        stft(torch.zeros(100))


# ------------------------------------------------------------------------------------------------- mel
def _reference_filterbank(n_fft, n_mels, sr, f_min, f_max, norm, htk):
    """librosa.filters.mel written out with scalars: an independent closed form for the tensor code."""
    def to_mel(f):
        if htk:
            return 2595 * math.log10(1 + f / 700)
        return f / (200 / 3) if f < 1000 else 15 + math.log(f / 1000) * 27 / math.log(6.4)

    def to_hz(m):
        if htk:
            return 700 * (10 ** (m / 2595) - 1)
        return m * 200 / 3 if m < 15 else 1000 * math.exp((m - 15) * math.log(6.4) / 27)

    lo, hi = to_mel(f_min), to_mel(f_max)
    edges = [to_hz(lo + (hi - lo) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    out = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(n_mels):
        left, centre, right = edges[m:m + 3]
        for k in range(n_fft // 2 + 1):
            f = k * sr / n_fft
            out[m, k] = max(0.0, min((f - left) / (centre - left), (right - f) / (right - centre)))
        if norm == "slaney":
            out[m] *= 2 / (right - left)
    return torch.from_numpy(out).float()


@pytest.mark.parametrize("norm,scale",
                         [(None, "htk"), ("slaney", "slaney"), ("slaney", "htk"), (None, "slaney")])
def test_mel_filterbank_equals_the_closed_form(norm, scale):
    fb = mel_filterbank(512, 40, SR, 50.0, 7600.0, norm=norm, mel_scale=scale)
    ref = _reference_filterbank(512, 40, SR, 50.0, 7600.0, norm, scale == "htk")
    assert fb.shape == (40, 257)
    torch.testing.assert_close(fb, ref, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("norm,htk", [(None, True), ("slaney", False)])
def test_mel_filterbank_equals_librosa(norm, htk):
    ref = librosa.filters.mel(sr=SR, n_fft=512, n_mels=40, fmin=50.0, fmax=7600.0, htk=htk, norm=norm,
                              dtype=np.float64)  # (40, 257); measured max difference 3e-8
    fb = mel_filterbank(512, 40, SR, 50.0, 7600.0, norm=norm, mel_scale="htk" if htk else "slaney")
    torch.testing.assert_close(fb.double(), torch.from_numpy(ref), atol=1e-6, rtol=1e-5)


def test_mel_scales_hit_their_anchor_points_and_invert():
    assert hz_to_mel(700.0).item() == pytest.approx(2595 * math.log10(2))  # HTK: f = 700 Hz
    assert hz_to_mel(1000.0, "slaney").item() == pytest.approx(15.0)  # Slaney: 1 kHz = 15 mel
    assert hz_to_mel(6400.0, "slaney").item() == pytest.approx(42.0)  # ... and 27 mel per factor 6.4
    f = torch.tensor([0.0, 100.0, 999.0, 1000.0, 4000.0, 8000.0], dtype=torch.float64)
    for scale in ("htk", "slaney"):
        torch.testing.assert_close(mel_to_hz(hz_to_mel(f, scale), scale), f)


def test_triangles_sum_to_one_between_the_first_and_last_centre():
    fb = mel_filterbank(1024, 32, SR, 0.0, 8000.0)  # norm=None: neighbouring triangles partition unity
    centres = mel_to_hz(torch.linspace(0, float(hz_to_mel(8000.0)), 34)[1:-1])
    bins = torch.arange(513) * SR / 1024
    inside = (bins >= centres[0]) & (bins <= centres[-1])
    torch.testing.assert_close(fb.sum(0)[inside], torch.ones(int(inside.sum())), atol=1e-5, rtol=0)


def test_too_many_mels_for_the_fft_size_is_an_error():
    with pytest.raises(ValueError, match="empty.*fewer mels"):
        mel_filterbank(128, 80, SR)


@pytest.mark.parametrize("hz", [300.0, 1000.0, 3100.0])
def test_a_tone_peaks_in_the_mel_band_that_contains_its_frequency(hz):
    t = torch.arange(SR // 2) / SR
    cfg = MelConfig(n_mels=40)
    mel = mel_spectrogram(0.5 * torch.sin(2 * math.pi * hz * t), cfg)  # (40, T)
    assert mel.shape == (40, 1 + (SR // 2) // cfg.hop)
    centres = mel_to_hz(torch.linspace(0, float(hz_to_mel(SR / 2)), 42)[1:-1])  # band m peaks at edge m + 1
    assert mel.mean(1).argmax().item() == (centres - hz).abs().argmin().item()
    loud = log_mel(mel, db=True)
    assert loud.max() - loud.mean(1).min() > 40  # dB: energy sits in that band, far above the others


def test_mel_to_linear_is_a_non_negative_least_squares_inverse():
    cfg = MelConfig(n_mels=64)
    fb = mel_filterbank(cfg.n_fft, cfg.n_mels, SR)
    spec = power(stft(_chirp()))  # (257, T)
    linear = mel_to_linear(fb @ spec, fb)  # (257, T)
    assert linear.shape == spec.shape and linear.min() >= 0
    # re-pooled, the guess nearly gives back its mel spectrogram: the pseudo-inverse alone would, exactly; the
    # clamp to power >= 0 costs 4.7% relative error here (measured; 10% with 40 mels, 1.5% with 80)
    rel = ((fb @ linear) - fb @ spec).norm() / (fb @ spec).norm()
    assert rel < 0.08, rel


# ---------------------------------------------------------------------------------------------- mu-law
def test_mu_law_matches_the_closed_form_and_its_round_trip_bound():
    x = torch.linspace(-1, 1, 20001)
    mu = 255
    ref = np.floor((np.sign(x.numpy()) * np.log1p(mu * np.abs(x.numpy())) / np.log1p(mu) + 1) / 2 * mu + 0.5)
    codes = mu_law_encode(x)
    assert codes.dtype == torch.long and torch.equal(codes, torch.from_numpy(ref).long())
    assert (codes[0].item(), codes[10000].item(), codes[-1].item()) == (0, 128, 255)
    # |y - y_hat| <= 1 / mu in the companded domain gives
    # |x - x_hat| <= (|x| + 1 / mu) ((1 + mu)^(1 / mu) - 1)
    err = (mu_law_decode(codes) - x).abs()
    bound = (x.abs() + 1 / mu) * ((1 + mu) ** (1 / mu) - 1)
    assert (err <= bound + 1e-6).all()
    assert err.max() > 0.5 * bound.max()  # the bound is tight: about 0.022 at full scale


# ----------------------------------------------------------------------------------------- Griffin-Lim
def test_griffin_lim_converges_with_iterations_on_a_chirp():
    wave = _chirp()
    target = magnitude(stft(wave))  # (257, T)

    def error(n_iter: int, momentum: float = 0.99) -> float:
        rebuilt = griffin_lim(target, n_iter, momentum=momentum, length=len(wave), seed=0)
        return spectral_convergence(target, magnitude(stft(rebuilt))).item()

    sc = {n: error(n) for n in (4, 16, 64)}
    # measured on this chirp: SC 0.37 after 1 iteration, 0.27 / 0.15 / 0.072 after 4 / 16 / 64 (0.065 after
    # 100); plain Griffin-Lim (momentum 0): 0.29 / 0.24 / 0.15
    assert sc[4] > sc[16] > sc[64]
    assert sc[64] < 0.1 and sc[64] < 0.5 * sc[4]
    assert error(16, momentum=0.0) > sc[16]  # Perraudin's momentum converges faster than plain Griffin-Lim
    again = griffin_lim(target, 4, length=len(wave), seed=0)
    torch.testing.assert_close(again, griffin_lim(target, 4, length=len(wave), seed=0))  # seeded


def test_mel_to_audio_round_trip_error_is_bounded():
    wave = _chirp()
    cfg = MelConfig(n_mels=80)
    fb = mel_filterbank(cfg.n_fft, cfg.n_mels, SR)
    target = magnitude(stft(wave))  # (257, T)
    guess = mel_to_linear(mel_spectrogram(wave, cfg), fb).sqrt()  # (257, T) magnitude from the mel power
    rebuilt = griffin_lim(guess, 32, length=len(wave))
    final = magnitude(stft(rebuilt))
    # measured with 80 mels: SC 0.13 and LSD 10.5 dB after 32 GL iterations (40 mels: 0.41 and 27.5 dB; 64
    # mels: 0.19 and 15.0 dB): fewer mels lose more of the spectrum, and no number of iterations brings
    # it back
    assert spectral_convergence(target, final).item() < 0.2
    assert log_spectral_distance(target, final).item() < 14
    coarse = MelConfig(n_mels=40)
    fb40 = mel_filterbank(coarse.n_fft, coarse.n_mels, SR)
    guess40 = mel_to_linear(mel_spectrogram(wave, coarse), fb40).sqrt()
    # the quality cost of the mel pooling itself, before any phase: SC 0.39 with 40 mels, 0.12 with 80
    # (measured)
    assert spectral_convergence(target, guess40).item() > 2 * spectral_convergence(target, guess).item()
    with pytest.raises(ValueError, match="frequency bins"):
        griffin_lim(guess[:100], 4)
