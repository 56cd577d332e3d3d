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
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np
import torch

from aigc_lib.storage import atomic_write
from aigc_lib.machine import matmul_gflops
from aigc_lib.threads import set_cpu_threads

PROFILES = ("smoke", "quick", "full")
PROFILE_ENV = "AIGC_PROFILE"
DEVICE_ENV = "AIGC_DEVICE"
OFFLINE_ENVS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "AIGC_OFFLINE")
STEPS_SCALE_ENV = "AIGC_STEPS_SCALE"  # `make rehearse`: full sizes, step and sample counts scaled down
EMULATE_ENV = "AIGC_EMULATE"  # "t4": behave like Colab's free GPU (no bf16, 15 GiB) to catch its bugs elsewhere
T4_MEMORY_BYTES = 15 * 2**30  # what a T4 (16 GB card) leaves to PyTorch on Colab: about 15 GiB
HF_ENDPOINT_ENV = "HF_ENDPOINT"  # the hub's address; a mirror such as https://hf-mirror.com replaces it
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
PROXY_ENVS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
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
    try:
        device = torch.device(wanted)
    except RuntimeError:  # torch's own message ("Expected one of cpu, cuda, ...") lists devices we do not support
        raise DeviceUnavailableError(
            f"unknown device {wanted!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.") from None
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


def emulated_gpu() -> str | None:
    """``"t4"`` when ``$AIGC_EMULATE=t4`` asks the runtime to behave like Colab's free T4, else None."""
    value = os.environ.get(EMULATE_ENV, "").strip().lower()
    if value in ("", "none", "0"):
        return None
    if value != "t4":
        raise ValueError(f"${EMULATE_ENV}={value!r}: the only GPU the course emulates is 't4'; unset it otherwise.")
    return value


def cpu_autocast_supports(dtype: torch.dtype) -> bool:
    """Whether this torch runs CPU autocast in ``dtype`` (bf16 for years; fp16 since about torch 2.4)."""
    if dtype not in _cpu_autocast_cache:
        with warnings.catch_warnings():  # an unsupported dtype warns and disables autocast: that is the answer
            warnings.simplefilter("ignore")
            with torch.autocast("cpu", dtype=dtype):
                _cpu_autocast_cache[dtype] = torch.is_autocast_enabled("cpu")
    return _cpu_autocast_cache[dtype]


_cpu_autocast_cache: dict[torch.dtype, bool] = {}


def precision_for(device: torch.device, prefer: str | None = None) -> Precision:
    """bf16 where the GPU supports it (Ampere+), fp16 + GradScaler on older GPUs (T4), fp32 on CPU/MPS.

    Under ``$AIGC_EMULATE=t4`` there is no bf16: ``auto`` is fp16 + GradScaler on any device (CPU included,
    where torch's CPU autocast runs fp16), so the Colab path runs wherever the course is rehearsed."""
    t4 = emulated_gpu() == "t4"
    if prefer not in (None, "auto"):
        table = {"no": torch.float32, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
        if prefer not in table:
            raise ValueError(f"unknown precision {prefer!r}: use 'auto', 'fp32', 'bf16' or 'fp16'.")
        name = "no" if prefer in ("no", "fp32") else prefer
        if t4 and name == "bf16":
            raise ValueError(f"precision 'bf16' was asked for, but ${EMULATE_ENV}=t4 emulates a T4, which has no "
                             "bf16: use precision='auto' (fp16 + GradScaler there) or unset the emulation.")
        if device.type == "cpu" and name != "no" and not cpu_autocast_supports(table[prefer]):
            raise ValueError(f"this torch ({torch.__version__}) has no {name} autocast on the CPU: use 'fp32', "
                             "or a newer torch (CPU fp16 autocast arrived around 2.4).")
        return Precision(name, table[prefer], grad_scaler=(name == "fp16"))
    if t4:
        return Precision("fp16", torch.float16, grad_scaler=True)
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
_online_cache: dict[tuple[str, str], bool] = {}


def hub_endpoint() -> str:
    """The hub's address: ``$HF_ENDPOINT`` (a mirror, e.g. https://hf-mirror.com) or https://huggingface.co."""
    endpoint = os.environ.get(HF_ENDPOINT_ENV, "").strip().rstrip("/") or DEFAULT_HF_ENDPOINT
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"${HF_ENDPOINT_ENV}={endpoint!r} is not an http(s) address: "
                         "use e.g. https://huggingface.co or https://hf-mirror.com.")
    return endpoint


def proxy_for(url: str) -> str | None:
    """The proxy that requests to ``url`` go through (HTTPS_PROXY/https_proxy/ALL_PROXY, minus NO_PROXY)."""
    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):  # reads NO_PROXY / no_proxy
        return None
    names = PROXY_ENVS if parts.scheme == "https" else ("HTTP_PROXY", "http_proxy", *PROXY_ENVS[2:])
    return next((os.environ[n].strip() for n in names if os.environ.get(n, "").strip()), None)


