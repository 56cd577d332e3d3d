"""LoRA fine-tuning of a causal LM for headline sentiment and for slogans with tone and length control (notebook 14).

The third way to turn a language model into a task model, beside prompting it (:mod:`aigc_lib.apps.lm_tasks`,
zero/few-shot) and training a small classifier from scratch (:mod:`aigc_lib.apps.sentiment`):

- :func:`add_lm_lora` freezes a Hugging Face GPT-2 and adds peft's LoRA adapters, W x + (alpha / r) B A x, to
  its Conv1D projections (``fan_in_fan_out``: GPT-2 stores them as (d_in, d_out); notebook 06);
- :func:`lora_finetune` trains them on (prompt, target) pairs with the causal-LM loss on the TARGET tokens only
  (the prompt's labels are -100), through :class:`aigc_lib.train.Trainer` (TensorBoard with ``trackers``);
- :func:`sentiment_examples` and :func:`slogan_examples` write those pairs with the very prompts the untuned model
  is scored with, so before and after differ only in the adapter; :func:`tune_sentiment` and
  :func:`tune_slogans` run a whole recipe of :data:`SENTIMENT_LORA_RECIPES` / :data:`SLOGAN_LORA_RECIPES`
  and report prompting against LoRA on held-out templates (headlines) and held-out items (slogans).
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from aigc_lib.apps.adcopy import LANGS, Slogan, make_slogans, slogan_prompt, slogan_report, slogan_split
from aigc_lib.apps.catalog import Item, make_catalog
from aigc_lib.apps.finance import LABELS, Headline, headline_split
from aigc_lib.apps.lm_tasks import LABEL_WORDS, classify_by_prompt, lm_generate, sentiment_prompt
from aigc_lib.apps.sentiment import accuracy, expected_calibration_error, macro_f1
from aigc_lib.data import TensorLoader
from aigc_lib.lm.data import CausalLMCollator
from aigc_lib.lm.model import IGNORE_INDEX
from aigc_lib.lm.offline_base import load_base_lm
from aigc_lib.lm.training import causal_lm_loss, lm_logits, lm_optimizer, warmup_cosine
from aigc_lib.train import TrainConfig, Trainer

__all__ = ["GPT2_LORA_TARGETS", "OFFLINE_LORA_TARGETS", "SENTIMENT_LORA_RECIPES", "SLOGAN_LORA_RECIPES",
           "LoraRecipe", "add_lm_lora", "encode_examples", "generate_slogans", "lora_finetune", "sentiment_examples", "sentiment_metrics",
           "slogan_examples", "trainable_parameters", "tune_sentiment", "tune_slogans"]

GPT2_LORA_TARGETS = ("c_attn", "c_proj", "c_fc")  # GPT-2's Conv1D layers: attention in/out, MLP in/out
# The offline bases also adapt the (tied) output layer. Their token embeddings are small (row norm 0.33 in the
# smoke base, after 80 pretraining steps), so through the tied head every logit is at most |h| |w| ~ 8 x 0.33:
# LoRA inside the blocks alone cannot make a label word likely (training loss stuck at 6.6 nats on smoke,
# measured); a LoRA on lm_head scales those logits (1.2 nats after 25 steps).
OFFLINE_LORA_TARGETS = (*GPT2_LORA_TARGETS, "lm_head")


@dataclass(frozen=True)
class LoraRecipe:
    """One LoRA run: the base model, the data size and the training settings (notebook 14).

    ``hub_id`` None (or unreachable) means the course's offline base of recipe ``base`` (``load_base_lm``);
    ``n_train``: training headlines (sentiment) or catalogue items (slogans); ``shots``: the few-shot
    baseline's worked examples."""

    base: str
    hub_id: str | None = None
    n_train: int = 240
    n_test: int = 150
    steps: int = 150
    batch_size: int = 16
    lr: float = 3e-3
    rank: int = 8
    alpha: float | None = 16.0
    targets: tuple[str, ...] = OFFLINE_LORA_TARGETS
    shots: int = 3
    max_new_tokens: int = 32
    seed: int = 0


