"""Chapter 14's web app: the four applications behind one Gradio page, in English or Chinese (notebook 14).

Each tab calls a plain module-level handler (:func:`answer`, :func:`sentiment`, :func:`recommend`,
:func:`slogan`), so the notebook and the tests call the same code the page does; each is also an API endpoint
(``/answer``, ``/sentiment``, ``/recommend``, ``/slogan``) for ``gradio_client``. The models are tiny, trained on
the course's generated data the first time a tab needs them and cached (:func:`functools.lru_cache`), so the
page starts in seconds. Bad input (empty, too long, the other language, an unknown user) gets a message, never a
traceback. Run it with ``python -m aigc_lib.apps.app`` or ``make app`` (offline, the course's models);
``--online`` (:func:`use_real_models`) swaps in real hub models where they can be had and prints which ran.
"""
from __future__ import annotations

import argparse
import functools
import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from aigc_lib.apps.adcopy import LENGTHS, TONES, template_slogan
from aigc_lib.apps.catalog import Item, Shop, ShopConfig, Split, interaction_split, make_shop
from aigc_lib.apps.finance import LABELS, headline_split
from aigc_lib.apps.guardrails import Guardrails
from aigc_lib.apps.knowledge import fact_by_id
from aigc_lib.apps.lm_tasks import lm_generate
from aigc_lib.apps.poster import compose_poster
from aigc_lib.apps.recommend import (
    RECSYS_RECIPES,
    Recommender,
    fit_recommender,
    product_blurb,
    tastes_from_history,
)
from aigc_lib.apps.retrieval import language_of
from aigc_lib.apps.sentiment import SentimentClassifier, SentimentConfig, train_sentiment_classifier
from aigc_lib.hub import ModelNotAvailableError, find_source
from aigc_lib.lm import load_causal_lm

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no usage report to Gradio's servers: set before import
import gradio as gr

__all__ = ["APP_RECIPES", "LANGUAGES", "MAX_HEADLINE_CHARS", "MAX_K", "REAL_MODELS", "UI_TEXT", "AppRecipe", "answer",
           "build_app", "main", "recommend", "sentiment", "set_language", "slogan", "use_real_models"]

LANGUAGES = {"English": "en", "中文": "zh"}  # the switch's choices -> language code
MAX_HEADLINE_CHARS = 300  # a headline is a line, not an article
MAX_K = 20  # recommendations shown at most
# `--online`: real models from the Hugging Face hub where they can be had (the course's own models otherwise): the
# assistant's generator behind the same guardrails, and FinBERT for English headlines (Chinese stays on the course's
# classifier: FinBERT reads English only)
REAL_MODELS = {"assistant": "Qwen/Qwen2.5-0.5B-Instruct", "sentiment": "ProsusAI/finbert"}
_REAL: dict[str, str] = {}  # the hub ids use_real_models() found available, by role


@dataclass(frozen=True)
class AppRecipe:
    """How big the app's models are: the sentiment classifier's data and steps, the shop and the recommender (14)."""

    n_headlines: int = 2000
    sentiment: SentimentConfig = field(default_factory=SentimentConfig)
    shop: ShopConfig = field(default_factory=ShopConfig)
    recsys: str = "quick"  # a RECSYS_RECIPES name; its text language follows the app's language


# smoke: both models in about 4 s on a busy 2-core CPU (one torch thread); quick/full: the chapter's sizes.
APP_RECIPES = {
    "smoke": AppRecipe(n_headlines=800, sentiment=SentimentConfig(steps=200), shop=ShopConfig(n_users=200),
                       recsys="smoke"),
    "quick": AppRecipe(),
    "full": AppRecipe(n_headlines=4000, sentiment=SentimentConfig(steps=800), recsys="full"),
}

