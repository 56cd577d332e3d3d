"""GANs: MLP and DCGAN networks, the four losses, the gradient penalty and a step function for the shared trainer.

The math is derived in notebook 01 (value function, optimal discriminator, saturating vs non-saturating
loss, WGAN-GP), the first image GAN is trained in notebook 02 and the DCGAN in notebook 03.

Conventions: a discriminator (判别器) returns *logits* ``(N,)``, never probabilities, so every loss goes
through ``softplus`` (``log sigmoid(a) = -softplus(-a)``) and is stable in fp16/bf16. A generator (生成器)
maps ``z ~ N(0, I)`` of shape ``(N, latent_dim)`` to images in ``[-1, 1]`` (``tanh`` output).
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOSSES = ("minimax", "non-saturating", "hinge", "wgan-gp")


# ----------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class GANConfig:
    """Architecture of a generator/discriminator pair; ``dataclasses.replace`` it for variants."""

    arch: str = "dcgan"  # "dcgan" (strided convolutions) or "mlp" (fully connected, notebook 02)
    image_size: int = 32  # 28, 32 or 64 for "dcgan"; any size for "mlp"
    channels: int = 1  # 1 (digits) or 3 (colour)
    latent_dim: int = 100
    width: int = 64  # DCGAN: channels of the widest-resolution layer (ngf = ndf); MLP: first hidden layer
    d_norm: str = "batch"  # "batch" (DCGAN paper) or "none" (WGAN-GP: the penalty is per sample)
    spectral_norm: bool = False  # spectral normalisation on every D layer (Miyato et al., 2018)
    upsample: str = "transposed"  # DCGAN G: "transposed" (the paper) or "resize" (nearest 2x + 3x3 conv)

    def __post_init__(self) -> None:
        if self.arch not in ("dcgan", "mlp"):
            raise ValueError(f"unknown GAN arch {self.arch!r}: choose 'dcgan' or 'mlp'.")
        if self.arch == "dcgan":
            _dcgan_plan(self.image_size)  # raises for unsupported sizes
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (colour), got {self.channels}.")
        if self.d_norm not in ("batch", "none"):
            raise ValueError(f"d_norm must be 'batch' or 'none', got {self.d_norm!r}.")
        if self.upsample not in ("transposed", "resize"):
            raise ValueError(f"upsample must be 'transposed' or 'resize', got {self.upsample!r}.")
        if self.latent_dim < 1 or self.width < 1:
            raise ValueError("latent_dim and width must be positive.")


def _dcgan_plan(image_size: int) -> tuple[int, int]:
    """(base resolution, number of 2x up/down-sampling layers): 28 = 7*2^2, 32 = 4*2^3, 64 = 4*2^4."""
    plans = {28: (7, 2), 32: (4, 3), 64: (4, 4)}
    if image_size not in plans:
        raise ValueError(f"DCGAN supports image sizes {sorted(plans)}, got {image_size}: resize the data "
                         "(load_digits(size=32)) or use arch='mlp'.")
    return plans[image_size]


def dcgan_init_(module: nn.Module) -> nn.Module:
    """DCGAN initialisation (Radford et al., 2016): conv/linear weights ~ N(0, 0.02), BatchNorm gamma ~ N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


def spectral_norm_(module: nn.Module) -> nn.Module:
    """Spectral normalisation on every conv/linear layer: each layer's largest singular value becomes 1."""
    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(m)
    return module


# ----------------------------------------------------------------------------------------------- networks
def _upsample_2x(ch_in: int, ch_out: int, mode: str) -> list[nn.Module]:
    """A layer that doubles H and W: a 4x4 stride-2 transposed conv, or nearest upsampling + a 3x3 conv.

    In the resize-convolution (Odena, Dumoulin & Olah, 2016) every output pixel applies all nine weights, so a
    constant input stays constant: no checkerboard, whatever the weights (notebook 03)."""
    if mode == "resize":
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch_in, ch_out, 3, 1, 1, bias=False)]
    return [nn.ConvTranspose2d(ch_in, ch_out, 4, 2, 1, bias=False)]  # H_out = (H - 1) * 2 - 2 + 4 = 2H


