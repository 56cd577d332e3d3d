"""Tests of aigc_lib.safety.filters: blocklist, output classifier, ESD target and one ESD step (notebook 12)."""
import copy

import pytest
import torch
from torch import nn

from aigc_lib.safety.filters import (
    ConceptClassifier,
    ESDStep,
    PromptFilter,
    blank_flagged,
    concept_rate,
    esd_loss,
    esd_target,
    train_concept_classifier,
)


def test_prompt_filter_is_case_insensitive_and_whole_word():
    f = PromptFilter(["red", "Blood"])
    assert f.blocks("a red circle") and f.blocks("a RED circle") and f.blocks("Red.") and f.blocks("BLOOD moon")
    assert not f.blocks("a green square") and not f.blocks("a bred circle") and not f.blocks("centred")
    assert f(["a red x", "a blue x"]).tolist() == [True, False]
    sub = PromptFilter(["red"], substring=True)
    assert sub.blocks("a bred circle") and sub.blocks("centred") and not sub.blocks("a blue circle")


def test_prompt_filter_bad_input():
    with pytest.raises(ValueError):
        PromptFilter([" ", ""])
    with pytest.raises(ValueError):
        PromptFilter(["red"])("a red circle")


def test_classifier_learns_red_and_blanking():
    g = torch.Generator().manual_seed(0)
    images = -torch.ones(64, 3, 16, 16)
    labels = torch.arange(64) % 4 == 0
    images[labels, 0, 4:12, 4:12] = 0.8  # red squares
    images[~labels, 1, 4:12, 4:12] = 0.8 + 0.1 * torch.rand(int((~labels).sum()), 8, 8, generator=g)  # green
    model, losses = train_concept_classifier(images, labels, steps=100, lr=0.1)
    assert losses[-1] < losses[0]
    assert (model.flags(images) == labels).all()
    torch.manual_seed(0)
    fresh = ConceptClassifier(3, 8)
    untrained, _ = train_concept_classifier(images, labels, steps=5, lr=0.0, seed=0)  # control: lr 0 learns nothing
    assert torch.equal(untrained.linear.weight, fresh.linear.weight)
    out = blank_flagged(images, labels)
    assert (out[labels] == -1).all() and torch.equal(out[~labels], images[~labels])
    with pytest.raises(ValueError):
        blank_flagged(images, labels[:3])


def test_concept_rate_counts_blocked_as_absent():
    predicted = torch.tensor([0, 0, 1, 0])
    assert concept_rate(predicted, 0) == 0.75
    assert concept_rate(predicted, 0, blocked=torch.tensor([True, False, False, False])) == 0.5


class ToyUNet(nn.Module):
    """A linear 'UNet' with the diffusers call signature: unet(x, t, encoder_hidden_states=s).sample."""

    def __init__(self, c: int = 2, d: int = 3) -> None:
        super().__init__()
        self.x = nn.Linear(c, c)
        self.s = nn.Linear(d, c)

    def forward(self, x, t, encoder_hidden_states):
        out = self.x(x.movedim(1, -1)).movedim(-1, 1) + self.s(encoder_hidden_states.mean(1))[:, :, None, None]
        return type("Out", (), {"sample": out})()


def test_esd_target_closed_form():
    cond, uncond = torch.tensor([3.0, -1.0]), torch.tensor([1.0, 1.0])
    assert torch.equal(esd_target(cond, uncond, 0.0), uncond)
    torch.testing.assert_close(esd_target(cond, uncond, 2.0), torch.tensor([1 - 2 * 2.0, 1 + 2 * 2.0]))
    with pytest.raises(ValueError):
        esd_target(cond, uncond[:1])
    # the loss is the MSE to that target, computed with the frozen model's two predictions
    torch.manual_seed(0)
    unet, frozen = ToyUNet(), ToyUNet()
    x, t = torch.randn(4, 2, 3, 3), torch.zeros(4, dtype=torch.long)
    c, e = torch.randn(4, 5, 3), torch.randn(1, 5, 3)
    with torch.no_grad():
        target = frozen(x, t, e.expand(4, 5, 3)).sample * 2.5 - 1.5 * frozen(x, t, c).sample  # eta = 1.5
        expected = ((unet(x, t, c).sample - target) ** 2).mean()
    torch.testing.assert_close(esd_loss(unet, frozen, x, t, c, e, eta=1.5), expected)


def test_one_esd_step_lowers_the_loss():
    from aigc_lib.diffusion import NoiseSchedule
    from aigc_lib.train import TrainConfig, Trainer

    torch.manual_seed(0)
    frozen = ToyUNet()
    unet = copy.deepcopy(frozen)
    latents, states, empty = torch.randn(8, 2, 3, 3), torch.randn(8, 5, 3), torch.zeros(1, 5, 3)
    schedule = NoiseSchedule.stable_diffusion()
    step = ESDStep(schedule, frozen, empty, eta=1.0)
    x_t = schedule.q_sample(latents, torch.full((8,), 500), torch.randn_like(latents))
    t = torch.full((8,), 500)
    before = esd_loss(unet, frozen, x_t, t, states, empty).item()
    trainer = Trainer({"unet": unet}, {"model": torch.optim.SGD(unet.parameters(), lr=0.05)}, step,
                      [(latents, states)], TrainConfig(max_steps=1, progress=False, device="cpu"))
    trainer.fit()
    assert esd_loss(unet, frozen, x_t, t, states, empty).item() < before
    with pytest.raises(ValueError):
        ESDStep(schedule, frozen, empty, eta=-1.0)
