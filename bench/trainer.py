"""The shared trainer against the plain loop learners usually copy, side by side in one run.

    python -m bench.trainer            # full sizes on a GPU, small ones on a CPU
    python -m bench.trainer --smoke    # seconds: proves the code path (CI)

Same model (a small conv net), same data (captioned shapes, 32 px), same steps and seed in every variant:
images/s after warm-up, compile time apart, peak memory, and the loss after equal steps.
"""
from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from aigc_lib.data import TensorLoader, make_shapes
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


def make_model(classes: int) -> nn.Module:
    """A DCGAN-discriminator-sized conv net: 32 px -> 16 -> 8 -> 4, then a linear head."""
    def block(c_in: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))

    return nn.Sequential(block(3, 64), block(64, 128), block(128, 256), nn.Flatten(), nn.Linear(256 * 16, classes))


@torch.no_grad()
def eval_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> float:
    """Cross-entropy on the first 512 images in eval mode: the same yardstick for every variant."""
    model.eval()
    x, y = images[:512].to(device), labels[:512].to(device)
    return F.cross_entropy(model(x).float(), y).item()


def plain_loop(images: torch.Tensor, labels: torch.Tensor, device: torch.device, batch: int, warmup: int,
               steps: int, seed: int) -> Row:
    """What tutorials do: a CPU DataLoader, fp32, eager, ``loss.item()`` every step."""
    torch.manual_seed(seed)
    model = make_model(int(labels.max()) + 1).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=batch,
                                         shuffle=True, drop_last=True)

    def run(n: int) -> None:
        done = 0
        while done < n:
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                optimizer.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                optimizer.step()
                loss.item()  # the per-step host sync every tutorial loop has (for printing/logging)
                done += 1
                if done == n:
                    break

    row = measure_training(run, device=device, warmup=warmup, steps=steps, items_per_step=batch)
    return {**row, "eval_loss_after": eval_loss(model, images, labels, device),
            "_weights": weight_vector(model.parameters())}


def classify_step(trainer: Trainer, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    x, y = batch  # (B, 3, H, W), (B,)
    loss = F.cross_entropy(trainer.model(x), y)
    trainer.backward(loss)
    trainer.optimizer_step()
    return {"loss": loss}


def with_trainer(images: torch.Tensor, labels: torch.Tensor, device: torch.device, batch: int, warmup: int,
                 steps: int, seed: int, precision: str, channels_last: bool, compile: bool) -> Row:
    """The shared trainer: data resident on the device, metrics read back every 50 steps only."""
    torch.manual_seed(seed)
    model = make_model(int(labels.max()) + 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = TensorLoader(images, labels, batch_size=batch, seed=seed, device=device, channels_last=channels_last)
    cfg = TrainConfig(max_steps=1, log_every=50, progress=False, device=str(device), precision=precision,
                      channels_last=channels_last, compile=compile)
    trainer = Trainer(model, optimizer, classify_step, data, cfg)
    row = measure_training(lambda n: fit_more(trainer, n), device=device, warmup=warmup, steps=steps,
                           items_per_step=batch)  # the warm-up compiles when compile=True
    return {**row, "eval_loss_after": eval_loss(model, images, labels, device),
            "_weights": weight_vector(model.parameters())}


def fit_more(trainer: Trainer, steps: int) -> None:
    """Train ``steps`` more steps: ``fit`` continues from where the trainer is, up to the raised ``max_steps``."""
    trainer.config = dataclasses.replace(trainer.config, max_steps=trainer.step + steps)
    trainer.fit()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: seconds on a CPU")
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch", type=int, nargs="*", default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--compile", action="store_true", help="add a torch.compile variant (default on GPUs)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device) if args.device else default_device()
    gpu = device.type == "cuda"
    batches = args.batch or ([64] if args.smoke else [64, 1024] if gpu else [64, 256])
    steps = args.steps or (10 if args.smoke else 200 if gpu else 30)
    warmup = 3 if args.smoke else 20
    shapes = make_shapes(max(batches) * 4, size=32, seed=0)
    variants = [("trainer fp32", "fp32", False, False)]
    if gpu:  # on a CPU "auto" is fp32: the same variant again
        variants.append(("trainer bf16/fp16 + channels_last", "auto", True, False))
    if args.compile or gpu:
        variants.append(("trainer auto + compile", "auto", gpu, True))
    torch.manual_seed(0)  # every variant starts from these weights (same seed, same model)
    init = weight_vector(make_model(int(shapes.labels.max()) + 1).parameters())
    rows: list[Row] = []
    for batch in batches:
        group = [{"name": "plain loop (DataLoader, fp32)", "batch": batch,
                  **plain_loop(shapes.images, shapes.labels, device, batch, warmup, steps, seed=0)}]
        for name, precision, channels_last, compile in variants:
            group.append({"name": name, "batch": batch, **with_trainer(
                shapes.images, shapes.labels, device, batch, warmup, steps, 0, precision, channels_last, compile)})
        baseline = group[0]["_weights"]
        for row in group:  # equal steps from the same init: did every variant train like the plain loop?
            row.update(update_agreement(init, baseline, row.pop("_weights")))
        rows += speedup(group, "plain loop (DataLoader, fp32)", key="images/s", higher_is_better=True)
        print(f"batch {batch}: " + ", ".join(f"{r['name']} {r['images/s']:.0f} img/s" for r in group), flush=True)
    config = {"model": "conv 3-64-128-256 + linear", "data": "shapes 32 px", "steps": steps, "warmup": warmup}
    json_path, md_path = write_results("trainer", rows, device_report(device), config,
                                       **({"out_dir": args.out} if args.out else {}))
    print(md_path.read_text())
    print(f"wrote {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
