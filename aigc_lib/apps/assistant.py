"""The customer-service assistant measured: chapter 05's fine-tuned GPT-2 behind retrieval and guardrails (notebook 14).

Four generators answer the same held-out questions, English and Chinese:

- closed book: notebook 05's shop assistant given its own prompt (:data:`~aigc_lib.lm.data.QA_TEMPLATE`), no
  facts: it can only repeat what its training answers said;
- RAG, untrained: the same model given the retrieved facts, which it was never trained to read;
- RAG fine-tuned: the same model trained further (:func:`rag_fine_tune`) to answer a prompt of ``k`` retrieved
  facts (distractors included) with the text of the right one, on TRAINING pairs only, then put behind
  :class:`~aigc_lib.apps.guardrails.Guardrails`;
- :func:`~aigc_lib.apps.guardrails.extractive_generate`, the no-LM reference (quotes the top fact).

The test pairs are split by whether their gold fact (:func:`gold_fact_id`) is also the fact of some training
pair ("seen") or never was ("unseen"): a model that memorised answers can only do well on the seen group.
One rule scores every generator, :func:`answer_correct`.
"""
from __future__ import annotations

import functools
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from aigc_lib import data, storage, train
from aigc_lib.apps.guardrails import (
    MESSAGES,
    GuardConfig,
    Guardrails,
    Reply,
    build_prompt,
    grounding_support,
    injection_cases,
    injection_success_rate,
    rag_answer,
)
from aigc_lib.apps.knowledge import (
    CITIES,
    PRODUCTS,
    PROMOS,
    TEAS,
    Fact,
    fact_by_id,
    facts_for_intent,
    policy_facts,
)
from aigc_lib.apps.lm_tasks import lm_generate
from aigc_lib.apps.retrieval import Retriever, language_of, tokenize
from aigc_lib.lm.data import QA_TEMPLATE, CausalLMCollator, encode_qa
from aigc_lib.lm.shop_assistant import ASSISTANT_RECIPES, assistant_split, load_shop_assistant
from aigc_lib.lm.training import LMStep, lm_eval_fn, lm_optimizer, perplexity, warmup_cosine
from aigc_lib.metrics.text import rouge

__all__ = ["RAG_RECIPES", "AssistantScores", "RagRecipe", "answer_correct", "closed_book_generate",
           "compact_rag_prompt", "counterfactual", "evaluate_assistant", "fact_groups", "gold_fact_id", "injection_rates",
           "rag_examples", "rag_fine_tune", "rag_lm_generate", "rag_target_loss", "refusal_rate"]

_FIXED = {text for by_lang in MESSAGES.values() for text in by_lang.values()}
_FIXED_ACTION = {MESSAGES[r][lang]: ("refuse" if r in ("out_of_scope", "injection", "too_long") else "handoff")
                 for r in MESSAGES for lang in ("en", "zh")}


# ----------------------------------------------------------------------------------------------- gold facts
def gold_fact_id(pair: Mapping[str, str], retriever: Retriever | None = None) -> str:
    """The knowledge-base fact a Q&A pair's answer states (notebook 14).

    Chinese pairs carry it (``pair["fact"]``). An English pair has an intent; when several facts answer that
    intent (one per product, tea, zone, ...) the one BM25 ranks highest for the pair's ANSWER text is taken,
    since the answer names the product or zone the question asked about.
    """
    if "fact" in pair:
        return pair["fact"]
    if "intent" not in pair or "answer" not in pair:
        raise ValueError(f"a pair needs 'fact', or 'intent' and 'answer', to find its gold fact; got keys "
                         f"{sorted(pair)}.")
    candidates = facts_for_intent(pair["intent"], retriever.facts if retriever else None)
    if not candidates:
        raise ValueError(f"no fact answers intent {pair['intent']!r}: is the pair from the shop Q&A?")
    if len(candidates) == 1:
        return candidates[0].id
    retriever = retriever or Retriever()
    ids = {f.id for f in candidates}
    ranked = retriever.search(pair["answer"], k=len(retriever.facts), language=language_of(pair["answer"]))
    return next(f.id for f, _ in ranked if f.id in ids)


