"""Exactly-once across crashes: kill -9 the streaming job mid-cycle, restart, compare gold.

The same seeded landing files go into two lakes, in two waves (wave 2 lands after cycle 1).
The reference lake is the session's ``two_wave_stream`` (conftest.py): the stream run
uninterrupted in this process, through the same library call the job makes, its gold read at
the versions cycle 2 left. The crash lake runs ``python jobs/stream_pipeline.py`` as real
subprocesses, killed with SIGKILL twice:

1. in cycle 1 right after bronze reported done, so the kill lands inside the silver
   micro-batches (wherever they happen to be);
2. restarted as a processing-time job, which completes cycle 1, is parked after its commit
   while wave 2 lands, and is parked again in cycle 2 (``--hold-after 1:commit,2:profile``)
   after the profile MERGE committed and before the membership MERGE and the progress row:
   the window where gold is half written. Killed there, restarted to completion.

Then every gold table must equal the reference, whole frame, every column. Nothing is
excluded: a cycle's ``run_id`` is ``stream_c<cycle>`` (a function of the cycle, not of the
process) and ``as_of`` is fixed with ``--as-of``, so no column is run-specific. (The
progress table is bookkeeping, not gold: its Delta version numbers legitimately differ,
e.g. identity is re-resolved once more after a crash, so it is not compared.)
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from lake_conf import STREAM_AS_OF, STREAM_GOLD, land_wave, stream_test_conf
from pyspark.testing import assertDataFrameEqual

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
JOB = REPO / "jobs" / "stream_pipeline.py"
STARTUP_AND_CYCLE_TIMEOUT = 1800  # seconds; generous, the machine is shared


class Job:
    """``python jobs/stream_pipeline.py`` on one lake, its stdout read line by line."""

    def __init__(self, root: Path, conf: Path, *extra: str, trigger: str = "availableNow") -> None:
        env = {
            **os.environ,
            "CDPLAKE_CONF_DIR": str(conf),
            "CDPLAKE__SPARK__JARS_DIR": str(REPO / ".jars"),
            "CDPLAKE__STORAGE__ROOT": str(root),
            "CDPLAKE__SPARK__SHUFFLE_PARTITIONS": "2",
            "PYTHONPATH": os.pathsep.join([str(REPO / "lib"), str(REPO), os.environ.get("PYTHONPATH", "")]),
            "PYSPARK_PYTHON": sys.executable,
        }
        cmd = [
            sys.executable,
            str(JOB),
            "--trigger",
            trigger,
            "--as-of",
            STREAM_AS_OF.isoformat(),
            *extra,
        ]
        self.log = (root.parent / f"{root.name}-job.log").open("a")
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,  # a held job goes on at a line on stdin (jobs/stream_pipeline.py)
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, marker: str) -> None:
        """Block until a stdout line contains ``marker``; fail if the job ends first."""
        while True:
            line = self.lines.get(timeout=STARTUP_AND_CYCLE_TIMEOUT)
            if line is None:
                raise AssertionError(f"job ended before printing {marker!r}; saw {self.seen[-5:]}")
            self.seen.append(line)
            if marker in line:
                return

    def resume(self) -> None:
        """Let a job parked by ``--hold-after`` go on."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)  # a real kill -9: no cleanup, no finally blocks
        self.proc.wait(timeout=60)
        self.log.close()

    def finish(self) -> list[str]:
        rc = self.proc.wait(timeout=STARTUP_AND_CYCLE_TIMEOUT)
        while (line := self.lines.get(timeout=60)) is not None:
            self.seen.append(line)
        self.log.close()
        assert rc == 0, f"job failed (rc {rc}); see {self.log.name}"
        return self.seen


def test_kill_mid_cycle_and_restart_equals_uninterrupted_run(spark, two_wave_stream, tmp_path):
    reference, files = two_wave_stream, two_wave_stream.files
    assert [(r.cycle_id, r.committed, r.full_rebuild) for r in reference.results] == [
        (1, True, True),
        (2, True, False),
    ]
    crash_root = tmp_path / "crashed"
    conf = stream_test_conf(tmp_path)

    # crashed: killed inside silver in cycle 1 ...
    land_wave(crash_root, files, 1)
    job = Job(crash_root, conf)
    job.wait_for("cycle=1 phase=bronze done")
    job.kill()
    assert not (crash_root / "delta" / "streaming" / "progress").exists()  # cycle 1 never committed

    # ... restarted as a processing-time job: cycle 1 completes and the job is parked after its
    # commit while wave 2 lands, then cycle 2 is killed with gold half written ...
    job = Job(crash_root, conf, "--hold-after", "1:commit,2:profile", trigger="2 seconds")
    job.wait_for("holding after cycle=1 phase=commit")
    land_wave(crash_root, files, 2)
    job.resume()
    job.wait_for("holding after cycle=2 phase=profile")
    assert any(line.startswith("cycle 1:") and "full" in line for line in job.seen), job.seen
    job.kill()

    # ... and restarted to completion.
    out = Job(crash_root, conf).finish()
    assert any(line.startswith("cycle 2:") and "incremental" in line for line in out), out

    for name in STREAM_GOLD:
        expected = reference.gold(spark, name)
        actual = spark.read.format("delta").load(str(crash_root / "delta" / "gold" / name))
        assert expected.count() > 0 or name == "realtime_signals", f"reference {name} is empty"
        assertDataFrameEqual(actual, expected, checkRowOrder=False)
