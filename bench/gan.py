"""DCGAN: the pytorch/examples training loop against the shared trainer, side by side in one run.

    python -m bench.gan              # 64 px DCGAN, batch 64 and 1024 on a GPU (small numbers of steps on a CPU)
    python -m bench.gan --smoke      # seconds on a CPU: proves the code path (CI)

Same generator and discriminator (aigc_lib.gan, DCGAN guidelines), same data (digits, GPU-resident for the
trainer), same seed and number of steps in every variant. Reported: images/s after warm-up (the first steps,
where torch.compile compiles, are timed apart), peak memory, and FD-digits after the same number of steps, with
the FD between two disjoint real sets of the same size as the yardstick, so speed is never bought with quality.
"""
from __future__ import annotations

import argparse
import gc
from collections.abc import Sequence

import torch
from torch import nn

from aigc_lib.data import ImageData, load_digits, split
from aigc_lib.gan import GANConfig, GANStep, build_gan, gan_optimizers, sample
from aigc_lib.metrics import ImageJudge, real_baseline_fd
from aigc_lib.train import TrainConfig, Trainer
from bench.harness import (
    Row,
    default_device,
    device_report,
    measure_training,
    speedup,
    update_agreement,
    weight_vector,
    write_results,
)
from bench.trainer import fit_more

BASELINE = "pytorch/examples loop (DataLoader, fp32, eager)"


def examples_loop(cfg: GANConfig, images: torch.Tensor, device: torch.device, batch: int, warmup: int,
                  steps: int, seed: int) -> tuple[Row, dict[str, nn.Module]]:
    """The loop of pytorch/examples dcgan/main.py, kept as it is: a DataLoader, sigmoid + BCELoss, D updated on
    real and fake with two backward passes, G's update back-propagating into D too, ``.item()`` every step."""
    torch.manual_seed(seed)
    netG, netD = (m.to(device) for m in build_gan(cfg))
    criterion = nn.BCELoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    workers = 2 if device.type == "cuda" else 0  # the example's default --workers 2
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images), batch_size=batch, shuffle=True,
                                         drop_last=True, num_workers=workers, persistent_workers=workers > 0)

    def run(n: int) -> None:
        done = 0
        while done < n:
            for (real_cpu,) in loader:
                # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
                netD.zero_grad()
                real = real_cpu.to(device)
                label = torch.full((len(real),), 1.0, device=device)
                output = torch.sigmoid(netD(real))  # the example's D ends in nn.Sigmoid()
                errD_real = criterion(output, label)
                errD_real.backward()
                D_x = output.mean().item()
                noise = torch.randn(len(real), cfg.latent_dim, device=device)
                fake = netG(noise)
                label.fill_(0.0)
                output = torch.sigmoid(netD(fake.detach()))
                errD_fake = criterion(output, label)
                errD_fake.backward()
                D_G_z1 = output.mean().item()
                errD = errD_real + errD_fake
                optimizerD.step()
                # (2) Update G network: maximize log(D(G(z)))
                netG.zero_grad()
                label.fill_(1.0)
                output = torch.sigmoid(netD(fake))
                errG = criterion(output, label)
                errG.backward()
                D_G_z2 = output.mean().item()
                optimizerG.step()
                _ = (errD.item(), errG.item(), D_x, D_G_z1, D_G_z2)  # the example prints these every step
                done += 1
                if done == n:
                    break

    return measure_training(run, device=device, warmup=warmup, steps=steps, items_per_step=batch), \
        {"G": netG, "D": netD}


def with_trainer(cfg: GANConfig, images: torch.Tensor, device: torch.device, batch: int, warmup: int,
                 steps: int, seed: int, precision: str, channels_last: bool, compile: bool
                 ) -> tuple[Row, dict[str, nn.Module]]:
    """The shared trainer with GANStep: GPU-resident data, fused Adam, D frozen during G's update,
    metrics read back every 100 steps, and optionally autocast, channels_last and torch.compile."""
    from aigc_lib.data import TensorLoader

    torch.manual_seed(seed)
    G, D = build_gan(cfg)
    data = TensorLoader(images, batch_size=batch, seed=seed, device=device, channels_last=channels_last)
    train_cfg = TrainConfig(max_steps=1, log_every=100, progress=False, device=str(device),
                            precision=precision, channels_last=channels_last, compile=compile)
    trainer = Trainer({"G": G, "D": D}, gan_optimizers(G, D), GANStep(cfg.latent_dim), data, train_cfg)
    return measure_training(lambda n: fit_more(trainer, n), device=device, warmup=warmup, steps=steps,
                            items_per_step=batch), {"G": G, "D": D}


