"""The Willow & Kiln policy knowledge base, in English and Chinese, and a Chinese Q&A set built on it (notebook 14).

Every fact restates a policy that the English Q&A answers of notebooks 05/06 (``data/qa/shop_qa.jsonl``) already
use: the same shop, prices, opening hours, payment, delivery zones, returns. A fact is one retrievable unit with
the Q&A intents it answers; facts about one product, tea, delivery zone or promo code are separate, so a reply
can quote exactly one. The Chinese Q&A set is written from templates here: the
questions vary in wording, entity, greeting and closing, and each answer is the Chinese text of one fact. It is
built in memory by :func:`zh_qa_pairs` (deterministic from the seed, a few milliseconds), not stored in data/qa.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CITIES", "PRODUCTS", "SHOP_EN", "TEAS", "Fact", "fact_by_id", "facts_for_intent", "policy_facts",
           "zh_qa_pairs"]

SHOP_EN = "Willow & Kiln"


@dataclass(frozen=True)
class Fact:
    """One policy fact (notebook 14): ``intents`` are the Q&A intents it answers, the first is its topic."""

    id: str
    intents: tuple[str, ...]
    en: str
    zh: str
    keywords_en: str = ""  # words customers use for the topic: searched, never quoted in a reply
    keywords_zh: str = ""

    @property
    def intent(self) -> str:
        return self.intents[0]

    def text(self, language: str) -> str:
        """The fact in ``"en"`` or ``"zh"``."""
        if language not in ("en", "zh"):
            raise ValueError(f"language must be 'en' or 'zh', got {language!r}.")
        return self.en if language == "en" else self.zh

    def search_text(self, language: str) -> str:
        """The fact plus its topic's keywords: what retrieval indexes."""
        return f"{self.text(language)} {self.keywords_en if language == 'en' else self.keywords_zh}"


# key: (English, Chinese, price in dollars)
PRODUCTS: dict[str, tuple[str, str, int]] = {
    "bamboo_tray": ("bamboo tea tray", "竹制茶盘", 48), "cast_iron_teapot": ("cast-iron teapot", "铸铁茶壶", 79),
    "clay_teapot": ("clay teapot", "陶土茶壶", 55), "electric_kettle": ("electric kettle", "电热水壶", 95),
    "glass_teapot": ("glass teapot", "玻璃茶壶", 36), "matcha_bowl": ("matcha bowl", "抹茶碗", 42),
    "matcha_whisk": ("matcha whisk", "抹茶刷", 16), "teacup_set": ("porcelain teacup set", "瓷茶杯套装", 68),
    "stoneware_mug": ("stoneware mug", "粗陶马克杯", 24), "tea_canister": ("tea canister", "茶叶罐", 18),
    "tea_strainer": ("tea strainer", "滤茶器", 9), "travel_flask": ("travel tea flask", "便携茶水杯", 32)}
# key: (English, Chinese, water degrees C, steep time EN, steep time ZH, kind: black/green/oolong/white/herbal)
TEAS: dict[str, tuple[str, str, int, str, str, str]] = {
    "assam": ("Assam breakfast tea", "阿萨姆早餐茶", 100, "4 to 5 minutes", "4到5分钟", "black"),
    "darjeeling": ("Darjeeling first flush", "大吉岭春摘茶", 90, "3 minutes", "3分钟", "black"),
    "earl_grey": ("Earl Grey", "伯爵茶", 95, "3 to 4 minutes", "3到4分钟", "black"),
    "oolong": ("Iron Goddess oolong", "铁观音乌龙茶", 90, "3 minutes", "3分钟", "oolong"),
    "chamomile": ("chamomile", "洋甘菊茶", 100, "5 minutes", "5分钟", "herbal"),
    "jasmine": ("jasmine green tea", "茉莉绿茶", 80, "2 to 3 minutes", "2到3分钟", "green"),
    "peppermint": ("peppermint", "薄荷茶", 100, "5 minutes", "5分钟", "herbal"),
    "rooibos": ("rooibos", "南非博士茶", 100, "5 to 7 minutes", "5到7分钟", "herbal"),
    "sencha": ("sencha", "煎茶", 70, "1 to 2 minutes", "1到2分钟", "green"),
    "white_peony": ("white peony", "白牡丹", 85, "4 to 5 minutes", "4到5分钟", "white")}