UI_TEXT: dict[str, dict[str, str]] = {  # component / message -> text, per language
    "en": {
        "title": "## Willow & Kiln: four AIGC applications",
        "language": "Language", "question": "Customer question", "reply": "Assistant's reply",
        "rule": "Rule that decided", "fact": "Retrieved fact", "headline": "Financial news headline",
        "label": "Sentiment", "probs": "Probabilities", "user": "User id", "k": "How many items",
        "rec_note": "Note", "table": "Recommendations", "item": "Product", "tone": "Tone", "length": "Length",
        "slogan": "Slogan (template baseline)", "poster": "Poster", "poster_note": "Note",
        "go": "Run",
        "empty": "Please type something first.",
        "too_long": "That text is {n} characters long; please keep it under {max}.",
        "other_language": "This text looks like {found}; the app is set to {expected}. Switch the language "
                          "at the top, or write in {expected}.",
        "bad_language": "Unknown language {value!r}: choose one of {choices}.",
        "bad_user": "Unknown user id {value!r}: pick a whole number from 0 to {last}.",
        "bad_k": "k must be a whole number from 1 to {max}, got {value!r}.",
        "bad_item": "Unknown product {value!r}: pick one from the list (ids 0 to {last}).",
        "bad_choice": "Unknown {what} {value!r}: choose one of {choices}.",
        "no_fact": "(none: the rule fired before retrieval)",
        "rec_ok": "Top {k} for user {user}, scored by the {model} model; blurbs are templates, not model text.",
        "poster_ok": "Slogan from a template (no language model); the picture is a plain gradient (no diffusion "
                     "model in this app) and carries the visible AI label.",
        "poster_error": "No poster: {error}",
        "columns": "item|name|score|new|blurb",
        "en": "English", "zh": "Chinese",
    },
    "zh": {
        "title": "## Willow & Kiln：四个AIGC应用",
        "language": "语言", "question": "顾客问题", "reply": "客服回复", "rule": "起作用的规则",
        "fact": "检索到的事实", "headline": "财经新闻标题", "label": "情感", "probs": "概率", "user": "用户编号",
        "k": "推荐数量", "rec_note": "说明", "table": "推荐结果", "item": "商品", "tone": "语气", "length": "长度",
        "slogan": "广告语（模板基线）", "poster": "海报", "poster_note": "说明",
        "go": "运行",
        "empty": "请先输入内容。",
        "too_long": "这段文字有{n}个字符，请控制在{max}以内。",
        "other_language": "这段文字看起来是{found}，而应用当前设置为{expected}。请在顶部切换语言，或用{expected}输入。",
        "bad_language": "未知语言 {value!r}：请选择 {choices} 之一。",
        "bad_user": "未知用户编号 {value!r}：请填写0到{last}之间的整数。",
        "bad_k": "推荐数量须为1到{max}之间的整数，收到 {value!r}。",
        "bad_item": "未知商品 {value!r}：请从列表中选择（编号0到{last}）。",
        "bad_choice": "未知的{what} {value!r}：请选择 {choices} 之一。",
        "no_fact": "（无：规则在检索前已生效）",
        "rec_ok": "为用户{user}推荐的前{k}件商品，由{model}模型打分；推荐语来自模板，不是模型生成。",
        "poster_ok": "广告语来自模板（没有语言模型）；图片是简单渐变（本应用不含扩散模型），并带有可见的AI标识。",
        "poster_error": "无法生成海报：{error}",
        "columns": "编号|名称|得分|新品|推荐语",
        "en": "英文", "zh": "中文",
    },
}
_COMPONENT_KEYS = ("language", "question", "reply", "rule", "fact", "headline", "label", "probs", "user", "k",
                   "rec_note", "table", "item", "tone", "length", "slogan", "poster", "poster_note")
_BUTTON_KEYS = ("answer_go", "sentiment_go", "recommend_go", "slogan_go")  # each tab's "Run" / "运行" button


class _BadInput(ValueError):
    """A message for the person at the page, already in their language."""


def _code(language: str) -> str:
    """"en"/"zh" from a code or the switch's label ("English", "中文")."""
    code = LANGUAGES.get(language, language)
    if code not in ("en", "zh"):
        raise _BadInput(UI_TEXT["en"]["bad_language"].format(value=language, choices=", ".join(LANGUAGES)))
    return code


def _ui_lang(language: str) -> str:
    """The language for messages: the requested one when known, else English."""
    try:
        return _code(language)
    except _BadInput:
        return "en"


def _text(text: Any, lang: str, max_chars: int | None) -> str:
    """The stripped text, or _BadInput when it is empty, too long or in the other language."""
    msg = UI_TEXT[lang]
    if not isinstance(text, str) or not text.strip():
        raise _BadInput(msg["empty"])
    text = text.strip()
    if max_chars is not None and len(text) > max_chars:
        raise _BadInput(msg["too_long"].format(n=len(text), max=max_chars))
    if language_of(text) != lang:
        raise _BadInput(msg["other_language"].format(found=msg[language_of(text)], expected=msg[lang]))
    return text


