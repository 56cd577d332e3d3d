"""Financial news headlines written for this project, in English and Chinese, labelled by rule (notebook 14).

Every company, ticker, analyst firm and product here is fictional. A headline is one surface TEMPLATE of one
EVENT (earnings beat, guidance cut, lawsuit, ...) with its slots filled (company, quarter, percent, amount,
product, city, ...). The label is the event's polarity: the direction the news implies for the named company's
shares. Polar headlines of ordinary events report the price move ("..., shares fall") with probability
``REACTION_RATE``, so the move words recur across events as they do in real news. Three kinds of hard case
are labelled by the same rule, and marked ``hard=True`` on their event:

- "less than feared" (``loss_narrower``): a loss, a fall or a cost that is smaller than expected is POSITIVE;
- negation (``cleared``): "no wrongdoing", "will not cut jobs", "dismisses lawsuit" are POSITIVE;
- mixed news (``mixed_outlook``): good past results with bad forward news ("beats ... but cuts outlook",
  "falls despite record revenue") are NEGATIVE, because the forward-looking part moves the price.

Templates repeat their wording, so an honest test holds out WHOLE templates: :func:`split_templates` keeps
``test_per_event`` templates of every event and language for the test split only, and :func:`headline_split`
draws train and test headlines from the two disjoint template sets. :func:`news_stream` simulates days of
news whose mix of good and bad events follows a hidden market mood with planted shock days, so a sentiment
monitor's alerts can be scored against the truth.
"""
from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["COMPANIES", "EVENTS", "LABELS", "Company", "Event", "Headline", "NewsStream", "Shock",
           "headline_split", "make_headlines", "news_stream", "split_templates", "template_ids"]

LABELS = ("negative", "neutral", "positive")  # class order of every classifier and probability array
LANGS = ("en", "zh")
WARMUP_DAYS = 15  # no shock before this day of a stream: a monitor first fills its window
REACTION_RATE = 0.5  # share of plain polar headlines that also report the price move


@dataclass(frozen=True)
class Company:
    """A fictional listed company: English and Chinese names, ticker and sector (notebook 14)."""

    name_en: str
    name_zh: str
    ticker: str
    sector: str


@dataclass(frozen=True)
class Event:
    """A kind of news with its polarity and several surface templates per language (notebook 14)."""

    name: str
    label: str  # one of LABELS
    en: tuple[str, ...]
    zh: tuple[str, ...]
    hard: bool = False  # a hard case: "less than feared", negation or mixed news (see the module docstring)


@dataclass(frozen=True)
class Headline:
    """One generated headline with its rule label and where it came from (notebook 14)."""

    text: str
    lang: str  # "en" or "zh"
    label: str  # "positive", "negative" or "neutral"
    company: str
    ticker: str
    event: str
    template_id: str  # "event/lang/index": the group an honest split keeps on one side
    date: dt.date | None = None  # set in a news stream


@dataclass(frozen=True)
class Shock:
    """A planted shock day of a news stream: the mood jumps by ``sign * size`` that day (notebook 14)."""

    date: dt.date
    sign: int  # +1 good news day, -1 bad news day


@dataclass(frozen=True)
class NewsStream:
    """Simulated days of news with the hidden daily mood and the planted shocks that drove it (notebook 14)."""

    headlines: tuple[Headline, ...]
    days: tuple[dt.date, ...]
    mood: tuple[float, ...]  # hidden market mood per day; P(positive event) rises with it
    shocks: tuple[Shock, ...]


COMPANIES = (
    Company("Lumora Robotics", "流明机器人", "LMRA", "industrials"),
    Company("Qinghe Pharma", "清禾制药", "QHPH", "healthcare"),
    Company("Bluefin Payments", "蓝鳍支付", "BFPY", "financials"),
    Company("Stonebridge Energy", "石桥能源", "STBE", "energy"),
    Company("Nimbus Cloudworks", "云岫科技", "NMBC", "technology"),
    Company("Corvane Motors", "科凡汽车", "CRVM", "consumer"),
    Company("Jadeport Shipping", "玉港航运", "JDPS", "industrials"),
    Company("Orchid Lane Foods", "兰庭食品", "ORLF", "consumer staples"),
    Company("Vantoro Semiconductor", "万拓半导体", "VNTS", "technology"),
    Company("Pinecrest Mutual", "松冠保险", "PNCM", "financials"),
    Company("Sunward Solar", "向阳光伏", "SNWS", "energy"),
    Company("Kestrel Biotech", "隼翼生物", "KSTB", "healthcare"),
)

