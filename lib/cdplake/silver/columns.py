"""Column -> Column functions that conform raw values: timestamps, emails, names, countries, phones.

They need no session, behave the same in batch and streaming, and never raise on bad input:
an unusable value becomes null and the caller decides whether that quarantines the row.
"""

from __future__ import annotations

import functools

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

# Pragmatic syntax check (not RFC 5322): local part, one @, dotted domain, 2+ letter TLD.
EMAIL_PATTERN = r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$"

# Epoch numbers from 1e11 on are milliseconds: 1e11 seconds is the year 5138, while 1e11 ms
# is March 1973, so the two ranges cannot be confused for any real event time.
_EPOCH_MS_FROM = 100_000_000_000
_EPOCH_MS_UNTIL = 100_000_000_000_000  # year 5138 in ms; anything larger is garbage
_NUMBER = r"^[0-9]+(\.[0-9]+)?([eE][+]?[0-9]+)?$"
_HAS_OFFSET = r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
_DATE_ONLY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _blank_to_null(col: Column) -> Column:
    return F.when(col != "", col)


# What Java's regex \s matches: space, tab, line feed, vertical tab, form feed, carriage return.
WHITESPACE = " \t\n\x0b\f\r"


def strip_whitespace(col: Column) -> Column:
    """``col`` without leading and trailing whitespace (tabs and line breaks too).

    ``F.trim`` only removes spaces; people and exports also leave tabs and newlines. A
    character-set trim, not a regex: it runs on every field of every row.
    """
    return F.btrim(col, F.lit(WHITESPACE))


def to_utc_timestamp_any(col: Column) -> Column:
    """Parse an ISO-8601 string or an epoch number into a UTC ``TIMESTAMP``.

    Accepted: ISO-8601 date-times with ``Z`` or any ``±hh:mm``/``±hhmm`` offset, with or
    without a fraction (``T`` or a space between date and time); a date-time or date with no
    offset is read as UTC, whatever the session time zone. Epoch seconds and epoch
    milliseconds, as numbers or numeric strings (values from 1e11 on are milliseconds).
    Anything else is null.

    Args:
        col: a STRING or numeric column.
    """
    s = F.upper(strip_whitespace(col.cast("string")))
    number = s.try_cast("decimal(38,6)")
    epoch = (
        F.when(~s.rlike(_NUMBER), F.lit(None).cast("timestamp"))
        .when(number < _EPOCH_MS_FROM, F.timestamp_seconds(number))
        .when(number < _EPOCH_MS_UNTIL, F.timestamp_millis(number.cast("bigint")))
    )
    # Strings without an offset get an explicit Z so the session time zone never matters.
    iso = (
        F.when(s.rlike(_HAS_OFFSET), s)
        .when(s.rlike(_DATE_ONLY), F.concat(s, F.lit("T00:00:00Z")))
        .otherwise(F.concat(s, F.lit("Z")))
    )
    return F.when(s.rlike(_NUMBER), epoch).otherwise(iso.try_cast("timestamp"))


def normalize_email(col: Column) -> Column:
    """Trim and lower-case an email address; null when empty.

    Syntax is not checked here: combine with :func:`is_valid_email`.
    """
    return _blank_to_null(F.lower(strip_whitespace(col)))


def is_valid_email(col: Column) -> Column:
    """True when ``col`` (already normalised) looks like an email address; False for null."""
    # 254 characters is the longest address SMTP carries; the length guard also keeps a
    # megabyte of junk away from the pattern's repeated groups (which recurse per repetition).
    return F.coalesce(F.when(F.length(col) <= 254, col.rlike(EMAIL_PATTERN)), F.lit(False))


def normalize_name(col: Column) -> Column:
    """Trim, collapse inner whitespace and capitalise each word; null when empty.

    ``initcap`` lower-cases the rest of each word, so ``McDONALD`` becomes ``Mcdonald``:
    good enough for matching, not a display rule.
    """
    return _blank_to_null(F.initcap(strip_whitespace(F.regexp_replace(col, r"\s+", " "))))


# Street-type abbreviations as people and CRMs type them -> the word. Only expanded at the end
# of a line (or before a comma or line break), where a street type stands: "St" elsewhere
# is usually "Saint" (St Albans Road).
STREET_TYPES: dict[str, str] = {
    "St": "Street",
    "Rd": "Road",
    "Ave": "Avenue",
    "Av": "Avenue",
    "Ln": "Lane",
    "Dr": "Drive",
    "Cl": "Close",
    "Cres": "Crescent",
    "Ct": "Court",
    "Gdns": "Gardens",
    "Pl": "Place",
    "Sq": "Square",
    "Terr": "Terrace",
    "Blvd": "Boulevard",
}


def normalize_address(col: Column) -> Column:
    """An address line in one spelling: words capitalised, street types spelled out, spaces collapsed.

    ``"1 high st.\\nFlat 2"`` -> ``"1 High Street Flat 2"``; ``"12 ST ALBANS RD"`` ->
    ``"12 St Albans Road"``. Null when empty.
    """
    s = col
    for abbr, word in STREET_TYPES.items():
        # before the whitespace is collapsed: a line break ends the street part
        s = F.regexp_replace(s, rf"(?i)\b{abbr}\.?(?=[ \t]*(,|\r?\n|$))", word)
    # initcap only starts a word after a space, so collapse tabs and line breaks first
    return _blank_to_null(F.initcap(strip_whitespace(F.regexp_replace(s, r"\s+", " "))))