def fact_groups(train_pairs: Sequence[Mapping[str, str]], test_pairs: Sequence[Mapping[str, str]],
                retriever: Retriever | None = None) -> dict[str, Any]:
    """``{"seen_ids", "seen", "unseen"}``: the training pairs' fact ids and the test pairs whose gold fact is
    one of them or not (notebook 14). With ``assistant_split("quick")``: 116 seen, 35 unseen test pairs."""
    if not train_pairs or not test_pairs:
        raise ValueError(f"need training and test pairs, got {len(train_pairs)} and {len(test_pairs)}.")
    retriever = retriever or Retriever()
    seen_ids = {gold_fact_id(p, retriever) for p in train_pairs}
    seen = [p for p in test_pairs if gold_fact_id(p, retriever) in seen_ids]
    unseen = [p for p in test_pairs if gold_fact_id(p, retriever) not in seen_ids]
    return {"seen_ids": seen_ids, "seen": seen, "unseen": unseen}


# ----------------------------------------------------------------------------------------------- scoring
def answer_correct(answer: str, fact: Fact | str, lang: str, min_support: float = GuardConfig.min_support,
                   facts: Sequence[Fact] | None = None, min_tokens: int = 3) -> bool:
    """Whether ``answer`` is a correct reply for the gold ``fact`` (notebook 14).

    The rule, the same for every generator: the answer is not empty, is not one of the fixed refusals or
    hand-offs, is supported by the gold fact ALONE (``grounding_support(answer, [fact.text(lang)])`` reaches the
    guardrail's ``min_support``: 0.8 of its tokens occur in the fact), and no other fact of ``facts`` (default:
    the knowledge base) supports it more, and it holds at least ``min_tokens`` distinct tokens of the fact. So
    an answer counts when it states only what the right fact says: quoting another fact, mixing facts or adding
    made-up words fails, whatever the generator. The last two clauses were needed: "The clay teapot costs $55.
    Orders over $50 ship free within the US." shares 11 of its 13 tokens with the GLASS teapot's fact (0.85),
    and a barely trained model's "$s $s $s ..." is all one token ("s") that most facts contain. It checks
    content, not completeness: a correct half-sentence of the fact passes.
    """
    if lang not in ("en", "zh"):
        raise ValueError(f"lang must be 'en' or 'zh', got {lang!r}.")
    if not isinstance(answer, str):
        raise TypeError(f"answer must be a string, got {type(answer).__name__}.")
    fact = fact_by_id(fact, list(facts) if facts is not None else None) if isinstance(fact, str) else fact
    answer = answer.strip()
    if not answer or answer in _FIXED:
        return False
    support, tokens = grounding_support(answer, [fact.text(lang)]), tokenize(answer)
    if support < min_support or len(set(tokens) & set(tokenize(fact.text(lang)))) < min_tokens:
        return False
    return all(sum(t in other for t in tokens) / len(tokens) <= support
               for fid, other in _fact_tokens(tuple(facts or policy_facts()), lang) if fid != fact.id)


@functools.lru_cache(maxsize=8)
def _fact_tokens(facts: tuple[Fact, ...], lang: str) -> list[tuple[str, frozenset[str]]]:
    return [(f.id, frozenset(tokenize(f.text(lang)))) for f in facts]


def _as_reply(output: str | Reply) -> Reply:
    if isinstance(output, Reply):
        return output
    if not isinstance(output, str):
        raise TypeError(f"a reply function must return a string or a Reply, got {type(output).__name__}.")
    text = output.strip()
    return Reply(text, _FIXED_ACTION.get(text, "answer"), "fixed" if text in _FIXED else "raw")


def _reply_fn(reply_fn: Callable[[str], str | Reply] | Guardrails) -> Callable[[str], Reply]:
    if isinstance(reply_fn, Guardrails):
        return reply_fn.reply
    if not callable(reply_fn):
        raise TypeError(f"pass Guardrails or a function question -> str | Reply, got {type(reply_fn).__name__}.")
    return lambda q: _as_reply(reply_fn(q))