class DCGANGenerator(nn.Module):
    """z -> image with transposed (or resize-) convolutions, BatchNorm, ReLU and a tanh output (notebook 03)."""

    def __init__(self, cfg: GANConfig) -> None:
        super().__init__()
        base, n_up = _dcgan_plan(cfg.image_size)
        self.latent_dim, self.image_shape = cfg.latent_dim, (cfg.channels, cfg.image_size, cfg.image_size)
        ch = cfg.width * 2 ** (n_up - 1)  # 64 px: 512 -> 256 -> 128 -> 64 -> 3 channels (width 64)
        layers: list[nn.Module] = [  # (N, nz, 1, 1) -> (N, ch, base, base)
            nn.ConvTranspose2d(cfg.latent_dim, ch, base, 1, 0, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(n_up - 1):  # each doubles the resolution and halves the channels
            layers += [*_upsample_2x(ch, ch // 2, cfg.upsample), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [*_upsample_2x(ch, cfg.channels, cfg.upsample), nn.Tanh()]  # (N, C, H, W)
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.view(len(z), -1, 1, 1))  # (N, nz) -> (N, C, H, W) in [-1, 1]


class DCGANDiscriminator(nn.Module):
    """image -> logit with strided convolutions, BatchNorm (not on the first layer) and LeakyReLU(0.2)."""

    def __init__(self, cfg: GANConfig) -> None:
        super().__init__()
        base, n_down = _dcgan_plan(cfg.image_size)
        ch = cfg.width
        norm = cfg.d_norm == "batch" and not cfg.spectral_norm  # spectral norm replaces BatchNorm
        layers: list[nn.Module] = [  # (N, C, H, W) -> (N, width, H/2, W/2); no norm on the input layer
            nn.Conv2d(cfg.channels, ch, 4, 2, 1, bias=not norm), nn.LeakyReLU(0.2, True)]
        for _ in range(n_down - 1):  # each halves the resolution and doubles the channels
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=not norm)]
            layers += [nn.BatchNorm2d(ch * 2)] if norm else []
            layers += [nn.LeakyReLU(0.2, True)]
            ch *= 2
        layers += [nn.Conv2d(ch, 1, base, 1, 0)]  # (N, ch, base, base) -> (N, 1, 1, 1)
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)
        if cfg.spectral_norm:
            spectral_norm_(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).view(-1)  # (N,) logits


class MLPGenerator(nn.Module):
    """z -> image with fully connected layers (notebook 02): nz -> w -> 2w -> 4w -> C*H*W, tanh."""

    def __init__(self, cfg: GANConfig) -> None:
        super().__init__()
        self.latent_dim, self.image_shape = cfg.latent_dim, (cfg.channels, cfg.image_size, cfg.image_size)
        w = cfg.width
        self.net = nn.Sequential(
            nn.Linear(cfg.latent_dim, w), nn.LeakyReLU(0.2, True),
            nn.Linear(w, 2 * w), nn.BatchNorm1d(2 * w), nn.LeakyReLU(0.2, True),
            nn.Linear(2 * w, 4 * w), nn.BatchNorm1d(4 * w), nn.LeakyReLU(0.2, True),
            nn.Linear(4 * w, math.prod(self.image_shape)), nn.Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(len(z), *self.image_shape)  # (N, nz) -> (N, C, H, W)


class MLPDiscriminator(nn.Module):
    """image -> logit with fully connected layers: C*H*W -> 4w -> 2w -> 1, LeakyReLU(0.2), no sigmoid."""

    def __init__(self, cfg: GANConfig) -> None:
        super().__init__()
        w = cfg.width
        self.net = nn.Sequential(
            nn.Flatten(),  # (N, C, H, W) -> (N, C*H*W): the input size is fixed by the config, not by the data
            nn.Linear(cfg.channels * cfg.image_size ** 2, 4 * w), nn.LeakyReLU(0.2, True),
            nn.Linear(4 * w, 2 * w), nn.LeakyReLU(0.2, True),
            nn.Linear(2 * w, 1),
        )
        self.image_shape = (cfg.channels, cfg.image_size, cfg.image_size)
        if cfg.spectral_norm:
            spectral_norm_(self)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"this discriminator takes images of shape {self.image_shape}, got "
                             f"{tuple(x.shape[1:])}: build it with the data's GANConfig(image_size, channels).")
        return self.net(x).view(-1)  # (N,) logits


def build_gan(cfg: GANConfig) -> tuple[nn.Module, nn.Module]:
    """(generator, discriminator) for ``cfg``."""
    if cfg.arch == "mlp":
        return MLPGenerator(cfg), MLPDiscriminator(cfg)
    return DCGANGenerator(cfg), DCGANDiscriminator(cfg)


def gan_optimizers(generator: nn.Module, discriminator: nn.Module, lr_g: float = 2e-4, lr_d: float = 2e-4,
                   betas: tuple[float, float] = (0.5, 0.999)) -> dict[str, torch.optim.Optimizer]:
    """Adam for G and D (DCGAN: lr 2e-4, beta1 0.5); ``lr_d > lr_g`` is the two time-scale rule (TTUR).

    Measured in notebook 03 on the BatchNorm DCGAN: TTUR 2:1 is within noise of equal rates, 4:1 is worse."""
    # fused Adam: one kernel for all parameters instead of a loop over them (CPU and CUDA in torch >= 2.4)
    return {"G": torch.optim.Adam(generator.parameters(), lr=lr_g, betas=betas, fused=True),
            "D": torch.optim.Adam(discriminator.parameters(), lr=lr_d, betas=betas, fused=True)}


