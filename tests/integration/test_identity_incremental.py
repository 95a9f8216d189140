"""Incremental identity runs: only what changed is resolved again, and the tables equal a full run's."""

from __future__ import annotations

import dataclasses
import os
from decimal import Decimal

import pytest
from lake_conf import REPO
from pyspark.testing import assertDataFrameEqual
from test_identity_resolve import ANN, BOB, CAT, SILVER_ROWS, cid, ts, write_silver

from cdplake.config import load_env
from cdplake.config.identity import load_identity_config
from cdplake.identity import resolve_identities
from cdplake.identity.resolve import IDENTITY_OUTPUTS

pytestmark = pytest.mark.integration

# Twenty people nobody else shares an identifier with: an incremental run must leave them alone.
BYSTANDERS = [
    dict(contact_id=f"crm-x{i:02d}", email=f"p{i}@q.com", first_name="P", updated_at=ts(9, 1))
    for i in range(20)
]
BEFORE = {**SILVER_ROWS, "crm_contacts": SILVER_ROWS["crm_contacts"] + BYSTANDERS}
# Cat's anonymous id is identified as Ann's user (a merge), Bob changes his CRM email while his
# order keeps the old one (a split), and Dan orders for the first time (a new customer).
AFTER = {
    **BEFORE,
    "events": BEFORE["events"]
    + [dict(message_id="m5", type="identify", user_id="user-ann", anonymous_id="anon-3", event_ts=ts(11, 1))],
    "crm_contacts": [
        dict(r, email="bob@new.com", updated_at=ts(11, 1)) if r["contact_id"] == "crm-2" else r
        for r in BEFORE["crm_contacts"]
    ],
    "orders": BEFORE["orders"]
    + [
        dict(
            order_id="ord-5",
            channel="pos",
            order_ts=ts(11, 1),
            status="completed",
            customer_email="dan@z.com",
            total=Decimal("9.00"),
        )
    ],
}
TABLES = (*IDENTITY_OUTPUTS, "identity_changes", "customer_id_aliases")


def incremental_config(**overrides):
    """conf/identity.yaml with incremental runs tried on these tiny lakes (``min_records: 0``)."""
    config = load_identity_config(REPO / "conf")
    return dataclasses.replace(
        config, incremental=dataclasses.replace(config.incremental, min_records=0), **overrides
    )


def lake(tmp_path, name):
    return load_env(
        "local",
        conf_dir=REPO / "conf",
        environ={**os.environ, "CDPLAKE__STORAGE__ROOT": str(tmp_path / name)},
    )


def identity_tables(spark, env):
    return {
        name: spark.read.format("delta").load(env.paths.table("identity", name)).drop("run_id", "changed_at")
        for name in TABLES
    }


@pytest.fixture(scope="module")
def full_run_2(spark, tmp_path_factory):
    """A lake resolved in full on ``BEFORE`` (run-1), then in full on ``AFTER`` (run-2)."""
    env = lake(tmp_path_factory.mktemp("identity-incremental"), "full")
    write_silver(spark, env, BEFORE)
    resolve_identities(spark, env, "run-1", config=incremental_config(), incremental=True)
    write_silver(spark, env, AFTER)
    resolve_identities(spark, env, "run-2", config=incremental_config())
    return identity_tables(spark, env)


def test_incremental_run_resolves_only_the_changed_part_and_equals_a_full_run(spark, tmp_path, full_run_2):
    inc = lake(tmp_path, "inc")
    write_silver(spark, inc, BEFORE)
    first = resolve_identities(spark, inc, "run-1", config=incremental_config(), incremental=True)
    assert first.mode_reason == "no_previous_run"
    write_silver(spark, inc, AFTER)

    result = resolve_identities(spark, inc, "run-2", config=incremental_config(), incremental=True)

    # m5, crm-2 and ord-5 changed; the scope adds the records of Ann, Cat and Bob they reach
    # (m1-m4, e1, crm-1, ord-1, ord-2). The placeholder-email orders and the bystanders stay out.
    assert (result.mode, result.changed_records, result.scope_records) == ("incremental", 3, 11)
    assert result.records == 33
    expected_changes = spark.createDataFrame(
        [
            ("merged", ANN, CAT, 1),
            ("split", cid("split:crm_contact_id:crm-2"), BOB, 1),
            ("created", cid("email:dan@z.com"), None, 2),
        ],
        "change STRING, customer_id STRING, related_id STRING, identifiers BIGINT",
    )
    got = identity_tables(spark, inc)
    for name in TABLES:
        assertDataFrameEqual(got[name], full_run_2[name])
    run_2 = (
        spark.read.format("delta")
        .load(inc.paths.table("identity", "identity_changes"))
        .where("run_id = 'run-2'")
    )
    assertDataFrameEqual(run_2.drop("run_id", "changed_at"), expected_changes)


