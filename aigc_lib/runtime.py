"""Where and how the course runs: device, precision, seeding, profile, online state, run folders.

Every notebook starts with ``run = start_run(...)`` (derived in notebook 00) and reads everything else
from the returned :class:`Run`.
"""
from __future__ import annotations

import json
import os
import platform
import random
import socket
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

PROFILES = ("smoke", "quick", "full")
PROFILE_ENV = "AIGC_PROFILE"
DEVICE_ENV = "AIGC_DEVICE"
OFFLINE_ENVS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "AIGC_OFFLINE")
STEPS_SCALE_ENV = "AIGC_STEPS_SCALE"  # `make rehearse`: full sizes, step and sample counts scaled down
T = TypeVar("T")


class DeviceUnavailableError(RuntimeError):
    """A device was asked for that this machine does not have."""


# --------------------------------------------------------------------------------------------- device
def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``prefer`` > ``$AIGC_DEVICE`` > cuda > mps > cpu (notebook 00)."""
    wanted = str(prefer) if prefer is not None else os.environ.get(DEVICE_ENV, "")
    wanted = wanted.strip().lower()
    if wanted in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(wanted)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"device {wanted!r} was asked for, but this machine has no CUDA GPU that PyTorch can see "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}). "
            "Use device='auto' or 'cpu', unset AIGC_DEVICE, or on Colab choose Runtime > Change runtime type > T4 GPU."
        )
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceUnavailableError(
            f"device {wanted!r} was asked for, but only {torch.cuda.device_count()} CUDA device(s) exist."
        )
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceUnavailableError(
            f"device {wanted!r} was asked for, but Apple's MPS backend is not available here. Use 'auto' or 'cpu'."
        )
    if device.type not in ("cpu", "cuda", "mps"):
        raise DeviceUnavailableError(f"unknown device {wanted!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")
    return device


@dataclass(frozen=True)
class Precision:
    """How to do arithmetic on a device: autocast dtype and whether fp16 loss scaling is needed."""

    name: str  # "no" (fp32), "bf16" or "fp16": the names Accelerate's ``mixed_precision`` takes
    dtype: torch.dtype
    grad_scaler: bool

    def __str__(self) -> str:
        return {"no": "fp32"}.get(self.name, self.name) + (" + GradScaler" if self.grad_scaler else "")


def precision_for(device: torch.device, prefer: str | None = None) -> Precision:
    """bf16 where the GPU supports it (Ampere+), fp16 + GradScaler on older GPUs (T4), fp32 on CPU/MPS."""
    if prefer not in (None, "auto"):
        table = {"no": torch.float32, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
        if prefer not in table:
            raise ValueError(f"unknown precision {prefer!r}: use 'auto', 'fp32', 'bf16' or 'fp16'.")
        if device.type == "cpu" and prefer == "fp16":
            raise ValueError("fp16 autocast is a GPU feature; on the CPU use 'fp32' or 'bf16'.")
        name = "no" if prefer in ("no", "fp32") else prefer
        return Precision(name, table[prefer], grad_scaler=(name == "fp16"))
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return Precision("bf16", torch.bfloat16, grad_scaler=False)
        return Precision("fp16", torch.float16, grad_scaler=True)  # T4 / V100: no bf16 tensor cores
    return Precision("no", torch.float32, grad_scaler=False)


# --------------------------------------------------------------------------------------------- seeding
def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and PyTorch (all devices); optionally make kernels deterministic (notebook 00)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


# --------------------------------------------------------------------------------------------- profile
@dataclass(frozen=True)
class Profile:
    """How big a run is: ``smoke`` (seconds, CI), ``quick`` (laptop CPU, minutes), ``full`` (a GPU)."""

    name: str
    source: str  # why this profile: "parameter", "$AIGC_PROFILE" or "auto (...)"

    def pick(self, smoke: T, quick: T, full: T) -> T:
        """The value for this profile, e.g. ``steps = profile.pick(smoke=20, quick=500, full=5000)``."""
        return {"smoke": smoke, "quick": quick, "full": full}[self.name]

    def count(self, smoke: int, quick: int, full: int) -> int:
        """A step or sample count for this profile, scaled by ``$AIGC_STEPS_SCALE`` (``make rehearse``)."""
        return scaled_count(self.pick(smoke, quick, full))

    def __str__(self) -> str:
        return f"{self.name} (from {self.source})"


def steps_scale() -> float:
    """1.0, or ``$AIGC_STEPS_SCALE`` (e.g. 0.01): how much ``make rehearse`` shrinks step and sample counts."""
    raw = os.environ.get(STEPS_SCALE_ENV, "").strip()
    if not raw:
        return 1.0
    try:
        scale = float(raw)
    except ValueError:
        scale = -1.0
    if not 0 < scale <= 1:
        raise ValueError(f"${STEPS_SCALE_ENV}={raw!r}: give a number in (0, 1], e.g. 0.01, or unset it.")
    return scale


def scaled_count(n: int) -> int:
    """``n`` times :func:`steps_scale`, at least 1: for step and sample counts, never for sizes."""
    return n if n <= 0 else max(1, round(n * steps_scale()))


def resolve_profile(requested: str | None = None, device: torch.device | None = None) -> Profile:
    """Notebook parameter > ``$AIGC_PROFILE`` > auto; ``auto`` is ``full`` on a GPU, ``quick`` otherwise."""
    env = os.environ.get(PROFILE_ENV, "").strip().lower()
    if requested not in (None, ""):
        value, source = str(requested).strip().lower(), "parameter"
    elif env:
        value, source = env, f"${PROFILE_ENV}"
    else:
        value, source = "auto", "default"
    if value == "auto":
        device = device or pick_device()
        name = "full" if device.type == "cuda" else "quick"
        return Profile(name, f"auto: {device.type} {'GPU' if device.type == 'cuda' else 'device'}")
    if value not in PROFILES:
        raise ValueError(f"unknown profile {value!r} (from {source}): use one of {PROFILES + ('auto',)}.")
    return Profile(value, source)


# --------------------------------------------------------------------------------------------- online
_online_cache: dict[str, bool] = {}


def is_online(host: str = "huggingface.co", timeout: float = 1.5) -> bool:
    """True when the Hugging Face hub can be reached; ``HF_HUB_OFFLINE=1`` (or AIGC_OFFLINE=1) forces False."""
    if any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on") for name in OFFLINE_ENVS):
        return False
    if host not in _online_cache:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                _online_cache[host] = True
        except OSError:
            _online_cache[host] = False
    return _online_cache[host]


def is_headless() -> bool:
    """True with ``AIGC_HEADLESS=1`` (set by ``make course``/``make test``) or outside a Jupyter kernel."""
    if os.environ.get("AIGC_HEADLESS", "").strip() in ("1", "true", "yes"):
        return True
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        return True
    return shell is None or shell.__class__.__name__ != "ZMQInteractiveShell"


# --------------------------------------------------------------------------------------------- describe
def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment_report(device: torch.device | None = None, profile: Profile | None = None) -> dict[str, Any]:
    """Everything ``describe`` prints, as a dict (also stored in each notebook's results)."""
    device = device or pick_device()
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda or "none",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "precision": str(precision_for(device)),
        "profile": str(profile or resolve_profile(device=device)),
        "online": is_online(),
        "hf_home": os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface")),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        report["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        report["compute_capability"] = f"{props.major}.{props.minor}"
    for package in ("torchvision", "transformers", "diffusers", "accelerate", "peft"):
        report[package] = _version(package)
    return report


def describe(device: torch.device | None = None, profile: Profile | None = None) -> dict[str, Any]:
    """Print device, precision, profile, online state and library versions in one table (notebook 00)."""
    report = environment_report(device, profile)
    width = max(len(k) for k in report)
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    return report


# --------------------------------------------------------------------------------------------- runs
@dataclass
class Run:
    """One notebook execution: its profile, device, precision, seed and output folder."""

    name: str
    profile: Profile
    device: torch.device
    precision: Precision
    seed: int
    dir: Path
    online: bool
    started: float = field(default_factory=time.perf_counter)

    @property
    def figures_dir(self) -> Path:
        return self.dir / "figures"

    @property
    def checkpoints_dir(self) -> Path:
        return self.dir / "checkpoints"

    def save_results(self, results: dict[str, Any]) -> Path:
        """Write ``results.json`` (metrics the tests assert on), adding profile, device and wall time."""
        payload = {
            "notebook": self.name,
            "profile": self.profile.name,
            "device": str(self.device),
            "precision": self.precision.name,
            "online": self.online,
            "seconds": round(time.perf_counter() - self.started, 2),
            **results,
        }
        path = self.dir / "results.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=2, default=_to_jsonable))
        os.replace(tmp, path)
        return path


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in results.json")


def start_run(
    name: str,
    profile: str | None = None,
    seed: int = 0,
    run_dir: str | os.PathLike | None = None,
    device: str | None = None,
    deterministic: bool = False,
) -> Run:
    """Resolve device, precision and profile, seed everything and create ``runs/<name>`` (notebook 00)."""
    dev = pick_device(device)
    prof = resolve_profile(profile, dev)
    seed_everything(seed, deterministic)
    folder = Path(run_dir) if run_dir else Path(os.environ.get("AIGC_RUNS_DIR", "runs")) / name
    folder.mkdir(parents=True, exist_ok=True)
    run = Run(name, prof, dev, precision_for(dev), seed, folder, is_online())
    if is_headless():
        os.environ["AIGC_FIGURES_DIR"] = str(run.figures_dir)
    print(
        f"[aigc] {name}: profile {prof}, device {dev} ({run.precision}), seed {seed}, "
        f"{'online' if run.online else 'offline'}, outputs in {folder}"
    )
    return run
