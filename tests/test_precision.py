"""Mixed precision on the CPU: bf16 autocast and fp16 + GradScaler (a T4's path) through the shared trainer.

The trainer owns precision (``torch.autocast`` + ``torch.amp.GradScaler(enabled=fp16)``, one code path for every
device), so the fp16 path that Colab's T4 runs is exercised here without a GPU: the GAN, LM and diffusion steps
train under both precisions, the activations really are half precision, and the loss scale survives a resume.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from aigc_lib import diffusion, gan, lm
from aigc_lib.data import TensorLoader
from aigc_lib.runtime import cpu_autocast_supports
from aigc_lib.train import TrainConfig, Trainer, latest_checkpoint

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
pytestmark = pytest.mark.skipif(not cpu_autocast_supports(torch.float16),
                                reason="this torch has no CPU fp16 autocast (torch < 2.4)")


class DtypeProbe:
    """A forward hook that records the dtype of a module's output (what autocast really computed in)."""

    def __init__(self, module: nn.Module) -> None:
        self.dtypes: set[torch.dtype] = set()
        module.register_forward_hook(lambda m, args, out: self.dtypes.add(getattr(out, "sample", out).dtype))


def config(precision: str, steps: int, **overrides) -> TrainConfig:
    return TrainConfig(max_steps=steps, precision=precision, device="cpu", log_every=1, progress=False, **overrides)


# ----------------------------------------------------------------------------------------------- the three steps
def gan_trainer(precision: str, steps: int, **cfg) -> tuple[Trainer, nn.Module]:
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 16))  # (N, nz) -> (N, 16)
    D = nn.Sequential(nn.Linear(16, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))  # (N, 16) -> (N, 1) logits
    real = torch.randn(128, 16, generator=torch.Generator().manual_seed(1)) * 0.5 + 2.0
    opts = {"G": torch.optim.Adam(G.parameters(), 2e-3), "D": torch.optim.Adam(D.parameters(), 2e-3)}
    trainer = Trainer({"G": G, "D": D}, opts, gan.GANStep(latent_dim=8), TensorLoader(real, batch_size=32, seed=2),
                      config(precision, steps, **cfg))
    return trainer, G[0]


def lm_trainer(precision: str, steps: int, **cfg) -> tuple[Trainer, nn.Module]:
    torch.manual_seed(0)
    model = lm.GPT(lm.GPTConfig(vocab_size=16, block_size=16, n_layer=1, n_head=2, n_embd=32))
    pattern = torch.arange(17) % 5  # a periodic "text": learnable in a few steps
    blocks = torch.stack([(pattern + k) % 16 for k in range(64)])  # (64, T+1) packed rows
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    trainer = Trainer(model, optimizer, lm.LMStep(), TensorLoader(blocks, batch_size=16, seed=3),
                      config(precision, steps, **cfg))
    return trainer, model.transformer.h[0].mlp.c_fc


def diffusion_trainer(precision: str, steps: int, **cfg) -> tuple[Trainer, nn.Module]:
    torch.manual_seed(0)
    unet = diffusion.digits_unet(image_size=8, width=8)
    images = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(4)) * 2 - 1
    step = diffusion.DiffusionStep(diffusion.NoiseSchedule(num_steps=100))
    trainer = Trainer(unet, torch.optim.AdamW(unet.parameters(), lr=2e-3), step,
                      TensorLoader(images, batch_size=8, seed=5), config(precision, steps, **cfg))
    return trainer, unet.conv_in


BUILDERS = {"gan": gan_trainer, "lm": lm_trainer, "diffusion": diffusion_trainer}


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("model", ["gan", "lm", "diffusion"])
def test_each_step_trains_under_autocast(model, precision):
    trainer, probed = BUILDERS[model](precision, steps=8)
    probe = DtypeProbe(probed)
    before = {k: v.clone() for m in trainer.raw_models.values() for k, v in m.state_dict().items()}
    history = trainer.fit()["train"]
    assert probe.dtypes == {DTYPES[precision]}, probe.dtypes  # the forward pass ran in half precision
    losses = [row[k] for row in history for k in row if k != "step"]
    assert all(math.isfinite(v) for v in losses), history
    after = {k: v for m in trainer.raw_models.values() for k, v in m.state_dict().items()}
    assert all(v.dtype == torch.float32 for v in after.values())  # weights stay fp32 (autocast, not .half())
    assert sum(not torch.equal(before[k], after[k]) for k in before) > 0.5 * len(before)  # most tensors moved
    assert trainer.scaler.is_enabled() == (precision == "fp16")
    if model == "lm":  # a learnable pattern: the loss must fall clearly (2.9 -> ~1.3 measured, CPU)
        assert history[-1]["loss"] < 0.7 * history[0]["loss"], history


