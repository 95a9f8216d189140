"""Streaming consumer: membership changes -> entered/exited events in an outbox.

Reads the change data feed of gold/segment_membership as a stream (every commit since the
table was created), turns inserted open stays into ``entered`` events and closed stays into
``exited`` events, adds the contact fields a sender needs from the current profile, and
writes each micro-batch

* into the Delta table ``outbox/membership_events`` by ``MERGE`` on ``event_id`` (insert if
  absent): a micro-batch replayed after a crash, or the whole feed replayed after the
  checkpoint was reset, adds nothing twice; and
* as JSON lines under ``<lake>/outbox/membership/batch=<id>/`` (overwritten on replay), for
  senders that poll files.

``event_id`` is a hash of what the event is about (type, segment, customer, version, stay
start), so it is the same however often the feed is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdplake.config.streaming import AVAILABLE_NOW, check_trigger
from cdplake.io.delta import merge_into, read_table, run_stream, table_exists
from cdplake.segments.membership import MEMBERSHIP_DDL, ensure_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from cdplake.config import EnvConfig

EVENT_COLUMNS = (
    "event_id",
    "event_type",
    "segment_id",
    "customer_id",
    "definition_version",
    "occurred_at",
    "entered_at",
    "qualified_values",
    "commit_version",
    "commit_timestamp",
)
CONTACT_COLUMNS = ("email", "first_name")


def membership_events(changes: DataFrame) -> DataFrame:
    """Entered/exited events from change-feed rows of gold/segment_membership.

    An ``insert`` of an open stay is an entry (at ``entered_at``); an ``update_postimage``
    that closes a stay is an exit (at ``exited_at``). Pre-images, deletes and any other
    update carry no membership change and yield nothing.

    Args:
        changes: membership rows plus ``_change_type``, ``_commit_version``,
            ``_commit_timestamp`` (a change-data-feed read, batch or streaming).

    Returns:
        Rows shaped like :data:`EVENT_COLUMNS`.
    """
    change = F.col("_change_type")
    entered = (change == "insert") & F.col("is_member")
    exited = (change == "update_postimage") & ~F.col("is_member") & F.col("exited_at").isNotNull()
    event_type = F.when(entered, F.lit("entered")).when(exited, F.lit("exited"))
    typed = changes.withColumn("event_type", event_type).where(F.col("event_type").isNotNull())
    event_id = F.sha2(
        F.concat_ws(
            "|",
            "event_type",
            "segment_id",
            "customer_id",
            F.col("definition_version").cast("string"),
            F.date_format("entered_at", "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"),
        ),
        256,
    )
    return typed.select(
        event_id.alias("event_id"),
        "event_type",
        "segment_id",
        "customer_id",
        "definition_version",
        F.when(F.col("event_type") == "entered", F.col("entered_at"))
        .otherwise(F.col("exited_at"))
        .alias("occurred_at"),
        "entered_at",
        "qualified_values",
        F.col("_commit_version").alias("commit_version"),
        F.col("_commit_timestamp").alias("commit_timestamp"),
    )


def with_contact(events: DataFrame, profile: DataFrame | None) -> DataFrame:
    """Add ``email`` and ``first_name`` from the profile (null when the customer has none)."""
    if profile is None:
        return events.select("*", *[F.lit(None).cast("string").alias(c) for c in CONTACT_COLUMNS])
    return events.join(profile.select("customer_id", *CONTACT_COLUMNS), "customer_id", "left").select(
        *EVENT_COLUMNS, *CONTACT_COLUMNS
    )


@dataclass(frozen=True)
class OutboxPaths:
    """Where the outbox consumer reads and writes."""

    membership: str
    profile: str
    table: str
    json_dir: str
    checkpoint: str

    @classmethod
    def of(cls, env: EnvConfig) -> OutboxPaths:
        return cls(
            membership=env.paths.table("gold", "segment_membership"),
            profile=env.paths.table("gold", "customer_profile"),
            table=env.paths.table("outbox", "membership_events"),
            json_dir=env.paths.root.rstrip("/") + "/outbox/membership",
            checkpoint=env.paths.checkpoint("outbox_membership"),
        )


def write_outbox_batch(
    batch: DataFrame, batch_id: int, paths: OutboxPaths, *, json_files: bool = True
) -> int:
    """Turn one change-feed micro-batch into outbox rows; returns the events in it.

    Idempotent: the table MERGE inserts only unseen ``event_id``s; the JSON folder of a batch
    id is overwritten. The JSON files are written first: they are what a mail platform picks
    up, so they do not wait for the MERGE (a crash between the two replays the batch, which
    rewrites the same folder and then MERGEs).
    """
    spark = batch.sparkSession
    profile = read_table(spark, paths.profile) if table_exists(spark, paths.profile) else None
    events = with_contact(membership_events(batch), profile).withColumn("published_at", F.current_timestamp())
    events = events.localCheckpoint(eager=True)
    count = events.count()
    if count == 0:
        return 0
    if json_files:
        (
            events.coalesce(1)
            .write.mode("overwrite")
            .option("timestampFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX")
            .json(f"{paths.json_dir}/batch={batch_id:012d}")
        )
    merge_into(events, paths.table, ["event_id"], insert_only=True)
    return count


def run_outbox(
    spark: SparkSession,
    env: EnvConfig,
    trigger: str = AVAILABLE_NOW,
    *,
    json_files: bool = True,
) -> StreamingQuery:
    """Stream the membership change feed into the outbox.

    Args:
        spark: the session.
        env: the environment (paths).
        trigger: ``availableNow`` (process every change so far, then return) or an interval
            such as ``"5 seconds"`` (the query keeps running; the caller stops it).
        json_files: also write the JSON-lines files.

    Returns:
        The streaming query (already terminated for ``availableNow``).
    """
    paths = OutboxPaths.of(env)
    check_trigger(trigger)
    # The feed must exist from the table's first version on; creating the (empty) table here
    # lets the consumer start before the first segment run.
    ensure_table(spark, paths.membership, MEMBERSHIP_DDL, change_data_feed=True)
    stream = (
        spark.readStream.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", 0)
        .load(paths.membership)
    )
    return run_stream(
        stream,
        checkpoint=paths.checkpoint,
        foreach_batch=lambda batch, batch_id: write_outbox_batch(
            batch, batch_id, paths, json_files=json_files
        ),
        trigger=trigger,
        query_name="outbox_membership",
    )
