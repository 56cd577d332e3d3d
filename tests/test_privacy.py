"""aigc_lib.safety.privacy: a canary inserted 20 times in a tiny char-level GPT's training text is exposed and one
never inserted is not (Carlini et al. 2019); the exposure bound, tie ranks and the sampled estimate; the
loss-threshold membership AUC (Yeom et al. 2018) equals sklearn's and separates an overfit model from an
untrained one; greedy extraction returns memorised rows and not held-out ones; bad input is refused."""
from __future__ import annotations

import math
import random

import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from aigc_lib import lm
from aigc_lib.data import TensorLoader
from aigc_lib.safety import (
    canary_space,
    exposure,
    exposure_from_scores,
    extraction_rate,
    make_canaries,
    membership_auc,
    membership_roc,
    membership_scores,
    sequence_log_perplexity,
)
from aigc_lib.train import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = "the shop opens at order ships today we sell tea and cake call us on your code is".split()


def _lines(n: int, seed: int) -> list[str]:
    """Shop-talk lines that end in a random 4-digit number: digits are common, 'my pin is' never appears."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 6))) + f" {rng.randrange(10**4):04d}."
            for _ in range(n)]


def _train(model: torch.nn.Module, rows: torch.Tensor, steps: int) -> None:
    opt = lm.lm_optimizer(model, lr=3e-3, weight_decay=0.0)
    Trainer(model, opt, lm.LMStep(), TensorLoader(rows, batch_size=32),
            TrainConfig(max_steps=steps, device="cpu", progress=False)).fit()


@pytest.fixture(scope="module")
def secret_sharer(one_thread):
    """A 2-layer char GPT trained 300 steps (~4 s) on 400 lines with canary 'my pin is 2201' inserted 20 times."""
    inserted, never = make_canaries(2, seed=1)
    lines = _lines(400, seed=0)
    rng = random.Random(0)
    for _ in range(20):
        lines.insert(rng.randrange(len(lines)), inserted + ".")
    text = "\n".join(lines) + "\n"
    tok = lm.CharTokenizer(text + never)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = lm.GPT(lm.GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=64))
        _train(model, lm.pack_blocks(tok.encode(text), 32, stride=16), steps=300)
    return model, tok, inserted, never


# ------------------------------------------------------------------------------------------ canaries
def test_canaries_are_distinct_fillings_of_the_template():
    canaries = make_canaries(50, digits=4, seed=0)
    assert len(set(canaries)) == 50 and all(c.startswith("my pin is ") and len(c) == 14 for c in canaries)
    assert canaries == make_canaries(50, digits=4, seed=0) != make_canaries(50, digits=4, seed=1)
    space = canary_space(digits=3)
    assert len(space) == 1000 and space[7] == "my pin is 007" and set(make_canaries(5, digits=3)) <= set(space)


def test_log_perplexity_sums_the_token_losses_and_ignores_padding(secret_sharer):
    model, tok, inserted, _ = secret_sharer
    texts = [inserted, "the shop opens at 0930.", "we sell tea"]
    scores = sequence_log_perplexity(model, tok.encode, texts, batch_size=2)  # mixed lengths in one batch
    for text, score in zip(texts, scores):
        row = torch.tensor([tok.encode(text)])  # (1, T): the loss over its T-1 predicted tokens, alone
        assert score.item() == pytest.approx((len(text) - 1) * lm.lm_loss(model, row).item(), rel=1e-5)


# ------------------------------------------------------------------------------------------ exposure
def test_an_inserted_canary_is_exposed_and_a_fresh_one_is_not(secret_sharer):
    model, tok, inserted, never = secret_sharer
    space = canary_space(digits=4)  # R: all 10**4 PINs, log2 |R| = 13.29
    e_in, e_never = exposure(model, tok.encode, inserted, space), exposure(model, tok.encode, never, space)
    # measured: inserted 20x 12.29 (rank 2 of 10**4), never inserted 1.50 (1x: 2.95, 5x: 5.33 in other runs)
    assert e_in > 10.0 and e_never < 5.0
    assert e_in <= math.log2(len(space))
    # the paper's estimate from 500 sampled candidates (measured 13.29 capped, and 1.05) tells them apart too
    sample = canary_space(digits=4, n=500, seed=3)
    est_in = exposure(model, tok.encode, inserted, sample, space_size=10**4)
    est_never = exposure(model, tok.encode, never, sample, space_size=10**4)
    assert est_in > 10.0 and est_never < 5.0 and est_in <= math.log2(10**4)


def test_an_untrained_model_exposes_no_canary(one_thread):
    tok = lm.CharTokenizer("my pin is 0123456789")
    torch.manual_seed(0)
    model = lm.GPT(lm.GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=32))
    space = canary_space(digits=3)
    values = [exposure(model, tok.encode, c, space) for c in make_canaries(8, digits=3, seed=0)]
    assert sum(values) / len(values) < 4.0  # E = 1/ln 2 = 1.44 for random ranks; measured 2.5 (0.3-6.8)


def test_exposure_ranks_ties_ahead_of_the_canary():
    scores = torch.tensor([3.0, 1.0, 2.0, 2.0, 5.0, 2.0, 4.0, 6.0])  # |R| = 8
    assert exposure_from_scores(1.0, scores) == pytest.approx(3.0)  # rank 1: the bound log2 |R|
    assert exposure_from_scores(2.0, scores) == pytest.approx(3.0 - 2.0)  # three tie at rank 2..4: rank 4
    assert exposure_from_scores(6.0, scores) == pytest.approx(0.0)
    assert exposure_from_scores(7.0, torch.full((16,), 7.0)) == 0.0  # a model that scores all alike exposes nothing
    assert exposure_from_scores(-50.0, scores, space_size=10**4) == pytest.approx(math.log2(10**4))  # capped


# ------------------------------------------------------------------------------------------ membership
def test_membership_auc_and_roc_match_sklearn():
    g = torch.Generator().manual_seed(0)
    member = torch.randint(0, 6, (40,), generator=g).float() / 2  # many ties
    non = torch.randint(2, 9, (30,), generator=g).float() / 2
    labels = [1] * 40 + [0] * 30
    scores = (-torch.cat([member, non])).tolist()
    assert membership_auc(member, non) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    roc = membership_roc(member, non)
    torch.testing.assert_close(roc["fpr"], torch.tensor(fpr, dtype=torch.float64))
    torch.testing.assert_close(roc["tpr"], torch.tensor(tpr, dtype=torch.float64))
    torch.testing.assert_close(roc["thresholds"][1:], -torch.tensor(thresholds[1:], dtype=torch.float64))
    area = torch.trapezoid(roc["tpr"], roc["fpr"]).item()
    assert area == pytest.approx(membership_auc(member, non))


@pytest.fixture(scope="module")
def members_and_held_out(one_thread):
    """64 member and 64 held-out rows (33 chars) of the same shop talk, and a char tokenizer."""
    text = "\n".join(_lines(800, seed=5))
    tok = lm.CharTokenizer(text)
    rows = lm.pack_blocks(tok.encode(text), 32, stride=33)
    return tok, rows[:64], rows[64:128]


def test_an_overfit_model_leaks_membership_and_an_untrained_one_does_not(members_and_held_out):
    tok, members, held_out = members_and_held_out
    torch.manual_seed(0)
    model = lm.GPT(lm.GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=64))
    auc_untrained = membership_auc(*membership_scores(model, members, held_out))
    _train(model, members, steps=300)  # 150 epochs of 64 rows (extraction was 0.62 at 200 steps)
    member_losses, held_out_losses = membership_scores(model, members, held_out)
    auc_trained = membership_auc(member_losses, held_out_losses)
    print(f"AUC untrained {auc_untrained:.3f}, overfit {auc_trained:.3f}")
    # measured: untrained 0.45, overfit 1.00; extraction 1.00 members, 0.00 held out
    assert abs(auc_untrained - 0.5) < 0.15 and auc_trained > 0.9
    assert membership_roc(member_losses, held_out_losses)["advantage"] > 0.8
    # extraction: greedy decoding from the first 12 characters gives back the rest of a memorised row only
    prefixes = [[tok.decode(row[:12].tolist()) for row in rows] for rows in (members[:16], held_out[:16])]
    secrets = [[tok.decode(row[12:24].tolist()) for row in rows] for rows in (members[:16], held_out[:16])]
    rate_members = extraction_rate(model, tok.encode, tok.decode, prefixes[0], secrets[0])
    rate_held_out = extraction_rate(model, tok.encode, tok.decode, prefixes[1], secrets[1])
    print(f"extraction members {rate_members:.2f}, held out {rate_held_out:.2f}")
    assert rate_members > 0.8 and rate_held_out < 0.2


# ------------------------------------------------------------------------------------------ bad input
def test_bad_input_says_what_to_do(secret_sharer):
    model, tok, inserted, _ = secret_sharer
    with pytest.raises(ValueError, match="exactly one"):
        make_canaries(3, template="my pin is")
    with pytest.raises(ValueError, match="too large"):
        canary_space(digits=9)
    with pytest.raises(ValueError, match="not among the candidates"):
        exposure(model, tok.encode, inserted, canary_space(digits=4)[:10])
    with pytest.raises(ValueError, match="duplicates"):
        exposure(model, tok.encode, inserted, [inserted, inserted])
    with pytest.raises(ValueError, match="wrap a single text"):
        sequence_log_perplexity(model, tok.encode, inserted)
    with pytest.raises(ValueError, match="one loss per item"):
        membership_scores(model, torch.zeros(2, 9, dtype=torch.long), torch.zeros(2, 9, dtype=torch.long),
                          loss_fn=lambda m, x: lm.lm_loss(m, x))
    with pytest.raises(ValueError, match="equal length"):
        extraction_rate(model, tok.encode, tok.decode, ["my pin is "], [])
