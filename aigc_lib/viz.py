"""Pictures instead of walls of numbers: image grids, loss curves (live in notebooks) and sample strips.

Every function draws with matplotlib and, when a run is headless (papermill, nbval, ``make course``),
also saves a PNG under the run's ``figures/`` folder (``$AIGC_FIGURES_DIR``). Used by every notebook.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from torchvision.utils import make_grid

from aigc_lib.runtime import is_headless
from aigc_lib.train import Hook, Trainer


def save_figure(fig: plt.Figure, name: str) -> Path | None:
    """Save ``fig`` as ``<figures dir>/<name>.png`` when a figures folder is set (headless runs)."""
    folder = os.environ.get("AIGC_FIGURES_DIR")
    if not folder:
        return None
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "figure"
    path = Path(folder) / f"{slug}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def image_grid(images: torch.Tensor, nrow: int | None = None, value_range: tuple[float, float] = (-1, 1),
               padding: int = 2) -> np.ndarray:
    """Tile ``(N, C, H, W)`` images into one ``(H', W', 3)`` array in [0, 1] ready for ``imshow``."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"image_grid expects (N, C, H, W) with C = 1 or 3, got shape {tuple(images.shape)}.")
    nrow = nrow or max(1, int(len(images) ** 0.5 + 0.5))
    grid = make_grid(images.detach().float().cpu(), nrow=nrow, padding=padding, normalize=True,
                     value_range=value_range, pad_value=1.0)
    return grid.permute(1, 2, 0).numpy()  # (H', W', 3)


def show_images(images: torch.Tensor, nrow: int | None = None, title: str | None = None,
                name: str | None = None, value_range: tuple[float, float] = (-1, 1),
                size: float = 4.0) -> plt.Figure:
    """Show a grid of images (values in ``value_range``); save it as ``name``.png when headless."""
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(image_grid(images, nrow, value_range), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    _finish(fig, name or title or "images")
    return fig


def plot_history(history: dict[str, list[dict[str, float]]], keys: Sequence[str] | None = None,
                 title: str = "training curves", name: str | None = None, logy: bool = False) -> plt.Figure:
    """Plot the trainer's ``history`` (train and eval metrics against the optimizer step)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    _draw_history(ax, history, keys, logy)
    ax.set_title(title)
    _finish(fig, name or title)
    return fig


def _draw_history(ax: plt.Axes, history: dict[str, list[dict[str, float]]], keys: Sequence[str] | None,
                  logy: bool) -> None:
    for split, rows in history.items():
        names = keys or sorted({k for row in rows for k in row if k != "step"})
        for key in names:
            points = [(row["step"], row[key]) for row in rows if key in row]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, "o-" if split == "eval" else "-", ms=3, label=f"{key}" if split == "train"
                        else f"{key} ({split})")
    ax.set_xlabel("optimizer step")
    if logy:
        ax.set_yscale("log")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def _finish(fig: plt.Figure, name: str) -> None:
    fig.tight_layout()
    save_figure(fig, name)


class LivePlot(Hook):
    """Redraw the loss curves in the notebook at every log step (interactive only); save them at the end."""

    def __init__(self, keys: Sequence[str] | None = None, name: str = "training curves", logy: bool = False):
        self.keys, self.name, self.logy = keys, name, logy
        self._handle: Any = None
        self._live = not is_headless()

    def on_log(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self._live and trainer.is_main_process:
            self._draw(trainer, final=False)

    def on_fit_end(self, trainer: Trainer) -> None:
        if trainer.is_main_process:
            self._draw(trainer, final=True)

    def _draw(self, trainer: Trainer, final: bool) -> None:
        from IPython.display import display

        fig, ax = plt.subplots(figsize=(6, 3.5))
        _draw_history(ax, trainer.history, self.keys, self.logy)
        ax.set_title(f"{self.name} (step {trainer.step})")
        fig.tight_layout()
        if final:
            save_figure(fig, self.name)
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)


class SampleStrip(Hook):
    """Every ``every`` steps draw samples with ``sample_fn(trainer)``; ``show()`` lays them out as a strip."""

    def __init__(self, sample_fn: Callable[[Trainer], torch.Tensor], every: int, max_rows: int = 8):
        if every < 1:
            raise ValueError(f"SampleStrip every must be a positive integer, got {every}.")
        self.sample_fn, self.every, self.max_rows = sample_fn, every, max_rows
        self.snapshots: list[tuple[int, torch.Tensor]] = []

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.step == 0 and not self.snapshots:
            self._snap(trainer)

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.step % self.every == 0 or trainer.step == trainer.config.max_steps:
            self._snap(trainer)

    @torch.no_grad()
    def _snap(self, trainer: Trainer) -> None:
        if self.snapshots and self.snapshots[-1][0] == trainer.step:
            return
        images = self.sample_fn(trainer).detach().float().cpu()
        self.snapshots.append((trainer.step, images))

    def show(self, title: str = "samples during training", name: str | None = None,
             value_range: tuple[float, float] = (-1, 1)) -> plt.Figure:
        """One row of samples per snapshot, labelled by step (at most ``max_rows``, evenly spaced)."""
        if not self.snapshots:
            raise RuntimeError("SampleStrip has no snapshots yet: run trainer.fit() first.")
        pick = torch.linspace(0, len(self.snapshots) - 1, min(self.max_rows, len(self.snapshots))).round().long()
        rows = [self.snapshots[i] for i in pick.unique().tolist()]
        fig, axes = plt.subplots(len(rows), 1, figsize=(8, 1.1 * len(rows) + 0.4), squeeze=False)
        for ax, (step, images) in zip(axes[:, 0], rows):
            ax.imshow(image_grid(images, nrow=len(images), value_range=value_range), interpolation="nearest")
            ax.set_axis_off()
            ax.text(-2, images.shape[-2] / 2, f"step {step}", ha="right", va="center", fontsize=8)
        fig.suptitle(title)
        _finish(fig, name or title)
        return fig

    def state_dict(self) -> dict[str, Any]:
        return {"snapshots": [(s, imgs) for s, imgs in self.snapshots]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.snapshots = [(int(s), imgs) for s, imgs in state["snapshots"]]
