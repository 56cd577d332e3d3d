"""Adversarial examples: FGSM, PGD, robust accuracy and adversarial training (notebook 12).

An adversarial example is an input x' = x + delta, with delta inside a small ball ||delta|| <= eps, that a
*fixed, trained* classifier gets wrong although a person sees no change (Szegedy et al., 2014). The attacks
here climb the classifier's loss with respect to the *input*:

- FGSM, the fast gradient sign method (Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial
  Examples", ICLR 2015): one step ``x' = x + eps * sign(grad_x L(f(x), y))``;
- PGD, projected gradient descent (Madry et al., "Towards Deep Learning Models Resistant to Adversarial
  Attacks", ICLR 2018): many small steps, each projected back into the eps-ball, from a random start;
- adversarial training (Madry et al. 2018, eq. 2.1): ``min_theta E[max_{||delta|| <= eps} L(f(x + delta), y)]``,
  the inner max approximated by PGD (:class:`AdversarialStep`).

Adversarial examples are NOT generative adversarial networks. Some of the course's seed articles conflate
the two because both say "adversarial": a GAN is a two-player *training* game between a generator and a
discriminator (Goodfellow et al., 2014) and produces new samples; an adversarial example is a perturbation
found by gradient ascent on one frozen classifier's loss and produces a misclassified input. Nothing here
trains a generator, and the GAN code lives in :mod:`aigc_lib.gan`.

Images are (N, C, H, W) in [-1, 1], as everywhere in the course; ``model`` maps them to logits (N, K), or is
an :class:`~aigc_lib.metrics.judge.ImageJudge` / :class:`~aigc_lib.metrics.judge.ImageClassifier` whose
forward returns a dict of logits per head (pick one with ``head``). An attack runs the model in eval mode
and restores its mode and every parameter's ``requires_grad`` afterwards; it takes gradients with respect to
the input only (``torch.autograd.grad``), so no ``.grad`` ever lands on the model's parameters.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aigc_lib.gan import frozen

__all__ = ["AdversarialStep", "fgsm", "pgd", "robust_accuracy"]

LossFn = Callable[[Tensor, Tensor], Tensor]
Clamp = tuple[float, float] | None
NORMS = ("linf", "l2")


# --------------------------------------------------------------------------------------------- plumbing
def _module_and_head(model: Any, head: str | None) -> tuple[nn.Module, str | None]:
    """The nn.Module to differentiate and the head to read: an ImageJudge gives its classifier and head."""
    if hasattr(model, "classes") and isinstance(getattr(model, "model", None), nn.Module):  # an ImageJudge
        return model.model, model._head(head)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module mapping images to logits, or an ImageJudge; got "
                         f"{type(model).__name__}.")
    return model, head


def _logits(output: Tensor | dict[str, Tensor], head: str | None) -> Tensor:
    """Logits (N, K) from a model's output: the tensor itself, or one head of a dict of logits per head."""
    if isinstance(output, Tensor):
        return output
    if head is None and len(output) == 1:
        return next(iter(output.values()))
    if head not in output:
        raise ValueError(f"the model returns logits for heads {list(output)}: pass head= one of them.")
    return output[head]


