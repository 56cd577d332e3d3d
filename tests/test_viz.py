"""Image grids, history plots and sample strips; PNGs are written in headless runs."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aigc_lib.data import TensorLoader
from aigc_lib.train import TrainConfig, Trainer
from aigc_lib.viz import LivePlot, SampleStrip, image_grid, plot_history, show_images


def test_image_grid_shape_and_range():
    grid = image_grid(torch.linspace(-1, 1, 6 * 8 * 8).view(6, 1, 8, 8), nrow=3, padding=2)
    assert grid.shape == (2 * 10 + 2, 3 * 10 + 2, 3)
    assert 0.0 <= grid.min() and grid.max() <= 1.0
    with pytest.raises(ValueError, match="expects"):
        image_grid(torch.zeros(2, 5, 8, 8))


def test_headless_figures_are_saved(tmp_path, monkeypatch):
    monkeypatch.setenv("AIGC_FIGURES_DIR", str(tmp_path))
    show_images(torch.rand(4, 3, 8, 8) * 2 - 1, title="four images")
    plot_history({"train": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}], "eval": []}, name="curves")
    assert (tmp_path / "four-images.png").stat().st_size > 0
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_sample_strip_and_live_plot_through_the_trainer(tmp_path, monkeypatch):
    monkeypatch.setenv("AIGC_FIGURES_DIR", str(tmp_path))
    model = nn.Linear(4, 4)

    def step(trainer, batch):
        loss = F.mse_loss(trainer.model(batch), batch)
        trainer.backward(loss)
        trainer.optimizer_step()
        return {"loss": loss}

    strip = SampleStrip(lambda t: t.raw_models["model"].weight.detach().view(1, 1, 4, 4).repeat(3, 1, 1, 1), every=2)
    cfg = TrainConfig(max_steps=6, log_every=1, progress=False, device="cpu")
    Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), step, TensorLoader(torch.randn(16, 4), batch_size=4),
            cfg, hooks=[strip, LivePlot(name="live curves")]).fit()
    assert [s for s, _ in strip.snapshots] == [0, 2, 4, 6]
    strip.show(name="strip")
    assert (tmp_path / "strip.png").is_file() and (tmp_path / "live-curves.png").is_file()
