"""A clock that moves only when told to, for rotation schedules and cache expiry."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Final, final

__all__ = ["FakeClock"]

DEFAULT_START: Final = datetime(2030, 1, 1, tzinfo=timezone.utc)
"""Where a :class:`FakeClock` starts unless told otherwise."""


@final
class FakeClock:
    """A clock for the ``clock=`` argument of every provider, KMS and audit sink.

    Calling it returns the current fake time (an aware UTC datetime); it moves only by
    :meth:`advance`, :meth:`set`, :meth:`sleep`, or by ``tick`` after each reading::

        >>> from datetime import timedelta
        >>> clock = FakeClock()
        >>> clock()
        datetime.datetime(2030, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
        >>> clock.advance(days=400)
        datetime.datetime(2031, 2, 5, 0, 0, tzinfo=datetime.timezone.utc)
        >>> ticking = FakeClock(tick=timedelta(seconds=1))
        >>> [ticking().second for _ in range(3)]
        [0, 1, 2]

    ``sleep`` has the signature of :func:`time.sleep` and advances the clock instead of
    waiting, so code that waits (a slow :class:`~sealstore.testing.MemoryKms`) lets time pass
    without the test waiting. Thread-safe.
    """

    __slots__ = ("_lock", "_now", "_tick")

    def __init__(self, start: datetime = DEFAULT_START, *, tick: timedelta = timedelta(0)) -> None:
        self._now = _aware(start)
        if not isinstance(tick, timedelta) or tick < timedelta(0):
            raise ValueError("FakeClock tick must be a timedelta of zero or more")
        self._tick = tick
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        """The current fake time; then the clock moves by ``tick``."""
        with self._lock:
            now = self._now
            self._now = now + self._tick
            return now

    @property
    def now(self) -> datetime:
        """The time the next call returns (reading it does not tick)."""
        return self._now

    def advance(self, delta: timedelta = timedelta(0), /, **parts: float) -> datetime:
        """Move forward by ``delta`` plus ``timedelta(**parts)``; return the new time.

        A negative amount moves the clock back, as a corrected system clock would.
        """
        with self._lock:
            self._now += delta + timedelta(**parts)
            return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (an aware datetime; it is converted to UTC)."""
        when = _aware(when)
        with self._lock:
            self._now = when

    def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` at once, in place of :func:`time.sleep`."""
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        self.advance(seconds=seconds)

    def __repr__(self) -> str:
        return f"FakeClock({self._now.isoformat()})"


def _aware(when: datetime) -> datetime:
    if not isinstance(when, datetime) or when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(
            "FakeClock needs an aware datetime (for example datetime(2030, 1, 1, "
            "tzinfo=timezone.utc)): the providers compare times in UTC"
        )
    return when.astimezone(timezone.utc)
