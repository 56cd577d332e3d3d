"""Tests for aigc_lib.provenance.detection (notebook 11): text scores, AUC, spectra, the image detector."""
import math

import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from aigc_lib.lm import GPT, GPTConfig
from aigc_lib.provenance.detection import (
    RealFakeDetector,
    detectgpt_score,
    detection_auc,
    detection_roc,
    detector_scores,
    edit_words,
    log_likelihood_score,
    log_rank_score,
    perturb_tokens,
    radial_power_spectrum,
    score_tokens,
    token_log_probs,
    train_detector,
)


@pytest.fixture(scope="module")
def tiny_lm():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=17, block_size=16, n_layer=1, n_head=1, n_embd=8)).eval()


def test_auc_equals_sklearn():
    g = torch.Generator().manual_seed(1)
    machine = torch.randn(40, generator=g) + 0.7
    human = torch.cat([torch.randn(30, generator=g), machine[:5]])  # some ties across the classes
    y = [1] * len(machine) + [0] * len(human)
    s = torch.cat([machine, human]).tolist()
    assert detection_auc(machine, human) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    roc = detection_roc(machine, human)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    assert torch.allclose(roc["fpr"], torch.tensor(fpr, dtype=torch.float64))
    assert torch.allclose(roc["tpr"], torch.tensor(tpr, dtype=torch.float64))


def test_separable_auc_is_one_and_reversed_zero():
    assert detection_auc([5.0, 6.0, 7.0], [1.0, 2.0]) == 1.0
    assert detection_auc([1.0, 2.0], [5.0, 6.0, 7.0]) == 0.0
    assert detection_auc([1.0, 1.0], [1.0]) == 0.5
    with pytest.raises(ValueError):
        detection_auc([], [1.0])


def test_log_likelihood_and_rank_match_hand_computation(tiny_lm):
    seqs = [[3, 1, 4, 1, 5], [9, 2, 6]]
    scores = score_tokens(tiny_lm, seqs)
    for i, s in enumerate(seqs):
        with torch.no_grad():
            logits = tiny_lm(torch.tensor([s]))[0].float()  # (T, V)
        logp = logits.log_softmax(-1)
        lls = [float(logp[t - 1, s[t]]) for t in range(1, len(s))]
        ranks = [1 + int((logits[t - 1] > logits[t - 1, s[t]]).sum()) for t in range(1, len(s))]
        assert float(scores["log_likelihood"][i]) == pytest.approx(sum(lls) / len(lls), abs=1e-5)
        mean_log_rank = sum(math.log(r) for r in ranks) / len(ranks)
        assert float(scores["log_rank"][i]) == pytest.approx(-mean_log_rank, abs=1e-9)
    assert torch.allclose(log_likelihood_score(tiny_lm, seqs), scores["log_likelihood"])
    assert torch.allclose(log_rank_score(tiny_lm, seqs, batch_size=1), scores["log_rank"])
    # the top token has rank 1 and log-rank 0: a greedy continuation scores the maximum, 0
    greedy = [3]
    for _ in range(5):
        greedy.append(int(tiny_lm(torch.tensor([greedy]))[0, -1].argmax()))
    assert float(log_rank_score(tiny_lm, [greedy])[0]) == 0.0
    lp = token_log_probs(tiny_lm, torch.tensor([[3, 1, 4, 0]]), torch.tensor([[1, 1, 1, 0]]))
    assert lp.shape == (1, 3) and float(lp[0, 2]) == 0.0  # padding is not scored
    with pytest.raises(ValueError):
        score_tokens(tiny_lm, [[3]])
    with pytest.raises(ValueError):
        score_tokens(tiny_lm, [3, 1, 4])


