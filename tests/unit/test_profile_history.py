"""The SCD type 2 change transform of gold/customer_profile_history (no I/O)."""

from __future__ import annotations

import datetime as dt

from pyspark.testing import assertDataFrameEqual

from cdplake.features import ATTRIBUTES
from cdplake.segments import PROFILE_HISTORY_DDL, history_changes

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 9, 1, tzinfo=UTC)
T1 = dt.datetime(2026, 10, 1, tzinfo=UTC)
AS_OF = dt.datetime(2026, 11, 2, tzinfo=UTC)
LATER = dt.datetime(2026, 11, 10, tzinfo=UTC)
PROFILE_DDL = "customer_id STRING, " + ", ".join(f"{a} STRING" for a in ATTRIBUTES)
CHANGES_DDL = "_action STRING, " + PROFILE_HISTORY_DDL.replace(" NOT NULL", "")


def attrs(email=None, city=None) -> tuple:
    """The eight golden attributes; the tests vary email and city, the rest stay null."""
    values = dict.fromkeys(ATTRIBUTES)
    values.update(email=email, city=city)
    return tuple(values[a] for a in ATTRIBUTES)


def stored_row(cid, values, valid_from, valid_to=None, run_id="run-1"):
    return (cid, *values, valid_from, valid_to, valid_to is None, run_id)


def test_insert_change_unchanged_and_removed(spark):
    stored = spark.createDataFrame(
        [
            stored_row("same", attrs("s@x.com", "London"), T1),
            stored_row("nulls", attrs(), T1),
            stored_row("moved", attrs("m@old.com", "Paris"), T0, T1, run_id="run-0"),
            stored_row("moved", attrs("m@x.com", "Paris"), T1),
            stored_row("lost_city", attrs("l@x.com", "Rome"), T1),
            stored_row("gone", attrs("g@x.com"), T1),
            stored_row("gone_before", attrs("b@x.com"), T0, T1),
        ],
        PROFILE_HISTORY_DDL,
    )
    profile = spark.createDataFrame(
        [
            ("same", *attrs("s@x.com", "London")),
            ("nulls", *attrs()),  # null equals null: unchanged
            ("moved", *attrs("m@x.com", "Lyon")),
            ("lost_city", *attrs("l@x.com", None)),  # a value that becomes null is a change
            ("new", *attrs("n@x.com", "Oslo")),
        ],
        PROFILE_DDL,
    )
    got = history_changes(stored, profile, AS_OF, "run-2")
    expected = spark.createDataFrame(
        [
            # changed: the current version is closed at as_of (its values as stored) ...
            ("close", "moved", *attrs("m@x.com", "Paris"), T1, AS_OF, False, "run-2"),
            ("close", "lost_city", *attrs("l@x.com", "Rome"), T1, AS_OF, False, "run-2"),
            # ... and the new values open a current version from as_of
            ("open", "moved", *attrs("m@x.com", "Lyon"), AS_OF, None, True, "run-2"),
            ("open", "lost_city", *attrs("l@x.com", None), AS_OF, None, True, "run-2"),
            # no longer in the profile: closed; gone_before has no current version to close
            ("close", "gone", *attrs("g@x.com"), T1, AS_OF, False, "run-2"),
            # new customer: a first version; same and nulls: nothing
            ("open", "new", *attrs("n@x.com", "Oslo"), AS_OF, None, True, "run-2"),
        ],
        CHANGES_DDL,
    )
    assertDataFrameEqual(got, expected)


def test_scope_same_as_of_and_later_history(spark):
    stored = spark.createDataFrame(
        [
            stored_row("touched", attrs("t@x.com"), T1),
            stored_row("untouched", attrs("u@x.com"), T1),  # absent from profile, out of scope
            stored_row("removed", attrs("r@x.com"), T1),  # absent from profile, in scope
            stored_row("rerun", attrs("a@x.com"), T0, AS_OF),  # an earlier run at this as_of ...
            stored_row("rerun", attrs("a@y.com"), AS_OF),  # ... opened this version
            stored_row("future", attrs("f@x.com"), LATER),  # recorded by a run after as_of
        ],
        PROFILE_HISTORY_DDL,
    )
    profile = spark.createDataFrame(
        [
            ("touched", *attrs("t@y.com")),
            ("rerun", *attrs("a@z.com")),
            ("future", *attrs("f@y.com")),
            ("outside", *attrs("o@x.com")),  # not in scope: left alone although new
        ],
        PROFILE_DDL,
    )
    scope = spark.createDataFrame([("touched",), ("removed",), ("rerun",), ("future",)], "customer_id STRING")
    got = history_changes(stored, profile, AS_OF, "stream_c2", scope)
    expected = spark.createDataFrame(
        [
            ("close", "touched", *attrs("t@x.com"), T1, AS_OF, False, "stream_c2"),
            ("open", "touched", *attrs("t@y.com"), AS_OF, None, True, "stream_c2"),
            ("close", "removed", *attrs("r@x.com"), T1, AS_OF, False, "stream_c2"),
            # the current version already starts at as_of: no zero-length version, the open row
            # has the same key and the MERGE writes it over that version
            ("open", "rerun", *attrs("a@z.com"), AS_OF, None, True, "stream_c2"),
            # future: its history reaches past as_of (a backfill): nothing
        ],
        CHANGES_DDL,
    )
    assertDataFrameEqual(got, expected)
