"""Config folders for integration tests (imported by test modules; pytest puts this folder on sys.path)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cdplake.config import DemoConfig

REPO = Path(__file__).resolve().parents[2]


def conf_without_dataset_checks(folder: Path) -> Path:
    """A copy of the repo's ``conf/`` whose stream cycles skip the Great Expectations suites.

    For tests about the cycle loop itself (exactly-once, incremental equality): the suites
    are covered by the quality tests and cost tens of seconds per cycle. Jobs started with
    ``CDPLAKE_CONF_DIR`` set to the copy also need ``CDPLAKE__SPARK__JARS_DIR`` (relative
    paths resolve against the folder holding ``conf/``).
    """
    import shutil

    target = folder / "conf"
    shutil.copytree(REPO / "conf", target)
    streaming = target / "streaming.yaml"
    text = streaming.read_text(encoding="utf-8")
    assert "\ndataset_checks_every: 1\n" in text
    streaming.write_text(text.replace("\ndataset_checks_every: 1\n", "\ndataset_checks_every: 0\n"))
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
