"""One training loop for every model in the course, built on Hugging Face Accelerate.

The loop in :meth:`Trainer.fit` is short and plain. Topic math (a GAN's two updates, a language model's
loss, a diffusion model's noise prediction) lives in a *step function* ``step_fn(trainer, batch) -> metrics``
that calls ``trainer.backward(loss)`` and ``trainer.optimizer_step(name)`` itself, so a step with two models
and two optimizers is as natural as a step with one. Extras are small hooks run in list order.
Accelerate places models and data and runs several processes; precision is the trainer's own, one code path as
in nanoGPT: ``torch.autocast`` (bf16 or fp16, off in fp32) around the step and ``GradScaler(enabled=fp16)``,
so fp16 with loss scaling (a T4's path) runs on a CPU too.
Derived in notebook 00 ("the training loop"); every later chapter calls it.
"""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import math
import os
import random
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState, PartialState
from accelerate.utils import gather_object, send_to_device
from safetensors.torch import load_model, save_model
from torch import nn

from aigc_lib.runtime import Precision, pick_device, precision_for, scaled_count, steps_scale
from aigc_lib.storage import atomic_dir, atomic_write

StepFn = Callable[["Trainer", Any], Mapping[str, Any]]
EvalFn = Callable[["Trainer"], Mapping[str, Any]]


class NonFiniteLossError(RuntimeError):
    """A metric became NaN or infinite; training stopped before writing a bad checkpoint."""


