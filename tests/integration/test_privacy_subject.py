"""A person's rows found, exported and erased on a small hand-made lake (no pipeline run).

Ann was ``cus_old`` until a merge made her ``cus_ann``; Ben is someone else whose rows must
survive untouched. ``test_pipeline_local.py`` erases a person from a whole generated lake.
"""

from __future__ import annotations

import json

import pytest
from pyspark.testing import assertDataFrameEqual

from cdplake.privacy.subject import SubjectNotFound, erase_subject, export_subject, find_subject, subject_rows

pytestmark = pytest.mark.integration

TABLES = {
    ("identity", "customer_map"): (
        "id_type string, id_value string, customer_id string, run_id string",
        [
            ("email", "ann@x.com", "cus_ann", "r1"),
            ("crm_contact_id", "C1", "cus_ann", "r1"),
            ("email", "ben@x.com", "cus_ben", "r1"),
        ],
    ),
    ("identity", "customer_id_aliases"): (
        "old_id string, customer_id string, reason string, run_id string, changed_at timestamp",
        [("cus_old", "cus_ann", "merged", "r2", None)],
    ),
    ("identity", "record_customer"): (
        "source string, record_key string, customer_id string, run_id string",
        [
            ("crm_contacts", "C1", "cus_ann", "r2"),
            ("orders", "O1", "cus_ann", "r2"),
            ("orders", "O2", "cus_ben", "r2"),
        ],
    ),
    ("identity", "identifiers"): (
        "source string, record_key string, id_type string, id_value string, blocked_reason string, run_id string",
        [
            ("crm_contacts", "C1", "email", "ann@x.com", None, "r2"),
            ("crm_contacts", "C1", "crm_contact_id", "C1", None, "r2"),
            ("orders", "O1", "email", "ann@x.com", None, "r2"),
            ("orders", "O2", "email", "ben@x.com", None, "r2"),
        ],
    ),
    ("silver", "orders"): (
        "order_id string, customer_email string, total double",
        [("O1", "ann@x.com", 10.0), ("O2", "ben@x.com", 20.0)],
    ),
    ("bronze", "orders"): (
        "value string, _source_file string",
        [
            ('{"order_id": "O1", "customer": {"email": "ann@x.com"}}', "f1"),
            ('{"order_id": "O2", "customer": {"email": "ben@x.com"}}', "f1"),
            # unparseable, but it names Ann: found by her email in the text
            ('{"order_id": "O9", "customer": {"email": "ANN@x.com"', "f2"),
        ],
    ),
    ("quarantine", "orders"): (
        "record string, reasons array<string>",
        [('{"email": "ann@x.com"', ["malformed_json"]), ('{"email": "ben@x.com"', ["malformed_json"])],
    ),
    ("gold", "customer_profile"): (
        "customer_id string, email string",
        [("cus_ann", "ann@x.com"), ("cus_ben", "ben@x.com")],
    ),
    ("identity", "identity_changes"): (
        "change string, customer_id string, related_id string, identifiers int, run_id string",
        [("merged", "cus_ann", "cus_old", 2, "r2"), ("created", "cus_ben", None, 1, "r1")],
    ),
}


@pytest.fixture()
def small_lake(spark, lake_env):
    for (layer, name), (ddl, rows) in TABLES.items():
        spark.createDataFrame(rows, ddl).write.format("delta").save(lake_env.paths.table(layer, name))
    return lake_env


def _rows(spark, env, layer, name, keep):
    ddl, rows = TABLES[(layer, name)]
    return spark.createDataFrame([r for r in rows if keep(r)], ddl)


def test_a_merged_person_is_found_exported_and_erased_and_no_one_else(spark, small_lake, tmp_path):
    env = small_lake
    with pytest.raises(SubjectNotFound):
        find_subject(spark, env, email="nobody@x.com")
    # Named by the id she had before the merge, she is still one person with both ids.
    ann = find_subject(spark, env, customer_id="cus_old")
    assert ann.customer_ids == {"cus_old", "cus_ann"}
    assert ann.records == {("crm_contacts", "C1"), ("orders", "O1")}
    assert ann.needles == {"ann@x.com"}
    assert find_subject(spark, env, email=" Ann@X.com ").records == ann.records

    def is_ann(row) -> bool:  # her email anywhere, or one of her ids or record keys as a value
        return "ann@x.com" in json.dumps(row).lower() or any(
            v in {"cus_ann", "cus_old", "O1", "C1"} for v in row if isinstance(v, str)
        )

    found = subject_rows(spark, env, ann)
    for layer, name in TABLES:
        if f"{layer}/{name}" in found:
            assertDataFrameEqual(found[f"{layer}/{name}"], _rows(spark, env, layer, name, is_ann))
    assert sorted(found) == sorted(f"{layer}/{name}" for layer, name in TABLES)

    exported = export_subject(spark, env, ann, str(tmp_path / "export"))
    assert exported == {k: df.count() for k, df in found.items()}
    erased = erase_subject(spark, env, ann)
    assert erased == exported
    for layer, name in TABLES:  # Ben's rows, and only his, are left
        kept = spark.read.format("delta").load(env.paths.table(layer, name))
        assertDataFrameEqual(kept, _rows(spark, env, layer, name, lambda r: not is_ann(r)))
    with pytest.raises(SubjectNotFound):
        find_subject(spark, env, customer_id="cus_ann")
