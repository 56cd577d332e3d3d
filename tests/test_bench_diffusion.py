"""bench/diffusion.py at smoke size on a CPU, and the SD 1.5 builders and fast path of aigc_lib.diffusion.speed."""
from __future__ import annotations

import json
import math

import pytest
import torch

from aigc_lib.diffusion import speed as sd_speed
from bench.diffusion import TRAIN_VARIANTS, VARIANTS, main


def _rows(path):
    payload = json.loads(path.read_text())
    return payload, {row["name"]: row for row in payload["rows"]}


def test_diffusion_benchmark_smoke(tmp_path):
    assert main(["--smoke", "--device", "cpu", "--out", str(tmp_path)]) == 0

    payload, rows = _rows(tmp_path / "diffusion-inference_cpu.json")
    assert set(rows) == set(VARIANTS.values())
    steps = payload["config"]["steps"]
    for row in rows.values():
        assert row["dtype"] == "fp32" and row["e2e_s"] > 0 and row["images/s"] > 0
        assert row["loop_it/s"] > 0 and row["unet_it/s"] > 0 and row["first_call_s"] > 0
        assert row["unet_calls"] == steps + 1  # PNDM (PLMS) evaluates the UNet once more than it has steps
        # fp32 on a CPU: fused QKV, channels_last and CPU timesteps only reorder the same math (measured ~3e-6)
        for key in ("max_abs_diff", "mean_abs_diff", "unet_rel_diff"):
            assert math.isfinite(row[key]) and row[key] < 1e-4, (row["name"], key, row[key])
        assert row["equal_within_tol"] is True
    assert rows[VARIANTS["defaults"]]["vs defaults"] == 1.0 and rows[VARIANTS["recipe"]]["vs recipe"] == 1.0

    payload, rows = _rows(tmp_path / "diffusion-ddpm_cpu.json")
    assert set(rows) == set(TRAIN_VARIANTS.values())
    losses = [row["loss_after"] for row in rows.values()]
    for row in rows.values():
        assert row["images/s"] > 0 and row["step_ms"] > 0 and row["batch"] == payload["config"]["batch"]
    # same model, seed and number of steps from a random init: both near the start loss of ~1.05 (noise targets
    # have unit variance), measured 1.0509 and 1.0532; 5% apart would mean one of the loops trains differently
    assert all(math.isfinite(loss) for loss in losses) and abs(losses[0] - losses[1]) < 0.05 * losses[0], losses
    # a loop that never steps also sits near 1.05, so the weights are checked: from the same init, the plain loop
    # moved 0.28% of the weights' norm, ours 0.29% (update norm ratio 1.016), cosine 0.11 between the two updates
    # (batches, noise and timesteps all differ; a random direction scores ~1/sqrt(384,083 parameters) = 0.002).
    # Measured on a busy 2-core CPU, smoke, fp32. A loop that never steps scores 0 on all three.
    plain, ours = rows[TRAIN_VARIANTS["plain"]], rows[TRAIN_VARIANTS["ours"]]
    assert plain["weights_moved"] > 0.001 and plain["update_cosine"] == pytest.approx(1.0), plain
    assert ours["update_cosine"] > 0.05 and 0.5 < ours["update_norm_ratio"] < 2.0, ours
    assert rows[TRAIN_VARIANTS["plain"]]["vs plain loop"] == 1.0

    _, rows = _rows(tmp_path / "diffusion-lora_cpu.json")
    assert len(rows) == 2 and {row["grad_ckpt"] for row in rows.values()} == {False, True}
    for row in rows.values():
        assert row["images/s"] > 0 and row["lora_params"] > 0 and math.isfinite(row["loss"])

    for name, names in (("inference", VARIANTS.values()), ("ddpm", TRAIN_VARIANTS.values()),
                        ("lora", rows)):
        markdown = (tmp_path / f"diffusion-{name}_cpu.md").read_text()
        assert "## Targets" in markdown and "Not a GPU run" in markdown
        for variant in names:
            assert markdown.count(f"| {variant} |") == 1, (name, variant)


def test_sd15_builders_have_the_documented_parameter_counts():
    counts = sd_speed.parameter_counts("sd15")  # meta device: no memory, under a second
    assert counts == sd_speed.SD15_PARAMETERS
    assert [round(n / 1e6, 2) for n in counts.values()] == [859.52, 83.65, 123.06]
    assert sd_speed.SD15_VAE["scaling_factor"] == 0.18215
    tiny = sd_speed.parameter_counts("tiny")
    assert all(tiny[name] < counts[name] / 100 for name in counts)


def test_speed_up_keeps_the_outputs_on_cpu(one_thread):
    tokenizer = sd_speed.sd15_tokenizer()
    assert tokenizer.model_max_length == 77
    parts = sd_speed.sd15_parts("tiny", tokenizer=tokenizer)
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))

    def generate(pipe):
        pipe.set_progress_bar_config(disable=True)
        return pipe("a red circle at the top left", num_inference_steps=3, latents=latents, output_type="pt").images

    reference = generate(sd_speed.sd15_pipeline("tiny", tokenizer=tokenizer, parts=parts))
    pipe = sd_speed.speed_up(sd_speed.sd15_pipeline("tiny", tokenizer=tokenizer, parts=parts), compile=False)
    assert pipe._aigc_speed_up == ("fused QKV", "channels_last", "CPU timesteps")
    assert {type(p).__name__ for p in pipe.unet.attn_processors.values()} == {"FusedAttnProcessor2_0"}
    fast = generate(pipe)
    assert fast.shape == reference.shape == (1, 3, 64, 64)
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=0)
    pipe.scheduler.set_timesteps(3, device="meta")  # the device is ignored: timesteps stay on the CPU
    assert pipe.scheduler.timesteps.device.type == "cpu"


def test_speed_up_leaves_lora_projections_unfused(one_thread, capsys):
    from aigc_lib.diffusion import add_unet_lora

    pipe = sd_speed.sd15_pipeline("tiny")
    add_unet_lora(pipe.unet, rank=2)
    sd_speed.speed_up(pipe, compile=False)
    assert "QKV projections left unfused" in capsys.readouterr().out
    assert "fused QKV" not in pipe._aigc_speed_up and sd_speed.has_lora(pipe.unet)


def test_timestep_cache_and_output_clones():
    seen = []
    forward = sd_speed._timestep_to_device(lambda sample, t, **kw: seen.append(t) or t)
    sample = torch.zeros(1, device="meta")
    first, second = forward(sample, torch.tensor(981)), forward(sample, torch.tensor(981))
    assert first.device.type == "meta" and first is second  # one device copy per timestep value, reused
    out = {"sample": torch.ones(2)}
    cloned = sd_speed._clone_outputs((out["sample"], [out["sample"]]))
    assert cloned[0] is not out["sample"] and torch.equal(cloned[1][0], out["sample"])


def test_cpu_without_smoke_runs_the_smoke_sizes(tmp_path, capsys):
    args = ["--device", "cpu", "--parts", "ddpm", "--ddpm-batch", "4", "--train-steps", "1", "--train-warmup", "1"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    assert "runs the --smoke sizes instead" in capsys.readouterr().out
    assert "smoke: 16 px" in json.loads((tmp_path / "diffusion-ddpm_cpu.json").read_text())["config"]["model"]
    assert not (tmp_path / "diffusion-inference_cpu.json").exists()