@contextmanager
def _attacking(module: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and frozen parameters inside the block; the caller's mode and requires_grad come back after."""
    was_training = module.training
    module.eval()
    try:
        with frozen(module), torch.enable_grad():  # enable_grad: an attack works inside torch.no_grad() too
            yield module
    finally:
        module.train(was_training)


def _device(module: nn.Module, x: Tensor) -> torch.device:
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else x.device


def _check(x: Tensor, y: Tensor, eps: float, clamp: Clamp) -> None:
    """Raise a ValueError that says what to fix for a bad radius, label tensor or image range."""
    if not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps is the radius of the perturbation ball and must be a finite number >= 0, got "
                         f"{eps!r}; for images in [-1, 1], eps = 0.3 is a large L-inf attack (MNIST's in Madry).")
    if x.dim() < 2 or len(x) == 0 or not x.is_floating_point():
        raise ValueError(f"x must be a non-empty float batch (N, C, H, W), got {tuple(x.shape)} {x.dtype}.")
    if y.shape != (len(x),) or y.dtype != torch.long:
        raise ValueError(f"y must hold one int64 class label per image, shape ({len(x)},), got "
                         f"{tuple(y.shape)} {y.dtype}: pass labels.long().")
    if clamp is not None:
        lo, hi = clamp
        if not lo < hi:
            raise ValueError(f"clamp=(low, high) needs low < high, got {clamp}.")
        x_min, x_max = x.min().item(), x.max().item()
        if x_min < lo or x_max > hi:
            raise ValueError(f"x has values in [{x_min:.3g}, {x_max:.3g}], outside clamp={tuple(clamp)}: scale the "
                             "images into the range (course images are in [-1, 1]; x * 2 - 1 maps [0, 1] there), "
                             "or pass the range they live in, e.g. clamp=(0, 1), or clamp=None for no range.")


def _project(x_adv: Tensor, x: Tensor, eps: float, norm: str, clamp: Clamp) -> Tensor:
    """Pi_{B_eps(x) cap [lo, hi]}: back into the eps-ball around x, then into the valid pixel range.

    For L-inf both sets are boxes and the two clamps are the exact projection onto their intersection. For L2,
    clamping to the range moves each pixel towards x (x is inside the range), so it never leaves the ball."""
    delta = x_adv - x  # (N, C, H, W)
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)  # (N,)
        delta = delta * (eps / norms).clamp(max=1.0).view(-1, *[1] * (x.dim() - 1))
    x_adv = x + delta
    return x_adv.clamp(*clamp) if clamp is not None else x_adv


def _input_gradient(module: nn.Module, head: str | None, x: Tensor, y: Tensor, loss_fn: LossFn | None) -> Tensor:
    """grad_x L(f(x), y) with respect to the input only; the parameters get no .grad (they are frozen)."""
    x = x.detach().requires_grad_(True)
    logits = _logits(module(x), head).float()  # (N, K)
    # a sum, not a mean: each image's gradient is then its own, not 1/N of it (the sign is the same)
    loss = F.cross_entropy(logits, y, reduction="sum") if loss_fn is None else loss_fn(logits, y)
    (grad,) = torch.autograd.grad(loss, x)
    return grad  # (N, C, H, W)


# --------------------------------------------------------------------------------------------- attacks
def fgsm(model: nn.Module | Any, x: Tensor, y: Tensor, eps: float, *, loss_fn: LossFn | None = None,
         clamp: Clamp = (-1, 1), head: str | None = None) -> Tensor:
    """FGSM (Goodfellow et al. 2015), untargeted L-inf: x + eps * sign(grad_x L(f(x), y)) (notebook 12).

    ``loss_fn(logits, y)`` defaults to the summed cross-entropy; the result is clamped into ``clamp`` (None: no
    range) and returned on x's device, detached."""
    module, head = _module_and_head(model, head)
    _check(x, y, eps, clamp)
    device = _device(module, x)
    x_d, y_d = x.detach().to(device), y.to(device)
    with _attacking(module):
        grad = _input_gradient(module, head, x_d, y_d, loss_fn)
    # Goodfellow et al. section 4: eta = eps * sign(grad_x J(theta, x, y))
    x_adv = x_d + eps * grad.sign()  # (N, C, H, W)
    return (x_adv.clamp(*clamp) if clamp is not None else x_adv).detach().to(x.device)


