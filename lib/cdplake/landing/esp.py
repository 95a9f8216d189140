"""Email as the SendGrid event webhook reports it: campaigns to the subscriber list and
order confirmations, each send a chain of processed -> delivered/bounce -> open/click...
"""

from __future__ import annotations

import base64
import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from cdplake.landing.catalog import APPLE_PROXY_USER_AGENT, CAMPAIGN_THEMES, MAIL_CLIENT_USER_AGENTS, SHOP_URL
from cdplake.landing.noise import messy_email
from cdplake.landing.orders import Order
from cdplake.landing.people import Person
from cdplake.landing.records import RecordSink
from cdplake.landing.timeline import Window, epoch

_UNSUBSCRIBE_GROUP = 21042


@dataclass(frozen=True)
class _Send:
    person: Person
    address: str
    category: str
    when: dt.datetime
    message_id: str
    transactional: bool


class EmailSimulator:
    """Writes the `email` feed; remembers who unsubscribed so the CRM can catch up."""

    def __init__(self, rng: random.Random, window: Window, sink: RecordSink) -> None:
        self.rng = rng
        self.window = window
        self.sink = sink
        self.unsubscribed: dict[str, dt.datetime] = {}
        self._bounced: set[str] = set()
        self._list_spelling: dict[str, str] = {}
        self._keeps_old_address: dict[str, bool] = {}

    def run(self, persons: list[Person], orders: list[Order]) -> dict[str, dt.datetime]:
        """Simulate every send; returns person_id -> when they left the list."""
        confirmations = sorted(
            (o for o in orders if o.channel == "web" and o.customer_email), key=lambda o: o.when
        )
        pending = list(confirmations)
        for when, category in self._campaigns():
            while pending and pending[0].when < when:
                self._confirmation(pending.pop(0))
            for person in persons:
                for address in self._list_addresses(person, when):
                    self._send(
                        person, address, category, when + dt.timedelta(seconds=self.rng.randrange(600)), False
                    )
        for order in pending:
            self._confirmation(order)
        return self.unsubscribed

    def _campaigns(self) -> list[tuple[dt.datetime, str]]:
        """A campaign every three days, mid-morning UK time."""
        out = []
        for offset in range(1, self.window.days, 3):
            day = self.window.first_day + dt.timedelta(days=offset)
            theme = CAMPAIGN_THEMES[(offset // 3) % len(CAMPAIGN_THEMES)]
            when = dt.datetime.combine(day, dt.time(9, 0), dt.timezone.utc)
            out.append((when, f"{theme}-{day:%Y-%m-%d}"))
        return out

    def _list_addresses(self, person: Person, when: dt.datetime) -> list[str]:
        """The address(es) the list holds for a person at ``when``.

        After an email change the new address joins; half of the time nobody removes the old
        one, which then hard-bounces (once) and is dropped by the ESP from then on.
        """
        if not person.email_list or person.person_id in self.unsubscribed:
            return []
        if person.subscribed_at is not None and person.subscribed_at > when:
            return []
        current = self._spelling(person, person.email_at(when))
        addresses = [current]
        old = person.previous_email
        if old and person.email_changed_at and when >= person.email_changed_at and self._keeps_old(person):
            addresses.append(self._spelling(person, old))
        return addresses

    def _keeps_old(self, person: Person) -> bool:
        if person.person_id not in self._keeps_old_address:
            self._keeps_old_address[person.person_id] = self.rng.random() < 0.5
        return self._keeps_old_address[person.person_id]

    def _spelling(self, person: Person, email: str) -> str:
        """The list keeps whatever case the person signed up with (ESPs trim, not lower-case)."""
        if email not in self._list_spelling:
            self._list_spelling[email] = messy_email(self.rng, email, case_rate=0.12, space_rate=0.0)
        return self._list_spelling[email]

    def _confirmation(self, order: Order) -> None:
        address = (order.customer_email or "").strip()
        if address:
            self._send(
                order.person, address, "order_confirmation", order.when + dt.timedelta(seconds=30), True
            )

    def _token(self, n: int = 22) -> str:
        """A URL-safe random id like SendGrid's (16 random bytes give 22 characters)."""
        raw = self.rng.getrandbits(8 * 16).to_bytes(16, "big")
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")[:n]

    def _send(
        self, person: Person, address: str, category: str, when: dt.datetime, transactional: bool
    ) -> None:
        if not self.window.contains(when):
            return
        message_id = f"{self._token()}.recvd-{self.rng.randrange(10**5):05d}-{self._token(6)}-1-0"
        send = _Send(person, address, category, when, message_id, transactional)
        self._event(send, "processed", when)
        dead = (
            person.previous_email is not None
            and address.lower() == person.previous_email
            and (person.email_changed_at is not None and when >= person.email_changed_at)
        )
        key = address.lower()
        if key in self._bounced:
            self._event(send, "dropped", when + dt.timedelta(seconds=1), reason="Bounced Address")
            return
        if dead:
            self._bounced.add(key)
            reason = "550 5.1.1 The email account that you tried to reach does not exist."
            self._event(
                send, "bounce", when + dt.timedelta(seconds=4), type="bounce", status="5.1.1", reason=reason
            )
            return
        roll = self.rng.random()
        if roll < 0.006:
            reason = "550 5.7.1 Message rejected due to local policy"
            self._event(
                send, "bounce", when + dt.timedelta(seconds=3), type="blocked", status="5.7.1", reason=reason
            )
            return
        delivered = when + dt.timedelta(seconds=self.rng.uniform(1, 30))
        if roll < 0.02:
            self._event(send, "deferred", delivered, response="451 4.7.1 Try again later", attempt="1")
            delivered += dt.timedelta(minutes=self.rng.randrange(5, 90))
        self._event(send, "delivered", delivered, response="250 2.0.0 OK")
        self._engagement(send, delivered)

    def _engagement(self, send: _Send, delivered: dt.datetime) -> None:
        rng, person = self.rng, send.person
        if person.apple_mail:
            # Apple Mail Privacy Protection prefetches images: an "open" seconds after delivery.
            self._open(send, delivered + dt.timedelta(seconds=rng.uniform(2, 25)), machine=True)
        if rng.random() >= (0.6 if send.transactional else 0.28):
            return
        opened = delivered + dt.timedelta(hours=rng.expovariate(1 / 6))
        self._open(send, opened, machine=False)
        if rng.random() < 0.25:
            url = f"{SHOP_URL}/new-in?utm_source=sendgrid&utm_medium=email&utm_campaign={send.category}"
            self._event(
                send, "click", opened + dt.timedelta(seconds=rng.uniform(3, 120)), url=url, **_client(rng)
            )
        if send.transactional:
            return
        roll = rng.random()
        leave = opened + dt.timedelta(seconds=rng.uniform(10, 300))
        if roll < 0.02:
            self._leave(send, "unsubscribe", leave)
        elif roll < 0.03:
            self._leave(send, "group_unsubscribe", leave, asm_group_id=_UNSUBSCRIBE_GROUP)
        elif roll < 0.034:
            self._leave(send, "spamreport", leave)

    def _open(self, send: _Send, when: dt.datetime, machine: bool) -> None:
        if machine:
            ua = {
                "useragent": APPLE_PROXY_USER_AGENT,
                "ip": f"17.{self.rng.randrange(256)}.{self.rng.randrange(256)}.1",
            }
        else:
            ua = _client(self.rng)
        self._event(send, "open", when, sg_machine_open=machine, **ua)

    def _leave(self, send: _Send, event: str, when: dt.datetime, **extra: Any) -> None:
        if self.window.contains(when) and send.person.person_id not in self.unsubscribed:
            self.unsubscribed[send.person.person_id] = when
            self._event(send, event, when, **extra)

    def _event(self, send: _Send, event: str, when: dt.datetime, **extra: Any) -> None:
        if not self.window.contains(when):
            return  # has not happened yet when the demo ends
        payload: dict[str, Any] = {
            "email": send.address,
            "timestamp": epoch(when),
            "event": event,
            "sg_event_id": self._token(),
            "sg_message_id": send.message_id,
            "category": send.category,
        }
        if event in ("processed", "delivered", "bounce", "deferred"):
            payload["smtp-id"] = f"<{send.message_id[:22]}@geopod-ismtpd-4.sendgrid.net>"
        payload.update(extra)
        self.sink.add_json("email", when, send.person.person_id, payload)


def _client(rng: random.Random) -> dict[str, str]:
    ip = f"{rng.choice((81, 86, 92, 109, 176))}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return {"useragent": rng.choice(MAIL_CLIENT_USER_AGENTS), "ip": ip}
