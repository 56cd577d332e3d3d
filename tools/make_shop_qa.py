"""Write data/qa/shop_qa.jsonl, the customer-service Q&A set of notebooks 05 and 06: `python tools/make_shop_qa.py`.

Willow & Kiln is a fictional tea-and-ceramics shop at 14 Orchard Lane, Riverton (a made-up town). Its policies
below are fixed; each intent pairs several question paraphrases with one answer template, and the slots
(cities, products, teas, order numbers, ...) fill both, so every answer follows from the policies and a small
language model fine-tuned on part of the set can learn to answer the rest. A seeded `random.Random` makes
every choice: the same seed writes the same file, byte for byte. The text is the project's own (MIT / CC0).

Many intents have one fixed answer; the slot-filled ones give many *different* answers to one answer pattern
(other order numbers, dates, cities, products, prices, names). An honest test set holds answers that never
occur in training (`aigc_lib.data.qa_split` splits by answer), and the slot-filled intents are what fill it:
the model has seen the pattern, never these facts.
"""
from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "qa" / "shop_qa.jsonl"
SITE, EMAIL, PHONE = "willowandkiln.example", "hello@willowandkiln.example", "(555) 014-2290"

# --------------------------------------------------------------------------------------------- policies
REGIONS = {  # region -> (cities, delivery time, shipping cost)
    "local": (("Riverton", "Millbrook"), "the next business day by our own courier",
              "$4.95, and it's free on orders over $30"),
    "us": (("Chicago", "Denver", "Seattle", "Boston", "Austin"), "3 to 5 business days",
           "$6.95, and it's free on orders over $50"),
    "canada": (("Toronto", "Vancouver"), "6 to 9 business days",
               "$14.95, or a flat $10 on orders over $150"),
    "world": (("London", "Paris", "Berlin", "Tokyo", "Sydney"), "8 to 14 business days",
              "$24.95, or a flat $10 on orders over $150"),
}
CITIES = [{"city": city, "days": days, "cost": cost} for cities, days, cost in REGIONS.values() for city in cities]

TEAS = {  # tea -> (water temperature, steeping time, caffeine)
    "jasmine green tea": ("80", "2 to 3 minutes", "some"),
    "sencha": ("70", "1 to 2 minutes", "some"),
    "Darjeeling first flush": ("90", "3 minutes", "black"),
    "Earl Grey": ("95", "3 to 4 minutes", "black"),
    "Assam breakfast tea": ("100", "4 to 5 minutes", "black"),
    "Iron Goddess oolong": ("90", "3 minutes", "some"),
    "white peony": ("85", "4 to 5 minutes", "some"),
    "rooibos": ("100", "5 to 7 minutes", "none"),
    "chamomile": ("100", "5 minutes", "none"),
    "peppermint": ("100", "5 minutes", "none"),
}
CAFFEINE = {
    "black": "Yes, {tea} is a black tea, so a cup has about half the caffeine of a cup of coffee.",
    "some": "Yes, {tea} contains some caffeine, roughly a third of what a cup of coffee has.",
    "none": "No, {tea} is a herbal infusion and naturally caffeine-free, so it's a lovely choice for the "
            "evening.",
}
TEA_SLOTS = [{"tea": tea, "temp": temp, "time": time, "caffeine": CAFFEINE[kind].format(tea=tea)}
             for tea, (temp, time, kind) in TEAS.items()]

CERAMIC = ("Our {item} is covered by a one-year warranty against manufacturing defects, such as cracks in the "
           "glaze. Accidental damage, like a drop on a hard floor, is not covered.")