def is_online(endpoint: str | None = None, timeout: float = 1.5) -> bool:
    """True when the hub (``$HF_ENDPOINT`` or huggingface.co) answers; ``HF_HUB_OFFLINE=1`` forces False.

    Without a proxy this opens a TCP connection to the hub's host; with one (``HTTPS_PROXY``, ``ALL_PROXY``)
    it sends a HEAD request through the proxy, since a proxied machine often cannot reach the hub directly.
    """
    if any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on") for name in OFFLINE_ENVS):
        return False
    endpoint = (endpoint or hub_endpoint()).rstrip("/")
    proxy = proxy_for(endpoint)
    key = (endpoint, proxy or "")
    if key not in _online_cache:
        _online_cache[key] = _reachable(endpoint, proxy, timeout)
    return _online_cache[key]


def _reachable(endpoint: str, proxy: str | None, timeout: float) -> bool:
    parts = urlsplit(endpoint)
    if proxy is None:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout):
                return True
        except OSError:
            return False
    proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if proxy_parts.scheme not in ("http", "https"):  # socks5://...: urllib cannot speak it, check the proxy is up
        try:
            with socket.create_connection((proxy_parts.hostname, proxy_parts.port or 1080), timeout=timeout):
                return True
        except OSError:
            return False
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({parts.scheme: proxy_parts.geturl()}))
    try:
        with opener.open(urllib.request.Request(endpoint + "/", method="HEAD"), timeout=timeout) as response:
            return response.status < 400
    except urllib.error.HTTPError as exc:  # the hub answered; 405: it does not take HEAD there, still up.
        return exc.code == 405  # 403/407/5xx usually come from the proxy itself refusing or failing
    except (OSError, ValueError):  # URLError (a subclass), refused tunnel, timeout
        return False


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
        "emulate": _emulation_text(device),
        "steps_scale": steps_scale(),
        "hf_endpoint": hub_endpoint(),
        "proxy": proxy_for(hub_endpoint()) or "none",
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


def _emulation_text(device: torch.device) -> str:
    if emulated_gpu() != "t4":
        return "none"
    memory = f", memory capped at {T4_MEMORY_BYTES / 2**30:.0f} GiB" if device.type == "cuda" else ""
    return f"t4 (${EMULATE_ENV}: no bf16, fp16 + GradScaler{memory})"


def apply_emulation(device: torch.device) -> float | None:
    """Under ``$AIGC_EMULATE=t4`` on CUDA, cap this process's GPU memory at a T4's 15 GiB (once per device).

    Returns the fraction of the device's memory allowed, or None when nothing is capped."""
    if emulated_gpu() != "t4" or device.type != "cuda":
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index in _memory_capped:
        return _memory_capped[index]
    total = torch.cuda.get_device_properties(index).total_memory
    fraction = min(1.0, T4_MEMORY_BYTES / total)
    torch.cuda.set_per_process_memory_fraction(fraction, index)
    _memory_capped[index] = fraction
    print(f"[aigc] emulating a T4: cuda:{index} memory capped at {T4_MEMORY_BYTES / 2**30:.0f} GiB "
          f"({fraction:.3f} of {total / 2**30:.1f} GiB), no bf16")
    return fraction


_memory_capped: dict[int, float] = {}


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
    gflops: float | None = None  # measured fp32 matmul GFLOP/s at the start: the machine's speed (matmul_gflops)
    started: float = field(default_factory=time.perf_counter)

    @property
    def machine(self) -> str:
        """``"cpu, 119 GFLOP/s"``: the device and its measured speed, to print beside a time."""
        return f"{self.device}, {self.gflops:.0f} GFLOP/s" if self.gflops else str(self.device)

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
            "emulate": emulated_gpu() or "none",
            "steps_scale": steps_scale(),
            "seconds": round(time.perf_counter() - self.started, 2),
            "matmul_gflops": None if self.gflops is None else round(self.gflops, 1),
            **results,
        }
        if self.device.type == "cuda":  # `make rehearse` reports it: the full profiles must fit a T4
            payload["cuda_peak_memory_gib"] = round(torch.cuda.max_memory_allocated(self.device) / 2**30, 3)
        return atomic_write(self.dir / "results.json", json.dumps(payload, indent=2, default=_to_jsonable))


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
    apply_emulation(dev)
    threads = set_cpu_threads()
    run = Run(name, prof, dev, precision_for(dev), seed, folder, is_online(), gflops=matmul_gflops(dev))
    if is_headless():
        os.environ["AIGC_FIGURES_DIR"] = str(run.figures_dir)
    scale = steps_scale()
    print(
        f"[aigc] {name}: profile {prof}{f' (step counts x{scale:g})' if scale != 1 else ''}, "
        f"device {dev} ({run.precision}{', emulating a T4' if emulated_gpu() else ''}, {threads}, "
        f"{run.gflops:.0f} GFLOP/s fp32 matmul), seed {seed}, "
        f"{'online' if run.online else 'offline'}, outputs in {folder}"
    )
    return run