# slot vocabularies, paired by index across the two languages
_FIRMS = (("Harbor Peak Securities", "海峰证券"), ("Northgate Capital", "北门资本"),
          ("Silver Ridge Research", "银岭研究"), ("Eastwind Brokerage", "东风券商"))
_PRODUCTS = (("smart thermostat", "智能温控器"), ("electric delivery van", "电动物流车"),
             ("cloud database", "云数据库"), ("solar inverter", "光伏逆变器"), ("budget smartphone", "平价手机"),
             ("diabetes drug", "降糖新药"), ("payment app", "支付应用"), ("warehouse robot", "仓储机器人"))
_CITIES = (("Shanghai", "上海"), ("Frankfurt", "法兰克福"), ("Austin", "奥斯汀"), ("Singapore", "新加坡"),
           ("Shenzhen", "深圳"), ("Rotterdam", "鹿特丹"), ("Osaka", "大阪"))
_QUARTERS = (("Q1", "一季度"), ("Q2", "二季度"), ("Q3", "三季度"), ("Q4", "四季度"))
_WEEKDAYS = (("Monday", "周一"), ("Tuesday", "周二"), ("Wednesday", "周三"), ("Thursday", "周四"),
             ("Friday", "周五"))
# price moves after "shares"/"股价": the words a reader (and a classifier) learns across events
_UPS = (("rise", "上涨"), ("jump", "大涨"), ("climb", "走高"), ("rally", "攀升"), ("gain", "走强"))
_DOWNS = (("fall", "下跌"), ("slide", "下挫"), ("drop", "走低"), ("tumble", "大跌"), ("sink", "走弱"))
_MONTHS = tuple((dt.date(2026, m, 1).strftime("%B"), f"{m}月") for m in range(1, 13))

