"""Device choice, precision policy, profile resolution, seeding, online detection, run folders."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from aigc_lib import runtime
from aigc_lib.runtime import (
    DeviceUnavailableError,
    Profile,
    pick_device,
    precision_for,
    resolve_profile,
    scaled_count,
    seed_everything,
    start_run,
)


def test_auto_device_is_cpu_without_a_gpu(monkeypatch):
    monkeypatch.delenv("AIGC_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device() == torch.device("cpu")


def test_device_override_by_argument_and_environment(monkeypatch):
    monkeypatch.setenv("AIGC_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")
    assert pick_device("cpu") == torch.device("cpu")


def test_cuda_asked_for_on_a_cpu_machine_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceUnavailableError, match="no CUDA GPU.*device='auto' or 'cpu'"):
        pick_device("cuda")


def test_unknown_device_is_rejected():
    # "xla" (a TPU in PyTorch) is a device string torch.device accepts, so the error must be ours, naming the choices
    with pytest.raises(DeviceUnavailableError, match=r"unknown device 'xla': use 'auto', 'cpu', 'cuda'"):
        pick_device("xla")


def test_precision_policy(monkeypatch):
    assert precision_for(torch.device("cpu")).name == "no"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    bf16 = precision_for(torch.device("cuda"))
    assert (bf16.name, bf16.grad_scaler) == ("bf16", False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)  # a T4
    fp16 = precision_for(torch.device("cuda"))
    assert (fp16.name, fp16.dtype, fp16.grad_scaler) == ("fp16", torch.float16, True)
    assert precision_for(torch.device("cpu"), "bf16").name == "bf16"
    with pytest.raises(ValueError, match="fp16 autocast is a GPU feature"):
        precision_for(torch.device("cpu"), "fp16")
    with pytest.raises(ValueError, match="unknown precision"):
        precision_for(torch.device("cpu"), "fp8")


def test_profile_precedence(monkeypatch):
    monkeypatch.setenv("AIGC_PROFILE", "smoke")
    assert resolve_profile("full") == Profile("full", "parameter")
    assert resolve_profile(None).name == "smoke"
    monkeypatch.delenv("AIGC_PROFILE")
    assert resolve_profile(None, torch.device("cpu")).name == "quick"
    assert resolve_profile("auto", torch.device("cuda")).name == "full"
    with pytest.raises(ValueError, match="unknown profile 'tiny'"):
        resolve_profile("tiny")


def test_profile_pick():
    assert Profile("quick", "x").pick(smoke=1, quick=2, full=3) == 2


def test_seed_everything_makes_all_generators_repeat():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    seed_everything(5)
    first = draw()
    seed_everything(5)
    assert draw() == first
    seed_everything(6)
    assert draw() != first


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "AIGC_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_offline_variables_force_offline(monkeypatch, variable):
    monkeypatch.setattr(runtime, "_online_cache", {"huggingface.co": True})
    assert runtime.is_online()
    monkeypatch.setenv(variable, "1")
    assert not runtime.is_online()


def test_describe_prints_every_field(capsys):
    report = runtime.describe(torch.device("cpu"), Profile("smoke", "test"))
    out = capsys.readouterr().out
    for key in ("device", "precision", "profile", "online", "torch", "transformers", "diffusers", "accelerate"):
        assert key in report and key in out
    assert report["precision"] == "fp32"


def test_start_run_creates_folder_and_writes_results(tmp_path, capsys):
    run = start_run("99_test", profile="smoke", seed=3, run_dir=tmp_path / "r", device="cpu")
    assert run.dir.is_dir() and run.profile.name == "smoke"
    assert "profile smoke" in capsys.readouterr().out
    path = run.save_results({"loss": torch.tensor(0.5), "values": np.arange(3)})
    data = json.loads(path.read_text())
    assert data["loss"] == 0.5 and data["values"] == [0, 1, 2] and data["profile"] == "smoke"
    with pytest.raises(TypeError, match="cannot store"):
        run.save_results({"bad": object()})


def test_steps_scale_shrinks_counts_not_below_one(monkeypatch):
    profile = Profile("full", "parameter")
    monkeypatch.delenv("AIGC_STEPS_SCALE", raising=False)
    assert profile.count(smoke=2, quick=20, full=5000) == 5000
    monkeypatch.setenv("AIGC_STEPS_SCALE", "0.01")
    assert profile.count(smoke=2, quick=20, full=5000) == 50 and scaled_count(30) == 1
    monkeypatch.setenv("AIGC_STEPS_SCALE", "2")
    with pytest.raises(ValueError, match="AIGC_STEPS_SCALE"):
        scaled_count(10)
