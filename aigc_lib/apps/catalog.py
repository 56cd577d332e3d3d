"""The Willow & Kiln shop as recommendation data, written for this course (notebook 14).

A catalogue of tea, ceramics, kitchenware and gifts, each item described by attributes (category, kind, colour,
material, price band, two style tags) and a short text in English and Chinese generated from them. Users have
HIDDEN tastes, a weight per attribute value, plus a bias towards popular items; each user's interactions are drawn
from ``softmax(taste . attributes + popularity_bias * popularity)`` without replacement. Some items are NEW (cold
start): they launch after the training log ends, so only the held-out ``cold`` events touch them, and a model
can know them by their text alone. :func:`interaction_split` holds out each user's last event (test) and the one
before it (validation) by time: leave-last-one-out.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ATTRIBUTES", "Item", "Shop", "ShopConfig", "Split", "interaction_split", "make_catalog", "make_shop",
           "taste_names"]

# Every attribute value with its Chinese name: the vocabularies the item texts and the blurbs are written from.
CATEGORIES = {"tea": "茶叶", "ceramics": "陶瓷", "kitchenware": "厨房用品", "gifts": "礼品"}
KINDS = {  # category -> kind -> Chinese
    "tea": {"green tea": "绿茶", "oolong tea": "乌龙茶", "black tea": "红茶", "white tea": "白茶",
            "jasmine tea": "茉莉花茶", "herbal infusion": "花草茶"},
    "ceramics": {"mug": "马克杯", "teacup set": "茶杯套装", "teapot": "茶壶", "matcha bowl": "抹茶碗",
                 "vase": "花瓶", "plate": "餐盘"},
    "kitchenware": {"kettle": "水壶", "tea tray": "茶盘", "canister": "储物罐", "strainer": "滤网",
                    "cutting board": "砧板"},
    "gifts": {"gift box": "礼盒", "scented candle": "香薰蜡烛", "notebook": "笔记本", "tea towel": "茶巾",
              "incense set": "香具套装"},
}
MATERIALS = {  # category -> material (for tea: its packaging) -> Chinese
    "tea": {"tin": "铁罐装", "paper pouch": "纸袋装", "ceramic jar": "瓷罐装"},
    "ceramics": {"porcelain": "瓷", "stoneware": "炻器", "clay": "陶土"},
    "kitchenware": {"bamboo": "竹", "glass": "玻璃", "cast iron": "铸铁", "walnut wood": "胡桃木",
                    "stainless steel": "不锈钢"},
    "gifts": {"linen": "亚麻", "paper": "纸质", "soy wax": "大豆蜡", "cotton": "棉质", "clay": "陶土"},
}
KIND_MATERIALS = {  # kinds made of only some of their category's materials (no glass cutting boards)
    "kettle": ("glass", "cast iron", "stainless steel"), "tea tray": ("bamboo", "walnut wood", "cast iron"),
    "canister": ("bamboo", "glass", "stainless steel"), "strainer": ("bamboo", "stainless steel"),
    "cutting board": ("bamboo", "walnut wood"), "gift box": ("paper", "linen"), "scented candle": ("soy wax",),
    "notebook": ("paper", "linen"), "tea towel": ("linen", "cotton"), "incense set": ("clay", "bamboo"),
}
COLOURS = {"celadon": "青瓷绿", "ivory": "象牙白", "charcoal": "炭黑", "rust red": "铁锈红", "indigo": "靛蓝",
           "natural": "原色"}
PRICE_BANDS = {"budget": ("平价", 8, 25), "mid": ("中档", 25, 60), "premium": ("高端", 60, 150)}  # Chinese, $ range
STYLES = {"minimalist": "极简", "rustic": "质朴", "classic": "经典", "modern": "现代", "handmade": "手工",
          "floral": "花卉", "zen": "禅意", "playful": "俏皮"}
ATTRIBUTES = ("category", "colour", "material", "price_band", "style")  # the groups a taste weighs
ZH = {**CATEGORIES, **{k: v for kinds in KINDS.values() for k, v in kinds.items()},
      **{k: v for m in MATERIALS.values() for k, v in m.items()}, **COLOURS,
      **{k: v[0] for k, v in PRICE_BANDS.items()}, **STYLES}

EN_TEMPLATES = (
    "{Name}: a {style1}, {style2} piece from our {category} range, {band} at ${price}.",
    "Our {name} is {style1} and {style2}; part of the {category} collection, {band} at ${price}.",
    "{Name} ({category}), {style1} and {style2} in feel. {Band} price: ${price}.",
)
ZH_TEMPLATES = (
    "{name}：{style1}、{style2}风格，属于{category}系列，{band}价位，售价{price}美元。",
    "这款{name}兼具{style1}与{style2}之美，{category}系列，{band}，{price}美元。",
    "{category}系列的{name}，风格{style1}、{style2}，{band}价位（{price}美元）。",
)


@dataclass(frozen=True)
class Item:
    """One product of the shop: its attributes and the texts generated from them (notebook 14)."""

    id: int
    category: str
    kind: str
    colour: str
    material: str
    price_band: str
    price: int
    styles: tuple[str, str]
    new: bool  # launched after the training log: a cold-start item
    text_en: str
    text_zh: str

    @property
    def name(self) -> str:
        return f"{self.colour} {self.material} {self.kind}"

    @property
    def name_zh(self) -> str:
        return f"{ZH[self.colour]}{ZH[self.material]}{ZH[self.kind]}"

    def attribute_values(self) -> tuple[str, ...]:
        """The attribute values a taste can weigh: category, colour, material, price band and both styles."""
        return (self.category, self.colour, self.material, self.price_band, *self.styles)

    def text(self, lang: str = "en") -> str:
        if lang not in ("en", "zh"):
            raise ValueError(f"lang must be 'en' or 'zh', got {lang!r}.")
        return self.text_en if lang == "en" else self.text_zh


@dataclass(frozen=True)
class ShopConfig:
    """Sizes and seeds of the generated shop: catalogue, users, tastes and the interaction log (notebook 14)."""

    n_items: int = 240  # the whole catalogue, new items included
    n_new: int = 40  # items launched after the training log (cold start)
    n_users: int = 500
    min_events: int = 8  # warm (pre-launch) events per user, drawn uniformly in [min_events, max_events]
    max_events: int = 24
    max_cold_events: int = 3  # events with new items per user, in [0, max_cold_events]
    taste_strength: float = 1.5  # scale of the hidden taste weights (0: tastes play no part)
    popularity_bias: float = 1.0  # weight of an item's latent popularity in every user's choice
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.n_new < self.n_items or self.n_users < 1:
            raise ValueError(f"need 0 < n_new < n_items and n_users >= 1, got n_new={self.n_new}, "
                             f"n_items={self.n_items}, n_users={self.n_users}.")
        if not 3 <= self.min_events <= self.max_events <= self.n_items - self.n_new:
            raise ValueError(f"need 3 <= min_events <= max_events <= warm items ({self.n_items - self.n_new}): "
                             "each user keeps >= 1 training event besides the validation and test ones; got "
                             f"min_events={self.min_events}, max_events={self.max_events}.")
        if not 0 <= self.max_cold_events <= self.n_new:
            raise ValueError(f"max_cold_events must lie in [0, n_new={self.n_new}], got {self.max_cold_events}.")


@dataclass(frozen=True)
class Shop:
    """Catalogue, hidden user tastes and the time-stamped log ``(user, item, time)`` (notebook 14)."""

    config: ShopConfig
    items: tuple[Item, ...]
    tastes: np.ndarray  # (n_users, n_values): the hidden weight of each user for each taste_names() value
    popularity: np.ndarray  # (n_items,): the hidden popularity of each item
    log: np.ndarray  # (n_events, 3) int: user, item, time (days since the shop opened), sorted by time

    @property
    def new_items(self) -> np.ndarray:
        return np.array([item.id for item in self.items if item.new])

    def utility(self) -> np.ndarray:
        """(n_users, n_items) the hidden choice weights the log was drawn from: a ranking's ceiling, not data."""
        return self.tastes @ self.attribute_matrix().T + self.config.popularity_bias * self.popularity

    def attribute_matrix(self) -> np.ndarray:
        """(n_items, n_values) 0/1: which taste_names() values each item has."""
        index = {name: j for j, name in enumerate(taste_names())}
        features = np.zeros((len(self.items), len(index)))
        for item in self.items:
            features[item.id, [index[v] for v in item.attribute_values()]] = 1.0
        return features


