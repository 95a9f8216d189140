"""cdplake.io.concurrent: tasks side by side, every one finished before a failure is raised."""

from __future__ import annotations

import threading
import time

import pytest

from cdplake.io.concurrent import run_side_by_side


def test_results_come_back_by_name_in_task_order_from_worker_threads():
    threads: dict[str, str] = {}

    def task(name: str, value: int):
        def run() -> int:
            threads[name] = threading.current_thread().name
            return value

        return run

    out = run_side_by_side({"b": task("b", 2), "a": task("a", 1), "c": task("c", 3)}, workers=3)
    assert list(out.items()) == [("b", 2), ("a", 1), ("c", 3)]
    assert all(t.startswith("cdplake") for t in threads.values())


def test_one_worker_runs_in_the_calling_thread_one_after_another():
    seen: list[tuple[str, str]] = []
    tasks = {n: (lambda n=n: seen.append((n, threading.current_thread().name))) for n in ("x", "y")}
    run_side_by_side(tasks, workers=1)
    here = threading.current_thread().name
    assert seen == [("x", here), ("y", here)]


def test_tasks_overlap_in_time():
    # Two tasks that each wait for the other to start can only finish side by side.
    barrier = threading.Barrier(2, timeout=10)
    out = run_side_by_side({"a": barrier.wait, "b": barrier.wait}, workers=2)
    assert sorted(out.values()) == [0, 1]


def test_a_failure_is_raised_only_after_the_other_tasks_finished():
    finished: list[str] = []

    def fails() -> None:
        raise RuntimeError("bronze email broke")

    def slow() -> str:
        time.sleep(0.3)
        finished.append("slow")
        return "done"

    def also_fails() -> None:
        raise ValueError("second")

    with pytest.raises(RuntimeError, match="bronze email broke") as caught:
        run_side_by_side({"email": fails, "events": slow, "crm": also_fails}, workers=3)
    assert finished == ["slow"]
    assert any("crm failed too" in note for note in caught.value.__notes__)


def test_workers_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        run_side_by_side({"a": lambda: 1}, workers=0)
