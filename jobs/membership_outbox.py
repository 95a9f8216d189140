"""Stream segment membership changes (the change data feed) into entered/exited outbox events.

cdplake-membership-outbox --trigger availableNow      # everything so far, then stop
cdplake-membership-outbox --trigger "5 seconds"       # keep streaming until stopped
"""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence

from cdplake.cli import job_parser, load_from_args
from cdplake.config.streaming import AVAILABLE_NOW
from cdplake.consumers import run_outbox
from cdplake.io.session import build_session


def main(argv: Sequence[str] | None = None) -> None:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--trigger", default=AVAILABLE_NOW, help='"availableNow" or an interval ("5 seconds")'
    )
    parser.add_argument("--no-json", action="store_true", help="write only the Delta outbox table")
    parser.add_argument("--timeout", type=float, default=None, help="interval trigger: stop after N seconds")
    args = parser.parse_args(argv)
    env = load_from_args(args)
    spark = build_session(env, app_name="cdplake-membership-outbox")
    query = run_outbox(spark, env, args.trigger, json_files=not args.no_json)
    if args.trigger != AVAILABLE_NOW:
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        started = time.monotonic()
        while query.isActive and not stopping:
            if args.timeout is not None and time.monotonic() - started > args.timeout:
                break
            query.awaitTermination(1)
        query.stop()
    print(f"outbox at {env.paths.table('outbox', 'membership_events')}", flush=True)


if __name__ == "__main__":
    main()
