"""Config folders for integration tests (imported by test modules; pytest puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def conf_without_dataset_checks(folder: Path) -> Path:
    """A copy of the repo's ``conf/`` whose stream cycles skip the Great Expectations suites.

    For tests about the cycle loop itself (exactly-once, incremental equality): the suites
    are covered by the quality tests and cost tens of seconds per cycle. Jobs started with
    ``CDPLAKE_CONF_DIR`` set to the copy also need ``CDPLAKE__SPARK__JARS_DIR`` (relative
    paths resolve against the folder holding ``conf/``).
    """
    import shutil

    target = folder / "conf"
    shutil.copytree(REPO / "conf", target)
    streaming = target / "streaming.yaml"
    text = streaming.read_text(encoding="utf-8")
    assert "\ndataset_checks_every: 1\n" in text
    streaming.write_text(text.replace("\ndataset_checks_every: 1\n", "\ndataset_checks_every: 0\n"))
    return target