def test_perturbations_change_the_right_number_of_tokens(tiny_lm):
    seqs = [[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5], [2, 7, 1, 8, 2]]
    copies = perturb_tokens(tiny_lm, seqs, k=4, fraction=0.3, seed=0)
    assert len(copies) == 2 and all(len(c) == 4 for c in copies)
    for s, group in zip(seqs, copies):
        expected = max(1, round(0.3 * (len(s) - 1)))
        for c in group:
            assert len(c) == len(s) and c[0] == s[0]
            assert sum(a != b for a, b in zip(s, c)) == expected
    assert perturb_tokens(tiny_lm, seqs, k=4, fraction=0.3, seed=0) == copies  # repeatable
    with pytest.raises(ValueError):
        perturb_tokens(tiny_lm, seqs, k=1)
    with pytest.raises(ValueError):
        perturb_tokens(tiny_lm, seqs, fraction=0.0)


def test_detectgpt_separates_greedy_text_from_random_text(tiny_lm):
    g = torch.Generator().manual_seed(0)
    greedy_texts, random_texts = [], []
    for i in range(8):
        s = [int(torch.randint(17, (1,), generator=g))]
        for _ in range(12):
            s.append(int(tiny_lm(torch.tensor([s]))[0, -1].argmax()))
        greedy_texts.append(s)
        random_texts.append(torch.randint(17, (13,), generator=g).tolist())
    parts = detectgpt_score(tiny_lm, tiny_lm, greedy_texts + random_texts, k=6, fraction=0.2,
                            return_parts=True)
    z = parts["score"]
    assert (parts["ll"][:8] > parts["perturbed_mean"][:8]).all()  # a local maximum: perturbations lower it
    assert detection_auc(z[:8], z[8:]) > 0.9


def test_radial_spectrum_of_a_cosine_peaks_at_its_frequency():
    H = W = 32
    x = torch.arange(W, dtype=torch.float64)
    for k in (3, 7, 12):
        img = torch.cos(2 * math.pi * k * x / W)[None, None, None, :].expand(2, 1, H, W).float()
        spec = radial_power_spectrum(img)
        assert spec.shape == (2, 17)
        assert int(spec[0].argmax()) == k
    diag = torch.cos(2 * math.pi * (3 * x[:, None] + 4 * x[None, :]) / W)[None, None].float()  # radius 5
    assert int(radial_power_spectrum(diag)[0].argmax()) == 5
    with pytest.raises(ValueError):
        radial_power_spectrum(torch.zeros(32, 32))


def test_detector_learns_a_checkerboard_in_a_few_steps():
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(256, 1, 16, 16, generator=g) * 0.5 - 0.25
    checker = ((torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2).float() * 0.4 - 0.2
    fake = torch.rand(256, 1, 16, 16, generator=g) * 0.5 - 0.25 + checker
    model, history = train_detector(clean[:192], fake[:192], steps=60, lr=5e-3, batch_size=64, width=8,
                                    seed=0)
    assert history["train"][-1]["loss"] < 0.5 * math.log(2)  # BCE starts near ln 2
    auc = detection_auc(detector_scores(model, fake[192:]), detector_scores(model, clean[192:]))
    assert auc > 0.95
    frozen, _ = train_detector(clean[:192], fake[:192], steps=60, lr=0.0, batch_size=64, width=8, seed=0)
    torch.manual_seed(0)
    init = RealFakeDetector(1, 8)
    # lr 0 (a control run): the detector keeps its initial weights
    assert torch.allclose(detector_scores(frozen, clean[192:]), detector_scores(init, clean[192:]))
    with pytest.raises(ValueError):
        train_detector(clean[:4], fake[:4, :, :8], steps=2)


def test_edit_words_replaces_the_share_asked():
    text = "one two three four five six seven eight nine ten"
    edited = edit_words(text, 0.3, ["zzz"], seed=1)
    assert sum(a != b for a, b in zip(text.split(), edited.split())) == 3
    assert edit_words(text, 0.0, ["zzz"]) == text
    with pytest.raises(ValueError):
        edit_words(text, 1.5, ["zzz"])
