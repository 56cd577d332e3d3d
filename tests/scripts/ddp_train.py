"""Trains a small model through the shared trainer; run once plainly and once with torchrun (2 processes)."""
import sys

import torch
import torch.nn.functional as F
from torch import nn

from aigc_lib.data import TensorLoader
from aigc_lib.train import TrainConfig, Trainer


def step(trainer, batch):
    x, y = batch
    loss = F.cross_entropy(trainer.model(x), y)
    trainer.backward(loss)
    trainer.optimizer_step()
    return {"loss": loss}


def main(batch_size: int, out: str) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, :2].sum(1) > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    cfg = TrainConfig(max_steps=12, log_every=4, progress=False, device="cpu")
    trainer = Trainer(model, optimizer, step, TensorLoader(x, y, batch_size=batch_size, seed=3), cfg)
    history = trainer.fit()
    if trainer.is_main_process:
        torch.save({"weights": model.state_dict(), "processes": trainer.accelerator.num_processes,
                    "loss": history["train"][-1]["loss"]}, out)
    trainer.accelerator.wait_for_everyone()
    if torch.distributed.is_initialized():  # a clean gloo shutdown: exiting with live gloo threads can abort
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
