"""GPT-2 124M pretraining throughput: Hugging Face Trainer, a nanoGPT-style loop and the shared trainer side by side.

    python -m bench.lm --device cuda          # GPT-2 124M, sequence 1024, batch 16 (HF defaults: its batch 8)
    python -m bench.lm --batch 16 32          # the tuned variants at batch 16 and 32
    python -m bench.lm --smoke                # 2 layers x 64 wide, sequence 64: seconds on a CPU (CI)
    python -m bench.lm --generate             # generation with and without the KV cache (GPT-2 124M, greedy)
    python -m bench.lm --generate --smoke     # the same with the tiny GPT (CI)

Random init, the real GPT-2 vocabulary (50,257), uniform random token blocks (same blocks and seed for every
variant). Reported per variant: tokens/s and step time after warm-up (compilation timed apart), achieved
TFLOP/s and MFU (6N + 12 L C T FLOPs per token, nanoGPT's count) against the H100's 989 bf16 TFLOP/s and
against the bf16 matmul rate measured in this run, peak memory, the loss after equal steps, and speedups.

``--generate`` measures inference instead: greedy decoding of the same prompt with
``generate(use_cache=False)`` (the whole context recomputed for every new token) and with the KV cache
(notebook 04), tokens/s side by side for several lengths, and whether the two produced the same tokens.
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, TrainerCallback, TrainingArguments
from transformers import Trainer as HFTrainer

from aigc_lib.data import TensorLoader
from aigc_lib.lm import GPT, GPTConfig, LMStep, generate, lm_logits, lm_optimizer
from aigc_lib.train import TrainConfig, Trainer
from bench.harness import (
    MemoryPeak,
    Row,
    Timer,
    default_device,
    device_report,
    format_value,
    free_memory,
    measure_training,
    peak_memory,
    update_agreement,
    weight_vector,
    write_results,
)
from bench.trainer import fit_more

H100_BF16_TFLOPS = 989.0  # H100 SXM dense bf16 tensor-core peak (the 1979 on the datasheet assumes sparsity)
LR, BETAS, WEIGHT_DECAY = 6e-4, (0.9, 0.95), 0.1  # nanoGPT's GPT-2 124M settings (plain loop and trainer)
VARIANTS = {  # --variants key: row name
    "hf-defaults": "HF Trainer, defaults",
    "hf-tuned": "HF Trainer, bf16 + torch_compile",
    "plain": "nanoGPT-style loop",
    "trainer": "aigc Trainer + LMStep",
}
HELD_OUT = 8  # blocks kept out of training for loss_after
HF_DEFAULT_BATCH = 8  # TrainingArguments.per_device_train_batch_size
TARGETS = ("trainer >= 1.0x the plain loop, >= 1.7x HF tuned, >= 8x HF defaults; "
           ">= 500k tokens/s and >= 43% MFU on an H100")
REFERENCE = ("H100, by the issue's author, batch 16 x 1024: HF GPT2LMHeadModel 46k tok/s fp32, 131k bf16, "
             "293k bf16 + compile; nanoGPT-style loop 468k tok/s (batch 16), 511k = 44% MFU (batch 32)")


# --------------------------------------------------------------------------------------------- FLOPs
def flops_per_token(cfg: GPTConfig, seq_len: int) -> int:
    """Training FLOPs per token as nanoGPT's ``estimate_mfu`` counts them (PaLM, appendix B): 6N + 12 L C T.

    N is every parameter that takes part in a matmul: the non-embedding parameters plus the tied output head
    (``n_embd x vocab_size``, the real vocabulary: padding rows are not useful work). 6N: forward (2N) and
    backward (4N); 12 L C T: the attention scores and weighted sum, which have no parameters.
    """
    with torch.device("meta"):  # counts shapes without allocating 124M parameters
        non_embedding = GPT(cfg).num_parameters(non_embedding=True)
    n = non_embedding + cfg.n_embd * cfg.vocab_size
    return 6 * n + 12 * cfg.n_layer * cfg.n_embd * seq_len


# --------------------------------------------------------------------------------------------- shared
def make_blocks(n: int, seq_len: int, vocab_size: int, seed: int) -> torch.Tensor:
    """(n, seq_len + 1) uniform random token ids: inputs plus the last target, as ``pack_blocks`` cuts them."""
    return torch.randint(vocab_size, (n, seq_len + 1), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def eval_loss(model: nn.Module, blocks: torch.Tensor, device: torch.device) -> float:
    """Mean next-token cross-entropy over every position of held-out blocks, fp32 eager: one yardstick for all."""
    was_training = model.training
    model.eval()
    losses = []
    for block in blocks.to(device).split(2):
        x, y = block[:, :-1], block[:, 1:]  # (b, T) each
        logits = lm_logits(model, x).float()  # (b, T, V): both models return the real vocabulary only
        losses.append(F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum"))
    model.train(was_training)
    return (torch.stack(losses).sum() / blocks[:, 1:].numel()).item()


# --------------------------------------------------------------------------------------------- variants
class StepClock(TrainerCallback):
    """Times Hugging Face's own loop from the end of step ``warmup`` to the end of step ``warmup + steps``, the
    device synchronised at both ends: data loading and HF's per-step work count, as they do in ours."""

    def __init__(self, device: torch.device, warmup: int, steps: int) -> None:
        if warmup < 1:
            raise ValueError(f"the HF variants need at least one warm-up step to start the clock, got {warmup}.")
        self.device, self.warmup, self.steps = device, warmup, steps
        self.first, self.timed = Timer(device), Timer(device)
        self.peak: MemoryPeak | None = None
        self._open = ExitStack()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._open.enter_context(self.first)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.warmup:
            self._open.close()  # warm-up over: compilation time is in first.seconds
            self.peak = self._open.enter_context(peak_memory(self.device))
            self._open.enter_context(self.timed)
        elif state.global_step == self.warmup + self.steps:
            self._open.close()  # stops the timer, then reads the peak


