"""Music data written for the course (notebook 13): scales, keys, rhythms and chord progressions make labelled
melodies; a note-event tokenizer turns them into ids for a tiny GPT; three metrics grade generated melodies.

Time runs on a grid of 16th notes: a *step* is a quarter of a beat and a bar of 4/4 time is 16 steps. Pitches
are MIDI numbers (60 = middle C). A melody is labelled by its key (the tonic's pitch class), its mode (the
scale), its tempo (beats per minute) and a mood that is *defined* by mode and tempo, see :func:`mood_of`.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from aigc_lib.audio.synth import SAMPLE_RATE, Instrument, mix, render_notes

__all__ = ["DURATIONS", "KEYS", "MOODS", "PITCH_CLASSES", "PROGRESSIONS", "SCALES", "STEPS_PER_BAR",
           "STEPS_PER_BEAT", "Melody", "Note", "NoteTokenizer", "chord_notes", "in_key_rate", "make_melody",
           "mood_of", "music_dataset", "music_split", "pitch_class_distance", "pitch_class_histogram", "render",
           "rhythm_validity"]

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
KEYS = PITCH_CLASSES  # a key is named by its tonic; the mode picks the scale built on it
SCALES: dict[str, tuple[int, ...]] = {  # semitones above the tonic
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),  # natural minor (aeolian)
    "dorian": (0, 2, 3, 5, 7, 9, 10),  # minor with a raised 6th
}
STEPS_PER_BEAT = 4  # 16th-note grid
STEPS_PER_BAR = 4 * STEPS_PER_BEAT  # 4/4 time
FAST_BPM = 110  # a tempo at or above this is "fast"
MOODS: dict[str, tuple[str, bool]] = {  # mood -> (mode family, fast?)
    "happy": ("major", True), "calm": ("major", False), "tense": ("minor", True), "sad": ("minor", False)}
TEMPO_RANGES = {True: (120, 160), False: (60, 90)}  # bpm drawn by make_melody for fast and slow moods
PROGRESSIONS: dict[str, tuple[int, ...]] = {  # chord roots as 0-based scale degrees, one chord per bar
    "I-V-vi-IV": (0, 4, 5, 3), "I-IV-V-I": (0, 3, 4, 0),  # (in minor the same degrees: i-v-VI-iv ...)
    "vi-IV-I-V": (5, 3, 0, 4), "I-vi-IV-V": (0, 5, 3, 4)}
# One bar of rhythm each: durations in steps (summing to 16); a negative number is a rest of that length.
BUSY_BARS = ((4, 4, 4, 4), (2, 2, 4, 4, 4), (4, 2, 2, 4, 4), (2, 2, 2, 2, 4, 4), (6, 2, 4, 4), (4, 4, 4, -4),
             (3, 1, 4, 4, 4), (2, 2, 2, 2, 2, 2, 4))
CALM_BARS = ((8, 8), (4, 4, 8), (8, 4, 4), (12, 4), (6, 2, 8), (4, 4, 4, 4), (8, -4, 4))
CADENCE_BARS = ((16,), (8, 8), (4, 4, 8), (12, -4))  # the last bar ends on a long tonic
DURATIONS = (1, 2, 3, 4, 6, 8, 12, 16)  # the note and rest lengths (steps) the tokenizer can write


def mood_of(mode: str, tempo: float) -> str:
    """The mood label (notebook 13): major & fast = happy, major & slow = calm, minor & fast = tense, minor &
    slow = sad; "fast" means tempo >= FAST_BPM (110 bpm) and every mode but major counts as minor."""
    return next(m for m, (f, fast) in MOODS.items() if f == _family(mode) and fast == (tempo >= FAST_BPM))


def _family(mode: str) -> str:
    return "major" if mode == "major" else "minor"


@dataclass(frozen=True)
class Note:
    """A note: MIDI ``pitch``, ``start`` and ``duration`` in 16th-note steps, ``velocity`` in (0, 1] (notebook 13)."""

    pitch: int
    start: int
    duration: int
    velocity: float = 0.8

    def __post_init__(self) -> None:
        if not 0 <= self.pitch <= 127:
            raise ValueError(f"pitch={self.pitch} is not a MIDI note number: use 0..127 (60 = middle C).")
        if self.start < 0 or self.duration <= 0:
            raise ValueError(f"start={self.start}, duration={self.duration}: start must be >= 0 and the duration "
                             "a positive number of 16th-note steps.")
        if not 0 < self.velocity <= 1:
            raise ValueError(f"velocity={self.velocity} must be in (0, 1].")

    @property
    def end(self) -> int:
        return self.start + self.duration


@dataclass(frozen=True)
class Melody:
    """A monophonic melody with its labels (notebook 13); ``progression`` holds one chord root (a scale degree)
    per bar for the accompaniment, empty for a decoded melody; ``mood`` follows from mode and tempo."""

    notes: tuple[Note, ...]
    key: str = "C"
    mode: str = "major"
    tempo: int = 120
    n_bars: int = 4
    progression: tuple[int, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "notes", tuple(sorted(self.notes, key=lambda n: n.start)))
        if self.key not in KEYS:
            raise ValueError(f"unknown key {self.key!r}: choose one of {', '.join(KEYS)}.")
        if self.mode not in SCALES:
            raise ValueError(f"unknown mode {self.mode!r}: choose one of {', '.join(SCALES)}.")
        if self.tempo <= 0 or self.n_bars < 1:
            raise ValueError(f"tempo ({self.tempo} bpm) and n_bars ({self.n_bars}) must be positive.")
        if self.notes and self.notes[-1].end > self.n_bars * STEPS_PER_BAR:
            raise ValueError(f"the last note ends at step {self.notes[-1].end}, after the {self.n_bars} bars "
                             f"({self.n_bars * STEPS_PER_BAR} steps): raise n_bars.")

    @property
    def mood(self) -> str:
        return mood_of(self.mode, self.tempo)

    @property
    def labels(self) -> dict[str, str | int]:
        return {"key": self.key, "mode": self.mode, "tempo": self.tempo, "mood": self.mood}

    @property
    def seconds(self) -> float:
        return self.n_bars * STEPS_PER_BAR * 60 / self.tempo / STEPS_PER_BEAT


def _scale_pitch(tonic: int, scale: tuple[int, ...], degree: int) -> int:
    """MIDI pitch of a scale degree counted from the tonic (0), across octaves (7 = the tonic an octave up)."""
    return tonic + 12 * (degree // len(scale)) + scale[degree % len(scale)]


def _draw_labels(rng: np.random.Generator, key: str | None, mode: str | None, tempo: int | None,
                 mood: str | None) -> tuple[str, str, int]:
    if mood is not None and mood not in MOODS:
        raise ValueError(f"unknown mood {mood!r}: choose one of {', '.join(MOODS)}.")
    for name, value, valid in (("key", key, KEYS), ("mode", mode, SCALES)):
        if value is not None and value not in valid:
            raise ValueError(f"unknown {name} {value!r}: choose one of {', '.join(valid)}.")
    fits = [m for m in MOODS if (mode is None or _family(mode) == MOODS[m][0])
            and (tempo is None or MOODS[m][1] == (tempo >= FAST_BPM))]
    if not fits or (mood is not None and mood not in fits):
        raise ValueError(f"mood={mood!r} contradicts mode={mode!r} / tempo={tempo!r}: the mood is defined by "
                         "mode and tempo (see mood_of); give fewer of them.")
    mood = mood or fits[rng.integers(len(fits))]
    family, fast = MOODS[mood]
    tempo = tempo if tempo is not None else int(rng.integers(TEMPO_RANGES[fast][0], TEMPO_RANGES[fast][1] + 1))
    return key or KEYS[rng.integers(len(KEYS))], mode or family, tempo


def make_melody(seed: int, *, key: str | None = None, mode: str | None = None, tempo: int | None = None,
                mood: str | None = None, n_bars: int = 4, progression: str | None = None) -> Melody:
    """A labelled melody, the same for the same arguments (notebook 13). Labels not given are drawn from ``seed``.

    Each bar takes a rhythm from a small set (busier ones when fast) and the chord of ``progression``; notes on
    beats 1 and 3 are tones of that chord, the others step through the scale (mostly by one degree), and the
    last bar returns to chord I and ends on a long tonic. Every note is in the scale and none crosses a bar line."""
    if n_bars < 1:
        raise ValueError(f"n_bars must be >= 1, got {n_bars}.")
    if progression is not None and progression not in PROGRESSIONS:
        raise ValueError(f"unknown progression {progression!r}: choose one of {', '.join(PROGRESSIONS)}.")
    rng = np.random.default_rng(seed)
    key, mode, tempo = _draw_labels(rng, key, mode, tempo, mood)
    cycle = PROGRESSIONS[progression or list(PROGRESSIONS)[rng.integers(len(PROGRESSIONS))]]
    roots = [cycle[bar % len(cycle)] for bar in range(n_bars - 1)] + [0]  # the last bar returns to I
    scale, tonic = SCALES[mode], 60 + KEYS.index(key)
    low, high = -3, 10  # the melody's range in scale degrees around the tonic
    degree, notes = int(rng.choice([0, 2, 4])), []
    for bar, root in enumerate(roots):
        bars = CADENCE_BARS if bar == n_bars - 1 else BUSY_BARS if tempo >= FAST_BPM else CALM_BARS
        t = bar * STEPS_PER_BAR
        for length in bars[rng.integers(len(bars))]:
            if length < 0:  # a rest
                t -= length
                continue
            if t % 8 == 0:  # beats 1 and 3: the chord tone nearest the melody (sometimes the second nearest)
                tones = sorted((root + i + 7 * o for i in (0, 2, 4) for o in (-1, 0, 1) if low <= root + i + 7 * o
                                <= high), key=lambda d: abs(d - degree))
                degree = tones[int(rng.random() < 0.3)]
            else:  # a step of -2..2 degrees, kept inside the range
                step = int(rng.choice([-2, -1, 0, 1, 2], p=[0.1, 0.35, 0.1, 0.35, 0.1]))
                degree = min(max(degree + step, low), high)
            notes.append(Note(_scale_pitch(tonic, scale, degree), t, length))
            t += length
    last = notes[-1]
    home = 0 if abs(degree) <= abs(degree - 7) else 7  # end on the nearer tonic
    notes[-1] = Note(_scale_pitch(tonic, scale, home), last.start, last.duration)
    return Melody(tuple(notes), key, mode, tempo, n_bars, tuple(roots), seed)


def _signature(melody: Melody) -> tuple:
    return melody.key, melody.mode, tuple((n.pitch, n.start, n.duration) for n in melody.notes)


def music_dataset(n: int, seed: int = 0, *, n_bars: int = 4, exclude: Sequence[Melody] = ()) -> list[Melody]:
    """``n`` distinct labelled melodies (notebook 13): ``make_melody(s, mood=moods[s % 4])`` for the seeds
    s = seed, seed + 1, ... (so the four moods take turns), skipping any melody (same key, mode and notes)
    that repeats an earlier one or one in ``exclude``."""
    if n < 1:
        raise ValueError(f"n must be a positive number of melodies, got {n}.")
    seen, out, s = {_signature(m) for m in exclude}, [], seed
    moods = list(MOODS)
    while len(out) < n:
        if s - seed >= 10 * n + 1000:  # short melodies have few variants: stop rather than loop forever
            raise ValueError(f"only {len(out)} distinct melodies in {s - seed} seeds, {n} asked for: use more "
                             "bars (n_bars) or fewer melodies.")
        melody = make_melody(s, mood=moods[s % len(moods)], n_bars=n_bars)
        if _signature(melody) not in seen:
            seen.add(_signature(melody))
            out.append(melody)
        s += 1
    return out


def music_split(n_train: int, n_test: int, seed: int = 0, *, n_bars: int = 4) -> tuple[list[Melody], list[Melody]]:
    """Train and test melodies from disjoint seed ranges, the test set checked to share no melody with the
    training set (notebook 13)."""
    train = music_dataset(n_train, seed, n_bars=n_bars)
    return train, music_dataset(n_test, train[-1].seed + 1, n_bars=n_bars, exclude=train)


def chord_notes(melody: Melody, velocity: float = 0.6) -> list[Note]:
    """The accompaniment: each bar's triad (root, 3rd, 5th of the scale) an octave below the melody, and its
    root two octaves below as a bass note, held for the whole bar (notebook 13)."""
    scale, tonic = SCALES[melody.mode], 60 + KEYS.index(melody.key)
    notes = []
    for bar, root in enumerate(melody.progression):
        start = bar * STEPS_PER_BAR
        notes += [Note(_scale_pitch(tonic - 12, scale, root + i), start, STEPS_PER_BAR, velocity) for i in (0, 2, 4)]
        notes.append(Note(_scale_pitch(tonic - 24, scale, root), start, STEPS_PER_BAR, velocity))
    return notes


def render(melody: Melody, instrument: str | Instrument = "flute", *, chords: bool = True,
           chord_instrument: str | Instrument = "organ", sr: int = SAMPLE_RATE, peak: float = 0.9) -> np.ndarray:
    """The melody as a float32 waveform, over its chord accompaniment when it has a progression (notebook 13)."""
    if not melody.notes:
        raise ValueError("the melody has no notes, nothing to render: decode a longer sample or check its tokens.")
    tracks = [render_notes(melody.notes, instrument, melody.tempo, steps_per_beat=STEPS_PER_BEAT, sr=sr)]
    if chords and melody.progression:
        tracks.append(render_notes(chord_notes(melody), chord_instrument, melody.tempo,
                                   steps_per_beat=STEPS_PER_BEAT, sr=sr))
    return mix(tracks, gains=[1.0, 0.35][: len(tracks)], peak=peak)


class NoteTokenizer:
    """Melodies as note-event tokens for a GPT (notebook 13): ``BOS KEY_x MODE_y``, then per bar ``BAR`` and its
    events, ``PITCH_p DUR_d`` for a note and ``REST_d`` for silence, and ``EOS`` at the end.

    ``PITCH_p`` covers MIDI ``low..high``; ``DUR_d`` and ``REST_d`` take d in :data:`DURATIONS` (steps). A
    gap of another length is written as several rests. The id of ``PAD`` is 0."""

    def __init__(self, low: int = 48, high: int = 95) -> None:
        if not 0 <= low < high <= 127:
            raise ValueError(f"pitch range {low}..{high} must satisfy 0 <= low < high <= 127.")
        self.low, self.high = low, high
        self.tokens: tuple[str, ...] = ("PAD", "BOS", "EOS", "BAR", *(f"KEY_{k}" for k in KEYS),
                                        *(f"MODE_{m}" for m in SCALES), *(f"PITCH_{p}" for p in range(low, high + 1)),
                                        *(f"DUR_{d}" for d in DURATIONS), *(f"REST_{d}" for d in DURATIONS))
        self.token_to_id = {t: i for i, t in enumerate(self.tokens)}
        self.pad_id, self.bos_id, self.eos_id, self.bar_id = range(4)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def prompt(self, key: str | None = None, mode: str | None = None) -> list[int]:
        """``BOS`` and, when given, ``KEY_key MODE_mode``: the start to sample a melody from (notebook 13)."""
        if key is not None and key not in KEYS or mode is not None and mode not in SCALES:
            raise ValueError(f"unknown key {key!r} or mode {mode!r}: keys {', '.join(KEYS)}; modes "
                             f"{', '.join(SCALES)}.")
        ids = [self.bos_id] + ([self.token_to_id[f"KEY_{key}"]] if key is not None else [])
        return ids + ([self.token_to_id[f"MODE_{mode}"]] if mode is not None else [])

    def _rests(self, steps: int) -> list[int]:
        out = []
        for d in sorted(DURATIONS, reverse=True):  # greedy: 5 steps -> REST_4 REST_1
            count, steps = divmod(steps, d)
            out += [self.token_to_id[f"REST_{d}"]] * count
        return out

    def encode(self, melody: Melody, conditioning: bool = True) -> list[int]:
        """Token ids of a melody; ``conditioning`` writes its key and mode after BOS (notebook 13)."""
        if not melody.notes:
            raise ValueError("the melody has no notes: an empty melody has nothing to encode.")
        ids = self.prompt(melody.key, melody.mode) if conditioning else [self.bos_id]
        for bar in range(melody.n_bars):
            ids.append(self.bar_id)
            t, bar_end = bar * STEPS_PER_BAR, (bar + 1) * STEPS_PER_BAR
            for note in (n for n in melody.notes if n.start // STEPS_PER_BAR == bar):
                if note.start < t or note.end > bar_end:
                    raise ValueError(f"{note} overlaps the previous note or crosses a bar line: the tokens "
                                     "write one voice and bars that add up to 16 steps.")
                if not self.low <= note.pitch <= self.high or note.duration not in DURATIONS:
                    raise ValueError(f"{note} is outside the vocabulary: pitches {self.low}..{self.high}, "
                                     f"durations {DURATIONS} steps.")
                ids += self._rests(note.start - t)
                ids += [self.token_to_id[f"PITCH_{note.pitch}"], self.token_to_id[f"DUR_{note.duration}"]]
                t = note.end
            ids += self._rests(bar_end - t)
        return ids + [self.eos_id]

    def token_stream(self, melodies: Sequence[Melody], conditioning: bool = True) -> Tensor:
        """All melodies encoded and concatenated into one LongTensor, for ``lm.pack_blocks`` (notebook 13)."""
        if not melodies:
            raise ValueError("token_stream got no melodies.")
        return torch.tensor([i for m in melodies for i in self.encode(m, conditioning)], dtype=torch.long)

    def _split(self, token: str) -> tuple[str, int]:
        kind, _, value = token.partition("_")
        return kind, int(value) if value.isdigit() else 0

    def decode_with_report(self, ids: Sequence[int] | Tensor, tempo: int = 120) -> tuple[Melody, dict[str, int]]:
        """Decode any id sequence, e.g. a model's sample (notebook 13), skipping what does not parse; the report
        counts notes, rests, bars and each kind of skipped token.

        Events follow each other in time (a ``BAR`` token marks, it does not move time). Decoding stops at
        ``EOS``. ``KEY``/``MODE`` count only before the first event; missing ones default to C and major."""
        skipped: Counter[str] = Counter()  # reason -> number of tokens skipped
        key = mode = pitch = None
        notes, t, bars, rests = [], 0, 0, 0
        ids = [int(i) for i in (ids.tolist() if isinstance(ids, Tensor) else ids)]
        for position, i in enumerate(ids):
            token = self.tokens[i] if 0 <= i < len(self.tokens) else "UNKNOWN"
            kind, value = self._split(token)
            if pitch is not None and kind != "DUR":
                skipped["pitch_without_duration"] += 1
                pitch = None
            if kind == "EOS":
                skipped["after_eos"] += len(ids) - position - 1
                break
            started = bool(notes) or t > 0 or bars > 0
            if kind == "KEY" and key is None and not started:
                key = token[4:]
            elif kind == "MODE" and mode is None and not started:
                mode = token[5:]
            elif kind == "BAR":
                bars += 1
            elif kind == "PITCH":
                pitch = value
            elif kind == "DUR" and pitch is not None:
                notes.append(Note(pitch, t, value))
                t, pitch = t + value, None
            elif kind == "REST":
                t, rests = t + value, rests + 1
            elif not (kind == "BOS" and position == 0):  # unknown ids, PAD, a late BOS/KEY/MODE, a lone DUR
                skipped[{"DUR": "duration_without_pitch", "UNKNOWN": "unknown_id"}.get(kind, f"misplaced_{kind}")] += 1
        skipped["pitch_without_duration"] += int(pitch is not None)
        report = {"notes": len(notes), "rests": rests, "bars": bars, "skipped": sum(skipped.values()), **skipped,
                  "missing_key": int(key is None), "missing_mode": int(mode is None)}
        melody = Melody(tuple(notes), key or "C", mode or "major", tempo, max(1, math.ceil(t / STEPS_PER_BAR)))
        return melody, report

    def decode(self, ids: Sequence[int] | Tensor, tempo: int = 120) -> Melody:
        """The melody of a token sequence (see :meth:`decode_with_report`) (notebook 13)."""
        return self.decode_with_report(ids, tempo)[0]

    def bar_fills(self, ids: Sequence[int] | Tensor) -> list[int | None]:
        """Steps filled by each closed bar: the events from a ``BAR`` token to the next ``BAR`` or ``EOS``;
        ``None`` for a bar holding anything but ``PITCH DUR`` pairs and rests; an unclosed last bar is left out
        (notebook 13)."""
        fills, filled, ok, pitch = [], None, True, False  # filled is None before the first BAR
        for i in (ids.tolist() if isinstance(ids, Tensor) else ids):
            token = self.tokens[int(i)] if 0 <= int(i) < len(self.tokens) else "UNKNOWN"
            kind, value = self._split(token)
            if kind in ("BAR", "EOS"):
                if filled is not None:
                    fills.append(filled if ok and not pitch else None)
                if kind == "EOS":
                    break
                filled, ok, pitch = 0, True, False
            elif filled is not None:
                ok &= (kind == "PITCH" and not pitch) or (kind == "DUR" and pitch) or (kind == "REST" and not pitch)
                filled += value if kind in ("DUR", "REST") else 0
                pitch = kind == "PITCH"
        return fills


def _melodies(x: Melody | Sequence[Melody]) -> list[Melody]:
    melodies = [x] if isinstance(x, Melody) else list(x)
    if not melodies or not all(isinstance(m, Melody) for m in melodies):
        raise ValueError("expected a Melody or a non-empty list of Melody objects.")
    return melodies


def in_key_rate(x: Melody | Sequence[Melody] | Sequence[Note], key: str | None = None,
                mode: str | None = None) -> float:
    """Share of notes whose pitch class is in the scale of ``key`` and ``mode`` (notebook 13); each melody's own
    key and mode unless given (needed for bare notes). Pooled over all notes; uniformly random pitches score
    7/12 ~ 0.58 against a 7-note scale, a melody written in the key scores 1."""
    if isinstance(x, Melody) or (x and all(isinstance(m, Melody) for m in x)):
        pairs = [(m.notes, key or m.key, mode or m.mode) for m in _melodies(x)]
    elif key is None or mode is None:
        raise ValueError("bare notes have no key: pass key= and mode= (or Melody objects).")
    else:
        pairs = [(list(x), key, mode)]
    hits = total = 0
    for notes, k, m in pairs:
        if k not in KEYS or m not in SCALES:
            raise ValueError(f"unknown key {k!r} or mode {m!r}: keys {', '.join(KEYS)}; modes {', '.join(SCALES)}.")
        scale = {(KEYS.index(k) + s) % 12 for s in SCALES[m]}
        hits += sum(n.pitch % 12 in scale for n in notes)
        total += len(notes)
    if total == 0:
        raise ValueError("no notes to grade: in-key rate needs at least one note.")
    return hits / total


def pitch_class_histogram(x: Melody | Sequence[Melody], relative: bool = True) -> np.ndarray:
    """(12,) share of notes on each pitch class, each note counted once (notebook 13). With ``relative``, classes
    count semitones above each melody's tonic (0 = tonic), so melodies in different keys compare."""
    counts = np.zeros(12)
    for m in _melodies(x):
        for n in m.notes:
            counts[(n.pitch - (KEYS.index(m.key) if relative else 0)) % 12] += 1
    if counts.sum() == 0:
        raise ValueError("the melodies have no notes: a pitch-class histogram needs at least one.")
    return counts / counts.sum()