def _whole(value: Any) -> int | None:
    """An int from 3, 3.0 or "3"; None for anything else."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if np.isfinite(number) and number == int(number) else None


# ----------------------------------------------------------------------------------------------- models (cached)
def _recipe(recipe: str) -> AppRecipe:
    if recipe not in APP_RECIPES:
        raise ValueError(f"recipe must be one of {tuple(APP_RECIPES)}, got {recipe!r}.")
    return APP_RECIPES[recipe]


def use_real_models(assistant: str | None = REAL_MODELS["assistant"],
                    sentiment: str | None = REAL_MODELS["sentiment"]) -> dict[str, str]:
    """Use real hub models where they can be had, the course's own models for the rest; returns which ran (14).

    Online, the assistant's generator becomes ``assistant`` (behind the same guardrails) and English headlines go to
    ``sentiment`` (FinBERT's labels are the course's three); offline (or None) nothing changes. Prints which ran."""
    ran: dict[str, str] = {}
    for role, hub_id in (("assistant", assistant), ("sentiment", sentiment)):
        _REAL.pop(role, None)
        try:
            if hub_id is None:
                raise ModelNotAvailableError("none asked for")
            find_source(hub_id)
            _REAL[role], ran[role] = hub_id, f"{hub_id} (hub)"
        except ModelNotAvailableError as error:
            ran[role] = f"course model (offline path: {str(error).splitlines()[0][:120]})"
    _guardrails.cache_clear()
    _sentiment_model.cache_clear()
    print(f"[aigc.apps] app models: {ran}", flush=True)
    return ran


@functools.cache
def _guardrails() -> Guardrails:
    if "assistant" not in _REAL:
        return Guardrails()  # extractive generation from BM25-retrieved facts, both languages
    model, tokenizer = load_causal_lm(_REAL["assistant"])
    return Guardrails(lm_generate(model.eval(), tokenizer, max_new_tokens=80))


class _HubSentiment:
    """A transformers text-classification pipeline with the course classifier's predict_proba (LABELS order)."""

    def __init__(self, hub_id: str):
        from transformers import pipeline

        self.pipe = pipeline("text-classification", model=hub_id, top_k=None)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        scores = [{o["label"].lower(): o["score"] for o in out} for out in self.pipe(texts)]
        return np.array([[row.get(label, 0.0) for label in LABELS] for row in scores])


@functools.cache
def _sentiment_model(lang: str, recipe: str) -> SentimentClassifier | _HubSentiment:
    if lang == "en" and "sentiment" in _REAL:
        return _HubSentiment(_REAL["sentiment"])
    r = _recipe(recipe)
    train, _ = headline_split(r.n_headlines, 1, lang)  # training templates only
    return train_sentiment_classifier(train, r.sentiment)


@functools.cache
def _shop(recipe: str) -> tuple[Shop, Split]:
    shop = make_shop(_recipe(recipe).shop)
    return shop, interaction_split(shop.log, shop.new_items)


@functools.cache
def _recommender(lang: str, recipe: str) -> Recommender:
    shop, split = _shop(recipe)
    return fit_recommender(shop, split, replace(RECSYS_RECIPES[_recipe(recipe).recsys], lang=lang))


# ----------------------------------------------------------------------------------------------- handlers
def answer(question: str, language: str = "en") -> tuple[str, str, str]:
    """Customer service: (reply, rule that decided, retrieved fact) from the guarded assistant (notebook 14)."""
    try:
        lang = _code(language)
        # Guardrails refuses an over-long question itself: let it, that refusal is one of its rules
        reply = _guardrails().reply(_text(question, lang, None))
    except _BadInput as bad:
        return str(bad), "", ""
    fact = UI_TEXT[lang]["no_fact"]
    if reply.fact_id is not None:
        fact = f"[{reply.fact_id}, BM25 {reply.score:.2f}] {fact_by_id(reply.fact_id).text(lang)}"
    return reply.text, f"{reply.action} ({reply.reason})", fact


def sentiment(headline: str, language: str = "en", recipe: str = "smoke") -> tuple[str, dict[str, float]]:
    """Financial sentiment: (label, {label: probability}) for one headline (notebook 14)."""
    try:
        lang = _code(language)
        text = _text(headline, lang, MAX_HEADLINE_CHARS)
    except _BadInput as bad:
        return str(bad), {}
    probs = _sentiment_model(lang, recipe).predict_proba([text])[0]
    return LABELS[int(probs.argmax())], {label: round(float(p), 4) for label, p in zip(LABELS, probs)}