# sized on a busy 2-core CPU (the times in the module's tests and in notebook 14): smoke trains in seconds,
# quick in about a minute per task; full is the same recipe on the hub's "gpt2" (online only)
SENTIMENT_LORA_RECIPES = {
    "smoke": LoraRecipe("smoke", n_train=120, n_test=90, steps=60, batch_size=16, lr=5e-3),
    "quick": LoraRecipe("quick", n_train=480, n_test=240, steps=200, batch_size=16, lr=3e-3),
    "full": LoraRecipe("full", hub_id="gpt2", n_train=2000, n_test=600, steps=600, batch_size=16, lr=5e-4,
                       targets=GPT2_LORA_TARGETS),
}
SLOGAN_LORA_RECIPES = {
    "smoke": LoraRecipe("smoke", n_train=24, n_test=3, steps=100, batch_size=8, lr=1e-2, shots=2),
    "quick": LoraRecipe("quick", n_train=60, n_test=12, steps=200, batch_size=8, lr=3e-3, shots=2),
    "full": LoraRecipe("full", hub_id="gpt2", n_train=200, n_test=40, steps=600, batch_size=8, lr=5e-4,
                       targets=GPT2_LORA_TARGETS),
}


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, each tensor counted once (notebook 14)."""
    params = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def add_lm_lora(model: nn.Module, rank: int = 8, alpha: float | None = None,
                targets: Sequence[str] = GPT2_LORA_TARGETS, dropout: float = 0.0, seed: int = 0) -> nn.Module:
    """Freeze a Hugging Face causal LM and wrap it with peft LoRA adapters on ``targets`` (notebook 14).

    ``targets``: module-name suffixes (GPT-2: ``c_attn``, ``c_proj``, ``c_fc``). ``fan_in_fan_out`` is set when
    they are transformers' ``Conv1D`` (GPT-2 stores (d_in, d_out)). A starts random (seeded by ``seed``, the
    global RNG left as it was), B at zero, so the wrapped model starts exactly as the base. Returns the peft
    model; :func:`trainable_parameters` counts what trains.
    """
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers.pytorch_utils import Conv1D

    if isinstance(model, PeftModel):
        raise TypeError("this model already has peft adapters: pass the base model, or train the ones it has.")
    if not hasattr(model, "generate"):
        raise TypeError(f"add_lm_lora wraps Hugging Face causal LMs (e.g. load_base_lm(None, 'smoke')), got "
                        f"{type(model).__name__}; export the course's GPT with GPT.to_hf() first.")
    if rank < 1:
        raise ValueError(f"rank must be at least 1, got {rank}.")
    targets = [targets] if isinstance(targets, str) else list(targets)
    layers = [m for name, m in model.named_modules() if any(name.split(".")[-1] == t for t in targets)]
    if not targets or not layers:
        names = sorted({name.split(".")[-1] for name, m in model.named_modules()
                        if isinstance(m, (nn.Linear, Conv1D))})
        raise ValueError(f"no module is named like targets={targets}; this model's linear layers are {names}.")
    config = LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=targets, lora_dropout=dropout,
                        bias="none", fan_in_fan_out=any(isinstance(m, Conv1D) for m in layers),
                        task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # expected with lm_head among GPT-2's Conv1D targets: peft sets fan_in_fan_out per layer by itself, and
        # the adapter acts on the tied head's output side only (the input embedding stays the base's)
        warnings.filterwarnings("ignore", message=".*fan_in_fan_out is set to True but the target module")
        warnings.filterwarnings("ignore", message=".*tie_word_embeddings=True. and a tied layer")
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing. is deprecated")  # peft vs transformers
        torch.manual_seed(seed)
        return get_peft_model(model, config)  # freezes every base parameter


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_examples(tokenizer: Any, examples: Sequence[tuple[str, str]], max_length: int | None = None,
                    add_eos: bool = True) -> dict[str, Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (N, T) of (prompt, target) pairs (notebook 14).

    Prompt and target are tokenized separately and concatenated (as :func:`~aigc_lib.apps.lm_tasks.label_logprobs`
    scores them); labels are -100 on the prompt and padding, the target's ids (and EOS with ``add_eos``, so
    generation learns where to stop) elsewhere. Rows longer than ``max_length`` lose their oldest prompt tokens.
    Unlike :func:`aigc_lib.lm.encode_qa` (chapter 05) the target is used as given (no space is put before it: a
    Chinese label word takes none) and the prompt, not the answer, is what truncation shortens; the padding is
    chapter 05's :class:`~aigc_lib.lm.data.CausalLMCollator`.
    """
    if isinstance(examples, tuple) and len(examples) == 2 and isinstance(examples[0], str):
        raise TypeError("examples is a list of (prompt, target) pairs; wrap a single pair in a list.")
    if not examples:
        raise ValueError("no examples: pass a non-empty list of (prompt, target) pairs.")
    eos = tokenizer.eos_token_id
    if add_eos and eos is None:
        raise ValueError("the tokenizer has no EOS token: pass add_eos=False.")
    rows = []
    for prompt, target in examples:
        if not prompt or not target:
            raise ValueError(f"empty prompt or target in example ({prompt!r}, {target!r}).")
        p, t = _ids(tokenizer, prompt), _ids(tokenizer, target) + ([eos] if add_eos else [])
        keep = len(p) if max_length is None else max_length - len(t)
        if keep < 1:
            raise ValueError(f"a target of {len(t)} tokens leaves no room for its prompt in "
                             f"max_length={max_length}.")
        rows.append({"input_ids": p[-keep:] + t, "labels": [IGNORE_INDEX] * len(p[-keep:]) + t})
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos or 0)
    return CausalLMCollator(pad)(rows)  # right-padded; padding is -100 in the labels and 0 in the mask