@dataclass(frozen=True)
class AssistantScores:
    """What :func:`evaluate_assistant` measures; accuracies are NaN for an empty group (notebook 14)."""

    accuracy: float
    accuracy_seen: float
    accuracy_unseen: float
    answer_rate: float
    refuse_rate: float
    handoff_rate: float
    rouge_l: float  # chapter 10's ROUGE-L F against the gold answers (Chinese by characters)
    n: int
    n_seen: int
    n_unseen: int
    seconds: float
    reasons: Mapping[str, int] = field(default_factory=dict)  # Reply.reason -> count ("raw" for a plain string)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_assistant(reply_fn: Callable[[str], str | Reply] | Guardrails, pairs: Sequence[Mapping[str, str]],
                       lang: str, seen_fact_ids: Iterable[str], retriever: Retriever | None = None,
                       min_support: float = GuardConfig.min_support) -> AssistantScores:
    """Accuracy (:func:`answer_correct`) overall and on seen / unseen facts, answer/refuse/hand-off rates and
    ROUGE-L of ``reply_fn`` (a :class:`Guardrails` or ``question -> str | Reply``) on Q&A pairs (notebook 14).

    A plain string reply counts as an answer unless it is one of the guardrails' fixed messages."""
    if not pairs:
        raise ValueError("pairs is empty: pass test Q&A pairs {question, answer, intent or fact}.")
    if lang not in ("en", "zh"):
        raise ValueError(f"lang must be 'en' or 'zh', got {lang!r}.")
    if isinstance(seen_fact_ids, str):
        raise TypeError("seen_fact_ids must be a set of fact ids (fact_groups(...)['seen_ids']), not one string.")
    seen_ids, retriever, reply = set(seen_fact_ids), retriever or Retriever(), _reply_fn(reply_fn)
    start = time.perf_counter()
    replies = [reply(p["question"]) for p in pairs]
    gold = [gold_fact_id(p, retriever) for p in pairs]
    correct = np.array([r.action == "answer" and answer_correct(r.text, g, lang, min_support, retriever.facts)
                        for r, g in zip(replies, gold)])
    seen = np.array([g in seen_ids for g in gold])
    actions = np.array([r.action for r in replies])
    rouge_l = rouge([r.text for r in replies], [p["answer"] for p in pairs], lang=lang)["rougeL"]

    def mean(mask: np.ndarray) -> float:
        return float(correct[mask].mean()) if mask.any() else math.nan

    return AssistantScores(float(correct.mean()), mean(seen), mean(~seen), float((actions == "answer").mean()),
                           float((actions == "refuse").mean()), float((actions == "handoff").mean()),
                           rouge_l, len(pairs), int(seen.sum()), int((~seen).sum()), time.perf_counter() - start,
                           dict(Counter(r.reason for r in replies)))


def refusal_rate(reply_fn: Callable[[str], str | Reply] | Guardrails, questions: Sequence[str]) -> float:
    """Share of questions NOT answered (refused or handed to a human), e.g. on
    ``out_of_scope_questions("test")`` of one language (notebook 14)."""
    if isinstance(questions, str) or not questions:
        raise ValueError("questions must be a non-empty list of strings, e.g. out_of_scope_questions('test').")
    reply = _reply_fn(reply_fn)
    return float(np.mean([reply(q).action != "answer" for q in questions]))


def injection_rates(generate: Callable[[str], str], retriever: Retriever | None = None, lang: str = "en",
                    config: GuardConfig | None = None) -> dict[str, float]:
    """Injection success of ``generate`` on one language's :func:`injection_cases`: ``before`` with no rules
    (:func:`rag_answer`), ``after`` behind :class:`Guardrails` (notebook 14)."""
    cases = [c for c in injection_cases() if c["language"] == lang]
    if not cases:
        raise ValueError(f"no injection cases in language {lang!r}: use 'en' or 'zh'.")
    retriever, config = retriever or Retriever(), config or GuardConfig()
    guard = Guardrails(generate, retriever, config)
    return {"before": injection_success_rate(lambda q: rag_answer(q, generate, retriever, config.k), cases),
            "after": injection_success_rate(lambda q: guard.reply(q).text, cases)}


# ----------------------------------------------------------------------------------------------- generators
_FACT_LINE = re.compile(r"^\[\d+\] (.*)$", re.MULTILINE)


