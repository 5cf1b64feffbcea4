"""The sinks that keep no file: :class:`LoggingAuditSink` and :class:`MemoryAuditSink`."""

from __future__ import annotations

import collections
import json
import logging
import re
import threading
from typing import Final, final

from sealstore.audit.chain import event_fields
from sealstore.audit.events import AuditEvent

__all__ = ["LoggingAuditSink", "MemoryAuditSink"]


_PLAIN_LOG_VALUE: Final = re.compile(r"[A-Za-z0-9_.:/@+=-]+", re.ASCII)


def _log_value(value: str | None) -> str:
    # Anything but a plain token is JSON-quoted (ASCII only), so a principal or key id
    # holding spaces or newlines cannot forge fields or lines in a text log.
    if value is None:
        return "-"
    if _PLAIN_LOG_VALUE.fullmatch(value):
        return value
    return json.dumps(value)


@final
class LoggingAuditSink:
    """An :class:`AuditSink` emitting one :mod:`logging` record per event.

    The message reads ``sealstore audit: operation=unwrap outcome=success principal=alice
    key_id=orders-key key_version=- context_keys=bucket,tenant reason=-`` (values that are not
    plain tokens are JSON-quoted), and the record carries the fields as a dict in
    ``record.sealstore_audit``, with the same names and values as a :class:`JsonlAuditLog`
    record, for structured handlers. The default logger is ``sealstore.audit``. Events are
    kept only as far as the logging configuration keeps them: give the logger a handler::

        >>> import logging
        >>> sink = LoggingAuditSink(logging.getLogger("myapp.audit"), level=logging.WARNING)
    """

    __slots__ = ("_level", "_logger")

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self._logger = logger if logger is not None else logging.getLogger("sealstore.audit")
        self._level = level

    def __repr__(self) -> str:
        return f"LoggingAuditSink({self._logger.name!r}, level={self._level!r})"

    def record(self, event: AuditEvent) -> None:
        """Log ``event`` at the sink's level."""
        if not self._logger.isEnabledFor(self._level):
            return
        self._logger.log(
            self._level,
            "sealstore audit: operation=%s outcome=%s principal=%s key_id=%s key_version=%s "
            "context_keys=%s reason=%s",
            event.operation.value,
            event.outcome.value,
            _log_value(event.principal),
            _log_value(event.key_id),
            _log_value(event.key_version),
            ",".join(_log_value(key) for key in event.context_keys) or "-",
            _log_value(event.reason or None),
            extra={"sealstore_audit": event_fields(event)},
        )


@final
class MemoryAuditSink:
    """An :class:`AuditSink` keeping the latest ``maxlen`` events in memory, for tests.

    When full, the oldest event is dropped and counted in :attr:`dropped`. Thread-safe::

        >>> from datetime import datetime, timezone
        >>> from sealstore.audit import AuditEvent, Operation
        >>> sink = MemoryAuditSink(maxlen=2)
        >>> for key_id in ("a", "b", "c"):
        ...     sink.record(AuditEvent(
        ...         time=datetime.now(timezone.utc), principal="alice",
        ...         operation=Operation.UNWRAP, key_id=key_id))
        >>> [event.key_id for event in sink.events], sink.dropped
        (['b', 'c'], 1)
    """

    __slots__ = ("_dropped", "_events", "_lock")

    def __init__(self, maxlen: int = 10_000) -> None:
        if type(maxlen) is not int or maxlen < 1:
            raise ValueError("MemoryAuditSink maxlen must be a positive int")
        self._events: collections.deque[AuditEvent] = collections.deque(maxlen=maxlen)
        self._dropped = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"MemoryAuditSink(maxlen={self._events.maxlen}, events={len(self)}, "
            f"dropped={self._dropped})"
        )

    def __len__(self) -> int:
        return len(self._events)

    def record(self, event: AuditEvent) -> None:
        """Keep ``event``, dropping the oldest one if the sink is full."""
        with self._lock:
            if len(self._events) == self._events.maxlen:
                self._dropped += 1
            self._events.append(event)

    @property
    def events(self) -> tuple[AuditEvent, ...]:
        """The events kept, oldest first."""
        with self._lock:
            return tuple(self._events)

    @property
    def dropped(self) -> int:
        """How many events were dropped because the sink was full."""
        return self._dropped

    def clear(self) -> None:
        """Forget every event and reset :attr:`dropped`."""
        with self._lock:
            self._events.clear()
            self._dropped = 0
