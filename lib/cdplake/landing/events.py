"""Web behaviour as Segment Spec messages: sessions of page/track calls per device,
anonymous until a login or sign-up (identify, sometimes alias), checkouts that end in the
same ``Order Completed`` the orders feed knows about.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

from cdplake.landing.catalog import BROWSER_USER_AGENTS, PRODUCTS, SHOP_URL, Product
from cdplake.landing.noise import messy_email, messy_name
from cdplake.landing.orders import Order
from cdplake.landing.people import Person
from cdplake.landing.records import RecordSink
from cdplake.landing.timeline import Window, clamp, iso_local, iso_z

_CLIENT_LIB = {"name": "analytics.js", "version": "next-1.72.0"}
# Order Completed is sent by the shop's backend, which stamps local time with an offset.
_SERVER_LIB = {"name": "analytics-python", "version": "2.3.4"}
_ISP_FIRST_OCTETS = (31, 81, 82, 86, 90, 92, 109, 151, 176, 212)
_REFERRERS = (
    "https://www.google.com/",
    "https://www.google.co.uk/",
    "",
    "",
    "https://www.instagram.com/",
    "https://l.facebook.com/",
)


@dataclass
class _Device:
    anonymous_id: str
    user_agent: str
    ip: str
    local_timestamps: bool  # else UTC "Z" like Date.toISOString()
    login_session: int | None  # index (on this device) of the session where the user logs in
    sessions: list[tuple[dt.datetime, Order | None]] = field(default_factory=list)


@dataclass
class _Session:
    """Mutable state while one session's messages are written."""

    person: Person
    device: _Device
    clock: dt.datetime
    user_id: str | None
    page_url: str  # the current page, the referrer of the next one


