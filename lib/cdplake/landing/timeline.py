"""The generator's clock: the demo window and how source systems spell timestamps."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from functools import cached_property
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc

# Activity by hour of day (local time): quiet nights, a lunchtime bump, busy evenings.
_HOUR_WEIGHTS = (1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 5, 6, 7, 6, 5, 5, 5, 6, 8, 9, 9, 8, 5, 2)


@dataclass(frozen=True)
class Window:
    """The ``days`` calendar days (UTC) ending with ``end_date`` inclusive."""

    end_date: dt.date
    days: int

    # Cached: the simulators ask for these hundreds of thousands of times.
    @cached_property
    def first_day(self) -> dt.date:
        return self.end_date - dt.timedelta(days=self.days - 1)

    @cached_property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.first_day, dt.time(), UTC)

    @cached_property
    def end(self) -> dt.datetime:
        """Exclusive end: midnight after ``end_date``."""
        return dt.datetime.combine(self.end_date + dt.timedelta(days=1), dt.time(), UTC)

    def contains(self, when: dt.datetime) -> bool:
        return self.start <= when < self.end

    def random_time(self, rng: random.Random, after: dt.datetime | None = None) -> dt.datetime:
        """A plausible activity time in the window (and after ``after`` when given)."""
        lo = max(self.start, after) if after else self.start
        if lo >= self.end:
            return self.end - dt.timedelta(seconds=1)
        day_count = (self.end - lo).days + 1
        for _ in range(8):
            day = lo.date() + dt.timedelta(days=rng.randrange(day_count))
            hour = rng.choices(range(24), weights=_HOUR_WEIGHTS)[0]
            when = dt.datetime.combine(day, dt.time(hour), UTC) + dt.timedelta(seconds=rng.randrange(3600))
            if lo <= when < self.end:
                return when
        return lo + (self.end - lo) * rng.random()


def clamp(when: dt.datetime, window: Window) -> dt.datetime:
    """Keep a derived time (a reply, a retry) inside the window."""
    return min(max(when, window.start), window.end - dt.timedelta(seconds=1))


_ZONES: dict[str, ZoneInfo] = {}


def _zone(name: str) -> ZoneInfo:
    if name not in _ZONES:
        _ZONES[name] = ZoneInfo(name)
    return _ZONES[name]


def iso_z(when: dt.datetime, millis: bool = True) -> str:
    """``2026-10-03T14:22:05.123Z``, what browsers' ``Date.toISOString()`` sends."""
    naive = when.astimezone(UTC).replace(tzinfo=None)
    return naive.isoformat(timespec="milliseconds" if millis else "seconds") + "Z"


def iso_local(when: dt.datetime, tz: str, millis: bool = False) -> str:
    """The same instant in the sender's local zone with its offset, e.g. ``...+01:00``."""
    local = when.astimezone(_zone(tz))
    return local.isoformat(timespec="milliseconds" if millis else "seconds")


def epoch(when: dt.datetime) -> int:
    return int(when.timestamp())