CARE = {
    "stoneware mug": ("The stoneware mug is dishwasher and microwave safe. To keep the glaze glossy, avoid "
                      "scouring pads."),
    "porcelain teacup set": ("The porcelain teacups have a hand-painted gold rim, so please wash them by hand "
                             "and keep them out of the microwave."),
    "matcha bowl": ("Rinse the matcha bowl with warm water and a soft cloth, without soap, and let it air dry. "
                    "It is not dishwasher safe."),
    "clay teapot": ("Rinse the clay teapot with hot water only, never soap, and leave the lid off to dry. "
                    "Over time it seasons with the tea you brew in it."),
    "glass teapot": ("The glass teapot is dishwasher safe. Let it cool down before you rinse it with cold "
                     "water, as sudden temperature changes can crack glass."),
    "cast-iron teapot": ("Rinse the cast-iron teapot with hot water only and dry it completely, inside and "
                         "out, to prevent rust. Never put it in the dishwasher."),
    "electric kettle": ("Descale the electric kettle once a month with a spoonful of citric acid and water, "
                        "then rinse it well. Never put the base in water."),
}
WARRANTY = {
    **dict.fromkeys(("stoneware mug", "porcelain teacup set", "matcha bowl", "clay teapot"), CERAMIC),
    "glass teapot": ("The glass teapot has a one-year warranty against manufacturing defects. Cracks from "
                     "sudden temperature changes are not covered."),
    "cast-iron teapot": ("The cast-iron teapot comes with a two-year warranty against defects in the casting "
                         "and enamel. Rust from leaving water in the pot is not covered, so dry it well."),
    "electric kettle": ("The electric kettle has a two-year manufacturer's warranty, and we handle the claim "
                        "for you: just email us your order number and a short description of the fault."),
}
ITEM_SLOTS = [{"item": item, "care": care, "warranty": WARRANTY[item].format(item=item)}
              for item, care in CARE.items()]
PRODUCT_SLOTS = [{"product": name} for name in (*CARE, *TEAS)]

VARIANTS = {  # items sold in several colours or sizes
    "stoneware mug": {"colour": ("celadon", "ivory", "slate blue", "terracotta"), "size": ("small", "large")},
    "matcha bowl": {"colour": ("celadon", "charcoal", "ivory")},
    "tea canister": {"colour": ("sage", "charcoal", "rose"), "size": ("small", "large")},
}
VARIANT_SLOTS = [{"item": item, "kind": kind, "variant": variant}
                 for item, kinds in VARIANTS.items() for kind, values in kinds.items() for variant in values]

CARDS = "a card, PayPal, Apple Pay or Google Pay"
PAYMENTS = {
    "yes": ("Visa", "Mastercard", "American Express", "PayPal", "Apple Pay", "Google Pay"),
    "no": ("personal checks", "bank transfer", "Bitcoin", "cryptocurrency", "cash on delivery", "Venmo"),
}
PAYMENT_SLOTS = [{"method": m, "reply": f"Yes, we accept {m} both online and in our Riverton shop."}
                 for m in PAYMENTS["yes"]]
PAYMENT_SLOTS += [{"method": m, "reply": f"Sorry, we don't accept {m}. You can pay with {CARDS} instead."}
                  for m in PAYMENTS["no"]]
PAYMENT_SLOTS.append({"method": "cash", "reply": "We take cash in our Riverton shop, but online orders must "
                                                 f"be paid with {CARDS}."})

WEEKDAY = "Yes, we're open on {day}s from 9 am to 6 pm."
HOURS = {"Monday": WEEKDAY, "Tuesday": WEEKDAY, "Wednesday": WEEKDAY, "Thursday": WEEKDAY, "Friday": WEEKDAY,
         "Saturday": "Yes, on Saturdays we're open from 10 am to 5 pm.",
         "Sunday": "Sorry, the shop is closed on Sundays, but our online shop is open around the clock."}
DAY_SLOTS = [{"day": day, "hours": reply.format(day=day)} for day, reply in HOURS.items()]

CODES = {
    "WELCOME10": "WELCOME10 gives 10% off your first order only, so it won't apply if you have ordered with us "
                 "before. It also can't be combined with other codes.",
    "SPRING15": "SPRING15 was part of our spring sale and expired on May 31, sorry! Sign up for our newsletter "
                "to hear about the next one.",
    "HOLIDAY20": "HOLIDAY20 was our winter holiday code and expired on December 31, sorry! Sign up for our "
                 "newsletter to hear about the next sale.",
    "KILNCLUB5": "KILNCLUB5 is a Kiln Club reward, so it only works when you are signed in to the account it "
                 "was issued to.",
    "FREESHIP": "FREESHIP covers standard shipping within the US on orders over $25. It doesn't apply to "
                "express or international shipping.",
}
CODE_SLOTS = [{"code": code, "reason": reason} for code, reason in CODES.items()]
ORDER_SLOTS = [{"order": f"WK-{n}"} for n in random.Random(2024).sample(range(10000, 100000), 200)]
_rng = random.Random(2025)  # a second stream, so the order numbers above stay as they were
DATES = [f"{month} {day}" for month in ("March", "April", "May", "June", "September", "October")
         for day in (2, 5, 9, 12, 16, 19, 23, 27)]
