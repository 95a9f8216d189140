"""The seeded demo-data generator: true persons in, raw landing files plus their answer key out.

Pure Python and deterministic: the same :class:`~cdplake.config.DemoConfig` gives
byte-identical files. Each stage draws from its own RNG derived from the seed, so changing
how one source is simulated does not reshuffle the others.
"""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from dataclasses import dataclass

from cdplake.config import DemoConfig
from cdplake.landing.crm import CrmSimulator
from cdplake.landing.esp import EmailSimulator
from cdplake.landing.events import EventSimulator
from cdplake.landing.orders import OrderBook, render_orders
from cdplake.landing.people import PERSON_COLUMNS, Person, build_persons
from cdplake.landing.records import TRUTH_COLUMNS, GroundTruthRow, RecordSink
from cdplake.landing.timeline import Window

SOURCES: tuple[str, ...] = ("events", "email", "crm", "orders")


@dataclass(frozen=True)
class GeneratedData:
    """What :func:`generate` produces.

    Attributes:
        files: landing-relative path (``events/2026-10-03/events-0001.jsonl``) -> content.
        ground_truth: one row per (source, record key): the true person and any defect.
        persons: the true persons with their real attributes.
    """

    files: dict[str, bytes]
    ground_truth: tuple[GroundTruthRow, ...]
    persons: tuple[Person, ...]

    def files_per_source(self) -> dict[str, int]:
        """Number of landing files per source."""
        counts = Counter(path.split("/", 1)[0] for path in self.files)
        return {source: counts.get(source, 0) for source in SOURCES}

    def lines_per_source(self) -> dict[str, int]:
        """Number of raw records (lines; CSV headers excluded) per source."""
        counts = dict.fromkeys(SOURCES, 0)
        for path, content in self.files.items():
            source = path.split("/", 1)[0]
            counts[source] += content.count(b"\n") - (1 if source == "crm" else 0)
        return counts

    def records_csv(self) -> bytes:
        """The ground truth as ``records.csv``: source, record_key, person_id, defect, copies."""
        rows = ([r.source, r.record_key, r.person_id, r.defect, str(r.copies)] for r in self.ground_truth)
        return _csv(TRUTH_COLUMNS, rows)

    def persons_csv(self) -> bytes:
        """The true persons as ``persons.csv``."""
        return _csv(PERSON_COLUMNS, ([p.row()[c] for c in PERSON_COLUMNS] for p in self.persons))


def _csv(header: tuple[str, ...], rows: object) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)  # type: ignore[arg-type]
    return buf.getvalue().encode("utf-8")


def _stage_rng(seed: int, stage: str) -> random.Random:
    # String seeds are hashed with SHA-512 by `random`, so this is stable across runs and
    # Python processes (unlike hash(), which PYTHONHASHSEED salts).
    return random.Random(f"cdplake:{seed}:{stage}")


def generate(demo: DemoConfig) -> GeneratedData:
    """Generate the demo landing files and their ground truth.

    Args:
        demo: scale (customers, days), seed, end date and defect/duplicate rates.

    Returns:
        The files for ``landing/`` and the answer key for ``ground_truth/``.

    Raises:
        ValueError: on a non-positive scale or a rate outside [0, 1).
    """
    if demo.customers < 1 or demo.days < 1:
        raise ValueError("demo.customers and demo.days must be positive")
    for name in ("bad_record_rate", "duplicate_rate"):
        if not 0 <= getattr(demo, name) < 1:
            raise ValueError(f"demo.{name} must be in [0, 1), got {getattr(demo, name)!r}")
    window = Window(demo.end_date, demo.days)
    persons = build_persons(_stage_rng(demo.seed, "persons"), demo.seed, window, demo.customers)
    sink = RecordSink(_stage_rng(demo.seed, "defects"), demo.bad_record_rate, demo.duplicate_rate)
    orders = OrderBook(_stage_rng(demo.seed, "orders"), window).plan(persons)
    EventSimulator(_stage_rng(demo.seed, "events"), window, sink).run(persons, orders)
    unsubscribed = EmailSimulator(_stage_rng(demo.seed, "email"), window, sink).run(persons, orders)
    CrmSimulator(_stage_rng(demo.seed, "crm"), window, sink).run(persons, unsubscribed)
    render_orders(sink, orders)
    return GeneratedData(files=sink.files(), ground_truth=tuple(sink.ground_truth()), persons=tuple(persons))
