"""Independent Spark work side by side from one driver: one Python thread per task.

On a few cores most of a small micro-batch's time is fixed driver work (planning, Delta log
reads and commits, streaming-query starts) during which the executors idle. Running the
sources' queries side by side overlaps that work; Spark schedules the jobs the threads
submit on the same executors. Tasks must not write the same table, except through
:func:`cdplake.io.delta.append` and friends, which serialise a table's creation; appends
to an existing table do not conflict in Delta. Everything stays in one driver, so the
single-writer-per-table rule for Delta on S3 still holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")


def run_side_by_side(tasks: Mapping[str, Callable[[], T]], workers: int) -> dict[str, T]:
    """Run every task, at most ``workers`` at once, and return their results by name.

    Every task runs to its end (success or failure) before this returns or raises, so no
    streaming query is left running behind a failure.

    Args:
        tasks: name -> a function of no arguments.
        workers: threads; 1 runs the tasks one after another in the calling thread.

    Returns:
        Each task's result, in the order of ``tasks``.

    Raises:
        Exception: the first failed task's exception (in ``tasks`` order); the other
            failures are attached as notes.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if workers == 1 or len(tasks) <= 1:
        return {name: task() for name, task in tasks.items()}
    with ThreadPoolExecutor(max_workers=min(workers, len(tasks)), thread_name_prefix="cdplake") as pool:
        futures = {name: pool.submit(task) for name, task in tasks.items()}
        wait(futures.values())
    failed = [(name, f.exception()) for name, f in futures.items() if f.exception() is not None]
    if failed:
        first = failed[0][1]
        assert first is not None
        for name, other in failed[1:]:
            first.add_note(f"{name} failed too: {other!r}")
        raise first
    return {name: f.result() for name, f in futures.items()}
