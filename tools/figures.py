"""Architecture figures for the notebooks: drawn with matplotlib, stored as PNG, embedded as cell attachments.

    python tools/figures.py               # draw every figure into notebooks/figures/, then embed them
    python tools/figures.py --only 07_unet  # one figure (and embed only that one)
    python tools/figures.py --check       # exit 1 if a stored figure or an embedded attachment is stale

Notebooks are stored without outputs, so a reader on GitHub or in a Colab preview sees no picture that a code
cell would draw. These diagrams live instead in markdown cells, as **attachments** (nbformat 4:
``cell["attachments"]["07_unet.png"] = {"image/png": "<base64>"}``, referenced as
``![alt text](attachment:07_unet.png)``), which GitHub, Colab and Jupyter all render; relative image links do not
render in the first two. To use a figure, write that reference in a markdown cell and run this script: it fills
in every referenced attachment from ``notebooks/figures/``.

One function per figure, named after the file (``fig_07_unet`` writes ``07_unet.png``). Sizes that the library
defines (layer shapes, channels, context lengths) are read from ``aigc_lib``; nothing is trained or downloaded.
The output is deterministic: fixed fonts (DejaVu Sans, which ships with matplotlib), seeded NumPy, no
timestamps or software versions in the PNG metadata.
"""
from __future__ import annotations

