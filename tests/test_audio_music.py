"""Music data of notebook 13: labels that hold, train/test without shared melodies, an exact token round trip,
metrics on hand-made cases, and random tokens scoring clearly worse than the data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from aigc_lib.audio.music import (
    BUSY_BARS,
    CADENCE_BARS,
    CALM_BARS,
    DURATIONS,
    MOODS,
    PITCH_CLASSES,
    SCALES,
    STEPS_PER_BAR,
    TEMPO_RANGES,
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
from aigc_lib.lm import GPT, GPTConfig, generate, pack_blocks

TOK = NoteTokenizer()


@pytest.fixture(scope="module")
def data() -> list[Melody]:
    return music_dataset(80, seed=0)


def _scale(tonic: int, mode: str = "major") -> list[Note]:
    return [Note(tonic + s, 4 * i, 4) for i, s in enumerate(SCALES[mode])]


def test_bar_patterns_fill_one_bar_with_tokenizable_lengths():
    for pattern in BUSY_BARS + CALM_BARS + CADENCE_BARS:
        assert sum(abs(d) for d in pattern) == STEPS_PER_BAR, pattern
        assert all(abs(d) in DURATIONS for d in pattern), pattern


def test_mood_is_defined_by_mode_and_tempo():
    assert [mood_of("major", 140), mood_of("major", 70), mood_of("minor", 140), mood_of("dorian", 70)] == \
        ["happy", "calm", "tense", "sad"]


def test_make_melody_is_deterministic_and_seeds_differ():
    assert make_melody(7) == make_melody(7)
    assert make_melody(7).notes != make_melody(8).notes
    m = make_melody(3, key="F#", mode="dorian", tempo=95, n_bars=6)
    assert (m.key, m.mode, m.tempo, m.n_bars, m.mood) == ("F#", "dorian", 95, 6, "sad")


def test_dataset_labels_hold_for_every_melody(data):
    assert {m.mood for m in data} == set(MOODS)
    for m in data:
        family, fast = MOODS[m.mood]
        assert m.mode == family and TEMPO_RANGES[fast][0] <= m.tempo <= TEMPO_RANGES[fast][1]
        assert in_key_rate(m) == 1.0  # every note in the key's scale
        assert rhythm_validity(m) == 1.0  # no note crosses a bar line, none overlap
        assert all(a.end <= b.start for a, b in zip(m.notes, m.notes[1:]))  # one voice
        assert PITCH_CLASSES[m.notes[-1].pitch % 12] == m.key  # it ends on the tonic
        assert in_key_rate(chord_notes(m), m.key, m.mode) == 1.0
        assert m.progression[-1] == 0  # the last bar returns to chord I
        for n in (n for n in m.notes if n.start % 8 == 0):  # beats 1 and 3 carry a tone of the bar's chord
            degree = SCALES[m.mode].index((n.pitch - PITCH_CLASSES.index(m.key)) % 12)
            assert (degree - m.progression[n.start // STEPS_PER_BAR]) % 7 in (0, 2, 4), (m.seed, n)


def test_split_shares_no_melody_and_no_seed():
    train, test = music_split(60, 30, seed=1)
    assert len(train) == 60 and len(test) == 30
    sig = {(m.key, m.mode, m.notes) for m in train}
    assert not any((m.key, m.mode, m.notes) in sig for m in test)
    assert max(m.seed for m in train) < min(m.seed for m in test)
    assert music_dataset(5, seed=10, exclude=music_dataset(3, seed=10))[0] == music_dataset(4, seed=10)[3]
    # one-bar melodies have few variants, so duplicates do occur (measured: 300 distinct need seeds 0..751)
    train, test = music_split(300, 100, n_bars=1)
    assert train[-1].seed > 299 and len({(m.key, m.mode, m.notes) for m in train + test}) == 400


def test_token_round_trip_is_exact(data):
    for m in data:
        ids = TOK.encode(m)
        assert ids[0] == TOK.bos_id and ids[-1] == TOK.eos_id and ids.count(TOK.bar_id) == m.n_bars
        back, report = TOK.decode_with_report(ids, tempo=m.tempo)
        assert (back.notes, back.key, back.mode, back.n_bars, back.tempo) == (m.notes, m.key, m.mode, m.n_bars,
                                                                               m.tempo)
        assert report["skipped"] == 0 and report["notes"] == len(m.notes)
        assert TOK.bar_fills(ids) == [STEPS_PER_BAR] * m.n_bars
    # a gap that is no single rest length (5 steps) becomes REST_4 REST_1 and comes back
    m = Melody((Note(60, 0, 3), Note(62, 8, 8)), "C", "major", n_bars=1)
    assert TOK.decode(TOK.encode(m)).notes == m.notes
    assert TOK.decode(TOK.encode(m, conditioning=False)).notes == m.notes


def test_malformed_sequences_decode_with_a_report():
    t = TOK.token_to_id
    ids = [t["BOS"], t["KEY_D"], t["MODE_minor"], t["BAR"], t["PITCH_62"], t["PITCH_64"], t["DUR_4"], t["DUR_4"],
           t["REST_4"], 9999, t["PAD"], t["KEY_E"], t["PITCH_67"], t["DUR_2"], t["EOS"], t["PITCH_60"]]
    m, report = TOK.decode_with_report(ids)
    assert (m.key, m.mode) == ("D", "minor")
    assert m.notes == (Note(64, 0, 4), Note(67, 8, 2))
    assert {k: report[k] for k in ("pitch_without_duration", "duration_without_pitch", "unknown_id", "misplaced_PAD",
                                   "misplaced_KEY", "after_eos")} == dict.fromkeys(
        ("pitch_without_duration", "duration_without_pitch", "unknown_id", "misplaced_PAD", "misplaced_KEY",
         "after_eos"), 1)
    assert report["skipped"] == 6 and report["bars"] == 1
    assert TOK.bar_fills(ids) == [None]  # that bar held malformed events
    empty, report = TOK.decode_with_report([t["BOS"], t["EOS"]])
    assert empty.notes == () and report["missing_key"] == 1


def test_metrics_on_hand_made_cases():
    c_major = Melody(tuple(_scale(60)), "C", "major", n_bars=2)
    assert in_key_rate(c_major) == 1.0
    chromatic = [Note(60 + i, 2 * i, 2) for i in range(12)]
    assert in_key_rate(chromatic, "C", "major") == pytest.approx(7 / 12)
    assert in_key_rate(_scale(57, "minor"), "C", "major") == 1.0  # A minor has C major's notes
    assert in_key_rate(_scale(62), "C", "major") == pytest.approx(5 / 7)  # D major: F# and C# are out
    np.testing.assert_allclose(pitch_class_histogram(Melody(tuple(chromatic), n_bars=2)), np.full(12, 1 / 12))
    d_major = Melody(tuple(_scale(62)), "D", "major", n_bars=2)
    assert pitch_class_distance(c_major, d_major) == 0.0  # the same degrees relative to each tonic
    assert pitch_class_histogram(d_major, relative=False)[2] == pytest.approx(1 / 7)  # D itself
    assert pitch_class_distance(np.eye(12)[0], np.eye(12)[5]) == 1.0  # disjoint supports
    crossing = Melody((Note(60, 0, 16), Note(62, 16, 8), Note(64, 28, 8), Note(65, 32, 4), Note(67, 34, 4)),
                      n_bars=3)
    assert rhythm_validity(crossing) == pytest.approx(1 / 3)  # bars 2 and 3: a crossing note, then an overlap
    t = TOK.token_to_id
    ids = [t[s] for s in ("BOS", "BAR", "PITCH_60", "DUR_8", "BAR", "PITCH_60", "DUR_12", "REST_4", "BAR",
                          "REST_16", "BAR", "PITCH_62", "DUR_16")]  # bars of 8, 16, 16 steps, then an open one
    assert TOK.bar_fills(ids) == [8, 16, 16] and rhythm_validity(ids) == pytest.approx(2 / 3)
    assert TOK.bar_fills(ids + [t["EOS"]]) == [8, 16, 16, 16]
    assert rhythm_validity([ids[:4], ids[:4]]) == 0.0  # no closed bar


def test_random_tokens_score_clearly_worse_than_the_data(data):
    ids = [TOK.encode(m) for m in data]
    assert rhythm_validity(ids) == 1.0 and in_key_rate(data) == 1.0
    rng = np.random.default_rng(0)
    random_ids = rng.integers(0, TOK.vocab_size, size=(400, 128))
    decoded = [TOK.decode(row) for row in random_ids]
    assert rhythm_validity(torch.as_tensor(random_ids)) < 0.05  # measured 0.0 (2026-12-07)
    assert in_key_rate([m for m in decoded if m.notes]) == pytest.approx(7 / 12, abs=0.05)
    random_pcd = pitch_class_distance([m for m in decoded if m.notes], data)
    train, test = music_split(80, 80, seed=0)
    assert pitch_class_distance(test, train) < 0.5 * random_pcd


def test_tokens_train_and_sample_with_the_course_gpt(data):
    stream = TOK.token_stream(data)
    assert stream.dtype == torch.long and len(stream) == sum(len(TOK.encode(m)) for m in data)
    blocks = pack_blocks(stream, block_size=32)  # (N, 33)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=32))
    loss = model(blocks[:8, :-1], targets=blocks[:8, 1:])
    assert loss.item() == pytest.approx(np.log(TOK.vocab_size), rel=0.1)  # untrained: about uniform
    out = generate(model, TOK.prompt("G", "minor"), max_new_tokens=40, do_sample=True, top_p=0.9, seed=0,
                   eos_token_id=TOK.eos_id)
    assert out.shape[0] == 1 and out[0, :3].tolist() == TOK.prompt("G", "minor")
    assert (TOK.decode(out[0]).key, TOK.decode(out[0]).mode) == ("G", "minor")  # whatever the model wrote


def test_render_a_melody_with_its_chords():
    m = make_melody(2, tempo=150, n_bars=2)
    x = render(m)
    assert x.dtype == np.float32 and np.all(np.isfinite(x)) and np.abs(x).max() <= 1.0
    assert len(x) >= round(m.seconds * 16_000)
    np.testing.assert_array_equal(x, render(make_melody(2, tempo=150, n_bars=2)))
    assert not np.array_equal(render(m, "pluck", chords=False)[:1000], x[:1000])


@pytest.mark.parametrize("call, message", [
    (lambda: make_melody(0, key="H"), r"unknown key 'H'"),
    (lambda: make_melody(0, mode="lydian"), r"unknown mode 'lydian'"),
    (lambda: make_melody(0, mood="angry"), r"unknown mood"),
    (lambda: make_melody(0, mood="happy", mode="minor"), r"contradicts"),
    (lambda: make_melody(0, progression="I-II"), r"unknown progression"),
    (lambda: render(make_melody(0), "violin"), r"unknown instrument 'violin'"),
    (lambda: Note(60, 0, -1), r"duration"),
    (lambda: Melody((Note(60, 60, 8),), n_bars=4), r"raise n_bars"),
    (lambda: render(Melody(())), r"no notes"),
    (lambda: TOK.encode(Melody(())), r"no notes"),
    (lambda: TOK.encode(Melody((Note(60, 12, 8),), n_bars=2)), r"crosses a bar line"),
    (lambda: TOK.encode(Melody((Note(30, 0, 4),))), r"outside the vocabulary"),
    (lambda: in_key_rate([]), r"key="),
    (lambda: in_key_rate(Melody(())), r"no notes"),
    (lambda: pitch_class_histogram([]), r"Melody"),
    (lambda: music_dataset(0), r"positive"),
    (lambda: music_dataset(700, n_bars=1), r"distinct melodies in 8000 seeds.*more bars"),
])
def test_bad_inputs_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
