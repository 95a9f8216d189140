"""Column functions of silver: inline rows in, whole frames compared."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdplake.silver._common import blank, text
from cdplake.silver.columns import (
    is_valid_email,
    normalize_address,
    normalize_country,
    normalize_email,
    normalize_name,
    normalize_phone,
    normalize_postcode,
    strip_whitespace,
    to_utc_timestamp_any,
)

UTC = dt.timezone.utc


def ts(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)


def test_whitespace_trims_take_tabs_and_line_breaks_and_keep_inner_spaces(spark):
    rows = [
        # raw, stripped, text (null when empty), blank
        (" \t\r\n a  b \x0b\f\n", "a  b", "a  b", False),
        ("x", "x", "x", False),
        (" \t\n\r\x0b\f ", "", None, True),
        ("", "", None, True),
        (None, None, None, True),
        ("\u00a0a\u00a0", "\u00a0a\u00a0", "\u00a0a\u00a0", False),  # no-break space is not \s
    ]
    df = spark.createDataFrame(rows, "raw STRING, stripped STRING, text STRING, blank BOOLEAN")
    raw = F.col("raw")
    actual = df.select(
        "raw",
        strip_whitespace(raw).alias("stripped"),
        text(raw).alias("text"),
        blank(raw).alias("blank"),
    )
    assertDataFrameEqual(actual, df)


def test_to_utc_timestamp_any_parses_iso_offsets_and_epochs(spark):
    rows = [
        # 14:03:11 at +02:00 is 12:03:11 UTC
        ("2026-10-05T14:03:11+02:00", ts(2026, 10, 5, 12, 3, 11)),
        ("2026-10-05T14:03:11Z", ts(2026, 10, 5, 14, 3, 11)),
        # 14:03:11.123 at -05:00 is 19:03:11.123 UTC
        ("2026-10-05T14:03:11.123-05:00", ts(2026, 10, 5, 19, 3, 11, 123000)),
        # offset without colon, lower-case t/z and padding are accepted
        ("2026-10-05T14:03:11+0200", ts(2026, 10, 5, 12, 3, 11)),
        ("  2026-10-05t14:03:11z ", ts(2026, 10, 5, 14, 3, 11)),
        # 23:30 at -01:00 crosses midnight: 00:30 UTC on the next day
        ("2026-10-05T23:30:00-01:00", ts(2026, 10, 6, 0, 30, 0)),
        # no offset: read as UTC whatever the session time zone
        ("2026-10-05 14:03:11", ts(2026, 10, 5, 14, 3, 11)),
        ("2026-10-05", ts(2026, 10, 5)),
        # 1791200000 s = 20731 days + 41600 s; day 20731 is 2026-10-05 (2026-01-01 is day
        # 20454 and 20731 - 20454 = 277 days later), 41600 s = 11:33:20
        ("1791200000", ts(2026, 10, 5, 11, 33, 20)),
        ("1791200000.5", ts(2026, 10, 5, 11, 33, 20, 500000)),
        # >= 1e11 is milliseconds: 1791200000123 ms = 1791200000 s + 123 ms
        ("1791200000123", ts(2026, 10, 5, 11, 33, 20, 123000)),
        ("garbage", None),
        ("2026-13-45T00:00:00Z", None),
        ("", None),
        (None, None),
    ]
    df = spark.createDataFrame(rows, "raw STRING, expected TIMESTAMP")
    actual = df.select("raw", to_utc_timestamp_any(F.col("raw")).alias("expected"))
    assertDataFrameEqual(actual, df)


def test_to_utc_timestamp_any_reads_numeric_columns(spark):
    rows = [
        (1791200000, ts(2026, 10, 5, 11, 33, 20)),
        (1791200000123, ts(2026, 10, 5, 11, 33, 20, 123000)),
        (None, None),
    ]
    df = spark.createDataFrame(rows, "raw BIGINT, expected TIMESTAMP")
    actual = df.select("raw", to_utc_timestamp_any(F.col("raw")).alias("expected"))
    assertDataFrameEqual(actual, df)

    # a double such as 1791200000.25 is cast to the string "1.79120000025E9"
    doubles = spark.createDataFrame(
        [(1791200000.25, ts(2026, 10, 5, 11, 33, 20, 250000))], "raw DOUBLE, expected TIMESTAMP"
    )
    assertDataFrameEqual(doubles.select("raw", to_utc_timestamp_any(F.col("raw")).alias("expected")), doubles)


def test_normalize_email_and_validity(spark):
    rows = [
        ("  Jane.Doe@Example.COM ", "jane.doe@example.com", True),
        ("o'neil+news@mail.co.uk", "o'neil+news@mail.co.uk", True),
        ("jane.doe@example", "jane.doe@example", False),
        ("jane doe@example.com", "jane doe@example.com", False),
        ("jane@@example.com", "jane@@example.com", False),
        ("@example.com", "@example.com", False),
        ("jane.@example.com", "jane.@example.com", False),
        # 64 + 1 + 177 + 12 = 254 characters, the longest valid address; one more is too long
        ("a" * 64 + "@" + "b" * 177 + ".example.com", "a" * 64 + "@" + "b" * 177 + ".example.com", True),
        ("a" * 64 + "@" + "b" * 178 + ".example.com", "a" * 64 + "@" + "b" * 178 + ".example.com", False),
        ("   ", None, False),
        (None, None, False),
    ]
    df = spark.createDataFrame(rows, "raw STRING, email STRING, valid BOOLEAN")
    email = normalize_email(F.col("raw"))
    actual = df.select("raw", email.alias("email"), is_valid_email(email).alias("valid"))
    assertDataFrameEqual(actual, df)


def test_normalize_name(spark):
    rows = [
        ("  jane   ANNE  ", "Jane Anne"),
        ("o'brien", "O'brien"),
        ("MARY-KATE", "Mary-kate"),
        ("\tbob\n", "Bob"),
        ("", None),
        (None, None),
    ]
    df = spark.createDataFrame(rows, "raw STRING, expected STRING")
    assertDataFrameEqual(df.select("raw", normalize_name(F.col("raw")).alias("expected")), df)


def test_normalize_address(spark):
    rows = [
        (" 1  high   st ", "1 High Street"),
        ("1 High St.\nFlat 2", "1 High Street Flat 2"),  # a line break ends the street
        ("12 ST ALBANS RD", "12 St Albans Road"),  # "St" not at the end is a saint
        ("3 Park Ave, Dublin", "3 Park Avenue, Dublin"),
        ("4 Rose Gdns", "4 Rose Gardens"),
        ("5 Stanley Street", "5 Stanley Street"),  # already spelled out; "St" inside a word stays
        ("Flat 2a, 7 Mill Ln", "Flat 2a, 7 Mill Lane"),
        ("   ", None),
        (None, None),
    ]
    df = spark.createDataFrame(rows, "raw STRING, expected STRING")
    assertDataFrameEqual(df.select("raw", normalize_address(F.col("raw")).alias("expected")), df)


def test_normalize_postcode(spark):
    rows = [
        ("sw1a1aa", "SW1A 1AA"),
        (" sw1a   1aa ", "SW1A 1AA"),
        ("M1 1AE", "M1 1AE"),
        ("ec1a-1bb", "EC1A 1BB"),
        ("10115", "10115"),
        ("1012 ab", "1012 AB"),
        (" - ", None),
        (None, None),
    ]
    df = spark.createDataFrame(rows, "raw STRING, expected STRING")
    assertDataFrameEqual(df.select("raw", normalize_postcode(F.col("raw")).alias("expected")), df)


def test_normalize_country_to_iso_codes_and_keeps_what_names_no_country(spark):
    rows = [
        ("GB", "GB"),
        ("gb", "GB"),
        (" United Kingdom ", "GB"),
        ("UK", "GB"),
        ("u.k.", "GB"),
        ("great  britain", "GB"),
        ("GBR", "GB"),
        ("United Kingdom of Great Britain and Northern Ireland", "GB"),
        ("Ireland", "IE"),
        ("USA", "US"),
        ("United States", "US"),
        ("U.S.A.", "US"),
        ("Germany", "DE"),
        ("deu", "DE"),
        ("\tFrance\n", "FR"),
        ("Viet Nam", "VN"),
        ("Vietnam", "VN"),
        ("Narnia", "NARNIA"),  # names no country: kept for the iso2 rule to flag
        ("XX", "XX"),  # two letters but not an ISO code: kept, not looked up as a name
        ("  ", None),
        (None, None),
    ]
    df = spark.createDataFrame(rows, "raw STRING, expected STRING")
    assertDataFrameEqual(df.select("raw", normalize_country(F.col("raw")).alias("expected")), df)


def test_normalize_phone_to_e164(spark):
    rows = [
        # national GB mobile: drop the trunk 0, prefix +44
        ("07700 900123", "+447700900123"),
        ("+44 (0)20 7946 0018", "+442079460018"),
        ("0044 20 7946 0018", "+442079460018"),
        # an explicit country code wins over the default region
        ("+1 (415) 555-2671", "+14155552671"),
        ("123", None),
        ("not a phone", None),
        ("", None),
        (None, None),
    ]
    df = spark.createDataFrame(rows, "raw STRING, expected STRING")
    assertDataFrameEqual(df.select("raw", normalize_phone(F.col("raw"), "GB").alias("expected")), df)


def test_normalize_phone_uses_the_default_region(spark):
    df = spark.createDataFrame([("(415) 555-2671", "+14155552671")], "raw STRING, expected STRING")
    assertDataFrameEqual(df.select("raw", normalize_phone(F.col("raw"), "US").alias("expected")), df)
