"""Keeping a concept out of a text-to-image model's outputs three ways (notebook 12).

- :class:`PromptFilter`: a blocklist on the prompt's words (before generation). It reads characters; the model
  reads tokens, so a misspelling the tokenizer still maps to the blocked token walks past it.
- :class:`ConceptClassifier` and :func:`blank_flagged`: an output classifier that flags generated images and
  replaces them by black ones, as Stable Diffusion's ``StableDiffusionSafetyChecker`` does (there: CLIP image
  embeddings against 17 concept embeddings by cosine similarity, with per-concept thresholds).
- :func:`esd_target`, :func:`esd_loss` and :class:`ESDStep`: concept erasure by fine-tuning, ESD (Gandikota et al.,
  "Erasing Concepts from Diffusion Models", ICCV 2023, arXiv:2303.07345): the UNet is trained so that its
  prediction for the concept prompt equals a frozen copy's prediction guided *away* from the concept.

:func:`concept_rate` measures what each method is for: how often the concept still appears in what users get.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConceptClassifier", "ESDStep", "PromptFilter", "blank_flagged", "concept_rate", "esd_loss",
           "esd_target", "train_concept_classifier"]


# ------------------------------------------------------------------------------------------ prompt filter
class PromptFilter:
    """A blocklist prompt filter: a prompt is blocked when it contains a listed word, case-insensitively (notebook 12).

    Whole words only (``"red"`` blocks "a RED circle" but not "a bred circle"); ``substring=True`` matches anywhere
    inside words instead (it catches "bred", and also every innocent word that contains the letters).
    """

    def __init__(self, words: Iterable[str], substring: bool = False) -> None:
        self.words = sorted({w.strip().lower() for w in words if w and w.strip()})
        if not self.words:
            raise ValueError("PromptFilter needs at least one non-empty word to block, e.g. PromptFilter(['red']).")
        self.substring = substring
        alternatives = "|".join(re.escape(w) for w in self.words)
        self._pattern = re.compile(alternatives if substring else rf"\b(?:{alternatives})\b", re.IGNORECASE)

    def blocks(self, prompt: str) -> bool:
        """True when the prompt contains a blocked word (notebook 12)."""
        if not isinstance(prompt, str):
            raise ValueError(f"a prompt must be a string, got {type(prompt).__name__}.")
        return self._pattern.search(prompt) is not None

    def __call__(self, prompts: Sequence[str]) -> Tensor:
        """(N,) bool: which prompts are blocked (notebook 12)."""
        if isinstance(prompts, str):
            raise ValueError("pass a list of prompts, not one string: filter([prompt]).")
        return torch.tensor([self.blocks(p) for p in prompts], dtype=torch.bool)

    def __repr__(self) -> str:
        return f"PromptFilter({self.words!r}, substring={self.substring})"


# -------------------------------------------------------------------------------------- output classifier
class ConceptClassifier(nn.Module):
    """Logistic regression on average-pooled pixels: P(concept | image) for images in [-1, 1] (notebook 12)."""

    def __init__(self, channels: int = 3, pool: int = 8) -> None:
        super().__init__()
        if pool < 1:
            raise ValueError(f"pool must be a positive grid size, got {pool}.")
        self.pool = pool
        self.linear = nn.Linear(channels * pool * pool, 1)

    def forward(self, images: Tensor) -> Tensor:
        """Logits (N,) of images (N, C, H, W) in [-1, 1]."""
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}.")
        x = F.adaptive_avg_pool2d(images.float(), self.pool).flatten(1)
        return self.linear(x).squeeze(1)

    @torch.no_grad()
    def probability(self, images: Tensor) -> Tensor:
        """P(concept) (N,) for images in [-1, 1] (notebook 12)."""
        return torch.sigmoid(self(images.to(self.linear.weight.device))).cpu()

    def flags(self, images: Tensor, threshold: float = 0.5) -> Tensor:
        """(N,) bool: images whose P(concept) exceeds the threshold (notebook 12)."""
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}.")
        return self.probability(images) > threshold


def train_concept_classifier(images: Tensor, labels: Tensor, *, steps: int = 300, lr: float = 0.1,
                             pool: int = 8, seed: int = 0) -> tuple[ConceptClassifier, list[float]]:
    """Fit a :class:`ConceptClassifier` (full-batch Adam on the class-balanced logistic loss); returns it and its
    losses (notebook 12). ``lr=0`` leaves it untrained (a control run)."""
    labels = torch.as_tensor(labels).float()
    if images.ndim != 4 or labels.shape != (len(images),):
        raise ValueError(f"need images (N, C, H, W) and one 0/1 label per image; got {tuple(images.shape)} and "
                         f"{tuple(labels.shape)}.")
    if steps < 1 or lr < 0:
        raise ValueError(f"need steps >= 1 and lr >= 0, got {steps} and {lr}.")
    torch.manual_seed(seed)
    model = ConceptClassifier(images.shape[1], pool)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    positives = labels.sum().clamp(min=1)
    pos_weight = (len(labels) - positives) / positives  # a rare concept weighs as much as everything else
    losses = []
    for _ in range(steps):
        loss = F.binary_cross_entropy_with_logits(model(images), labels, pos_weight=pos_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model.eval(), losses


def blank_flagged(images: Tensor, flags: Tensor) -> Tensor:
    """A copy of images (in [-1, 1]) with the flagged ones black (-1), as SD's safety checker does (notebook 12)."""
    flags = torch.as_tensor(flags, dtype=torch.bool)
    if flags.shape != (len(images),):
        raise ValueError(f"need one flag per image: {len(images)} images, flags of shape {tuple(flags.shape)}.")
    out = images.clone()
    out[flags] = -1.0
    return out


