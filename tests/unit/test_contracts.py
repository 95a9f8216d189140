"""Source contracts: the shipped files load, and bad contracts fail with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdplake.bronze import CRM_COLUMNS, SOURCES
from cdplake.config import ConfigError, ContractField, SourceContract, load_contract
from cdplake.config.contracts import parse_contract

CONF = Path(__file__).resolve().parents[2] / "conf"


def test_every_source_has_a_contract_matching_its_format():
    contracts = {s: load_contract(s, CONF) for s in SOURCES}
    assert {s: (c.format, c.version) for s, c in contracts.items()} == {
        "events": ("jsonl", 1),
        "email": ("jsonl", 1),
        "orders": ("jsonl", 1),
        "crm": ("csv", 1),
    }
    # the CRM contract is the export's header, in order
    assert contracts["crm"].names == CRM_COLUMNS
    assert contracts["orders"].fields[-1] == ContractField("total", "number", 1)


def test_a_field_added_in_a_later_version_records_since():
    raw = {
        "source": "orders",
        "format": "jsonl",
        "version": 2,
        "fields": [
            {"name": "order_id", "type": "string"},
            {"name": "loyalty_card", "type": "string", "since": 2},
        ],
    }
    assert parse_contract(raw, "x") == SourceContract(
        "orders",
        "jsonl",
        2,
        (ContractField("order_id", "string", 1), ContractField("loyalty_card", "string", 2)),
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 0}, "version must be a positive integer"),
        ({"format": "xml"}, "format must be one of"),
        ({"fields": []}, "fields must be a non-empty list"),
        ({"fields": [{"name": "a", "type": "date"}]}, "type must be one of"),
        (
            {"fields": [{"name": "a", "type": "string", "since": 3}]},
            "since must be an integer from 1 to version 1",
        ),
        ({"fields": [{"name": "a", "type": "string"}, {"name": "a", "type": "integer"}]}, "duplicate field"),
        ({"format": "csv", "fields": [{"name": "a", "type": "integer"}]}, "CSV columns are read as text"),
        ({"owner": "me"}, "unknown key"),
    ],
)
def test_bad_contracts_are_rejected(change, message):
    raw = {
        "source": "s",
        "format": "jsonl",
        "version": 1,
        "fields": [{"name": "a", "type": "string"}],
        **change,
    }
    with pytest.raises(ConfigError, match=message):
        parse_contract(raw, "conf/contracts/s.yaml")


def test_contract_source_must_match_its_file_name(tmp_path):
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "events.yaml").write_text(
        "source: email\nformat: jsonl\nversion: 1\nfields: [{name: a, type: string}]\n"
    )
    with pytest.raises(ConfigError, match="expected 'events'"):
        load_contract("events", tmp_path)