EVENTS = (
    Event("earnings_beat", "positive", (
        "{company} {quarter} profit beats forecasts, shares {up} {pct}",
        "{company} posts record {quarter} earnings as sales climb {pct}",
        "Strong demand lifts {company} quarterly profit above expectations",
        "{company} shares {up} as {amount} {quarter} net income tops estimates",
    ), ("{company}{quarter}利润超预期，股价{up}", "{company}{quarter}营收增长{pct}，净利润创历史新高",
        "需求强劲，{company}季度盈利高于市场预期", "{company}{quarter}净利润{amount}，超出分析师预估")),
    Event("earnings_miss", "negative", (
        "{company} shares {down} after {quarter} profit misses forecasts",
        "{company} {quarter} earnings fall short as costs rise {pct}",
        "Weak sales drag {company} quarterly profit below estimates",
        "{company} shares {down} on {pct} drop in {quarter} net income",
    ), ("{company}{quarter}利润不及预期，股价{down}", "成本上升{pct}，{company}{quarter}盈利低于预期",
        "销售疲软拖累{company}季度利润，低于市场预估", "{company}{quarter}净利润同比下降{pct}，逊于预期")),
    Event("guidance_raised", "positive", (
        "{company} raises full-year outlook on strong orders",
        "{company} lifts {year} revenue forecast by {pct}",
        "{company} shares {up} on upbeat guidance",
        "{company} boosts annual profit target after solid {quarter}",
    ), ("订单强劲，{company}上调全年业绩指引", "{company}将{year}年营收预测上调{pct}",
        "{company}发布乐观指引，股价{up}", "{quarter}表现稳健，{company}提高全年利润目标")),
    Event("guidance_cut", "negative", (
        "{company} cuts full-year outlook as demand cools",
        "{company} lowers {year} revenue forecast by {pct}",
        "{company} shares {down} on gloomy guidance",
        "{company} slashes annual profit target after weak {quarter}",
    ), ("需求降温，{company}下调全年业绩指引", "{company}将{year}年营收预测下调{pct}",
        "{company}展望黯淡，股价{down}", "{quarter}表现疲弱，{company}削减全年利润目标")),
    Event("lawsuit", "negative", (
        "{company} sued by investors over misleading disclosures",
        "{company} shares {down} on {amount} patent lawsuit in {city}",
        "Customers file class action against {company} over faulty {product}",
        "Court rules against {company} in {amount} contract dispute",
    ), ("{company}涉嫌信息披露误导，遭投资者起诉", "{company}在{city}遭遇{amount}专利诉讼，股价{down}",
        "{product}存在缺陷，消费者对{company}提起集体诉讼", "{company}合同纠纷一审败诉，涉案金额{amount}")),
    Event("regulator_fine", "negative", (
        "Regulator fines {company} {amount} over reporting failures, shares {down}",
        "{company} hit with {amount} penalty for breaching safety rules",
        "{company} to pay {amount} to settle regulator's probe",
        "Watchdog in {city} penalises {company} for misleading ads",
    ), ("{company}因信息披露违规被监管部门罚款{amount}，股价{down}", "违反安全规定，{company}被处以{amount}罚款",
        "{company}将支付{amount}以了结监管调查", "{city}监管机构就虚假广告处罚{company}")),
    Event("product_launch", "positive", (
        "{company} unveils new {product}, preorders exceed targets",
        "{company} launches {product} to strong early reviews",
        "{company} shares {up} as {product} rollout begins in {city}",
        "{company} wins approval to sell its {product} nationwide",
    ), ("{company}发布新款{product}，预订量超出目标", "{company}推出{product}，首批用户评价良好",
        "{product}在{city}开售，{company}股价{up}", "{company}的{product}获批在全国销售")),
    Event("layoffs", "negative", (
        "{company} to cut {pct} of workforce amid slowing sales",
        "{company} announces layoffs and closes {city} plant",
        "{company} shares {down} as struggling firm lays off thousands",
        "{company} shuts {city} office, eliminating hundreds of jobs",
    ), ("销售放缓，{company}将裁员{pct}", "{company}宣布裁员并关闭{city}工厂",
        "经营困难，{company}重组中裁减数千名员工，股价{down}", "{company}关闭{city}办事处，数百个岗位被裁撤")),
    Event("merger_agreed", "positive", (
        "{company} agrees to buy {partner} for {amount}",
        "{company} and {partner} announce merger, shares {up}",
        "{company} accepts {amount} takeover offer from {partner} at a {pct} premium",
        "Shareholders approve merger of {company} with {partner}",
    ), ("{company}同意以{amount}收购{partner}", "{company}与{partner}宣布合并，股价{up}",
        "{company}接受{partner}溢价{pct}的收购要约", "股东大会批准{company}与{partner}合并")),
    Event("dividend_raised", "positive", (
        "{company} raises quarterly dividend by {pct}, shares {up}",
        "{company} announces {amount} share buyback and higher payout",
        "Cash-rich {company} boosts dividend for the fifth straight year",
        "{company} declares special dividend after record cash flow",
    ), ("{company}将季度股息提高{pct}，股价{up}", "{company}宣布{amount}股票回购并提高派息",
        "现金充裕，{company}连续第五年上调股息", "现金流创新高，{company}宣布派发特别股息")),
    Event("ceo_resigns", "negative", (
        "{company} CEO resigns abruptly, shares {down}",
        "{company} chief executive quits amid accounting questions",
        "Surprise exit of CEO rattles {company} investors",
        "{company} ousts chief executive after failed {product} launch",
    ), ("{company}首席执行官突然辞职，股价{down}", "会计问题引发质疑，{company}首席执行官离职",
        "{company}CEO意外离任，投资者感到不安", "{product}上市失败，{company}罢免首席执行官")),
    Event("analyst_upgrade", "positive", (
        "{firm} upgrades {company} to buy, sees {pct} upside",
        "{company} shares {up} after {firm} raises price target",
        "Analysts turn bullish on {company} after {quarter} results",
        "{firm} adds {company} to its top picks list",
    ), ("{firm}将{company}评级上调至买入，预计上涨空间{pct}", "{firm}上调目标价，{company}股价{up}",
        "{quarter}业绩发布后，分析师看好{company}", "{firm}将{company}列入首选股名单")),
    Event("analyst_downgrade", "negative", (
        "{firm} downgrades {company} to sell on margin worries",
        "{company} shares {down} after {firm} cuts price target by {pct}",
        "Analysts turn bearish on {company} as competition heats up",
        "{firm} removes {company} from its recommended list",
    ), ("利润率承压，{firm}将{company}评级下调至卖出", "{firm}将目标价下调{pct}，{company}股价{down}",
        "竞争加剧，分析师看空{company}", "{firm}将{company}移出推荐名单")),
    Event("data_breach", "negative", (
        "{company} discloses data breach affecting millions of users",
        "Hackers steal customer records from {company}",
        "{company} shares {down} as cyberattack disrupts {city} operations",
        "{company} admits security flaw exposed payment data",
    ), ("{company}披露数据泄露事件，数百万用户受影响", "黑客窃取{company}客户资料",
        "网络攻击导致{city}业务中断，{company}股价{down}", "{company}承认安全漏洞致支付数据外泄")),
    Event("scheduled_meeting", "neutral", (
        "{company} to hold annual shareholder meeting in {city} on {weekday}",
        "{company} will report {quarter} results next week",
        "{company} schedules investor day for {month}",
        "{company} to present at industry conference in {city}",
    ), ("{company}将于{weekday}在{city}召开年度股东大会", "{company}将于下周公布{quarter}业绩",
        "{company}定于{month}举办投资者开放日", "{company}将出席在{city}举行的行业会议")),
    Event("filing", "neutral", (
        "{company} files annual report with securities regulator",
        "{company} completes previously announced name change of its {city} unit",
        "{company} publishes {year} sustainability report",
        "{company} confirms board composition unchanged after vote",
    ), ("{company}向证券监管机构提交年度报告", "{company}完成此前公告的{city}子公司更名",
        "{company}发布{year}年可持续发展报告", "投票结束后，{company}确认董事会成员保持不变")),
    Event("exec_appointed", "neutral", (
        "{company} names new chief financial officer",
        "{company} appoints {city} veteran to its board",
        "{company} moves regional headquarters to {city}",
        "{company} reshuffles management of its {product} division",
    ), ("{company}任命新任首席财务官", "{company}任命{city}资深人士加入董事会",
        "{company}将区域总部迁至{city}", "{company}调整{product}部门管理层")),
    Event("loss_narrower", "positive", (
        "{company} {quarter} loss narrower than feared, shares {up}",
        "{company} losses shrink {pct} as turnaround takes hold",
        "Decline in {company} sales smaller than expected",
        "{company} says {product} recall costs less than feared",
    ), ("{company}{quarter}亏损收窄，好于预期，股价{up}", "扭亏进展顺利，{company}亏损收窄{pct}",
        "{company}销售额降幅小于预期", "{company}表示{product}召回成本低于担忧"), hard=True),
    Event("cleared", "positive", (
        "Regulator finds no wrongdoing at {company}, ends probe",
        "{company} not liable in {amount} patent case, court rules",
        "{company} says it will not cut jobs despite slowdown",
        "Court dismisses lawsuit against {company}, shares {up}",
    ), ("监管机构未发现{company}违规，结束调查", "法院裁定{company}无需承担{amount}专利赔偿",
        "{company}表示尽管增长放缓，但不会裁员", "法院驳回针对{company}的诉讼，股价{up}"), hard=True),
    Event("mixed_outlook", "negative", (
        "{company} beats {quarter} estimates but cuts full-year outlook",
        "{company} shares {down} despite record revenue as margins shrink",
        "Record sales fail to lift {company} as costs jump {pct}",
        "{company} profit rises {pct} but warns of weaker demand ahead",
    ), ("{company}{quarter}业绩超预期，但下调全年指引", "尽管营收创新高，{company}因利润率收窄股价{down}",
        "成本大涨{pct}，创纪录的销售未能提振{company}", "{company}利润增长{pct}，但警告未来需求走弱"), hard=True),
)
_EVENT_BY_NAME = {e.name: e for e in EVENTS}
_DEFAULT_MIX = {"negative": 0.4, "neutral": 0.2, "positive": 0.4}