@dataclass(frozen=True)
class TrainConfig:
    """How long and how to train. Stored inside every checkpoint; vary it with ``dataclasses.replace``."""

    max_steps: int  # optimizer updates (each one sees grad_accum_steps batches)
    grad_accum_steps: int = 1
    max_grad_norm: float | None = None  # clip the global gradient norm before each optimizer step
    precision: str = "auto"  # "auto" (runtime policy), "fp32", "bf16" or "fp16"
    device: str | None = None  # None: runtime.pick_device() (cuda > mps > cpu)
    compile: bool = False  # torch.compile the models (inductor)
    channels_last: bool = False  # NHWC memory layout for conv nets on GPUs
    log_every: int = 10  # metrics are averaged on the device and read back every log_every steps
    eval_every: int = 0  # 0: evaluate only at the end (when an eval_fn is given)
    checkpoint_every: int = 0  # 0: no periodic checkpoints
    checkpoint_dir: str | None = None
    keep_checkpoints: int = 2
    resume: bool = True  # continue from the newest complete checkpoint in checkpoint_dir
    trackers: tuple[str, ...] = ()  # ("tensorboard",) or ("tensorboard", "wandb"); off in tests
    project_dir: str | None = None  # where trackers write; default: checkpoint_dir or "runs/logs"
    progress: bool = True  # tqdm.auto progress bar with live metrics
    # True: max_steps is multiplied by $AIGC_STEPS_SCALE (`make rehearse`). For library recipes only: a notebook
    # scales its counts with run.profile.count(...) and leaves this False, so no count is scaled twice.
    scale_steps: bool = False

    def __post_init__(self) -> None:
        for name in ("max_steps", "grad_accum_steps", "log_every", "keep_checkpoints"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}.")
        for name in ("eval_every", "checkpoint_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"TrainConfig.{name} must be 0 (off) or a positive integer, got {value!r}.")
        if self.checkpoint_every and not self.checkpoint_dir:
            raise ValueError("TrainConfig.checkpoint_every is set but checkpoint_dir is not: say where to write.")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ValueError(f"TrainConfig.max_grad_norm must be positive or None, got {self.max_grad_norm!r}.")


# ----------------------------------------------------------------------------------------------- hooks
class Hook:
    """Base class for trainer extras. Override what you need; hooks run in list order.

    A hook's state is saved in checkpoints under its ``name`` (default: the class name), so hooks with state
    need distinct names: ``EMA("G", name="ema_G")`` beside ``EMA("D", name="ema_D")``.
    """

    name: str = ""

    def on_attach(self, trainer: Trainer) -> None: ...
    def on_fit_start(self, trainer: Trainer) -> None: ...
    def on_step_end(self, trainer: Trainer) -> None: ...
    def on_log(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...
    def on_eval(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...
    def on_fit_end(self, trainer: Trainer) -> None: ...
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class ProgressBar(Hook):
    """A ``tqdm.auto`` bar over optimizer steps showing the latest logged metrics."""

    def on_fit_start(self, trainer: Trainer) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=trainer.max_steps, initial=trainer.step, desc="train",
                        disable=not trainer.accelerator.is_main_process, dynamic_ncols=True)

    def on_step_end(self, trainer: Trainer) -> None:
        self.bar.update(1)

    def on_log(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()}, refresh=False)

    def on_fit_end(self, trainer: Trainer) -> None:
        self.bar.close()


class EarlyStopping(Hook):
    """Stop when an evaluation metric has not improved for ``patience`` evaluations; restore the best weights."""

    def __init__(self, metric: str = "val_loss", patience: int = 3, mode: str = "min",
                 min_delta: float = 0.0, restore_best: bool = True, name: str = "EarlyStopping") -> None:
        self.name = name
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping mode must be 'min' or 'max', got {mode!r}.")
        self.metric, self.patience, self.mode = metric, patience, mode
        self.min_delta, self.restore_best = min_delta, restore_best
        self.best: float | None = None
        self.best_step = 0
        self.bad_evals = 0
        self.stopped_at: int | None = None
        self._best_weights: dict[str, dict[str, torch.Tensor]] | None = None

    def on_eval(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.metric not in metrics:
            raise KeyError(f"EarlyStopping watches {self.metric!r} but eval_fn returned {sorted(metrics)}.")
        value = metrics[self.metric]
        better = self.best is None or (
            value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta)
        if better:
            self.best, self.best_step, self.bad_evals = value, trainer.step, 0
            if self.restore_best:
                self._best_weights = {n: {k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()}
                                      for n, m in trainer.raw_models.items()}
        else:
            self.bad_evals += 1
            if self.bad_evals >= self.patience:
                self.stopped_at = trainer.step
                trainer.should_stop = True

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.stopped_at is not None:
            trainer.print(f"early stopping at step {self.stopped_at}: {self.metric} best {self.best:.4g} "
                          f"at step {self.best_step}" + (", best weights restored" if self.restore_best else ""))
            if self.restore_best and self._best_weights is not None:
                for name, model in trainer.raw_models.items():
                    model.load_state_dict(self._best_weights[name])

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step, "bad_evals": self.bad_evals,
                "best_weights": self._best_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_step, self.bad_evals = state["best"], state["best_step"], state["bad_evals"]
        self._best_weights = state["best_weights"]


class EMA(Hook):
    """Exponential moving average of a model's weights: ``w_ema <- decay * w_ema + (1 - decay) * w``."""

    def __init__(self, model: str = "model", decay: float = 0.999, warmup: bool = True, name: str = "EMA") -> None:
        self.model_name, self.decay, self.warmup, self.name = model, decay, warmup, name
        self.model: nn.Module | None = None  # the averaged copy; use it for sampling and evaluation
        self.updates = 0

    def on_attach(self, trainer: Trainer) -> None:
        self.model = copy.deepcopy(trainer.raw_models[self.model_name]).eval().requires_grad_(False)

    @torch.no_grad()
    def on_step_end(self, trainer: Trainer) -> None:
        self.updates += 1
        # warm-up as in Keras/timm: small decay early so the average is not dominated by the random init
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates)) if self.warmup else self.decay
        live = trainer.raw_models[self.model_name].state_dict()
        for name, avg in self.model.state_dict().items():
            if avg.dtype.is_floating_point:
                avg.lerp_(live[name].detach(), 1 - decay)
            else:
                avg.copy_(live[name])

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "weights": self.model.state_dict() if self.model is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = state["updates"]
        self.model.load_state_dict(state["weights"])


# ----------------------------------------------------------------------------------------------- trainer
@dataclass
class _Window:
    """Metrics summed on the device between two log points (no host sync per step)."""

    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # per key: a step function may skip a metric
    count: int = 0
    nonfinite: torch.Tensor | None = None


