"""The true people behind the demo data: households, contact details, channels.

Everything a source later writes about a person is a noisy rendering of a :class:`Person`.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import uuid
from dataclasses import dataclass

import phonenumbers
from faker import Faker

from cdplake.landing.catalog import EMAIL_DOMAINS
from cdplake.landing.noise import ascii_fold, phone_styles
from cdplake.landing.timeline import Window

# locale -> (country, weight, time zones people there browse from)
LOCALES: dict[str, tuple[str, int, tuple[str, ...]]] = {
    "en_GB": ("GB", 85, ("Europe/London",)),
    "en_IE": ("IE", 5, ("Europe/Dublin",)),
    "en_US": ("US", 4, ("America/New_York", "America/Chicago", "America/Los_Angeles")),
    "de_DE": ("DE", 3, ("Europe/Berlin",)),
    "fr_FR": ("FR", 3, ("Europe/Paris",)),
}

# Mobile number prefixes (E.164) and how many digits follow, per country.
_PHONE_PLANS: dict[str, tuple[tuple[str, int], ...]] = {
    "GB": (("+4474", 8), ("+4475", 8), ("+4477", 8), ("+4478", 8), ("+4479", 8)),
    "IE": (("+35383", 7), ("+35385", 7), ("+35386", 7), ("+35387", 7)),
    "US": (("+1212", 7), ("+1312", 7), ("+1415", 7), ("+1617", 7), ("+1646", 7)),
    "DE": (("+49151", 8), ("+49160", 7), ("+49176", 8)),
    "FR": (("+336", 8),),
}


@dataclass(frozen=True)
class Archetype:
    """Which channels a kind of customer uses; floats are probabilities."""

    name: str
    weight: int
    web: bool = False
    web_buyer: float = 0.0
    account: float = 0.0
    email_list: float = 0.0
    crm: bool = False
    pos: float = 0.0


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype("omni", 30, web=True, web_buyer=0.8, account=0.9, email_list=0.9, crm=True, pos=0.4),
    Archetype("web_shopper", 20, web=True, web_buyer=0.9, account=0.7, email_list=0.6),
    Archetype("browser", 12, web=True, account=0.3, email_list=0.2),
    Archetype("store_loyal", 15, email_list=0.7, crm=True, pos=1.0),
    Archetype("email_only", 8, email_list=1.0),
    Archetype("crm_only", 7, crm=True),
    Archetype("pos_only", 8, pos=1.0),
)


@dataclass(frozen=True)
class Address:
    line1: str
    city: str
    postcode: str
    country: str


@dataclass(frozen=True)
class Person:
    """One true person and the ground truth of every identifier they own."""

    person_id: str
    household_id: str
    archetype: str
    locale: str
    tz: str
    first_name: str
    last_name: str
    date_of_birth: dt.date
    email: str
    previous_email: str | None
    email_changed_at: dt.datetime | None
    phone: str
    phones: dict[str, str]
    address: Address
    previous_address: Address | None
    moved_at: dt.datetime | None
    web: bool
    web_buyer: bool
    email_list: bool
    crm: bool
    pos: bool
    user_id: str | None
    account_created_at: dt.datetime | None
    anonymous_ids: tuple[str, ...]
    apple_mail: bool
    subscribed_at: dt.datetime | None

    @property
    def country(self) -> str:
        return self.address.country

    def email_at(self, when: dt.datetime) -> str:
        """The address the person used at ``when`` (old one before a change)."""
        if self.previous_email and self.email_changed_at and when < self.email_changed_at:
            return self.previous_email
        return self.email

    def address_at(self, when: dt.datetime) -> Address:
        if self.previous_address and self.moved_at and when < self.moved_at:
            return self.previous_address
        return self.address

    def row(self) -> dict[str, str]:
        """The person as a flat row of ``persons.csv``."""
        prev = self.previous_address
        return {
            "person_id": self.person_id,
            "household_id": self.household_id,
            "archetype": self.archetype,
            "locale": self.locale,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "date_of_birth": self.date_of_birth.isoformat(),
            "email": self.email,
            "previous_email": self.previous_email or "",
            "phone": self.phone,
            "address_line1": self.address.line1,
            "city": self.address.city,
            "postcode": self.address.postcode,
            "country": self.address.country,
            "previous_address_line1": prev.line1 if prev else "",
            "previous_postcode": prev.postcode if prev else "",
            "user_id": self.user_id or "",
            "anonymous_ids": "|".join(self.anonymous_ids),
        }


PERSON_COLUMNS: tuple[str, ...] = (
    "person_id",
    "household_id",
    "archetype",
    "locale",
    "first_name",
    "last_name",
    "date_of_birth",
    "email",
    "previous_email",
    "phone",
    "address_line1",
    "city",
    "postcode",
    "country",
    "previous_address_line1",
    "previous_postcode",
    "user_id",
    "anonymous_ids",
)


def random_uuid(rng: random.Random) -> str:
    """A UUID4 drawn from the seeded RNG (``uuid.uuid4()`` would break determinism)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class _PersonFactory:
    """Draws unique identifiers and true attributes; one instance per generate() call."""

    def __init__(self, rng: random.Random, seed: int, window: Window) -> None:
        self.rng = rng
        self.window = window
        self.fakers: dict[str, Faker] = {}
        for i, locale in enumerate(LOCALES):
            fake = Faker(locale)
            fake.seed_instance(seed * 101 + i)
            self.fakers[locale] = fake
        self.emails: set[str] = set()
        self.phones: set[str] = set()
        self.user_ids: set[str] = set()

    def locale(self) -> str:
        names = list(LOCALES)
        return self.rng.choices(names, weights=[LOCALES[n][1] for n in names])[0]

    def address(self, locale: str) -> Address:
        fake = self.fakers[locale]
        line1 = fake.street_address().replace("\n", ", ")
        return Address(line1, fake.city(), fake.postcode(), LOCALES[locale][0])

    def email(self, first: str, last: str, country: str, avoid: str = "") -> str:
        f = re.sub(r"[^a-z]", "", ascii_fold(first).lower()) or "x"
        la = re.sub(r"[^a-z]", "", ascii_fold(last).lower()) or "y"
        patterns = (
            f"{f}.{la}",
            f"{f[0]}{la}",
            f"{f}{la}",
            f"{f}_{la}",
            f"{la}.{f}",
            f"{f}.{la}{self.rng.randrange(1, 99)}",
        )
        domains = EMAIL_DOMAINS[country]
        for attempt in range(50):
            local = self.rng.choice(patterns)
            if attempt > 2:
                local += str(self.rng.randrange(1, 9999))
            domain = self.rng.choices([d for d, _ in domains], weights=[w for _, w in domains])[0]
            email = f"{local}@{domain}"
            if email not in self.emails and email != avoid:
                self.emails.add(email)
                return email
        raise RuntimeError("could not draw a unique email")  # pragma: no cover

    def phone(self, country: str) -> str:
        for _ in range(100):
            prefix, digits = self.rng.choice(_PHONE_PLANS[country])
            e164 = prefix + "".join(str(self.rng.randrange(10)) for _ in range(digits))
            if e164 in self.phones or not phonenumbers.is_valid_number(phonenumbers.parse(e164)):
                continue
            self.phones.add(e164)
            return e164
        raise RuntimeError(f"could not draw a unique {country} phone")  # pragma: no cover

    def user_id(self) -> str:
        while True:
            uid = f"u{self.rng.randrange(10**7, 10**8)}"
            if uid not in self.user_ids:
                self.user_ids.add(uid)
                return uid

    def maybe_in_window(self, p_in_window: float) -> dt.datetime | None:
        """``None`` means "before the window"; otherwise a time inside it."""
        return self.window.random_time(self.rng) if self.rng.random() < p_in_window else None

    def person(
        self, index: int, household: tuple[str, int], locale: str, last: str, home: Address, arch: Archetype
    ) -> Person:
        rng, fake = self.rng, self.fakers[locale]
        country, _, zones = LOCALES[locale]
        first = fake.first_name_female() if rng.random() < 0.52 else fake.first_name_male()
        email = self.email(first, last, country)
        previous_email, changed_at = None, None
        if rng.random() < 0.10:
            previous_email, email = email, self.email(first, last, country, avoid=email)
            changed_at = self.window.random_time(rng)
        household_id, household_size = household
        previous_address, moved_at = None, None
        # Only people living alone move house, so a shared household address stays shared.
        if household_size == 1 and arch.crm and rng.random() < 0.05:
            previous_address, home = home, self.address(locale)
            moved_at = self.window.random_time(rng)
        web_buyer = arch.web and rng.random() < arch.web_buyer
        has_account = arch.web and rng.random() < arch.account
        devices = 2 if arch.web and rng.random() < 0.3 else 1 if arch.web else 0
        end = self.window.end_date
        return Person(
            person_id=f"P{index:06d}",
            household_id=household_id,
            archetype=arch.name,
            locale=locale,
            tz=rng.choice(zones),
            first_name=first,
            last_name=last,
            date_of_birth=end - dt.timedelta(days=rng.randrange(18 * 365, 85 * 365)),
            email=email,
            previous_email=previous_email,
            email_changed_at=changed_at,
            phone=(phone := self.phone(country)),
            phones=phone_styles(phone),
            address=home,
            previous_address=previous_address,
            moved_at=moved_at,
            web=arch.web,
            web_buyer=web_buyer,
            email_list=rng.random() < arch.email_list,
            crm=arch.crm,
            pos=rng.random() < arch.pos,
            user_id=self.user_id() if has_account else None,
            account_created_at=self.maybe_in_window(0.3) if has_account else None,
            anonymous_ids=tuple(random_uuid(rng) for _ in range(devices)),
            apple_mail=email.endswith("@icloud.com") or rng.random() < 0.3,
            subscribed_at=self.maybe_in_window(0.15),
        )


def build_persons(rng: random.Random, seed: int, window: Window, customers: int) -> list[Person]:
    """Draw ``customers`` people in households of 1-4 sharing a last name and an address.

    The first persons cycle through every archetype so even a tiny demo has CRM-only,
    email-only and POS-only people.
    """
    factory = _PersonFactory(rng, seed, window)
    persons: list[Person] = []
    household = 0
    while len(persons) < customers:
        household += 1
        size = min(rng.choices((1, 2, 3, 4), weights=(70, 18, 8, 4))[0], customers - len(persons))
        locale = factory.locale()
        last = factory.fakers[locale].last_name()
        home = factory.address(locale)
        hid = (f"H{household:06d}", size)
        for _ in range(size):
            index = len(persons) + 1
            if index <= len(ARCHETYPES):
                arch = ARCHETYPES[index - 1]
            else:
                arch = rng.choices(ARCHETYPES, weights=[a.weight for a in ARCHETYPES])[0]
            persons.append(factory.person(index, hid, locale, last, home, arch))
    return persons