def concept_rate(predicted: Tensor, concept: int, blocked: Tensor | None = None) -> float:
    """Share of outputs that show the concept: predicted label == concept and not blocked/blanked (notebook 12)."""
    predicted = torch.as_tensor(predicted)
    if predicted.ndim != 1 or len(predicted) == 0:
        raise ValueError(f"predicted must be a non-empty (N,) tensor of labels, got shape {tuple(predicted.shape)}.")
    shown = predicted == concept
    if blocked is not None:
        blocked = torch.as_tensor(blocked, dtype=torch.bool)
        if blocked.shape != predicted.shape:
            raise ValueError(f"blocked must have one entry per image: {tuple(blocked.shape)} vs "
                             f"{tuple(predicted.shape)}.")
        shown = shown & ~blocked
    return shown.float().mean().item()


# -------------------------------------------------------------------------------------------------- ESD
def esd_target(cond: Tensor, uncond: Tensor, eta: float = 1.0) -> Tensor:
    r"""ESD's target: uncond - eta (cond - uncond), the frozen model guided away from the concept (notebook 12).

    ``cond`` and ``uncond`` are the frozen model's predictions for the concept prompt and the empty prompt. The
    weights 1 + eta and -eta sum to one, so the same formula holds for epsilon- and v-prediction (v is affine in
    epsilon at a fixed x_t)."""
    if cond.shape != uncond.shape:
        raise ValueError(f"cond and uncond must have the same shape, got {tuple(cond.shape)} and "
                         f"{tuple(uncond.shape)}.")
    if eta < 0:
        raise ValueError(f"eta (the negative guidance scale) must be >= 0, got {eta}.")
    return uncond - eta * (cond - uncond)


def _predict(unet: nn.Module, x_t: Tensor, t: Tensor, states: Tensor) -> Tensor:
    return unet(x_t, t, encoder_hidden_states=states).sample


def esd_loss(unet: nn.Module, frozen: nn.Module, x_t: Tensor, t: Tensor, concept_states: Tensor,
             empty_states: Tensor, eta: float = 1.0) -> Tensor:
    """|| unet(x_t, c) - [frozen(x_t, empty) - eta (frozen(x_t, c) - frozen(x_t, empty))] ||^2 (notebook 12).

    ``concept_states``/``empty_states``: text-encoder states (N, L, D) of the concept prompts and the empty prompt
    (broadcast to N). The frozen copy's predictions carry no gradient."""
    if len(x_t) != len(t) or len(concept_states) != len(x_t):
        raise ValueError(f"x_t, t and concept_states need one row per item: {len(x_t)}, {len(t)}, "
                         f"{len(concept_states)}.")
    empty_states = empty_states.expand(len(x_t), *empty_states.shape[1:])
    with torch.no_grad():
        target = esd_target(_predict(frozen, x_t, t, concept_states), _predict(frozen, x_t, t, empty_states), eta)
    return F.mse_loss(_predict(unet, x_t, t, concept_states).float(), target.float())


@dataclass
class ESDStep:
    """Step function for :class:`aigc_lib.train.Trainer`: one ESD update on a batch (latents, concept states) or
    (latents, concept states, keep states) (notebook 12).

    x_t = q_sample(latents, t, noise) with t uniform; the loss is :func:`esd_loss`. With a third tensor (text states
    of prompts to keep, e.g. other colours) and ``preserve > 0``, ``preserve * || unet(x_t, keep) - frozen(x_t,
    keep) ||^2`` is added: the trained UNet must still predict what the frozen one does for them."""

    schedule: Any  # aigc_lib.diffusion.NoiseSchedule
    frozen: nn.Module
    empty_states: Tensor  # (1, L, D)
    eta: float = 1.0
    unet: str = "unet"  # the trainer's name of the trained UNet
    preserve: float = 0.0  # weight of the preservation term on the batch's keep states (0: plain ESD)

    def __post_init__(self) -> None:
        if self.eta < 0 or self.preserve < 0:
            raise ValueError(f"eta and preserve must be >= 0, got {self.eta} and {self.preserve}.")

    def loss(self, trainer: Any, batch: Any) -> Tensor:
        latents, states = batch[0], batch[1]
        unet = trainer.models[self.unet]
        schedule = self.schedule.to(latents.device)
        t = torch.randint(0, schedule.num_steps, (len(latents),), device=latents.device)
        x_t = schedule.q_sample(latents, t, torch.randn_like(latents))
        loss = esd_loss(unet, self.frozen, x_t, t, states, self.empty_states.to(latents.device), self.eta)
        if self.preserve > 0 and len(batch) > 2:
            with torch.no_grad():
                keep_target = _predict(self.frozen, x_t, t, batch[2])
            loss = loss + self.preserve * F.mse_loss(_predict(unet, x_t, t, batch[2]).float(), keep_target.float())
        return loss

    def __call__(self, trainer: Any, batch: Any) -> dict[str, Tensor]:
        loss = self.loss(trainer, batch)
        trainer.backward(loss)
        trainer.optimizer_step()
        return {"loss": loss.detach()}