class Trainer:
    """Runs ``step_fn`` for ``config.max_steps`` optimizer steps with checkpoints, evaluation and hooks."""

    def __init__(
        self,
        models: nn.Module | Mapping[str, nn.Module],
        optimizers: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer],
        step_fn: StepFn,
        data: Iterable,
        config: TrainConfig,
        *,
        schedulers: Mapping[str, Any] | None = None,
        eval_fn: EvalFn | None = None,
        hooks: Iterable[Hook] = (),
        run_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.run_config = dict(run_config or {})  # the caller's model/data config, saved with checkpoints
        self.raw_models = {"model": models} if isinstance(models, nn.Module) else dict(models)
        raw_opts = {"model": optimizers} if isinstance(optimizers, torch.optim.Optimizer) else dict(optimizers)
        missing = set(schedulers or {}) - set(raw_opts)
        if missing:
            raise ValueError(f"schedulers {sorted(missing)} have no optimizer of the same name ({sorted(raw_opts)}).")
        self.schedulers = dict(schedulers or {})
        self.step_fn, self.eval_fn, self.data = step_fn, eval_fn, data
        self.hooks: list[Hook] = ([ProgressBar()] if config.progress else []) + list(hooks)
        self._hook_states = _keyed_by_name(self.hooks)
        device = pick_device(config.device)  # raises a clear error for 'cuda' on a machine without one
        self.precision: Precision = precision_for(device, config.precision)
        self.accelerator = _make_accelerator(config, device)
        self.device = self.accelerator.device
        # fp16 loss scaling: the loss is multiplied by S before backward so small gradients survive in fp16;
        # the optimizer step divides by S, and is skipped (S halved) when a gradient overflowed to inf/NaN.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.grad_scaler)
        if config.channels_last:
            for model in self.raw_models.values():
                model.to(memory_format=torch.channels_last)
        prepared = self.accelerator.prepare(*self.raw_models.values(), *raw_opts.values())
        prepared = prepared if isinstance(prepared, (list, tuple)) else [prepared]
        self.models = dict(zip(self.raw_models, prepared[: len(self.raw_models)]))
        if config.compile:  # here, not via Accelerate's dynamo_backend, which a process's first Accelerator fixes
            self.models = {name: torch.compile(model) for name, model in self.models.items()}
        self.optimizers = dict(zip(raw_opts, prepared[len(self.raw_models):]))
        if hasattr(data, "shard") and self.accelerator.num_processes > 1:
            data.shard(self.accelerator.num_processes, self.accelerator.process_index)
        self.step = 0
        self.should_stop = False
        self.history: dict[str, list[dict[str, float]]] = {"train": [], "eval": []}
        self.last_checkpoint: Path | None = None
        self._window = _Window()
        self._run_hooks("on_attach")

    # -------------------------------------------------------------- what a step function calls
    @property
    def model(self) -> nn.Module:
        """The only model (for single-model step functions)."""
        if len(self.models) != 1:
            raise AttributeError(f"this trainer has several models {sorted(self.models)}: use trainer.models[name].")
        return next(iter(self.models.values()))

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward-pass precision: ``torch.autocast`` in bf16 or fp16, a no-op in fp32 (notebook 03)."""
        return torch.autocast(self.device.type, dtype=self.precision.dtype, enabled=self.precision.name != "no")

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()`` outside autocast, with loss scaling (fp16) and division by ``grad_accum_steps``."""
        with torch.autocast(self.device.type, enabled=False):
            self.accelerator.backward(self.scaler.scale(loss))

    def optimizer_step(self, name: str | None = None) -> torch.Tensor | None:
        """Clip, step and zero the gradients of one optimizer (and step its scheduler); returns the grad norm."""
        if name is None:
            if len(self.optimizers) != 1:
                raise ValueError(f"several optimizers {sorted(self.optimizers)}: say which one to step.")
            name = next(iter(self.optimizers))
        optimizer = self.optimizers[name]
        grad_norm = None
        if self.accelerator.sync_gradients:  # False on the first grad_accum_steps - 1 micro-batches
            if self.config.max_grad_norm is not None:
                self.scaler.unscale_(optimizer)  # clip the true gradients, not the loss-scaled ones
                params = [p for group in optimizer.param_groups for p in group["params"]]
                grad_norm = self.accelerator.clip_grad_norm_(params, self.config.max_grad_norm)
            self.scaler.step(optimizer)  # optimizer.step(), unless fp16 gradients overflowed
            self.scaler.update()
            if name in self.schedulers:
                self.schedulers[name].step()
        optimizer.zero_grad(set_to_none=True)  # a no-op inside an accumulation window
        return grad_norm

    @property
    def is_main_process(self) -> bool:
        return self.accelerator.is_main_process

    def print(self, *args: Any) -> None:
        """Print once (on the main process)."""
        self.accelerator.print(*args)

    # -------------------------------------------------------------- the loop
    def fit(self) -> dict[str, list[dict[str, float]]]:
        """Train until ``max_steps`` (or early stopping). A fresh trainer first resumes from the latest checkpoint;
        calling ``fit`` again (e.g. after raising ``max_steps``) continues from where this trainer is."""
        cfg = self.config
        max_steps = self.max_steps
        if max_steps != cfg.max_steps:
            self.print(f"[aigc.train] rehearsal: {cfg.max_steps} steps x $AIGC_STEPS_SCALE {steps_scale():g} "
                       f"= {max_steps} steps")
        fresh = self.step == 0
        if fresh and cfg.resume and cfg.checkpoint_dir and (ckpt := latest_checkpoint(cfg.checkpoint_dir)):
            self.load_checkpoint(ckpt)
        if cfg.trackers:
            self.accelerator.init_trackers("aigc", config=_flat({**asdict(cfg), **self.run_config}))
        for model in self.models.values():
            model.train()
        self._run_hooks("on_fit_start")
        batches = self._batches()
        while self.step < max_steps and not self.should_stop:
            for model in self.models.values():  # every model starts an optimizer step with empty gradients
                model.zero_grad(set_to_none=True)
            for _ in range(cfg.grad_accum_steps):
                batch = next(batches)
                with self.accelerator.accumulate(*self.models.values()), self.autocast():
                    metrics = self.step_fn(self, batch)
                self._accumulate(metrics)
            self.step += 1
            self._run_hooks("on_step_end")
            last = self.step == max_steps
            if self.step % cfg.log_every == 0 or last:
                self._log()
            if self.eval_fn is not None and ((cfg.eval_every and self.step % cfg.eval_every == 0) or last):
                self.evaluate()
            if cfg.checkpoint_every and (self.step % cfg.checkpoint_every == 0 or last or self.should_stop):
                self.save_checkpoint()
        if self._window.count:
            self._log()
        self._run_hooks("on_fit_end")
        if cfg.trackers:
            self.accelerator.end_training()
        return self.history

    @property
    def max_steps(self) -> int:
        """``config.max_steps``, times ``$AIGC_STEPS_SCALE`` when ``config.scale_steps`` is set (rehearsals)."""
        return scaled_count(self.config.max_steps) if self.config.scale_steps else self.config.max_steps

    def evaluate(self) -> dict[str, float]:
        """Run ``eval_fn`` in eval mode without gradients; record and return its metrics."""
        for model in self.models.values():
            model.eval()
        with torch.no_grad():  # fp32: exact metrics; an eval_fn may use trainer.autocast() for speed
            metrics = {k: _as_float(v) for k, v in self.eval_fn(self).items()}
        for model in self.models.values():
            model.train()
        self.history["eval"].append({"step": self.step, **metrics})
        self._check_finite(metrics, "evaluation")
        if self.config.trackers:
            self.accelerator.log(metrics, step=self.step)
        self._run_hooks("on_eval", metrics)
        return metrics

    # -------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path:
        """Write ``step-XXXXXXXX/`` atomically (:func:`aigc_lib.storage.atomic_dir`) and point ``latest`` at it."""
        self._flush_nonfinite()  # never write a checkpoint of a run that has gone NaN
        root = Path(self.config.checkpoint_dir)
        final = root / f"step-{self.step:08d}"
        acc = self.accelerator
        rng_states = gather_object([_rng_state()])  # one per process, in process order
        if acc.is_main_process:
            with atomic_dir(final) as tmp:  # a reader sees the old checkpoint or the complete new one
                for index, rng in enumerate(rng_states):
                    torch.save(rng, tmp / f"rng-{index}.pt")
                for name, model in self.raw_models.items():
                    save_model(model, str(tmp / f"{name}.safetensors"))
                torch.save(self._trainer_state(), tmp / "trainer_state.pt")
                _fsync_dir(tmp)
            atomic_write(root / "latest", final.name)
            for old in sorted(root.glob("step-*"))[: -self.config.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        self.last_checkpoint = final
        return final

    def _trainer_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "config": asdict(self.config),
            "run_config": self.run_config,
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            # fp16: the loss scale S and its growth tracker, so a resumed run scales exactly as an unbroken one
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "data": self.data.state_dict() if hasattr(self.data, "state_dict") else None,
            "hooks": {name: hook.state_dict() for name, hook in self._hook_states.items()},
            "history": self.history,
        }

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore models, optimizers, schedulers, scaler, data position, hooks, history and RNG states."""
        path = Path(path)
        state = torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=True)
        for name, model in self.raw_models.items():
            load_model(model, str(path / f"{name}.safetensors"), device=str(self.device))
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state["schedulers"][name])
        if state["scaler"] is not None and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        if state["data"] is not None and hasattr(self.data, "load_state_dict"):
            self.data.load_state_dict(state["data"])
        for name, hook in self._hook_states.items():
            if name in state["hooks"]:
                hook.load_state_dict(state["hooks"][name])
            else:
                self.print(f"[aigc.train] checkpoint has no state for hook {name!r}; it starts fresh")
        self.history = state["history"]
        self.step = state["step"]
        rng_file = path / f"rng-{self.accelerator.process_index}.pt"
        _set_rng_state(torch.load(rng_file, weights_only=True))
        self.last_checkpoint = path
        self.print(f"[aigc.train] resumed from {path} at step {self.step}")

    # -------------------------------------------------------------- internals
    def _batches(self) -> Iterator[Any]:
        channels_last = self.config.channels_last
        empty_epochs = 0  # one empty pass is normal (resumed exactly at an epoch's end), two are not
        while empty_epochs < 2:
            empty_epochs += 1
            for batch in self.data:
                empty_epochs = 0
                batch = send_to_device(batch, self.device, non_blocking=True)
                if channels_last:
                    batch = _to_channels_last(batch)
                yield batch
        raise ValueError("the training data yielded no batch: is the dataset smaller than one batch?")

    def _accumulate(self, metrics: Mapping[str, Any]) -> None:
        window = self._window
        for key, value in metrics.items():
            value = value.detach().float().mean() if torch.is_tensor(value) else torch.tensor(float(value))
            value = value.to(self.device)
            window.sums[key] = window.sums[key] + value if key in window.sums else value
            window.counts[key] = window.counts.get(key, 0) + 1
            bad = ~torch.isfinite(value)
            window.nonfinite = bad if window.nonfinite is None else window.nonfinite | bad
        window.count += 1

    def _flush_nonfinite(self) -> None:
        nonfinite = self._window.nonfinite
        if nonfinite is not None and bool(nonfinite.item()):
            self._check_finite({k: (v / self._window.counts[k]).item() for k, v in self._window.sums.items()},
                               "training")

    def _check_finite(self, metrics: Mapping[str, float], where: str) -> None:
        bad = [k for k, v in metrics.items() if not math.isfinite(v)]
        if bad:
            keep = f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else \
                "no checkpoint had been written yet"
            raise NonFiniteLossError(
                f"{where} metric(s) {bad} became NaN/inf by step {self.step}; training stopped and {keep}. "
                "Resuming repeats the same run, so change something first: a lower learning rate (a new "
                "optimizer, resume=False), TrainConfig.max_grad_norm, or fp32 (precision='fp32')."
            )

    def _log(self) -> None:
        window = self._window
        self._flush_nonfinite()
        metrics = {k: (v / window.counts[k]).item() for k, v in window.sums.items()}
        if self.accelerator.num_processes > 1:  # average over processes so every rank logs the same
            t = torch.tensor(list(metrics.values()), device=self.device)
            metrics = dict(zip(metrics, self.accelerator.reduce(t, reduction="mean").tolist()))
        self._window = _Window()
        self.history["train"].append({"step": self.step, **metrics})
        if self.config.trackers:
            self.accelerator.log(metrics, step=self.step)
        self._run_hooks("on_log", metrics)

    def _run_hooks(self, event: str, *args: Any) -> None:
        for hook in self.hooks:
            getattr(hook, event, lambda *a: None)(self, *args)


# ----------------------------------------------------------------------------------------------- helpers
def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint folder (``latest`` pointer, else the highest step), or None."""
    root = Path(checkpoint_dir)
    pointer = root / "latest"
    if pointer.is_file():
        candidate = root / pointer.read_text().strip()
        if (candidate / "trainer_state.pt").is_file():
            return candidate
    complete = [p for p in sorted(root.glob("step-*")) if (p / "trainer_state.pt").is_file()]
    return complete[-1] if complete else None


