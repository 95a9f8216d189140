# Databricks notebook source
# MAGIC %md
# MAGIC # Streaming the lake and consuming segments
# MAGIC
# MAGIC This notebook lands seeded demo data in two waves and runs the streaming pipeline after
# MAGIC each (`run_stream_pipeline`, what `cdplake-stream` calls): the second cycle recomputes only
# MAGIC the customers the new files touched. Then the two reference consumers run:
# MAGIC
# MAGIC * the **outbox** (`cdplake-membership-outbox`): a stream over the membership change data
# MAGIC   feed that writes `entered` / `exited` events, exactly once, to a Delta outbox and JSON files;
# MAGIC * the **export** (`cdplake-export-segments`): one CSV and one JSON-lines file per segment with
# MAGIC   `email, first_name, customer_id, segment_id, entered_at`, consent checked again.
# MAGIC
# MAGIC **Parameters** (widgets; locally `CDPLAKE_WIDGET_<NAME>`): `env`, `customers`, `days`,
# MAGIC `lake_root` (empty: the environment's own), `as_of` (the evaluation time of every cycle).
# MAGIC
# MAGIC Locally: `.venv/bin/python notebooks/02_consumers.py` from the repository root.

# COMMAND ----------

import datetime as dt
import os

from pyspark.sql import functions as F

from cdplake.cli import parse_as_of
from cdplake.config import load_env
from cdplake.io.session import build_session
from cdplake.notebook import widget

env_name = widget("env", "local")
customers = widget("customers", "60")
days = widget("days", "6")
lake_root = widget("lake_root", "")
as_of = parse_as_of(widget("as_of", "2026-11-02T00:00:00"))

overrides = {"CDPLAKE__DEMO__CUSTOMERS": customers, "CDPLAKE__DEMO__DAYS": days}
if lake_root:
    overrides["CDPLAKE__STORAGE__ROOT"] = lake_root
cfg = load_env(env_name, environ={**os.environ, **overrides})
spark = build_session(cfg, app_name="cdplake-notebook-consumers")
paths = cfg.paths
print(f"environment {cfg.name}; lake at {cfg.storage.root}; as of {as_of:%Y-%m-%d %H:%M} UTC")

# COMMAND ----------

# MAGIC %md
# MAGIC ## 1. Two waves of files, one streaming cycle after each

# COMMAND ----------

from cdplake.landing import generate
from cdplake.landing.store import store_for
from cdplake.streaming import run_stream_pipeline

files = generate(cfg.demo).files
dates = sorted({p.split("/")[1] for p in files})
cut = dates[len(dates) // 2 - 1]  # wave 1: the first half of the days
landing = store_for(cfg, "landing")
cycles = []
for wave in (1, 2):
    for path in sorted(p for p in files if (p.split("/")[1] <= cut) == (wave == 1)):
        landing.put(path, files[path])
    for result in run_stream_pipeline(spark, cfg, trigger="availableNow", as_of=as_of):
        print(result.render())
        cycles.append(result)

# COMMAND ----------

# MAGIC %md
# MAGIC ## 2. The progress table: what each committed cycle read and recomputed

# COMMAND ----------

from cdplake.streaming import progress_path

spark.read.format("delta").load(progress_path(cfg)).orderBy("cycle_id").show(truncate=False)

# COMMAND ----------

# MAGIC %md
# MAGIC ## 3. Real-time signals: product views per visitor in sliding one-hour windows

# COMMAND ----------

signals = spark.read.format("delta").load(paths.table("gold", "realtime_signals"))
signals.orderBy(F.desc("window_end"), F.desc("product_views")).show(5, truncate=False)

# COMMAND ----------

# MAGIC %md
# MAGIC ## 4. The outbox: entered / exited events from the membership change feed

# COMMAND ----------

from cdplake.consumers import OutboxPaths, run_outbox

run_outbox(spark, cfg, "availableNow")
outbox_paths = OutboxPaths.of(cfg)
outbox = spark.read.format("delta").load(outbox_paths.table)
outbox_rows = outbox.count()
outbox.groupBy("segment_id", "event_type").count().orderBy("segment_id", "event_type").show(truncate=False)
outbox.select("event_type", "segment_id", "email", "first_name", "occurred_at").show(5, truncate=False)

# Running it again finds nothing new: the checkpoint remembers, and event ids are unique anyway.
run_outbox(spark, cfg, "availableNow")
outbox_rows_again = spark.read.format("delta").load(outbox_paths.table).count()
print(f"outbox rows: {outbox_rows} then {outbox_rows_again}")

# COMMAND ----------

# MAGIC %md
# MAGIC ## 5. The export: one file per segment for the email platform

# COMMAND ----------

from cdplake.consumers import export_segments

exports = export_segments(spark, cfg, paths.root.rstrip("/") + "/exports/" + f"{as_of:%Y-%m-%d}")
for item in exports:
    print(f"{item.segment_id:<20} {item.rows:>5} rows, {item.withheld} withheld -> {', '.join(item.files)}")
if exports and exports[0].rows:
    spark.read.option("header", True).csv(exports[0].files[0]).show(5, truncate=False)
