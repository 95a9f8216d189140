"""The demo-data generator: determinism, the landing contract, ground truth and real noise."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import re
from collections import defaultdict
from typing import Any

import pytest

from cdplake.config import DemoConfig
from cdplake.landing import CRM_COLUMNS, GeneratedData, generate

DEMO = DemoConfig(customers=150, days=14, seed=7, end_date=dt.date(2026, 11, 1))
JSON_KEYS = {"events": "messageId", "email": "sg_event_id", "orders": "order_id"}
TIMESTAMP_FIELDS = {"events": "timestamp", "email": "timestamp", "orders": "ordered_at"}
PATH = re.compile(
    r"^(events|email|orders)/(\d{4}-\d{2}-\d{2})/\1-\d{4}\.jsonl$|^crm/(\d{4}-\d{2}-\d{2})/contacts-\d{8}\.csv$"
)


@pytest.fixture(scope="module")
def data() -> GeneratedData:
    return generate(DEMO)


@dataclasses.dataclass
class Parsed:
    """Every landing line split into what parsed, what did not, and who it belongs to."""

    records: dict[str, list[dict[str, Any]]]  # source -> parsed records (CRM rows as dicts)
    unparseable: dict[str, list[str]]  # source -> raw lines that are not JSON
    truth: dict[tuple[str, str], tuple[str, str, int]]  # (source, key) -> (person, defect, copies)
    persons: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def parsed(data: GeneratedData) -> Parsed:
    records: dict[str, list[dict[str, Any]]] = defaultdict(list)
    unparseable: dict[str, list[str]] = defaultdict(list)
    for path, content in sorted(data.files.items()):
        source = path.split("/", 1)[0]
        text = content.decode("utf-8")
        if source == "crm":
            records[source].extend(csv.DictReader(io.StringIO(text)))
            continue
        for line in text.splitlines():
            try:
                records[source].append(json.loads(line))
            except json.JSONDecodeError:
                unparseable[source].append(line)
    truth = {(r.source, r.record_key): (r.person_id, r.defect, r.copies) for r in data.ground_truth}
    persons = {p.person_id: p.row() for p in data.persons}
    return Parsed(records, unparseable, truth, persons)


def _key(source: str, record: dict[str, Any]) -> str | None:
    return record.get("contact_id") if source == "crm" else record.get(JSON_KEYS[source])


def _person(parsed: Parsed, source: str, record: dict[str, Any]) -> str:
    return parsed.truth[(source, str(_key(source, record)))][0]


def _is_iso_with_offset(value: Any) -> bool:
    try:
        return dt.datetime.fromisoformat(str(value)).tzinfo is not None
    except ValueError:
        return False


def _has_inner_space(email: Any) -> bool:
    return isinstance(email, str) and " " in email.strip()


def _detected_defects(source: str, record: dict[str, Any]) -> set[str]:
    """The defects an independent validator finds in one parsed record."""
    found = set()
    if source == "crm":
        try:
            if record["date_of_birth"]:
                dt.date.fromisoformat(record["date_of_birth"])
        except ValueError:
            found.add("bad_date")
        if not _is_iso_with_offset(record["updated_at"]):
            found.add("bad_timestamp")
        if _has_inner_space(record["email"]):
            found.add("bad_email")
        return found
    ts = record[TIMESTAMP_FIELDS[source]]
    if not (isinstance(ts, int) if source == "email" else _is_iso_with_offset(ts)):
        found.add("bad_timestamp")
    email = {
        "events": (record.get("traits") or {}).get("email"),
        "email": record.get("email"),
        "orders": (record.get("customer") or {}).get("email"),
    }[source]
    if _has_inner_space(email):
        found.add("bad_email")
    return found


# -- determinism and layout -------------------------------------------------------------


def test_same_seed_gives_byte_identical_output_and_another_seed_does_not(data: GeneratedData):
    again = generate(DEMO)
    assert again.files == data.files
    assert again.records_csv() == data.records_csv()
    assert again.persons_csv() == data.persons_csv()

    other = generate(dataclasses.replace(DEMO, seed=8))
    assert other.files != data.files
    assert other.persons_csv() != data.persons_csv()


def test_files_follow_the_landing_layout_and_cover_the_window(data: GeneratedData):
    first_day, last_day = dt.date(2026, 10, 19), dt.date(2026, 11, 1)  # 14 days ending Nov 1
    days_by_source: dict[str, set[dt.date]] = defaultdict(set)
    for path in data.files:
        match = PATH.match(path)
        assert match, path
        day = dt.date.fromisoformat(match.group(2) or match.group(3))
        assert first_day <= day <= last_day, path
        days_by_source[path.split("/", 1)[0]].add(day)
    assert set(days_by_source) == {"events", "email", "crm", "orders"}
    assert days_by_source["events"] == {first_day + dt.timedelta(days=i) for i in range(14)}
    # CRM exports every third day plus the last day: 19, 22, 25, 28, 31 Oct and 1 Nov.
    assert len(days_by_source["crm"]) == 6


def test_crm_exports_have_the_exact_header_and_fourteen_fields(data: GeneratedData):
    header = ",".join(CRM_COLUMNS)
    assert header == (
        "contact_id,first_name,last_name,email,phone,address_line1,city,postcode,country,"
        "date_of_birth,loyalty_tier,email_opt_in,email_opt_in_at,updated_at"
    )
    for path, content in data.files.items():
        if path.startswith("crm/"):
            rows = list(csv.reader(io.StringIO(content.decode("utf-8"))))
            assert ",".join(rows[0]) == header
            assert rows[1:] and all(len(r) == len(CRM_COLUMNS) for r in rows[1:]), path


def test_records_in_a_file_are_in_time_order(parsed: Parsed):
    # Within the events feed, lines of one day are written in event-time order (checked on
    # clean records; duplicates are re-deliveries and may arrive a little later).
    stamps = [
        dt.datetime.fromisoformat(r["timestamp"])
        for r in parsed.records["events"]
        if _is_iso_with_offset(r.get("timestamp"))
    ]
    out_of_order = sum(1 for a, b in zip(stamps, stamps[1:], strict=False) if b < a - dt.timedelta(hours=1))
    assert out_of_order == 0


# -- ground truth ---------------------------------------------------------------------------


def test_unparseable_lines_are_exactly_the_malformed_ones_in_the_ground_truth(parsed: Parsed):
    for source, key_field in JSON_KEYS.items():
        keys = set()
        for line in parsed.unparseable[source]:
            match = re.search(rf'"{key_field}":"([^"]+)"', line)
            assert match, f"malformed {source} line without its key: {line[:80]}"
            keys.add(match.group(1))
        expected = {
            k for (s, k), (_, defect, _) in parsed.truth.items() if s == source and "malformed_json" in defect
        }
        assert keys == expected, source
    assert sum(len(v) for v in parsed.unparseable.values()) > 0


def test_every_record_key_has_a_ground_truth_row_and_vice_versa(parsed: Parsed):
    seen: dict[tuple[str, str], int] = defaultdict(int)
    keyless: dict[str, int] = defaultdict(int)
    for source, records in parsed.records.items():
        for record in records:
            key = _key(source, record)
            if key is None:
                keyless[source] += 1
            else:
                seen[(source, str(key))] += 1
    for source, lines in parsed.unparseable.items():
        for line in lines:
            seen[(source, re.search(rf'"{JSON_KEYS[source]}":"([^"]+)"', line).group(1))] += 1  # type: ignore[union-attr]

    missing = {k for k, (_, defect, _) in parsed.truth.items() if "missing_key" in defect}
    assert set(seen) == set(parsed.truth) - missing
    # `copies` counts the lines carrying a key: duplicates and CRM updates included.
    assert seen == {k: copies for k, (_, _, copies) in parsed.truth.items() if k not in missing}
    assert dict(keyless) == {s: sum(1 for (src, _) in missing if src == s) for s in keyless}
    assert max(seen.values()) >= 2
    assert all(person in parsed.persons for person, _, _ in parsed.truth.values())


def test_ground_truth_names_exactly_the_records_a_validator_rejects(parsed: Parsed):
    flagged: dict[tuple[str, str], set[str]] = defaultdict(set)
    for source, records in parsed.records.items():
        for record in records:
            key = _key(source, record)
            if key is not None:
                flagged[(source, str(key))] |= _detected_defects(source, record)
    expected = {
        k: set(defect.split(";")) - {"malformed_json"}
        for k, (_, defect, _) in parsed.truth.items()
        if defect and k in flagged
    }
    assert {k: v for k, v in flagged.items() if v} == {k: v for k, v in expected.items() if v}
    kinds = {d for _, defect, _ in parsed.truth.values() for d in defect.split(";") if d}
    assert {"malformed_json", "missing_key", "bad_timestamp", "bad_email"} <= kinds


def test_zero_rates_give_only_clean_single_deliveries():
    clean = generate(dataclasses.replace(DEMO, bad_record_rate=0.0, duplicate_rate=0.0))
    assert all(r.defect == "" for r in clean.ground_truth)
    assert all(r.copies == 1 for r in clean.ground_truth if r.source != "crm")
    for path, content in clean.files.items():
        if path.endswith(".jsonl"):
            for line in content.decode("utf-8").splitlines():
                json.loads(line)


def test_generate_rejects_bad_knobs():
    with pytest.raises(ValueError, match="bad_record_rate"):
        generate(dataclasses.replace(DEMO, bad_record_rate=1.5))
    with pytest.raises(ValueError, match="positive"):
        generate(dataclasses.replace(DEMO, customers=0))


# -- realistic noise -------------------------------------------------------------------------


def _emails_by_person(parsed: Parsed) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for source, records in parsed.records.items():
        for r in records:
            if _key(source, r) is None:
                continue
            email = {
                "events": (r.get("traits") or {}).get("email"),
                "email": r.get("email"),
                "orders": (r.get("customer") or {}).get("email"),
                "crm": r.get("email"),
            }[source]
            if email:
                out[_person(parsed, source, r)].add(email)
    return out


def test_people_show_up_with_several_email_spellings_and_changed_emails(parsed: Parsed):
    emails = _emails_by_person(parsed)
    assert any(len(spellings) >= 2 for spellings in emails.values())
    normalised = {p: {e.strip().lower() for e in spellings} for p, spellings in emails.items()}
    changed = [p for p, addresses in normalised.items() if len(addresses) >= 2]
    assert changed
    # ...and the persons table knows the old address of at least one of them.
    assert any(parsed.persons[p]["previous_email"] in normalised[p] for p in changed)


def test_households_share_an_address_and_a_last_name(parsed: Parsed):
    by_postcode: dict[str, set[str]] = defaultdict(set)
    for r in parsed.records["crm"]:
        by_postcode[r["postcode"].replace(" ", "").upper()].add(_person(parsed, "crm", r))
    shared = [people for people in by_postcode.values() if len(people) >= 2]
    assert shared
    assert any(len({parsed.persons[p]["last_name"] for p in people}) == 1 for people in shared)


def test_names_and_phones_are_written_in_more_than_one_way(parsed: Parsed):
    names: dict[str, set[str]] = defaultdict(set)
    phones: dict[str, set[str]] = defaultdict(set)
    for r in parsed.records["crm"]:
        names[_person(parsed, "crm", r)].add(f"{r['first_name']} {r['last_name']}")
        if r["phone"]:
            phones[_person(parsed, "crm", r)].add(r["phone"])
    for r in parsed.records["orders"]:
        if "order_id" in r:
            names[_person(parsed, "orders", r)].add(r["customer"]["name"])
            if r["customer"]["phone"]:
                phones[_person(parsed, "orders", r)].add(r["customer"]["phone"])
    true_names = {p: f"{row['first_name']} {row['last_name']}" for p, row in parsed.persons.items()}
    assert any(true_names[p] not in written for p, written in names.items())
    assert any(n.strip().lower() != true_names[p].lower() for p, written in names.items() for n in written)
    assert any(len(written) >= 2 for written in phones.values())
    assert any(phone.startswith("0") and " " in phone for written in phones.values() for phone in written)


def test_anonymous_sessions_are_later_identified_and_some_people_use_two_devices(parsed: Parsed):
    first_anonymous: dict[str, dt.datetime] = {}
    first_known: dict[str, dt.datetime] = {}
    anon_ids_per_user: dict[str, set[str]] = defaultdict(set)
    for r in parsed.records["events"]:
        if not _is_iso_with_offset(r.get("timestamp")):
            continue
        anon, when = r["anonymousId"], dt.datetime.fromisoformat(r["timestamp"])
        seen = first_known if "userId" in r else first_anonymous
        seen[anon] = min(when, seen.get(anon, when))
        if r["type"] == "identify" and "userId" in r:
            anon_ids_per_user[r["userId"]].add(anon)
    # Later means a later visit, not just the page view right before a login.
    identified_later = [
        a
        for a, t in first_known.items()
        if a in first_anonymous and first_anonymous[a] < t - dt.timedelta(hours=2)
    ]
    assert identified_later
    assert any(len(anons) >= 2 for anons in anon_ids_per_user.values())
    aliases = [r for r in parsed.records["events"] if r.get("type") == "alias"]
    assert aliases and all(r["previousId"] and r["userId"] for r in aliases)


def test_event_timestamps_carry_varied_offsets(parsed: Parsed):
    suffixes = {
        r["timestamp"][-6:] if not r["timestamp"].endswith("Z") else "Z"
        for r in parsed.records["events"]
        if _is_iso_with_offset(r.get("timestamp"))
    }
    assert {"Z", "+01:00", "+00:00"} <= suffixes
    assert any(s.startswith("-0") for s in suffixes)


def test_cart_abandoners_and_recent_purchasers_both_occur(parsed: Parsed):
    added, ordered = set(), set()
    last_order = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    for r in parsed.records["events"]:
        person = _person(parsed, "events", r) if "messageId" in r else None
        if r.get("event") == "Product Added":
            added.add(person)
        elif r.get("event") == "Order Completed":
            ordered.add(person)
            last_order = max(last_order, dt.datetime.fromisoformat(r["timestamp"]))
    assert added - ordered
    assert last_order >= dt.datetime(2026, 10, 26, tzinfo=dt.timezone.utc)


def test_web_order_completed_ids_match_the_orders_feed(parsed: Parsed):
    completed = {
        r["properties"]["order_id"]: r
        for r in parsed.records["events"]
        if r.get("event") == "Order Completed"
    }
    orders = {r["order_id"]: r for r in parsed.records["orders"] if "order_id" in r}
    web = {k for k, r in orders.items() if r["channel"] == "web"}
    assert completed and set(completed) == web
    for order_id in web:
        assert completed[order_id]["properties"]["revenue"] == orders[order_id]["total"]
        assert _person(parsed, "events", completed[order_id]) == _person(parsed, "orders", orders[order_id])
    assert any(r["channel"] == "pos" and not r["customer"]["email"] for r in orders.values())


def test_machine_opens_follow_delivery_within_seconds(parsed: Parsed):
    delivered = {
        r["sg_message_id"]: r["timestamp"] for r in parsed.records["email"] if r.get("event") == "delivered"
    }
    machine = [r for r in parsed.records["email"] if r.get("event") == "open" and r.get("sg_machine_open")]
    assert machine
    quick = [r for r in machine if isinstance(r["timestamp"], int) and r["sg_message_id"] in delivered]
    assert quick and all(0 <= r["timestamp"] - delivered[r["sg_message_id"]] <= 30 for r in quick)
    assert {r["event"] for r in parsed.records["email"]} >= {
        "processed",
        "delivered",
        "open",
        "click",
        "bounce",
    }


def test_crm_contacts_are_exported_again_when_updated(parsed: Parsed):
    versions: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in parsed.records["crm"]:
        versions[r["contact_id"]].append(r)
    updated = [v for v in versions.values() if len({r["updated_at"] for r in v}) >= 2]
    assert updated
    changed_fields = {
        c for v in updated for c in CRM_COLUMNS if c != "updated_at" and len({r[c] for r in v}) >= 2
    }
    assert changed_fields & {"email", "email_opt_in", "address_line1", "loyalty_tier"}


def test_some_people_live_in_one_source_only(parsed: Parsed):
    sources: dict[str, set[str]] = defaultdict(set)
    for (source, _), (person, _, _) in parsed.truth.items():
        sources[person].add(source)
    only = {next(iter(s)) for s in sources.values() if len(s) == 1}
    assert {"crm", "email", "orders"} <= only
