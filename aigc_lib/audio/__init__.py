"""Sound for chapter 13: data written for the course, its representations, and a judge for generated audio.

- :mod:`~aigc_lib.audio.synth`: a small numpy synthesiser (band-limited oscillators, ADSR envelopes, instrument
  timbres) at 16 kHz.
- :mod:`~aigc_lib.audio.music`: melodies from scales, keys, chord progressions and bar rhythms, labelled by key,
  mode, tempo and mood; note-event tokens for a GPT; in-key rate, pitch-class distance, rhythm validity.
- :mod:`~aigc_lib.audio.effects`: a labelled sound-effects set (tones, chirps, sirens, beeps, noise bursts, hits).
- :mod:`~aigc_lib.audio.features`: STFT, mel filterbank and mel spectrogram, mel inversion, Griffin-Lim, mu-law,
  spectral convergence (in torch; checked against librosa).
- :mod:`~aigc_lib.audio.io`: WAV files through soundfile, atomic writes, and errors that say what to fix.
- :mod:`~aigc_lib.audio.judge`: :class:`AudioJudge`, a small CNN on log-mel spectrograms giving class accuracy and
  a Fréchet distance in its features (the offline analogue of FAD), trained once and cached.
"""
from aigc_lib.audio.effects import EFFECT_CLASSES, EffectsData, effects_dataset, effects_split, make_effect
from aigc_lib.audio.features import (
    SAMPLE_RATE,
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
from aigc_lib.audio.io import check_wave, read_wav, resample, write_wav
from aigc_lib.audio.judge import AudioClassifier, AudioClassifierConfig, AudioJudge
from aigc_lib.audio.music import (
    DURATIONS,
    KEYS,
    MOODS,
    PITCH_CLASSES,
    PROGRESSIONS,
    SCALES,
    STEPS_PER_BAR,
    STEPS_PER_BEAT,
    Melody,
    Note,
    NoteTokenizer,
    chord_notes,
    in_key_rate,
    make_melody,
    mood_of,
    music_dataset,
    music_split,
    pitch_class_distance,
    pitch_class_histogram,
    render,
    rhythm_validity,
)
from aigc_lib.audio.synth import (
    ADSR,
    INSTRUMENTS,
    WAVES,
    Instrument,
    envelope,
    midi_to_hz,
    mix,
    normalize,
    oscillator,
    render_notes,
    tone,
)

__all__ = [
    "ADSR", "DURATIONS", "EFFECT_CLASSES", "INSTRUMENTS", "KEYS", "MOODS", "PITCH_CLASSES", "PROGRESSIONS",
    "SAMPLE_RATE", "SCALES", "STEPS_PER_BAR", "STEPS_PER_BEAT", "WAVES", "AudioClassifier", "AudioClassifierConfig",
    "AudioJudge", "EffectsData", "Instrument", "MelConfig", "Melody", "Note", "NoteTokenizer", "check_wave",
    "chord_notes", "effects_dataset", "effects_split", "envelope", "griffin_lim", "hz_to_mel", "in_key_rate", "istft",
    "log_mel", "log_spectral_distance", "magnitude", "make_effect", "make_melody", "mel_filterbank",
    "mel_spectrogram", "mel_to_hz", "mel_to_linear", "midi_to_hz", "mix", "mood_of", "mu_law_decode",
    "mu_law_encode", "music_dataset", "music_split", "normalize", "oscillator", "pitch_class_distance",
    "pitch_class_histogram", "power", "read_wav", "render", "render_notes", "resample", "rhythm_validity",
    "spectral_convergence", "stft", "tone", "write_wav",
]
