"""The shared trainer: exact resume, atomic checkpoints, NaN guard, accumulation, hooks, two models."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import aigc_lib.train as train_module
from aigc_lib.data import TensorLoader
from aigc_lib.train import EMA, EarlyStopping, NonFiniteLossError, TrainConfig, Trainer, latest_checkpoint


def make_problem(seed: int = 0, n: int = 96):
    """A small noisy classification problem and a model whose init depends only on ``seed``."""
    g = torch.Generator().manual_seed(123)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 2))
    return x, y, model


def noisy_step(trainer: Trainer, batch):
    """Uses the global RNG (noise + dropout) so that exact resume also needs the RNG state."""
    x, y = batch
    loss = F.cross_entropy(trainer.model(x + 0.05 * torch.randn_like(x)), y)
    trainer.backward(loss)
    trainer.optimizer_step()
    return {"loss": loss}


def build(tmp_path: Path | None, step_fn=noisy_step, max_steps: int = 12, **overrides) -> Trainer:
    x, y, model = make_problem()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 4))
    settings = {"log_every": 2, "progress": False, "device": "cpu", "checkpoint_every": 3 if tmp_path else 0,
                "checkpoint_dir": str(tmp_path) if tmp_path else None, **overrides}
    cfg = TrainConfig(max_steps=max_steps, **settings)
    data = TensorLoader(x, y, batch_size=16, seed=7)
    return Trainer(model, optimizer, step_fn, data, cfg, schedulers={"model": scheduler}, hooks=[EMA(decay=0.9)])


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.raw_models["model"].state_dict().items()}


class Interrupt(Exception):
    pass


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path):
    reference = build(tmp_path / "a", grad_accum_steps=2)
    reference.fit()

    def crashing_step(trainer, batch):
        if trainer.step == 8:  # mid-epoch: 96 samples / 16 = 6 batches, accumulation 2 -> 3 steps an epoch
            raise Interrupt
        return noisy_step(trainer, batch)

    interrupted = build(tmp_path / "b", step_fn=crashing_step, grad_accum_steps=2)
    with pytest.raises(Interrupt):
        interrupted.fit()
    assert latest_checkpoint(tmp_path / "b").name == "step-00000006"

    resumed = build(tmp_path / "b", grad_accum_steps=2)
    resumed.fit()
    assert resumed.step == reference.step == 12
    for name, value in weights(reference).items():
        assert torch.equal(value, weights(resumed)[name]), name
    ema_ref, ema_res = reference.hooks[-1].model.state_dict(), resumed.hooks[-1].model.state_dict()
    assert all(torch.equal(ema_ref[k], ema_res[k]) for k in ema_ref)
    assert resumed.history["train"] == reference.history["train"]


def test_fit_again_continues_instead_of_rewinding_to_the_checkpoint(tmp_path):
    trainer = build(tmp_path, max_steps=4)  # checkpoints at steps 3 and 4
    trainer.fit()
    with torch.no_grad():  # a change made between two fit calls must survive the second call
        trainer.raw_models["model"][0].weight.fill_(7.0)
    trainer.config = dataclasses.replace(trainer.config, max_steps=5, checkpoint_every=100)
    trainer.fit()
    assert trainer.step == 5 and latest_checkpoint(tmp_path).name == "step-00000005"
    assert [row["step"] for row in trainer.history["train"]] == [2, 4, 5]
    assert (trainer.raw_models["model"][0].weight - 7.0).abs().max() < 0.1  # one small step away, not reloaded


def test_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    trainer = build(tmp_path, max_steps=3)
    trainer.fit()
    good = latest_checkpoint(tmp_path)
    assert good is not None and good.name == "step-00000003"

    real_save = torch.save

    def dying_save(obj, path, *args, **kwargs):
        if str(path).endswith("trainer_state.pt"):
            Path(path).write_bytes(b"half a file")  # the process dies mid-write
            raise OSError("disk full")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(train_module.torch, "save", dying_save)
    more = build(tmp_path, max_steps=6)
    with pytest.raises(OSError, match="disk full"):
        more.fit()
    monkeypatch.setattr(train_module.torch, "save", real_save)

    assert latest_checkpoint(tmp_path) == good  # the half-written folder was never renamed into place
    restored = build(tmp_path, max_steps=3)
    restored.load_checkpoint(good)
    assert restored.step == 3
    for name, value in weights(trainer).items():
        assert torch.equal(value, weights(restored)[name])


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path):
    def exploding_step(trainer, batch):
        metrics = noisy_step(trainer, batch)
        if trainer.step >= 4:
            return {"loss": metrics["loss"] * float("nan")}
        return metrics

    trainer = build(tmp_path, step_fn=exploding_step, max_steps=12)
    with pytest.raises(NonFiniteLossError, match=r"NaN/inf.*last good checkpoint is .*step-00000003"):
        trainer.fit()
    assert latest_checkpoint(tmp_path).name == "step-00000003"


def test_gradient_accumulation_matches_one_large_batch():
    def mean_step(trainer, batch):
        x, y = batch
        loss = F.mse_loss(trainer.model(x), y)
        trainer.backward(loss)
        trainer.optimizer_step()
        return {"loss": loss}

    def run(batch_size: int, accum: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(64, 4, generator=g), torch.randn(64, 1, generator=g)
        torch.manual_seed(0)
        model = nn.Linear(4, 1)
        cfg = TrainConfig(max_steps=4, grad_accum_steps=accum, progress=False, device="cpu")
        data = TensorLoader(x, y, batch_size=batch_size, shuffle=False)
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), mean_step, data, cfg).fit()
        return model.state_dict()

    one, accumulated = run(16, 1), run(8, 2)
    for key in one:
        torch.testing.assert_close(one[key], accumulated[key])


def test_two_models_two_optimizers_update_in_order():
    """A GAN-shaped step: D update on detached fakes, then G update through a frozen D."""
    torch.manual_seed(0)
    gen, disc = nn.Linear(2, 2), nn.Linear(2, 1)
    before = {k: v.clone() for k, v in disc.state_dict().items()}
    opts = {"G": torch.optim.Adam(gen.parameters(), 1e-2), "D": torch.optim.Adam(disc.parameters(), 1e-2)}
    seen = []

    def gan_step(trainer, batch):
        (real,) = batch if isinstance(batch, (tuple, list)) else (batch,)
        G, D = trainer.models["G"], trainer.models["D"]
        fake = G(torch.randn_like(real))
        loss_d = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
        trainer.backward(loss_d)
        trainer.optimizer_step("D")
        D.requires_grad_(False)
        loss_g = F.softplus(-D(fake)).mean()
        trainer.backward(loss_g)
        trainer.optimizer_step("G")
        D.requires_grad_(True)
        seen.append((loss_d.item(), loss_g.item()))
        return {"loss_d": loss_d, "loss_g": loss_g}

    data = TensorLoader(torch.randn(64, 2) + 3, batch_size=16)
    cfg = TrainConfig(max_steps=5, log_every=1, progress=False, device="cpu")
    history = Trainer({"G": gen, "D": disc}, opts, gan_step, data, cfg).fit()
    assert len(seen) == 5 and set(history["train"][-1]) == {"step", "loss_d", "loss_g"}
    assert any(not torch.equal(before[k], disc.state_dict()[k]) for k in before)
    with pytest.raises(ValueError, match="say which one"):
        Trainer({"G": gen, "D": disc}, opts, noisy_step, data, cfg).optimizer_step()


def test_early_stopping_triggers_and_restores_best_weights():
    x, y, model = make_problem()
    val_losses = iter([1.0, 0.8, 0.9, 0.95, 0.99, 1.2, 1.3])
    stopper = EarlyStopping("val_loss", patience=3)
    cfg = TrainConfig(max_steps=50, eval_every=2, progress=False, device="cpu")
    snapshots = []

    def eval_fn(trainer):
        snapshots.append({k: v.clone() for k, v in trainer.raw_models["model"].state_dict().items()})
        return {"val_loss": next(val_losses)}

    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05), noisy_step,
                      TensorLoader(x, y, batch_size=16), cfg, eval_fn=eval_fn, hooks=[stopper])
    trainer.fit()
    assert stopper.stopped_at == 10 and trainer.step == 10  # best at eval 2 (step 4), then 3 worse evals
    best = snapshots[1]
    assert all(torch.equal(best[k], model.state_dict()[k]) for k in best)


def test_hook_states_are_matched_by_name_not_position(tmp_path):
    trainer = build(tmp_path, max_steps=3, progress=True)  # hooks: ProgressBar, EMA
    trainer.fit()
    resumed = build(tmp_path, max_steps=6, progress=False)  # hooks: EMA only
    resumed.load_checkpoint(latest_checkpoint(tmp_path))
    saved = trainer.hooks[-1].model.state_dict()
    assert all(torch.equal(v, resumed.hooks[-1].model.state_dict()[k]) for k, v in saved.items())
    assert resumed.hooks[-1].updates == 3


def test_ema_follows_the_formula():
    model = nn.Linear(1, 1, bias=False)
    ema = EMA("model", decay=0.5, warmup=False)

    def set_step(trainer, batch):
        with torch.no_grad():
            trainer.model.weight.fill_(float(trainer.step + 1))
        return {"loss": torch.tensor(0.0)}

    cfg = TrainConfig(max_steps=3, progress=False, device="cpu")
    with torch.no_grad():
        model.weight.fill_(0.0)
    Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), set_step,
            TensorLoader(torch.zeros(4, 1), batch_size=2), cfg, hooks=[ema]).fit()
    # w_ema: 0 -> 0.5*0 + 0.5*1 = 0.5 -> 0.5*0.5 + 0.5*2 = 1.25 -> 0.5*1.25 + 0.5*3 = 2.125
    assert ema.model.weight.item() == pytest.approx(2.125)


def test_max_grad_norm_clips_gradients():
    norms, moves = [], []

    def step(trainer, batch):
        x, y = batch
        loss = 1000 * F.mse_loss(trainer.model(x), y)
        trainer.backward(loss)
        before = torch.cat([p.detach().flatten().clone() for p in trainer.model.parameters()])
        norms.append(trainer.optimizer_step())
        after = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
        moves.append((after - before).norm().item())  # plain SGD with lr 1: the step is the gradient that was used
        return {"loss": loss}

    model = nn.Linear(3, 1)
    cfg = TrainConfig(max_steps=2, max_grad_norm=1.0, progress=False, device="cpu")
    Trainer(model, torch.optim.SGD(model.parameters(), lr=1.0), step,
            TensorLoader(torch.randn(8, 3), torch.randn(8, 1) + 10, batch_size=4), cfg).fit()
    assert all(n is not None and n.item() > 100.0 for n in norms), norms  # the pre-clip norm is returned (~1e4)
    assert moves == pytest.approx([1.0, 1.0], rel=1e-4), moves  # the gradient applied was clipped to norm 1
    assert sum(p.grad is None for p in model.parameters()) == 2  # and gradients were zeroed after the step


def test_tensorboard_tracker_writes_events(tmp_path):
    pytest.importorskip("tensorboard")
    trainer = build(None, max_steps=4, trackers=("tensorboard",), project_dir=str(tmp_path))
    trainer.fit()
    assert list(tmp_path.rglob("events.out.tfevents.*")), "no TensorBoard event file written"


def test_config_round_trips_through_the_checkpoint(tmp_path):
    trainer = build(tmp_path, max_steps=3)
    trainer.run_config = {"hidden": 32, "dataset": "toy"}
    trainer.fit()
    state = torch.load(latest_checkpoint(tmp_path) / "trainer_state.pt", weights_only=True)
    assert TrainConfig(**{**state["config"], "trackers": tuple(state["config"]["trackers"])}) == trainer.config
    assert state["run_config"] == {"hidden": 32, "dataset": "toy"}


@pytest.mark.parametrize("field,value", [("max_steps", 0), ("max_steps", -5), ("grad_accum_steps", 0),
                                         ("log_every", 0), ("eval_every", -1), ("checkpoint_every", -2)])
def test_non_positive_settings_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(TrainConfig(max_steps=1), **{field: value})


def test_checkpoint_every_needs_a_folder():
    with pytest.raises(ValueError, match="checkpoint_dir"):
        TrainConfig(max_steps=10, checkpoint_every=5)


def test_empty_data_is_a_clear_error():
    class Empty:
        def __iter__(self):
            return iter(())

    model = nn.Linear(1, 1)
    cfg = TrainConfig(max_steps=1, progress=False, device="cpu")
    with pytest.raises(ValueError, match="yielded no batch"):
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), noisy_step, Empty(), cfg).fit()


def test_loss_goes_down_on_a_learnable_problem():
    trainer = build(None, max_steps=60)
    history = trainer.fit()
    first, last = history["train"][0]["loss"], history["train"][-1]["loss"]
    assert math.isfinite(last) and last < 0.6 * first, (first, last)


def test_compiled_model_trains_and_checkpoints_plain_names(tmp_path):
    from safetensors.torch import load_file

    trainer = build(tmp_path, max_steps=3, compile=True)
    trainer.fit()
    assert type(trainer.model).__name__ == "OptimizedModule"  # torch.compile ran (through Accelerate)
    saved = load_file(str(latest_checkpoint(tmp_path) / "model.safetensors"))
    assert set(saved) == set(trainer.raw_models["model"].state_dict())  # no "_orig_mod." prefixes


def test_a_trainer_on_another_device_in_the_same_process_gets_its_own_device(monkeypatch):
    """Accelerate keeps the device in a process-wide PartialState; a CPU trainer after a CUDA one must not
    inherit CUDA. Simulated by marking the shared state as another device type."""
    from accelerate.state import PartialState

    build(None, max_steps=1).fit()
    monkeypatch.setitem(PartialState._shared_state, "device", torch.device("meta"))
    trainer = build(None, max_steps=1)
    assert trainer.device.type == "cpu" and PartialState().device.type == "cpu"
    trainer.fit()


def test_hooks_with_state_need_distinct_names(tmp_path):
    x, y, model = make_problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    cfg = TrainConfig(max_steps=2, progress=False, device="cpu", checkpoint_every=2, checkpoint_dir=str(tmp_path))
    with pytest.raises(ValueError, match="both named 'EMA'.*give each its own name"):
        Trainer(model, opt, noisy_step, TensorLoader(x, y, batch_size=16), cfg, hooks=[EMA(), EMA(decay=0.5)])
    slow, fast = EMA(decay=0.99, warmup=False, name="ema_slow"), EMA(decay=0.5, warmup=False, name="ema_fast")
    Trainer(model, opt, noisy_step, TensorLoader(x, y, batch_size=16), cfg, hooks=[slow, fast]).fit()
    state = torch.load(latest_checkpoint(tmp_path) / "trainer_state.pt", weights_only=True)
    assert set(state["hooks"]) == {"ema_slow", "ema_fast"}
    # listed in the other order, each hook still gets its own state back (keyed by name, not position)
    again = [EMA(decay=0.5, name="ema_fast"), EMA(decay=0.99, name="ema_slow")]
    Trainer(model, opt, noisy_step, TensorLoader(x, y, batch_size=16), cfg, hooks=again).load_checkpoint(
        latest_checkpoint(tmp_path))
    assert all(torch.equal(v, again[0].model.state_dict()[k]) for k, v in fast.model.state_dict().items())
    assert all(torch.equal(v, again[1].model.state_dict()[k]) for k, v in slow.model.state_dict().items())
    assert not torch.equal(slow.model[0].weight, fast.model[0].weight)  # the two averages do differ


def test_steps_scale_applies_only_to_configs_that_ask_for_it(monkeypatch):
    """`make rehearse` sets $AIGC_STEPS_SCALE: notebooks scale their own counts (run.profile.count), library
    recipes set scale_steps=True; a count is never scaled twice."""
    monkeypatch.setenv("AIGC_STEPS_SCALE", "0.25")
    plain = build(None, max_steps=8)
    plain.fit()
    assert plain.step == 8  # not scaled: this count may already come from run.profile.count
    scaled = build(None, max_steps=8, scale_steps=True)
    scaled.fit()
    assert scaled.step == 2 and scaled.max_steps == 2 and scaled.history["train"][-1]["step"] == 2
    monkeypatch.delenv("AIGC_STEPS_SCALE")
    assert build(None, max_steps=8, scale_steps=True).max_steps == 8


def test_clipping_goes_through_accelerate(monkeypatch):
    calls = []
    trainer = build(None, max_steps=2, max_grad_norm=0.5)
    real = trainer.accelerator.clip_grad_norm_
    monkeypatch.setattr(trainer.accelerator, "clip_grad_norm_", lambda *a, **k: calls.append(a) or real(*a, **k))
    trainer.fit()
    assert len(calls) == 2 and calls[0][1] == 0.5
