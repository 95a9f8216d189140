"""The front lane first: a gold-lane thread waits at its calls into the JVM while a front tick runs.

Both lanes of the stream (:mod:`cdplake.streaming.realtime_lane`) share one driver and its
cores. Spark's fair scheduler shares task slots (``conf/fairscheduler.xml`` puts the front
pool first), but on a small machine most of a short front tick is driver work (planning,
Delta log reads and commits), which no pool setting reaches. So the gold lane yields
cooperatively: every call from a *gated* Python thread into the JVM (each DataFrame
operation, action, Delta command) first waits while a front tick is running. A call already
inside the JVM is not interrupted; the next one waits.

The hold has a budget, so a busy front lane cannot starve gold: over any stretch of time
the gold lane is held for at most ``1 - gold_share`` of it, plus ``burst`` seconds. (A token
bucket: credit accrues at ``1 - gold_share`` per second up to ``burst`` and a hold spends one
per second; when a tick's hold has spent the credit, gold runs beside the rest of that tick.)
A front lane that ticks now and then holds gold for whole ticks; one that ticks back to back
leaves gold ``gold_share`` of the time.

Only threads registered with :meth:`FrontPriority.gated` wait, and never while they hold a
lock the front lane may need, or the front would wait for a paused gold lane: a
:class:`SharedLock` or an :meth:`FrontPriority.exempt` block, and any
``functools.cached_property`` being computed. On Python 3.11 such a property holds one lock
per class attribute, for every instance, while it computes (``DataFrame.schema`` is one: a
JVM call). A single tick holds gold for at most two ``burst`` lengths, whatever credit is
left: a bound on what a lock of this kind that is not known here could cost (a front tick
once stalled 41.5 s, the length of a hold on full credit).
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_GATES: dict[int, FrontPriority] = {}  # thread ident -> the priority that gates it
_INSTALLED = threading.Lock()
_installed = False
# functools.cached_property.__get__: a frame running it holds the property's class-wide lock
_CACHED_PROPERTY_GET = functools.cached_property.__get__.__code__


def _computing_cached_property() -> bool:
    """Whether the calling thread is inside a ``cached_property`` computation (holding its lock)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is _CACHED_PROPERTY_GET:
            return True
        frame = frame.f_back
    return False


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
    """Whether a front tick is running, and the gate gold-lane threads wait at.

    Args:
        gold_share: the least share of time the gold lane runs un-held (0 < share <= 1);
            1 never holds it.
        burst: seconds of hold beyond that share (the bucket's size; it starts full). One
            tick holds gold for at most ``2 * burst`` seconds.
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(self, gold_share: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < gold_share <= 1:
            raise ValueError(f"gold_share must be in (0, 1], got {gold_share}")
        if burst < 0:
            raise ValueError(f"burst must be >= 0, got {burst}")
        self.gold_share = gold_share
        self.burst = burst
        self._clock = clock
        self._credit = burst  # seconds of hold left, as of _stamp
        self._stamp = clock()
        self._running = False  # a front tick is running
        self._since = self._stamp  # ...since then
        self._holding = False  # ...and its hold has credit left
        self._changed = threading.Condition()
        self._exempt = threading.local()

    def _settle(self) -> float:
        """Bring the credit up to now (under ``_changed``) and return it."""
        now = self._clock()
        rate = (1 - self.gold_share) - (1 if self._holding else 0)
        self._credit = min(self.burst, max(0.0, self._credit + rate * (now - self._stamp)))
        self._stamp = now
        return self._credit

    @contextmanager
    def front(self) -> Iterator[None]:
        """Mark a front tick as running for the duration of the block."""
        with self._changed:
            self._settle()
            self._running = True
            self._since = self._stamp
            self._holding = self._credit > 0 and self.gold_share < 1
        try:
            yield
        finally:
            with self._changed:
                self._settle()
                self._running = self._holding = False
                self._changed.notify_all()

    @property
    def front_running(self) -> bool:
        return self._running

    def hold_left(self) -> float:
        """Seconds the running tick may still hold gold (0 when it may not, or none runs)."""
        with self._changed:
            credit = self._settle()
            if self._holding and (credit <= 0 or self._stamp >= self._since + 2 * self.burst):
                self._holding = False  # spent: gold runs beside the rest of this tick
                self._changed.notify_all()
            if not self._holding:
                return 0.0
            # the credit's end, or two bursts into the tick, whichever comes first
            return min(credit / self.gold_share, self._since + 2 * self.burst - self._stamp)

    def wait_turn(self) -> None:
        """Wait while a front tick holds gold (not when exempt)."""
        if getattr(self._exempt, "depth", 0) or not self._running:
            return
        if _computing_cached_property():
            return  # holding a lock any thread may need: never pause here
        with self._changed:
            while (left := self.hold_left()) > 0:
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
