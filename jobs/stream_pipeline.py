"""Stream the lake: new landing files -> bronze -> silver -> identity -> gold for touched customers.

cdplake-stream --trigger availableNow          # process what has landed, then stop (cron, Airflow)
cdplake-stream --trigger "10 seconds"          # every 10 seconds until stopped (SIGTERM): new files
                                               # and real-time segments each trigger, gold cycles
                                               # back to back in a second thread (realtime_lane)
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Sequence

from cdplake.cli import job_parser, load_from_args, parse_as_of
from cdplake.io.session import build_session
from cdplake.streaming import run_stream_pipeline


def phase_logger(hold_after: str | None):
    """Print a marker line after every phase; pause at each ``CYCLE:PHASE`` of ``hold_after``.

    The holds exist for the crash tests: they park the process at exact points of a cycle so
    a ``kill -9`` lands there. A held process goes on when a line arrives on stdin, and
    waits forever when stdin is closed.
    """
    holds = {h.strip() for h in hold_after.split(",")} if hold_after else set()

    def on_phase(cycle_id: int, phase: str) -> None:
        print(f"[cdplake-stream] cycle={cycle_id} phase={phase} done", flush=True)
        if f"{cycle_id}:{phase}" in holds:
            print(f"[cdplake-stream] holding after cycle={cycle_id} phase={phase}", flush=True)
            if not sys.stdin.readline():
                while True:
                    time.sleep(3600)

    return on_phase


def main(argv: Sequence[str] | None = None) -> None:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--trigger",
        default=None,
        help='"availableNow" or an interval such as "10 seconds" (conf/streaming.yaml)',
    )
    parser.add_argument(
        "--as-of", default=None, help="fixed evaluation time for every cycle (default: the clock)"
    )
    parser.add_argument("--max-cycles", type=int, default=None, help="stop after N cycles (interval trigger)")
    parser.add_argument(
        "--hold-after",
        default=None,
        help="testing: CYCLE:PHASE[,CYCLE:PHASE...] at which to pause until a line on stdin",
    )
    args = parser.parse_args(argv)
    if args.run_id:
        parser.error("--run-id is not used: each cycle stamps run_id stream_c<cycle>")
    env = load_from_args(args)
    spark = build_session(env, app_name="cdplake-stream")
    stopping = []
    # SIGTERM (a scheduler stopping the job) ends the loop between cycles, never inside one.
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    run_stream_pipeline(
        spark,
        env,
        trigger=args.trigger,
        as_of=parse_as_of(args.as_of),
        max_cycles=args.max_cycles,
        on_phase=phase_logger(args.hold_after),
        on_cycle=lambda r: print(r.render(), flush=True),
        on_front=lambda f: print(f.render(), flush=True),
        should_stop=lambda: bool(stopping),
    )
    print("[cdplake-stream] stopped", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