def lora_finetune(model: nn.Module, tokenizer: Any, examples: Sequence[tuple[str, str]], steps: int = 100,
                  batch_size: int = 16, lr: float = 3e-3, seed: int = 0, trackers: Sequence[str] = (),
                  log_dir: str | None = None, progress: bool = False, add_eos: bool = True,
                  device: str | None = None, warmup_steps: int | None = None) -> dict[str, list[dict[str, float]]]:
    """Train a LoRA-wrapped model (:func:`add_lm_lora`) on (prompt, target) pairs; returns the trainer's history.

    Loss: mean cross-entropy of the target tokens given everything before them (prompt tokens are labels -100),
    AdamW on the adapter only, linear warm-up then cosine decay, ``steps`` optimizer steps of ``batch_size``
    pairs drawn without replacement (reshuffled each epoch). ``trackers=("tensorboard",)`` logs the loss under
    ``log_dir`` as every course trainer does. Deterministic from ``seed`` on one device (notebook 14).
    """
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        raise TypeError("lora_finetune trains adapters: wrap the model with add_lm_lora(model, ...) first.")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
    if batch_size < 1 or not lr >= 0:  # lr 0: a control run in which the adapters stay zero
        raise ValueError(f"need batch_size >= 1 and lr >= 0, got {batch_size} and {lr}.")
    model_config = model.config
    limit = getattr(model_config, "n_positions", None) or getattr(model_config, "max_position_embeddings", None)
    data = encode_examples(tokenizer, examples, limit, add_eos)
    batch_size = min(batch_size, len(examples))  # a set smaller than one batch trains on all of it each step
    loader = TensorLoader(data["input_ids"], data["attention_mask"], data["labels"], batch_size=batch_size,
                          seed=seed)

    def step(trainer: Trainer, batch: tuple[Tensor, Tensor, Tensor]) -> dict[str, Tensor]:
        ids, mask, labels = batch
        width = int(mask.sum(1).max())  # drop the columns that are padding in every row of this batch
        logits = lm_logits(trainer.model, ids[:, :width], mask[:, :width])
        loss = causal_lm_loss(logits, labels[:, :width])
        trainer.backward(loss)
        trainer.optimizer_step()
        return {"loss": loss.detach()}

    torch.manual_seed(seed)  # dropout, if the recipe has any
    optimizer = lm_optimizer(model, lr, weight_decay=0.0)
    warmup = min(steps // 10, 20) if warmup_steps is None else warmup_steps
    config = TrainConfig(max_steps=steps, max_grad_norm=1.0, device=device, progress=progress,
                         log_every=max(1, min(20, steps)), trackers=tuple(trackers), project_dir=log_dir)
    run = {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "examples": len(examples),
           "trainable": trainable_parameters(model)[0]}
    trainer = Trainer(model, optimizer, step, loader, config, run_config=run,
                      schedulers={"model": warmup_cosine(optimizer, warmup, steps)})
    history = trainer.fit()
    model.eval()
    return history


# ----------------------------------------------------------------------------------------------- sentiment
def _check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}.")
    return lang


def sentiment_examples(headlines: Sequence[Headline], lang: str = "en") -> list[tuple[str, str]]:
    """(zero-shot prompt, label word) pairs: ``sentiment_prompt(h.text, lang)`` and ``LABEL_WORDS[lang]``
    of the headline's label, the very scoring :func:`~aigc_lib.apps.lm_tasks.classify_by_prompt` does (notebook 14)."""
    _check_lang(lang)
    if not headlines:
        raise ValueError("no headlines: pass a non-empty list (finance.headline_split).")
    wrong = [h.text for h in headlines if h.lang != lang]
    if wrong:
        raise ValueError(f"{len(wrong)} headlines are not in lang={lang!r}, e.g. {wrong[0]!r}.")
    return [(sentiment_prompt(h.text, lang), LABEL_WORDS[lang][LABELS.index(h.label)]) for h in headlines]


