"""WAV files: round trips within 16-bit quantisation, resampling, and every bad input with a clear error."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import soundfile
import torch

from aigc_lib.audio.io import check_wave, read_wav, resample, write_wav

SR = 16000


def _tone(hz: float = 440.0, seconds: float = 0.25, sr: int = SR, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(round(seconds * sr), dtype=torch.float64) / sr
    return (amplitude * torch.sin(2 * math.pi * hz * t)).float()


def test_pcm16_round_trip_is_exact_to_16_bit_quantisation(tmp_path):
    wave = torch.rand(4000, generator=torch.Generator().manual_seed(0)) * 2 - 1
    path = write_wav(tmp_path / "a.wav", wave)
    back = read_wav(path)
    assert back.dtype == torch.float32 and back.shape == (4000,)
    assert (back - wave).abs().max() <= 1 / 32768 + 1e-7  # half a step of 2 / 65536, plus round-off
    assert soundfile.info(str(path)).subtype == "PCM_16"
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]  # the atomic write left no temporary file


def test_float_round_trip_is_exact_and_stereo_keeps_channels(tmp_path):
    stereo = torch.stack([_tone(440), _tone(660)])  # (2, L)
    path = write_wav(tmp_path / "s.wav", stereo, subtype="FLOAT")
    torch.testing.assert_close(read_wav(path, mono=False), stereo, atol=0, rtol=0)
    mixed = read_wav(path, mix_down=True)
    torch.testing.assert_close(mixed, stereo.mean(0), atol=1e-7, rtol=0)


def test_resample_keeps_a_tone_and_its_length():
    x = _tone(440, 1.0, sr=44100)
    y = resample(x, 44100, SR)
    assert y.shape == (SR,)
    # the edges hold the filter's tails
    torch.testing.assert_close(y[200:-200], _tone(440, 1.0)[200:-200], atol=2e-3, rtol=0)
    assert torch.equal(resample(y, SR, SR), y)


def test_read_with_allow_resample_converts_the_rate(tmp_path):
    path = write_wav(tmp_path / "cd.wav", _tone(440, 0.5, sr=44100), 44100, subtype="FLOAT")
    wave = read_wav(path, allow_resample=True)
    assert wave.shape == (SR // 2,)
    assert read_wav(path, sample_rate=None).shape == (22050,)  # None: any rate, as stored


# ------------------------------------------------------------------------------------------- bad inputs
def _file(tmp_path, name: str, data: bytes):
    (tmp_path / name).write_bytes(data)
    return tmp_path / name


def _soundfile(tmp_path, name: str, frames: np.ndarray, sr: int = SR, subtype: str = "FLOAT"):
    soundfile.write(tmp_path / name, frames, sr, subtype=subtype, format="WAV")  # bypasses write_wav's checks
    return tmp_path / name


CASES = {
    "missing file": (lambda tmp: read_wav(tmp / "nope.wav"), FileNotFoundError, r"does not exist"),
    "empty file": (lambda tmp: read_wav(_file(tmp, "e.wav", b"")), ValueError, r"empty \(0 bytes\)"),
    "text renamed .wav": (
        lambda tmp: read_wav(_file(tmp, "t.wav", b"hello, this is not a sound\n" * 20)),
        ValueError, r"not an audio file.*renamed \.wav"),
    "header but no samples": (
        lambda tmp: read_wav(_soundfile(tmp, "z.wav", np.zeros((0, 1), np.float32))),
        ValueError, r"no samples"),
    "wrong sample rate": (
        lambda tmp: read_wav(write_wav(tmp / "r.wav", _tone(sr=44100), 44100)),
        ValueError, r"44100 Hz, 16000 Hz was expected.*allow_resample=True.*resample\(wave, 44100, 16000\)"),
    "stereo when mono expected": (
        lambda tmp: read_wav(write_wav(tmp / "st.wav", torch.stack([_tone(), _tone()]))),
        ValueError, r"2 channels.*mix_down=True.*mono=False"),
    "NaN samples written": (
        lambda tmp: write_wav(tmp / "n.wav", torch.tensor([0.0, float("nan"), 0.1])),
        ValueError, r"1 NaN or inf samples \(first at index 1\).*diverged"),
    "inf samples in a float WAV": (
        lambda tmp: read_wav(_soundfile(tmp, "f.wav", np.array([0.0, np.inf], np.float32))),
        ValueError, r"NaN or inf"),
    "integer PCM given as a wave": (
        lambda tmp: write_wav(tmp / "i.wav", torch.tensor([0, 1000, -1000])), ValueError, r"divide by 32768"),
    "sample rate not an integer": (
        lambda tmp: write_wav(tmp / "b.wav", _tone(), 16000.0), ValueError, r"positive integer in Hz"),
    "samples first, (L, C)": (
        lambda tmp: write_wav(tmp / "lc.wav", torch.stack([_tone(), _tone()], 1)), ValueError, r"pass wave\.T"),
    "unknown subtype": (
        lambda tmp: write_wav(tmp / "u.wav", _tone(), subtype="MP3"), ValueError, r"PCM_16"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_audio_inputs_raise_clear_errors(case, tmp_path):
    make, error, message = CASES[case]
    with pytest.raises(error, match=message):
        make(tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))  # a failed write leaves no temporary file


def test_clipping_warns_and_says_what_to_do(tmp_path):
    loud = _tone(amplitude=1.5)
    with pytest.warns(UserWarning, match=r"beyond \[-1, 1\] \(peak 1\.5\).*wave / wave\.abs\(\)\.max\(\)"):
        path = write_wav(tmp_path / "loud.wav", loud)
    assert read_wav(path).abs().max() <= 1.0  # PCM_16 stores it clipped to +-1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a wave in range gives no warning
        check_wave(_tone(amplitude=1.0))
    with pytest.warns(UserWarning, match="beyond"):  # a float WAV keeps out-of-range values: warned on read
        read_wav(_soundfile(tmp_path, "hot.wav", np.array([0.0, 1.25], np.float32)))