def pgd(model: nn.Module | Any, x: Tensor, y: Tensor, eps: float, alpha: float, steps: int, *,
        random_start: bool = True, norm: str = "linf", seed: int | None = None, clamp: Clamp = (-1, 1),
        loss_fn: LossFn | None = None, head: str | None = None) -> Tensor:
    """PGD (Madry et al. 2018), untargeted, L-inf or L2: ``steps`` ascent steps of size ``alpha``, each
    projected back into the eps-ball around x and the valid range ``clamp`` (notebook 12).

    ``random_start`` begins at a uniform point of the ball (seeded by ``seed``, else the global RNG). With one
    step, no random start and alpha = eps, L-inf PGD is FGSM. Returned on x's device, detached."""
    module, head = _module_and_head(model, head)
    _check(x, y, eps, clamp)
    if not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha is PGD's step size and must be a finite number > 0, got {alpha!r}; a common "
                         "choice is 2.5 * eps / steps.")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1 (PGD's ascent steps; Madry et al. use 40 on MNIST), "
                         f"got {steps!r}.")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}.")
    device = _device(module, x)
    x_d, y_d = x.detach().to(device), y.to(device)
    # 1. Start: x^0 = x, or a uniform point of B_eps(x) (Madry et al. start PGD at random points of the ball)
    x_adv = x_d
    if random_start and eps > 0:
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        if norm == "linf":
            delta = (torch.rand(x.shape, generator=g) * 2 - 1) * eps  # U(-eps, eps) per pixel
        else:  # uniform in the L2 ball: a Gaussian direction, a radius eps * u^(1/d)
            direction = torch.randn(x.shape, generator=g)
            direction = direction / direction.flatten(1).norm(dim=1).view(-1, *[1] * (x.dim() - 1))
            d = x[0].numel()
            radius = eps * torch.rand(len(x), generator=g) ** (1 / d)  # (N,)
            delta = direction * radius.view(-1, *[1] * (x.dim() - 1))
        x_adv = _project(x_d + delta.to(device, x.dtype), x_d, eps, norm, clamp)
    # 2. Ascent: x^{t+1} = Pi_{x + S}(x^t + alpha * sign(grad_x L(theta, x^t, y)))  (Madry et al. section 2.1)
    with _attacking(module):
        for _ in range(steps):
            grad = _input_gradient(module, head, x_adv, y_d, loss_fn)  # (N, C, H, W)
            if norm == "linf":
                step = grad.sign()
            else:  # steepest ascent for L2: the unit-norm gradient direction
                step = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
            x_adv = _project(x_adv.detach() + alpha * step, x_d, eps, norm, clamp)
    return x_adv.detach().to(x.device)