def sentiment_metrics(model: nn.Module, tokenizer: Any, headlines: Sequence[Headline], lang: str = "en",
                      shots: Sequence[tuple[str, str]] = ()) -> dict[str, float]:
    """Accuracy, macro-F1 and ECE of :func:`~aigc_lib.apps.lm_tasks.classify_by_prompt` on headlines (notebook 14)."""
    if not headlines:
        raise ValueError("no headlines to score.")
    labels = [h.label for h in headlines]
    predicted, probs = classify_by_prompt(model, tokenizer, [h.text for h in headlines], lang, shots)
    return {"accuracy": accuracy(labels, predicted), "macro_f1": macro_f1(labels, predicted),
            "ece": expected_calibration_error(probs, labels)}


def _recipe(recipe: LoraRecipe | str, table: dict[str, LoraRecipe], what: str) -> LoraRecipe:
    if isinstance(recipe, str):
        if recipe not in table:
            raise ValueError(f"unknown {what} recipe {recipe!r}: choose one of {', '.join(table)}.")
        return table[recipe]
    if not isinstance(recipe, LoraRecipe):
        raise TypeError(f"recipe must be a name ({', '.join(table)}) or a LoraRecipe, got {type(recipe).__name__}.")
    return recipe


def _base(recipe: LoraRecipe, model: nn.Module | None, tokenizer: Any) -> tuple[nn.Module, Any]:
    if model is not None:
        if tokenizer is None:
            raise ValueError("a model was given without its tokenizer.")
        return model, tokenizer
    base = "quick" if recipe.base == "full" else recipe.base  # the offline fallback of an unreachable hub id
    model, tokenizer = load_base_lm(recipe.hub_id, base)
    path = "hub" if recipe.hub_id is not None and model.name_or_path == recipe.hub_id else "offline"
    print(f"[aigc.apps] LoRA base ({path} path): {model.name_or_path}")
    return model, tokenizer


def tune_sentiment(recipe: LoraRecipe | str = "smoke", lang: str = "en", model: nn.Module | None = None,
                   tokenizer: Any = None, **train_kwargs: Any) -> dict[str, Any]:
    """Zero-shot, few-shot and LoRA headline sentiment on held-out TEMPLATES, one recipe end to end (notebook 14).

    Loads the recipe's base (or takes ``model``, left unchanged: LoRA wraps it and is dropped after),
    scores prompting, trains LoRA on the training headlines' zero-shot prompts and scores it with the same
    prompt. Returns ``{"zero_shot"|"few_shot"|"lora": {accuracy, macro_f1, ece}, "majority": accuracy of the
    most common training label, "seconds", "history", "recipe"}``; ``train_kwargs`` go to :func:`lora_finetune`.
    """
    recipe = _recipe(recipe, SENTIMENT_LORA_RECIPES, "sentiment")
    model, tokenizer = _base(recipe, model, tokenizer)
    train, test = headline_split(recipe.n_train, recipe.n_test, _check_lang(lang), seed=recipe.seed)
    shot_rng = np.random.default_rng(recipe.seed)
    shots = [(train[i].text, train[i].label) for i in shot_rng.choice(len(train), recipe.shots, replace=False)]
    report: dict[str, Any] = {"recipe": asdict(recipe), "lang": lang}
    report["zero_shot"] = sentiment_metrics(model, tokenizer, test, lang)
    report["few_shot"] = sentiment_metrics(model, tokenizer, test, lang, shots)
    common = max(LABELS, key=[h.label for h in train].count)
    report["majority"] = accuracy([h.label for h in test], [common] * len(test))
    lora = add_lm_lora(model, recipe.rank, recipe.alpha, recipe.targets, seed=recipe.seed)
    report["trainable"], report["total"] = trainable_parameters(lora)
    start = time.perf_counter()
    train_kwargs.setdefault("add_eos", False)  # only the label word is scored, so only it is trained
    report["history"] = lora_finetune(lora, tokenizer, sentiment_examples(train, lang), recipe.steps,
                                      recipe.batch_size, recipe.lr, recipe.seed, **train_kwargs)
    report["seconds"] = time.perf_counter() - start
    report["lora"] = sentiment_metrics(lora, tokenizer, test, lang)
    lora.unload()  # the base model without adapters, as it came in
    return report