def test_fp32_trains_without_autocast():
    trainer, probed = lm_trainer("fp32", steps=2)
    probe = DtypeProbe(probed)
    trainer.fit()
    assert probe.dtypes == {torch.float32} and not trainer.scaler.is_enabled()


def test_fp16_overflow_skips_the_step_and_halves_the_scale():
    """A loss so large that its fp16 gradients overflow at every scale tried: GradScaler skips each step
    (weights untouched) and halves the scale S; then an ordinary loss trains."""
    trainer, _ = lm_trainer("fp16", steps=3)
    huge = {"factor": 1e30}  # 1e30 * S overflows fp16 (max 65504) for any S >= 1

    def step(trainer, batch):
        loss = lm.lm_loss(trainer.model, batch)
        trainer.backward(loss * huge["factor"])
        trainer.optimizer_step()
        return {"loss": loss.detach()}

    trainer.step_fn = step
    before = {k: v.clone() for k, v in trainer.raw_models["model"].state_dict().items()}
    trainer.fit()
    after = trainer.raw_models["model"].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # all three steps were skipped
    assert trainer.scaler.get_scale() == 2.0**16 * 0.5**3  # halved once per overflow
    huge["factor"] = 1.0
    trainer.config = dataclasses.replace(trainer.config, max_steps=5)
    trainer.fit()
    after = trainer.raw_models["model"].state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert trainer.scaler.state_dict()["_growth_tracker"] == 2  # two clean steps counted towards growth


# ----------------------------------------------------------------------------------------------- exact resume
class Interrupt(Exception):
    pass


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_resume_is_bit_identical_and_restores_the_scaler(tmp_path: Path, precision):
    reference, _ = lm_trainer(precision, steps=8, checkpoint_every=4, checkpoint_dir=str(tmp_path / "a"))
    reference.fit()

    interrupted, _ = lm_trainer(precision, steps=8, checkpoint_every=4, checkpoint_dir=str(tmp_path / "b"))
    real_step = interrupted.step_fn

    def crashing(trainer, batch):
        if trainer.step == 6:
            raise Interrupt
        return real_step(trainer, batch)

    interrupted.step_fn = crashing
    with pytest.raises(Interrupt):
        interrupted.fit()
    checkpoint = latest_checkpoint(tmp_path / "b")
    saved = torch.load(checkpoint / "trainer_state.pt", weights_only=True)["scaler"]
    if precision == "fp16":
        assert saved == scaler_in_checkpoint(tmp_path / "a", step=4)  # same as the unbroken run at step 4
        assert saved["scale"] > 0 and saved["_growth_tracker"] == 4  # four clean steps since the start
    else:
        assert saved is None  # bf16 needs no loss scaling

    resumed, _ = lm_trainer(precision, steps=8, checkpoint_every=4, checkpoint_dir=str(tmp_path / "b"))
    resumed.fit()
    assert resumed.step == 8
    for key, value in reference.raw_models["model"].state_dict().items():
        assert torch.equal(value, resumed.raw_models["model"].state_dict()[key]), key
    assert resumed.scaler.state_dict() == reference.scaler.state_dict()
    assert resumed.history["train"] == reference.history["train"]


def scaler_in_checkpoint(checkpoint_dir: Path, step: int) -> dict:
    state = torch.load(checkpoint_dir / f"step-{step:08d}" / "trainer_state.pt", weights_only=True)
    return state["scaler"]


def test_scaler_state_is_restored_exactly_not_reset(tmp_path: Path):
    trainer, _ = lm_trainer("fp16", steps=5, checkpoint_every=5, checkpoint_dir=str(tmp_path))
    trainer.fit()
    fresh, _ = lm_trainer("fp16", steps=5, checkpoint_dir=str(tmp_path))
    assert fresh.scaler.get_scale() == 2.0**16  # a new scaler starts at 2^16 ...
    fresh.load_checkpoint(latest_checkpoint(tmp_path))
    assert fresh.scaler.state_dict() == trainer.scaler.state_dict() != {}  # ... the checkpoint's is restored


def test_evaluation_runs_in_fp32_unless_the_eval_fn_asks_for_autocast():
    trainer, probed = lm_trainer("bf16", steps=1)
    probe = DtypeProbe(probed)
    seen = []

    def eval_fn(trainer):
        ids = torch.zeros(2, 8, dtype=torch.long)
        probe.dtypes.clear()
        trainer.model(ids)
        seen.append(set(probe.dtypes))
        with trainer.autocast():
            trainer.model(ids)
        seen.append(set(probe.dtypes))
        return {"val": 0.0}

    trainer.eval_fn = eval_fn
    trainer.fit()
    assert seen == [{torch.float32}, {torch.float32, torch.bfloat16}]