def normalize_postcode(col: Column) -> Column:
    """Upper-case a postcode, keep letters, digits and single spaces; null when empty.

    A UK postcode typed without its space (``sw1a1aa``) gets it back (``SW1A 1AA``), so the
    same code always has one spelling; other countries' codes are only cleaned.
    """
    cleaned = strip_whitespace(
        F.regexp_replace(F.regexp_replace(F.upper(col), r"[^A-Z0-9\s]", ""), r"\s+", " ")
    )
    uk = F.regexp_replace(cleaned, r"^([A-Z]{1,2}[0-9][A-Z0-9]?) ?([0-9][A-Z]{2})$", "$1 $2")
    return _blank_to_null(uk)


# Spellings people type that are neither an ISO 3166 code nor a name the standard lists: the
# home nations and "Britain" for GB (ISO reserves "UK" for it), short and older names.
COUNTRY_ALIASES: dict[str, str] = {
    "UK": "GB",
    "BRITAIN": "GB",
    "GREAT BRITAIN": "GB",
    "ENGLAND": "GB",
    "SCOTLAND": "GB",
    "WALES": "GB",
    "NORTHERN IRELAND": "GB",
    "EIRE": "IE",
    "REPUBLIC OF IRELAND": "IE",
    "AMERICA": "US",
    "UNITED STATES OF AMERICA": "US",
    "HOLLAND": "NL",
    "THE NETHERLANDS": "NL",
    "CZECH REPUBLIC": "CZ",
    "RUSSIA": "RU",
    "SOUTH KOREA": "KR",
    "NORTH KOREA": "KP",
    "VIETNAM": "VN",
    "IVORY COAST": "CI",
    "UAE": "AE",
}


@functools.cache
def country_codes() -> dict[str, str]:
    """Upper-case spelling -> ISO 3166-1 alpha-2 code: ``pycountry`` plus :data:`COUNTRY_ALIASES`.

    The spellings are the alpha-3 code and the short, official and common English names of
    every country in the standard. Two-letter codes are checked against the standard's list
    instead (:func:`normalize_country`).
    """
    import pycountry

    codes: dict[str, str] = {}
    for country in pycountry.countries:
        for attr in ("alpha_3", "name", "official_name", "common_name"):
            spelling = getattr(country, attr, None)
            if spelling:
                codes[" ".join(spelling.upper().split())] = country.alpha_2
    codes.update(COUNTRY_ALIASES)
    return codes


@functools.cache
def _alpha_2_codes() -> tuple[str, ...]:
    import pycountry

    return tuple(sorted(c.alpha_2 for c in pycountry.countries))


def normalize_country(col: Column) -> Column:
    """A country as its ISO 3166-1 alpha-2 code when it can be told, else cleaned and kept.

    Case, dots and whitespace do not matter: ``" united kingdom "``, ``"U.K."``, ``"gbr"``
    and ``"gb"`` are all ``"GB"`` (:func:`country_codes`). A value that names no country
    (``"Narnia"``) stays, upper-cased, for a rule to flag; it is not turned into null. Null
    when empty. The table of spellings is built on the driver and travels in the plan as a
    literal map, so executors need no ``pycountry``.
    """
    cleaned = _blank_to_null(
        strip_whitespace(F.regexp_replace(F.regexp_replace(F.upper(col), r"\.", ""), r"\s+", " "))
    )
    spellings = country_codes()
    lookup = F.create_map(*[F.lit(x) for key in sorted(spellings) for x in (key, spellings[key])])
    iso = F.when(cleaned.isin(*_alpha_2_codes()), cleaned).otherwise(F.element_at(lookup, cleaned))
    return F.coalesce(iso, cleaned)


# A pandas (Arrow) UDF because Spark has no built-in phone parsing: the rules per country
# (trunk prefixes, lengths) live in the `phonenumbers` library metadata. Arrow batches keep
# the Python round trip to one call per few thousand rows.
@F.pandas_udf(StringType())
def _e164(phones: pd.Series, regions: pd.Series) -> pd.Series:
    import phonenumbers

    def one(raw, region):
        if raw is None or not str(raw).strip():
            return None
        try:
            number = phonenumbers.parse(str(raw), region or None)
        except phonenumbers.NumberParseException:
            return None
        # "Possible" (right length for the country), not "valid": normalising to one spelling
        # is what matching needs; ranges unknown to the metadata still normalise.
        if not phonenumbers.is_possible_number(number):
            return None
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    return pd.Series([one(p, r) for p, r in zip(phones, regions, strict=True)], dtype=object)


def normalize_phone(col: Column, default_region: str) -> Column:
    """A phone number in E.164 (``+447700900123``); null when it cannot be a phone number.

    Numbers without a ``+`` country code are read in ``default_region`` (an ISO 3166 code,
    ``env.pipeline.default_phone_region``).

    Args:
        col: a STRING column as typed by people.
        default_region: region for national-format numbers, e.g. ``"GB"``.
    """
    return _e164(col.cast("string"), F.lit(default_region))