CITIES: dict[str, str] = {  # English -> Chinese, grouped by delivery zone in ZONES
    "Riverton": "里弗顿", "Millbrook": "米尔布鲁克", "Austin": "奥斯汀", "Boston": "波士顿", "Chicago": "芝加哥",
    "Denver": "丹佛", "Seattle": "西雅图", "Toronto": "多伦多", "Vancouver": "温哥华", "Berlin": "柏林",
    "London": "伦敦", "Paris": "巴黎", "Sydney": "悉尼", "Tokyo": "东京"}
# zone: (cities, cost EN, cost ZH, time EN, time ZH)
ZONES: dict[str, tuple[tuple[str, ...], str, str, str, str]] = {
    "local": (("Riverton", "Millbrook"), "$4.95, and it's free on orders over $30", "4.95美元，订单满30美元免运费",
              "the next business day by our own courier", "下一个工作日由我们自己的快递员送达"),
    "us": (("Austin", "Boston", "Chicago", "Denver", "Seattle"), "$6.95, and it's free on orders over $50",
           "6.95美元，订单满50美元免运费", "3 to 5 business days", "3到5个工作日"),
    "canada": (("Toronto", "Vancouver"), "$14.95, or a flat $10 on orders over $150",
               "14.95美元，订单满150美元只收10美元", "6 to 9 business days", "6到9个工作日"),
    "international": (("Berlin", "London", "Paris", "Sydney", "Tokyo"), "$24.95, or a flat $10 on orders over $150",
                      "24.95美元，订单满150美元只收10美元", "8 to 14 business days", "8到14个工作日")}
CARE: dict[str, tuple[str, str]] = {  # product key -> (EN, ZH)
    "cast_iron_teapot": (("Rinse the cast-iron teapot with hot water only and dry it completely, inside and out, to "
                         "prevent rust. Never put it in the dishwasher."),
                         "铸铁茶壶只用热水冲洗，里外彻底擦干以防生锈。不要放进洗碗机。"),
    "clay_teapot": (("Rinse the clay teapot with hot water only, never soap, and leave the lid off to dry. Over time it "
                    "seasons with the tea you brew in it."),
                    "陶土茶壶只用热水冲洗，不要用洗洁精，打开盖子晾干。用久了它会被茶养出味道。"),
    "electric_kettle": (("Descale the electric kettle once a month with a spoonful of citric acid and water, then rinse"
                        " it well. Never put the base in water."),
                        "电热水壶每月用一勺柠檬酸加水除一次水垢，然后冲洗干净。底座绝不能放进水里。"),
    "glass_teapot": (("The glass teapot is dishwasher safe. Let it cool down before you rinse it with cold water, as "
                     "sudden temperature changes can crack glass."),
                     "玻璃茶壶可以用洗碗机清洗。用冷水冲洗前先让它冷却，骤冷骤热会让玻璃开裂。"),
    "matcha_bowl": (("Rinse the matcha bowl with warm water and a soft cloth, without soap, and let it air dry. It is "
                    "not dishwasher safe."), "抹茶碗用温水和软布清洗，不要用洗洁精，自然晾干。不能用洗碗机。"),
    "teacup_set": (("The porcelain teacups have a hand-painted gold rim, so please wash them by hand and keep them out "
                   "of the microwave."), "瓷茶杯套装有手绘金边，请手洗，不要放进微波炉。"),
    "stoneware_mug": (("The stoneware mug is dishwasher and microwave safe. To keep the glaze glossy, avoid scouring "
                      "pads."), "粗陶马克杯可以用洗碗机和微波炉。为了保持釉面光亮，请不要用钢丝球。")}
PROMOS: dict[str, tuple[str, str]] = {  # code -> (EN, ZH)
    "FREESHIP": (("FREESHIP covers standard shipping within the US on orders over $25. It doesn't apply to express or "
                 "international shipping."), "优惠码FREESHIP适用于美国境内满25美元订单的标准运费，不适用于加急或国际运输。"),
    "HOLIDAY20": (("HOLIDAY20 was our winter holiday code and expired on December 31. Sign up for our newsletter to "
                  "hear about the next sale."), "优惠码HOLIDAY20是冬季节日优惠码，已于12月31日过期。订阅我们的新闻邮件可以第一时间知道下次促销。"),
    "KILNCLUB5": (("KILNCLUB5 is a Kiln Club reward, so it only works when you are signed in to the account it was "
                  "issued to."), "优惠码KILNCLUB5是Kiln Club会员奖励，只有登录发放它的那个账户才能使用。"),
    "SPRING15": (("SPRING15 was part of our spring sale and expired on May 31. Sign up for our newsletter to hear about"
                 " the next one."), "优惠码SPRING15属于春季促销，已于5月31日过期。订阅我们的新闻邮件可以第一时间知道下次促销。"),
    "WELCOME10": (("WELCOME10 gives 10% off your first order only, so it won't apply if you have ordered with us "
                  "before. It also can't be combined with other codes."),
                  "优惠码WELCOME10只在首单享受九折，如果您以前下过单就不能用了，也不能和其他优惠码叠加使用。")}