import argparse
import base64
import io
import itertools
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Circle, FancyBboxPatch, Polygon, Rectangle, RegularPolygon
from PIL import Image
from PIL.PngImagePlugin import PngInfo

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python tools/figures.py` from anywhere: import aigc_lib from this checkout
    sys.path.insert(0, str(REPO))
NOTEBOOKS = REPO / "notebooks"
FIGURES = NOTEBOOKS / "figures"
DPI = 100  # one layout unit = 0.1 inch = 10 px
ATTACHMENT = re.compile(r"attachment:([A-Za-z0-9_.\-]+\.png)")

# one colour per kind of thing, the same in every figure
DATA = "#dbe9f6"  # tensors and data
NET = "#fde3c3"  # networks and layers
LOSS = "#f9d2d2"  # losses
TEXTC = "#eadcf5"  # text side (tokenizer, text encoder)
FROZEN = "#e4e4e4"  # frozen weights
TRAIN = "#d3efd3"  # trainable weights (LoRA, adapters)
NOTE = "#555555"  # grey annotation text
EDGE = "#444444"


def _style() -> None:
    plt.rcParams.update({
        "font.family": "DejaVu Sans", "font.size": 10, "mathtext.fontset": "dejavusans",
        "figure.facecolor": "white", "savefig.facecolor": "white", "axes.unicode_minus": True,
        "path.simplify": True, "hatch.linewidth": 0.6,
    })


def canvas(width_in: float, height_in: float) -> tuple[plt.Figure, plt.Axes]:
    """A blank figure whose data coordinates are tenths of an inch: (0, 0) bottom left."""
    fig = plt.figure(figsize=(width_in, height_in), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width_in * 10)
    ax.set_ylim(0, height_in * 10)
    ax.set_axis_off()
    return fig, ax


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def left(self) -> tuple[float, float]:
        return (self.x, self.y + self.h / 2)

    @property
    def right(self) -> tuple[float, float]:
        return (self.x + self.w, self.y + self.h / 2)

    @property
    def top(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y + self.h)

    @property
    def bottom(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y)

    @property
    def center(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y + self.h / 2)


def box(ax: plt.Axes, x: float, y: float, w: float, h: float, text: str = "", *, fc: str = NET, ec: str = EDGE,
        fs: float = 10, weight: str = "normal", lw: float = 1.2, ls: str = "-", round_: float = 0.8,
        color: str = "black", zorder: float = 2) -> Box:
    """A rounded box with centred text; (x, y) is its lower-left corner."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle=f"round,pad=0,rounding_size={round_}", fc=fc, ec=ec, lw=lw,
                                ls=ls, zorder=zorder))
    if text:
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fs, weight=weight, color=color,
                zorder=zorder + 0.1, linespacing=1.25)
    return Box(x, y, w, h)


def arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float], *, color: str = EDGE, lw: float = 1.4,
          ls: str = "-", rad: float = 0.0, head: float = 12, zorder: float = 3, style: str = "-|>") -> None:
    """An arrow from start to end (data units); rad bends it."""
    ax.annotate("", xy=end, xytext=start, zorder=zorder,
                arrowprops={"arrowstyle": style, "color": color, "lw": lw, "ls": ls, "shrinkA": 0, "shrinkB": 0,
                            "mutation_scale": head, "connectionstyle": f"arc3,rad={rad}"})


def polyline(ax: plt.Axes, points: list[tuple[float, float]], *, color: str = EDGE, lw: float = 1.4, ls: str = "-",
             head: bool = True, zorder: float = 3) -> None:
    """Straight segments through points, with an arrow head on the last one."""
    xs, ys = zip(*points)
    ax.plot(xs[:-1] if head else xs, ys[:-1] if head else ys, color=color, lw=lw, ls=ls, zorder=zorder,
            solid_capstyle="round")
    if head:
        ax.plot(xs[-2:], ys[-2:], color=color, lw=0, zorder=zorder)
        arrow(ax, points[-2], points[-1], color=color, lw=lw, ls=ls, zorder=zorder)


def label(ax: plt.Axes, x: float, y: float, text: str, *, fs: float = 9, color: str = NOTE, ha: str = "center",
          va: str = "center", **kw) -> None:
    ax.text(x, y, text, fontsize=fs, color=color, ha=ha, va=va, linespacing=1.25, zorder=4, **kw)


def title(ax: plt.Axes, text: str, sub: str = "") -> None:
    y1 = ax.get_ylim()[1]
    ax.text(2, y1 - 2.2, text, fontsize=13.5, weight="bold", ha="left", va="center")
    if sub:
        ax.text(2, y1 - 5.0, sub, fontsize=9.5, color=NOTE, ha="left", va="center")


def plus(ax: plt.Axes, x: float, y: float, r: float = 1.3) -> Box:
    """A summation node (circle with +)."""
    ax.add_patch(Circle((x, y), r, fc="white", ec=EDGE, lw=1.3, zorder=3))
    ax.text(x, y - 0.05, "+", ha="center", va="center", fontsize=12, zorder=4)
    return Box(x - r, y - r, 2 * r, 2 * r)


def thumbnail(ax: plt.Axes, image: np.ndarray, x: float, y: float, size: float, cmap: str = "gray") -> Box:
    """Show a small image (H, W) or (H, W, 3) with its lower-left corner at (x, y)."""
    ax.imshow(image, cmap=cmap, vmin=0, vmax=1, extent=(x, x + size, y, y + size), interpolation="nearest",
              zorder=2)
    ax.add_patch(Rectangle((x, y), size, size, fill=False, ec=EDGE, lw=0.8, zorder=3))
    return Box(x, y, size, size)


# ------------------------------------------------------------------------------------------ 00 concept map
def fig_00_concept_map() -> plt.Figure:
    """Model families x modalities, with the course chapters that build each cell and famous examples."""
    fig, ax = canvas(12, 7.0)
    title(ax, "Generative model families \u00d7 modalities",
          "Each cell: well-known models of that family for that modality; the badge names the course chapter that "
          "builds it.")
    modalities = ["text", "image", "audio", "video", "3D"]
    families = [
        ("Autoregressive", "next token given the past:\n$p(x)=\\Pi_i\\, p(x_i\\mid x_{<i})$"),
        ("VAE", "encoder \u2192 latent \u2192 decoder,\nlower bound on $\\log p(x)$"),
        ("GAN", "generator vs discriminator,\nno likelihood"),
        ("Normalizing flow", "invertible maps,\nexact $\\log p(x)$"),
        ("Diffusion", "learn to remove noise,\nstep by step"),
    ]
    # (family, modality) -> (examples, badge, planned?)
    cells: dict[tuple[int, int], tuple[str, str, bool]] = {
        (0, 0): ("GPT-2, GPT-4 / ChatGPT,\nLlama", "04\u201306", False),
        (0, 1): ("DALL\u00b7E 1, Parti,\nImage GPT", "", False),
        (0, 2): ("WaveNet, MusicGen,\nJukebox (AR prior)", "13 planned", True),
        (0, 3): ("VideoGPT, VideoPoet", "", False),
        (0, 4): ("PolyGen (meshes)", "", False),
        (1, 0): ("Sentence VAE\n(Bowman et al., 2016)", "", False),
        (1, 1): ("VAE, VQ-VAE-2;\nthe latent autoencoder\nof Stable Diffusion", "08", False),
        (1, 2): ("the VAE inside AudioLDM", "", False),
        (2, 0): ("rarely used: tokens are\ndiscrete, no gradient\nthrough sampling", "", False),
        (2, 1): ("DCGAN, StyleGAN, BigGAN", "01\u201303", False),
        (2, 2): ("HiFi-GAN, MelGAN\n(vocoders)", "", False),
        (2, 3): ("MoCoGAN", "", False),
        (2, 4): ("EG3D (3D-aware GAN)", "", False),
        (3, 1): ("RealNVP, Glow", "", False),
        (3, 2): ("WaveGlow", "", False),
        (3, 3): ("VideoFlow", "", False),
        (3, 4): ("PointFlow (point clouds)", "", False),
        (4, 0): ("Diffusion-LM", "", False),
        (4, 1): ("Stable Diffusion, Imagen,\nDALL\u00b7E 2 / 3", "07\u201309", False),
        (4, 2): ("DiffWave, AudioLDM", "13 planned", True),
        (4, 3): ("Sora, Stable Video\nDiffusion", "", False),
        (4, 4): ("DreamFusion (2D diffusion\n+ NeRF), Point-E", "", False),
    }
    x0, head_w, col_w, gap = 2, 23, 18.0, 0.6
    y_top, head_h, row_h = 63.2, 4.5, 9.4
    for j, name in enumerate(modalities):
        box(ax, x0 + head_w + gap + j * (col_w + gap), y_top - head_h, col_w, head_h, name, fc="#33506e",
            ec="#33506e", color="white", weight="bold", fs=11, round_=0.5)
    for i, (family, idea) in enumerate(families):
        y = y_top - head_h - gap - (i + 1) * row_h - i * gap
        box(ax, x0, y, head_w, row_h, "", fc="#f1f1f1", ec="#bbbbbb", round_=0.5)
        ax.text(x0 + 1.2, y + row_h - 2.2, family, fontsize=11, weight="bold", ha="left", va="center")
        ax.text(x0 + 1.2, y + row_h / 2 - 1.6, idea, fontsize=8.4, color=NOTE, ha="left", va="center",
                linespacing=1.3)
        for j in range(len(modalities)):
            x = x0 + head_w + gap + j * (col_w + gap)
            examples, badge, planned = cells.get((i, j), ("", "", False))
            built = bool(badge) and not planned
            box(ax, x, y, col_w, row_h, "", fc=TRAIN if built else ("#f3fbf3" if planned else "white"),
                ec="#9aa" if examples else "#dddddd", round_=0.5, lw=1.0)
            if examples:
                italic = examples.startswith("rarely")
                ax.text(x + 1.0, y + row_h - 1.3, examples, fontsize=8.6, ha="left", va="top", linespacing=1.3,
                        color=NOTE if italic else "#222222", style="italic" if italic else "normal")
            if badge:
                bw = 2.2 + 0.62 * len(badge)
                box(ax, x + col_w - bw - 0.6, y + 0.6, bw, 2.8, badge, fc="white" if planned else "#2e7d32",
                    ec="#2e7d32", color="#2e7d32" if planned else "white", fs=8.5, weight="bold",
                    ls="--" if planned else "-", round_=0.6)
    # legend
    ly = 3.4
    box(ax, 26.6, ly - 1.4, 5.0, 2.8, "03", fc="#2e7d32", ec="#2e7d32", color="white", fs=8.5, weight="bold",
        round_=0.6)
    label(ax, 32.6, ly, "chapter of this course that builds it", ha="left", color="#222222")
    box(ax, 62, ly - 1.4, 8.4, 2.8, "13 planned", fc="white", ec="#2e7d32", color="#2e7d32", fs=8.5, weight="bold",
        ls="--", round_=0.6)
    label(ax, 71.4, ly, "a planned chapter", ha="left", color="#222222")
    label(ax, 88, ly, "Many systems mix families: SD = VAE + diffusion;\nJukebox = VQ-VAE + autoregressive prior.",
          ha="left", fs=8.3)
    return fig


# ------------------------------------------------------------------------------------------ 01 GAN loop
def fig_01_gan_loop() -> plt.Figure:
    """One GAN training step: D's update on real and detached fake, then G's update through D."""
    fig, ax = canvas(11.5, 5.6)
    title(ax, "The GAN training loop: two players, two optimizers, one step each",
          "D outputs a logit; D(x) below means the probability \u03c3(logit) that x is real.")
    z = box(ax, 2, 28, 13, 8, "noise $z\\sim\\mathcal{N}(0,I)$\n(N, latent_dim)", fc=DATA, fs=9.5)
    g = box(ax, 19, 28, 11, 8, "G\ngenerator", fc=NET, weight="bold")
    fake = box(ax, 34, 28, 12, 8, "fake\n$\\tilde x = G(z)$", fc=DATA)
    real = box(ax, 34, 8, 12, 8, "real $x$\nfrom the data", fc=DATA)
    d = box(ax, 52, 17, 11.5, 8, "D\ndiscriminator", fc=NET, weight="bold", fs=9.5)
    arrow(ax, z.right, g.left)
    arrow(ax, g.right, fake.left)
    polyline(ax, [fake.right, (49.5, 32), (49.5, 23), (d.x, 23)])
    polyline(ax, [real.right, (49.5, 12), (49.5, 19), (d.x, 19)])
    # detach marker on the fake branch (D's step only)
    ax.plot([46.6, 48.8], [33.1, 30.9], color="#c62828", lw=2.2, zorder=5)
    ax.plot([46.6, 48.8], [30.9, 33.1], color="#c62828", lw=2.2, zorder=5)
    label(ax, 48, 37.4, "D's step: fake.detach()\n(no gradient into G)", color="#c62828", fs=8.6)
    label(ax, d.x + d.w / 2, d.y - 3.2, "logits for\n$D(x)$ and $D(G(z))$", fs=8.6)
    # gradient path for G's step
    arrow(ax, (d.x, 20.6), (g.x + g.w / 2, g.y), color="#2e7d32", ls="--", rad=-0.08, lw=1.6)
    label(ax, 24, 20.8, "G's step: the gradient of $L_G$\nflows back through D into G", color="#2e7d32", fs=8.6)

    # right: the two updates, in order
    p1 = box(ax, 65, 27.5, 48, 20, "", fc="#fff6f6", ec="#c62828", lw=1.4)
    ax.text(p1.x + 1.5, p1.y + p1.h - 2.3, "1. Update D (G fixed)", fontsize=11, weight="bold", color="#c62828",
            va="center")
    ax.text(p1.x + 1.5, p1.y + p1.h - 6.6,
            "$L_D = -\\log D(x) - \\log\\,(1 - D(\\tilde x))$,   $\\tilde x$ = G(z).detach()",
            fontsize=10, va="center")
    ax.text(p1.x + 1.5, p1.y + p1.h - 10.6, "maximise $\\log D(x) + \\log(1-D(G(z)))$: real \u2192 1, fake \u2192 0",
            fontsize=9, color=NOTE, va="center")
    ax.text(p1.x + 1.5, p1.y + 3.6, "opt_D.zero_grad();  L_D.backward();  opt_D.step()", fontsize=9.2,
            family="DejaVu Sans Mono", va="center")
    p2 = box(ax, 65, 4, 48, 20, "", fc="#f4fbf4", ec="#2e7d32", lw=1.4)
    ax.text(p2.x + 1.5, p2.y + p2.h - 2.3, "2. Update G (D is not stepped)", fontsize=11, weight="bold",
            color="#2e7d32", va="center")
    ax.text(p2.x + 1.5, p2.y + p2.h - 6.6, "$L_G = -\\log D(G(z))$   (non-saturating)", fontsize=10, va="center")
    ax.text(p2.x + 1.5, p2.y + p2.h - 10.6,
            "instead of minimising $\\log(1-D(G(z)))$, whose gradient vanishes\nwhile D wins (early on); a fresh pass of D on G(z), no detach",
            fontsize=9, color=NOTE, va="center")
    ax.text(p2.x + 1.5, p2.y + 3.0, "opt_G.zero_grad();  L_G.backward();  opt_G.step()", fontsize=9.2,
            family="DejaVu Sans Mono", va="center")
    arrow(ax, (p1.x + 8, p1.y), (p2.x + 8, p2.y + p2.h), lw=1.6)
    label(ax, p1.x + 9.5, p1.y - 1.7, "then", ha="left", fs=8.6)
    label(ax, 33, 5.5, "repeat for every batch; each loss gets its own optimizer", fs=9)
    return fig


# ------------------------------------------------------------------------------------------ 02 MLP GAN
def _trace(module, x) -> list[tuple[list, tuple[int, ...]]]:
    """Group a Sequential into (layers ending in an activation, output shape) with a forward pass."""
    import torch

    groups, current = [], []
    module.eval()
    with torch.no_grad():
        for layer in module:
            x = layer(x)
            current.append(layer)
            if type(layer).__name__ in ("ReLU", "LeakyReLU", "Tanh", "Sigmoid") or layer is module[-1]:
                groups.append((current, tuple(x.shape[1:])))
                current = []
    return groups


def _layer_text(layers: list) -> str:
    parts = []
    for m in layers:
        kind = type(m).__name__
        if kind in ("Conv2d", "ConvTranspose2d"):
            short = "ConvT" if kind == "ConvTranspose2d" else "Conv"
            k, s, p = m.kernel_size[0], m.stride[0], m.padding[0]
            parts.append(f"{short} {k}\u00d7{k}, s{s} p{p}")
        elif kind == "Linear":
            parts.append(f"Linear {m.in_features}\u2192{m.out_features}")
        elif kind.startswith("BatchNorm"):
            parts.append("BatchNorm")
        elif kind == "LeakyReLU":
            parts.append(f"LeakyReLU({m.negative_slope:g})")
        elif kind in ("ReLU", "Tanh", "Sigmoid"):
            parts.append(kind)
    return "\n".join(parts)


def fig_02_mlp_gan() -> plt.Figure:
    """Chapter 02's fully connected G and D, with the sizes aigc_lib.gan builds for the quick profile."""
    import torch

    from aigc_lib.gan import GANConfig, MLPDiscriminator, MLPGenerator

    cfg = GANConfig(arch="mlp", image_size=28, channels=1, latent_dim=64, width=128)
    G, D = MLPGenerator(cfg), MLPDiscriminator(cfg)
    g_groups = _trace(G.net, torch.zeros(2, cfg.latent_dim))
    d_groups = _trace(D.net, torch.zeros(2, cfg.channels, cfg.image_size, cfg.image_size))
    fig, ax = canvas(11.5, 4.8)
    title(ax, "Chapter 02: a fully connected GAN on 28\u00d728 digits",
          f"Sizes from aigc_lib.gan for latent_dim {cfg.latent_dim}, width w = {cfg.width} (quick profile; smoke "
          "64, full 256): G is nz \u2192 w \u2192 2w \u2192 4w \u2192 784, D is 784 \u2192 4w \u2192 2w \u2192 1.")

    def row(groups, start_text, y, name):
        ax.text(2, y + 9.6, name, fontsize=11.5, weight="bold", va="center")
        prev = box(ax, 2, y, 9, 7, start_text, fc=DATA, fs=9)
        for layers, shape in groups:
            dim = int(np.prod(shape))
            bx = box(ax, prev.x + prev.w + 1.5, y - 0.5, 13, 8,
                     _layer_text([m for m in layers if type(m).__name__ != "Flatten"]), fc=NET, fs=8.3)
            arrow(ax, prev.right, bx.left)
            out = box(ax, bx.x + bx.w + 1.5, y + 1.5, 5.5, 4, f"{dim:,}", fc=DATA, fs=8.8)
            arrow(ax, bx.right, out.left)
            prev = out
        return prev

    last = row(g_groups, f"$z$\n({cfg.latent_dim},)", 27, "Generator G")
    img = box(ax, last.x + last.w + 2.5, 27, 9.5, 7, "view\n(1, 28, 28)", fc=DATA, fs=9)
    arrow(ax, last.right, img.left)
    last = row(d_groups, "image\n(1, 28, 28)\nflatten", 9, "Discriminator D")
    label(ax, last.x + last.w + 1.5, last.y + last.h / 2, "one logit per image (no sigmoid:\n"
          "the loss applies it, stably)", ha="left", fs=8.6)
    label(ax, 2, 2.6, "The flat 784 = 1\u00b728\u00b728 is fixed by the config: a 3\u00d764\u00d764 colour image "
          "needs GANConfig(image_size=64, channels=3), not the same Linear(784, \u2026).", ha="left", fs=8.8)
    return fig


# ------------------------------------------------------------------------------------------ 03 DCGAN ladder
def fig_03_dcgan_ladder() -> plt.Figure:
    """The DCGAN generator ladder and its discriminator mirror, shapes from aigc_lib.gan."""
    import torch

    from aigc_lib.gan import DCGANDiscriminator, DCGANGenerator, GANConfig

    cfg = GANConfig(image_size=32, channels=1, width=64)
    G, D = DCGANGenerator(cfg), DCGANDiscriminator(cfg)
    g_groups = _trace(G.net, torch.zeros(2, cfg.latent_dim, 1, 1))
    d_groups = _trace(D.net, torch.zeros(2, cfg.channels, cfg.image_size, cfg.image_size))
    fig, ax = canvas(11.8, 7.0)
    title(ax, "DCGAN: the generator ladder and the discriminator mirror",
          f"Shapes from aigc_lib.gan for 32\u00d732 digits, width {cfg.width} (chapter 03's full profile; smoke "
          "and quick use width 16 and 32: every channel count \u00d71/4, \u00d71/2).")

    def slab(x, y_mid, shape, fc):
        """A block whose height follows the spatial size and whose depth follows log2(channels)."""
        c, h = shape[0], shape[1]
        height, width, d = 2.5 + 0.42 * h, 0.8 + 0.9 * np.log2(max(c, 1)), 1.1
        top, bot = y_mid + height / 2, y_mid - height / 2
        ax.add_patch(Polygon([(x, top), (x + d, top + d), (x + width + d, top + d), (x + width, top)],
                             fc="#f3c98e" if fc == NET else "#b9d3ea", ec=EDGE, lw=0.8, zorder=2))
        ax.add_patch(Polygon([(x + width, bot), (x + width + d, bot + d), (x + width + d, top + d), (x + width, top)],
                             fc="#e8b46a" if fc == NET else "#9dbfdf", ec=EDGE, lw=0.8, zorder=2))
        ax.add_patch(Rectangle((x, bot), width, height, fc=fc, ec=EDGE, lw=0.8, zorder=2))
        label(ax, x + width / 2 + d / 2, bot - 1.8, "\u00d7".join(map(str, shape)), fs=8.8, color="#222222")
        return Box(x, bot, width + d, height)

    def ladder(groups, first_shape, y_mid, x_start, gap, first_label):
        shapes = [first_shape] + [s if len(s) == 3 else (s[0], 1, 1) for _, s in groups]
        prev = slab(x_start, y_mid, shapes[0], DATA)
        label(ax, prev.x + prev.w / 2, prev.y + prev.h + 3.4, first_label, fs=8.6, color="#222222")
        x = prev.x + prev.w
        for (layers, _), shape in zip(groups, shapes[1:]):
            nxt = slab(x + gap, y_mid, shape, NET)
            arrow(ax, (x + 0.5, y_mid), (nxt.x - 0.5, y_mid), lw=1.3)
            label(ax, x + gap / 2, y_mid + 0.9, _layer_text(layers), fs=7.9, color="#222222", va="bottom")
            prev, x = nxt, nxt.x + nxt.w
        return prev

    ax.text(2, 59.5, "Generator G: z \u2192 image", fontsize=11.5, weight="bold", va="center")
    ladder(g_groups, (cfg.latent_dim, 1, 1), 46, 3, 13.5, "z reshaped\nto 100\u00d71\u00d71")
    label(ax, 93, 48, "ConvTranspose2d doubles\nthe size and halves the\nchannels; BatchNorm + ReLU\n"
          "inside, Tanh at the output\n(pixels in [\u22121, 1])", ha="left", fs=8.4)
    ax.text(2, 31.5, "Discriminator D: image \u2192 one logit (the mirror)", fontsize=11.5, weight="bold",
            va="center")
    ladder(d_groups, (cfg.channels, cfg.image_size, cfg.image_size), 14.5, 3, 13.5, "image\n(real or fake)")
    label(ax, 93, 16, "strided Conv2d halves the\nsize (no pooling);\nLeakyReLU(0.2); no BatchNorm\n"
          "on the input layer; no\nsigmoid (D returns logits)", ha="left", fs=8.4)
    return fig


# ------------------------------------------------------------------------------------------ 04 attention
def fig_04_causal_attention() -> plt.Figure:
    """Scaled dot-product attention with the causal mask, next to a pre-norm GPT-2 block."""
    from aigc_lib.lm import GPT_SIZES, GPTConfig

    small, tiny = GPTConfig(), GPTConfig.from_name("tiny")
    assert GPT_SIZES["tiny"]["n_embd"] == tiny.n_embd
    fig, ax = canvas(12, 7.2)
    title(ax, "Causal self-attention and the GPT block",
          "$\\mathrm{Attention}(Q,K,V)=\\mathrm{softmax}\\left(QK^\\top/\\sqrt{d_k}+M\\right)V$,"
          "  with $M_{ij}=0$ if $j\\leq i$ and $-\\infty$ if $j>i$ (no peeking at later tokens)")
    T = 5
    rng = np.random.default_rng(4)
    scores = rng.normal(0, 1.2, (T, T))
    masked = np.where(np.tril(np.ones((T, T))) > 0, scores, -np.inf)
    weights = np.exp(masked - masked.max(1, keepdims=True))
    weights /= weights.sum(1, keepdims=True)
    cell = 2.7
    tokens = ["The", "cat", "sat", "on", "a"]

    def grid(x, y, values, kind, heading):
        for i in range(T):
            for j in range(T):
                v = values[i, j]
                cx, cy = x + j * cell, y + (T - 1 - i) * cell
                if kind == "scores":
                    fc = plt.cm.RdBu_r(0.5 + np.clip(v, -2.5, 2.5) / 7.5)
                    txt = f"{v:.1f}"
                elif kind == "mask":
                    fc = "#eeeeee" if j > i else "white"
                    txt = "\u2212\u221e" if j > i else "0"
                else:
                    fc = "#f2f2f2" if j > i else plt.cm.Greens(0.1 + 0.8 * v)
                    txt = "0" if j > i else f"{v:.2f}"
                ax.add_patch(Rectangle((cx, cy), cell, cell, fc=fc, ec="#999999", lw=0.6, zorder=2))
                dark = (kind == "weights" and j <= i and v > 0.6) or (kind == "scores" and abs(v) > 1.7)
                ax.text(cx + cell / 2, cy + cell / 2, txt, ha="center", va="center", fontsize=6.8 if kind != "mask"
                        else 8, color="white" if dark else ("#999999" if j > i and kind != "scores" else "#222222"),
                        zorder=3)
        label(ax, x + T * cell / 2, y + T * cell + 1.6, heading, fs=9, color="#222222")
        return Box(x, y, T * cell, T * cell)

    y0 = 22
    gx = 9
    for i, tok in enumerate(tokens):
        label(ax, gx - 0.6, y0 + (T - 1 - i) * cell + cell / 2, tok, ha="right", fs=8.2)
        label(ax, gx + i * cell + cell / 2, y0 - 1.3, tok, fs=8.2)
    s = grid(gx, y0, scores, "scores", "$QK^\\top/\\sqrt{d_k}$")
    label(ax, gx - 5.5, y0 + T * cell / 2, "query i", rotation=90, fs=8.5)
    label(ax, gx + T * cell / 2, y0 - 3.4, "key j", fs=8.5)
    plus_node = plus(ax, s.x + s.w + 2.8, y0 + T * cell / 2, r=1.2)
    m = grid(s.x + s.w + 5.6, y0, np.zeros((T, T)), "mask", "causal mask $M$")
    arrow(ax, (m.x + m.w + 0.6, y0 + T * cell / 2), (m.x + m.w + 5.2, y0 + T * cell / 2))
    label(ax, m.x + m.w + 2.9, y0 + T * cell / 2 + 2.2, "softmax\nper row", fs=8.2)
    w = grid(m.x + m.w + 5.8, y0, weights, "weights", "attention weights")
    label(ax, w.x + w.w / 2, y0 - 3.4, "each row sums to 1", fs=8.5)
    arrow(ax, (w.x + w.w + 0.6, y0 + T * cell / 2), (w.x + w.w + 4.2, y0 + T * cell / 2))
    out = box(ax, w.x + w.w + 4.4, y0 + T * cell / 2 - 3.5, 9, 7, "weights @ V\n(B, nh, T, hs)", fc=DATA, fs=8.5)
    del plus_node
    # Q, K, V from x
    qy = 47
    xb = box(ax, 2, qy, 12, 6, "x  (B, T, C)", fc=DATA, fs=9)
    proj = box(ax, 18, qy, 16, 6, "one Linear C \u2192 3C\nsplit into Q, K, V", fc=NET, fs=8.5)
    heads = box(ax, 38, qy, 26, 6, "Q, K, V: (B, nh, T, hs)\nnh heads of hs = C / nh dimensions", fc=DATA, fs=8.5)
    arrow(ax, xb.right, proj.left)
    arrow(ax, proj.right, heads.left)
    arrow(ax, (heads.x + 5, heads.y), (s.x + s.w / 2 + 2, s.y + s.h + 3.2))
    label(ax, heads.x + 0.8, heads.y - 2.6, "Q, K", fs=8.4, color="#222222")
    arrow(ax, (heads.x + heads.w - 3, heads.y), (out.x + out.w / 2, out.y + out.h))
    label(ax, heads.x + heads.w - 0.4, heads.y - 2.6, "V", fs=8.4, color="#222222")
    label(ax, 2, 12.5, f"One head shown, T = {T} tokens. Heads run in parallel; their outputs are concatenated "
          "back to (B, T, C)\nand projected by a Linear C \u2192 C. In code one call does the maths: "
          "F.scaled_dot_product_attention(q, k, v, is_causal=True).", ha="left", fs=8.6)
    label(ax, 2, 5.0, f"GPT-2 small (GPTConfig() defaults): n_layer {small.n_layer}, n_head {small.n_head}, "
          f"C = n_embd {small.n_embd}, vocabulary {small.vocab_size:,}, context {small.block_size}.\n"
          "The course's \"tiny\" size: "
          f"n_layer {tiny.n_layer}, n_head {tiny.n_head}, n_embd {tiny.n_embd}, context {tiny.block_size}.",
          ha="left", fs=8.6)

    # right: the GPT-2 block, bottom to top
    cx, bw = 100, 24
    xs = cx - bw / 2
    emb = box(ax, xs, 3, bw, 5.2, "token + position embeddings\n(B, T, C)", fc=DATA, fs=8.4)
    ln1 = box(ax, xs + 3, 12.5, bw - 6, 4, "LayerNorm", fc=NET, fs=9)
    att = box(ax, xs + 3, 19.5, bw - 6, 5.4, "causal self-attention\n(n_head heads)", fc=NET, fs=8.6)
    p1 = plus(ax, cx, 28.6)
    ln2 = box(ax, xs + 3, 32.6, bw - 6, 4, "LayerNorm", fc=NET, fs=9)
    mlp = box(ax, xs + 3, 39.6, bw - 6, 5.4, "MLP: C \u2192 4C \u2192 C\nGELU", fc=NET, fs=8.6)
    p2 = plus(ax, cx, 48.6)
    head = box(ax, xs, 52.6, bw, 5.2, "final LayerNorm \u2192 lm_head\n(tied) \u2192 logits (B, T, V)", fc=DATA,
               fs=8.4)
    arrow(ax, emb.top, ln1.bottom)
    arrow(ax, ln1.top, att.bottom)
    arrow(ax, att.top, (cx, p1.y))
    arrow(ax, (cx, p1.y + p1.h), ln2.bottom)
    arrow(ax, ln2.top, mlp.bottom)
    arrow(ax, mlp.top, (cx, p2.y))
    arrow(ax, (cx, p2.y + p2.h), head.bottom)
    # residual streams
    polyline(ax, [(cx, 10.3), (xs - 1.8, 10.3), (xs - 1.8, 28.6), (p1.x, 28.6)], color="#1565c0")
    polyline(ax, [(cx, 30.8), (xs - 1.8, 30.8), (xs - 1.8, 48.6), (p2.x, 48.6)], color="#1565c0")
    label(ax, xs - 2.6, 19.5, "residual", rotation=90, color="#1565c0", fs=8.4)
    label(ax, xs - 2.6, 39.6, "residual", rotation=90, color="#1565c0", fs=8.4)
    ax.add_patch(FancyBboxPatch((xs - 4.2, 9.6), bw + 6.2, 41.2, boxstyle="round,pad=0,rounding_size=1", fill=False,
                                ec="#888888", ls="--", lw=1.1, zorder=1))
    label(ax, xs + bw + 3.8, 30, "\u00d7 n_layer", rotation=90, fs=9.5, color="#222222")
    label(ax, cx, 64.2, "GPT-2 block (pre-norm)", fs=11, color="#222222", weight="bold")
    label(ax, cx, 61.2, "$x \\leftarrow x + \\mathrm{Attn}(\\mathrm{LN}(x))$;  "
          "$x \\leftarrow x + \\mathrm{MLP}(\\mathrm{LN}(x))$", fs=9)
    return fig


# ------------------------------------------------------------------------------------------ 05 fine-tuning
def fig_05_gpt2_finetune() -> plt.Figure:
    """Training data path (labels, shift, -100) and the decoding loop of a causal LM."""
    from aigc_lib.lm import IGNORE_INDEX

    fig, ax = canvas(12, 7.4)
    title(ax, "Fine-tuning GPT-2: from text to loss, and from logits to text",
          "Causal language modelling: the logits at position i are scored against the token at position i + 1.")
    ax.text(2, 62, "Training", fontsize=11.5, weight="bold", va="center")
    text = box(ax, 2, 49, 15, 8, "text\n\"The cat sat on\na mat\"", fc=DATA, fs=9)
    tok = box(ax, 21, 49, 12, 8, "tokenizer\n(BPE)", fc=TEXTC, fs=9.5)
    arrow(ax, text.right, tok.left)
    tokens = ["The", "\u00b7cat", "\u00b7sat", "\u00b7on", "\u00b7a", "\u00b7mat", "<eos>", "<pad>", "<pad>"]
    n_real = 7
    cw, x0 = 6.2, 54
    rows = [("input_ids", tokens),
            ("attention_mask", ["1"] * n_real + ["0"] * (len(tokens) - n_real)),
            ("labels", tokens[:n_real] + [str(IGNORE_INDEX)] * (len(tokens) - n_real))]
    for r, (name, values) in enumerate(rows):
        y = 57.5 - r * 4.6
        label(ax, x0 - 1.0, y + 1.8, name, ha="right", fs=9, color="#222222", family="DejaVu Sans Mono")
        for j, v in enumerate(values):
            pad = j >= n_real
            fc = "#f2f2f2" if pad else (DATA if r != 2 else "#fff3d6")
            ax.add_patch(Rectangle((x0 + j * cw, y), cw, 3.6, fc=fc, ec="#999999", lw=0.6, zorder=2))
            ax.text(x0 + j * cw + cw / 2, y + 1.8, v, ha="center", va="center", fontsize=8.3, zorder=3,
                    color="#c62828" if (pad and r == 2) else "#222222")
    arrow(ax, tok.right, (x0 - 13.5, 53))
    label(ax, x0 + 9 * cw + 1.0, 49.3, "padding:\nmask 0,\nlabel \u2212100", ha="left", fs=8.3, color="#c62828")
    # shift: logits at i vs label at i+1
    ys = 40.5
    label(ax, x0 - 1.0, ys + 1.8, "logits at i", ha="right", fs=9, color="#222222")
    label(ax, x0 - 1.0, ys - 4.2, "scored against", ha="right", fs=9, color="#222222")
    for j in range(len(tokens)):
        ax.add_patch(Rectangle((x0 + j * cw, ys), cw, 3.6, fc=NET, ec="#999999", lw=0.6, zorder=2))
        ax.text(x0 + j * cw + cw / 2, ys + 1.8, f"$\\ell_{{{j}}}$", ha="center", va="center", fontsize=9, zorder=3)
        target = tokens[j + 1] if j + 1 < n_real else (str(IGNORE_INDEX) if j + 1 < len(tokens) else "\u2014")
        ignored = not (j + 1 < n_real)
        ax.add_patch(Rectangle((x0 + j * cw, ys - 6), cw, 3.6, fc="#f2f2f2" if ignored else "#fff3d6", ec="#999999",
                               lw=0.6, zorder=2))
        ax.text(x0 + j * cw + cw / 2, ys - 4.2, target, ha="center", va="center", fontsize=8.3, zorder=3,
                color="#c62828" if ignored else "#222222")
        if j < len(tokens) - 1:
            arrow(ax, (x0 + j * cw + cw / 2, ys - 0.2), (x0 + j * cw + cw / 2, ys - 2.2), lw=0.9, head=7)
    gpt = box(ax, 21, 38.3, 12, 8, "GPT-2\n(causal LM)", fc=NET, weight="bold", fs=9.5)
    arrow(ax, tok.bottom, gpt.top)
    label(ax, gpt.x + gpt.w / 2 + 1, 47, "ids, mask", ha="left", fs=8.3)
    arrow(ax, gpt.right, (x0 - 13.5, ys + 1.8))
    arrow(ax, (gpt.x + gpt.w / 2, gpt.y), (gpt.x + gpt.w / 2, 31.5), lw=1.2)
    loss = box(ax, 2, 25.5, 46, 6, "", fc=LOSS)
    ax.text(loss.x + 1.2, loss.y + 4.2, "cross-entropy(logits[:, :-1], labels[:, 1:],", fontsize=8.8,
            family="DejaVu Sans Mono", va="center")
    ax.text(loss.x + 1.2, loss.y + 1.7, "              ignore_index=-100)", fontsize=8.8, family="DejaVu Sans Mono",
            va="center")
    label(ax, x0 + 4.5 * cw, ys - 10.0, "labels = input_ids with padding set to \u2212100; the model (or your "
          "loss)\nshifts by one: never score $\\ell_i$ against token i", fs=8.6, color="#222222")

    # decoding loop
    ax.text(2, 19.5, "Decoding (one new token per step)", fontsize=11.5, weight="bold", va="center")
    y = 6
    steps = [("prompt ids\n(left-padded\nin a batch)", DATA), ("GPT-2", NET),
             ("logits of the\nlast position\n(V,)", DATA),
             ("\u00f7 temperature \u03c4\n(<1 sharper,\n>1 flatter)", NET),
             ("top-k / top-p:\nkeep the k most\nlikely, or the\nsmallest set with\nmass \u2265 p", NET),
             ("softmax \u2192\nsample the\nnext id", NET)]
    x, prev, widths = 2, None, [13, 9, 13, 14.5, 15.5, 12]
    for (txt, fc), wdt in zip(steps, widths):
        b = box(ax, x, y, wdt, 10, txt, fc=fc, fs=8.4, weight="bold" if txt == "GPT-2" else "normal")
        if prev:
            arrow(ax, prev.right, b.left)
        prev, x = b, x + wdt + 3.4
    first = Box(2, y, 13, 10)
    polyline(ax, [prev.bottom, (prev.x + prev.w / 2, 3.0), (first.x + first.w / 2, 3.0), first.bottom],
             color="#1565c0")
    label(ax, 50, 1.6, "append the new id and repeat, until <eos> or max_new_tokens", color="#1565c0", fs=8.6)
    # a small distribution sketch: which tokens top-k keeps
    probs = np.array([0.34, 0.22, 0.15, 0.1, 0.07, 0.05, 0.04, 0.03])
    bx0, by0 = 97, 6
    for i, p in enumerate(probs):
        keep = i < 3
        ax.add_patch(Rectangle((bx0 + i * 2.4, by0), 1.8, p * 28, fc="#2e7d32" if keep else "#cccccc", ec="none",
                               zorder=2))
    ax.plot([bx0 - 0.6, bx0 + 8 * 2.4], [by0, by0], color=EDGE, lw=0.8)
    label(ax, bx0 + 9.6, by0 + 12.4, "top-k = 3 keeps the green\nbars, renormalises them", fs=8.2)
    return fig


# ------------------------------------------------------------------------------------------ 06 LoRA
def _trapezoid(ax, x, y_mid, w, h_in, h_out, text, fc, fs=9.0):
    ax.add_patch(Polygon([(x, y_mid - h_in / 2), (x + w, y_mid - h_out / 2), (x + w, y_mid + h_out / 2),
                          (x, y_mid + h_in / 2)], fc=fc, ec=EDGE, lw=1.2, zorder=2))
    ax.text(x + w / 2, y_mid, text, ha="center", va="center", fontsize=fs, zorder=3, linespacing=1.25)
    return Box(x, y_mid - max(h_in, h_out) / 2, w, max(h_in, h_out))


def fig_06_lora_bypass() -> plt.Figure:
    """LoRA's low-rank bypass next to a bottleneck adapter, with the parameter count for GPT-2's c_attn."""
    from aigc_lib.lm import GPTConfig

    C = GPTConfig().n_embd
    k, d, r = C, 3 * C, 8  # GPT-2's fused attention projection c_attn: C -> 3C
    fig, ax = canvas(12, 6.4)
    title(ax, "LoRA: a trainable low-rank bypass next to a frozen weight",
          "$h = W_0x + (\\alpha/r)\\,BAx$:  $W_0$ ($d\\times k$) frozen (grey);  $A$ ($r\\times k$) and $B$ "
          "($d\\times r$) trained (green), with $r \\ll \\min(d, k)$")
    ym_top, ym_bot = 40, 20
    xin = box(ax, 2, 26, 8, 8, "$x$\n($k$)", fc=DATA, fs=10)
    w0 = box(ax, 18, ym_top - 7, 20, 14, "$W_0$   ($d\\times k$)\nfrozen", fc=FROZEN, fs=10.5)
    ax.text(w0.x + w0.w - 1.4, w0.y + w0.h - 1.6, "\u2744", fontsize=12, color="#1565c0", ha="center", va="center",
            zorder=4)
    a = _trapezoid(ax, 16, ym_bot, 9, 12, 3.2, "$A$\n$r\\times k$", TRAIN)
    b = _trapezoid(ax, 29, ym_bot, 9, 3.2, 12, "$B$\n$d\\times r$", TRAIN)
    sc = box(ax, 41, ym_bot - 3, 7, 6, "\u00d7 $\\alpha/r$", fc=TRAIN, fs=10)
    p = plus(ax, 53, 30, r=1.5)
    hout = box(ax, 58, 26, 8, 8, "$h$\n($d$)", fc=DATA, fs=10)
    polyline(ax, [xin.right, (13, 30), (13, ym_top), w0.left])
    polyline(ax, [(13, 30), (13, ym_bot), (a.x, ym_bot)])
    arrow(ax, (a.x + a.w, ym_bot), (b.x, ym_bot))
    label(ax, 27, ym_bot + 3.4, "$r$", fs=10, color="#222222")
    arrow(ax, (b.x + b.w, ym_bot), sc.left)
    polyline(ax, [w0.right, (53, ym_top), (53, 31.5)])
    polyline(ax, [sc.right, (53, ym_bot), (53, 28.5)])
    arrow(ax, (54.5, 30), hout.left)
    label(ax, 27, 10.5, "A: random init;  B: zeros, so BA = 0 and training\nstarts exactly at the pretrained model",
          fs=8.6)
    full, lora = d * k, r * (d + k)
    label(ax, 2, 3.4, f"GPT-2's c_attn (k = {k}, d = {d}, from GPTConfig()): full fine-tuning trains d\u00b7k = "
          f"{full:,} weights; LoRA with r = {r} trains r(d + k) = {lora:,} ({lora / full:.1%}).\nAfter training, "
          "W = W\u2080 + (\u03b1/r)BA can be merged: no extra inference cost.", ha="left", fs=8.8, color="#222222")
    ax.plot([71.5, 71.5], [8, 56], color="#cccccc", lw=1.2)
    # right: bottleneck adapter
    ax.text(75, 54, "For comparison: a bottleneck adapter", fontsize=11, weight="bold", va="center")
    label(ax, 75, 50.5, "(Houlsby et al., 2019) inserted after a sublayer, in series", ha="left", fs=8.6)
    hin = box(ax, 74, 26, 8, 8, "$h$\n($d$)", fc=DATA, fs=10)
    down = _trapezoid(ax, 85, 30, 7, 12, 4, "down\n$d\\to m$", TRAIN, fs=8.4)
    act = box(ax, 94.5, 27.5, 6, 5, "ReLU\n/GELU", fc=TRAIN, fs=8.2)
    up = _trapezoid(ax, 103, 30, 7, 4, 12, "up\n$m\\to d$", TRAIN, fs=8.4)
    p2 = plus(ax, 112.5, 30, r=1.5)
    arrow(ax, hin.right, (down.x, 30))
    arrow(ax, (down.x + down.w, 30), act.left)
    arrow(ax, act.right, (up.x, 30))
    arrow(ax, (up.x + up.w, 30), (p2.x, 30))
    polyline(ax, [(83.5, 30), (83.5, 42), (112.5, 42), (112.5, 31.5)], color="#1565c0")
    label(ax, 98, 44, "residual (identity)", color="#1565c0", fs=8.6)
    arrow(ax, (114, 30), (116.2, 30))
    label(ax, 117.8, 30, "$h'$", fs=10, color="#222222")
    label(ax, 96, 12.5, "adds layers on the path: a little extra latency at\ninference; LoRA runs in parallel "
          "and merges away", fs=8.6)
    del p, hout
    return fig


# ------------------------------------------------------------------------------------------ 07 UNet
def _glyph(size: int = 32) -> np.ndarray:
    """A deterministic 'digit-like' glyph: a thick ring with a tail, values in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
    r = np.hypot(xx, yy + 0.25)
    img = np.clip(1 - np.abs(r - 0.42) / 0.13, 0, 1)
    tail = (np.abs(xx - 0.42) < 0.12) & (yy > -0.2) & (yy < 0.85)
    return np.maximum(img, tail.astype(float))


def fig_07_unet() -> plt.Figure:
    """The forward process strip and the denoising UNet of chapter 07 (channels from aigc_lib.diffusion)."""
    from aigc_lib.diffusion import NoiseSchedule, digits_unet

    width = 64
    unet = digits_unet(image_size=32, channels=1, width=width)
    ch = list(unet.config.block_out_channels)
    down_types, up_types = list(unet.config.down_block_types), list(unet.config.up_block_types)
    alpha_bar = NoiseSchedule(kind="linear").alphas_cumprod.double().numpy()
    T = len(alpha_bar)
    fig, ax = canvas(12, 8.2)
    title(ax, "Diffusion: add noise in closed form, learn to predict it with a UNet",
          f"Forward process with the linear schedule (Ho et al., 2020), T = {T}; the UNet is aigc_lib's digits_unet "
          f"(width {width}, chapter 07's full profile).")
    # forward strip
    x0 = (_glyph() * 2 - 1)  # images live in [-1, 1]
    eps = np.random.default_rng(0).standard_normal(x0.shape)
    ts = [0, 100, 250, 500, T - 1]
    for n, t in enumerate(ts):
        ab = alpha_bar[t]
        xt = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * eps
        bx = thumbnail(ax, np.clip((xt + 1) / 2, 0, 1), 4 + n * 17, 62, 9)
        name = "$x_0$" if t == 0 else ("$x_T$" if t == T - 1 else f"$x_{{{t}}}$")
        label(ax, bx.x + 4.5, 60.6, f"{name}\n$\\bar\\alpha_t$ = {ab:.3f}", fs=8.2, color="#222222", va="top")
        if n:
            arrow(ax, (bx.x - 7.4, 66.5), (bx.x - 0.6, 66.5), lw=1.2)
    box(ax, 88, 61.5, 30, 10, "", fc="white", ec="#999999")
    label(ax, 103, 68.6, "$q(x_t\\mid x_0)=\\mathcal{N}(\\sqrt{\\bar\\alpha_t}\\,x_0,\\,(1-\\bar\\alpha_t)I)$", fs=9.5,
          color="#222222")
    label(ax, 103, 64.4, "$x_t=\\sqrt{\\bar\\alpha_t}\\,x_0+\\sqrt{1-\\bar\\alpha_t}\\,\\epsilon$,  "
          "$\\epsilon\\sim\\mathcal{N}(0,I)$", fs=9.5, color="#222222")
    label(ax, 103, 59.2, "forward: one formula jumps to any t", fs=8.4)
    arrow(ax, (76, 54.5), (4, 54.5), color="#1565c0", lw=1.6)
    label(ax, 40, 52.5, "reverse: the UNet predicts $\\epsilon$ from $(x_t, t)$; training loss "
          "$\\|\\epsilon-\\epsilon_\\theta(x_t,t)\\|^2$", fs=9, color="#1565c0")
    # UNet
    res = [32 // 2 ** i for i in range(len(ch))]
    lx, rx, bw, bh = 15, 75, 27, 6.0
    levels_y = [38, 28.5, 19]
    last = len(ch) - 1
    ax.text(2, 47.5, "The noise predictor: UNet2DModel", fontsize=11, weight="bold", va="center")

    def tbadge(bx):
        ax.add_patch(Circle((bx.x + bx.w - 0.2, bx.y + bx.h - 0.2), 1.15, fc="#6a1b9a", ec="white", lw=0.8, zorder=5))
        ax.text(bx.x + bx.w - 0.2, bx.y + bx.h - 0.25, "t", color="white", fontsize=8, weight="bold", ha="center",
                va="center", zorder=6)

    downs, ups = [], []
    for i, (c, r_, kind) in enumerate(zip(ch, res, down_types)):
        what = "ResNet + self-attention" if kind.startswith("Attn") else "ResNet block"
        what += " + downsample" if i < last else ""
        downs.append(box(ax, lx, levels_y[i], bw, bh, f"{kind}: {c} ch @ {r_}\u00d7{r_}\n{what}", fc=NET, fs=7.8))
    for i, kind in enumerate(up_types):  # up blocks run from the lowest resolution back up
        lvl = last - i
        c, r_ = ch[lvl], res[lvl]
        what = "ResNet + self-attention" if kind.startswith("Attn") else "ResNet blocks"
        what += " + upsample" if lvl > 0 else ""
        ups.append(box(ax, rx, levels_y[lvl], bw, bh, f"{kind}: {c} ch @ {r_}\u00d7{r_}\n{what}", fc=NET, fs=7.8))
    mid = box(ax, 46, 8.5, 25, 6.0, f"middle: ResNet, attention, ResNet\n{ch[-1]} ch @ {res[-1]}\u00d7{res[-1]}",
              fc=NET, fs=7.8)
    for bx in downs + ups + [mid]:
        tbadge(bx)
    inp = box(ax, 2, levels_y[0] + 0.5, 9.5, 5.0, "$x_t$\n1\u00d732\u00d732", fc=DATA, fs=8.2)
    out = box(ax, 107, levels_y[0] + 0.5, 10, 5.0, "$\\hat\\epsilon$\n1\u00d732\u00d732", fc=DATA, fs=8.2)
    arrow(ax, inp.right, downs[0].left)
    label(ax, 13.3, levels_y[0] + bh + 1.2, "conv_in", fs=7.6)
    arrow(ax, ups[-1].right, out.left)
    label(ax, 104.8, levels_y[0] + bh + 1.2, "conv_out", fs=7.6)
    for a_, b_ in itertools.pairwise(downs):
        arrow(ax, a_.bottom, b_.top)
    arrow(ax, downs[-1].bottom, mid.left, rad=0.25)
    arrow(ax, mid.right, ups[0].bottom, rad=0.25)
    for a_, b_ in itertools.pairwise(ups):
        arrow(ax, a_.top, b_.bottom)
    for i in range(len(ch)):
        arrow(ax, (lx + bw, levels_y[i] + bh / 2), (rx, levels_y[i] + bh / 2), color="#1565c0", ls="--", lw=1.2)
    label(ax, (lx + bw + rx) / 2, levels_y[0] + bh / 2 + 1.6, "skip connections (concatenated)", fs=8.2,
          color="#1565c0")
    temb = box(ax, 2, 2.0, 30, 6.5, "timestep $t$ \u2192 sinusoidal embedding \u2192 MLP", fc=TEXTC, fs=8.4)
    ax.add_patch(Circle((35.2, 5.25), 1.15, fc="#6a1b9a", ec="white", lw=0.8, zorder=5))
    ax.text(35.2, 5.2, "t", color="white", fontsize=8, weight="bold", ha="center", va="center", zorder=6)
    label(ax, 37.2, 5.25, "the embedding is added inside every ResNet block", ha="left", fs=8.4, color="#6a1b9a")
    label(ax, 118, 5.25, f"block_out_channels = {tuple(ch)}", ha="right", fs=8.2)
    del temb
    return fig


# ------------------------------------------------------------------------------------------ 08 SD pipeline
def fig_08_sd_pipeline() -> plt.Figure:
    """Stable Diffusion inference: text encoder, UNet loop with classifier-free guidance, VAE decoder."""
    from aigc_lib.diffusion import MINI_SD_RECIPES
    from aigc_lib.diffusion.speed import MAX_LENGTH, SD15_TEXT, SD15_UNET, SD15_VAE

    c_lat, s_lat = SD15_UNET["in_channels"], SD15_UNET["sample_size"]
    vae_down = 2 ** (len(SD15_VAE["block_out_channels"]) - 1)
    px = s_lat * vae_down
    width_text = SD15_TEXT["hidden_size"]
    quick = MINI_SD_RECIPES["quick"]
    fig, ax = canvas(12, 7.2)
    title(ax, "Stable Diffusion: denoise in a small latent space, guided by the text",
          f"Shapes of Stable Diffusion 1.5 ({px} px): latents {c_lat}\u00d7{s_lat}\u00d7{s_lat}, text "
          f"{MAX_LENGTH}\u00d7{width_text}, UNet channels {tuple(SD15_UNET['block_out_channels'])}.")
    # text branch
    ty = 50
    prompt = box(ax, 2, ty, 17, 7, "prompt\n\"a red circle at\nthe top left\"", fc=DATA, fs=8.6)
    tok = box(ax, 22, ty, 13, 7, "CLIP tokenizer\nids (1, 77)".replace("77", str(MAX_LENGTH)), fc=TEXTC, fs=8.6)
    enc = box(ax, 38, ty, 15, 7, "text encoder\n(CLIPTextModel)", fc=TEXTC, fs=8.6)
    emb = box(ax, 56, ty, 17, 7, f"embeddings\n(1, {MAX_LENGTH}, {width_text})", fc=DATA, fs=8.6)
    for a_, b_ in [(prompt, tok), (tok, enc), (enc, emb)]:
        arrow(ax, a_.right, b_.left)
    label(ax, 64.5, ty + 9.3, "and the same for \"\" (or a negative prompt):\nthe unconditional embeddings",
          fs=8.2)
    # denoising loop panel
    loop = box(ax, 18, 8, 74, 34, "", fc="#fbfbfb", ec="#888888", ls="--", lw=1.1)
    label(ax, loop.x + 1.2, loop.y + loop.h - 2.0, "denoising loop: for t in scheduler.timesteps (e.g. 25 steps, "
          "DPM-Solver++)", ha="left", fs=9, color="#222222", weight="bold")
    zt = box(ax, 2, 21, 12, 8, f"$z_T\\sim\\mathcal{{N}}(0,I)$\n{c_lat}\u00d7{s_lat}\u00d7{s_lat}", fc=DATA, fs=8.6)
    unet = box(ax, 22, 18, 19, 14,
               "UNet\n(UNet2DConditionModel)\n\ncross-attention:\nQ from latents,\nK, V from text",
               fc=NET, fs=8.2)
    arrow(ax, zt.right, unet.left)
    polyline(ax, [emb.bottom, (emb.x + emb.w / 2, 46), (unet.x + unet.w / 2, 46), unet.top])
    eu = box(ax, 45, 27, 12, 5, "$\\epsilon_{uncond}$", fc=DATA, fs=9)
    ec = box(ax, 45, 18, 12, 5, "$\\epsilon_{cond}$", fc=DATA, fs=9)
    arrow(ax, (unet.x + unet.w, 29.5), eu.left)
    arrow(ax, (unet.x + unet.w, 20.5), ec.left)
    cfg = box(ax, 60, 20, 29, 10, "classifier-free guidance\n$\\hat\\epsilon=\\epsilon_{uncond}+w\\,"
              "(\\epsilon_{cond}-\\epsilon_{uncond})$\n(w \u2248 7.5 for SD)", fc=LOSS, fs=8.6)
    arrow(ax, eu.right, (cfg.x, 27))
    arrow(ax, ec.right, (cfg.x, 23))
    step = box(ax, 60, 10, 29, 6.5, "scheduler.step: $z_t \\to z_{t-1}$", fc=NET, fs=8.8)
    arrow(ax, cfg.bottom, step.top)
    polyline(ax, [step.left, (unet.x + unet.w / 2, step.y + step.h / 2), unet.bottom], color="#1565c0")
    label(ax, 41, 11.6, "next t", color="#1565c0", fs=8.4)
    label(ax, 51, 25, "one batch of 2:\nuncond + cond", fs=7.8)
    # decode
    z0 = box(ax, 97.5, 30, 21, 7, f"$z_0$  {c_lat}\u00d7{s_lat}\u00d7{s_lat}\n\u00f7 scaling_factor "
             f"({SD15_VAE['scaling_factor']})", fc=DATA, fs=8.4)
    polyline(ax, [step.right, (93, step.y + step.h / 2), (93, 33.5), z0.left])
    label(ax, 93.6, 22, "after\nthe last t", fs=8, ha="left")
    dec = box(ax, 100, 18, 16, 7, f"VAE decoder\n\u00d7{vae_down} up-sampling", fc=NET, fs=8.6)
    img = box(ax, 100, 6, 16, 7, f"image\n3\u00d7{px}\u00d7{px}", fc=DATA, fs=8.6)
    arrow(ax, z0.bottom, dec.top)
    arrow(ax, dec.bottom, img.top)
    label(ax, 2, 2.8, f"Chapter 08's mini SD (quick recipe, from aigc_lib.diffusion): {quick.image_size} px images, "
          f"latents {quick.latent_channels}\u00d7{quick.latent_size}\u00d7{quick.latent_size}, UNet channels "
          f"{quick.unet_channels}, text width {quick.text_width}: the same classes, a few channels wide.",
          ha="left", fs=8.6, color="#222222")
    return fig


# ------------------------------------------------------------------------------------------ 09 DreamBooth + LoRA
def _shape_icon(ax, kind: str, x: float, y: float, s: float, color: str) -> None:
    """A small shape in a white square (lower-left at x, y)."""
    ax.add_patch(Rectangle((x, y), s, s, fc="white", ec="#999999", lw=0.7, zorder=2))
    cx, cy = x + s / 2, y + s / 2
    if kind == "star":
        ang = np.pi / 2 + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, 0.42 * s, 0.18 * s)
        ax.add_patch(Polygon(np.c_[cx + rad * np.cos(ang), cy + rad * np.sin(ang)], fc=color, ec="none", zorder=3))
    elif kind == "circle":
        ax.add_patch(Circle((cx, cy), 0.32 * s, fc=color, ec="none", zorder=3))
    elif kind == "square":
        ax.add_patch(Rectangle((cx - 0.28 * s, cy - 0.28 * s), 0.56 * s, 0.56 * s, fc=color, ec="none", zorder=3))
    else:
        ax.add_patch(RegularPolygon((cx, cy - 0.05 * s), 3, radius=0.36 * s, fc=color, ec="none", zorder=3))


def fig_09_dreambooth_lora() -> plt.Figure:
    """DreamBooth-style fine-tuning with LoRA in the UNet's attention and the prior-preservation loss."""
    fig, ax = canvas(12, 7.0)
    title(ax, "Teaching a diffusion model a new concept: LoRA + prior preservation (DreamBooth-style)",
          "Only the LoRA matrices train; the VAE, the text encoder and the UNet's own weights stay frozen.")
    # data
    ax.text(2, 56.5, "concept images (a few)", fontsize=9.5, weight="bold", va="center")
    for i, c in enumerate(["#d32f2f", "#1976d2", "#388e3c", "#f9a825"]):
        _shape_icon(ax, "star", 2 + i * 5.4, 49, 4.8, c)
    label(ax, 2, 46.3, "\"a red star at the top left\"\nnew word, in the vocabulary,\n"
          "never trained (real SD: \"sks\")",
          ha="left", fs=8.2, va="top")
    ax.text(2, 33.5, "prior images (old concepts)", fontsize=9.5, weight="bold", va="center")
    for i, (k, c) in enumerate([("circle", "#1976d2"), ("square", "#d32f2f"), ("triangle", "#388e3c"),
                                ("circle", "#f9a825")]):
        _shape_icon(ax, k, 2 + i * 5.4, 26, 4.8, c)
    label(ax, 2, 23.3, "\"a blue circle at the bottom\"\ngenerated by the frozen base\nmodel, or real replay images",
          ha="left", fs=8.2, va="top")
    vae = box(ax, 27, 35, 11, 9, "VAE\nencoder", fc=FROZEN, fs=9)
    txt = box(ax, 27, 20, 11, 9, "text\nencoder", fc=FROZEN, fs=9)
    polyline(ax, [(23.5, 51.4), (25, 51.4), (25, 41), (vae.x, 41)])
    polyline(ax, [(23.5, 28.4), (25, 28.4), (25, 38), (vae.x, 38)])
    polyline(ax, [(2 + 21.6, 16.5), (25, 16.5), (25, 24.5), (txt.x, 24.5)], color=NOTE, lw=1.1)
    label(ax, 23.0, 16.5, "both sets of captions", fs=8.2, ha="right")
    noise = box(ax, 42, 35, 15, 9, "add noise\n$x_t$ at random $t$", fc=DATA, fs=8.8)
    arrow(ax, vae.right, noise.left)
    unet = box(ax, 61, 20, 17, 24, "", fc=FROZEN)
    label(ax, unet.x + unet.w / 2, unet.y + unet.h - 2.6, "UNet (frozen)", fs=9.5, color="#222222", weight="bold")
    for i, row in enumerate(["ResNet", "attention + LoRA", "ResNet", "attention + LoRA"]):
        fc = TRAIN if "LoRA" in row else "white"
        box(ax, unet.x + 1.5, unet.y + 14.6 - i * 4.2, unet.w - 3, 3.3, row, fc=fc, fs=7.8, round_=0.4)
    arrow(ax, noise.right, (unet.x, 39.5))
    arrow(ax, txt.right, (unet.x, 24.5))
    label(ax, 50, 26.3, "cross-attention\nK, V", fs=8)
    pred = box(ax, 82, 33, 11, 8, "prediction\n$\\epsilon_\\theta$", fc=DATA, fs=9)
    arrow(ax, (unet.x + unet.w, 37), pred.left)
    loss = box(ax, 82, 14, 36, 15, "", fc=LOSS)
    ax.text(loss.x + 1.2, loss.y + 12, "loss = instance + \u03bb \u00b7 prior", fontsize=9.5, weight="bold",
            va="center")
    ax.text(loss.x + 1.2, loss.y + 7.8, "$\\|\\epsilon-\\epsilon_\\theta(x_t,t,c)\\|^2+\\lambda\\,"
            "\\|\\epsilon'-\\epsilon_\\theta(x^{pr}_{t'},t',c^{pr})\\|^2$", fontsize=9.2, va="center")
    ax.text(loss.x + 1.2, loss.y + 3.3, "the prior term keeps the old shapes as they were;\n"
            "the mini SD predicts v instead of \u03b5: same idea", fontsize=8.2, color=NOTE, va="center")
    arrow(ax, pred.bottom, (pred.x + pred.w / 2, loss.y + loss.h))
    arrow(ax, (loss.x, loss.y + 4), (unet.x + unet.w - 1, unet.y + 2), color="#2e7d32", ls="--", rad=-0.2)
    label(ax, 75.5, 12.0, "gradients reach only\nA and B", color="#2e7d32", fs=8.2)
    # zoom: one attention layer with LoRA on its projections
    zx, zy = 96, 38
    box(ax, zx, zy, 22, 18, "", fc="white", ec="#2e7d32", lw=1.2)
    label(ax, zx + 11, zy + 16.2, "inside each attention", fs=8.6, color="#222222", weight="bold")
    for i, name in enumerate(["to_q", "to_k", "to_v", "to_out.0"]):
        y = zy + 11.4 - i * 3.5
        box(ax, zx + 1.2, y, 8.4, 2.7, name, fc=FROZEN, fs=7.8, round_=0.3)
        box(ax, zx + 11.2, y, 9.6, 2.7, "+ (\u03b1/r) BA", fc=TRAIN, fs=7.8, round_=0.3)
    label(ax, zx + 11, zy - 1.8, "self-attn (attn1) and cross-attn (attn2)", fs=7.6)
    ax.plot([unet.x + unet.w - 1.5, zx], [unet.y + unet.h, zy + 9], color="#2e7d32", lw=0.9, ls=":")
    label(ax, 2, 3.0, "DreamBooth: Ruiz et al., CVPR 2023 (rare identifier + class-specific prior preservation); "
          "LoRA: Hu et al., ICLR 2022. Chapter 09 uses aigc_lib.diffusion.add_unet_lora (peft).", ha="left",
          fs=8.4, color="#222222")
    return fig


FIGURES_BY_NAME: dict[str, Callable[[], plt.Figure]] = {
    name.removeprefix("fig_"): fn for name, fn in sorted(globals().items()) if name.startswith("fig_")
}


# ------------------------------------------------------------------------------------------ render + embed
def render(name: str) -> bytes:
    """The PNG bytes of one figure (deterministic: no metadata that changes between runs)."""
    _style()
    fig = FIGURES_BY_NAME[name]()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white",
                metadata={"Software": None, "Title": None, "Author": None, "Description": None})
    plt.close(fig)
    # 256 colours without dithering: the same picture at a third of the size (notebooks embed it as base64)
    image = Image.open(buf).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                                                    dither=Image.Dither.NONE)
    info = PngInfo()
    info.add_text("Software", renderer())  # no date: the same environment gives the same bytes
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True, pnginfo=info)
    return out.getvalue()


def renderer() -> str:
    """The versions that decide the pixels: the same ones redraw a figure byte for byte."""
    from matplotlib import ft2font

    return (f"tools/figures.py with matplotlib {matplotlib.__version__}, FreeType {ft2font.__freetype_version__}, "
            f"Pillow {Image.__version__}")


def write_figures(out_dir: Path, names: list[str]) -> list[Path]:
    """Render the named figures into out_dir; returns the files whose bytes changed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    changed = []
    for name in names:
        path = out_dir / f"{name}.png"
        data = render(name)
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
            changed.append(path)
    return changed


def references(nb: dict) -> list[tuple[int, str]]:
    """(cell index, attachment name) for every attachment:NAME.png reference in a markdown cell."""
    refs = []
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") == "markdown":
            source = "".join(cell.get("source", ""))
            refs += [(i, m) for m in dict.fromkeys(ATTACHMENT.findall(source))]
    return refs


def embed(notebook: Path, figures_dir: Path = FIGURES, only: set[str] | None = None,
          write: bool = True) -> list[str]:
    """Set every referenced attachment of a notebook to the stored figure; returns the names that were stale.

    A stale attachment is one whose bytes differ from the figure, or a figure attached to a cell that no longer
    references it (dropped, as Jupyter drops it on save). The file is written only if something changed."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    refs = references(nb)
    for i, name in refs:
        if not (figures_dir / name).exists():
            raise FileNotFoundError(f"{notebook.name}, cell {i}: attachment:{name} has no figure "
                                    f"notebooks/figures/{name}; add a fig_{Path(name).stem} function to "
                                    "tools/figures.py (or fix the name) and run `make figures`.")
    stale = []
    for i, name in refs:
        if only is not None and name not in only:
            continue
        data = base64.b64encode((figures_dir / name).read_bytes()).decode("ascii")
        cell = nb["cells"][i]
        if cell.get("attachments", {}).get(name) != {"image/png": data}:
            cell.setdefault("attachments", {})[name] = {"image/png": data}
            stale.append(name)
    referenced = {(i, name) for i, name in refs}
    for i, cell in enumerate(nb.get("cells", [])):
        for name in list(cell.get("attachments", {})):
            if (i, name) not in referenced and (figures_dir / name).exists() and (only is None or name in only):
                del cell["attachments"][name]  # a figure the cell no longer shows
                if not cell["attachments"]:
                    del cell["attachments"]
                stale.append(name)
    if stale and write:
        notebook.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a figure or an attachment is stale")
    parser.add_argument("--only", metavar="NAME", help="one figure, e.g. 07_unet (with or without .png)")
    args = parser.parse_args(argv)
    names = sorted(FIGURES_BY_NAME)
    if args.only:
        only = args.only.removesuffix(".png")
        if only not in FIGURES_BY_NAME:
            parser.error(f"unknown figure {only!r}: choose one of {', '.join(names)}")
        names = [only]
    problems = []
    if args.check:
        for name in names:
            path = FIGURES / f"{name}.png"
            if not path.exists() or path.read_bytes() != render(name):
                problems.append(f"notebooks/figures/{name}.png is stale or missing: run `make figures`")
    else:
        for path in write_figures(FIGURES, names):
            print(f"wrote notebooks/figures/{path.name} ({path.stat().st_size / 1024:.0f} kB)")
    only_names = {f"{n}.png" for n in names} if args.only else None
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        try:
            stale = embed(notebook, only=only_names, write=not args.check)
        except FileNotFoundError as error:
            problems.append(str(error))
            continue
        for name in stale:
            if args.check:
                problems.append(f"notebooks/{notebook.name}: attachment {name} is stale: run `make figures`")
            else:
                print(f"embedded {name} in notebooks/{notebook.name}")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