class _BlockDataset(torch.utils.data.Dataset):
    """What a Hugging Face user writes: one dict per block, labels = input ids (the model shifts them)."""

    def __init__(self, blocks: torch.Tensor) -> None:
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.blocks[i], "labels": self.blocks[i]}


def hf_trainer(cfg: GPTConfig, blocks: torch.Tensor, device: torch.device, batch: int, warmup: int, steps: int,
               seed: int, bf16: bool, compile: bool) -> tuple[Row, nn.Module]:
    """``transformers.Trainer`` on ``GPT2LMHeadModel(GPT2Config())``: TrainingArguments defaults (AdamW fused,
    lr 5e-5 linear decay, clip 1.0, DataLoader, GPT2Config's dropout 0.1) but for batch, bf16 and compile;
    no saving, no evaluation, no logging until the end."""
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.block_size,
                                       n_embd=cfg.n_embd, n_layer=cfg.n_layer, n_head=cfg.n_head,
                                       bos_token_id=cfg.vocab_size - 1, eos_token_id=cfg.vocab_size - 1))
    init = weight_vector(model.parameters())  # another model than ours: it is compared with its own start
    clock = StepClock(device, warmup, steps)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=batch, max_steps=warmup + steps,
                                 bf16=bf16, torch_compile=compile, use_cpu=device.type == "cpu", seed=seed,
                                 save_strategy="no", logging_steps=10**9, report_to="none", disable_tqdm=True)
        trainer = HFTrainer(model=model, args=args, train_dataset=_BlockDataset(blocks[:, :-1]),
                            callbacks=[clock])
        trainer.train()
    tokens = batch * cfg.block_size
    row = {"first_call_s": clock.first.seconds, "tokens/s": steps * tokens / clock.timed.seconds,
           clock.peak.key: clock.peak.gib,
           "weights_moved": (weight_vector(model.parameters()) - init).norm().item() / init.norm().item()}
    return row, model


