"""Settings of the streaming pipeline from ``conf/streaming.yaml``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdplake.config.model import ConfigError, _read_yaml

STREAMING_FILE = "streaming.yaml"
AVAILABLE_NOW = "availableNow"
_INTERVAL = re.compile(r"^\s*(\d+)\s+(second|seconds|minute|minutes|hour|hours)\s*$")
_SECONDS = {"second": 1, "minute": 60, "hour": 3600}


def interval_seconds(text: str) -> int:
    """``"10 seconds"`` -> 10, ``"5 minutes"`` -> 300.

    Raises:
        ConfigError: not ``<positive int> <second|minute|hour>[s]``.
    """
    match = _INTERVAL.match(str(text))
    if not match or int(match.group(1)) < 1:
        raise ConfigError(f"interval must look like '10 seconds' or '5 minutes', got {text!r}")
    return int(match.group(1)) * _SECONDS[match.group(2).rstrip("s")]


def check_trigger(trigger: str) -> str:
    """``availableNow`` or a processing-time interval; returned unchanged when valid.

    Raises:
        ConfigError: anything else.
    """
    if trigger != AVAILABLE_NOW:
        interval_seconds(trigger)
    return trigger


@dataclass(frozen=True)
class SignalSettings:
    """The sliding event-time window behind ``gold/realtime_signals``.

    Attributes:
        window: window length (``1 hour``).
        slide: distance between window starts (``5 minutes``); must divide ``window``.
        watermark: how late an event may arrive and still update its windows.
    """

    window: str = "1 hour"
    slide: str = "5 minutes"
    watermark: str = "10 minutes"

    @property
    def window_seconds(self) -> int:
        return interval_seconds(self.window)

    @property
    def slide_seconds(self) -> int:
        return interval_seconds(self.slide)


@dataclass(frozen=True)
class StreamingConfig:
    """The cycle loop's default trigger, the real-time signal window and the GX cadence.

    Attributes:
        dataset_checks_every: run the silver Great Expectations suites in every N-th cycle
            (cycle ids divisible by N); 0 never. Row rules and reconciliation run in every
            micro-batch regardless; the suites scan whole tables, which a 10-second cycle
            cannot afford each time.
        realtime_lane: with a processing-time trigger, refresh real-time segments every
            trigger in a lane of their own while gold cycles run in another thread
            (:mod:`cdplake.streaming.realtime_lane`); False runs whole cycles one after another.
        gold_share: with two lanes, the least share of time the gold lane runs without
            waiting for front ticks (:mod:`cdplake.streaming.priority`); 1 never waits.
    """

    trigger: str = AVAILABLE_NOW
    signals: SignalSettings = SignalSettings()
    dataset_checks_every: int = 1
    realtime_lane: bool = True
    gold_share: float = 0.25

    def dataset_checks_in(self, cycle_id: int) -> bool:
        """Whether cycle ``cycle_id`` runs the dataset checks."""
        return self.dataset_checks_every > 0 and cycle_id % self.dataset_checks_every == 0


def parse_streaming_config(raw: dict[str, Any], where: str = STREAMING_FILE) -> StreamingConfig:
    """Validate a parsed ``streaming.yaml`` mapping.

    Raises:
        ConfigError: unknown keys, a bad trigger or interval, a slide that does not divide
            the window.
    """
    unknown = set(raw) - {"trigger", "signals", "dataset_checks_every", "realtime_lane", "gold_share"}
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {sorted(unknown)}; "
            "expected trigger, signals, dataset_checks_every, realtime_lane, gold_share"
        )
    share = raw.get("gold_share", 0.25)
    if not isinstance(share, (int, float)) or isinstance(share, bool) or not 0 < share <= 1:
        raise ConfigError(f"{where}: gold_share must be a number in (0, 1], got {share!r}")
    lane = raw.get("realtime_lane", True)
    if not isinstance(lane, bool):
        raise ConfigError(f"{where}: realtime_lane must be true or false, got {lane!r}")
    every = raw.get("dataset_checks_every", 1)
    if not isinstance(every, int) or isinstance(every, bool) or every < 0:
        raise ConfigError(f"{where}: dataset_checks_every must be a whole number >= 0, got {every!r}")
    sig = raw.get("signals") or {}
    if not isinstance(sig, dict):
        raise ConfigError(f"{where}: signals must be a mapping")
    unknown = set(sig) - {"window", "slide", "watermark"}
    if unknown:
        raise ConfigError(f"{where}: signals has unknown key(s) {sorted(unknown)}")
    signals = SignalSettings(**{k: str(v) for k, v in sig.items()})
    try:
        window, slide = signals.window_seconds, signals.slide_seconds
        interval_seconds(signals.watermark)
        trigger = check_trigger(str(raw.get("trigger", AVAILABLE_NOW)))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if window % slide:
        raise ConfigError(
            f"{where}: signals.slide ({signals.slide}) must divide signals.window ({signals.window})"
        )
    return StreamingConfig(
        trigger=trigger,
        signals=signals,
        dataset_checks_every=every,
        realtime_lane=lane,
        gold_share=float(share),
    )


def load_streaming_config(conf_dir: str | Path) -> StreamingConfig:
    """Load ``<conf_dir>/streaming.yaml``; the defaults when the file is absent.

    Raises:
        ConfigError: the file is invalid.
    """
    path = Path(conf_dir) / STREAMING_FILE
    if not path.exists():
        return StreamingConfig()
    return parse_streaming_config(_read_yaml(path), where=str(path))
