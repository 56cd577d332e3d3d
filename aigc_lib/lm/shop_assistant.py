"""The shop assistant of notebook 05 as a cached artefact: a GPT-2 fine-tuned on the shop Q&A pairs (05, 10).

:func:`build_shop_assistant` fine-tunes it once, the way notebook 05 does (split by answer, prompts masked,
AdamW + warm-up/cosine, early stopping on validation loss), and caches a ``save_pretrained`` folder with an
``assistant.json`` beside the weights: the recipe, which base ran, the training history, the ids of the
train/validation/test pairs and the test perplexity of the base and of the tuned model. Later chapters load it
with :func:`load_shop_assistant` and evaluate on exactly the held-out pairs that :func:`assistant_split` returns.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from aigc_lib import data, storage, train
from aigc_lib.hub import ModelNotAvailableError, find_source
from aigc_lib.lm import data as lm_data
from aigc_lib.lm import training as lm_training
from aigc_lib.lm.data import QA_TEMPLATE, CausalLMCollator, encode_qa, qa_batches
from aigc_lib.lm.offline_base import BASE_RECIPES, build_offline_base, load_causal_lm
from aigc_lib.lm.training import LMStep, lm_eval_fn, lm_optimizer, perplexity, warmup_cosine
from aigc_lib.runtime import pick_device, scaled_count, steps_scale

__all__ = ["ASSISTANT_RECIPES", "AssistantRecipe", "assistant_split", "build_shop_assistant",
           "load_shop_assistant"]

OFFLINE = "offline"  # AssistantRecipe.base for "always the offline base model"
INFO_FILE = "assistant.json"


@dataclass(frozen=True)
class AssistantRecipe:
    """How :func:`build_shop_assistant` fine-tunes the shop assistant; the defaults are notebook 05's full run."""

    base: str = "gpt2"  # a hub id ("gpt2", "distilgpt2"), or "offline": always the offline base model
    base_recipe: str = "full"  # BASE_RECIPES name of the offline base (used too when the hub is out of reach)
    qa_set: str = "shop"  # aigc_lib.data.load_qa
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)  # train, validation, test: split by answer
    split_seed: int = 0
    steps: int = 600  # at most; early stopping on validation loss may end sooner (best weights kept)
    batch_size: int = 16
    lr: float | None = None  # None: 1e-4 for a hub model, 1e-3 for the small offline base (05, section 5)
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    eval_every: int = 50
    patience: int = 3  # evaluations without a better validation loss before stopping
    seed: int = 0

    def learning_rate(self, hub: bool) -> float:
        """The rate used: ``lr``, or notebook 05's default for the base that ran."""
        return self.lr if self.lr is not None else (1e-4 if hub else 1e-3)


# Notebook 05's profiles. Measured offline on a 2-core CPU shared with other jobs, one torch thread, offline base
# cached: smoke 5.9 s of CPU (18 s wall), test perplexity 830.6 -> 397.6; quick (offline quick base, distilgpt2
# out of reach) 218 s wall, 480.0 -> 3.53.
ASSISTANT_RECIPES = {
    "smoke": AssistantRecipe(base=OFFLINE, base_recipe="smoke", steps=30, eval_every=15),  # 05: 60 (too slow here)
    "quick": AssistantRecipe(base="distilgpt2", base_recipe="quick", steps=400),
    "full": AssistantRecipe(),
}


def _recipe(recipe: AssistantRecipe | str) -> AssistantRecipe:
    recipe = storage.named_recipe(recipe, ASSISTANT_RECIPES, AssistantRecipe, "shop assistant", "ASSISTANT_RECIPES")
    if recipe.base_recipe not in BASE_RECIPES:
        raise ValueError(f"AssistantRecipe.base_recipe {recipe.base_recipe!r} is not an offline base recipe: "
                         f"choose one of {', '.join(BASE_RECIPES)}.")
    return recipe


def assistant_split(recipe: AssistantRecipe | str = "quick") -> tuple[list[dict], list[dict], list[dict]]:
    """(train, validation, test) Q&A pairs exactly as the assistant of ``recipe`` was trained and tested (05)."""
    recipe = _recipe(recipe)
    pairs = data.load_qa(recipe.qa_set)
    return data.qa_split(pairs, recipe.split_fractions, seed=recipe.split_seed)