_CAFFEINE = {  # kind -> (EN, ZH) with {en}/{zh} for the tea's name
    "black": ("Yes, {en} is a black tea, so a cup has about half the caffeine of a cup of coffee.",
              "含有。{zh}是红茶，一杯的咖啡因大约是一杯咖啡的一半。"),
    "herbal": ("No, {en} is a herbal infusion and naturally caffeine-free, so it's a lovely choice for the evening.",
               "不含。{zh}是花草茶，天然不含咖啡因，很适合晚上喝。"),
    "other": ("Yes, {en} contains some caffeine, roughly a third of what a cup of coffee has.",
              "含有。{zh}有一些咖啡因，大约是一杯咖啡的三分之一。")}
_SINGLE: dict[str, tuple[tuple[str, ...], str, str]] = {  # one fact per topic: id -> (intents, EN, ZH)
    "opening_hours": (("opening_hours", "open_on_day"), ("Our Riverton shop is open Monday to Friday from 9 am to 6 pm "
                      "and on Saturdays from 10 am to 5 pm. We're closed on Sundays and public holidays, but the "
                      "online shop never closes."), ("我们在里弗顿的门店周一到周五上午9点到下午6点营业，周六上午10点到下午5点"
                      "营业。周日和公共假日休息，网店全天开放。")),
    "store_location": (("store_location",), ("Our shop and studio are at 14 Orchard Lane in Riverton, next to the old "
                       "mill bridge. There's free street parking on Orchard Lane, and the number 6 bus stops right "
                       "outside."), "我们的门店和工作室在里弗顿果园巷14号，老磨坊桥旁边。果园巷路边可以免费停车，6路公交车就停在门口。"),
    "contact": (("contact",), ("You can reach us at hello@willowandkiln.example or on (555) 014-2290, Monday to Friday "
                "from 9 am to 5 pm. Live chat on our website is open during the same hours, and we answer emails "
                "within one business day."), ("您可以发邮件到hello@willowandkiln.example，或在周一到周五上午9点到下午5点"
                "拨打电话(555) 014-2290联系我们。网站在线客服的时间相同，邮件一个工作日内回复。")),
    "payment_methods": (("payment_methods", "payment_accepted"), ("We accept Visa, Mastercard, American Express, "
                        "PayPal, Apple Pay, Google Pay and Willow & Kiln gift cards, online and in our Riverton shop. "
                        "In the shop we also take cash."), ("我们接受Visa、Mastercard、American Express、PayPal、"
                        "Apple Pay、Google Pay和Willow & Kiln礼品卡付款，网店和里弗顿门店都可以用。门店还收现金。")),
    "payment_refused": (("payment_accepted", "payment_methods"), ("We don't accept Bitcoin or other cryptocurrency, "
                        "Venmo, bank transfer, personal checks or cash on delivery. Online orders must be paid with a "
                        "card, PayPal, Apple Pay or Google Pay."), ("我们不接受比特币等加密货币、Venmo、银行转账、个人支票"
                        "或货到付款。网上订单请用银行卡、PayPal、Apple Pay或Google Pay支付。")),
    "free_shipping": (("free_shipping",), ("Shipping is free on orders over $50 anywhere in the US, and over $30 within"
                      " the Riverton area. International orders over $150 ship for a flat $10."),
                      "美国境内订单满50美元免运费，里弗顿地区满30美元免运费。国际订单满150美元只收10美元运费。"),
    "customs_duties": (("customs_duties",), ("Orders shipped outside the US, for example to Canada, the UK, Ireland, "
                       "France, Germany, Japan, Australia or Mexico, may be charged import duties and taxes on arrival. "
                       "They are set by the customs office and paid by the recipient, so they are not included in our "
                       "prices."), ("寄往美国以外的订单，例如加拿大、英国、爱尔兰、法国、德国、日本、澳大利亚或墨西哥，到达时"
                       "可能会被征收进口关税和税费。关税由海关决定、由收件人支付，不包含在我们的价格里。")),
    "return_policy": (("return_policy",), ("You can return unused items within 30 days of delivery for a full refund. "
                      "Start your return at willowandkiln.example/returns to get a prepaid label; opened tea can only "
                      "be returned if it is faulty."), ("未使用的商品可以在签收后30天内退货并全额退款。请在"
                      "willowandkiln.example/returns申请退货并领取预付运单；已开封的茶叶只有质量问题才能退。")),
    "refund_time": (("refund_time",), ("We refund your original payment method within 5 business days of receiving "
                    "your return. Your bank may take another 3 to 5 days to show it."),
                    "收到退货后5个工作日内，我们会原路退款到您的付款方式。银行可能还需要3到5天才能显示。"),
    "exchange_item": (("exchange_item",), ("You can exchange an unused item for another colour or size within 30 days "
                      "of delivery. Start the exchange at willowandkiln.example/returns and we'll ship the new one as "
                      "soon as we scan your return."), ("未使用的商品可以在签收后30天内换成其他颜色或尺寸。请在"
                      "willowandkiln.example/returns申请换货，我们扫描到您寄回的包裹后马上寄出新的。")),
    "damaged_item": (("damaged_item",), ("If an item arrives damaged, email a photo of it and the packaging to "
                     "hello@willowandkiln.example within 7 days of delivery, and we'll send a free replacement or a "
                     "full refund."), ("如果商品到货时损坏，请在签收后7天内把商品和包装的照片发到hello@willowandkiln.example，"
                     "我们会免费补发或全额退款。")),
    "warranty": (("warranty",), ("Our ceramics and the glass teapot have a one-year warranty against manufacturing "
                 "defects; accidental damage and cracks from sudden temperature changes are not covered. The cast-iron "
                 "teapot and the electric kettle have a two-year warranty, and we handle the claim for you."),
                 ("我们的陶瓷器和玻璃茶壶有一年质保，保修制造缺陷；意外损坏和骤冷骤热造成的开裂不在保修范围内。铸铁茶壶和"
                 "电热水壶有两年质保，我们替您办理索赔。")),
    "restock": (("restock",), ("Popular items sell out quickly. Click 'Notify me' on the product page and we'll email "
                "you as soon as it's back; most items return within two to three weeks."),
                "热门商品卖得很快。请在商品页面点击“到货通知”，补货后我们会马上发邮件告诉您；大多数商品两到三周内补货。"),
    "engraving": (("engraving",), ("We can engrave a name on the stoneware mug, clay teapot, matcha bowl or tea canister"
                  " for $8. Engraved pieces leave our studio 2 business days later and can only be returned if they "
                  "are faulty."), ("我们可以在粗陶马克杯、陶土茶壶、抹茶碗或茶叶罐上刻名字，收费8美元。刻字商品会晚2个工作日"
                  "发出，只有质量问题才能退货。")),
    "gift_wrapping": (("gift_wrapping",), ("Add gift wrapping at checkout for $4 per order; we wrap everything in "
                      "recycled paper with a handwritten card. Prices are never shown on the packing slip of a gift "
                      "order."), "结账时可以加购礼品包装，每单4美元；我们用再生纸包装并附手写卡片。礼品订单的装箱单上不会显示价格。"),
    "gift_cards": (("gift_cards",), ("Our digital gift cards come in $25, $50, $100 and $200 and never expire. We email "
                   "them on the date you choose, and they work online and in our Riverton shop."),
                   "我们的电子礼品卡有25、50、100和200美元四种面额，永不过期。我们会在您选定的日期发送邮件，网店和里弗顿门店都能用。"),
    "gift_card_balance": (("gift_card_balance",), ("Enter your gift card code at willowandkiln.example/giftcard to see "
                          "its balance, or ask us in the shop. Any unused balance stays on the card for next time."),
                          "在willowandkiln.example/giftcard输入礼品卡卡号即可查询余额，也可以到门店询问。没用完的余额会一直留在卡里。"),
    "loyalty_points": (("loyalty_points",), ("Kiln Club is free to join: you earn one point for every dollar you spend, "
                       "and every 100 points gives you $5 off. Members also get early access to our sales."),
                       "Kiln Club会员免费加入：每消费1美元得1积分，每100积分可抵5美元。会员还能提前参加促销。"),
    "discounts": (("discounts",), ("New customers get 10% off their first order with the code WELCOME10, and Kiln Club "
                  "members earn points on every purchase. We also hold a sale twice a year, in January and July."),
                  "新顾客首单使用优惠码WELCOME10可享九折，Kiln Club会员每次购物都能攒积分。我们每年1月和7月各有一次促销。"),
    "wholesale": (("wholesale",), ("We love working with cafes and shops! Wholesale orders start at $300, and you can ask"
                  " for our trade price list at trade@willowandkiln.example."),
                  "我们很欢迎和咖啡馆、商店合作！批发订单300美元起，批发价目表请发邮件到trade@willowandkiln.example索取。"),
    "password_reset": (("password_reset",), ("Click 'Forgot password' on the sign-in page and we'll email you a reset "
                       "link. If it doesn't arrive within a few minutes, check your spam folder or write to "
                       "hello@willowandkiln.example."), ("在登录页面点击“忘记密码”，我们会发邮件给您重置链接。如果几分钟内"
                       "没收到，请查看垃圾邮件，或写信到hello@willowandkiln.example。")),
    "order_tracking": (("order_tracking",), ("You can follow an order at willowandkiln.example/track with its order "
                       "number and the email address you ordered with. We also email you a tracking link as soon as "
                       "the parcel leaves our studio."), ("您可以在willowandkiln.example/track用订单号和下单邮箱查询物流。"
                       "包裹离开工作室后，我们也会马上把物流链接发到您的邮箱。")),
    "change_address": (("change_address",), ("We can update the address of an order as long as it hasn't shipped yet. "
                       "Email hello@willowandkiln.example with the order number and the new address as soon as you can."),
                       "只要订单还没发货，我们就可以修改地址。请尽快把订单号和新地址发到hello@willowandkiln.example。"),
    "cancel_order": (("cancel_order",), ("If an order hasn't been dispatched yet, we can cancel it and refund you in "
                     "full. Reply to your order confirmation email within 2 hours of ordering and we'll take care of "
                     "it."), "如果订单还没发出，我们可以取消并全额退款。请在下单后2小时内回复订单确认邮件，我们会为您处理。"),
    "late_order": (("late_order",), ("If an order is more than 3 business days past its estimated delivery date, email "
                   "us the order number and we'll trace it with the carrier or send a replacement."),
                   "如果订单比预计送达日期晚了3个工作日以上，请把订单号发邮件给我们，我们会联系快递追查或补发。"),
    "store_pickup": (("store_pickup",), ("Orders can be collected for free from our Riverton shop at 14 Orchard Lane. "
                     "Wait for the email saying it's ready, then bring the order number with you."),
                     "订单可以到里弗顿果园巷14号的门店免费自提。收到备货完成的邮件后，带上订单号来取就可以了。"),
}


