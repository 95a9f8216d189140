"""Column -> Column helpers for per-customer features; no session needed."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column
from pyspark.sql import functions as F

# Sort key for "missing timestamp": larger than any real key, so undated values lose.
_UNDATED = 2**62


def as_utc(moment: dt.datetime) -> dt.datetime:
    """A timezone-aware UTC datetime; a naive one is taken to be UTC already.

    PySpark turns a naive datetime literal into a timestamp using the driver's local time
    zone, which would shift every window on a machine not set to UTC.
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


def ts_lit(moment: dt.datetime) -> Column:
    """A TIMESTAMP literal for an instant (see :func:`as_utc`)."""
    return F.lit(as_utc(moment)).cast("timestamp")


def at_or_before(ts: Column, as_of: dt.datetime) -> Column:
    """``ts <= as_of``: the record had happened by the evaluation time."""
    return ts <= ts_lit(as_of)


def within_days(ts: Column, as_of: dt.datetime, days: int) -> Column:
    """``ts`` in the window ``(as_of - days, as_of]``."""
    return (ts > ts_lit(as_of - dt.timedelta(days=days))) & (ts <= ts_lit(as_of))


def days_between(earlier: Column, as_of: dt.datetime) -> Column:
    """Whole calendar days (UTC) from ``earlier`` to ``as_of``; null when ``earlier`` is null."""
    return F.datediff(F.to_date(ts_lit(as_of)), F.to_date(earlier))


def newest_first_key(priority: Column, ts: Column) -> Column:
    """A sortable key: lower priority number first, then newest ``ts``; undated values last."""
    return F.struct(
        priority.alias("priority"),
        F.coalesce(-F.unix_micros(ts), F.lit(_UNDATED).cast("bigint")).alias("age"),
    )
