"""Landing stores: local round trip, env -> store mapping, writing a generated demo."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest

from cdplake.config import ConfigError, DemoConfig, load_env
from cdplake.landing import LocalStore, S3Store, generate, store_for, write_landing
from cdplake.landing.store import split_s3_uri

CONF = Path(__file__).resolve().parents[2] / "conf"


def test_local_store_round_trip(tmp_path: Path):
    store = LocalStore(tmp_path / "landing")
    assert store.list() == []  # the folder does not exist yet

    store.put("events/2026-10-03/events-0001.jsonl", b'{"a":1}\n')
    store.put("crm/2026-10-03/contacts-20261003.csv", "contact_id\nC1,Zoë\n".encode())
    store.put("events/2026-10-03/events-0001.jsonl", b'{"a":2}\n')  # overwrite

    assert store.list() == ["crm/2026-10-03/contacts-20261003.csv", "events/2026-10-03/events-0001.jsonl"]
    assert (tmp_path / "landing/events/2026-10-03/events-0001.jsonl").read_bytes() == b'{"a":2}\n'
    assert (tmp_path / "landing/crm/2026-10-03/contacts-20261003.csv").read_text(
        "utf-8"
    ) == "contact_id\nC1,Zoë\n"
    # no temp files left behind for a streaming reader to trip over
    assert sorted(p.name for p in (tmp_path / "landing").rglob(".*")) == []


@pytest.mark.parametrize("bad", ["../escape.jsonl", "", "/", "a/../../b"])
def test_local_store_refuses_paths_outside_its_root(tmp_path: Path, bad: str):
    with pytest.raises(ValueError):
        LocalStore(tmp_path).put(bad, b"x")


def test_store_for_local_env_maps_areas_to_lake_folders(tmp_path: Path):
    env = load_env("local", conf_dir=CONF, environ={"CDPLAKE__STORAGE__ROOT": str(tmp_path)})
    landing = store_for(env, "landing")
    truth = store_for(env, "ground_truth")
    assert isinstance(landing, LocalStore) and landing.root == tmp_path / "landing"
    assert isinstance(truth, LocalStore) and truth.root == tmp_path / "ground_truth"
    with pytest.raises(ConfigError, match="area"):
        store_for(env, "bronze")


def test_store_for_s3_env_needs_credentials_and_uses_the_root_uri(monkeypatch: pytest.MonkeyPatch):
    env = load_env("s3", conf_dir=CONF, environ={"CDPLAKE__STORAGE__ROOT": "s3a://demo-lake/team-a"})
    monkeypatch.delenv("CDPLAKE_S3_ACCESS_KEY", raising=False)
    monkeypatch.delenv("CDPLAKE_S3_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="credentials"):
        store_for(env, "landing")

    monkeypatch.setenv("CDPLAKE_S3_ACCESS_KEY", "key")
    monkeypatch.setenv("CDPLAKE_S3_SECRET_KEY", "secret")
    landing = store_for(env, "landing")  # builds a client; no request is sent yet
    truth = store_for(env, "ground_truth")
    assert isinstance(landing, S3Store) and (landing.bucket, landing.prefix) == (
        "demo-lake",
        "team-a/landing",
    )
    assert isinstance(truth, S3Store) and (truth.bucket, truth.prefix) == ("demo-lake", "team-a/ground_truth")
    assert landing._key("events/2026-10-03/e.jsonl") == "team-a/landing/events/2026-10-03/e.jsonl"


def test_split_s3_uri():
    assert split_s3_uri("s3a://bucket/landing") == ("bucket", "landing")
    assert split_s3_uri("s3://bucket/a/b/") == ("bucket", "a/b")
    assert split_s3_uri("s3a://bucket") == ("bucket", "")
    with pytest.raises(ConfigError):
        split_s3_uri("/tmp/lake")


def test_write_landing_puts_files_and_ground_truth_under_the_lake_root(tmp_path: Path):
    env = load_env("local", conf_dir=CONF, environ={"CDPLAKE__STORAGE__ROOT": str(tmp_path)})
    data = generate(DemoConfig(customers=30, days=5, seed=3, end_date=dt.date(2026, 11, 1)))

    counts = write_landing(env, data)

    landing = LocalStore(tmp_path / "landing")
    assert landing.list() == sorted(data.files)
    assert all((tmp_path / "landing" / p).read_bytes() == content for p, content in data.files.items())
    assert counts == {
        s: sum(1 for p in data.files if p.startswith(f"{s}/")) for s in ("events", "email", "crm", "orders")
    }
    assert counts["events"] == 5  # one file per day at this size

    records = list(csv.DictReader(io.StringIO((tmp_path / "ground_truth/records.csv").read_text("utf-8"))))
    assert list(records[0]) == ["source", "record_key", "person_id", "defect", "copies"]
    assert len(records) == len(data.ground_truth)
    persons = list(csv.DictReader(io.StringIO((tmp_path / "ground_truth/persons.csv").read_text("utf-8"))))
    assert [p["person_id"] for p in persons] == [f"P{i:06d}" for i in range(1, 31)]
