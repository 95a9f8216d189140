"""Config folders for integration tests (imported by test modules; pytest puts this folder on sys.path)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cdplake.config import DemoConfig

REPO = Path(__file__).resolve().parents[2]


def stream_test_conf(folder: Path) -> Path:
    """A copy of the repo's ``conf/`` for tests of the stream cycle loop.

    Its cycles skip the Great Expectations suites (covered by the quality tests; they cost
    tens of seconds per cycle), and identity runs incrementally whatever share of the records
    a wave touches and however small the lake (``incremental.max_scope_fraction: 1``,
    ``min_records: 0``): the tiny two-wave demo touches
    most of its people in wave 2, and the tests are there to exercise the incremental path
    (exactly-once, incremental equals full). The real-time lane is off: the crash test runs
    an interval trigger and compares gold with whole availableNow cycles at a fixed ``as_of``
    (the lane has its own tests). Jobs started with ``CDPLAKE_CONF_DIR`` set to the
    copy also need ``CDPLAKE__SPARK__JARS_DIR`` (relative paths resolve against the folder
    holding ``conf/``).
    """
    import shutil

    target = folder / "conf"
    shutil.copytree(REPO / "conf", target)
    for name, old, new in (
        ("streaming.yaml", "\ndataset_checks_every: 1\n", "\ndataset_checks_every: 0\n"),
        ("streaming.yaml", "\nrealtime_lane: true", "\nrealtime_lane: false"),
        ("identity.yaml", "\n  max_scope_fraction: 0.5\n", "\n  max_scope_fraction: 1.0\n"),
        ("identity.yaml", "\n  min_records: 250000\n", "\n  min_records: 0\n"),
    ):
        path = target / name
        text = path.read_text(encoding="utf-8")
        assert old in text, (name, old)
        path.write_text(text.replace(old, new))
    return target


# The two-wave stream both stream modules use (see ``two_wave_stream`` in conftest.py): seeded
# demo files, wave 1 = days up to WAVE_1_LAST_DAY, wave 2 = the rest, gold evaluated at AS_OF.
STREAM_AS_OF = dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc)
STREAM_DEMO = DemoConfig(customers=30, days=4, seed=11, end_date=dt.date(2026, 11, 1))
WAVE_1_LAST_DAY = "2026-10-30"  # wave 1: Oct 29-30, wave 2: Oct 31 - Nov 1
STREAM_GOLD = (
    "customer_profile",
    "customer_profile_history",
    "segment_membership",
    "segment_summary",
    "realtime_signals",
)


def land_wave(root: Path, files: dict[str, bytes], wave: int) -> int:
    """Put wave 1 or 2 of ``files`` (landing path -> bytes) under ``root/landing``; returns the count."""
    from cdplake.landing.store import LocalStore

    store = LocalStore(root / "landing")
    chosen = [p for p in sorted(files) if (p.split("/")[1] <= WAVE_1_LAST_DAY) == (wave == 1)]
    for path in chosen:
        store.put(path, files[path])
    return len(chosen)