# Search keywords per topic (a fact's first intent): the words a customer may use that the fact itself does not
_KEYWORDS: dict[str, tuple[str, str]] = {
    "opening_hours": ("open opening hours close closing time today weekend visit", "营业 开门 关门 几点 营业时间 周末 周日"),
    "store_location": ("address where find directions parking bus located", "地址 在哪 位置 停车 公交 怎么去"),
    "contact": ("contact phone call email reach talk chat customer service", "联系 电话 邮件 客服 在线 回复"),
    "payment_methods": ("pay payment methods card cards accept take", "付款 支付 付钱 刷卡 收不收"),
    "free_shipping": ("free shipping delivery threshold minimum", "包邮 免运费 满多少"),
    "customs_duties": ("customs duties duty import tax taxes fees abroad international",
                       "关税 税费 海关 进口 额外费用 国外"),
    "return_policy": ("return returns send back refund unwanted policy days", "退货 退回 不喜欢 退 政策 期限"),
    "refund_time": ("refund refunds money back how long processed", "退款 到账 多久 原路"),
    "exchange_item": ("exchange swap change colour color size wrong different", "换货 换 颜色 尺寸 款式 买错"),
    "damaged_item": ("damaged broken cracked chipped arrived shipping smashed", "损坏 碎了 坏了 破损 破了"),
    "warranty": ("warranty guarantee guaranteed covered defect faulty broke years", "保修 质保 保修期 坏了 保质"),
    "restock": ("restock restocking back in stock sold out unavailable out of stock more", "补货 缺货 卖完 到货 没货 有货"),
    "engraving": ("engrave engraving engraved name personalise personalize custom", "刻字 刻名字 定制 刻"),
    "gift_wrapping": ("gift wrap wrapping wrapped present", "礼品包装 包装 送人 礼物"),
    "gift_cards": ("gift card cards voucher expire amounts", "礼品卡 面额 过期 购物卡"),
    "gift_card_balance": ("gift card balance check left remaining voucher", "礼品卡 余额 查询 剩多少 没用完"),
    "loyalty_points": ("kiln club loyalty points rewards member membership earn", "会员 积分 奖励 怎么用"),
    "discounts": ("discount discounts offers sale student deals coupon", "折扣 优惠 打折 学生 活动 促销"),
    "wholesale": ("wholesale bulk cafe restaurant trade supply business", "批发 咖啡馆 餐厅 供货 起订量 大量"),
    "password_reset": ("password reset forgot account log sign login locked", "密码 忘了 重置 登录 账户"),
    "order_tracking": ("track tracking where parcel package order status", "物流 查询 包裹 到哪了 状态 快递"),
    "change_address": ("change update address redirect shipping office wrong", "改地址 修改 地址 改寄 收货地址"),
    "cancel_order": ("cancel cancellation order too late", "取消 订单 来得及"),
    "late_order": ("late lost never came arrived missing delayed where", "没到 丢了 晚了 延误 一直没收到"),
    "store_pickup": ("pick up pickup collect collection in store person shop", "自提 到店 取 门店 取货"),
    "product_price": ("price cost how much costs", "价格 多少钱 卖多少 价钱"),
    "product_care": ("clean cleaning care wash dishwasher microwave look after", "清洗 保养 洗碗机 微波炉 怎么洗"),
    "brewing_guide": ("brew brewing make steep water temperature minutes how tips", "怎么泡 泡茶 冲泡 水温 几分钟 泡几分钟"),
    "caffeine": ("caffeine caffeinated decaf sleep bed evening coffee", "咖啡因 睡前 晚上 提神"),
    "shipping_cost": ("shipping cost delivery charge how much send price postage", "运费 邮费 多少钱 寄 发货"),
    "shipping_time": ("how long delivery time days take arrive reach ship", "几天 多久 多长时间 送达 到"),
    "promo_code": ("promo discount code coupon invalid not working valid expired", "优惠码 无效 用不了 有效 过期"),
}