def compact_rag_prompt(prompt: str, tokenizer: Any = None, max_tokens: int | None = None) -> str:
    """A :func:`build_prompt` prompt without its instruction sentence: ``Facts:`` lines, ``Question:``,
    ``Answer:``; with a tokenizer and ``max_tokens`` the lowest-ranked facts are dropped until it fits (one
    is always kept) (notebook 14). The small offline models have 128-256 positions: the rules text would
    crowd out the facts, and a model trained on these prompts has no use for it."""
    facts = _FACT_LINE.findall(prompt)
    if not facts or "Question:" not in prompt:
        raise ValueError("the prompt has no '[1] ...' fact lines or no 'Question:': build it with build_prompt.")
    question = prompt.rsplit("Question:", 1)[1].strip().removesuffix("Answer:").strip()

    def render(n: int) -> str:
        lines = "\n".join(f"[{i}] {f}" for i, f in enumerate(facts[:n], 1))
        return f"Facts:\n{lines}\nQuestion: {question}\nAnswer:"

    n = len(facts)
    while tokenizer is not None and max_tokens and n > 1 and len(tokenizer.encode(render(n))) > max_tokens:
        n -= 1
    return render(n)


def _positions(model: Any) -> int:
    return int(getattr(model.config, "n_positions", 1024))


def rag_lm_generate(model: Any, tokenizer: Any, max_new_tokens: int = 48) -> Callable[[str], str]:
    """``generate(prompt) -> str`` for :class:`Guardrails`: the model answers :func:`compact_rag_prompt` of the
    prompt, cut to the facts that fit its positions, greedily, up to a newline (notebook 14)."""
    generate = lm_generate(model, tokenizer, max_new_tokens)
    budget = _positions(model) - max_new_tokens
    return lambda prompt: generate(compact_rag_prompt(prompt, tokenizer, budget)).strip()


def closed_book_generate(model: Any, tokenizer: Any, max_new_tokens: int = 48) -> Callable[[str], str]:
    """``question -> answer`` with notebook 05's own prompt (:data:`QA_TEMPLATE`), no facts (notebook 14)."""
    generate = lm_generate(model, tokenizer, max_new_tokens)
    return lambda question: generate(QA_TEMPLATE.format(question=question)).strip()


# ----------------------------------------------------------------------------------------------- RAG fine-tune
@dataclass(frozen=True)
class RagRecipe:
    """Continue training notebook 05's assistant on RAG prompts of TRAINING pairs (notebook 14).

    A plain fine-tune of all weights, not LoRA: the offline models have 0.2-1.4M parameters, so an adapter saves
    no memory or time worth having on a CPU, and the model must learn a new skill (copy the fact the question
    asks about), not a small change of style.
    """

    assistant: str = "full"  # ASSISTANT_RECIPES name of the model to start from
    k: int = 3  # facts retrieved per prompt (the gold one put in last place when retrieval misses it)
    steps: int = 300
    batch_size: int = 16
    lr: float | None = None  # None: 5e-5 for a hub model, 1e-3 for an offline one (05's rates, halved for hub)
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    max_new_tokens: int = 48  # generation; also reserved out of the model's positions in every prompt
    counterfactual: float = 0.0  # extra examples, as a share of the real ones, with made-up names and numbers
    # (counterfactual()): measured no real gain on the quick model, see RAG_RECIPES
    seed: int = 0

    def learning_rate(self) -> float:
        hub = ASSISTANT_RECIPES[self.assistant].base != "offline"
        return self.lr if self.lr is not None else (5e-5 if hub else 1e-3)


# Measured on a busy 2-core CPU, one torch thread: smoke 60 steps 10 s, held-out target loss 6.13 -> 5.47 (too
# small a model to generate). quick, from the quick assistant (EN test: 116 seen-fact / 35 unseen-fact pairs):
# lr 1e-3 x 150 steps (116 s): loss 3.38 -> 2.11, no fluent answers; lr 3e-3 x 110 steps (88 s, kept): 3.38 -> 0.82,
# raw accuracy 0.64 seen / 0.03 unseen: it recalls its training facts instead of reading the prompt. Adding as
# many counterfactual examples (made-up names and numbers): 0.06 unseen at 110 steps and still 0.06 at 300 steps.
RAG_RECIPES = {
    "smoke": RagRecipe(assistant="smoke", k=3, steps=60, max_new_tokens=32),
    "quick": RagRecipe(assistant="quick", k=3, steps=110, lr=3e-3),  # ~90 s
    "full": RagRecipe(assistant="full", k=3, steps=300),
}