def _choose_base(recipe: AssistantRecipe, online: bool | None) -> str:
    """``"hub:<id>"`` when the recipe names a hub model that can be had, else ``"offline:<base folder>"``."""
    if recipe.base != OFFLINE:
        try:
            find_source(recipe.base, online=online)
            return f"hub:{recipe.base}"
        except ModelNotAvailableError as error:
            print(f"[aigc.lm] {recipe.base!r} is not available ({str(error).split(':')[0]}); "
                  "fine-tuning the offline base model instead")
    return f"{OFFLINE}:base-{BASE_RECIPES[recipe.base_recipe].key()}"


def _folder(recipe: AssistantRecipe, base: str, root: Path) -> Path:
    """Cache folder: the recipe, the base that ran, the Q&A data and the code that fine-tunes."""
    pairs_hash = storage.cache_key(data.load_qa(recipe.qa_set))
    what = {**asdict(recipe), "base_used": base, "qa_data": pairs_hash, "steps_scale": steps_scale()}
    return root / f"assistant-{storage.cache_key(what, *_BUILD_CODE)}"


def build_shop_assistant(recipe: AssistantRecipe | str = "quick", cache_dir: str | os.PathLike | None = None, *,
                         device: str | None = None, rebuild: bool = False, progress: bool = True,
                         online: bool | None = None, base_cache_dir: str | os.PathLike | None = None) -> Path:
    """Fine-tune (once, then cached) notebook 05's shop assistant; return its ``save_pretrained`` folder (05).

    The base is ``recipe.base`` from the hub (or its local cache) when it can be had, else the offline base
    that :func:`build_offline_base` pretrains from ``recipe.base_recipe`` (cached in ``base_cache_dir``);
    both go through the same fine-tuning code, and the cache key names the base that ran.
    """
    recipe = _recipe(recipe)
    base = _choose_base(recipe, online)
    root = Path(cache_dir) if cache_dir else data.DATA_DIR / "cache" / "lm"
    folder = _folder(recipe, base, root)
    if (folder / INFO_FILE).is_file() and not rebuild:
        print(f"[aigc.lm] shop assistant ({base}): cached {folder}")
        return folder
    start = time.perf_counter()
    hub = base.startswith("hub:")
    if hub:
        model, tokenizer = load_causal_lm(recipe.base, online=online)
        print(f"[aigc.lm] shop assistant: fine-tuning {recipe.base!r} from the hub (online path)")
    else:
        base_dir = build_offline_base(recipe.base_recipe, base_cache_dir, device=device, progress=progress)
        model, tokenizer = load_causal_lm(None, base_dir)
        print(f"[aigc.lm] shop assistant: fine-tuning the offline base model {base_dir.name} (offline path)")
    train_pairs, val_pairs, test_pairs = assistant_split(recipe)
    summary = _fine_tune(model, tokenizer, recipe, (train_pairs, val_pairs, test_pairs), hub, device, progress)
    summary.update(recipe=asdict(recipe), base=base, seconds=time.perf_counter() - start,
                   split={name: [p["id"] for p in pairs]
                          for name, pairs in (("train", train_pairs), ("val", val_pairs), ("test", test_pairs))})
    with storage.atomic_dir(folder) as tmp:  # a reader sees no folder or a complete one
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / INFO_FILE).write_text(json.dumps(summary, indent=1))
    print(f"[aigc.lm] shop assistant saved to {folder} ({summary['seconds']:.0f} s, {summary['steps']} steps; "
          f"test perplexity {summary['test_ppl_base']:.1f} (base) -> {summary['test_ppl']:.2f} (tuned))")
    return folder