class EventSimulator:
    """Writes the `events` feed for every web person."""

    def __init__(self, rng: random.Random, window: Window, sink: RecordSink) -> None:
        self.rng = rng
        self.window = window
        self.sink = sink

    def run(self, persons: list[Person], orders: list[Order]) -> None:
        by_person: dict[str, list[Order]] = {}
        for order in orders:
            if order.channel == "web":
                by_person.setdefault(order.person.person_id, []).append(order)
        for person in persons:
            if person.web:
                self._person(person, by_person.get(person.person_id, []))

    # -- planning ---------------------------------------------------------------------

    def _person(self, person: Person, orders: list[Order]) -> None:
        rng = self.rng
        devices = [self._device(person, aid) for aid in person.anonymous_ids]
        rate = 0.3 if person.web_buyer else 0.15
        starts = [
            self.window.random_time(rng)
            for _ in range(max(1, sum(rng.random() < rate for _ in range(self.window.days))))
        ]
        visits: list[tuple[dt.datetime, Order | None]] = [(s, None) for s in starts]
        visits += [(o.when - dt.timedelta(minutes=rng.randrange(15, 40)), o) for o in orders]
        for start, order in sorted(visits, key=lambda v: v[0]):
            device = devices[0] if len(devices) == 1 or rng.random() < 0.65 else devices[1]
            device.sessions.append((clamp(start, self.window), order))
        for i, device in enumerate(devices):
            device.login_session = self._login_session(person, device, first_device=i == 0)
        changed_email_sent = False
        for device in devices:
            for index, (start, order) in enumerate(device.sessions):
                logged_in = device.login_session is not None and index > device.login_session
                session = _Session(
                    person, device, start, person.user_id if logged_in else None, self._referrer()
                )
                changed_email_sent |= self._session(
                    session, index == device.login_session, order, changed_email_sent
                )

    def _referrer(self) -> str:
        """Where a visit comes from: search, social, a bookmark (empty) or a campaign link."""
        return self.rng.choice(_REFERRERS)

    def _device(self, person: Person, anonymous_id: str) -> _Device:
        rng = self.rng
        ip = f"{rng.choice(_ISP_FIRST_OCTETS)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        local = person.country == "US" or rng.random() < 0.3
        return _Device(anonymous_id, rng.choice(BROWSER_USER_AGENTS), ip, local, None)

    def _login_session(self, person: Person, device: _Device, first_device: bool) -> int | None:
        """Where an account holder logs in on this device; earlier sessions stay anonymous."""
        if person.user_id is None or not device.sessions:
            return None
        if not first_device and self.rng.random() < 0.3:
            return None  # never logs in on the second device
        if person.account_created_at is not None:
            # Signs up during the window: the first visit after the account exists.
            for index, (start, _) in enumerate(device.sessions):
                if start >= person.account_created_at:
                    return index
            return len(device.sessions) - 1
        if self.rng.random() < 0.35:
            return 0
        return self.rng.randrange(len(device.sessions))

    # -- one session ------------------------------------------------------------------

    def _session(self, s: _Session, logs_in: bool, order: Order | None, changed_email_sent: bool) -> bool:
        """Write one visit; returns whether an identify with a changed email was sent."""
        rng = self.rng
        self._page(s, "/", "Home")
        sent_change = False
        if logs_in:
            signs_up = s.person.account_created_at is not None
            self._page(s, "/account/register" if signs_up else "/account/login", "Account")
            if signs_up and rng.random() < 0.6:
                self._alias(s)
            s.user_id = s.person.user_id
            self._identify(s, with_user=True)
        elif (
            s.user_id
            and not changed_email_sent
            and s.person.previous_email
            and s.person.email_changed_at
            and s.clock > s.person.email_changed_at
        ):
            self._page(s, "/account/details", "Your details")
            self._identify(s, with_user=True)  # the profile update carries the new address
            sent_change = True
        for product in rng.sample(PRODUCTS, rng.randrange(1, 6)):
            self._view(s, product)
        if order is not None:
            self._checkout(s, order)
        elif rng.random() < 0.3:
            self._abandon_cart(s)
        return sent_change

    def _tick(self, s: _Session, lo: int = 4, hi: int = 90) -> dt.datetime:
        s.clock = clamp(s.clock + dt.timedelta(seconds=self.rng.uniform(lo, hi)), self.window)
        return s.clock

    def _view(self, s: _Session, product: Product) -> None:
        path = f"/p/{product.product_id}"
        self._page(s, path, product.name)
        self._track(s, "Product Viewed", {**_product_props(product), "url": SHOP_URL + path})

    def _abandon_cart(self, s: _Session) -> None:
        """Add to cart and leave: the cart abandoners segments look for."""
        product = self.rng.choice(PRODUCTS)
        self._track(s, "Product Added", {**_product_props(product), "quantity": 1})
        if self.rng.random() < 0.15:
            self._track(s, "Product Removed", {**_product_props(product), "quantity": 1})
        elif self.rng.random() < 0.35:
            self._page(s, "/checkout", "Checkout")
            self._track(
                s,
                "Checkout Started",
                {"value": product.price, "currency": "GBP", "products": [_line(product, 1)]},
            )

    def _checkout(self, s: _Session, order: Order) -> None:
        for product, qty in order.items:
            self._track(s, "Product Added", {**_product_props(product), "quantity": qty})
        products = [_line(p, q) for p, q in order.items]
        self._page(s, "/checkout", "Checkout")
        self._track(
            s,
            "Checkout Started",
            {
                "order_id": order.order_id,
                "value": order.total,
                "currency": order.currency,
                "products": products,
            },
        )
        if s.user_id is None:
            # Guest checkout: the typed email reaches Segment as traits on the anonymous id.
            self._identify(s, with_user=False, email=order.customer_email)
        props = {
            "order_id": order.order_id,
            "total": order.total,
            "revenue": order.total,
            "currency": order.currency,
            "products": products,
        }
        s.clock = order.when  # the backend stamps the order's own time
        self._emit(
            s, "track", {"event": "Order Completed", "properties": props}, server=True, corruptible=False
        )

    # -- messages ---------------------------------------------------------------------

    def _page(self, s: _Session, path: str, title: str) -> None:
        url = SHOP_URL + path
        props = {"url": url, "path": path, "title": f"{title} | CDP Shop", "referrer": s.page_url}
        s.page_url = url
        self._tick(s)
        self._emit(s, "page", {"name": title, "properties": props})

    def _track(self, s: _Session, event: str, props: dict[str, Any]) -> None:
        self._tick(s, 2, 40)
        self._emit(s, "track", {"event": event, "properties": props})

    def _identify(self, s: _Session, *, with_user: bool, email: str | None = None) -> None:
        rng, p = self.rng, s.person
        first, last = messy_name(rng, p.first_name, p.last_name, typo_rate=0.02, case_rate=0.08)
        traits: dict[str, Any] = {
            "email": email if email is not None else messy_email(rng, p.email_at(s.clock)),
            "firstName": first,
            "lastName": last,
        }
        if rng.random() < 0.4:
            traits["phone"] = rng.choice((p.phones["national"], p.phones["e164"], p.phones["international"]))
        self._tick(s, 2, 20)
        body: dict[str, Any] = {"traits": traits}
        self._emit(s, "identify", body, user_id=s.user_id if with_user else None)

    def _alias(self, s: _Session) -> None:
        self._tick(s, 1, 5)
        self._emit(s, "alias", {"previousId": s.device.anonymous_id}, user_id=s.person.user_id)

    def _emit(
        self,
        s: _Session,
        kind: str,
        body: dict[str, Any],
        *,
        user_id: str | None = None,
        server: bool = False,
        corruptible: bool = True,
    ) -> None:
        rng, device, when = self.rng, s.device, s.clock
        message: dict[str, Any] = {"messageId": f"ajs-next-{rng.getrandbits(128):032x}", "type": kind}
        message.update({k: v for k, v in body.items() if k != "properties" and k != "traits"})
        uid = user_id if user_id is not None else s.user_id
        if uid:
            message["userId"] = uid
        message["anonymousId"] = device.anonymous_id
        for part in ("properties", "traits"):
            if part in body:
                message[part] = body[part]
        if server:
            message["context"] = {"library": _SERVER_LIB}
            message["timestamp"] = iso_local(when, "Europe/London")
        else:
            message["context"] = {
                "ip": device.ip,
                "userAgent": device.user_agent,
                "library": _CLIENT_LIB,
                "locale": s.person.locale.replace("_", "-"),
                "page": {"url": s.page_url},
            }
            message["timestamp"] = (
                iso_local(when, s.person.tz, millis=True) if device.local_timestamps else iso_z(when)
            )
        # Browsers batch and retry: sentAt trails the event by a moment, now and then by minutes.
        delay = rng.uniform(0.05, 2.0) if rng.random() < 0.97 else rng.uniform(60, 900)
        message["sentAt"] = iso_z(when + dt.timedelta(seconds=delay))
        self.sink.add_json("events", when, s.person.person_id, message, corruptible=corruptible)


def _product_props(product: Product) -> dict[str, Any]:
    return {
        "product_id": product.product_id,
        "sku": product.sku,
        "name": product.name,
        "category": product.category,
        "price": product.price,
        "currency": "GBP",
    }


def _line(product: Product, quantity: int) -> dict[str, Any]:
    return {
        "product_id": product.product_id,
        "sku": product.sku,
        "name": product.name,
        "category": product.category,
        "price": product.price,
        "quantity": quantity,
    }