def recommend(user_id: Any, k: Any = 5, language: str = "en", recipe: str = "smoke") -> tuple[str, pd.DataFrame]:
    """Recommendation: (note, table of item, name, score, new, template blurb) for a user (notebook 14)."""
    columns = UI_TEXT[_ui_lang(language)]["columns"].split("|")
    try:
        lang = _code(language)
        shop, split = _shop(recipe)
        user, n = _whole(user_id), len(shop.tastes)
        if user is None or not 0 <= user < n:
            raise _BadInput(UI_TEXT[lang]["bad_user"].format(value=user_id, last=n - 1))
        top = _whole(k)
        if top is None or not 1 <= top <= MAX_K:
            raise _BadInput(UI_TEXT[lang]["bad_k"].format(value=k, max=MAX_K))
    except _BadInput as bad:
        return str(bad), pd.DataFrame(columns=columns)
    model = _recommender(lang, recipe)
    tastes = tastes_from_history(shop.items, split.train[split.train[:, 0] == user, 1].tolist())
    rows = [[r["item"], r["name"], round(r["score"], 3), r["new"], product_blurb(shop.items[r["item"]], tastes, lang)]
            for r in model.recommend(user, top, lang)]
    note = UI_TEXT[lang]["rec_ok"].format(k=len(rows), user=user, model=model.info["recipe"]["model"])
    return note, pd.DataFrame(rows, columns=columns)


_PAINT = {"celadon": (172, 200, 176), "ivory": (240, 232, 212), "charcoal": (70, 70, 74), "rust red": (168, 84, 60),
          "indigo": (64, 72, 140), "natural": (196, 170, 132)}


def _canvas(item: Item, size: int = 256) -> np.ndarray:
    """A vertical gradient from the item's colour to warm paper: the stand-in for a generated picture."""
    top, bottom = np.array(_PAINT.get(item.colour, (160, 160, 160)), float), np.array((246, 241, 232), float)
    t = np.linspace(0, 1, size)[:, None, None]
    return np.broadcast_to((1 - t) * top + t * bottom, (size, size, 3)).round().astype(np.uint8)


def slogan(item_id: Any, tone: str = "calm", length: str = "short", language: str = "en",
           recipe: str = "smoke") -> tuple[str, Any, str]:
    """Ad copy: (template slogan, poster image or None, note) for a product, tone and length (notebook 14)."""
    try:
        lang = _code(language)
        msg = UI_TEXT[lang]
        items = _shop(recipe)[0].items
        index = _whole(item_id)
        if index is None or not 0 <= index < len(items):
            raise _BadInput(msg["bad_item"].format(value=item_id, last=len(items) - 1))
        for what, value, choices in ((msg["tone"], tone, TONES), (msg["length"], length, LENGTHS)):
            if value not in choices:
                raise _BadInput(msg["bad_choice"].format(what=what.lower(), value=value, choices=", ".join(choices)))
    except _BadInput as bad:
        return str(bad), None, ""
    item = items[index]
    text = template_slogan(item, tone, length, lang)
    try:
        poster = compose_poster(_canvas(item), item.name if lang == "en" else item.name_zh, text, lang,
                                size=(384, 512))
    except ValueError as error:  # e.g. Chinese text and no CJK font on this machine: say how to install one
        return text, None, msg["poster_error"].format(error=error)
    return text, poster, msg["poster_ok"]


def set_language(language: str, recipe: str = "smoke") -> list[Any]:
    """The language switch: new labels for every component, the product list, the buttons and the title in that
    language, in the order _COMPONENT_KEYS, _BUTTON_KEYS, title (14)."""
    lang = _ui_lang(language)
    updates = [gr.update(label=UI_TEXT[lang][key]) for key in _COMPONENT_KEYS]
    updates[_COMPONENT_KEYS.index("item")] = gr.update(label=UI_TEXT[lang]["item"], choices=_item_choices(lang, recipe))
    return updates + [gr.update(value=UI_TEXT[lang]["go"]) for _ in _BUTTON_KEYS] + [gr.update(value=UI_TEXT[lang]["title"])]


def _item_choices(lang: str, recipe: str) -> list[tuple[str, int]]:
    return [(f"{it.id}: {it.name if lang == 'en' else it.name_zh}", it.id) for it in _shop(recipe)[0].items]