@dataclass(frozen=True)
class Split:
    """Leave-last-one-out by time: (user, item) pairs for training, one validation and one test item per user,
    and the held-out events with new items (``cold``) (notebook 14)."""

    train: np.ndarray  # (n, 2) user, item
    valid: np.ndarray  # (n_users, 2): each user's second-to-last warm event
    test: np.ndarray  # (n_users, 2): each user's last warm event
    cold: np.ndarray  # (m, 2): every event with a new item (never in train, valid or test)


def taste_names() -> list[str]:
    """Every attribute value a taste weighs, in the column order of ``Shop.tastes`` (notebook 14)."""
    materials = [m for group in MATERIALS.values() for m in group]
    return [*CATEGORIES, *COLOURS, *dict.fromkeys(materials), *PRICE_BANDS, *STYLES]


def make_catalog(n_items: int = 240, n_new: int = 40, seed: int = 0) -> tuple[Item, ...]:
    """``n_items`` products with attributes and EN/ZH texts; the last ``n_new`` ids are new (notebook 14)."""
    rng = np.random.default_rng(seed)
    items, seen = [], set()
    while len(items) < n_items:
        category = str(rng.choice(list(CATEGORIES)))
        kind = str(rng.choice(list(KINDS[category])))
        material = str(rng.choice(KIND_MATERIALS.get(kind, list(MATERIALS[category]))))
        colour, band = str(rng.choice(list(COLOURS))), str(rng.choice(list(PRICE_BANDS)))
        styles = tuple(str(s) for s in rng.choice(list(STYLES), size=2, replace=False))
        if (kind, material, colour, band, frozenset(styles)) in seen:
            continue  # every item differs from every other in at least one attribute
        seen.add((kind, material, colour, band, frozenset(styles)))
        low, high = PRICE_BANDS[band][1:]
        price = int(rng.integers(low, high))
        t_en, t_zh = rng.integers(len(EN_TEMPLATES)), rng.integers(len(ZH_TEMPLATES))
        name = f"{colour} {material} {kind}"
        text_en = EN_TEMPLATES[t_en].format(Name=name.capitalize(), name=name, style1=styles[0], style2=styles[1],
                                            category=category, band=band.replace("mid", "mid-priced"),
                                            Band=band.capitalize(), price=price)
        text_zh = ZH_TEMPLATES[t_zh].format(name=ZH[colour] + ZH[material] + ZH[kind], style1=ZH[styles[0]],
                                            style2=ZH[styles[1]], category=ZH[category], band=ZH[band],
                                            price=price)
        items.append(Item(len(items), category, kind, colour, material, band, price, styles,  # type: ignore[arg-type]
                          len(items) >= n_items - n_new, text_en, text_zh))
    return tuple(items)