# --------------------------------------------------------------------------------------------- evaluation
def robust_accuracy(model: nn.Module | Any, x: Tensor, y: Tensor, eps_list: Sequence[float],
                    attack: str | Callable[..., Tensor] = "pgd", *, head: str | None = None,
                    batch_size: int = 256, **kw: Any) -> dict[float, float]:
    """Accuracy under attack for each eps, as {eps: accuracy}; eps 0 is the clean accuracy and is always
    included (notebook 12).

    ``attack`` is "pgd", "fgsm" or a function ``attack(model, x, y, eps, **kw) -> x_adv``. For "pgd", ``steps``
    defaults to 10 and ``alpha`` to 2.5 * eps / steps (per eps) unless given in ``kw``. Runs in batches of
    ``batch_size``; other ``kw`` (``clamp``, ``seed``, ``norm``, ``loss_fn``) go to the attack."""
    if isinstance(attack, str) and attack not in ("pgd", "fgsm"):
        raise ValueError(f"attack must be 'pgd', 'fgsm' or a function (model, x, y, eps, **kw) -> x_adv, got "
                         f"{attack!r}.")
    eps_values = sorted({0.0, *(float(e) for e in eps_list)})
    if not eps_list or eps_values[0] < 0 or not all(math.isfinite(e) for e in eps_values):
        raise ValueError(f"eps_list must hold one or more finite radii >= 0, got {list(eps_list)!r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    _check(x, y, 0.0, kw.get("clamp", (-1, 1)))
    module, head = _module_and_head(model, head)
    device = _device(module, x)
    was_training = module.training
    module.eval()
    right = dict.fromkeys(eps_values, 0)
    try:
        for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
            xb, yb = xb.to(device), yb.to(device)
            for eps in eps_values:
                x_adv = xb if eps == 0 else _attack(attack, module, head, xb, yb, eps, kw)
                with torch.no_grad():
                    right[eps] += int((_logits(module(x_adv), head).argmax(1) == yb).sum())
    finally:
        module.train(was_training)
    return {eps: right[eps] / len(x) for eps in eps_values}


def _attack(attack: str | Callable[..., Tensor], module: nn.Module, head: str | None, x: Tensor, y: Tensor,
            eps: float, kw: dict[str, Any]) -> Tensor:
    if attack == "fgsm":
        return fgsm(module, x, y, eps, head=head, **kw)
    if attack == "pgd":
        kw = {"steps": 10, **kw}
        kw.setdefault("alpha", 2.5 * eps / kw["steps"])
        return pgd(module, x, y, eps, head=head, **kw)
    return attack(module, x, y, eps, **kw)


# --------------------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class AdversarialStep:
    """One adversarial-training step (Madry et al. 2018) for :class:`aigc_lib.train.Trainer` with one model and
    optimizer: PGD examples, optionally mixed with the clean batch (notebook 12).

    The batch is (images, labels). ``clean_weight`` w mixes the two losses as (1 - w) L(x_adv) + w L(x):
    0 is Madry's pure adversarial training, 0.5 Goodfellow et al.'s (2015, section 6) mixed objective."""

    eps: float
    steps: int = 7
    alpha: float | None = None  # None: 2.5 * eps / steps
    clean_weight: float = 0.0
    norm: str = "linf"
    random_start: bool = True
    clamp: Clamp = (-1, 1)
    head: str | None = None  # for a model that returns logits per head (an ImageClassifier)

    def __post_init__(self) -> None:
        if not math.isfinite(self.eps) or self.eps < 0:
            raise ValueError(f"eps must be a finite number >= 0, got {self.eps!r}.")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be an integer >= 1 (PGD steps per training step), got {self.steps!r}.")
        if self.alpha is not None and not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, or None for 2.5 * eps / steps; got {self.alpha!r}.")
        if not 0 <= self.clean_weight <= 1:
            raise ValueError(f"clean_weight is the share of the clean loss, in [0, 1]; got {self.clean_weight!r}.")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}.")

    def __call__(self, trainer: Any, batch: Any) -> dict[str, Tensor]:
        x, y = batch[0], batch[1]  # (B, C, H, W), (B,)
        model = trainer.model
        # 1. Inner maximisation: x_adv ~ argmax_{||x' - x|| <= eps} L(f(x'), y), by PGD (Madry et al. eq. 2.1)
        x_adv = x
        if self.eps > 0:
            alpha = self.alpha if self.alpha is not None else 2.5 * self.eps / self.steps
            x_adv = pgd(model, x, y, self.eps, alpha, self.steps, random_start=self.random_start,
                        norm=self.norm, clamp=self.clamp, head=self.head)
        # 2. Outer minimisation: theta <- theta - lr * grad_theta [(1 - w) L(f(x_adv), y) + w L(f(x), y)]
        logits_adv = _logits(model(x_adv), self.head)  # (B, K)
        loss_adv = F.cross_entropy(logits_adv.float(), y)
        loss = loss_adv
        metrics = {"loss_adv": loss_adv.detach(), "acc_adv": (logits_adv.argmax(1) == y).float().mean()}
        if self.clean_weight > 0:
            loss_clean = F.cross_entropy(_logits(model(x), self.head).float(), y)
            loss = (1 - self.clean_weight) * loss_adv + self.clean_weight * loss_clean
            metrics["loss_clean"] = loss_clean.detach()
        trainer.backward(loss)
        trainer.optimizer_step()
        return {"loss": loss.detach(), **metrics}
