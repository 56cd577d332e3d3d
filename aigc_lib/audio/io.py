"""WAV files in and out, with checks that catch the usual mistakes before they reach a model (notebook 13).

Waves are float32 tensors in [-1, 1]: (L,) for mono, (C, L) for C channels, at 16 kHz unless told otherwise.
:func:`read_wav` refuses what a course model cannot use (another sample rate, several channels, an empty or
unreadable file, NaN) with an error that says what to do; :func:`write_wav` writes atomically (a temporary
file renamed in one step), so a crash never leaves half a WAV behind. The codec is libsndfile, through soundfile.
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile
import torch
from torch import Tensor

from aigc_lib.audio.features import SAMPLE_RATE

__all__ = ["check_wave", "read_wav", "resample", "write_wav"]

SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")  # 16-bit integers (CD quality), 24-bit integers, 32-bit floats


def check_wave(wave: Tensor | np.ndarray, name: str = "wave") -> Tensor:
    """The wave as float32 (L,) or (C, L): raises on NaN/inf or bad shapes, warns of clipping (notebook 13)."""
    wave = torch.as_tensor(wave)
    if not (wave.is_floating_point() and wave.ndim in (1, 2) and wave.shape[-1] > 0):
        raise ValueError(f"{name} must be a float tensor (L,) or (C, L) with L > 0 samples, got dtype "
                         f"{wave.dtype} and shape {tuple(wave.shape)}; integer PCM: divide by 32768 first.")
    bad = (~torch.isfinite(wave)).sum().item()
    if bad:
        raise ValueError(f"{name} has {bad} NaN or inf samples (first at index "
                         f"{(~torch.isfinite(wave)).flatten().nonzero()[0].item()}): the model or the "
                         "processing that made it diverged; fix that, do not write or train on it.")
    peak = wave.abs().max().item()
    if peak > 1.0:
        over = (wave.abs() > 1).sum().item()
        warnings.warn(f"{name} has {over} samples beyond [-1, 1] (peak {peak:.3g}); they clip to +-1 when "
                      "written as PCM. Scale it down first: wave / wave.abs().max(), or a lower gain.",
                      stacklevel=2)
    return wave.detach().float().cpu()


def write_wav(path: str | os.PathLike, wave: Tensor | np.ndarray, sample_rate: int = SAMPLE_RATE,
              subtype: str = "PCM_16") -> Path:
    """Write a wave (L,) or (C, L) in [-1, 1] to a WAV file, atomically; returns the path (notebook 13)."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer in Hz (e.g. 16000), got {sample_rate!r}.")
    if subtype not in SUBTYPES:
        raise ValueError(f"subtype must be one of {SUBTYPES}, got {subtype!r}.")
    wave = check_wave(wave)
    if wave.ndim == 2 and wave.shape[0] > wave.shape[1]:
        raise ValueError(f"wave has shape {tuple(wave.shape)}, more channels than samples: the course keeps "
                         "channels first, (C, L); pass wave.T if it is (L, C).")
    if subtype != "FLOAT":
        wave = wave.clamp(-1, 1)  # after check_wave's warning: libsndfile would wrap or saturate silently
    frames = np.ascontiguousarray(wave.numpy().T)  # soundfile wants (L,) or (L, C), C-contiguous
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        soundfile.write(str(tmp), frames, sample_rate, subtype=subtype, format="WAV")
        os.replace(tmp, path)  # a reader sees the old file or the whole new one
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_wav(path: str | os.PathLike, sample_rate: int | None = SAMPLE_RATE, mono: bool = True, *,
             mix_down: bool = False, allow_resample: bool = False) -> Tensor:
    """A float32 wave (L,) (mono) or (C, L) from an audio file, checked for the rate and channels expected.

    ``sample_rate=None`` accepts any rate; ``allow_resample=True`` converts another rate to ``sample_rate``;
    ``mix_down=True`` averages several channels into one when ``mono`` (notebook 13).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (or is not a file): check the path.")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes): the download or the write that made it failed; make it "
                         "again.")
    try:
        with soundfile.SoundFile(str(path)) as f:
            rate, channels, frames = f.samplerate, f.channels, f.frames
            data = f.read(dtype="float32", always_2d=True)  # (L, C), integers scaled to [-1, 1)
    except RuntimeError as error:  # soundfile.LibsndfileError: libsndfile cannot parse it
        raise ValueError(f"{path} is not an audio file that libsndfile can read ({error}). Check what it is "
                         "(e.g. `file` in a shell): a text or HTML page renamed .wav, or a format such as "
                         "MP3 that needs converting to WAV or FLAC first (ffmpeg -i in.mp3 -ar 16000 out.wav).") \
            from error
    if frames == 0 or data.size == 0:
        raise ValueError(f"{path} is a valid {rate} Hz audio file with no samples: record or write it again.")
    wave = check_wave(torch.from_numpy(np.ascontiguousarray(data.T)), name=str(path))  # (C, L); NaN, clipping
    if channels > 1 and mono:
        if not mix_down:
            raise ValueError(f"{path} has {channels} channels, a mono wave was expected: pass mix_down=True "
                             "to average them (wave.mean(0)), or mono=False to get all of them as (C, L).")
        wave = wave.mean(0, keepdim=True)  # (1, L): the average of the channels
    if sample_rate is not None and rate != sample_rate:
        if not allow_resample:
            raise ValueError(f"{path} is sampled at {rate} Hz, {sample_rate} Hz was expected: pass "
                             f"allow_resample=True, or read it with sample_rate=None and call "
                             f"resample(wave, {rate}, {sample_rate}) (polyphase, anti-aliased).")
        wave = resample(wave, rate, sample_rate)
    return wave[0] if mono else wave  # (L,) or (C, L)


def resample(wave: Tensor, sample_rate_from: int, sample_rate_to: int) -> Tensor:
    """Waves (..., L) at another sample rate by polyphase filtering (scipy resample_poly) (notebook 13)."""
    if min(sample_rate_from, sample_rate_to) <= 0:
        raise ValueError(f"sample rates must be positive, got {sample_rate_from} and {sample_rate_to}.")
    if sample_rate_from == sample_rate_to:
        return wave.float()
    g = math.gcd(sample_rate_from, sample_rate_to)
    # upsample by up, low-pass below min(rate_from, rate_to) / 2 (no aliasing), keep every down-th sample
    up, down = sample_rate_to // g, sample_rate_from // g
    out = scipy.signal.resample_poly(wave.detach().cpu().double().numpy(), up, down, axis=-1)  # (..., L')
    return torch.from_numpy(np.ascontiguousarray(out)).float().to(wave.device)