# ----------------------------------------------------------------------------------------------- the page
def build_app(lang: str = "en", recipe: str = "smoke") -> gr.Blocks:
    """The page: a language switch and one tab per application; models train on first use (notebook 14)."""
    lang, _ = _code(lang), _recipe(recipe)
    t = UI_TEXT[lang]
    with gr.Blocks(title="Willow & Kiln (AIGC course, chapter 14)") as demo:
        title = gr.Markdown(t["title"], elem_id="title")
        language = gr.Radio(list(LANGUAGES), value={v: k for k, v in LANGUAGES.items()}[lang], label=t["language"],
                            elem_id="language")
        state = gr.State(recipe)  # hidden from the API: clients send only the visible inputs
        c: dict[str, Any] = {"language": language}
        with gr.Tab("Customer service 客服"):
            c["question"] = gr.Textbox(label=t["question"], max_lines=4)
            go = c["answer_go"] = gr.Button(t["go"], elem_id="answer-go")
            c["reply"], c["rule"], c["fact"] = (gr.Textbox(label=t[k]) for k in ("reply", "rule", "fact"))
            go.click(answer, [c["question"], language], [c["reply"], c["rule"], c["fact"]], api_name="answer")
        with gr.Tab("Sentiment 情感"):
            c["headline"] = gr.Textbox(label=t["headline"])
            go = c["sentiment_go"] = gr.Button(t["go"], elem_id="sentiment-go")
            c["label"], c["probs"] = gr.Textbox(label=t["label"]), gr.Label(label=t["probs"])
            go.click(sentiment, [c["headline"], language, state], [c["label"], c["probs"]], api_name="sentiment")
        with gr.Tab("Recommendation 推荐"):
            c["user"] = gr.Number(value=0, precision=0, label=t["user"])
            c["k"] = gr.Slider(1, MAX_K, value=5, step=1, label=t["k"])
            go = c["recommend_go"] = gr.Button(t["go"], elem_id="recommend-go")
            c["rec_note"], c["table"] = gr.Textbox(label=t["rec_note"]), gr.Dataframe(label=t["table"])
            go.click(recommend, [c["user"], c["k"], language, state], [c["rec_note"], c["table"]],
                     api_name="recommend")
        with gr.Tab("Ad copy 广告文案"):
            c["item"] = gr.Dropdown(_item_choices(lang, recipe), value=0, label=t["item"],
                                    allow_custom_value=True)  # a typed id reaches slogan(), which checks it
            c["tone"] = gr.Radio(list(TONES), value=TONES[-1], label=t["tone"])
            c["length"] = gr.Radio(list(LENGTHS), value=LENGTHS[0], label=t["length"])
            go = c["slogan_go"] = gr.Button(t["go"], elem_id="slogan-go")
            c["slogan"] = gr.Textbox(label=t["slogan"])
            c["poster"], c["poster_note"] = gr.Image(label=t["poster"], type="pil"), gr.Textbox(label=t["poster_note"])
            go.click(slogan, [c["item"], c["tone"], c["length"], language, state],
                     [c["slogan"], c["poster"], c["poster_note"]], api_name="slogan")
        language.change(set_language, [language, state], [c[key] for key in _COMPONENT_KEYS + _BUTTON_KEYS] + [title],
                        api_name="language")
    return demo


def main(argv: list[str] | None = None) -> None:
    """Serve the app on http://127.0.0.1 and print its URL (``make app``) (notebook 14).

    Never ``share=True``: a share link needs Gradio's tunnel binary, downloaded on first use, which fails offline
    and behind many firewalls, and it would publish the page to anyone with the link. On Colab, Gradio shows the
    local app inline; on a remote machine, forward the port (``ssh -L 7860:127.0.0.1:7860 host``).
    """
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--lang", choices=("en", "zh"), default="en")
    parser.add_argument("--recipe", choices=tuple(APP_RECIPES), default="smoke")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--online", action="store_true", help="use real hub models where they can be had "
                        f"({', '.join(REAL_MODELS.values())}); the course's own models otherwise")
    args = parser.parse_args(argv)
    if args.online:
        use_real_models()
    demo = build_app(args.lang, args.recipe)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=args.port, share=False, prevent_thread_lock=True,
                            quiet=True)
    print(f"Chapter 14's app is running at {url} (Ctrl-C stops it).", flush=True)
    demo.block_thread()


if __name__ == "__main__":
    main()