def _fine_tune(model: Any, tokenizer: Any, recipe: AssistantRecipe, splits: tuple[list, list, list], hub: bool,
               device: str | None, progress: bool) -> dict[str, Any]:
    """Notebook 05's fine-tuning loop on ``model`` in place; its history and test perplexities before and after."""
    train_pairs, val_pairs, test_pairs = splits
    run_device = pick_device(device)
    model.to(run_device)
    context = model.config.n_positions
    test_batches = qa_batches(tokenizer, test_pairs, recipe.batch_size, max_length=context)
    val_batches = qa_batches(tokenizer, val_pairs, recipe.batch_size, max_length=context)
    before = perplexity(model, test_batches)
    torch.manual_seed(recipe.seed)
    steps = scaled_count(recipe.steps)  # `make rehearse` shrinks the steps (and the key records the scale)
    eval_every = min(scaled_count(recipe.eval_every), steps)
    lr = recipe.learning_rate(hub)
    optimizer = lm_optimizer(model, lr=lr, weight_decay=recipe.weight_decay)
    scheduler = warmup_cosine(optimizer, warmup_steps=int(steps * recipe.warmup_fraction), max_steps=steps)
    loader = data.DatasetLoader(encode_qa(tokenizer, train_pairs, max_length=context), batch_size=recipe.batch_size,
                                collate_fn=CausalLMCollator(tokenizer.pad_token_id), seed=recipe.seed)
    early = train.EarlyStopping("val_loss", patience=recipe.patience)  # restores the best weights
    config = train.TrainConfig(max_steps=steps, eval_every=eval_every, max_grad_norm=1.0, device=str(run_device),
                               log_every=max(1, eval_every // 2), progress=progress)
    trainer = train.Trainer(model, optimizer, LMStep(), loader, config, schedulers={"model": scheduler},
                            eval_fn=lm_eval_fn(val_batches), hooks=[early])
    history = trainer.fit()
    model.eval()
    after = perplexity(model, test_batches)
    return {"history": history, "steps": trainer.step, "lr": lr, "device": str(trainer.device),
            "early_stopped_at": early.stopped_at, "best_step": early.best_step,
            "test_ppl_base": before["ppl"], "test_ppl": after["ppl"], "test_tokens": after["tokens"],
            "probe": _probe(model, tokenizer, test_pairs[0]), "parameters": model.num_parameters()}


@torch.no_grad()
def _probe(model: Any, tokenizer: Any, pair: dict[str, str]) -> dict[str, Any]:
    """The 10 largest next-token logits after one test prompt: a fingerprint a reloaded model must reproduce."""
    prompt = QA_TEMPLATE.format(**pair)
    ids = torch.tensor([tokenizer.encode(prompt)], device=model.device)  # (1, T)
    top = model(input_ids=ids).logits[0, -1].float().topk(10)  # (V,) -> 10
    return {"prompt": prompt, "ids": top.indices.tolist(), "logits": top.values.tolist()}


def load_shop_assistant(recipe_or_folder: AssistantRecipe | str | os.PathLike = "quick",
                        cache_dir: str | os.PathLike | None = None, *, device: str | None = None,
                        **build: Any) -> tuple[Any, Any]:
    """(model, tokenizer) of the shop assistant: a folder it was saved to, or a recipe built first if needed (10).

    ``build`` goes to :func:`build_shop_assistant` (``online``, ``base_cache_dir``, ``progress``). The model is
    in eval mode on ``device``; ``<folder>/assistant.json`` holds its split, history and perplexities.
    """
    is_name = isinstance(recipe_or_folder, str) and recipe_or_folder in ASSISTANT_RECIPES
    if isinstance(recipe_or_folder, AssistantRecipe) or is_name:
        folder = build_shop_assistant(recipe_or_folder, cache_dir, device=device, **build)
    elif isinstance(recipe_or_folder, (str, os.PathLike)) and (Path(recipe_or_folder) / INFO_FILE).is_file():
        folder = Path(recipe_or_folder)
    else:
        raise ValueError(f"{recipe_or_folder!r} is neither a shop assistant recipe ({', '.join(ASSISTANT_RECIPES)}"
                         f" or an AssistantRecipe) nor a folder holding {INFO_FILE}: pass a recipe, or the folder "
                         "that build_shop_assistant returned.")
    model, tokenizer = load_causal_lm(None, folder)
    return model.to(pick_device(device)).eval(), tokenizer


# the code whose changes change the cached assistant: the split, the encoding, the loss and the trainer
_BUILD_CODE = (AssistantRecipe, assistant_split, build_shop_assistant, _fine_tune, _probe, data.qa_split,
               lm_data, lm_training, train.Trainer, train.EarlyStopping, data.DatasetLoader)
