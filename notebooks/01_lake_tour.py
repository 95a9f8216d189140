# Databricks notebook source
# MAGIC %md
# MAGIC # A tour of the cdplake lake
# MAGIC
# MAGIC This notebook lands a seeded demo data set, runs every layer once and then looks at what
# MAGIC each layer holds: raw records with lineage (bronze), conformed rows and the quarantine
# MAGIC (silver), customer ids (identity), profiles and segment membership (gold).
# MAGIC
# MAGIC **Parameters** (Databricks widgets; locally the `CDPLAKE_WIDGET_<NAME>` environment variables):
# MAGIC `env` (a file in `conf/env/`), `customers` (demo scale), `lake_root` (empty: the environment's own).
# MAGIC
# MAGIC Locally: `.venv/bin/python notebooks/01_lake_tour.py` from the repository root.

# COMMAND ----------

import os

from pyspark.sql import functions as F

from cdplake.config import load_env
from cdplake.io.session import build_session
from cdplake.notebook import widget

env_name = widget("env", "local")
customers = widget("customers", "200")
lake_root = widget("lake_root", "")

overrides = {"CDPLAKE__DEMO__CUSTOMERS": customers}
if lake_root:
    overrides["CDPLAKE__STORAGE__ROOT"] = lake_root
cfg = load_env(env_name, environ={**os.environ, **overrides})
spark = build_session(cfg, app_name="cdplake-notebook")
paths = cfg.paths
print(f"environment {cfg.name}; lake at {cfg.storage.root}")

# COMMAND ----------

# MAGIC %md
# MAGIC ## 1. Land demo data and run the lake once
# MAGIC `run_pipeline` is exactly what `make run` and `jobs/run_pipeline.py` call.

# COMMAND ----------

from cdplake.pipeline import run_pipeline

summary = run_pipeline(spark, cfg, generate=True)
print(summary.render())

# COMMAND ----------

# MAGIC %md
# MAGIC ## 2. Bronze: every raw record, untouched, with where and when it came from

# COMMAND ----------


def table(layer: str, name: str):
    return spark.read.format("delta").load(paths.table(layer, name))


bronze_events = table("bronze", "events")
bronze_events.select("value", "_source_file", "_ingested_at", "_batch_id").show(3, truncate=60)

# COMMAND ----------

# MAGIC %md
# MAGIC ## 3. Silver: typed, UTC, normalised, deduplicated, and a quarantine that says why

# COMMAND ----------

table("silver", "events").groupBy("type", "event").count().orderBy(F.desc("count")).show(12, truncate=False)
table("silver", "crm_contacts").select("contact_id", "first_name", "last_name", "email", "phone", "postcode").show(
    5, truncate=False
)
for source in ("events", "email", "crm", "orders"):
    q = table("quarantine", source)
    print(f"quarantine/{source}: {q.count()} rows")
    q.select(F.explode("reasons").alias("reason")).groupBy("reason").count().show(truncate=False)

# COMMAND ----------

# MAGIC %md
# MAGIC ## 4. Identity: one customer id per person across systems
# MAGIC The customers seen under the most identifiers, and the identifiers of one of them.

# COMMAND ----------

customer_map = table("identity", "customer_map")
busiest = customer_map.groupBy("customer_id").agg(
    F.count("*").alias("identifiers"), F.collect_set("id_type").alias("id_types")
)
busiest.orderBy(F.desc("identifiers")).show(5, truncate=False)
one = busiest.orderBy(F.desc("identifiers"), "customer_id").first()
if one is not None:
    customer_map.where(F.col("customer_id") == one["customer_id"]).orderBy("id_type", "id_value").show(
        truncate=False
    )

# COMMAND ----------

# MAGIC %md
# MAGIC ## 5. Gold: profiles and segments (consent already enforced)

# COMMAND ----------

profile = table("gold", "customer_profile")
profile.orderBy(F.desc("revenue")).show(5, truncate=False)
membership = table("gold", "segment_membership")
membership.where("is_member").groupBy("segment_id").count().show(truncate=False)

# COMMAND ----------

# MAGIC %md
# MAGIC ## 6. What a streaming consumer sees: the membership change data feed

# COMMAND ----------

changes = (
    spark.read.format("delta")
    .option("readChangeFeed", "true")
    .option("startingVersion", 0)
    .load(paths.table("gold", "segment_membership"))
)
changes.groupBy("segment_id", "_change_type").count().orderBy("segment_id", "_change_type").show(truncate=False)

# COMMAND ----------

# MAGIC %md
# MAGIC ## 7. Every table keeps its history (time travel)

# COMMAND ----------

from delta.tables import DeltaTable

DeltaTable.forPath(spark, paths.table("silver", "events")).history().select(
    "version", "timestamp", "operation", "operationMetrics"
).show(5, truncate=80)
