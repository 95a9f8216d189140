"""Data-subject requests: find what the lake holds about one person, export it, erase it.

A person is named by a customer id, an email or a phone number (normalised as silver
normalises them). The identity tables say which customers that is (following merged ids
through ``customer_id_aliases``), which source records belong to them and which identifiers
those records carry. Every table of the lake that holds personal data has a rule here saying
how its rows of the person are found: by record key, by customer id, by identifier, or, for
raw text (bronze JSON, quarantined records), by the raw record's key or by the person's email
or phone appearing in it. Tables without personal data (segment sizes, file lineage, run
logs) have no rule.

:func:`export_subject` writes the matched rows of each table as JSON lines. :func:`erase_subject`
deletes them with one MERGE per rule, raw layers first and the identity tables (what finds
the person) last, so an erasure stopped half way is finished by running it again; then it
appends a row to ``privacy/erasure_log`` that holds counts and a hash of the request, no
personal data. Deleted rows stay in the tables' older versions until ``VACUUM`` removes
files past the retention period (README, "Privacy requests").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdplake.io.delta import read_table, table_exists

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdplake.config import EnvConfig

ERASURE_LOG = ("privacy", "erasure_log")
ERASURE_LOG_DDL = (
    "request_hash STRING, customers INT, records INT, rows_deleted MAP<STRING, BIGINT>, erased_at TIMESTAMP"
)


class SubjectNotFound(LookupError):
    """No customer in the identity tables matches the request."""


@dataclass(frozen=True)
class Subject:
    """One person as the identity tables know them.

    Attributes:
        request: what the request named, e.g. ``email:ann@x.com`` (hashed in the erasure log).
        customer_ids: the person's customer ids, current and merged-away ones.
        records: ``(source, record_key)`` of every source record resolved to them.
        identifiers: ``(id_type, id_value)`` those records carry.
        needles: lower-cased emails and phones of the person, searched for in raw text.
    """

    request: str
    customer_ids: frozenset[str]
    records: frozenset[tuple[str, str]]
    identifiers: frozenset[tuple[str, str]]
    needles: frozenset[str]


@dataclass(frozen=True)
class _Frames:
    customers: DataFrame  # customer_id
    records: DataFrame  # source, record_key
    identifiers: DataFrame  # id_type, id_value
    needles: DataFrame  # needle


@dataclass(frozen=True)
class TableRule:
    """How one table's rows of a person are found.

    Attributes:
        layer, name: the table.
        frame: which subject frame is matched: ``customers``, ``records``, ``identifiers``
            or ``needles``.
        on: the match as SQL over ``t`` (the table) and ``s`` (the frame).
    """

    layer: str
    name: str
    frame: str
    on: str


def _by_record(source: str, column: str) -> str:
    return f"s.source = '{source}' AND t.`{column}` = s.record_key"


def _raw_key(source: str, json_path: str) -> str:
    return f"s.source = '{source}' AND trim(get_json_object(t.value, '{json_path}')) = s.record_key"


def _contains(expr: str) -> str:
    return f"instr(lower(coalesce({expr}, '')), s.needle) > 0"


def _pair_end(side: str) -> str:
    return f"t.source_{side} = s.source AND t.record_key_{side} = s.record_key"


# Raw layers first, identity last (it is what finds the person when an erasure is re-run).
RULES: tuple[TableRule, ...] = (
    TableRule("bronze", "events", "records", _raw_key("events", "$.messageId")),
    TableRule("bronze", "events", "needles", _contains("t.value")),
    TableRule("bronze", "email", "records", _raw_key("email_events", "$.sg_event_id")),
    TableRule("bronze", "email", "needles", _contains("t.value")),
    TableRule("bronze", "orders", "records", _raw_key("orders", "$.order_id")),
    TableRule("bronze", "orders", "needles", _contains("t.value")),
    TableRule("bronze", "crm", "records", "s.source = 'crm_contacts' AND trim(t.contact_id) = s.record_key"),
    TableRule("bronze", "crm", "needles", _contains("concat_ws(' ', t.email, t.phone, t._corrupt_record)")),
    *(
        TableRule("quarantine", source, "needles", _contains("t.record"))
        for source in ("events", "email", "crm", "orders")
    ),
    TableRule("silver", "events", "records", _by_record("events", "message_id")),
    TableRule("silver", "email_events", "records", _by_record("email_events", "event_id")),
    TableRule("silver", "crm_contacts", "records", _by_record("crm_contacts", "contact_id")),
    TableRule("silver", "crm_contacts_history", "records", _by_record("crm_contacts", "contact_id")),
    TableRule("silver", "orders", "records", _by_record("orders", "order_id")),
    TableRule("gold", "customer_profile", "customers", "t.customer_id = s.customer_id"),
    TableRule("gold", "customer_profile_history", "customers", "t.customer_id = s.customer_id"),
    TableRule("gold", "segment_membership", "customers", "t.customer_id = s.customer_id"),
    TableRule("gold", "realtime_signals", "identifiers", "t.id_type = s.id_type AND t.id_value = s.id_value"),
    TableRule("quality", "dq_results", "needles", _contains("concat_ws(' ', t.observed_value, t.details)")),
    TableRule("identity", "probabilistic_edges", "records", _pair_end("l")),
    TableRule("identity", "probabilistic_edges", "records", _pair_end("r")),
    TableRule("identity", "scored_records", "records", "t.source = s.source AND t.record_key = s.record_key"),
    TableRule(
        "identity", "blocked_identifiers", "records", "t.source = s.source AND t.record_key = s.record_key"
    ),
    TableRule("identity", "customer_links", "customers", "t.customer_id = s.customer_id"),
    TableRule("identity", "identity_changes", "customers", "t.customer_id = s.customer_id"),
    TableRule("identity", "identity_changes", "customers", "t.related_id = s.customer_id"),
    TableRule("identity", "customer_id_aliases", "customers", "t.customer_id = s.customer_id"),
    TableRule("identity", "customer_id_aliases", "customers", "t.old_id = s.customer_id"),
    TableRule("identity", "customer_map", "customers", "t.customer_id = s.customer_id"),
    TableRule("identity", "identifiers", "records", "t.source = s.source AND t.record_key = s.record_key"),
    TableRule("identity", "record_customer", "customers", "t.customer_id = s.customer_id"),
)


def _normalised(spark: SparkSession, env: EnvConfig, id_type: str, value: str) -> str | None:
    """The value as silver stores it (the same column functions), None when it is not valid."""
    from cdplake.silver.columns import normalize_email, normalize_phone

    one = spark.createDataFrame([(value,)], "v string")
    if id_type == "email":
        col: Column = normalize_email(F.col("v"))
    elif id_type == "phone":
        col = normalize_phone(F.col("v"), env.pipeline.default_phone_region)
    else:
        return value.strip() or None
    return one.select(col.alias("v")).first()["v"]


def find_subject(
    spark: SparkSession,
    env: EnvConfig,
    *,
    customer_id: str | None = None,
    email: str | None = None,
    phone: str | None = None,
) -> Subject:
    """The person named by exactly one of ``customer_id``, ``email`` or ``phone``.

    Raises:
        ValueError: not exactly one is given, or it does not normalise to a valid value.
        SubjectNotFound: no customer carries it.
    """
    given = {k: v for k, v in (("customer_id", customer_id), ("email", email), ("phone", phone)) if v}
    if len(given) != 1:
        raise ValueError("name the person by exactly one of customer_id, email or phone")
    ((kind, raw),) = given.items()

    def table(name: str) -> DataFrame:
        path = env.paths.table("identity", name)
        if not table_exists(spark, path):
            raise SubjectNotFound(f"identity/{name} does not exist: resolve identities first")
        return read_table(spark, path)

    value = _normalised(spark, env, kind, raw)
    if value is None:
        raise ValueError(f"{kind} {raw!r} is not a valid {kind}")
    request = f"{kind}:{value}"
    if kind == "customer_id":
        start = {value}
    else:
        hits = table("customer_map").where((F.col("id_type") == kind) & (F.col("id_value") == value))
        start = {r["customer_id"] for r in hits.select("customer_id").distinct().collect()}
    # Ids merged into one of these, or one of these merged into: the same person. One small
    # query per link of the chain.
    aliases = table("customer_id_aliases").select("old_id", "customer_id")
    ids, frontier = set(start), set(start)
    while frontier:
        near = aliases.where(
            F.col("old_id").isin(sorted(frontier)) | F.col("customer_id").isin(sorted(frontier))
        )
        found = {v for r in near.collect() for v in (r["old_id"], r["customer_id"]) if v}
        frontier = found - ids
        ids |= found
    records = {
        (r["source"], r["record_key"])
        for r in table("record_customer").where(F.col("customer_id").isin(sorted(ids))).collect()
    }
    if not records:
        raise SubjectNotFound(f"no customer has {request}")
    frame = spark.createDataFrame(sorted(records), "source string, record_key string")
    carried = table("identifiers").join(frame, ["source", "record_key"], "left_semi")
    identifiers = {
        (r["id_type"], r["id_value"]) for r in carried.select("id_type", "id_value").distinct().collect()
    }
    needles = {v.lower() for t, v in identifiers if t in ("email", "phone") and v}
    if kind in ("email", "phone"):
        needles.add(value.lower())
    return Subject(request, frozenset(ids), frozenset(records), frozenset(identifiers), frozenset(needles))


def _frames(spark: SparkSession, subject: Subject) -> _Frames:
    return _Frames(
        customers=spark.createDataFrame([(c,) for c in sorted(subject.customer_ids)], "customer_id string"),
        records=spark.createDataFrame(sorted(subject.records), "source string, record_key string"),
        identifiers=spark.createDataFrame(sorted(subject.identifiers), "id_type string, id_value string"),
        needles=spark.createDataFrame([(n,) for n in sorted(subject.needles)], "needle string"),
    )


def _key(rule: TableRule) -> str:
    return f"{rule.layer}/{rule.name}"


def _existing_tables(spark: SparkSession, env: EnvConfig) -> dict[str, str]:
    """``layer/table`` → path of every table some rule names that the lake has (checked once each)."""
    paths = {_key(r): env.paths.table(r.layer, r.name) for r in RULES}
    return {key: path for key, path in paths.items() if table_exists(spark, path)}


def subject_rows(spark: SparkSession, env: EnvConfig, subject: Subject) -> dict[str, DataFrame]:
    """``layer/table`` → the table's rows of the person (tables that exist), each row once."""
    frames, tables = _frames(spark, subject), _existing_tables(spark, env)
    out: dict[str, DataFrame] = {}
    earlier: dict[str, list[TableRule]] = {}
    for rule in RULES:
        key = _key(rule)
        path = tables.get(key)
        if path is None:
            continue
        rows = read_table(spark, path).alias("t")
        for before in earlier.get(key, []):  # rows an earlier rule of the table matched
            rows = rows.join(_frame(frames, before), F.expr(before.on), "left_anti").alias("t")
        matched = rows.join(_frame(frames, rule), F.expr(rule.on), "left_semi")
        out[key] = out[key].unionByName(matched) if key in out else matched
        earlier.setdefault(key, []).append(rule)
    return out


