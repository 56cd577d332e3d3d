"""The green-list watermark (chapter 11): the z-test, and equality with transformers' own implementation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import LogitsProcessorList, WatermarkDetector, WatermarkingConfig
from transformers.generation.logits_process import WatermarkLogitsProcessor

from aigc_lib import lm
from aigc_lib.provenance import (
    GreenListDetector,
    GreenListLogitsProcessor,
    GreenListWatermark,
    green_list,
    greenlist_size,
    watermark_p_value,
    watermark_z_score,
)

V = 200  # tiny vocabulary: the green lists are quick to draw
SETTINGS = [  # (seeding_scheme, context_width)
    ("lefthash", 1), ("lefthash", 2), ("selfhash", 1), ("selfhash", 2),
]


def _stream(wm: GreenListWatermark, length: int, green_share: float, seed: int = 0) -> list[int]:
    """A lefthash token stream whose i-th token is green exactly when i < green_share * (length - 1)."""
    g = torch.Generator().manual_seed(seed)
    ids = [int(torch.randint(V, (1,), generator=g))]
    n_green = round(green_share * (length - 1))
    for i in range(length - 1):
        green = set(green_list(torch.tensor(ids), V, wm).tolist())
        pool = sorted(green) if i < n_green else sorted(set(range(V)) - green)
        ids.append(pool[int(torch.randint(len(pool), (1,), generator=g))])
    return ids


# ------------------------------------------------------------------------------------------ the z-test
def test_all_green_gives_the_closed_form_z():
    wm = GreenListWatermark(gamma=0.25)
    r = GreenListDetector(wm, V).score(_stream(wm, 101, 1.0))
    assert (r.num_green_tokens, r.num_tokens_scored) == (100, 100)  # the first token is context, not scored
    # G = T: z = (T - gamma T) / sqrt(T gamma (1 - gamma)) = sqrt(T (1 - gamma) / gamma) = 17.32
    assert r.z_score == pytest.approx(math.sqrt(100 * 0.75 / 0.25), abs=1e-12)
    assert r.prediction and r.p_value < 1e-60


def test_a_gamma_share_of_green_gives_z_near_zero():
    wm = GreenListWatermark(gamma=0.25)
    r = GreenListDetector(wm, V).score(_stream(wm, 101, 0.25))
    assert r.num_green_tokens == 25 and r.z_score == pytest.approx(0.0, abs=1e-12)
    assert not r.prediction and r.p_value == pytest.approx(0.5)
    none = GreenListDetector(wm, V).score(_stream(wm, 101, 0.0))
    assert none.z_score == pytest.approx(-math.sqrt(100 * 0.25 / 0.75))  # all red: the mirror image


def test_z_score_and_p_value_formulas():
    assert watermark_z_score(60, 100, 0.5) == pytest.approx(10 / 5)
    assert watermark_p_value(0.0) == pytest.approx(0.5)
    assert watermark_p_value(4.0) == pytest.approx(3.167e-5, rel=1e-3)  # the paper's threshold


def test_greenlist_size_rounds_down_like_transformers():
    assert greenlist_size(50257, 0.25) == 12564 == int(50257 * 0.25)
    assert len(green_list(torch.tensor([3]), 101, GreenListWatermark(gamma=0.5))) == 50


# ------------------------------------------------------------------------------------------ == transformers
@pytest.mark.parametrize("scheme,width", SETTINGS)
def test_processor_equals_transformers_processor(scheme: str, width: int):
    wm = GreenListWatermark(gamma=0.25, delta=2.5, hashing_key=12345, context_width=width,
                            seeding_scheme=scheme)
    ref = WatermarkLogitsProcessor(V, "cpu", **wm.to_transformers())
    mine = GreenListLogitsProcessor(wm, V)
    g = torch.Generator().manual_seed(0)
    for length in (width - 1, width, 9):  # shorter than context_width: both leave the scores alone
        ids, scores = torch.randint(V, (3, length), generator=g), torch.randn(3, V, generator=g)
        torch.testing.assert_close(mine(ids, scores), ref(ids, scores), rtol=0, atol=0)  # bit for bit


def _tiny_hf_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return lm.GPT(lm.GPTConfig(vocab_size=V, block_size=128, n_layer=1, n_head=2, n_embd=32)).to_hf()


def _generate(model, prompt: torch.Tensor, **kwargs) -> torch.Tensor:
    # top_k=0: GPT-2's default top_k=50 keeps only green tokens whenever delta lifts them all above the rest
    torch.manual_seed(1)
    return model.generate(prompt, do_sample=True, top_k=0, max_new_tokens=100, min_new_tokens=100,
                          pad_token_id=0, **kwargs)


@pytest.fixture(scope="module")
def generations() -> dict[str, torch.Tensor]:
    model = _tiny_hf_model()
    wm = GreenListWatermark(gamma=0.25, delta=2.0)
    prompt = torch.randint(0, V - 1, (4, 4), generator=torch.Generator().manual_seed(0))
    mine = _generate(model, prompt, logits_processor=LogitsProcessorList([GreenListLogitsProcessor(wm, V)]))
    return {"watermarked": mine[:, 4:], "plain": _generate(model, prompt)[:, 4:], "config": model.config,
            "reference": _generate(model, prompt,
                                   watermarking_config=WatermarkingConfig(**wm.to_transformers()))[:, 4:]}


def test_generation_equals_transformers_watermarking_config(generations):
    # same seed, same model: our processor and generate(watermarking_config=...) sample the same tokens
    assert torch.equal(generations["watermarked"], generations["reference"])


@pytest.mark.parametrize("ignore_repeated", [False, True])
@pytest.mark.parametrize("scheme,width", SETTINGS)
def test_detector_equals_transformers_detector(generations, scheme: str, width: int, ignore_repeated: bool):
    wm = GreenListWatermark(gamma=0.25, hashing_key=15485863, context_width=width, seeding_scheme=scheme)
    cfg = generations["config"]
    ref = WatermarkDetector(cfg, "cpu", WatermarkingConfig(**wm.to_transformers()),
                            ignore_repeated_ngrams=ignore_repeated)
    mine = GreenListDetector(wm, V, ignore_repeated_ngrams=ignore_repeated, bos_token_id=cfg.bos_token_id)
    repeats = torch.tensor([[5, 6, 5, 6, 5, 6, 5, 6, 7, 5, 6]])  # repeated n-grams, where the option matters
    bos = torch.tensor([[cfg.bos_token_id, 3, 9, 3, 9, 3, 11]])  # a leading BOS, dropped by both
    for ids in (generations["watermarked"][:, :60], generations["plain"][:, :60], repeats, bos):
        expected = ref(ids, return_dict=True)
        got = mine(ids)
        np.testing.assert_array_equal([r.num_green_tokens for r in got], expected.num_green_tokens)
        np.testing.assert_array_equal([r.num_tokens_scored for r in got], expected.num_tokens_scored)
        np.testing.assert_allclose([r.z_score for r in got], expected.z_score, rtol=0, atol=1e-12)
        np.testing.assert_allclose([r.p_value for r in got], expected.p_value, rtol=1e-9, atol=1e-15)


def test_ignore_repeated_ngrams_counts_each_bigram_once():
    wm = GreenListWatermark()
    assert GreenListDetector(wm, V).count_green([5, 6] * 5)[1] == 9
    unique = GreenListDetector(wm, V, ignore_repeated_ngrams=True)
    assert unique.count_green([5, 6] * 5)[1] == 2  # the bigrams (5, 6) and (6, 5)


def test_watermarked_generation_is_detected_and_plain_is_not(generations):
    detector = GreenListDetector(GreenListWatermark(gamma=0.25, delta=2.0), V)  # z_threshold = 4, the paper's
    marked = [r.z_score for r in detector(generations["watermarked"])]
    plain = [r.z_score for r in detector(generations["plain"])]
    # measured at 100 new tokens (99 scored), delta 2, gamma 0.25: watermarked z 9.8-11.0, plain |z| <= 1.1;
    # with delta = 0 the "watermarked" z equals the plain one and this test fails, as it should
    assert min(marked) > 4.0 and all(r.prediction for r in detector(generations["watermarked"]))
    assert max(abs(z) for z in plain) < 3.5 and not any(r.prediction for r in detector(generations["plain"]))


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs,message", [
    ({"gamma": 0.0}, "strictly between 0 and 1"), ({"gamma": 1.0}, "strictly between 0 and 1"),
    ({"gamma": -0.5}, "strictly between 0 and 1"), ({"delta": -1.0}, "must be >= 0"),
    ({"context_width": 0}, "context_width"), ({"seeding_scheme": "minhash"}, "seeding_scheme"),
])
def test_bad_settings_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GreenListWatermark(**kwargs)


def test_too_short_text_raises():
    detector = GreenListDetector(GreenListWatermark(context_width=2), V, bos_token_id=V - 1)
    with pytest.raises(ValueError, match="longer text"):
        detector.score([V - 1, 4, 5])  # BOS dropped, then 2 tokens: all context, none left to score
    with pytest.raises(ValueError, match="at least one scored token"):
        watermark_z_score(0, 0, 0.25)
    with pytest.raises(ValueError, match="vocab_size"):
        GreenListLogitsProcessor(GreenListWatermark(seeding_scheme="selfhash"), 20)