def make_shop(config: ShopConfig | None = None) -> Shop:
    """The catalogue, users with hidden tastes and their interaction log, all from ``config.seed`` (notebook 14).

    Each user's choice weights are ``taste_u . attributes_i + popularity_bias * popularity_i``: events are the
    top-n of those plus Gumbel noise (sampling without replacement from their softmax). Warm events fall in days
    [0, 300), events with new items in [300, 330), after every warm one.
    """
    cfg = config or ShopConfig()
    rng = np.random.default_rng(cfg.seed)
    items = make_catalog(cfg.n_items, cfg.n_new, cfg.seed)
    shop = Shop(cfg, items, np.zeros(0), np.zeros(0), np.zeros((0, 3), dtype=np.int64))
    features = shop.attribute_matrix()  # (I, V)
    tastes = cfg.taste_strength * rng.standard_normal((cfg.n_users, features.shape[1]))  # (U, V) hidden
    popularity = rng.standard_normal(cfg.n_items)  # (I,) hidden
    utility = Shop(cfg, items, tastes, popularity, shop.log).utility()  # (U, I)
    is_new = np.array([item.new for item in items])
    warm_ids, new_ids = np.flatnonzero(~is_new), np.flatnonzero(is_new)
    events = []
    for user in range(cfg.n_users):
        for ids, n, (start, end) in ((warm_ids, rng.integers(cfg.min_events, cfg.max_events + 1), (0, 300)),
                                     (new_ids, rng.integers(0, cfg.max_cold_events + 1), (300, 330))):
            perturbed = utility[user, ids] + rng.gumbel(size=len(ids))  # Gumbel top-n: sampling w/o replacement
            chosen = ids[np.argsort(-perturbed)[:n]]
            times = rng.choice(np.arange(start, end), size=n, replace=False)  # one event a day at most
            events += [(user, int(i), int(t)) for i, t in zip(chosen, times)]
    log = np.array(events, dtype=np.int64).reshape(-1, 3)
    log = log[np.lexsort((log[:, 0], log[:, 2]))]  # by time, then user
    return Shop(cfg, items, tastes, popularity, log)


def interaction_split(log: np.ndarray, new_items: Sequence[int] | np.ndarray) -> Split:
    """Leave-last-one-out per user by time: last warm event -> test, the one before -> valid, the rest -> train;
    events with ``new_items`` -> cold (notebook 14). Needs >= 3 warm events per user."""
    log = np.asarray(log)
    cold_mask = np.isin(log[:, 1], np.asarray(new_items))
    warm = log[~cold_mask]
    warm = warm[np.lexsort((warm[:, 2], warm[:, 0]))]  # by user, then time
    users, starts, counts = np.unique(warm[:, 0], return_index=True, return_counts=True)
    if counts.size and counts.min() < 3:
        raise ValueError(f"user {users[counts.argmin()]} has {counts.min()} warm events: leave-last-one-out needs "
                         "3 (train, validation, test); drop such users or raise ShopConfig.min_events.")
    last = starts + counts - 1
    train_mask = np.ones(len(warm), bool)
    train_mask[last], train_mask[last - 1] = False, False
    cold = log[cold_mask]
    cold = cold[np.argsort(cold[:, 2], kind="stable")]  # by time: a user's last cold event is the newest
    return Split(train=warm[train_mask, :2], valid=warm[last - 1, :2], test=warm[last, :2], cold=cold[:, :2])
