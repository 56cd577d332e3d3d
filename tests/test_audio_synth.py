"""The numpy synthesiser of notebook 13: pitches, spectra of its oscillators, envelopes, mixing without clipping."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from aigc_lib.audio.synth import (
    ADSR,
    INSTRUMENTS,
    SAMPLE_RATE,
    Instrument,
    envelope,
    midi_to_hz,
    mix,
    normalize,
    oscillator,
    render_notes,
    tone,
)


def _spectrum(x: np.ndarray) -> np.ndarray:
    return np.abs(np.fft.rfft(x * np.hanning(len(x))))


def test_midi_to_hz_is_equal_temperament():
    assert midi_to_hz(69) == pytest.approx(440.0)
    assert midi_to_hz(81) == pytest.approx(880.0)  # an octave doubles the frequency
    assert midi_to_hz(60) == pytest.approx(261.6256, abs=1e-4)  # middle C
    np.testing.assert_allclose(midi_to_hz(np.arange(60, 72) + 1) / midi_to_hz(np.arange(60, 72)), 2 ** (1 / 12))


@pytest.mark.parametrize("freq", [220.0, 440.0, 1234.5, 5000.0])
def test_a_pure_tone_peaks_at_its_frequency(freq):
    x = tone(freq, 0.5)  # 8000 samples: 2 Hz per FFT bin
    bin_hz = SAMPLE_RATE / len(x)
    assert x.dtype == np.float32 and len(x) == SAMPLE_RATE // 2
    assert abs(np.argmax(_spectrum(x)) * bin_hz - freq) <= bin_hz


@pytest.mark.parametrize("wave, amplitudes", [
    ("sawtooth", {1: 1, 2: 1 / 2, 3: 1 / 3, 4: 1 / 4}),  # every harmonic, 1/k
    ("square", {1: 1, 2: 0, 3: 1 / 3, 5: 1 / 5}),  # odd harmonics, 1/k
    ("triangle", {1: 1, 2: 0, 3: 1 / 9, 5: 1 / 25}),  # odd harmonics, 1/k^2
])
def test_oscillators_have_their_fourier_series(wave, amplitudes):
    x = oscillator(wave, 250.0, SAMPLE_RATE)  # 1 s: harmonic k sits exactly on bin 250 k
    spec = np.abs(np.fft.rfft(x)) / (SAMPLE_RATE / 2)
    for k, a in amplitudes.items():
        assert spec[250 * k] / spec[250] == pytest.approx(a, abs=1e-6)


def test_oscillators_are_band_limited_so_nothing_aliases():
    # A 3 kHz square: its 3rd harmonic (9 kHz) is above Nyquist (8 kHz); a naive square folds it to 7 kHz.
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    naive = np.sign(np.sin(2 * np.pi * 3000.5 * t))
    ours = oscillator("square", 3000.5, SAMPLE_RATE)
    alias = slice(6990, 7010)  # 16000 - 3 * 3000.5 = 6998.5 Hz
    assert _spectrum(naive)[alias].max() > 0.05 * _spectrum(naive).max()
    assert _spectrum(ours)[alias].max() < 1e-4 * _spectrum(ours).max()


def test_adsr_envelope_shape_and_exact_length():
    adsr = ADSR(attack=0.01, decay=0.02, sustain=0.5, release=0.03)
    env = envelope(1600, adsr)  # 0.1 s: 160 attack, 320 decay, 480 release samples
    assert len(env) == 1600
    assert env[0] == 0.0 and env[160] == 1.0 and np.all(np.diff(env[:161]) > 0)  # attack 0 -> 1
    assert np.all(np.diff(env[160:480]) < 0) and env[480] == 0.5  # decay to the sustain level
    np.testing.assert_array_equal(env[480:1120], 0.5)  # sustain
    assert env[-1] == 0.0 and np.all(np.diff(env[1120:]) < 0)  # release falls to exactly 0
    assert len(envelope(100, adsr)) == 100 and envelope(100, adsr)[-1] == 0.0  # shorter than the release


def test_every_instrument_sounds_its_pitch():
    for name, inst in INSTRUMENTS.items():
        x = render_notes([SimpleNamespace(pitch=69, start=0, duration=16, velocity=1.0)], inst, tempo=120)
        bin_hz = SAMPLE_RATE / len(x)
        assert abs(np.argmax(_spectrum(x)) * bin_hz - 440.0) <= bin_hz, name


def _notes(n: int = 8) -> list[SimpleNamespace]:
    return [SimpleNamespace(pitch=60 + 2 * i, start=2 * i, duration=4, velocity=0.9) for i in range(n)]


def test_render_is_finite_within_range_and_deterministic():
    for name in INSTRUMENTS:
        x = render_notes(_notes(), name, tempo=100)
        assert x.dtype == np.float32 and np.all(np.isfinite(x))
        assert np.abs(x).max() == pytest.approx(0.9, abs=1e-6)  # scaled to the peak, never clipped
        np.testing.assert_array_equal(x, render_notes(_notes(), name, tempo=100))
    # length: 8 notes, last ends at step 18 = 4.5 beats = 2.7 s at 100 bpm, plus the flute's release
    assert len(render_notes(_notes(), "flute", tempo=100)) == round(2.7 * SAMPLE_RATE) + round(0.08 * SAMPLE_RATE)


@pytest.mark.parametrize("tempo", [97, 133.3, 61])
def test_render_at_tempi_whose_steps_are_not_whole_samples(tempo):
    notes = [SimpleNamespace(pitch=60 + i % 12, start=i, duration=1 + i % 3, velocity=0.8) for i in range(40)]
    x = render_notes(notes, "pluck", tempo=tempo)  # one step = 240000 / tempo samples, rounded per note
    assert len(x) == round(41 * 60 / tempo / 4 * SAMPLE_RATE) + round(0.1 * SAMPLE_RATE)  # note 38 ends at 41


def test_mix_pads_and_normalises():
    out = mix([np.ones(10), -np.ones(4)], gains=[1.0, 3.0], peak=0.5)
    np.testing.assert_allclose(out, np.r_[[-0.5] * 4, [0.25] * 6], atol=1e-7)  # 1 - 3 = -2 is scaled to -0.5


@pytest.mark.parametrize("call, message", [
    (lambda: normalize(np.ones(4), peak=1.5), r"would clip"),
    (lambda: render_notes(_notes(), "violin"), r"unknown instrument 'violin'.*flute"),
    (lambda: render_notes([SimpleNamespace(pitch=60, start=0, duration=-2, velocity=1.0)]), r"duration"),
    (lambda: render_notes([]), r"no notes"),
    (lambda: render_notes([SimpleNamespace(pitch=60, start=0, duration=8, velocity=1.0)] * 4, peak=None),
     r"would clip.*peak=0.9"),
    (lambda: oscillator("noise", 440, 10), r"unknown wave"),
    (lambda: oscillator("sine", 9000, 10), r"Nyquist"),
    (lambda: ADSR(sustain=1.2), r"sustain"),
    (lambda: ADSR(attack=-0.1), r"attack"),
    (lambda: Instrument(wave="noise"), r"unknown wave"),
    (lambda: tone(440, 1.0, amplitude=2.0), r"would clip"),
])
def test_bad_inputs_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
