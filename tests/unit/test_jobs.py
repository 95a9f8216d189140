"""Every job is a thin doorway reachable three ways: script, spark-submit, console command."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

JOBS = sorted(
    p.stem for p in (Path(__file__).resolve().parents[2] / "jobs").glob("*.py") if p.stem != "__init__"
)


def test_every_job_is_a_console_command():
    scripts = {
        ep.value.split(":")[0].removeprefix("cdplake_jobs."): ep
        for ep in entry_points(group="console_scripts")
        if ep.value.startswith("cdplake_jobs.")
    }
    assert sorted(scripts) == JOBS
    for ep in scripts.values():
        assert callable(ep.load())


@pytest.mark.parametrize("job", JOBS)
def test_job_script_answers_help_without_spark(job):
    path = Path(__file__).resolve().parents[2] / "jobs" / f"{job}.py"
    text = path.read_text()
    assert 'if __name__ == "__main__":' in text
    out = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--env" in out.stdout
