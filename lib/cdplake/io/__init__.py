"""Input/output: the one SparkSession builder and the Delta read/write/MERGE/stream helpers."""

from cdplake.io.delta import (
    AVAILABLE_NOW,
    MergeMetrics,
    append,
    create_if_absent,
    merge_into,
    path_exists,
    read_stream,
    read_table,
    run_stream,
    table_exists,
    table_version,
)
from cdplake.io.session import build_session

__all__ = [
    "AVAILABLE_NOW",
    "MergeMetrics",
    "append",
    "build_session",
    "create_if_absent",
    "merge_into",
    "path_exists",
    "read_stream",
    "read_table",
    "run_stream",
    "table_exists",
    "table_version",
]