# ----------------------------------------------------------------------------------------------- losses
def _check_loss(kind: str) -> None:
    if kind not in LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}: choose one of {', '.join(LOSSES)}.")


def discriminator_loss(kind: str, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """D's loss to *minimise* for ``kind`` (notebook 01); add ``gradient_penalty`` yourself for WGAN-GP."""
    _check_loss(kind)
    if kind in ("minimax", "non-saturating"):
        # D maximises V = E[log D(x)] + E[log(1 - D(G(z)))]  <=>  minimises softplus(-D(x)) + softplus(D(G(z)))
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if kind == "hinge":
        # Lim & Ye (2017): E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    # WGAN critic (Arjovsky et al., 2017): maximise E[D(x)] - E[D(G(z))]; needs a Lipschitz constraint
    return fake_logits.mean() - real_logits.mean()


def generator_loss(kind: str, fake_logits: Tensor) -> Tensor:
    """G's loss to *minimise* for ``kind`` (notebook 01)."""
    _check_loss(kind)
    if kind == "minimax":
        # Goodfellow et al. (2014), eq. 1: G minimises E[log(1 - D(G(z)))] = -softplus(D(G(z))).
        # Its gradient vanishes when D confidently rejects the fakes, i.e. early in training.
        return -F.softplus(fake_logits).mean()
    if kind == "non-saturating":
        # G maximises E[log D(G(z))]  <=>  minimises softplus(-D(G(z))): strong gradients when D(G(z)) ~ 0
        return F.softplus(-fake_logits).mean()
    return -fake_logits.mean()  # hinge and WGAN: G maximises E[D(G(z))]


def gradient_penalty(discriminator: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP penalty E[(||grad_x D(x_hat)||_2 - 1)^2] on x_hat between real and fake (Gulrajani et al., 2017)."""
    eps = torch.rand(len(real), *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)  # (N, ...) on the segment
    (grad,) = torch.autograd.grad(discriminator(x_hat).sum(), x_hat, create_graph=True)  # keep for D's backward
    return ((grad.flatten(1).float().norm(dim=1) - 1) ** 2).mean()  # eq. 3, the two-sided penalty


@contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Turn off ``requires_grad`` inside the block: G's update then puts no gradients into D."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


# ----------------------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class GANStep:
    """One GAN training step for :class:`aigc_lib.train.Trainer` with models and optimizers named "G" and "D".

    Each call updates D once on a real batch and a fresh fake batch, then (every ``d_steps`` calls) G once.
    """

    latent_dim: int
    loss: str = "non-saturating"
    gp_weight: float = 10.0  # lambda in WGAN-GP; only used with loss="wgan-gp"
    d_steps: int = 1  # D updates per G update (WGAN-GP paper: 5)

    def __post_init__(self) -> None:
        _check_loss(self.loss)
        if self.d_steps < 1:
            raise ValueError(f"d_steps must be >= 1, got {self.d_steps}.")

    def __call__(self, trainer: Any, batch: Any) -> dict[str, Tensor]:
        real = batch[0] if isinstance(batch, (tuple, list)) else batch  # labels, if any, are not used
        G, D = trainer.models["G"], trainer.models["D"]
        update_g = trainer.step % self.d_steps == 0  # trainer.step counts the steps already done
        z = torch.randn(len(real), self.latent_dim, device=real.device)  # (N, nz)
        with torch.set_grad_enabled(update_g):  # no graph through G when only D learns this step
            fake = G(z)  # (N, C, H, W)

        # 1. Update D: maximise log D(x) + log(1 - D(G(z))) (or the hinge / critic objective).
        #    The fakes are detached: D's loss must not reach G, and G's graph stays intact for step 2.
        real_logits, fake_logits = D(real), D(fake.detach())
        d_loss = discriminator_loss(self.loss, real_logits, fake_logits)
        metrics = {"d_loss": d_loss.detach(), "d_real": real_logits.detach().mean(),
                   "d_fake": fake_logits.detach().mean()}
        if self.loss == "wgan-gp":
            penalty = gradient_penalty(D, real, fake)
            d_loss = d_loss + self.gp_weight * penalty
            metrics["gp"] = penalty.detach()
        trainer.backward(d_loss)
        trainer.optimizer_step("D")

        # 2. Update G through the *updated* D (a fresh forward pass, no stale graph), with D frozen.
        if update_g:
            with frozen(D):
                g_loss = generator_loss(self.loss, D(fake))
            trainer.backward(g_loss)
            trainer.optimizer_step("G")
            metrics["g_loss"] = g_loss.detach()
        return metrics


# ----------------------------------------------------------------------------------------------- sampling
def latents(n: int, latent_dim: int, seed: int | None = None, device: torch.device | str = "cpu") -> Tensor:
    """``n`` latent vectors z ~ N(0, I), reproducible when ``seed`` is given."""
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    return torch.randn(n, latent_dim, generator=g).to(device)


@torch.no_grad()
def sample(generator: nn.Module, n: int | None = None, *, z: Tensor | None = None, seed: int | None = None,
           latent_dim: int | None = None, batch_size: int = 1024) -> Tensor:
    """Samples (N, ...) on the CPU from ``generator`` in eval mode, from ``z`` or from ``n`` fresh latents.

    ``latent_dim`` defaults to ``generator.latent_dim`` (set by the course's generators)."""
    generator = getattr(generator, "_orig_mod", generator)  # a torch.compile wrapper
    device = next(generator.parameters()).device
    if z is None:
        latent_dim = latent_dim or getattr(generator, "latent_dim", None)
        if n is None or latent_dim is None:
            raise ValueError("give n (how many samples) and, for a generator without a latent_dim attribute, "
                             "latent_dim; or give z (the latent vectors).")
        z = latents(n, latent_dim, seed)
    was_training = generator.training
    generator.eval()
    try:
        out = [generator(chunk.to(device)).float().cpu() for chunk in z.split(batch_size)]
    finally:
        generator.train(was_training)
    return torch.cat(out)


def slerp(z0: Tensor, z1: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation (White, 2016): stays on the shell where Gaussian latents live (notebook 03)."""
    cos = F.cosine_similarity(z0, z1, dim=-1).clamp(-1 + 1e-7, 1 - 1e-7)
    omega = torch.acos(cos)[..., None]  # angle between the two vectors
    t = t[:, None]  # (T, 1)
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)  # (T, nz)


def interpolate(z0: Tensor, z1: Tensor, steps: int = 8, spherical: bool = True) -> Tensor:
    """``steps`` latents from ``z0`` to ``z1`` (both (nz,)): slerp by default, else a straight line."""
    t = torch.linspace(0, 1, steps)
    return slerp(z0, z1, t) if spherical else torch.lerp(z0[None], z1[None], t[:, None])


# ----------------------------------------------------------------------------------------------- toy data
def ring_of_gaussians(n: int, modes: int = 8, radius: float = 2.0, std: float = 0.05,
                      seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` 2-D points from ``modes`` Gaussians on a circle, and the centres (notebook 01, mode collapse)."""
    g = torch.Generator().manual_seed(seed)
    angles = torch.arange(modes) * 2 * math.pi / modes
    centers = radius * torch.stack([angles.cos(), angles.sin()], 1)  # (modes, 2)
    which = torch.randint(modes, (n,), generator=g)
    return centers[which] + std * torch.randn(n, 2, generator=g), centers


def modes_covered(samples: Tensor, centers: Tensor, std: float, min_share: float = 0.25) -> dict[str, float]:
    """Modes hit by samples within 3 std of their centre, counting a mode when it gets at least
    ``min_share`` of its fair share (1/modes) of the samples; also the share of such high-quality samples."""
    dist = torch.cdist(samples.float(), centers.float())  # (N, modes)
    nearest, which = dist.min(1)
    good = nearest < 3 * std
    counts = torch.bincount(which[good], minlength=len(centers))
    covered = int((counts >= min_share * len(samples) / len(centers)).sum())
    return {"modes_covered": covered, "num_modes": len(centers), "high_quality": good.float().mean().item()}


def checkerboard_score(images: Tensor, border: int = 2) -> Tensor:
    """Share of each image's power in the period-2 patterns (the Nyquist frequencies of the 2-D FFT), (N,).

    0 for a constant image, 1 for a pure +-1 checkerboard; ``border`` pixels are cut off each side first
    (padding makes the edges of a layer's output differ). Averaged over channels (notebook 03)."""
    x = images.float()[..., border:images.shape[-2] - border, border:images.shape[-1] - border]
    x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]  # even sizes: the Nyquist bin exists
    h, w = x.shape[-2:]
    power = torch.fft.fft2(x).abs() ** 2  # (N, C, h, w)
    nyquist = power[..., h // 2, 0] + power[..., 0, w // 2] + power[..., h // 2, w // 2]  # (N, C)
    total = power.sum((-2, -1)).clamp_min(1e-30)  # (N, C)
    return (nyquist / total).mean(-1)  # (N,)


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def describe_gan(models: Mapping[str, nn.Module]) -> str:
    """One line per model: class and parameter count."""
    return "\n".join(f"{name}: {type(m).__name__}, {count_parameters(m) / 1e6:.2f} M parameters"
                     for name, m in models.items())