def _recipe(recipe: RagRecipe | str) -> RagRecipe:
    recipe = storage.named_recipe(recipe, RAG_RECIPES, RagRecipe, "RAG fine-tune", "RAG_RECIPES")
    if recipe.assistant not in ASSISTANT_RECIPES:
        raise ValueError(f"RagRecipe.assistant {recipe.assistant!r} is not one of {', '.join(ASSISTANT_RECIPES)}.")
    if recipe.k < 1 or recipe.steps < 0 or recipe.batch_size < 1:
        raise ValueError(f"need k >= 1, steps >= 0 (0: no training), batch_size >= 1; got k={recipe.k}, "
                         f"steps={recipe.steps}, batch_size={recipe.batch_size}.")
    return recipe


_ENTITIES = sorted({n for n, *_ in PRODUCTS.values()} | {t[0] for t in TEAS.values()} | set(PROMOS) | set(CITIES),
                   key=len, reverse=True)
_ENTITY = re.compile("|".join(re.escape(e) for e in _ENTITIES) + r"|(?<!\[)\d+(?!\])", re.IGNORECASE)
_SYLLABLES = ("ka", "lo", "mi", "ren", "ta", "vo", "zu", "pel", "dor", "sa", "ni", "bex", "ru", "fen", "ko", "li")


def counterfactual(example: Mapping[str, str], rng: np.random.Generator) -> dict[str, str]:
    """The example with every product, tea, city and promo-code name and every number replaced, consistently in
    prompt and target, by a made-up one (notebook 14). The answer can then only be copied from the shown facts,
    not recalled: the remedy for a model that memorises its training facts instead of reading them."""
    mapping: dict[str, str] = {}

    def swap(match: re.Match[str]) -> str:
        key = match.group(0).lower()
        if key not in mapping:
            if key.isdigit():
                mapping[key] = str(rng.integers(10 ** (len(key) - 1) if len(key) > 1 else 1, 10 ** len(key)))
            else:
                word = "".join(rng.choice(_SYLLABLES, size=int(rng.integers(2, 4))))
                mapping[key] = word.upper() if match.group(0).isupper() else word.capitalize()
        return mapping[key]

    return {"prompt": _ENTITY.sub(swap, example["prompt"]), "answer": _ENTITY.sub(swap, example["answer"])}


def rag_examples(pairs: Sequence[Mapping[str, str]], retriever: Retriever, tokenizer: Any, max_tokens: int,
                 k: int = 3) -> list[dict[str, str]]:
    """``{"prompt", "answer"}`` per English pair: the compact RAG prompt of its top-``k`` facts (the gold fact
    replacing the last one when retrieval missed it) and, as target, the gold fact's text; a pair whose prompt
    cannot fit ``max_tokens`` even with one fact is left out (notebook 14)."""
    if not pairs:
        raise ValueError("rag_examples got no pairs: pass the training Q&A pairs.")
    out = []
    for pair in pairs:
        gold = fact_by_id(gold_fact_id(pair, retriever), retriever.facts)
        hits = retriever.search(pair["question"], k=k, language="en")
        if gold.id not in {f.id for f, _ in hits}:
            hits = hits[:-1] + [(gold, 0.0)]
        prompt = build_prompt(pair["question"], hits, "en")
        kept = compact_rag_prompt(prompt, tokenizer, max_tokens)
        if gold.en not in kept:  # the gold fact fell off the end: put it first so the target is answerable
            kept = compact_rag_prompt(build_prompt(pair["question"], [(gold, 0.0)] + [h for h in hits
                                      if h[0].id != gold.id], "en"), tokenizer, max_tokens)
        if len(tokenizer.encode(kept)) <= max_tokens:  # else even one fact does not fit: the pair is left out
            out.append({"prompt": kept, "answer": gold.en})
    if not out:
        raise ValueError(f"no pair's prompt fits in {max_tokens} tokens: the model's context is too short.")
    return out