def _check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise ValueError(f"lang must be 'en' or 'zh', got {lang!r}.")
    return lang


def template_ids(lang: str) -> tuple[str, ...]:
    """Every template id ``event/lang/index`` of one language, in a fixed order (notebook 14)."""
    _check_lang(lang)
    return tuple(f"{e.name}/{lang}/{i}" for e in EVENTS for i in range(len(getattr(e, lang))))


def split_templates(lang: str = "en", seed: int = 0, test_per_event: int = 1
                    ) -> tuple[frozenset[str], frozenset[str]]:
    """Disjoint (train, test) template ids: ``test_per_event`` templates of every event held out (notebook 14)."""
    _check_lang(lang)
    if not 1 <= test_per_event <= 3:
        raise ValueError(f"test_per_event must be 1, 2 or 3 of each event's 4 templates, got {test_per_event}.")
    rng = random.Random(f"split/{lang}/{seed}")
    train, test = set(), set()
    for event in EVENTS:
        ids = [f"{event.name}/{lang}/{i}" for i in range(len(getattr(event, lang)))]
        rng.shuffle(ids)
        test.update(ids[:test_per_event])
        train.update(ids[test_per_event:])
    return frozenset(train), frozenset(test)


def _amount(rng: random.Random, lang: str) -> str:
    millions = rng.choice((5, 12, 30, 45, 80, 120, 250, 400, 750, 1200, 2500))
    if lang == "en":
        return f"${millions} million" if millions < 1000 else f"${millions / 1000:g} billion"
    return f"{millions * 100}万元" if millions < 100 else f"{millions / 100:g}亿元"


