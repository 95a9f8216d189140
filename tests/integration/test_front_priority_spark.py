"""The front-lane gate holds a real PySpark call of a gated thread (cdplake.streaming.priority)."""

from __future__ import annotations

import threading
import time

from cdplake.streaming.priority import FrontPriority


def test_a_gated_thread_runs_its_spark_job_after_the_front_tick(spark):
    p = FrontPriority(gold_share=0.25, burst=30)
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


def test_the_session_has_the_fair_pools_of_the_conf_folder(spark):
    # conf/fairscheduler.xml, set by cdplake.io.session.spark_conf: a free core goes to the
    # front lane's tasks first (needy below 2 running tasks, then 100:1 by weight)
    sc = spark.sparkContext._jsc.sc()
    pools = {}
    for name in ("front", "gold"):
        pool = sc.getPoolForName(name)
        assert pool.isDefined(), f"no {name} pool: the allocation file was not read"
        pools[name] = (pool.get().weight(), pool.get().minShare(), str(pool.get().schedulingMode()))
    assert pools == {"front": (100, 2, "FIFO"), "gold": (1, 0, "FIFO")}
