"""The front-lane gate holds a real PySpark call of a gated thread (cdplake.streaming.priority)."""

from __future__ import annotations

import threading
import time

from cdplake.streaming.priority import FrontPriority


def test_a_gated_thread_runs_its_spark_job_after_the_front_tick(spark):
    p = FrontPriority(max_hold=30)
    spark.range(3).count()  # warm: the first job of a session is slow
    finished: dict[str, float] = {}
    counted: dict[str, int] = {}

    def gold() -> None:
        with p.gated():
            counted["gold"] = spark.range(5).count()
        finished["gold"] = time.monotonic()

    with p.front():
        began = time.monotonic()
        lane = threading.Thread(target=gold)
        lane.start()
        # the front lane's own calls go straight through meanwhile
        assert spark.range(7).count() == 7
        time.sleep(1.0)
        assert "gold" not in finished
        released = time.monotonic()
    lane.join(60)
    assert counted == {"gold": 5}
    assert finished["gold"] >= released > began