def _render(rng: random.Random, template_id: str, date: dt.date | None = None) -> Headline:
    """Fill one template's slots with random fictional values."""
    name, lang, index = template_id.split("/")
    event = _EVENT_BY_NAME[name]
    k = 0 if lang == "en" else 1
    company, partner = rng.sample(COMPANIES, 2)
    slots = {
        "company": company.name_en if lang == "en" else company.name_zh,
        "partner": partner.name_en if lang == "en" else partner.name_zh,
        "quarter": rng.choice(_QUARTERS)[k], "pct": f"{rng.randint(2, 35)}%", "amount": _amount(rng, lang),
        "product": rng.choice(_PRODUCTS)[k], "city": rng.choice(_CITIES)[k], "firm": rng.choice(_FIRMS)[k],
        "weekday": rng.choice(_WEEKDAYS)[k], "month": rng.choice(_MONTHS)[k], "year": str(rng.randint(2025, 2027)),
        "up": rng.choice(_UPS)[k], "down": rng.choice(_DOWNS)[k],
    }
    template = getattr(event, lang)[int(index)]
    if event.label != "neutral" and not event.hard and "{up}" not in template and "{down}" not in template \
            and rng.random() < REACTION_RATE:  # the market's reaction, as many real headlines report it
        move = "{up}" if event.label == "positive" else "{down}"
        template += f", shares {move}" if lang == "en" else f"，股价{move}"
    text = template.format(**slots)
    return Headline(text, lang, event.label, company.name_en, company.ticker, name, template_id, date)


def _templates_by_label(lang: str, templates: Collection[str] | None) -> dict[str, list[str]]:
    wanted = None if templates is None else set(templates)
    allowed = template_ids(lang) if wanted is None else [t for t in template_ids(lang) if t in wanted]
    if wanted is not None and len(allowed) != len(wanted):
        unknown = sorted(set(templates) - set(template_ids(lang)))[:3]
        raise ValueError(f"unknown {lang} template ids {unknown}: take them from template_ids({lang!r}).")
    by_label: dict[str, list[str]] = {label: [] for label in LABELS}
    for tid in allowed:
        by_label[_EVENT_BY_NAME[tid.split("/")[0]].label].append(tid)
    return by_label


def _draw(rng: random.Random, by_label: Mapping[str, Sequence[str]], mix: Mapping[str, float],
          date: dt.date | None = None) -> Headline:
    """A label from ``mix`` (over the labels that have templates), then an event and template of that label."""
    labels = [label for label in LABELS if by_label[label] and mix.get(label, 0.0) > 0]
    if not labels:
        raise ValueError(f"no template has a label with positive weight in {dict(mix)}.")
    label = rng.choices(labels, weights=[mix[label] for label in labels])[0]
    return _render(rng, rng.choice(by_label[label]), date)