def plain_loop(cfg: GPTConfig, blocks: torch.Tensor, device: torch.device, batch: int, warmup: int, steps: int,
               seed: int, bf16: bool, compile: bool) -> tuple[Row, nn.Module]:
    """nanoGPT's train.py, reduced to what costs time: data on the device, bf16 autocast, fused AdamW, the
    model and its loss compiled together (nanoGPT computes the loss inside ``forward``), clip 1.0,
    ``zero_grad(set_to_none=True)``, no ``.item()`` in the loop."""
    torch.manual_seed(seed)
    model = GPT(cfg).to(device)
    optimizer = lm_optimizer(model, LR, WEIGHT_DECAY, BETAS)  # fused AdamW, decay on matrices only
    data = blocks.to(device)  # (N, T + 1)
    generator = torch.Generator(device).manual_seed(seed)

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = model(x)  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten())

    compiled_loss = torch.compile(loss_fn) if compile else loss_fn

    def run(n: int) -> None:
        for _ in range(n):
            block = data[torch.randint(len(data), (batch,), device=device, generator=generator)]  # (B, T + 1)
            x, y = block[:, :-1], block[:, 1:]  # (B, T) inputs, (B, T) next tokens
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = compiled_loss(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    row = measure_training(run, device=device, warmup=warmup, steps=steps, items_per_step=batch * cfg.block_size,
                           unit="tokens")
    return row, model


def with_trainer(cfg: GPTConfig, blocks: torch.Tensor, device: torch.device, batch: int, warmup: int, steps: int,
                 seed: int, bf16: bool, compile: bool) -> tuple[Row, nn.Module]:
    """The shared trainer with :class:`LMStep`: the same model, optimizer, precision and compile as the plain
    loop, the blocks resident on the device (TensorLoader), metrics read back every 100 steps."""
    torch.manual_seed(seed)
    model = GPT(cfg)
    optimizer = lm_optimizer(model, LR, WEIGHT_DECAY, BETAS)
    data = TensorLoader(blocks, batch_size=batch, seed=seed, device=device)  # (N, T + 1): LMStep shifts the data
    train_cfg = TrainConfig(max_steps=1, max_grad_norm=1.0, precision="bf16" if bf16 else "fp32",
                            device=str(device), compile=compile, log_every=100, progress=False)
    trainer = Trainer(model, optimizer, LMStep(), data, train_cfg)
    row = measure_training(lambda n: fit_more(trainer, n), device=device, warmup=warmup, steps=steps,
                           items_per_step=batch * cfg.block_size, unit="tokens")
    return row, model


RUNNERS: dict[str, Callable[..., tuple[Row, nn.Module]]] = {
    "hf-defaults": hf_trainer, "hf-tuned": hf_trainer, "plain": plain_loop, "trainer": with_trainer}


# --------------------------------------------------------------------------------------------- report
def add_columns(rows: list[Row], cfg: GPTConfig, matmul_tflops: float | None) -> list[Row]:
    """Step time, achieved TFLOP/s, both MFUs and the speedups vs HF defaults and vs the plain loop (same batch)."""
    per_token = flops_per_token(cfg, cfg.block_size)
    hf = next((r for r in rows if r["name"] == VARIANTS["hf-defaults"]), None)
    plain = {r["batch"]: r for r in rows if r["name"] == VARIANTS["plain"]}
    out = []
    for row in rows:
        tflops = row["tokens/s"] * per_token / 1e12
        ref = plain.get(row["batch"], next(iter(plain.values()), None))
        out.append({**row, "step_ms": 1e3 * row["batch"] * cfg.block_size / row["tokens/s"], "model_tflops": tflops,
                    "mfu_h100": tflops / H100_BF16_TFLOPS,
                    "mfu_measured": tflops / matmul_tflops if matmul_tflops else None,
                    "vs HF defaults": row["tokens/s"] / hf["tokens/s"] if hf else None,
                    "vs plain loop": row["tokens/s"] / ref["tokens/s"] if ref else None})
    return out


def target_lines(rows: Sequence[Row]) -> list[str]:
    """Each target of the issue next to what this run measured (for the aigc trainer rows)."""
    lines = []
    for row in rows:
        if row["name"] != VARIANTS["trainer"]:
            continue
        tuned = next((r for r in rows if r["name"] == VARIANTS["hf-tuned"] and r["batch"] == row["batch"]), None)
        vs_tuned = f"{row['tokens/s'] / tuned['tokens/s']:.2f}x" if tuned else "n/a"
        vs_plain = f"{row['vs plain loop']:.2f}x" if row["vs plain loop"] else "n/a"
        vs_hf = f"{row['vs HF defaults']:.2f}x" if row["vs HF defaults"] else "n/a"
        lines.append(f"- batch {row['batch']}: trainer {row['tokens/s']:,.0f} tokens/s (target >= 500k), MFU "
                     f"{row['mfu_h100']:.1%} of 989 TFLOP/s (target >= 43%); vs plain loop {vs_plain} (>= 1.0x), "
                     f"vs HF tuned {vs_tuned} (>= 1.7x), vs HF defaults {vs_hf} (>= 8x)")
    return lines


def notes(cfg: GPTConfig, info: Row, smoke: bool) -> list[str]:
    """The Markdown notes under the table: what the columns mean and what was run."""
    with torch.device("meta"):
        non_embedding = GPT(cfg).num_parameters(non_embedding=True)
    head = cfg.n_embd * cfg.vocab_size
    per_token = flops_per_token(cfg, cfg.block_size)
    matmul = f"{info.get('matmul_dtype')} {info.get('matmul_size')}^2 matmul"
    lines = [
        f"- Targets (issue): {TARGETS}.",
        f"- Reference, not measured here: {REFERENCE}.",
        (f"- MFU = tokens/s x FLOPs per token / peak. FLOPs per token = 6N + 12 L C T = {per_token:,} with "
         f"N = {non_embedding:,} non-embedding parameters + {head:,} for the tied head's matmul (n_embd x "
         f"{cfg.vocab_size:,}, the real vocabulary: padding to {cfg.padded_vocab_size:,} is not counted), "
         f"L = {cfg.n_layer}, C = {cfg.n_embd}, T = {cfg.block_size}. `mfu_h100` divides by "
         f"{H100_BF16_TFLOPS:.0f} TFLOP/s (H100 SXM bf16 dense) on any device; `mfu_measured` by the {matmul} rate "
         f"measured at the start of this run ({format_value(info.get('matmul_tflops'))} TFLOP/s)."),
        ("- tokens/s counts the T input tokens of each row: every model sees T tokens, so the FLOPs are the same. "
         "The plain loop and `LMStep` take (B, T + 1) blocks and predict all T next tokens; the HF variants get "
         "the first T tokens as `input_ids` and `labels` and shift inside the loss (T - 1 predictions)."),
        ("- Timing: ours time `run(steps)` after `run(warmup)` (device synchronised, harness.measure_training); "
         "the HF variants are timed inside `trainer.train()` by a TrainerCallback from the end of step `warmup` "
         "to the end of the last step, synchronised at both ends, so HF's data loading and per-step work count "
         "as ours do. `first_call_s` is the warm-up (compilation) in every variant."),
        (f"- `loss_after`: mean cross-entropy over every position of {HELD_OUT} held-out blocks, fp32 eager, after "
         f"the same number of steps. The tokens are uniform random, so ln V = {math.log(cfg.vocab_size):.3f} is "
         "the floor: the column shows that no variant diverged, not that it learned. HF variants keep "
         "TrainingArguments' lr 5e-5 (betas 0.9/0.999, no decay, linear schedule) and GPT2Config's dropout 0.1; "
         "ours use nanoGPT's lr 6e-4, betas 0.9/0.95, decay 0.1, dropout 0."),
    ]
    if smoke:
        lines.append("- Smoke run: a 2-layer, 64-wide GPT-2 on sequences of 64 with a 4,000-token vocabulary, a few "
                     "steps; compile only with --compile. Checks the code path, not a speed result.")
    if info.get("device") == "cpu":
        lines.append("- CPU: bf16 runs as CPU autocast (it works, slowly); torch.compile is off unless --compile.")
    return lines


# --------------------------------------------------------------------------------------------- generation
def generation_rows(cfg: GPTConfig, device: torch.device, lengths: Sequence[int], batch: int, prompt_len: int,
                    seed: int = 0) -> list[Row]:
    """Greedy decoding of one random prompt (batch, prompt_len) without and with the KV cache, per length: the
    seconds of one ``generate`` call each (after a short untimed warm-up call), tokens/s and the speedup."""
    torch.manual_seed(seed)
    model = GPT(cfg).to(device).eval()
    prompt = torch.randint(cfg.vocab_size, (batch, prompt_len), generator=torch.Generator().manual_seed(seed))
    rows = []
    for n in lengths:
        if prompt_len + n > cfg.block_size:
            raise ValueError(f"prompt {prompt_len} + {n} new tokens exceed block_size {cfg.block_size}: past "
                             "the window the cache is recomputed every step (no speedup to measure).")
        seconds, outputs = {}, {}
        for use_cache in (False, True):
            generate(model, prompt, 2, use_cache=use_cache)  # warm-up: allocator, kernels
            with Timer(device) as timer:
                outputs[use_cache] = generate(model, prompt, n, use_cache=use_cache)
            seconds[use_cache] = timer.seconds
        rows.append({"name": f"greedy, {n} new tokens", "prompt": prompt_len, "new_tokens": n, "batch": batch,
                     "uncached_s": seconds[False], "cached_s": seconds[True],
                     "uncached tokens/s": batch * n / seconds[False],
                     "cached tokens/s": batch * n / seconds[True],
                     "speedup": seconds[False] / seconds[True],
                     "same_tokens": bool(torch.equal(outputs[False], outputs[True]))})
    return rows


def generation_main(args: argparse.Namespace, device: torch.device) -> int:
    """``--generate``: the KV-cache benchmark, written as ``lm-generate_<device>.json`` and ``.md``."""
    info = device_report(device)
    cfg = (GPTConfig(vocab_size=4000, block_size=128, n_layer=2, n_head=2, n_embd=64) if args.smoke
           else GPTConfig.from_name("gpt2"))
    lengths = args.lengths or ([16, 96] if args.smoke else [64, 256, 1000])
    batch, prompt_len = (args.batch or [1])[0], 24
    rows = generation_rows(cfg, device, lengths, batch, prompt_len)
    for row in rows:
        print(f"{row['name']}: {row['uncached tokens/s']:,.0f} -> {row['cached tokens/s']:,.0f} tokens/s "
              f"({row['speedup']:.2f}x), same tokens: {row['same_tokens']}", flush=True)
    config = {"model": f"GPT-2 {cfg.n_layer}x{cfg.n_embd}, {cfg.n_head} heads, vocab {cfg.vocab_size}, "
                       f"context {cfg.block_size}", "weights": "random init (speed does not depend on them)",
              "decoding": "greedy", "precision": "fp32", "batch": batch, "prompt": prompt_len}
    json_path, md_path = write_results("lm-generate", rows, info, config,
                                       **({"out_dir": args.out} if args.out else {}))
    with md_path.open("a") as md:
        md.write("\n## Notes\n\n" + "\n".join([
            "- Without the cache every new token runs the whole context (t tokens) through every layer: "
            "O(t) projections and MLP rows and O(t^2) attention scores per token. With it only the new token "
            "runs, reading the cached keys and values: O(1) rows and O(t) scores per token.",
            "- One timed `generate` call per variant and length, after an untimed 2-token call; the device "
            "is synchronised at both ends (harness.Timer). `same_tokens`: both variants gave identical ids.",
            "- At small sizes, and on a GPU at batch 1, per-step overhead (Python, kernel launches) "
            "dominates and the speedup is smaller than the FLOP count suggests; it grows with the length.",
        ]) + "\n")
    print(md_path.read_text())
    print(f"wrote {json_path}")
    return 0


# --------------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny GPT-2: seconds on a CPU")
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch", type=int, nargs="+", default=None,
                        help="batch of every variant but HF defaults (which keeps HF's 8); default 16")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per variant (after warm-up)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (compilation happens here)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile in hf-tuned, plain and trainer (default: on GPUs only)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="which variants to run (default: all)")
    parser.add_argument("--out", default=None, help="folder for the results (default bench/results)")
    parser.add_argument("--generate", action="store_true",
                        help="benchmark generation with and without the KV cache instead of training")
    parser.add_argument("--lengths", type=int, nargs="+", default=None,
                        help="--generate: numbers of new tokens (default 64 256 1000; smoke 16 96)")
    args = parser.parse_args(argv)
    if (args.steps is not None and args.steps < 1) or (args.warmup is not None and args.warmup < 1):
        parser.error("--steps and --warmup must be at least 1 (the first step is where compilation happens)")
    device = torch.device(args.device) if args.device else default_device()
    if args.generate:
        return generation_main(args, device)
    gpu = device.type == "cuda"
    info = device_report(device)  # measure the machine before the workloads
    cfg = (GPTConfig(vocab_size=4000, block_size=64, n_layer=2, n_head=2, n_embd=64, vocab_multiple=64)
           if args.smoke else GPTConfig.from_name("gpt2", vocab_multiple=64))
    batches = args.batch or [16]
    steps = args.steps or (3 if args.smoke else 100 if gpu else 3)
    warmup = args.warmup if args.warmup is not None else (1 if args.smoke or not gpu else 20)
    compile = gpu if args.compile is None else args.compile
    bf16 = torch.cuda.is_bf16_supported(including_emulation=False) if gpu else True  # CPU autocast does bf16
    seed = 0
    # enough blocks that no variant sees one twice (a model that memorised random tokens would lose on the
    # held-out ones), a multiple of every batch so that no epoch ends on a partial batch (a recompile)
    n_train = math.lcm(HF_DEFAULT_BATCH, *batches)
    n_train *= math.ceil((warmup + steps) * max(batches + [HF_DEFAULT_BATCH]) / n_train)
    blocks = make_blocks(n_train + HELD_OUT, cfg.block_size, cfg.vocab_size, seed)
    train_blocks, held_out = blocks[:-HELD_OUT], blocks[-HELD_OUT:]
    plan = [("hf-defaults", HF_DEFAULT_BATCH, False, False)] if "hf-defaults" in args.variants else []
    plan += [(key, batch, bf16, compile) for batch in batches for key in ("hf-tuned", "plain", "trainer")
             if key in args.variants]
    torch.manual_seed(seed)  # the plain loop and the trainer start from these weights (same seed, same GPT)
    init = weight_vector(GPT(cfg).parameters())
    plain_weights: dict[int, torch.Tensor] = {}  # per batch: the plain loop's weights after training
    rows: list[Row] = []
    for key, batch, half, compiled in plan:
        free_memory(device)
        start = time.perf_counter()
        row, model = RUNNERS[key](cfg, train_blocks, device, batch, warmup, steps, seed, half, compiled)
        rows.append({"name": VARIANTS[key], "batch": batch, "precision": "bf16" if half else "fp32",
                     "compile": compiled, **row, "loss_after": eval_loss(model, held_out, device)})
        if key == "plain" or (key == "trainer" and batch in plain_weights):  # same model: compare the updates
            weights = weight_vector(model.parameters())
            plain_weights.setdefault(batch, weights)
            rows[-1].update(update_agreement(init, plain_weights[batch], weights))
        print(f"{VARIANTS[key]} (batch {batch}): {row['tokens/s']:,.0f} tokens/s, loss {rows[-1]['loss_after']:.3f}"
              f" ({time.perf_counter() - start:.0f} s)", flush=True)
        del model
    free_memory(device)
    rows = add_columns(rows, cfg, info.get("matmul_tflops"))
    config = {"model": f"GPT-2 {cfg.n_layer}x{cfg.n_embd}, {cfg.n_head} heads, vocab {cfg.vocab_size} "
                       f"(ours padded to {cfg.padded_vocab_size})",
              "vocab_size": cfg.vocab_size, "seq_len": cfg.block_size, "train_blocks": n_train, "data": "uniform random token blocks", "warmup": warmup, "timed_steps": steps,
              "flops_per_token": flops_per_token(cfg, cfg.block_size), "peak_tflops": H100_BF16_TFLOPS}
    json_path, md_path = write_results("lm", rows, info, config, **({"out_dir": args.out} if args.out else {}))
    with md_path.open("a") as md:
        md.write("\n## Targets\n\n" + "\n".join(target_lines(rows) or ["- (no trainer row)"]) + "\n")
        md.write("\n## Notes\n\n" + "\n".join(notes(cfg, info, args.smoke)) + "\n")
    print(md_path.read_text())
    print(f"wrote {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