# topics whose one fact holds for every product (and tea): their keywords name them all, as price facts do
_ALL_ITEMS = {"damaged_item", "warranty", "exchange_item", "restock", "engraving"}


def _with_keywords(fact: Fact) -> Fact:
    en, zh = _KEYWORDS.get(fact.intent, ("", ""))
    if fact.intent in _ALL_ITEMS:
        items = list(PRODUCTS.values()) + ([t[:2] for t in TEAS.values()] if fact.intent == "restock" else [])
        en, zh = f"{en} {' '.join(i[0] for i in items)}", f"{zh} {' '.join(i[1] for i in items)}"
    return Fact(fact.id, fact.intents, fact.en, fact.zh, en, zh)


def policy_facts() -> list[Fact]:
    """Every fact of the knowledge base, in a fixed order (notebook 14)."""
    facts = [Fact(k, intents, en, zh) for k, (intents, en, zh) in _SINGLE.items()]
    for key, (en, zh, price) in PRODUCTS.items():
        facts.append(Fact(f"price/{key}", ("product_price",), f"The {en} costs ${price}. Orders over $50 ship free "
                          "within the US.", f"{zh}的价格是{price}美元。美国境内订单满50美元免运费。"))
    for key, (en, zh) in CARE.items():
        facts.append(Fact(f"care/{key}", ("product_care",), en, zh))
    for key, (en, zh, degrees, t_en, t_zh, kind) in TEAS.items():
        facts.append(Fact(f"brew/{key}", ("brewing_guide",), f"For {en}, use one teaspoon (about 2.5 g) per cup with "
                          f"water at {degrees} degrees Celsius and steep it for {t_en}. Steep a little longer for a "
                          "stronger cup.", f"冲泡{zh}：每杯用一茶匙（约2.5克），水温{degrees}摄氏度，浸泡{t_zh}。"
                          "想要浓一点可以多泡一会儿。"))
        c_en, c_zh = _CAFFEINE[kind if kind in _CAFFEINE else "other"]
        facts.append(Fact(f"caffeine/{key}", ("caffeine",), c_en.format(en=en), c_zh.format(zh=zh)))
    for zone, (cities, cost_en, cost_zh, time_en, time_zh) in ZONES.items():
        names_en, names_zh = ", ".join(cities), "、".join(CITIES[c] for c in cities)
        facts.append(Fact(f"shipping_cost/{zone}", ("shipping_cost",), f"Standard shipping to {names_en} costs "
                          f"{cost_en}.", f"寄往{names_zh}的标准运费是{cost_zh}。"))
        facts.append(Fact(f"shipping_time/{zone}", ("shipping_time", "delivery_date"), f"Orders to {names_en} usually"
                          f" arrive in {time_en} after dispatch. Orders placed before 2 pm on a business day leave our "
                          "studio the same day.", f"寄往{names_zh}的订单发货后通常{time_zh}送达。工作日下午2点前下单，"
                          "当天就从工作室发货。"))
    for code, (en, zh) in PROMOS.items():
        facts.append(Fact(f"promo/{code}", ("promo_code",), en, zh))
    return [_with_keywords(f) for f in facts]


