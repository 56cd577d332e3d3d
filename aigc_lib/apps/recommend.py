"""Recommendation for the Willow & Kiln shop (notebook 14): BPR-trained models, ranking metrics, blurbs.

Two models score ``x_ui`` for user u and item i, both trained with the course trainer on the BPR objective
(Rendle et al. 2009): matrix factorisation ``x_ui = p_u . q_i + b_i``, and a two-tower model whose item tower
adds an embedding of the item's TEXT (hashed word n-grams of the English text or character n-grams of the Chinese
one) to its ID embedding. The ID part is dropped at random during training, so the text part alone must place an
item: a new item (cold start, no interactions) is scored from its text. Evaluation ranks each user's one
held-out item among every warm item the user has not interacted with; hit@k and NDCG@k = 1 / log2(rank + 1)
summarise the ranks, against popularity and random scores.
"""
from __future__ import annotations

import itertools
import re
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aigc_lib import data, storage, train
from aigc_lib.apps.catalog import ZH, Item, Shop, Split

__all__ = ["RECSYS_RECIPES", "TEMPLATE_LABELS", "BPRStep", "MatrixFactorization", "Recommender", "RecsysRecipe", "TwoTower",
           "fit_recommender", "hashed_text_features", "held_out_ranks", "hit_at_k", "ndcg_at_k",
           "popularity_scores", "product_blurb", "random_hit_expected", "random_scores", "seen_mask",
           "tastes_from_history"]

TEMPLATE_LABELS = {"en": "[template]", "zh": "[模板]"}  # a blurb filled from a template, not written by a model


# ----------------------------------------------------------------------------------------------- metrics
def seen_mask(pairs: np.ndarray | Tensor, n_users: int, n_items: int) -> Tensor:
    """(n_users, n_items) bool: True where ``pairs`` holds (user, item) (notebook 14)."""
    pairs = torch.as_tensor(np.asarray(pairs), dtype=torch.long).reshape(-1, 2)
    mask = torch.zeros(n_users, n_items, dtype=torch.bool)
    mask[pairs[:, 0], pairs[:, 1]] = True
    return mask


def held_out_ranks(scores: Tensor, held_out: Tensor, exclude: Tensor, seed: int = 0) -> Tensor:
    """1-based rank of each row's held-out item among the items not excluded; ties broken at random (14).

    ``scores`` (U, I), ``held_out`` (U,) item ids, ``exclude`` (U, I) bool (the user's training items, items not
    offered). rank = 1 + #(candidates scoring higher) + a uniform draw from 0..#(candidates tied with it)."""
    scores, held_out = scores.float().cpu(), torch.as_tensor(held_out).long().cpu()
    rows = torch.arange(len(held_out))
    if exclude[rows, held_out].any():
        raise ValueError("a held-out item is excluded from its own ranking: is it in the user's training items?")
    target = scores[rows, held_out].unsqueeze(1)  # (U, 1)
    candidates = ~exclude.cpu()
    candidates[rows, held_out] = False  # the held-out item competes with the others, not with itself
    higher = ((scores > target) & candidates).sum(1)  # (U,)
    tied = ((scores == target) & candidates).sum(1)  # (U,)
    generator = torch.Generator().manual_seed(seed)
    draw = (torch.rand(len(tied), generator=generator) * (tied + 1)).floor().long()  # uniform in 0..tied
    return 1 + higher + draw


def hit_at_k(ranks: Tensor, k: int = 10) -> float:
    """Share of users whose held-out item ranks in the top ``k`` (notebook 14)."""
    return (torch.as_tensor(ranks) <= k).float().mean().item()


def ndcg_at_k(ranks: Tensor, k: int = 10) -> float:
    """Mean NDCG@k with one relevant item: 1 / log2(rank + 1) when rank <= k, else 0 (notebook 14)."""
    ranks = torch.as_tensor(ranks).double()
    return torch.where(ranks <= k, 1.0 / torch.log2(ranks + 1), 0.0).mean().item()


def random_hit_expected(n_candidates: Tensor | np.ndarray, k: int = 10) -> float:
    """Expected hit@k of random scores: the mean over users of min(k, n) / n for n candidates (notebook 14)."""
    n = torch.as_tensor(n_candidates).double()
    return (torch.clamp(n, max=k) / n).mean().item()