def pitch_class_distance(a: np.ndarray | Melody | Sequence[Melody], b: np.ndarray | Melody | Sequence[Melody]) -> float:
    """Total variation between two pitch-class distributions, 0.5 * sum |p - q| in [0, 1] (notebook 13); takes
    histograms or melodies (then :func:`pitch_class_histogram` with ``relative=True``)."""
    p, q = (np.asarray(h, dtype=float) if isinstance(h, np.ndarray) else pitch_class_histogram(h) for h in (a, b))
    if p.shape != (12,) or q.shape != (12,):
        raise ValueError(f"pitch-class histograms have 12 entries, got shapes {p.shape} and {q.shape}.")
    return float(0.5 * np.abs(p / p.sum() - q / q.sum()).sum())


def rhythm_validity(x: Melody | Sequence[Melody] | Sequence[int] | Sequence[Sequence[int]] | Tensor,
                    tokenizer: NoteTokenizer | None = None) -> float:
    """Share of bars whose events add up to exactly one bar (16 steps) (notebook 13), pooled over sequences.

    Token ids (one sequence, a list of them or a (B, T) tensor): the bars of :meth:`NoteTokenizer.bar_fills`,
    a bar with a malformed event counting as invalid; no closed bar at all scores 0. Melodies: a bar is
    valid when no note crosses its bar lines and no two of its notes overlap (the gaps are rests)."""
    if isinstance(x, Melody) or (isinstance(x, Sequence) and x and isinstance(x[0], Melody)):
        valid = total = 0
        for m in _melodies(x):
            bad = set()  # bars that a note crosses into or out of, or where two notes overlap
            for i, n in enumerate(m.notes):
                first, last = n.start // STEPS_PER_BAR, (n.end - 1) // STEPS_PER_BAR
                bad.update(range(first, last + 1) if first != last else ())
                bad.update((first,) if i and n.start < m.notes[i - 1].end else ())
            valid, total = valid + m.n_bars - len(bad), total + m.n_bars
        return valid / total
    tokenizer = tokenizer or NoteTokenizer()
    rows = x.tolist() if isinstance(x, (Tensor, np.ndarray)) else list(x)
    rows = [rows] if rows and not isinstance(rows[0], (list, tuple, Tensor, np.ndarray)) else rows
    fills = [f for row in rows for f in tokenizer.bar_fills(row)]
    return sum(f == STEPS_PER_BAR for f in fills) / len(fills) if fills else 0.0