def _frame(frames: _Frames, rule: TableRule) -> DataFrame:
    return F.broadcast(getattr(frames, rule.frame)).alias("s")


def export_subject(spark: SparkSession, env: EnvConfig, subject: Subject, out: str) -> dict[str, int]:
    """Write the person's rows of every table as JSON lines under ``out/<layer>/<table>/``.

    Also writes ``out/manifest.json`` (the request, the customer ids, rows per table).

    Returns:
        Rows exported per ``layer/table``.
    """
    from cdplake.identity.probabilistic import _write_text

    counts: dict[str, int] = {}
    for key, rows in subject_rows(spark, env, subject).items():
        pinned = rows.localCheckpoint(eager=True)
        counts[key] = pinned.count()
        pinned.coalesce(1).write.mode("overwrite").json(f"{out}/{key}")
    manifest = {
        "request": subject.request,
        "customer_ids": sorted(subject.customer_ids),
        "records": len(subject.records),
        "rows": counts,
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    _write_text(spark, f"{out}/manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
    return counts


def erase_subject(spark: SparkSession, env: EnvConfig, subject: Subject) -> dict[str, int]:
    """Delete the person's rows from every table, raw layers first and identity last.

    One MERGE with an unconditional delete per rule. Running it again deletes nothing more
    (or finishes an erasure that stopped half way). Appends counts and a SHA-256 of the
    request to ``privacy/erasure_log``.

    Returns:
        Rows deleted per ``layer/table``.
    """
    from delta.tables import DeltaTable

    frames, tables = _frames(spark, subject), _existing_tables(spark, env)
    deleted: dict[str, int] = {}
    for rule in RULES:
        key = _key(rule)
        path = tables.get(key)
        if path is None:
            continue
        target = DeltaTable.forPath(spark, path).alias("t")
        metrics = target.merge(_frame(frames, rule), rule.on).whenMatchedDelete().execute()
        row = metrics.first() if metrics is not None else None
        deleted[key] = deleted.get(key, 0) + (int(row["num_deleted_rows"]) if row is not None else 0)
    log = spark.createDataFrame(
        [
            (
                hashlib.sha256(subject.request.encode("utf-8")).hexdigest(),
                len(subject.customer_ids),
                len(subject.records),
                deleted,
                dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
            )
        ],
        ERASURE_LOG_DDL,
    )
    log.write.format("delta").mode("append").save(env.paths.table(*ERASURE_LOG))
    return deleted