def test_incremental_run_with_nothing_new_writes_nothing_and_config_changes_or_small_lakes_run_in_full(
    spark, lake_env
):
    write_silver(spark, lake_env, BEFORE)
    resolve_identities(spark, lake_env, "run-1", config=incremental_config(), incremental=True)
    before = identity_tables(spark, lake_env)
    versions = {
        name: spark.sql(f"DESCRIBE HISTORY delta.`{lake_env.paths.table('identity', name)}`").count()
        for name in IDENTITY_OUTPUTS
    }

    again = resolve_identities(spark, lake_env, "run-2", config=incremental_config(), incremental=True)

    assert (again.mode, again.mode_reason, again.changed_records, again.scope_records) == (
        "incremental",
        "incremental",
        0,
        0,
    )
    assert again.id_changes == {}
    for name in IDENTITY_OUTPUTS:
        history = spark.sql(f"DESCRIBE HISTORY delta.`{lake_env.paths.table('identity', name)}`").count()
        assert history == versions[name], name
    after = identity_tables(spark, lake_env)
    for name in TABLES:
        assertDataFrameEqual(after[name], before[name])

    # the shipped conf/identity.yaml differs (min_records): a full run; after it, a lake this
    # small stays below min_records and runs in full
    rerun = resolve_identities(spark, lake_env, "run-3", incremental=True)
    assert (rerun.mode, rerun.mode_reason, rerun.scope_records) == ("full", "config_changed", 31)
    resolve_identities(spark, lake_env, "run-4", incremental=True)
    runs = spark.read.format("delta").load(lake_env.paths.table("identity", "resolve_runs"))
    assertDataFrameEqual(
        runs.select("run_id", "mode", "reason", "changed_records", "scope_records", "records"),
        spark.createDataFrame(
            [
                ("run-1", "full", "no_previous_run", 0, 31, 31),
                ("run-2", "incremental", "incremental", 0, 0, 31),
                ("run-3", "full", "config_changed", 0, 31, 31),
                ("run-4", "full", "small_lake", 0, 31, 31),
            ],
            "run_id STRING, mode STRING, reason STRING, changed_records BIGINT, scope_records BIGINT, "
            "records BIGINT",
        ),
    )


def test_a_full_run_cut_off_before_its_last_write_is_redone_by_the_next_run(
    spark, tmp_path, monkeypatch, full_run_2
):
    # A full run that is not the first (here: the scope is too large) must write the
    # identifiers table last. The next run finds what changed by comparing silver with it: had
    # it been written first, a run cut off after it would look done and leave the other tables
    # stale for good.
    from cdplake.identity import _store

    config = incremental_config()
    too_large = dataclasses.replace(
        config, incremental=dataclasses.replace(config.incremental, max_scope_fraction=0.0)
    )
    cut = lake(tmp_path, "cut")
    write_silver(spark, cut, BEFORE)
    resolve_identities(spark, cut, "run-1", config=too_large, incremental=True)
    write_silver(spark, cut, AFTER)
    overwrite = _store.overwrite

    def crash_at_customer_links(df, path):
        if path == cut.paths.table("identity", "customer_links"):
            raise RuntimeError("the driver died")
        overwrite(df, path)

    monkeypatch.setattr(_store, "overwrite", crash_at_customer_links)
    with pytest.raises(RuntimeError, match="the driver died"):
        resolve_identities(spark, cut, "run-2", config=too_large, incremental=True)
    monkeypatch.setattr(_store, "overwrite", overwrite)

    redone = resolve_identities(spark, cut, "run-2", config=too_large, incremental=True)

    # m5, crm-2 and ord-5 are still news to the identifiers table, so the run is redone (in
    # full: 11 of 33 records in scope is more than 0%) and the tables equal an uncut run-2.
    assert (redone.mode, redone.mode_reason, redone.changed_records) == ("full", "scope_too_large", 3)
    got = identity_tables(spark, cut)
    for name in TABLES:
        assertDataFrameEqual(got[name], full_run_2[name])
