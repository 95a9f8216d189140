"""Web and in-store orders: planned once, rendered to the `orders` feed, and shared with
the web events (``Order Completed``) and the email feed (order confirmations).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from cdplake.landing.catalog import PRODUCTS, STORES, WEB_STORE_ID, Product
from cdplake.landing.noise import messy_email, messy_name, messy_phone, typo
from cdplake.landing.people import Person
from cdplake.landing.records import RecordSink
from cdplake.landing.timeline import Window, iso_local, iso_z

_CURRENCY = {"GB": "GBP", "IE": "EUR", "DE": "EUR", "FR": "EUR", "US": "USD"}
# Shoppers type their own number in many ways; staff at the till mostly use national format.
_WEB_PHONE_STYLES = {"e164": 2, "international": 3, "national": 4, "national_compact": 3}
_POS_PHONE_STYLES = {"national": 6, "national_compact": 3, "double_zero": 1}


@dataclass(frozen=True)
class Order:
    """One order and the customer details exactly as they were typed into it."""

    order_id: str
    person: Person
    channel: str
    store_id: str
    when: dt.datetime
    currency: str
    status: str
    items: tuple[tuple[Product, int], ...]
    customer_name: str
    customer_email: str | None
    customer_phone: str | None

    @property
    def total(self) -> float:
        return round(sum(p.price * q for p, q in self.items), 2)


def _binomial(rng: random.Random, n: int, p: float) -> int:
    return sum(rng.random() < p for _ in range(n))


class OrderBook:
    """Plans every order of the demo window, web and POS, with unique order ids."""

    def __init__(self, rng: random.Random, window: Window) -> None:
        self.rng = rng
        self.window = window
        self._web_seq = 0
        self._pos_seq: dict[str, int] = {}

    def plan(self, persons: list[Person]) -> list[Order]:
        """All orders, person by person; web buyers order about monthly, POS buyers a bit more."""
        orders: list[Order] = []
        for person in persons:
            if person.web_buyer:
                for _ in range(max(1, _binomial(self.rng, self.window.days, 0.03))):
                    orders.append(self._web_order(person, self.window.random_time(self.rng)))
            if person.pos:
                for _ in range(max(1, _binomial(self.rng, self.window.days, 0.04))):
                    orders.append(self._pos_order(person, self._store_hours_time()))
        return orders

    def _store_hours_time(self) -> dt.datetime:
        when = self.window.random_time(self.rng)
        # Tills are open 09:00-20:00; fold night-time draws into the afternoon.
        return when if 9 <= when.hour < 20 else when.replace(hour=9 + when.hour % 11)

    def _items(self) -> tuple[tuple[Product, int], ...]:
        products = self.rng.sample(PRODUCTS, self.rng.choices((1, 2, 3, 4), weights=(45, 30, 15, 10))[0])
        return tuple((p, self.rng.choices((1, 2, 3), weights=(85, 12, 3))[0]) for p in products)

    def _status(self) -> str:
        return "refunded" if self.rng.random() < 0.04 else "completed"

    def _web_order(self, person: Person, when: dt.datetime) -> Order:
        rng = self.rng
        self._web_seq += 1
        first, last = messy_name(rng, person.first_name, person.last_name, typo_rate=0.02, case_rate=0.06)
        phone = None if rng.random() < 0.2 else messy_phone(rng, person.phones, _WEB_PHONE_STYLES)
        return Order(
            order_id=f"W{100000 + self._web_seq}",
            person=person,
            channel="web",
            store_id=WEB_STORE_ID,
            when=when,
            currency=_CURRENCY[person.country],
            status=self._status(),
            items=self._items(),
            customer_name=f"{first} {last}",
            customer_email=messy_email(rng, person.email_at(when)),
            customer_phone=phone,
        )

    def _pos_order(self, person: Person, when: dt.datetime) -> Order:
        rng = self.rng
        home = "S010" if person.country == "IE" else None
        store_id = home or rng.choice(STORES[:9])[0]
        self._pos_seq[store_id] = self._pos_seq.get(store_id, 0) + 1
        return Order(
            order_id=f"{store_id}-{self._pos_seq[store_id]:06d}",
            person=person,
            channel="pos",
            store_id=store_id,
            when=when,
            currency="EUR" if store_id == "S010" else "GBP",
            status=self._status(),
            items=self._items(),
            customer_name=self._till_name(person),
            customer_email=self._till_email(person, when),
            customer_phone=None
            if rng.random() < 0.35
            else messy_phone(rng, person.phones, _POS_PHONE_STYLES),
        )

    def _till_name(self, person: Person) -> str:
        """Staff type names fast: nicknames, swaps, initials, caps lock, ``Last, First``."""
        rng = self.rng
        first, last = messy_name(
            rng,
            person.first_name,
            person.last_name,
            typo_rate=0.06,
            nickname_rate=0.15,
            swap_rate=0.04,
            case_rate=0.12,
        )
        style = rng.random()
        if style < 0.08:
            return f"{first.strip()[:1]} {last}"
        if style < 0.14:
            return f"{last}, {first}"
        return f"{first} {last}"

    def _till_email(self, person: Person, when: dt.datetime) -> str | None:
        roll = self.rng.random()
        if roll < 0.35:
            return None  # not asked for at the till
        if roll < 0.42:
            return ""
        email = person.email_at(when)
        if self.rng.random() < 0.04:
            local, _, domain = email.partition("@")
            email = f"{typo(self.rng, local)}@{domain}"
        return messy_email(self.rng, email, case_rate=0.15)


def render_orders(sink: RecordSink, orders: list[Order]) -> None:
    """Write every order to the `orders` feed.

    Web orders are never made deliberately bad: their ids must match the web events.
    """
    for order in orders:
        person = order.person
        if order.channel == "web":
            ordered_at = iso_z(order.when) if person.country == "US" else iso_local(order.when, person.tz)
        else:
            ordered_at = iso_local(
                order.when, "Europe/Dublin" if order.store_id == "S010" else "Europe/London"
            )
        payload: dict[str, Any] = {
            "order_id": order.order_id,
            "store_id": order.store_id,
            "channel": order.channel,
            "ordered_at": ordered_at,
            "currency": order.currency,
            "status": order.status,
            "customer": {
                "name": order.customer_name,
                "email": order.customer_email,
                "phone": order.customer_phone,
            },
            "line_items": [
                {
                    "sku": p.sku,
                    "product_id": p.product_id,
                    "name": p.name,
                    "category": p.category,
                    "quantity": q,
                    "unit_price": p.price,
                }
                for p, q in order.items
            ],
            "total": order.total,
        }
        sink.add_json("orders", order.when, person.person_id, payload, corruptible=order.channel == "pos")
