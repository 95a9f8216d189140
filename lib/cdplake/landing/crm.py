"""CRM contact exports: a full export on the first day, then every three days the contacts
created or updated since (changed email, opt-out, house move, tier change).
"""

from __future__ import annotations

import bisect
import datetime as dt
import random
from collections.abc import Callable

from cdplake.landing.catalog import LOYALTY_TIERS
from cdplake.landing.noise import (
    messy_country,
    messy_email,
    messy_name,
    messy_phone,
    messy_postcode,
    messy_street,
    pad,
)
from cdplake.landing.people import Address, Person
from cdplake.landing.records import RecordSink
from cdplake.landing.timeline import UTC, Window, iso_z

_PHONE_STYLES = {"national": 5, "e164": 2, "international": 2, "national_compact": 2, "double_zero": 1}
_EXPORT_EVERY_DAYS = 3
_EXPORT_HOUR = 2

Change = Callable[[dict[str, str]], None]


class CrmSimulator:
    """Writes the `crm` feed: one CSV export per export day.

    ``email_opt_in_at`` is when the consent last changed (the opt-in, or the opt-out that an
    unsubscribe in the email feed caused); empty for a contact who never opted in.
    """

    def __init__(self, rng: random.Random, window: Window, sink: RecordSink) -> None:
        self.rng = rng
        self.window = window
        self.sink = sink
        self._contact_ids: set[str] = set()
        days = list(range(0, window.days, _EXPORT_EVERY_DAYS))
        if days[-1] != window.days - 1:
            days.append(window.days - 1)
        self._exports = [
            dt.datetime.combine(window.first_day + dt.timedelta(days=d), dt.time(_EXPORT_HOUR), UTC)
            for d in days
        ]

    def run(self, persons: list[Person], unsubscribed: dict[str, dt.datetime]) -> None:
        """Export every CRM person's contact(s); ``unsubscribed`` comes from the email feed."""
        for person in persons:
            if not person.crm:
                continue
            self._contact(person, self._updates(person, unsubscribed.get(person.person_id)))
            # Some people get a second contact record at a till that could not find them.
            if self.rng.random() < 0.05:
                self._contact(person, [], sloppy=True)

    def _export_day(self, when: dt.datetime) -> dt.date | None:
        """The export that first carries a change made at ``when`` (None: after the last one)."""
        i = bisect.bisect_right(self._exports, when)
        return self._exports[i].date() if i < len(self._exports) else None

    def _new_id(self) -> str:
        while True:
            cid = f"C{self.rng.randrange(10**6, 10**7)}"
            if cid not in self._contact_ids:
                self._contact_ids.add(cid)
                return cid

    def _created_at(self) -> dt.datetime:
        if self.rng.random() < 0.8:
            return self.window.start - dt.timedelta(days=self.rng.uniform(1, 2000))
        return self.window.random_time(self.rng)

    def _contact(
        self, person: Person, updates: list[tuple[dt.datetime, Change]], sloppy: bool = False
    ) -> None:
        created = self._created_at()
        row = self._initial_row(person, created, sloppy)
        ordered = sorted(updates, key=lambda u: u[0])
        for _, change in (u for u in ordered if u[0] <= created):
            change(row)  # already true when the contact was created: no separate version
        versions = [(created, dict(row))]
        for when, change in (u for u in ordered if u[0] > created):
            change(row)
            row["updated_at"] = iso_z(when, millis=False)
            versions.append((when, dict(row)))
        for when, version in versions:
            day = self._export_day(when)
            if day is not None:
                self.sink.add_csv_row("crm", day, when, person.person_id, version)

    def _initial_row(self, person: Person, created: dt.datetime, sloppy: bool) -> dict[str, str]:
        rng = self.rng
        first, last = messy_name(
            rng,
            person.first_name,
            person.last_name,
            typo_rate=0.12 if sloppy else 0.03,
            nickname_rate=0.3 if sloppy else 0.05,
            swap_rate=0.05 if sloppy else 0.02,
            case_rate=0.08,
        )
        email = "" if rng.random() < (0.4 if sloppy else 0.08) else messy_email(rng, person.email_at(created))
        opt_in = person.email_list and (person.subscribed_at is None or person.subscribed_at <= created)
        row = {
            "contact_id": self._new_id(),
            "first_name": first,
            "last_name": last,
            "email": email,
            "phone": "" if rng.random() < 0.1 else messy_phone(rng, person.phones, _PHONE_STYLES),
            "date_of_birth": "" if rng.random() < 0.15 else person.date_of_birth.isoformat(),
            "loyalty_tier": rng.choices(("", *LOYALTY_TIERS), weights=(10, 45, 25, 15, 5))[0],
            "email_opt_in": "true" if opt_in else "false",
            "email_opt_in_at": iso_z(created - dt.timedelta(days=rng.uniform(0, 30)), millis=False)
            if opt_in
            else "",
            "updated_at": iso_z(created, millis=False),
        }
        self._set_address(row, person.address_at(created))
        return row

    def _set_address(self, row: dict[str, str], address: Address) -> None:
        row["address_line1"] = messy_street(self.rng, address.line1)
        row["city"] = pad(self.rng, address.city, 0.02)
        row["postcode"] = messy_postcode(self.rng, address.postcode)
        row["country"] = messy_country(self.rng, address.country)

    def _updates(
        self, person: Person, unsubscribed_at: dt.datetime | None
    ) -> list[tuple[dt.datetime, Change]]:
        """What happens to a contact during the window, as (when, change) pairs."""
        rng = self.rng
        lag = dt.timedelta(hours=rng.uniform(1, 48))  # back-office sync is not instant
        out: list[tuple[dt.datetime, Change]] = []
        if person.previous_email and person.email_changed_at:
            new_email = messy_email(rng, person.email)
            out.append((person.email_changed_at + lag, lambda r: r.update(email=new_email)))
        if person.previous_address and person.moved_at:
            new_address = person.address
            out.append((person.moved_at + lag, lambda r: self._set_address(r, new_address)))
        if unsubscribed_at is not None:
            stamp = iso_z(unsubscribed_at, millis=False)
            out.append(
                (unsubscribed_at + lag, lambda r: r.update(email_opt_in="false", email_opt_in_at=stamp))
            )
        if person.email_list and person.subscribed_at is not None:
            stamp = iso_z(person.subscribed_at, millis=False)
            out.append(
                (person.subscribed_at + lag, lambda r: r.update(email_opt_in="true", email_opt_in_at=stamp))
            )
        if rng.random() < 0.06:
            tier = rng.choice(LOYALTY_TIERS[1:])
            out.append((self.window.random_time(rng), lambda r: r.update(loyalty_tier=tier)))
        return out