DELIVERY_SLOTS = [{"order": f"WK-{n}", "date": _rng.choice(DATES), **_rng.choice(CITIES)}
                  for n in _rng.sample(range(10000, 100000), 60)]
PICKUP_SLOTS = [{"order": f"WK-{n}"} for n in _rng.sample(range(10000, 100000), 40)]
PRICES = {"stoneware mug": "$24", "porcelain teacup set": "$68", "matcha bowl": "$42", "clay teapot": "$55",
          "glass teapot": "$36", "cast-iron teapot": "$79", "electric kettle": "$95", "tea canister": "$18",
          "bamboo tea tray": "$48", "matcha whisk": "$16", "tea strainer": "$9", "travel tea flask": "$32"}
PRICE_SLOTS = [{"product": product, "price": price} for product, price in PRICES.items()]
NAMES = ("Ana", "Ben", "Chloe", "Dev", "Elif", "Farah", "Grace", "Hugo", "Iris", "Jonah", "Kai", "Lena", "Mateo",
         "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Vera", "Wen", "Yusuf", "Zoe")
ENGRAVE_SLOTS = [{"name": name, "item": _rng.choice(("stoneware mug", "matcha bowl", "clay teapot",
                                                     "tea canister"))} for name in NAMES]
COUNTRY_SLOTS = [{"country": c} for c in ("Canada", "the UK", "France", "Germany", "Japan", "Australia",
                                          "Mexico", "Ireland")]
NO_SLOTS = ({},)


# --------------------------------------------------------------------------------------------- intents
@dataclass(frozen=True)
class Intent:
    """Question paraphrases and one answer template; ``slots`` are the value sets that fill both."""

    name: str
    questions: tuple[str, ...]
    answer: str
    slots: tuple[dict[str, str], ...] | list[dict[str, str]] = NO_SLOTS
    count: int = 16


