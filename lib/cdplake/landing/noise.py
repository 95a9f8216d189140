"""How people and staff really type identifiers: typos, case, spacing, formats.

Each function takes the generator's RNG explicitly so the noise is reproducible.
"""

from __future__ import annotations

import random
import unicodedata

import phonenumbers
from phonenumbers import PhoneNumberFormat

from cdplake.landing.catalog import COUNTRY_SPELLINGS, NICKNAMES, STREET_ABBREVIATIONS


def ascii_fold(text: str) -> str:
    """``Müller`` -> ``Muller``: what ends up in an email local part."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def typo(rng: random.Random, word: str) -> str:
    """One keyboard slip: swap two neighbouring letters, drop one or double one."""
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def vary_case(rng: random.Random, text: str, rate: float) -> str:
    """Occasionally UPPER (caps lock at the till) or lower case."""
    if rng.random() >= rate:
        return text
    return text.upper() if rng.random() < 0.5 else text.lower()


def pad(rng: random.Random, text: str, rate: float) -> str:
    """Occasionally a stray leading/trailing space or a doubled inner space."""
    if rng.random() >= rate:
        return text
    kind = rng.randrange(3)
    if kind == 0:
        return f" {text}"
    if kind == 1:
        return f"{text}  "
    return text.replace(" ", "  ", 1) if " " in text else f"{text} "


def messy_name(
    rng: random.Random,
    first: str,
    last: str,
    *,
    typo_rate: float = 0.03,
    nickname_rate: float = 0.0,
    swap_rate: float = 0.0,
    case_rate: float = 0.05,
    space_rate: float = 0.03,
) -> tuple[str, str]:
    """A first/last name pair as some person or system typed it."""
    if nickname_rate and first in NICKNAMES and rng.random() < nickname_rate:
        first = rng.choice(NICKNAMES[first])
    if rng.random() < typo_rate:
        if rng.random() < 0.5:
            first = typo(rng, first)
        else:
            last = typo(rng, last)
    if swap_rate and rng.random() < swap_rate:
        first, last = last, first
    first = pad(rng, vary_case(rng, first, case_rate), space_rate)
    last = pad(rng, vary_case(rng, last, case_rate), space_rate)
    return first, last


def messy_email(rng: random.Random, email: str, *, case_rate: float = 0.08, space_rate: float = 0.03) -> str:
    """An email as typed: ``Jane.Smith@Gmail.com``, upper case, stray spaces at the ends."""
    if rng.random() < case_rate:
        local, _, domain = email.partition("@")
        kind = rng.randrange(3)
        if kind == 0:
            email = email.upper()
        elif kind == 1:
            email = f"{'.'.join(p.capitalize() for p in local.split('.'))}@{domain.capitalize()}"
        else:
            email = f"{local.capitalize()}@{domain}"
    if rng.random() < space_rate:
        email = f" {email}" if rng.random() < 0.5 else f"{email} "
    return email


def phone_styles(e164: str) -> dict[str, str]:
    """Every way the same number gets written: E.164, international, national, ``00``..."""
    number = phonenumbers.parse(e164)
    intl = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    return {
        "e164": e164,
        "international": intl,
        "national": national,
        "national_compact": "".join(ch for ch in national if ch.isdigit()),
        "double_zero": "00" + intl[1:],
        "dashed": intl.replace(" ", "-"),
    }


def messy_phone(rng: random.Random, styles: dict[str, str], weights: dict[str, int]) -> str:
    """Pick one written form of a number, by the habits (weights) of a source."""
    names = [n for n in weights if n in styles]
    return styles[rng.choices(names, weights=[weights[n] for n in names])[0]]


def messy_street(rng: random.Random, line1: str, rate: float = 0.15) -> str:
    """``12 High Street`` -> ``12 High St``, or in capitals."""
    if rng.random() < rate:
        for full, short in STREET_ABBREVIATIONS.items():
            if line1.endswith(f" {full}"):
                line1 = line1[: -len(full)] + short
                break
    return vary_case(rng, line1, 0.04)


def messy_postcode(rng: random.Random, postcode: str, rate: float = 0.1) -> str:
    """``SW1A 1AA`` as ``sw1a 1aa`` or ``SW1A1AA``."""
    if rng.random() >= rate:
        return postcode
    return postcode.lower() if rng.random() < 0.5 else postcode.replace(" ", "")


def messy_country(rng: random.Random, country: str) -> str:
    """``GB``, ``UK``, ``United Kingdom``: ISO codes are a hope, not a guarantee."""
    return rng.choice(COUNTRY_SPELLINGS.get(country, (country,)))


def spaced_email(rng: random.Random, email: str) -> str:
    """A broken address with a space inside (a deliberately bad record)."""
    local, _, domain = email.strip().partition("@")
    if "." in local:
        return local.replace(".", " ", 1) + "@" + domain
    cut = max(1, len(local) // 2)
    return f"{local[:cut]} {local[cut:]}@{domain}"