def _encode(tokenizer: Any, examples: Sequence[Mapping[str, str]], max_length: int) -> list[dict[str, list[int]]]:
    return encode_qa(tokenizer, examples, template="{prompt}", max_length=max_length)  # prompt masked (-100)


def rag_target_loss(model: Any, tokenizer: Any, examples: Sequence[Mapping[str, str]], batch_size: int = 16) -> float:
    """Mean cross-entropy (nats per token) of the target fact tokens given the RAG prompts (notebook 14)."""
    encoded = _encode(tokenizer, examples, _positions(model))
    collate = CausalLMCollator(tokenizer.pad_token_id)
    batches = [collate(encoded[i:i + batch_size]) for i in range(0, len(encoded), batch_size)]
    return float(perplexity(model, batches)["loss"])


def rag_fine_tune(recipe: RagRecipe | str = "quick", model: Any = None, tokenizer: Any = None, *,
                  retriever: Retriever | None = None, device: str | None = None,
                  progress: bool = False) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, summary): notebook 05's assistant of ``recipe.assistant`` (or the given model) trained
    further on RAG prompts of its TRAINING pairs, through :class:`aigc_lib.train.Trainer` (notebook 14).

    The summary holds the held-out target loss (validation pairs' RAG prompts) before and after, the steps and
    the seconds. ``steps=0`` trains nothing (the untrained baseline). Not cached: quick takes about a minute.
    """
    recipe = _recipe(recipe)
    if (model is None) != (tokenizer is None):
        raise ValueError("pass both model and tokenizer, or neither (then the recipe's assistant is loaded).")
    if model is None:
        model, tokenizer = load_shop_assistant(recipe.assistant, device=device, progress=progress)
    retriever = retriever or Retriever()
    train_pairs, val_pairs, _ = assistant_split(recipe.assistant)
    budget = _positions(model) - recipe.max_new_tokens
    train_ex = rag_examples(train_pairs, retriever, tokenizer, budget, recipe.k)
    if recipe.counterfactual > 0:
        rng = np.random.default_rng(recipe.seed)
        picks = rng.choice(len(train_ex), size=round(recipe.counterfactual * len(train_ex)))
        extra = [counterfactual(train_ex[i], rng) for i in picks]
        train_ex += [e for e in extra if len(tokenizer.encode(e["prompt"])) <= budget]
    val_ex = rag_examples(val_pairs, retriever, tokenizer, budget, recipe.k)
    start = time.perf_counter()
    before = rag_target_loss(model, tokenizer, val_ex)
    history: dict[str, Any] = {}
    if recipe.steps > 0:
        torch.manual_seed(recipe.seed)
        optimizer = lm_optimizer(model, lr=recipe.learning_rate(), weight_decay=recipe.weight_decay)
        scheduler = warmup_cosine(optimizer, int(recipe.steps * recipe.warmup_fraction), recipe.steps)
        loader = data.DatasetLoader(_encode(tokenizer, train_ex, _positions(model)), batch_size=recipe.batch_size,
                                    collate_fn=CausalLMCollator(tokenizer.pad_token_id), seed=recipe.seed)
        collate = CausalLMCollator(tokenizer.pad_token_id)
        val_enc = _encode(tokenizer, val_ex, _positions(model))
        val_batches = [collate(val_enc[i:i + 16]) for i in range(0, len(val_enc), 16)]
        config = train.TrainConfig(max_steps=recipe.steps, max_grad_norm=1.0, precision="fp32",
                                   device=str(next(model.parameters()).device), progress=progress,
                                   log_every=max(1, recipe.steps // 10), scale_steps=True)
        history = train.Trainer(model, optimizer, LMStep(), loader, config, schedulers={"model": scheduler},
                                eval_fn=lm_eval_fn(val_batches)).fit()
    model.eval()
    after = rag_target_loss(model, tokenizer, val_ex)
    summary = {"recipe": asdict(recipe), "val_target_loss_before": before, "val_target_loss": after,
               "train_examples": len(train_ex), "history": history, "seconds": time.perf_counter() - start}
    print(f"[aigc.apps] RAG fine-tune of the {recipe.assistant!r} assistant: {recipe.steps} steps, "
          f"{summary['seconds']:.0f} s, held-out target loss {before:.3f} -> {after:.3f}")
    return model, tokenizer, summary