INTENTS = (
    Intent("shipping_time", (
        "How long does delivery to {city} take?",
        "How long will my order take to get to {city}?",
        "I live in {city}. When would my parcel arrive?",
        "If I order today, when will it reach {city}?",
        "What's the delivery time for {city}?",
        "Do you ship to {city}, and how long does it take?",
        "how long is shipping to {city}",
        "Could you tell me the usual delivery time to {city}, please?",
        "Roughly how many days for a package to {city}?",
        "shipping time to {city}?",
    ), "Orders to {city} usually arrive in {days} after dispatch. Orders placed before 2 pm on a business "
       "day leave our studio the same day.", CITIES, 32),
    Intent("shipping_cost", (
        "How much is shipping to {city}?",
        "What do you charge for delivery to {city}?",
        "What does postage to {city} cost?",
        "I'm in {city}. How much will shipping be?",
        "Is shipping to {city} free?",
        "what's the delivery fee for {city}",
        "Could you let me know the shipping cost to {city}?",
        "How much would it cost to send an order to {city}?",
    ), "Standard shipping to {city} costs {cost}.", CITIES, 28),
    Intent("free_shipping", (
        "Do you offer free shipping?",
        "Is there a minimum order for free delivery?",
        "How much do I need to spend to get free shipping?",
        "free shipping?",
        "When is delivery free?",
        "Do I get free postage if I spend enough?",
        "What's your free shipping threshold?",
        "Is shipping ever free on your website?",
        "do you guys do free delivery",
        "Could you tell me whether you have free shipping, please?",
    ), "Shipping is free on orders over $50 anywhere in the US, and over $30 within the Riverton area. "
       "International orders over $150 ship for a flat $10."),
    Intent("order_tracking", (
        "Where is my order {order}?",
        "How can I track order {order}?",
        "Can you tell me where my parcel {order} is?",
        "Is there a tracking number for {order}?",
        "I'd like to track my order, number {order}.",
        "track order {order}",
        "Has my order {order} shipped yet?",
        "What's the status of order {order}?",
    ), "You can follow order {order} at " + SITE + "/track with the email address you ordered with. We also "
       "email you a tracking link as soon as the parcel leaves our studio.", ORDER_SLOTS, 24),
    Intent("late_order", (
        "My order {order} still hasn't arrived.",
        "Order {order} is late. What should I do?",
        "It's been two weeks and {order} isn't here yet.",
        "My parcel {order} seems to be lost.",
        "order {order} never came",
        "I'm still waiting for order {order}. Can you help?",
        "The tracking for {order} hasn't moved in days.",
        "Where on earth is my order {order}? It was due last week.",
    ), "I'm sorry order {order} is taking longer than expected. If it is more than 3 business days past its "
       "estimated delivery date, email us the order number and we'll trace it with the carrier or send a "
       "replacement.", ORDER_SLOTS, 24),
    Intent("cancel_order", (
        "Can I cancel order {order}?",
        "I'd like to cancel my order {order}, please.",
        "I ordered by mistake. Can you cancel {order}?",
        "How do I cancel order {order}?",
        "cancel {order} pls",
        "Is it too late to cancel my order {order}?",
        "I changed my mind about order {order}. Can it be cancelled?",
    ), "If order {order} hasn't been dispatched yet, we can cancel it and refund you in full. Reply to your "
       "order confirmation email within 2 hours of ordering and we'll take care of it.", ORDER_SLOTS, 22),
    Intent("change_address", (
        "Can I change the delivery address for order {order}?",
        "I put the wrong address on order {order}.",
        "I've moved. Can you send {order} to my new address?",
        "How do I update the shipping address on {order}?",
        "wrong address on order {order}, can you fix it",
        "Is it possible to redirect order {order} to my office?",
    ), "We can update the address for order {order} as long as it hasn't shipped yet. Email " + EMAIL +
       " with the new address as soon as you can.", ORDER_SLOTS, 20),
    Intent("return_policy", (
        "What is your return policy?",
        "Can I return something I bought?",
        "How many days do I have to return an item?",
        "I don't like what I ordered. Can I send it back?",
        "How do returns work?",
        "return policy?",
        "Do you accept returns on opened tea?",
        "Is there a time limit for returns?",
        "can i get my money back if i return it",
        "Could you explain how to return an order, please?",
    ), "You can return unused items within 30 days of delivery for a full refund. Start your return at " +
       SITE + "/returns to get a prepaid label; opened tea can only be returned if it is faulty."),
    Intent("refund_time", (
        "How long does a refund take?",
        "When will I get my refund?",
        "I sent my return back. When do I see the money?",
        "How soon are refunds processed?",
        "where is my refund",
        "How long until my refund shows up on my card?",
        "I returned an item last week. When will the refund arrive?",
        "Do refunds go back to my original payment method?",
        "refund timeline?",
    ), "We refund your original payment method within 5 business days of receiving your return. Your bank "
       "may take another 3 to 5 days to show it."),
    Intent("damaged_item", (
        "My {product} arrived broken.",
        "The {product} I ordered came damaged.",
        "What do I do if my {product} arrived cracked?",
        "my {product} was smashed in the box",
        "The {product} in my parcel is chipped. Can you help?",
        "I opened the package and the {product} was broken. What now?",
        "My {product} was damaged in shipping.",
    ), "I'm so sorry your {product} arrived damaged! Email a photo of it and the packaging to " + EMAIL +
       " within 7 days of delivery, and we'll send a free replacement or a full refund.",
     [{"product": item} for item in CARE], 22),
    Intent("exchange_item", (
        "Can I exchange my {item} for the {variant} one?",
        "I picked the wrong {kind} for my {item}. Can I swap it for {variant}?",
        "Is it possible to swap the {item} I bought for the {variant} one?",
        "I'd rather have the {item} in {variant}. Can I exchange it?",
        "exchange {item} for {variant}?",
        "Could I trade my {item} for the {variant} version, please?",
    ), "Of course! You can exchange your {item} for the {variant} one within 30 days of delivery, as long as "
       "it is unused. Start the exchange at " + SITE + "/returns and we'll ship the new one as soon as we "
       "scan your return.", VARIANT_SLOTS, 24),
    Intent("payment_methods", (
        "What payment methods do you accept?",
        "How can I pay for my order?",
        "Which cards do you take?",
        "What are my payment options?",
        "how do i pay",
        "What forms of payment are accepted on your website?",
        "Which ways of paying do you support?",
        "Could you tell me which payment methods you take, please?",
        "payment options?",
    ), "We accept Visa, Mastercard, American Express, PayPal, Apple Pay, Google Pay and Willow & Kiln gift "
       "cards. In our Riverton shop we also take cash."),
    Intent("payment_accepted", (
        "Do you accept {method}?",
        "Can I pay with {method}?",
        "Is {method} an option at checkout?",
        "do you take {method}",
        "Would it be possible to pay by {method}?",
        "I'd like to use {method}. Is that OK?",
    ), "{reply}", PAYMENT_SLOTS, 26),
    Intent("opening_hours", (
        "What are your opening hours?",
        "When is your shop open?",
        "What time do you open and close?",
        "opening hours?",
        "What hours is the Riverton store open?",
        "When can I visit your shop?",
        "Are you open on public holidays?",
        "What days of the week are you open?",
        "when r u open",
        "Could you tell me your store hours, please?",
    ), "Our Riverton shop is open Monday to Friday from 9 am to 6 pm and on Saturdays from 10 am to 5 pm. "
       "We're closed on Sundays and public holidays, but the online shop never closes."),
    Intent("open_on_day", (
        "Are you open on {day}?",
        "Is the shop open on {day}s?",
        "What time do you close on {day}?",
        "Can I visit the shop on {day}?",
        "open on {day}?",
        "What are your hours on {day}?",
        "I'd like to come by on {day}. Will you be open?",
    ), "{hours}", DAY_SLOTS, 24),
    Intent("store_location", (
        "Where is your shop?",
        "What's your address?",
        "Where can I find your store?",
        "Is there parking near the shop?",
        "How do I get to your shop by bus?",
        "where are you located",
        "Do you have a physical store I can visit?",
        "Could you give me directions to the shop, please?",
        "Where is the Riverton store exactly?",
    ), "Our shop and studio are at 14 Orchard Lane in Riverton, next to the old mill bridge. There's free "
       "street parking on Orchard Lane, and the number 6 bus stops right outside."),
    Intent("warranty", (
        "Is there a warranty on the {item}?",
        "What warranty comes with the {item}?",
        "How long is the {item} guaranteed for?",
        "My {item} has a defect. Is it under warranty?",
        "warranty on {item}?",
        "Does the {item} come with a guarantee?",
        "Could you tell me about the warranty for the {item}, please?",
    ), "{warranty}", ITEM_SLOTS, 24),
    Intent("product_care", (
        "How do I clean the {item}?",
        "Is the {item} dishwasher safe?",
        "How should I look after my {item}?",
        "Any care tips for the {item}?",
        "can the {item} go in the dishwasher",
        "What's the best way to wash the {item}?",
        "How do I take care of my new {item}?",
    ), "{care}", ITEM_SLOTS, 24),
    Intent("brewing_guide", (
        "How do I brew {tea}?",
        "What water temperature should I use for {tea}?",
        "How long should I steep {tea}?",
        "Any tips for making a good cup of {tea}?",
        "how to make {tea}",
        "What's the right way to brew your {tea}?",
        "How hot should the water be for {tea}, and for how long?",
    ), "For {tea}, use one teaspoon (about 2.5 g) per cup with water at {temp} degrees Celsius and steep it "
       "for {time}. Steep a little longer for a stronger cup.", TEA_SLOTS, 28),
    Intent("caffeine", (
        "Does {tea} have caffeine?",
        "Is {tea} caffeine-free?",
        "How much caffeine is in {tea}?",
        "Can I drink {tea} before bed, or does it have caffeine?",
        "caffeine in {tea}?",
        "I'm avoiding caffeine. Is {tea} OK for me?",
    ), "{caffeine}", TEA_SLOTS, 24),
    Intent("restock", (
        "When will the {product} be back in stock?",
        "The {product} is sold out. Will you get more?",
        "Are you restocking the {product}?",
        "{product} out of stock?",
        "I can't order the {product}, it says unavailable. When is it coming back?",
        "Can I get notified when the {product} is available again?",
    ), "Sorry, the {product} sells out quickly! Click 'Notify me' on its product page and we'll email you "
       "as soon as it's back; most items return within two to three weeks.", PRODUCT_SLOTS, 24),
    Intent("discounts", (
        "Do you have any discounts?",
        "Is there a discount code for new customers?",
        "Are there any promotions right now?",
        "Do you ever have sales?",
        "any coupon codes?",
        "How can I save money on my first order?",
        "When is your next sale?",
        "Do you offer student discounts?",
        "Could you tell me about any current offers, please?",
    ), "New customers get 10% off their first order with the code WELCOME10, and Kiln Club members earn "
       "points on every purchase. We also hold a sale twice a year, in January and July."),
    Intent("promo_code", (
        "My code {code} isn't working.",
        "Why won't {code} apply at checkout?",
        "The discount code {code} says it's invalid.",
        "{code} doesn't work",
        "I tried to use {code} but nothing happened. Why?",
        "Is the code {code} still valid?",
    ), "{reason}", CODE_SLOTS, 22),
    Intent("gift_cards", (
        "Do you sell gift cards?",
        "Can I buy a gift voucher?",
        "Do your gift cards expire?",
        "What amounts do gift cards come in?",
        "gift cards?",
        "I'd like to send a gift card to a friend. How does it work?",
        "Can a gift card be used in the shop as well as online?",
        "Could you tell me about your gift cards, please?",
    ), "Yes! Our digital gift cards come in $25, $50, $100 and $200 and never expire. We email them on the "
       "date you choose, and they work online and in our Riverton shop."),
    Intent("gift_card_balance", (
        "How do I check my gift card balance?",
        "How much is left on my gift card?",
        "Can I see the balance of a gift voucher?",
        "gift card balance",
        "I used part of my gift card. Where can I see what's left?",
        "Is there a way to check how much money is on my gift card?",
        "What happens to the rest of my gift card balance?",
    ), "Enter your gift card code at " + SITE + "/giftcard to see its balance, or ask us in the shop. Any "
       "unused balance stays on the card for next time."),
    Intent("loyalty_points", (
        "Do you have a loyalty program?",
        "How do Kiln Club points work?",
        "How many points do I earn per dollar?",
        "What can I do with my loyalty points?",
        "loyalty points?",
        "Is it free to join your rewards club?",
        "How do I redeem my points?",
        "Could you explain the Kiln Club, please?",
    ), "Kiln Club is free to join: you earn one point for every dollar you spend, and every 100 points gives "
       "you $5 off. Members also get early access to our sales."),
    Intent("gift_wrapping", (
        "Do you offer gift wrapping?",
        "Can you wrap my order as a present?",
        "Can I add a gift message?",
        "How much is gift wrap?",
        "gift wrap?",
        "It's a birthday present. Can you hide the price?",
        "Is it possible to have the order gift wrapped, please?",
        "Can I send a gift directly to someone else?",
    ), "Yes! Add gift wrapping at checkout for $4 per order; we wrap everything in recycled paper with a "
       "handwritten card. Prices are never shown on the packing slip of a gift order."),
    Intent("customs_duties", (
        "Will I pay customs fees on an order to {country}?",
        "Are import taxes included for orders shipped to {country}?",
        "Do I have to pay duties if I live in {country}?",
        "customs charges for {country}?",
        "Is VAT or import tax included when you ship to {country}?",
        "Could there be extra fees on delivery to {country}?",
    ), "Orders shipped to {country} may be charged import duties and taxes on arrival. They are set by the "
       "customs office and paid by the recipient, so they are not included in our prices.", COUNTRY_SLOTS, 20),
    Intent("contact", (
        "How can I contact you?",
        "What's your phone number?",
        "Is there an email address for customer service?",
        "How do I reach a real person?",
        "contact details?",
        "Do you have live chat?",
        "When is customer service available?",
        "How quickly do you answer emails?",
        "I need to talk to someone about my order. How do I get in touch?",
    ), "You can reach us at " + EMAIL + " or on " + PHONE + ", Monday to Friday from 9 am to 5 pm. Live chat "
       "on our website is open during the same hours, and we answer emails within one business day."),
    Intent("wholesale", (
        "Do you sell wholesale?",
        "I run a cafe. Can I buy your tea in bulk?",
        "Do you offer trade prices for shops?",
        "Is there a minimum order for wholesale?",
        "wholesale?",
        "Can I stock your mugs in my store?",
        "Do you supply restaurants and tea rooms?",
        "Could you send me your wholesale price list, please?",
    ), "We love working with cafes and shops! Wholesale orders start at $300, and you can ask for our trade "
       "price list at trade@willowandkiln.example."),
    Intent("password_reset", (
        "I forgot my password.",
        "How do I reset my password?",
        "I can't log in to my account.",
        "forgot password",
        "The password reset email never arrived.",
        "How can I get back into my account?",
        "Could you help me reset my account password, please?",
    ), "Click 'Forgot password' on the sign-in page and we'll email you a reset link. If it doesn't arrive "
       "within a few minutes, check your spam folder or write to " + EMAIL + "."),
    Intent("delivery_date", (
        "I placed order {order} on {date}. When will it get to {city}?",
        "Order {order} was placed on {date}; when should it arrive in {city}?",
        "I ordered on {date} (order {order}). How long until it reaches {city}?",
        "when will order {order} from {date} arrive in {city}",
        "Could you tell me when order {order}, placed {date}, will be delivered to {city}?",
    ), "Order {order}, placed on {date}, should reach {city} in {days} after it leaves our studio. We'll email "
       "you a tracking link on the day it ships.", DELIVERY_SLOTS, 44),
    Intent("store_pickup", (
        "Can I collect order {order} from your shop?",
        "I'd like to pick up order {order} in person.",
        "Is it possible to pick up {order} instead of having it shipped?",
        "pick up order {order} in store?",
        "Could I come by the shop to collect order {order}, please?",
    ), "Yes, order {order} can be collected for free from our Riverton shop at 14 Orchard Lane. Wait for the "
       "email saying it's ready, then bring the order number with you.", PICKUP_SLOTS, 30),
    Intent("product_price", (
        "How much is the {product}?",
        "What does the {product} cost?",
        "What's the price of your {product}?",
        "price of the {product}?",
        "Could you tell me how much the {product} costs, please?",
    ), "The {product} costs {price}. Orders over $50 ship free within the US.", PRICE_SLOTS, 24),
    Intent("engraving", (
        "Can you engrave the name {name} on a {item}?",
        "I'd like a {item} with {name} engraved on it. Is that possible?",
        "Do you personalise the {item}? I'd like it to say {name}.",
        "engrave {name} on a {item}?",
        "Could you put the name {name} on a {item} for me, please?",
    ), "Yes, we can engrave \"{name}\" on the {item} for $8. Engraved pieces leave our studio 2 business days "
       "later and can only be returned if they are faulty.", ENGRAVE_SLOTS, 30),
)

