"""The front lane first: a gold-lane thread waits at its calls into the JVM while a front tick runs.

Both lanes of the stream (:mod:`cdplake.streaming.realtime_lane`) share one driver and its
cores. Spark's fair scheduler shares task slots, but on a small machine most of a short
front tick is driver work (planning, Delta log reads and commits), which no pool setting
reaches. So the gold lane yields cooperatively: every call from a *gated* Python thread into
the JVM (each DataFrame operation, action, Delta command) first waits while a front tick is
running, for at most ``max_hold`` seconds from that tick's start, so a long tick cannot starve
gold. A call already inside the JVM is not interrupted; the next one waits.

Only threads registered with :meth:`FrontPriority.gated` wait, and never while they hold a
lock the front lane needs (:meth:`FrontPriority.exempt`, :class:`SharedLock`): the front would
then wait for a paused gold lane.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_GATES: dict[int, FrontPriority] = {}  # thread ident -> the priority that gates it
_INSTALLED = threading.Lock()
_installed = False


def _install() -> None:
    """Wrap py4j's ``GatewayClient.send_command`` (every Python -> JVM call) once per process."""
    global _installed
    with _INSTALLED:
        if _installed:
            return
        from py4j.java_gateway import GatewayClient

        original = GatewayClient.send_command

        def send_command(self: Any, *args: Any, **kwargs: Any) -> Any:
            gate = _GATES.get(threading.get_ident())
            if gate is not None:
                gate.wait_turn()
            return original(self, *args, **kwargs)

        GatewayClient.send_command = send_command  # type: ignore[method-assign]
        _installed = True


class FrontPriority:
    """Whether a front tick is running, and the gate gold-lane threads wait at."""

    def __init__(self, max_hold: float) -> None:
        if max_hold < 0:
            raise ValueError(f"max_hold must be >= 0, got {max_hold}")
        self.max_hold = max_hold
        self._since: float | None = None  # monotonic start of the running front tick
        self._changed = threading.Condition()
        self._exempt = threading.local()

    @contextmanager
    def front(self) -> Iterator[None]:
        """Mark a front tick as running for the duration of the block."""
        with self._changed:
            self._since = time.monotonic()
        try:
            yield
        finally:
            with self._changed:
                self._since = None
                self._changed.notify_all()

    @property
    def front_running(self) -> bool:
        return self._since is not None

    def wait_turn(self) -> None:
        """Wait while a front tick runs, up to ``max_hold`` seconds after it began (not when exempt)."""
        if getattr(self._exempt, "depth", 0):
            return
        with self._changed:
            while self._since is not None:
                left = self._since + self.max_hold - time.monotonic()
                if left <= 0:
                    return
                self._changed.wait(left)

    @contextmanager
    def gated(self) -> Iterator[None]:
        """Make the calling thread wait its turn at every JVM call inside the block."""
        _install()
        ident = threading.get_ident()
        _GATES[ident] = self
        try:
            yield
        finally:
            _GATES.pop(ident, None)

    @contextmanager
    def exempt(self) -> Iterator[None]:
        """No waiting in the calling thread inside the block (it holds something the front needs)."""
        self._exempt_more(1)
        try:
            yield
        finally:
            self._exempt_more(-1)

    def _exempt_more(self, by: int) -> None:
        self._exempt.depth = getattr(self._exempt, "depth", 0) + by


class SharedLock:
    """A lock both lanes take; a gated thread holding it does not wait its turn.

    Used as a context manager, like :class:`threading.Lock`.
    """

    def __init__(self, priority: FrontPriority) -> None:
        self._lock = threading.Lock()
        self._priority = priority

    def __enter__(self) -> SharedLock:
        self._lock.acquire()
        self._priority._exempt_more(1)
        return self

    def __exit__(self, *exc: object) -> None:
        self._priority._exempt_more(-1)
        self._lock.release()
