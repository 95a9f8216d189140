"""Collects rendered records per source and day, injects bad and duplicate deliveries,
keeps the ground truth, and cuts the result into landing files.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
from dataclasses import dataclass, field
from typing import Any

from cdplake.landing.noise import spaced_email
from cdplake.landing.timeline import UTC

CRM_COLUMNS: tuple[str, ...] = (
    "contact_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "address_line1",
    "city",
    "postcode",
    "country",
    "date_of_birth",
    "loyalty_tier",
    "email_opt_in",
    "email_opt_in_at",
    "updated_at",
)
TRUTH_COLUMNS: tuple[str, ...] = ("source", "record_key", "person_id", "defect", "copies")

# Defect codes written to the ground truth's `defect` column.
MALFORMED_JSON = "malformed_json"
MISSING_KEY = "missing_key"
BAD_TIMESTAMP = "bad_timestamp"
BAD_EMAIL = "bad_email"
BAD_DATE = "bad_date"


@dataclass(frozen=True)
class GroundTruthRow:
    """Which true person a landing record belongs to.

    Attributes:
        source: ``events``, ``email``, ``crm`` or ``orders``.
        record_key: ``messageId``, ``sg_event_id``, ``contact_id`` or ``order_id``.
        person_id: the true person (``persons.csv``).
        defect: empty for a good record, else the deliberate defect code(s), ``;``-joined.
        copies: how many landing lines carry this key: 2 for a duplicate delivery, one per
            version for a CRM contact exported again after an update.
    """

    source: str
    record_key: str
    person_id: str
    defect: str
    copies: int


@dataclass(frozen=True)
class _JsonSpec:
    key: str
    timestamp: str
    email: tuple[str, ...]
    epoch: bool = False


_JSON_SPECS: dict[str, _JsonSpec] = {
    "events": _JsonSpec("messageId", "timestamp", ("traits", "email")),
    "email": _JsonSpec("sg_event_id", "timestamp", ("email",), epoch=True),
    "orders": _JsonSpec("order_id", "ordered_at", ("customer", "email")),
}


@dataclass
class _Truth:
    person_id: str
    defects: set[str] = field(default_factory=set)
    copies: int = 0


def _get(payload: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = payload
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _set(payload: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = payload
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


class RecordSink:
    """Where the source simulators put their records.

    Args:
        rng: the generator's RNG.
        bad_rate: share of corruptible records made deliberately bad.
        duplicate_rate: share of JSON records delivered twice (a webhook or export retry).
        max_lines: lines per JSON file before a day's records roll into the next file.
    """

    def __init__(self, rng: random.Random, bad_rate: float, duplicate_rate: float, max_lines: int = 2500):
        self.rng = rng
        self.bad_rate = bad_rate
        self.duplicate_rate = duplicate_rate
        self.max_lines = max_lines
        self._lines: dict[tuple[str, dt.date], list[tuple[float, int, str]]] = {}
        self._truth: dict[tuple[str, str], _Truth] = {}
        self._seq = 0

    def _remember(self, source: str, key: str, person_id: str, defect: str | None) -> None:
        truth = self._truth.setdefault((source, key), _Truth(person_id))
        if truth.person_id != person_id:
            raise ValueError(f"{source} key {key} given to two persons")  # a generator bug
        truth.copies += 1
        if defect:
            truth.defects.add(defect)

    def _append(self, source: str, day: dt.date, sort_ts: float, text: str) -> None:
        self._seq += 1
        self._lines.setdefault((source, day), []).append((sort_ts, self._seq, text))

    def add_json(
        self,
        source: str,
        when: dt.datetime,
        person_id: str,
        payload: dict[str, Any],
        *,
        corruptible: bool = True,
    ) -> None:
        """Render one JSON record into the file of its UTC day, maybe bad, maybe twice."""
        spec = _JSON_SPECS[source]
        key = str(payload[spec.key])
        day, ts = when.astimezone(UTC).date(), when.timestamp()
        defect = (
            self._pick_json_defect(spec, payload)
            if corruptible and self.rng.random() < self.bad_rate
            else None
        )
        text = self._corrupt_json(spec, payload, defect) if defect else _dumps(payload)
        self._remember(source, key, person_id, defect)
        self._append(source, day, ts, text)
        if defect is None and self.rng.random() < self.duplicate_rate:
            # The same bytes again a little later: a retried webhook or a re-sent batch.
            self._remember(source, key, person_id, None)
            self._append(source, day, ts + self.rng.uniform(1, 900), text)

    def _pick_json_defect(self, spec: _JsonSpec, payload: dict[str, Any]) -> str:
        choices = [MALFORMED_JSON, MISSING_KEY, BAD_TIMESTAMP]
        if _get(payload, spec.email):
            choices.append(BAD_EMAIL)
        return self.rng.choice(choices)

    def _corrupt_json(self, spec: _JsonSpec, payload: dict[str, Any], defect: str) -> str:
        bad = json.loads(_dumps(payload))  # a deep copy; the caller's dict stays intact
        if defect == MISSING_KEY:
            del bad[spec.key]
        elif defect == BAD_TIMESTAMP:
            bad[spec.timestamp] = self._bad_timestamp(str(bad[spec.timestamp]), spec.epoch)
        elif defect == BAD_EMAIL:
            _set(bad, spec.email, spaced_email(self.rng, str(_get(bad, spec.email))))
        text = _dumps(bad)
        if defect == MALFORMED_JSON:
            # A line cut short mid-write; cut after the key so the answer key can name it.
            after_key = text.index(json.dumps(str(bad[spec.key]))) + len(str(bad[spec.key])) + 2
            cut = max(after_key + 1, int(len(text) * self.rng.uniform(0.5, 0.9)))
            text = text[: min(cut, len(text) - 1)]
        return text

    def _bad_timestamp(self, good: str, epoch: bool) -> Any:
        if epoch:
            return self.rng.choice(["NaN", "", "17O0000000"])
        date = good[:10]
        return self.rng.choice(
            [f"{date}T25:61:00Z", "Invalid Date", f"{date} at noon", "0000-00-00T00:00:00Z"]
        )

    def add_csv_row(
        self, source: str, day: dt.date, when: dt.datetime, person_id: str, row: dict[str, str]
    ) -> None:
        """Add one CRM row to the export of ``day`` (maybe with a bad date or email)."""
        defect = None
        if self.rng.random() < self.bad_rate:
            row = dict(row)
            defect = self.rng.choice([BAD_DATE, BAD_TIMESTAMP] + ([BAD_EMAIL] if row["email"] else []))
            if defect == BAD_DATE:
                year = row["date_of_birth"][:4] or "1984"
                row["date_of_birth"] = self.rng.choice([f"{year}-02-30", f"{year}-13-01", f"31/02/{year}"])
            elif defect == BAD_TIMESTAMP:
                row["updated_at"] = self._bad_timestamp(row["updated_at"], epoch=False)
            else:
                row["email"] = spaced_email(self.rng, row["email"])
        self._remember(source, row["contact_id"], person_id, defect)
        self._append(source, day, when.timestamp(), _csv_line(row))

    def files(self) -> dict[str, bytes]:
        """Landing-relative path -> file content, e.g. ``events/2026-10-03/events-0001.jsonl``.

        Consumes the collected lines (a large demo would otherwise hold them twice).
        """
        out: dict[str, bytes] = {}
        for source, day in sorted(self._lines):
            ordered = [text for _, _, text in sorted(self._lines.pop((source, day)))]
            if source == "crm":
                header = _csv_line({c: c for c in CRM_COLUMNS})
                out[f"crm/{day}/contacts-{day:%Y%m%d}.csv"] = (header + "".join(ordered)).encode()
                continue
            for part, start in enumerate(range(0, len(ordered), self.max_lines), start=1):
                chunk = ordered[start : start + self.max_lines]
                out[f"{source}/{day}/{source}-{part:04d}.jsonl"] = ("\n".join(chunk) + "\n").encode()
        return out

    def ground_truth(self) -> list[GroundTruthRow]:
        """One row per (source, record key), sorted."""
        rows = []
        for source, key in sorted(self._truth):
            truth = self._truth[(source, key)]
            rows.append(
                GroundTruthRow(source, key, truth.person_id, ";".join(sorted(truth.defects)), truth.copies)
            )
        return rows


def _csv_line(row: dict[str, str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([row[c] for c in CRM_COLUMNS])
    return buf.getvalue()