def fact_by_id(fact_id: str, facts: list[Fact] | None = None) -> Fact:
    """The fact called ``fact_id`` (notebook 14)."""
    for fact in facts or policy_facts():
        if fact.id == fact_id:
            return fact
    raise KeyError(f"no fact {fact_id!r}; ids look like 'opening_hours', 'price/clay_teapot', 'brew/sencha'.")


def facts_for_intent(intent: str, facts: list[Fact] | None = None) -> list[Fact]:
    """The facts that answer the Q&A ``intent`` (notebook 14)."""
    return [f for f in facts or policy_facts() if intent in f.intents]


# Chinese question templates per intent: (entity kind, templates); {x} is the entity's Chinese name
_ZH_TEMPLATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "opening_hours": ("", ("你们几点开门几点关门？", "门店的营业时间是什么？", "你们店什么时候营业？", "我什么时候可以去店里？")),
    "open_on_day": ("day", ("{x}开门吗？", "你们{x}营业吗？", "{x}几点关门？", "{x}可以去店里吗？")),
    "store_location": ("", ("你们的地址在哪里？", "店附近能停车吗？", "坐公交怎么去你们店？", "门店在什么位置？")),
    "contact": ("", ("怎么联系你们？", "你们的客服电话是多少？", "发邮件多久能回复？", "有在线客服吗？")),
    "payment_methods": ("", ("你们支持哪些付款方式？", "可以用什么卡付款？", "怎么付钱？", "付款方式有哪些？")),
    "payment_accepted": ("payment", ("可以用{x}付款吗？", "你们收{x}吗？", "我能用{x}支付吗？")),
    "free_shipping": ("", ("包邮吗？", "满多少钱免运费？", "有没有免运费的活动？")),
    "shipping_cost": ("city", ("寄到{x}运费多少？", "发货到{x}要多少邮费？", "送到{x}的运费是多少？")),
    "shipping_time": ("city", ("寄到{x}要几天？", "今天下单，多久能到{x}？", "发到{x}大概需要多长时间？")),
    "delivery_date": ("city_order", ("我的订单{o}寄往{x}，什么时候能到？", "订单{o}发到{x}，预计哪天送达？")),
    "customs_duties": ("country", ("寄到{x}要交关税吗？", "发往{x}会有额外的税费吗？", "我住在{x}，需要付关税吗？")),
    "return_policy": ("", ("退货期限是多少天？", "不喜欢买的东西可以退吗？", "怎么申请退货？", "你们的退货政策是什么？")),
    "refund_time": ("", ("退款多久能到账？", "退款会退回原来的付款方式吗？", "退款需要几天？")),
    "exchange_item": ("product", ("我的{x}可以换个颜色吗？", "{x}买错尺寸了，能换吗？", "可以把{x}换成别的款式吗？")),
    "damaged_item": ("product", ("收到的{x}碎了，怎么办？", "{x}到货时已经坏了。", "快递送来的{x}有破损。")),
    "warranty": ("product", ("{x}有保修吗？", "{x}的质保期多久？", "{x}坏了能保修吗？")),
    "restock": ("product", ("{x}卖完了，什么时候补货？", "{x}显示缺货，还会有吗？", "{x}什么时候到货？")),
    "engraving": ("product", ("可以在{x}上刻名字吗？", "{x}能定制刻字吗？", "给{x}刻字要多少钱？")),
    "product_price": ("product", ("{x}多少钱？", "{x}的价格是多少？", "请问{x}卖多少钱？")),
    "product_care": ("care", ("{x}怎么清洗？", "{x}可以放洗碗机吗？", "{x}平时怎么保养？")),
    "brewing_guide": ("tea", ("{x}怎么泡？", "泡{x}要多少度的水？", "{x}要泡几分钟？")),
    "caffeine": ("tea", ("{x}含咖啡因吗？", "睡前可以喝{x}吗，有没有咖啡因？", "我不能喝咖啡因，{x}可以喝吗？")),
    "promo_code": ("promo", ("优惠码{x}用不了。", "{x}这个优惠码还有效吗？", "为什么{x}提示无效？")),
    "discounts": ("", ("有折扣吗？", "有没有学生优惠？", "最近有什么优惠活动？")),
    "loyalty_points": ("", ("Kiln Club是什么？", "消费一美元能得几个积分？", "会员积分怎么用？")),
    "gift_cards": ("", ("你们有礼品卡吗？", "礼品卡会过期吗？", "礼品卡有哪些面额？")),
    "gift_card_balance": ("", ("怎么查询礼品卡余额？", "礼品卡没用完的钱怎么办？", "我的礼品卡还剩多少钱？")),
    "gift_wrapping": ("", ("可以礼品包装吗？", "礼品包装多少钱？", "送人的话能帮忙包装吗？")),
    "wholesale": ("", ("我开咖啡馆，可以批发你们的茶吗？", "你们给餐厅供货吗？", "批发起订量是多少？")),
    "password_reset": ("", ("密码忘了怎么办？", "怎么重置密码？", "登录不了账户怎么办？")),
    "order_tracking": ("order", ("我的包裹{o}到哪了？", "怎么查询订单{o}的物流？", "订单{o}现在是什么状态？")),
    "change_address": ("order", ("订单{o}可以改收货地址吗？", "能把订单{o}改寄到我公司吗？")),
    "cancel_order": ("order", ("我想取消订单{o}。", "订单{o}现在取消还来得及吗？")),
    "late_order": ("order", ("订单{o}一直没到。", "我的包裹{o}好像丢了。", "订单{o}比预计晚了很多天。")),
    "store_pickup": ("order", ("订单{o}可以到店自提吗？", "我能去门店取订单{o}吗？")),
}
_ZH_DAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
_ZH_PAYMENTS = {"payment_methods": ("Visa", "PayPal", "Apple Pay", "现金"),
                "payment_refused": ("比特币", "银行转账", "个人支票", "货到付款", "Venmo")}