def judge_and_reference(digits: ImageData, n_eval: int, judge_steps: int, device: torch.device
                        ) -> tuple[ImageData, ImageJudge, torch.Tensor, float]:
    """Training digits, a digit classifier (its features give FD-digits), held-out real images, and the FD
    between two disjoint held-out sets of ``n_eval`` images (the best a generator can hope for)."""
    train_part, held_out = split(digits, (0.8, 0.2), seed=1)
    judge = ImageJudge.train(train_part, steps=judge_steps, device=device, name="bench-digits")
    return train_part, judge, held_out.images[:n_eval], real_baseline_fd(judge, held_out.images, n_eval, seed=0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: seconds on a CPU")
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch", type=int, nargs="*", default=None, help="default: 64 1024 (GPU), 64 (CPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per variant (after warm-up)")
    parser.add_argument("--compile", action="store_true", help="add a torch.compile variant (default on GPUs)")
    parser.add_argument("--judge-steps", type=int, default=None, help="training steps of the FD-digits judge")
    parser.add_argument("--n-eval", type=int, default=None, help="samples per FD (default 2000 GPU, 500 CPU)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device) if args.device else default_device()
    gpu = device.type == "cuda"
    info = device_report(device)  # measure the machine before the workloads
    cfg = GANConfig(image_size=32 if args.smoke else 64, width=8 if args.smoke else 64, latent_dim=100)
    batches = args.batch or ([16] if args.smoke else [64, 1024] if gpu else [64])
    steps = args.steps or (4 if args.smoke else 1000 if gpu else 20)
    warmup = 2 if args.smoke else 20
    n_eval = args.n_eval or (256 if args.smoke else 2000 if gpu else 500)
    judge_steps = args.judge_steps or (30 if args.smoke else 1500 if gpu else 300)
    digits = load_digits(n=max(5 * max(batches), 10 * n_eval), size=cfg.image_size, seed=0)
    digits, judge, reference, real_fd = judge_and_reference(digits, n_eval, judge_steps, device)
    print(f"FD-digits between two disjoint real sets of {n_eval}: {real_fd:.3f}", flush=True)

    variants = [("trainer fp32", "fp32", False, False)]
    if gpu:  # on a CPU "auto" is fp32: the same variant again
        variants.append(("trainer bf16/fp16 + channels_last", "auto", True, False))
    if args.compile or gpu:
        variants.append(("trainer auto + channels_last + compile", "auto", gpu, True))
    torch.manual_seed(0)  # every variant starts from these weights (same seed, same models)
    init = weight_vector(p for model in build_gan(cfg) for p in model.parameters())
    rows: list[Row] = []
    for batch in batches:
        row, models = examples_loop(cfg, digits.images, device, batch, warmup, steps, seed=0)
        group = [{"name": BASELINE, "batch": batch, **row, "_models": models}]
        for name, precision, channels_last, compile in variants:
            row, models = with_trainer(cfg, digits.images, device, batch, warmup, steps, 0, precision,
                                       channels_last, compile)
            group.append({"name": name, "batch": batch, **row, "_models": models})
        baseline = weight_vector(p for model in group[0]["_models"].values() for p in model.parameters())
        for row in group:  # equal steps, same yardstick: did speed cost quality?
            models = row.pop("_models")
            fake = sample(models["G"], n_eval, seed=1)
            row["fd_digits"] = judge.fd(fake, reference)
            row["fd_vs_real"] = row["fd_digits"] / real_fd
            weights = weight_vector(p for model in models.values() for p in model.parameters())  # G and D
            row.update(update_agreement(init, baseline, weights))
        rows += speedup(group, BASELINE, key="images/s", higher_is_better=True)
        print(f"batch {batch}: " + ", ".join(f"{r['name']} {r['images/s']:.0f} img/s FD {r['fd_digits']:.2f}"
                                             for r in group), flush=True)
        del models
        gc.collect()
        if gpu:
            torch.cuda.empty_cache()
    config = {"model": f"DCGAN {cfg.image_size} px, width {cfg.width}, z {cfg.latent_dim}",
              "data": f"digits ({digits.source}) {cfg.image_size} px", "warmup": warmup, "timed_steps": steps,
              "fd_samples": n_eval, "judge_steps": judge_steps, "fd_real_vs_real": round(real_fd, 4), "loss": "non-saturating, Adam 2e-4 (0.5, 0.999)"}
    json_path, md_path = write_results("gan", rows, info, config, **({"out_dir": args.out} if args.out else {}))
    print(md_path.read_text())
    print(f"wrote {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
