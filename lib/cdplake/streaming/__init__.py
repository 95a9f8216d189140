"""Streaming: the micro-batch cycle loop (landing -> gold for touched customers), its progress
table and the windowed real-time signals."""

from cdplake.streaming.cycle import PHASES, CycleContext, CycleResult, run_cycle, run_stream_pipeline
from cdplake.streaming.incremental import compute_profiles, merge_membership_scoped, touched_customers
from cdplake.streaming.progress import CycleProgress, cycle_run_id, last_progress, progress_path
from cdplake.streaming.signals import product_view_windows, update_signals

__all__ = [
    "PHASES",
    "CycleContext",
    "CycleProgress",
    "CycleResult",
    "compute_profiles",
    "cycle_run_id",
    "last_progress",
    "merge_membership_scoped",
    "product_view_windows",
    "progress_path",
    "run_cycle",
    "run_stream_pipeline",
    "touched_customers",
    "update_signals",
]