def _keyed_by_name(hooks: Iterable[Hook]) -> dict[str, Hook]:
    """The hooks that keep state, by ``name`` (their checkpoint keys); two with one name are an error."""
    keyed: dict[str, Hook] = {}
    for hook in hooks:
        if type(hook).state_dict is Hook.state_dict:  # nothing to save
            continue
        name = getattr(hook, "name", "") or type(hook).__name__
        if name in keyed:
            raise ValueError(f"two hooks with state are both named {name!r}, so their checkpoint states would "
                             f"collide: give each its own name, e.g. {type(hook).__name__}(..., name='{name}_2').")
        keyed[name] = hook
    return keyed


def _make_accelerator(cfg: TrainConfig, device: torch.device) -> Accelerator:
    """Accelerate for devices, data and multi-GPU; mixed precision stays with the trainer (autocast + scaler)."""
    single = int(os.environ.get("WORLD_SIZE", "1")) == 1
    partial = PartialState._shared_state
    if single and partial and partial.get("device") is not None and partial["device"].type != device.type:
        # a CPU trainer after a CUDA one (or back) in one process: the device lives in the PartialState
        AcceleratorState._reset_state(reset_partial_state=True)
    state = AcceleratorState._shared_state
    if single and state and state.get("_mixed_precision") != "no":
        # another Accelerator in this process (a benchmark's plain loop) set a precision: ours is "no"
        AcceleratorState._reset_state()
    if single:
        # accumulation state (sync flag, active dataloader) is process-wide in accelerate; under 0.34, after the
        # other unit tests in one process, every micro-batch synced and accumulation silently stopped (make
        # test-lowest: 22% off one large batch, twice; with this reset it matches). The trainer prepares no dataloader.
        GradientState._reset_state()
    log_with = [t for t in cfg.trackers if t != "wandb" or _has_module("wandb")]
    accelerator = Accelerator(
        cpu=device.type == "cpu",
        mixed_precision="no",
        gradient_accumulation_steps=cfg.grad_accum_steps,
        log_with=log_with or None,
        project_dir=cfg.project_dir or cfg.checkpoint_dir or "runs/logs",
        step_scheduler_with_optimizer=False,  # schedulers step once per optimizer step, in optimizer_step
    )
    if accelerator.device.type != device.type:
        raise RuntimeError(f"asked to train on {device.type} but Accelerate set up {accelerator.device.type}: "
                           "this process was started for another device; restart the kernel.")
    return accelerator


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_dir(folder: Path) -> None:
    for file in folder.iterdir():
        with open(file, "rb") as f:
            os.fsync(f.fileno())


def _to_channels_last(batch: Any) -> Any:
    if torch.is_tensor(batch) and batch.dim() == 4 and batch.is_floating_point():
        return batch.contiguous(memory_format=torch.channels_last)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_channels_last(b) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_channels_last(v) for k, v in batch.items()}
    return batch


def _as_float(value: Any) -> float:
    return float(value.detach().float().mean().item()) if torch.is_tensor(value) else float(value)


def _flat(config: Mapping[str, Any]) -> dict[str, Any]:
    """Tracker configs take scalars only."""
    return {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in config.items()}
