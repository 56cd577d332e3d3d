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
    with pytest.raises(DeviceUnavailableError, match=r"unknown device 'tpu': use 'auto', 'cpu', 'cuda'"):
        pick_device("tpu")  # a string torch.device itself rejects: still our error, not torch's


def test_precision_policy(monkeypatch):
    assert precision_for(torch.device("cpu")).name == "no"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    bf16 = precision_for(torch.device("cuda"))
    assert (bf16.name, bf16.grad_scaler) == ("bf16", False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)  # a T4
    fp16 = precision_for(torch.device("cuda"))
    assert (fp16.name, fp16.dtype, fp16.grad_scaler) == ("fp16", torch.float16, True)
    assert precision_for(torch.device("cpu"), "bf16").name == "bf16"
    cpu_fp16 = precision_for(torch.device("cpu"), "fp16")  # torch >= 2.4 autocasts fp16 on the CPU too
    assert (cpu_fp16.name, cpu_fp16.grad_scaler) == ("fp16", True)
    monkeypatch.setitem(runtime._cpu_autocast_cache, torch.float16, False)  # an older torch
    with pytest.raises(ValueError, match="no fp16 autocast on the CPU"):
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
    for name in ("HF_ENDPOINT", *runtime.PROXY_ENVS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(runtime, "_online_cache", {("https://huggingface.co", ""): True})
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
    out = capsys.readouterr().out
    assert "profile smoke" in out and f"{run.gflops:.0f} GFLOP/s fp32 matmul" in out
    assert run.gflops > 1 and run.machine == f"cpu, {run.gflops:.0f} GFLOP/s"  # any CPU does > 1 GFLOP/s
    path = run.save_results({"loss": torch.tensor(0.5), "values": np.arange(3)})
    data = json.loads(path.read_text())
    assert data["loss"] == 0.5 and data["values"] == [0, 1, 2] and data["profile"] == "smoke"
    assert data["matmul_gflops"] == round(run.gflops, 1)
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


# --------------------------------------------------------------------------------------------- T4 emulation
def test_t4_emulation_has_no_bf16_on_any_device(monkeypatch):
    monkeypatch.setenv("AIGC_EMULATE", "t4")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # an H100
    for device in ("cpu", "cuda"):
        auto = precision_for(torch.device(device))
        assert (auto.name, auto.dtype, auto.grad_scaler) == ("fp16", torch.float16, True), device
    assert precision_for(torch.device("cpu"), "fp32").name == "no"
    with pytest.raises(ValueError, match="emulates a T4, which has no bf16"):
        precision_for(torch.device("cuda"), "bf16")
    monkeypatch.setenv("AIGC_EMULATE", "a100")
    with pytest.raises(ValueError, match="AIGC_EMULATE='a100'.*only GPU the course emulates is 't4'"):
        precision_for(torch.device("cpu"))
    monkeypatch.delenv("AIGC_EMULATE")
    assert precision_for(torch.device("cuda")).name == "bf16"


def test_t4_emulation_caps_cuda_memory_once(monkeypatch, capsys):
    class Props:
        total_memory = 140 * 2**30  # an H200

    calls = []
    monkeypatch.setattr(runtime, "_memory_capped", {})
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: Props())
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda f, i: calls.append((f, i)))
    monkeypatch.delenv("AIGC_EMULATE", raising=False)
    assert runtime.apply_emulation(torch.device("cuda")) is None and calls == []
    monkeypatch.setenv("AIGC_EMULATE", "t4")
    assert runtime.apply_emulation(torch.device("cpu")) is None and calls == []  # nothing to cap on a CPU
    fraction = runtime.apply_emulation(torch.device("cuda"))
    assert fraction == pytest.approx(15 / 140) and calls == [(fraction, 0)]
    assert "memory capped at 15 GiB" in capsys.readouterr().out
    assert runtime.apply_emulation(torch.device("cuda:0")) == fraction and len(calls) == 1  # once per device


def test_describe_and_results_show_the_emulation(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("AIGC_EMULATE", "t4")
    monkeypatch.setenv("AIGC_OFFLINE", "1")
    report = runtime.describe(torch.device("cpu"), Profile("full", "test"))
    assert report["emulate"].startswith("t4") and report["precision"] == "fp16 + GradScaler"
    assert "emulate" in capsys.readouterr().out
    run = start_run("99_t4", profile="full", run_dir=tmp_path, device="cpu")
    assert "emulating a T4" in capsys.readouterr().out and run.precision.name == "fp16"
    assert json.loads(run.save_results({}).read_text())["emulate"] == "t4"


# --------------------------------------------------------------------------------------------- online
@pytest.fixture
def no_network_env(monkeypatch):
    for name in ("HF_ENDPOINT", "NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", *runtime.PROXY_ENVS,
                 *runtime.OFFLINE_ENVS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(runtime, "_online_cache", {})
    return monkeypatch


@pytest.fixture
def local_server():
    """An HTTP server on 127.0.0.1 that answers HEAD with 200 and CONNECT (an https tunnel) with 502."""
    import http.server
    import threading

    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            seen.append(("HEAD", self.path))
            self.send_response(200)
            self.end_headers()

        def do_CONNECT(self):
            seen.append(("CONNECT", self.path))
            self.send_response(502)  # what a proxy answers when it cannot reach the hub
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free once closed: nothing listens there


def test_online_check_uses_the_hub_endpoint_setting(no_network_env, local_server):
    url, _ = local_server
    assert runtime.hub_endpoint() == "https://huggingface.co"
    no_network_env.setenv("HF_ENDPOINT", url + "/")  # a mirror (here: a local server)
    assert runtime.hub_endpoint() == url and runtime.is_online()
    no_network_env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    assert not runtime.is_online()
    no_network_env.setenv("HF_ENDPOINT", "hf-mirror.com")
    with pytest.raises(ValueError, match="not an http\\(s\\) address.*hf-mirror.com"):
        runtime.is_online()


def test_online_check_goes_through_the_proxy(no_network_env, local_server):
    proxy, seen = local_server
    # the "hub" host does not resolve here; only the proxy (a local server) can answer for it
    no_network_env.setenv("HF_ENDPOINT", "http://hub.invalid")
    no_network_env.setenv("ALL_PROXY", proxy)
    assert runtime.proxy_for("http://hub.invalid") == proxy
    assert runtime.is_online() and seen == [("HEAD", "http://hub.invalid/")]
    # https through a proxy is a CONNECT tunnel; a proxy that answers 502 means the hub is out of reach
    no_network_env.setenv("HF_ENDPOINT", "https://hub.invalid")
    no_network_env.setenv("HTTPS_PROXY", proxy)
    assert not runtime.is_online() and seen[-1] == ("CONNECT", "hub.invalid:443")
    # a proxy that is not running: offline
    no_network_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{_closed_port()}")
    assert not runtime.is_online()
    # NO_PROXY exempts the host: then a direct connection is tried (to a local server, reachable)
    no_network_env.setenv("HF_ENDPOINT", proxy)
    no_network_env.setenv("NO_PROXY", "127.0.0.1")
    assert runtime.proxy_for(proxy) is None and runtime.is_online()