def popularity_scores(train_pairs: np.ndarray, n_users: int, n_items: int) -> Tensor:
    """(n_users, n_items): every user scores an item by its number of training interactions (notebook 14)."""
    counts = torch.bincount(torch.as_tensor(np.asarray(train_pairs)[:, 1]), minlength=n_items).float()
    return counts.expand(n_users, n_items)


def random_scores(n_users: int, n_items: int, seed: int = 0) -> Tensor:
    """(n_users, n_items) uniform random scores, the baseline that knows nothing (notebook 14)."""
    return torch.rand(n_users, n_items, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------- text features
def hashed_text_features(texts: Sequence[str], lang: str = "en", n_buckets: int = 2048) -> Tensor:
    """(N, L) bucket ids of each text's n-grams, padded with ``n_buckets`` (notebook 14).

    English: lower-case word unigrams and bigrams; Chinese: character unigrams and bigrams of the Han characters.
    Numbers and punctuation are left out. A bucket is crc32(n-gram) mod n_buckets (stable across runs)."""
    if lang not in ("en", "zh"):
        raise ValueError(f"lang must be 'en' or 'zh', got {lang!r}.")
    rows = []
    for text in texts:
        units = re.findall(r"[a-z]+", text.lower()) if lang == "en" else re.findall(r"[\u4e00-\u9fff]", text)
        grams = units + [f"{a} {b}" for a, b in itertools.pairwise(units)]
        rows.append(sorted({zlib.crc32(f"{lang}:{g}".encode()) % n_buckets for g in grams}))
    width = max(1, *(len(r) for r in rows))
    features = torch.full((len(rows), width), n_buckets, dtype=torch.long)
    for i, row in enumerate(rows):
        features[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return features


# ----------------------------------------------------------------------------------------------- models
class MatrixFactorization(nn.Module):
    """x_ui = p_u . q_i + b_i: one learned vector per user and per item (notebook 14)."""

    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)
        nn.init.zeros_(self.item_bias.weight)

    def user_vectors(self, users: Tensor) -> Tensor:
        """(B, d) vectors of users."""
        return self.user(users)

    def item_vectors(self, items: Tensor) -> tuple[Tensor, Tensor]:
        """(B, d) vectors and (B,) biases of items."""
        return self.item(items), self.item_bias(items).squeeze(-1)

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        """x_ui for pairs: users (B,), items (B,) -> (B,)."""
        q, b = self.item_vectors(items)  # (B, d), (B,)
        return (self.user_vectors(users) * q).sum(-1) + b

    def score_all(self, users: Tensor) -> Tensor:
        """(B, I) scores of every item for users (B,)."""
        q, b = self.item_vectors(torch.arange(self.item.num_embeddings, device=users.device))
        return self.user_vectors(users) @ q.T + b


class TwoTower(MatrixFactorization):
    """x_ui = p_u . (t_i + m_i q_i) + m_i b_i: a text tower t_i plus an ID embedding kept with mask m (14).

    ``known`` (I,) marks the items seen in training; an unknown (cold) item has m_i = 0 and is placed by its text
    alone. In training, m_i is also 0 with probability ``id_dropout``, so the text tower learns to stand alone."""

    def __init__(self, n_users: int, n_items: int, dim: int, text: Tensor, n_buckets: int,
                 id_dropout: float = 0.5) -> None:
        super().__init__(n_users, n_items, dim)
        nn.init.zeros_(self.item.weight)  # an item's ID part starts at 0: the text part places it first
        self.register_buffer("text", text)  # (I, L) hashed n-gram ids, padded with n_buckets
        self.register_buffer("known", torch.ones(n_items, dtype=torch.bool))
        self.bag = nn.EmbeddingBag(n_buckets + 1, dim, mode="mean", padding_idx=n_buckets)
        self.tower = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.id_dropout = id_dropout

    def item_vectors(self, items: Tensor) -> tuple[Tensor, Tensor]:
        keep = self.known[items]  # (B,)
        if self.training and self.id_dropout > 0:
            keep = keep & (torch.rand(items.shape, device=items.device) >= self.id_dropout)
        m = keep.float().unsqueeze(-1)  # (B, 1)
        text = self.tower(self.bag(self.text[items]))  # (B, L) -> (B, d)
        return text + m * self.item(items), m.squeeze(-1) * self.item_bias(items).squeeze(-1)


@dataclass
class BPRStep:
    """One BPR step: maximise ln sigma(x_ui - x_uj) for a positive i and a sampled negative j (notebook 14)."""

    negatives: Tensor  # the item ids to draw j from (the warm items)
    l2: float = 1e-4  # lambda_Theta on the batch's vectors, as in the paper
    seed: int = 0
    generator: torch.Generator | None = field(default=None, repr=False)

    def __call__(self, trainer: Any, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        users, pos = batch  # (B,), (B,)
        if self.generator is None:
            self.generator = torch.Generator(trainer.device).manual_seed(self.seed)
            self.negatives = self.negatives.to(trainer.device)
        # j uniform over warm items; it is now and then one of u's positives, a small noise BPR tolerates
        neg = self.negatives[torch.randint(len(self.negatives), users.shape, device=trainer.device,
                                           generator=self.generator)]
        model = trainer.model
        x_ui, x_uj = model(users, pos), model(users, neg)  # (B,), (B,)
        # BPR-Opt (Rendle et al. 2009, eq. 3): sum ln sigma(x_uij) - lambda ||Theta||^2, here as a loss to minimise
        reg = model.user(users).pow(2).sum(-1) + model.item(pos).pow(2).sum(-1) + model.item(neg).pow(2).sum(-1)
        loss = -F.logsigmoid(x_ui - x_uj).mean() + self.l2 * reg.mean()
        trainer.backward(loss)
        trainer.optimizer_step()
        return {"loss": loss.detach(), "auc": (x_ui > x_uj).float().mean()}


# ----------------------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class RecsysRecipe:
    """Which model and how :func:`fit_recommender` trains it (notebook 14)."""

    model: str = "two_tower"  # "mf" (matrix factorisation) or "two_tower" (ID + item text)
    dim: int = 32
    lang: str = "en"  # the item text the two-tower model reads: "en" or "zh"
    n_buckets: int = 2048
    id_dropout: float = 0.5
    steps: int = 600
    batch_size: int = 256
    lr: float = 0.01
    l2: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in ("mf", "two_tower") or self.lang not in ("en", "zh"):
            raise ValueError(f"RecsysRecipe needs model 'mf' or 'two_tower' and lang 'en' or 'zh', got "
                             f"model={self.model!r}, lang={self.lang!r}.")
        for name in ("dim", "n_buckets", "steps", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"RecsysRecipe.{name} must be a positive integer, got {getattr(self, name)!r}.")
        if not 0 <= self.id_dropout < 1 or not self.lr >= 0:  # lr 0: a control run that learns nothing
            raise ValueError(f"need 0 <= id_dropout < 1 and lr >= 0, got {self.id_dropout}, {self.lr}.")


# Notebook 14's profiles (two-tower, English text). Measured on a busy 2-core CPU, one torch thread, default shop
# (500 users, 200 warm + 40 new items): test hit@10 / cold-start hit@10 among the new items
# smoke: 1-4 s, 0.270 / 0.610; quick: 3-7 s, 0.318 / 0.636; full: 8 s, 0.320 / 0.641. MF: 0.300 (300 steps),
# 0.280 (600), 0.292 (1200). Popularity 0.132, random 0.046 / 0.230, the hidden-taste oracle 0.792 / 0.942.
RECSYS_RECIPES = {
    "smoke": RecsysRecipe(steps=300, lr=0.02),
    "quick": RecsysRecipe(),
    "full": RecsysRecipe(steps=1200),
}


@dataclass
class Recommender:
    """A trained model with the shop and split it was trained on: scores, recommendations, evaluation (14)."""

    model: MatrixFactorization
    shop: Shop
    split: Split
    info: dict[str, Any]

    @property
    def n_users(self) -> int:
        return len(self.shop.tastes)

    @torch.no_grad()
    def scores(self, users: Sequence[int] | Tensor | None = None) -> Tensor:
        """(U, I) scores of every item for ``users`` (default: all); MF scores new items -inf (it cannot know)."""
        users = torch.arange(self.n_users) if users is None else torch.as_tensor(users).long()
        scores = self.model.eval().cpu().score_all(users)
        if not isinstance(self.model, TwoTower):
            scores[:, torch.as_tensor(self.shop.new_items)] = float("-inf")
        return scores

    def evaluate(self, which: str = "test", k: int = 10, seed: int = 0) -> dict[str, float]:
        """hit@k and NDCG@k on the validation or test item of every user, with popularity and random (14).

        Candidates: the warm items minus the user's training items (and minus the validation item for test).
        ``oracle`` ranks by the hidden tastes the log was drawn from: a ceiling no model can see."""
        if which not in ("valid", "test"):
            raise ValueError(f"which must be 'valid' or 'test', got {which!r}.")
        n_items, sp = len(self.shop.items), self.split
        exclude = seen_mask(sp.train if which == "valid" else np.concatenate([sp.train, sp.valid]),
                            self.n_users, n_items)
        exclude[:, torch.as_tensor(self.shop.new_items)] = True
        held = getattr(sp, which)
        order = np.argsort(held[:, 0])
        users, items = torch.as_tensor(held[order, 0]), torch.as_tensor(held[order, 1])
        exclude = exclude[users]
        out = {"n_candidates": (~exclude).sum(1).double().mean().item(),
               "random_expected": random_hit_expected((~exclude).sum(1), k)}
        for name, scores in (("model", self.scores(users)),
                             ("popularity", popularity_scores(sp.train, self.n_users, n_items)[users]),
                             ("random", random_scores(len(users), n_items, seed)),
                             ("oracle", torch.as_tensor(self.shop.utility())[users])):  # the hidden tastes
            ranks = held_out_ranks(scores, items, exclude, seed)
            out[f"{name}_hit@{k}"], out[f"{name}_ndcg@{k}"] = hit_at_k(ranks, k), ndcg_at_k(ranks, k)
        return out

    def evaluate_cold(self, k: int = 10, seed: int = 0) -> dict[str, float]:
        """hit@k of each user's last event with a NEW item, ranked among the new items only (notebook 14)."""
        if not isinstance(self.model, TwoTower):
            raise TypeError("only the two-tower model scores new items (from their text): train with "
                            "RecsysRecipe(model='two_tower').")
        cold = self.split.cold
        users, first = np.unique(cold[::-1, 0], return_index=True)  # split.cold is sorted by time: last = newest
        items = torch.as_tensor(cold[::-1][first, 1].copy())
        exclude = torch.ones(len(users), len(self.shop.items), dtype=torch.bool)
        exclude[:, torch.as_tensor(self.shop.new_items)] = False
        out = {"n_users": float(len(users)), "n_candidates": float(len(self.shop.new_items)),
               "random_expected": random_hit_expected((~exclude).sum(1), k)}
        for name, scores in (("model", self.scores(users)),
                             ("random", random_scores(len(users), len(self.shop.items), seed)),
                             ("oracle", torch.as_tensor(self.shop.utility())[users])):  # the hidden tastes
            ranks = held_out_ranks(scores, items, exclude, seed)
            out[f"{name}_hit@{k}"], out[f"{name}_ndcg@{k}"] = hit_at_k(ranks, k), ndcg_at_k(ranks, k)
        return out

    def recommend(self, user: int, k: int = 10, lang: str = "en") -> list[dict[str, Any]]:
        """The ``k`` best-scored items the user has not interacted with in training, with scores (notebook 14)."""
        if not 0 <= user < self.n_users or k < 1:
            raise ValueError(f"need a user in [0, {self.n_users}) and k >= 1, got user={user}, k={k}.")
        scores = self.scores([user])[0]
        scores[torch.as_tensor(self.split.train[self.split.train[:, 0] == user, 1])] = float("-inf")
        top = torch.topk(scores, min(k, int(torch.isfinite(scores).sum())))
        items = [self.shop.items[i] for i in top.indices.tolist()]
        return [{"item": it.id, "name": it.name if lang == "en" else it.name_zh, "score": s, "new": it.new,
                 "text": it.text(lang)} for it, s in zip(items, top.values.tolist())]


def fit_recommender(shop: Shop, split: Split, recipe: RecsysRecipe | str = "quick", *, device: str | None = "cpu",
                    progress: bool = False) -> Recommender:
    """Train MF or the two-tower model with BPR on ``split.train`` with the course trainer (notebook 14).

    ``recipe``: a RECSYS_RECIPES name or a RecsysRecipe. Seconds on a CPU, hence ``device='cpu'`` and no cache."""
    recipe = storage.named_recipe(recipe, RECSYS_RECIPES, RecsysRecipe, "recommender", "RECSYS_RECIPES")
    start = time.perf_counter()
    n_users, n_items = len(shop.tastes), len(shop.items)
    with torch.random.fork_rng(devices=[]):  # seeded weights; the caller's random state is left alone
        torch.manual_seed(recipe.seed)
        if recipe.model == "mf":
            model: MatrixFactorization = MatrixFactorization(n_users, n_items, recipe.dim)
        else:
            text = hashed_text_features([item.text(recipe.lang) for item in shop.items], recipe.lang,
                                        recipe.n_buckets)
            model = TwoTower(n_users, n_items, recipe.dim, text, recipe.n_buckets, recipe.id_dropout)
            model.known.copy_(torch.bincount(torch.as_tensor(split.train[:, 1]), minlength=n_items) > 0)
    pairs = torch.as_tensor(split.train, dtype=torch.long)  # (n, 2)
    loader = data.TensorLoader(pairs[:, 0], pairs[:, 1], batch_size=min(recipe.batch_size, len(pairs)),
                               seed=recipe.seed)
    warm = torch.as_tensor(np.setdiff1d(np.arange(n_items), shop.new_items))
    config = train.TrainConfig(max_steps=recipe.steps, precision="fp32", device=device, progress=progress,
                               log_every=max(1, recipe.steps // 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    with torch.random.fork_rng(devices=[]):  # the ID dropout's draws are seeded too
        torch.manual_seed(recipe.seed)
        history = train.Trainer(model, optimizer, BPRStep(warm, recipe.l2, recipe.seed), loader, config).fit()
    info = {"recipe": asdict(recipe), "train_seconds": round(time.perf_counter() - start, 2),
            "final": history["train"][-1] if history["train"] else {}, "history": history}
    return Recommender(model.cpu().eval(), shop, split, info)


# ----------------------------------------------------------------------------------------------- blurbs
def tastes_from_history(items: Sequence[Item], history: Sequence[int]) -> dict[str, float]:
    """Share of a user's history items having each attribute value: the tastes an app can see (notebook 14)."""
    counts: dict[str, float] = {}
    for i in history:
        for value in items[i].attribute_values():
            counts[value] = counts.get(value, 0.0) + 1.0 / len(history)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def product_blurb(item: Item, user_tastes: Mapping[str, float], lang: str = "en", top: int = 3) -> str:
    """A TEMPLATE blurb naming the item's attribute values among the user's ``top`` tastes (notebook 14).

    Labelled with ``TEMPLATE_LABELS[lang]``; it claims no taste the item does not have, and with no match it
    is the item text alone. (The language-model blurb of notebook 14 is written elsewhere.)"""
    if lang not in TEMPLATE_LABELS:
        raise ValueError(f"lang must be 'en' or 'zh', got {lang!r}.")
    liked = sorted((v for v, w in user_tastes.items() if w > 0), key=lambda v: -user_tastes[v])[:top]
    matched = [v for v in liked if v in item.attribute_values()]
    if not matched:
        return f"{TEMPLATE_LABELS[lang]} {item.text(lang)}"
    if lang == "zh":
        return f"{TEMPLATE_LABELS['zh']} 符合您对{'、'.join(ZH[v] for v in matched)}的偏好。{item.text_zh}"
    listed = matched[0] if len(matched) == 1 else ", ".join(matched[:-1]) + f" and {matched[-1]}"
    return f"{TEMPLATE_LABELS['en']} Matches your taste for {listed}. {item.text_en}"

