"""What every job shares: the common arguments and turning them into a loaded config.

Jobs stay doorways: they add their own arguments to :func:`job_parser`, call
:func:`load_from_args`, build the session and call one library function.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from collections.abc import Mapping

from cdplake.config import EnvConfig, load_env


def job_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every job takes (``--env``, ``--conf-dir``, ``--run-id``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--env", default=os.environ.get("CDPLAKE_ENV", "local"), help="conf/env/<ENV>.yaml")
    parser.add_argument(
        "--conf-dir", default=None, help="the conf/ folder (default: ./conf or the checkout's)"
    )
    parser.add_argument("--run-id", default=None, help="id stamped on every row this run writes")
    return parser


def load_from_args(args: argparse.Namespace, overrides: Mapping[str, object] | None = None) -> EnvConfig:
    """Load the environment named by ``--env`` with ``CDPLAKE__...`` overrides from flags.

    Args:
        args: parsed arguments of :func:`job_parser`.
        overrides: ``{"demo.customers": 200}``-style keys; ``None`` values are ignored.
    """
    environ = dict(os.environ)
    for key, value in (overrides or {}).items():
        if value is not None:
            environ["CDPLAKE__" + "__".join(part.upper() for part in key.split("."))] = str(value)
    return load_env(args.env, conf_dir=args.conf_dir, environ=environ)


def new_run_id(now: dt.datetime | None = None) -> str:
    """A sortable, readable run id such as ``run_20261122T051000Z_3fa1``."""
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return f"run_{stamp}_{os.urandom(2).hex()}"


def parse_as_of(value: str | None) -> dt.datetime | None:
    """``--as-of`` as a UTC datetime (a bare date means the start of that day)."""
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)