def make_headlines(n: int, lang: str = "en", seed: int = 0, templates: Collection[str] | None = None,
                   label_mix: Mapping[str, float] | None = None) -> list[Headline]:
    """``n`` labelled headlines drawn from ``templates`` (default: all) with label shares ``label_mix`` (notebook 14)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}.")
    mix = dict(_DEFAULT_MIX if label_mix is None else label_mix)
    if set(mix) - set(LABELS) or any(w < 0 for w in mix.values()):
        raise ValueError(f"label_mix maps labels {LABELS} to non-negative weights, got {mix}.")
    by_label = _templates_by_label(_check_lang(lang), templates)
    rng = random.Random(f"headlines/{lang}/{seed}")
    return [_draw(rng, by_label, mix) for _ in range(n)]


def headline_split(n_train: int, n_test: int, lang: str = "en", seed: int = 0, test_per_event: int = 1
                   ) -> tuple[list[Headline], list[Headline]]:
    """Train and test headlines from DISJOINT templates (:func:`split_templates`): an honest test (notebook 14)."""
    train_ids, test_ids = split_templates(lang, seed, test_per_event)
    return (make_headlines(n_train, lang, seed=2 * seed, templates=train_ids),
            make_headlines(n_test, lang, seed=2 * seed + 1, templates=test_ids))


def _shock_days(rng: random.Random, days: int, n_shocks: int, warmup: int, gap: int) -> list[int]:
    candidates = list(range(warmup, days - 1))
    rng.shuffle(candidates)
    chosen: list[int] = []
    for day in candidates:
        if len(chosen) == n_shocks:
            break
        if all(abs(day - other) >= gap for other in chosen):
            chosen.append(day)
    if len(chosen) < n_shocks:
        raise ValueError(f"cannot place {n_shocks} shocks {gap} days apart after a {warmup}-day warm-up in "
                         f"{days} days: ask for fewer shocks or more days.")
    return sorted(chosen)


def news_stream(days: int = 90, per_day: int = 40, seed: int = 0, lang: str = "en", n_shocks: int = 3,
                shock_size: float = 3.0, templates: Collection[str] | None = None,
                start: dt.date = dt.date(2026, 1, 5)) -> NewsStream:
    """Days of headlines whose good/bad mix follows a hidden mood with planted shocks (notebook 14).

    mood_t = w_t + sum_{shocks s <= t} sign_s * shock_size * 0.8^(t - s), with w_t = 0.85 w_{t-1} + N(0, 0.2^2);
    each headline is neutral with probability 0.2, else positive with probability sigmoid(mood_t).
    Pass the held-out test templates as ``templates`` to monitor with a classifier that never saw them.
    """
    if days < WARMUP_DAYS + 2 or per_day < 1 or n_shocks < 0 or shock_size <= 0:
        raise ValueError(f"need days >= {WARMUP_DAYS + 2}, per_day >= 1, n_shocks >= 0 and shock_size > 0, got {days}, "
                         f"{per_day}, {n_shocks}, {shock_size}.")
    by_label = _templates_by_label(_check_lang(lang), templates)
    rng = random.Random(f"stream/{lang}/{seed}")
    shock_at = dict.fromkeys(_shock_days(rng, days, n_shocks, warmup=WARMUP_DAYS, gap=7))
    for day in shock_at:
        shock_at[day] = rng.choice((-1, 1))
    walk, jump = 0.0, 0.0
    dates, mood, headlines = [], [], []
    for t in range(days):
        walk = 0.85 * walk + rng.gauss(0.0, 0.2)  # the slow background: a mean-reverting random walk
        jump = 0.8 * jump + shock_size * shock_at.get(t, 0)  # a shock decays by 20% a day
        m = walk + jump
        date = start + dt.timedelta(days=t)
        p_pos = 1.0 / (1.0 + math.exp(-m))
        mix = {"neutral": 0.2, "positive": 0.8 * p_pos, "negative": 0.8 * (1.0 - p_pos)}
        headlines += [_draw(rng, by_label, mix, date) for _ in range(per_day)]
        dates.append(date)
        mood.append(m)
    shocks = tuple(Shock(start + dt.timedelta(days=t), sign) for t, sign in sorted(shock_at.items()))
    return NewsStream(tuple(headlines), tuple(dates), tuple(mood), shocks)
