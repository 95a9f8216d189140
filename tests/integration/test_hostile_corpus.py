"""A corpus of hostile landing files, built here in code, through landing → bronze → silver.

Every case ends in silver, in quarantine with a reason, or (for whole files) in
``bronze/<source>_files`` with a status: never a crashed stream, never a silent drop. The run
reconciles: bronze rows = silver rows + quarantined + deduplicated, per source.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdplake.bronze import CRM_COLUMNS, IngestResult, ingest_all
from cdplake.io.delta import read_table
from cdplake.silver import SilverResult, build_silver

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
T1 = dt.datetime(2026, 10, 6, 1, 0, tzinfo=UTC)
B = "run-1:0"  # everything lands before the run: one micro-batch per source
QUARANTINE = (
    "record STRING, reasons ARRAY<STRING>, _source_file STRING, _batch_id STRING, _quarantined_at TIMESTAMP"
)
FILES = "file STRING, rows BIGINT, status STRING"
LINEAGE = ", _source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING"
EVENTS = (
    "message_id STRING, type STRING, event STRING, user_id STRING, anonymous_id STRING, "
    "previous_id STRING, email STRING, phone STRING, first_name STRING, last_name STRING, "
    "event_ts TIMESTAMP, page_url STRING, product_id STRING, product_category STRING, "
    "price DECIMAL(18,2), quantity INT, order_id STRING, revenue DECIMAL(18,2), currency STRING, "
    "properties STRING, traits STRING" + LINEAGE
)
EMAIL = (
    "event_id STRING, message_id STRING, event STRING, email STRING, event_ts TIMESTAMP, url STRING, "
    "bounce_type STRING, reason STRING, campaign STRING, user_agent STRING" + LINEAGE
)
BIG = "x" * (1024 * 1024)  # a 1 MB string field


def land(env, source: str, name: str, content: bytes | str, day: str = "2026-10-05") -> str:
    """Write one landing file; returns the URI Spark reports as its ``_source_file``."""
    path = Path(env.paths.landing(source)) / day / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return f"file:{path}"


def msg(**fields) -> str:
    """One compact JSON line, as a Segment library would send it (non-ASCII unescaped)."""
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)


def page(mid, ts="2026-10-05T10:00:00Z", **more) -> str:
    return msg(messageId=mid, type="page", anonymousId="a1", timestamp=ts, **more)


def truncated_gzip(lines: list[str], cut_inside: str) -> bytes:
    """A gzip of ``lines`` cut off a few bytes into the line ``cut_inside``.

    Level 0 stores the bytes uncompressed, so where the cut falls is exact: the lines before
    ``cut_inside`` can be read back, then the stream ends early (no deflate end, no trailer).
    """
    blob = gzip.compress("".join(line + "\n" for line in lines).encode(), compresslevel=0, mtime=0)
    return blob[: blob.index(cut_inside.encode()) + 5]


def row(ddl: str, **values):
    """A tuple in the column order of ``ddl``, every column not given left null."""
    names = [part.strip().split(" ")[0] for part in ddl.split(", ") if " " in part.strip()]
    names = [n for n in names if n.isidentifier()]
    unknown = set(values) - set(names)
    assert not unknown, unknown
    return tuple(values.get(n) for n in names)


def ts(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_hostile_corpus_ends_in_silver_or_quarantine_never_a_crash(spark, lake_env):
    paths = lake_env.paths
    # ---- events: one file with a case per line --------------------------------------------
    future = page("p8", "2031-01-01T00:00:00Z")
    identify_unicode = msg(
        messageId="i1",
        type="identify",
        userId="u1",
        timestamp="2026-10-05T09:00:00Z",
        traits={"firstName": "  zoë 😀 ", "lastName": "ÅSTRÖM", "email": " Zoe.Astrom+News@Example.COM ",
                "phone": "07700 900123"},
    )  # fmt: skip
    identify_spaced_email = msg(
        messageId="i2", type="identify", userId="u2", timestamp="2026-10-05T09:00:00Z",
        traits={"email": "ann smith@example.com"},
    )  # fmt: skip
    unknown_field = page("p9", experiment={"arm": "B"})
    big = msg(messageId="big1", type="track", event="Viewed", anonymousId="a1",
              timestamp="2026-10-05T10:00:00Z", properties={"title": BIG})  # fmt: skip
    bad_lines = {
        '{"messageId":"bad1","type":"page"': ["malformed_json"],  # cut short mid-write
        "not json at all": ["malformed_json"],
        msg(messageId=None, type="page", anonymousId="a1", timestamp="2026-10-05T10:00:00Z"): [
            "missing_message_id"
        ],
        page("w1", properties="not an object"): ["type_mismatch:properties"],
        msg(messageId=42, type="page", anonymousId="a1", timestamp="2026-10-05T10:00:00Z"): [
            "type_mismatch:messageId"
        ],
        msg(messageId="s1", type="screen", anonymousId="a1", timestamp="2026-10-05T10:00:00Z"): [
            "unknown_type"
        ],
        page("t1", "2026-10-05T25:61:00Z"): ["unparseable_timestamp"],
        # parses, but years ahead of the clock: the plausibility rule of conf/quality/events.yaml
        future: ["rule:events_event_ts_not_future"],
    }
    good_pages = {
        # every timestamp format, and what it means in UTC
        "p1": ("2026-10-05T10:00:00+05:30", ts(2026, 10, 5, 4, 30)),
        "p2": ("2026-10-05T10:00:00Z", ts(2026, 10, 5, 10, 0)),
        "p3": ("2026-10-05T10:00:00.250-04:00", ts(2026, 10, 5, 14, 0, 0, 250000)),
        "p4": (1791200000, ts(2026, 10, 5, 11, 33, 20)),  # epoch seconds
        "p5": (1791200000123, ts(2026, 10, 5, 11, 33, 20, 123000)),  # epoch milliseconds
        "p6": ("1791200000", ts(2026, 10, 5, 11, 33, 20)),  # epoch seconds as a string
        "p7": ("2026-10-05 10:00:00", ts(2026, 10, 5, 10, 0)),  # no offset: read as UTC
    }
    pages = [page(mid, when) for mid, (when, _) in good_pages.items()]
    lines = [
        *pages,
        page("p2"),
        identify_unicode,
        identify_spaced_email,
        unknown_field,
        big,
        *bad_lines,
    ]
    ev_main = land(lake_env, "events", "events-0001.jsonl", "".join(line + "\n" for line in lines))
    # the same file dropped twice under two names
    twice = page("p10") + "\n" + page("p11") + "\n"
    ev_twice_a = land(lake_env, "events", "events-0002.jsonl", twice)
    ev_twice_b = land(lake_env, "events", "events-0002-resent.jsonl", twice)
    # a gzip cut off inside its third line: the first two are read, the file is reported
    gz_lines = [page("g1"), page("g2"), page("g3")]
    ev_gz = land(lake_env, "events", "events-0003.jsonl.gz", truncated_gzip(gz_lines, page("g3")))
    ev_empty = land(lake_env, "events", "events-0004.jsonl", b"")

    # ---- email: spaces, plus tags, upper case, types, ids ----------------------------------
    e1 = msg(email=" Ann.Smith+Promo@EXAMPLE.com ", timestamp=1791200000123, event="delivered",
             sg_event_id="e1", sg_message_id="s1")  # fmt: skip
    email_bad = {
        msg(email="ann smith@example.com", timestamp=1791200000, event="open", sg_event_id="e2"): [
            "invalid_email"
        ],
        msg(
            email="a@example.com", timestamp=1791200000, event="open", sg_event_id="e3", sg_machine_open="yes"
        ): ["type_mismatch:sg_machine_open"],
        msg(email="a@example.com", timestamp=1791200000, event="open", sg_event_id=None): [
            "missing_event_id"
        ],
        msg(email="a@example.com", timestamp=1791200000, event="opened_twice", sg_event_id="e5"): [
            "unknown_event"
        ],  # a 1 MB "email" of dots: rejected by length before the pattern sees it
        msg(email="a." * 500_000 + "@example.com", timestamp=1791200000, event="open", sg_event_id="e6"): [
            "invalid_email"
        ],
    }
    em = land(lake_env, "email", "email-0001.jsonl", "".join(x + "\n" for x in [e1, *email_bad]))

    # ---- orders: a total sent as a string ---------------------------------------------------
    item = {
        "sku": "k1",
        "product_id": "p1",
        "name": "Sock",
        "category": "Apparel",
        "quantity": 2,
        "unit_price": 4.5,
    }
    o1 = msg(order_id="o1", store_id="s1", channel="pos", ordered_at="2026-10-05T12:00:00+01:00", currency="GBP",
             status="completed", customer={"name": "  MARY  o'neil "}, line_items=[item], total=9)  # fmt: skip
    o2 = msg(order_id="o2", store_id="s1", channel="pos", ordered_at="2026-10-05T12:00:00Z", currency="GBP",
             status="completed", customer={}, line_items=[item], total="12.50")  # fmt: skip
    od = land(lake_env, "orders", "orders-0001.jsonl", f"{o1}\n{o2}\n")

    # ---- crm: embedded newlines, ragged rows, a reordered/extra header, header only, none ---
    header = ",".join(CRM_COLUMNS)
    good_c1 = 'c1,  josé ,Ñúñez, JOSE@Example.com ,07700 900123,"1 High St\nFlat 2",london,sw1a1aa,gb,1985-03-07,gold,yes,,2026-10-01T12:00:00Z'
    too_few = "c2,Bob"
    too_many = "c3,Cy,Lee,cy@example.com,,,,,,,,,,2026-10-01T12:00:00Z,surplus"
    no_id = ",Dee,Doe,dee@example.com,,,,,,,,,,2026-10-01T12:00:00Z"
    # a 100 KB quoted field full of commas and escaped quotes: one field, not thousands
    long_quoted = 'c5,Long,Text,,,,,,,,"' + 'a "" b, ' * 12_500 + '",,,2026-10-01T12:00:00Z'
    crm_a = land(
        lake_env,
        "crm",
        "contacts-a.csv",
        "\n".join([header, good_c1, too_few, too_many, no_id, long_quoted]) + "\n",
    )
    # two columns swapped and a column the contract does not know: mapped by name, rescued
    swapped = header.replace("email,phone", "phone,email") + ",preferred_store"
    crm_b = land(
        lake_env,
        "crm",
        "contacts-b.csv",
        f"{swapped}\nc9,Eve,Ng,07700 900456,eve@example.com,,,,,,,,,2026-10-01T12:00:00Z,s1\n",
    )
    crm_c = land(lake_env, "crm", "contacts-c.csv", header + "\n")
    # no header at all: nothing can be trusted, every line is kept as a corrupt record
    headless = [
        "c10,Fay,Fox,fay@example.com,,,,,,,,,,2026-10-01T12:00:00Z",
        "c11,Gus,Gray,,,,,,,,,,,2026-10-01T12:00:00Z",
    ]
    crm_d = land(lake_env, "crm", "contacts-d.csv", "\n".join(headless) + "\n")

    ingested = ingest_all(spark, lake_env, "run-1", clock=lambda: T1)
    silver = build_silver(spark, lake_env, "run-1", clock=lambda: T1, dataset_checks=False)

    # ---- bronze: every readable line kept; every file accounted for ------------------------
    n_main = len(lines)  # 7 pages + dup p2 + future + 2 identifies + p9 + big + 7 bad = 20
    assert n_main == 20
    assert ingested == {
        # 20 + 2 + 2 + 2 (g1, g2 before the cut) + 0; five files, two of them with problems
        "events": IngestResult("events", rows=n_main + 6, files=5, problem_files=2, batches=1),
        "email": IngestResult("email", rows=6, files=1, batches=1),
        "orders": IngestResult("orders", rows=2, files=1, batches=1),
        # 5 rows in a, 1 in b, 0 in c (empty), 2 in d (no header)
        "crm": IngestResult("crm", rows=8, files=4, problem_files=2, batches=1),
    }
    files = lambda source: read_table(spark, paths.table("bronze", f"{source}_files")).select(  # noqa: E731
        "file", "rows", "status"
    )
    assertDataFrameEqual(
        files("events"),
        spark.createDataFrame(
            [
                (ev_main, n_main, "ingested"),
                (ev_twice_a, 2, "ingested"),
                (ev_twice_b, 2, "ingested"),
                (ev_gz, 2, "corrupt_file"),
                (ev_empty, 0, "empty_file"),
            ],
            FILES,
        ),
    )
    assertDataFrameEqual(
        files("crm"),
        spark.createDataFrame(
            [
                (crm_a, 5, "ingested"),
                (crm_b, 1, "ingested"),
                (crm_c, 0, "empty_file"),
                (crm_d, 2, "header_mismatch"),
            ],
            FILES,
        ),
    )
    crm_details = {
        r["file"]: r["detail"] for r in read_table(spark, paths.table("bronze", "crm_files")).collect()
    }
    assert crm_details[crm_b] == "rescued columns ['preferred_store']"
    assertDataFrameEqual(
        read_table(spark, paths.table("bronze", "crm"))
        .where(F.col("_source_file") == crm_b)
        .select("contact_id", "email", "phone", "_corrupt_record", "_rescued_data"),
        spark.createDataFrame(
            [("c9", "eve@example.com", "07700 900456", None, '{"preferred_store":"s1"}')],
            "contact_id STRING, email STRING, phone STRING, _corrupt_record STRING, _rescued_data STRING",
        ),
    )
    details = {
        r["file"]: r["detail"] for r in read_table(spark, paths.table("bronze", "events_files")).collect()
    }
    assert details[ev_gz] == "java.io.EOFException: Unexpected end of input stream"
    bronze_events = read_table(spark, paths.table("bronze", "events"))
    # the raw lines are untouched, the unknown field is rescued, the type drift named
    assertDataFrameEqual(
        bronze_events.where(F.col("_source_file") == ev_main).select(
            "value", "_rescued_data", "_contract_errors"
        ),
        spark.createDataFrame(
            [(x, None, []) for x in lines if x not in (unknown_field, *list(bad_lines)[3:5])]
            + [
                (unknown_field, '{"experiment":{"arm":"B"}}', []),
                (list(bad_lines)[3], '{"properties":"not an object"}', ["type_mismatch:properties"]),
                (list(bad_lines)[4], '{"messageId":42}', ["type_mismatch:messageId"]),
            ],
            "value STRING, _rescued_data STRING, _contract_errors ARRAY<STRING>",
        ),
    )
    assertDataFrameEqual(
        bronze_events.where(F.col("_source_file") == ev_gz).select("value"),
        spark.createDataFrame([(page("g1"),), (page("g2"),)], "value STRING"),
    )

    # ---- silver and quarantine --------------------------------------------------------------
    lin = {"_ingested_at": T1, "_batch_id": B}
    expected_events = [
        row(EVENTS, message_id=mid, type="page", anonymous_id="a1", event_ts=utc, _source_file=ev_main, **lin)
        for mid, (_, utc) in good_pages.items()
    ] + [
        row(EVENTS, message_id="i1", type="identify", user_id="u1", email="zoe.astrom+news@example.com",
            phone="+447700900123", first_name="Zoë 😀", last_name="Åström", event_ts=ts(2026, 10, 5, 9),
            # the raw traits JSON; Spark's writer escapes the emoji (the same JSON string)
            traits=msg(**json.loads(identify_unicode)["traits"]).replace("😀", "\\uD83D\\uDE00"),
            _source_file=ev_main, **lin),
        # an invalid optional email is nulled, the event kept (bronze keeps the raw value)
        row(EVENTS, message_id="i2", type="identify", user_id="u2", event_ts=ts(2026, 10, 5, 9),
            traits='{"email":"ann smith@example.com"}', _source_file=ev_main, **lin),
        row(EVENTS, message_id="p9", type="page", anonymous_id="a1", event_ts=ts(2026, 10, 5, 10),
            _source_file=ev_main, **lin),
        row(EVENTS, message_id="big1", type="track", event="Viewed", anonymous_id="a1", event_ts=ts(2026, 10, 5, 10),
            properties=msg(title=BIG), _source_file=ev_main, **lin),
        # the file dropped twice: one row per message; ties go to the first file name
        *[row(EVENTS, message_id=m, type="page", anonymous_id="a1", event_ts=ts(2026, 10, 5, 10),
              _source_file=min(ev_twice_a, ev_twice_b), **lin) for m in ("p10", "p11")],
        *[row(EVENTS, message_id=m, type="page", anonymous_id="a1", event_ts=ts(2026, 10, 5, 10),
              _source_file=ev_gz, **lin) for m in ("g1", "g2")],
    ]  # fmt: skip
    assertDataFrameEqual(
        read_table(spark, paths.table("silver", "events")), spark.createDataFrame(expected_events, EVENTS)
    )
    assertDataFrameEqual(
        read_table(spark, paths.table("quarantine", "events")),
        spark.createDataFrame([(x, r, ev_main, B, T1) for x, r in bad_lines.items()], QUARANTINE),
    )
    assertDataFrameEqual(
        read_table(spark, paths.table("silver", "email_events")),
        spark.createDataFrame(
            [row(EMAIL, event_id="e1", message_id="s1", event="delivered", email="ann.smith+promo@example.com",
                 event_ts=ts(2026, 10, 5, 11, 33, 20, 123000), _source_file=em, **lin)],
            EMAIL,
        ),
    )  # fmt: skip
    assertDataFrameEqual(
        read_table(spark, paths.table("quarantine", "email")),
        spark.createDataFrame([(x, r, em, B, T1) for x, r in email_bad.items()], QUARANTINE),
    )
    assertDataFrameEqual(
        read_table(spark, paths.table("silver", "orders")).select(
            "order_id", "order_ts", "customer_name", "total"
        ),
        # 12:00 at +01:00 = 11:00 UTC
        spark.createDataFrame(
            [("o1", ts(2026, 10, 5, 11), "Mary O'neil", Decimal("9.00"))],
            "order_id STRING, order_ts TIMESTAMP, customer_name STRING, total DECIMAL(18,2)",
        ),
    )
    assertDataFrameEqual(
        read_table(spark, paths.table("quarantine", "orders")),
        spark.createDataFrame([(o2, ["type_mismatch:total"], od, B, T1)], QUARANTINE),
    )
    assertDataFrameEqual(
        read_table(spark, paths.table("silver", "crm_contacts")).select(
            "contact_id", "first_name", "last_name", "email", "phone", "address_line1", "city", "postcode"
        ),
        spark.createDataFrame(
            [("c1", "José", "Ñúñez", "jose@example.com", "+447700900123", "1 High Street Flat 2", "London", "SW1A 1AA"),
             ("c9", "Eve", "Ng", "eve@example.com", "+447700900456", None, None, None)],
            ", ".join(f"{c} STRING" for c in ("contact_id", "first_name", "last_name", "email", "phone",
                                              "address_line1", "city", "postcode")),
        ),
    )  # fmt: skip
    assertDataFrameEqual(
        read_table(spark, paths.table("quarantine", "crm")).select("record", "reasons", "_source_file"),
        spark.createDataFrame(
            [
                (too_few, ["malformed_csv"], crm_a),
                (too_many, ["malformed_csv"], crm_a),
                *[(line, ["malformed_csv"], crm_d) for line in headless],
                # the 100 KB quoted value sits in the loyalty_tier column: parsed intact, then
                # quarantined by the allowed-values rule of conf/quality/crm_contacts.yaml
                (
                    json.dumps(
                        {
                            "contact_id": "c5",
                            "first_name": "Long",
                            "last_name": "Text",
                            "loyalty_tier": 'a " b, ' * 12_500,
                            "updated_at": "2026-10-01T12:00:00Z",
                        },
                        separators=(",", ":"),
                    ),
                    ["rule:crm_loyalty_tier_known"],
                    crm_a,
                ),
                # a parsed row is recorded as its non-empty columns
                (
                    '{"first_name":"Dee","last_name":"Doe","email":"dee@example.com","updated_at":"2026-10-01T12:00:00Z"}',
                    ["missing_contact_id"],
                    crm_a,
                ),
            ],
            "record STRING, reasons ARRAY<STRING>, _source_file STRING",
        ),
    )

    # ---- the whole run reconciles: bronze rows = silver + quarantined + deduplicated -------
    assert silver == {
        # 26 bronze rows = 15 kept (p1-p7, i1, i2, p9, big1, p10, p11, g1, g2)
        #   + 8 quarantined (7 by conform, p8 by a rule) + 3 deduplicated (the second p2,
        #   the resent p10 and p11)
        # every page here lacks a url (a warn rule: kept, counted)
        "events": SilverResult(
            "events",
            26,
            15,
            8,
            3,
            rows_inserted=15,
            batches=1,
            rule_failures=(
                ("events_event_ts_not_future", "quarantine", 1),
                ("events_page_has_url", "warn", 16),
            ),
        ),
        "email_events": SilverResult("email_events", 6, 1, 5, 0, rows_inserted=1, batches=1),
        # 8 = c1, c9 + 6 quarantined (2 ragged, 1 without id, 2 headless, c5 by a rule)
        # c1 opted in without a timestamp (a warn rule); both kept contacts start a history
        "crm_contacts": SilverResult(
            "crm_contacts",
            8,
            2,
            6,
            0,
            rows_inserted=2,
            batches=1,
            history_inserted=2,
            rule_failures=(
                ("crm_loyalty_tier_known", "quarantine", 1),
                ("crm_opt_in_has_timestamp", "warn", 1),
            ),
        ),
        "orders": SilverResult(
            "orders",
            2,
            1,
            1,
            0,
            rows_inserted=1,
            batches=1,
            rule_failures=(("orders_store_id_format", "warn", 1),),
        ),
    }
    for source, table in (
        ("events", "events"),
        ("email", "email_events"),
        ("orders", "orders"),
        ("crm", "crm_contacts"),
    ):
        bronze_rows = read_table(spark, paths.table("bronze", source)).count()
        silver_rows = read_table(spark, paths.table("silver", table)).count()
        quarantined = read_table(spark, paths.table("quarantine", source)).count()
        assert bronze_rows == silver_rows + quarantined + silver[table].rows_deduplicated, source