_ZH_COUNTRIES = ("加拿大", "英国", "爱尔兰", "法国", "德国", "日本", "澳大利亚", "墨西哥")
_ZH_OPENINGS = ("", "", "你好，", "您好，", "请问", "打扰一下，", "hi，")
_ZH_CLOSINGS = ("", "", "谢谢！", "谢谢。", "麻烦了。")


def _zh_entities(kind: str, intent: str) -> list[tuple[str, str]]:
    """(Chinese name, fact id) for each entity a template of ``kind`` is filled with."""
    zone_of = {city: zone for zone, (cities, *_) in ZONES.items() for city in cities}
    prefix = "shipping_cost" if intent == "shipping_cost" else "shipping_time"
    table: dict[str, list[tuple[str, str]]] = {
        "": [("", intent)], "order": [("", intent)], "day": [(d, "opening_hours") for d in _ZH_DAYS],
        "country": [(c, "customs_duties") for c in _ZH_COUNTRIES],
        "payment": [(name, fid) for fid, names in _ZH_PAYMENTS.items() for name in names],
        "city": [(zh, f"{prefix}/{zone_of[en]}") for en, zh in CITIES.items()],
        "city_order": [(zh, f"shipping_time/{zone_of[en]}") for en, zh in CITIES.items()],
        "product": [(zh, intent if intent != "product_price" else f"price/{key}")
                    for key, (_, zh, _) in PRODUCTS.items()],
        "care": [(PRODUCTS[key][1], f"care/{key}") for key in CARE],
        "tea": [(t[1], f"{'brew' if intent == 'brewing_guide' else 'caffeine'}/{key}") for key, t in TEAS.items()],
        "promo": [(code, f"promo/{code}") for code in PROMOS]}
    return table[kind]


def zh_qa_pairs(seed: int = 0) -> list[dict[str, str]]:
    """The Chinese shop Q&A set (notebook 14): {id, intent, question, answer, fact}, answers = Chinese fact texts.

    Every template of an intent is filled with every entity (product, tea, city, ...); intents without an entity
    get each template twice. A seeded draw adds a greeting and a closing, and orders get a made-up number.
    """
    facts = {f.id: f for f in policy_facts()}
    rng = np.random.default_rng(seed)
    pairs = []
    for intent, (kind, templates) in _ZH_TEMPLATES.items():
        repeats = 2 if kind in ("", "order") else 1
        for template in templates:
            for name, fact_id in _zh_entities(kind, intent) * repeats:
                order = f"WK-{rng.integers(10000, 100000)}"
                body = template.format(x=name, o=order)
                question = (_ZH_OPENINGS[rng.integers(len(_ZH_OPENINGS))] + body
                            + _ZH_CLOSINGS[rng.integers(len(_ZH_CLOSINGS))])
                pairs.append({"id": f"zh-{len(pairs):04d}", "intent": intent, "question": question,
                              "answer": facts[fact_id].zh, "fact": fact_id})
    return pairs