OPENERS = ("",) * 6 + ("Hi, ", "Hello, ", "Hi there! ", "Hey, ", "Good morning, ", "Quick question: ")
CLOSERS = ("",) * 6 + (" Thanks!", " Thank you.", " Thanks in advance.", " Cheers!")


def _question(template: str, slots: dict[str, str], opener: str, closer: str) -> str:
    """The filled question: after "Hi, " the first word loses its capital (unless it is "I" or a slot), and
    a casual question with no final punctuation takes no "Thanks!"."""
    if not template.endswith(("?", ".", "!")):
        closer = ""
    if opener.endswith((", ", ": ")) and not template.startswith(("I ", "I'", "{")):
        template = template[0].lower() + template[1:]
    return opener + template.format(**slots) + closer


def make_records(seed: int = 0) -> list[dict[str, str]]:
    """Every intent's pairs (slot values taken in turn, so each appears), shuffled once, ids in file order."""
    rng = random.Random(seed)
    records, seen = [], set()
    for intent in INTENTS:
        slots = list(intent.slots)
        rng.shuffle(slots)
        for i in range(intent.count):
            values = slots[i % len(slots)]
            for _attempt in range(1000):  # a new template/opener/closer until the question is new
                question = _question(rng.choice(intent.questions), values, rng.choice(OPENERS),
                                     rng.choice(CLOSERS))
                if question not in seen:
                    break
            else:
                raise RuntimeError(f"intent {intent.name}: too few paraphrases for {intent.count} pairs.")
            seen.add(question)
            records.append({"intent": intent.name, "question": question,
                            "answer": intent.answer.format(**values)})
    rng.shuffle(records)
    return [{"id": f"qa-{i:04d}", **record} for i, record in enumerate(records, 1)]


def to_jsonl(records: list[dict[str, str]]) -> str:
    """One JSON object per line, keys in a fixed order, ASCII only."""
    return "".join(json.dumps(record, ensure_ascii=True) + "\n" for record in records)


def main() -> int:
    records = make_records()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(to_jsonl(records), encoding="utf-8")
    print(f"wrote {len(records)} pairs, {len(INTENTS)} intents, {OUT.stat().st_size:,} bytes to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