# ----------------------------------------------------------------------------------------------- slogans
def _slogan_target(text: str, lang: str) -> str:
    return " " + text if lang == "en" else text  # the English prompt ends "Slogan:", the Chinese "广告语："


def slogan_examples(slogans: Sequence[Slogan], lang: str = "en") -> list[tuple[str, str]]:
    """(zero-shot ``slogan_prompt``, slogan) pairs of the slogans in ``lang`` (notebook 14)."""
    _check_lang(lang)
    chosen = [s for s in slogans if s.lang == lang]
    if not chosen:
        raise ValueError(f"no slogans in lang={lang!r} among {len(slogans)}: "
                         f"make_slogans(items, langs=[{lang!r}]).")
    return [(slogan_prompt(s.item, s.tone, s.length, lang), _slogan_target(s.text, lang)) for s in chosen]


def generate_slogans(model: nn.Module, tokenizer: Any, items: Sequence[Item], tones: Sequence[str],
                     lengths: Sequence[str], lang: str = "en", max_new_tokens: int = 32,
                     shots: Sequence[Slogan] = ()) -> list[str]:
    """One greedy slogan per (item, tone, length) request, from ``slogan_prompt`` (few-shot with ``shots``),
    stopped at the line's end (notebook 14)."""
    _check_lang(lang)
    if not items or not len(items) == len(tones) == len(lengths):
        raise ValueError(f"need as many items, tones and lengths, at least one; got {len(items)}, {len(tones)}, "
                         f"{len(lengths)}.")
    generate = lm_generate(model, tokenizer, max_new_tokens, stop="\n")
    return [generate(slogan_prompt(i, t, n, lang, shots)).strip() for i, t, n in zip(items, tones, lengths)]


def tune_slogans(recipe: LoraRecipe | str = "smoke", lang: str = "en", model: nn.Module | None = None,
                 tokenizer: Any = None, **train_kwargs: Any) -> dict[str, Any]:
    """Slogan control before (few-shot prompting) and after LoRA on held-out ITEMS, one recipe (notebook 14).

    ``n_train + n_test`` catalogue items, two slogans per item, tone and length (``make_slogans``), split by
    item; every held-out (item, tone, length) is asked for once. Returns ``{"few_shot"|"lora":
    slogan_report(...), "samples": a few (request, before, after), "seconds", "history", "recipe"}``.
    """
    recipe = _recipe(recipe, SLOGAN_LORA_RECIPES, "slogan")
    model, tokenizer = _base(recipe, model, tokenizer)
    items = make_catalog(n_items=recipe.n_train + recipe.n_test, n_new=0, seed=recipe.seed)
    slogans = make_slogans(items, langs=[_check_lang(lang)], per_cell=2, seed=recipe.seed)
    train, test = slogan_split(slogans, recipe.n_test / len(items), seed=recipe.seed)
    requests = list(dict.fromkeys((s.item, s.tone, s.length) for s in test))
    items_q, tones_q, lengths_q = (list(x) for x in zip(*requests))
    shot_rng = np.random.default_rng(recipe.seed)
    shots = [train[i] for i in shot_rng.choice(len(train), recipe.shots, replace=False)]
    report: dict[str, Any] = {"recipe": asdict(recipe), "lang": lang}
    before = generate_slogans(model, tokenizer, items_q, tones_q, lengths_q, lang, recipe.max_new_tokens, shots)
    report["few_shot"] = slogan_report(before, items_q, tones_q, lengths_q, lang)
    lora = add_lm_lora(model, recipe.rank, recipe.alpha, recipe.targets, seed=recipe.seed)
    report["trainable"], report["total"] = trainable_parameters(lora)
    start = time.perf_counter()
    report["history"] = lora_finetune(lora, tokenizer, slogan_examples(train, lang), recipe.steps,
                                      recipe.batch_size, recipe.lr, recipe.seed, **train_kwargs)
    report["seconds"] = time.perf_counter() - start
    after = generate_slogans(lora, tokenizer, items_q, tones_q, lengths_q, lang, recipe.max_new_tokens)
    report["lora"] = slogan_report(after, items_q, tones_q, lengths_q, lang)
    report["samples"] = [(f"{i.kind}/{t}/{n}", b, a) for i, t, n, b, a
                         in list(zip(items_q, tones_q, lengths_q, before, after))[:6]]
    lora.unload()
    return report

