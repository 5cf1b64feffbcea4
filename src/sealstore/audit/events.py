"""Audit events, and the :class:`AuditSink` protocol every sink implements.

An event is checked when it is made (types, lengths, valid Unicode, an aware time), so an
invalid event never reaches a sink.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any, Final, Protocol, final

import attrs

__all__ = [
    "MAX_CONTEXT_KEYS",
    "MAX_CONTEXT_KEYS_LENGTH",
    "MAX_KEY_ID_LENGTH",
    "MAX_KEY_VERSION_LENGTH",
    "MAX_PRINCIPAL_LENGTH",
    "MAX_REASON_LENGTH",
    "AuditEvent",
    "AuditSink",
    "Operation",
    "Outcome",
]

MAX_PRINCIPAL_LENGTH: Final = 1024
"""Characters in :attr:`AuditEvent.principal`."""
MAX_KEY_ID_LENGTH: Final = 4096
"""Characters in :attr:`AuditEvent.key_id`: any key reference a header can hold fits."""
MAX_KEY_VERSION_LENGTH: Final = 256
"""Characters in :attr:`AuditEvent.key_version`."""
MAX_REASON_LENGTH: Final = 1024
"""Characters in :attr:`AuditEvent.reason`."""
MAX_CONTEXT_KEYS: Final = 2048
"""Number of :attr:`AuditEvent.context_keys`."""
MAX_CONTEXT_KEYS_LENGTH: Final = 8192
"""Characters in all :attr:`AuditEvent.context_keys` together."""


class Operation(str, enum.Enum):
    """What was done with a master key."""

    GENERATE = "generate"
    """A data key was generated and wrapped (or a bucket key issued)."""
    UNWRAP = "unwrap"
    """A wrapped data key was unwrapped to decrypt an object."""
    REWRAP = "rewrap"
    """A wrapped data key was re-wrapped under another master key or version."""
    ROTATE = "rotate"
    """A new master key version was created and made current."""
    RETIRE = "retire"
    """A master key version was retired."""
    REACTIVATE = "reactivate"
    """A retired master key version was reactivated: it decrypts again."""
    CREATE_KEY = "create-key"
    ENABLE_KEY = "enable-key"
    DISABLE_KEY = "disable-key"
    SCHEDULE_DELETION = "schedule-deletion"
    CANCEL_DELETION = "cancel-deletion"
    DELETE_KEY = "delete-key"
    PUT_POLICY = "put-policy"
    CREATE_ALIAS = "create-alias"
    DELETE_ALIAS = "delete-alias"
    UPDATE_ALIAS = "update-alias"
    """An alias was moved from one key to another in one step."""
    DESCRIBE_KEY = "describe-key"
    WRONG_CUSTOMER_KEY = "wrong-customer-key"
    """A customer key was offered that does not match the object's fingerprint."""


class Outcome(str, enum.Enum):
    """How an audited operation ended."""

    SUCCESS = "success"
    DENIED = "denied"
    """Refused by a key policy."""
    FAILURE = "failure"
    """Refused for another reason: unknown or disabled key, wrong key, tampered input."""


def _check_text(name: str, value: object, limit: int) -> None:
    if not isinstance(value, str):
        raise TypeError(f"AuditEvent.{name} must be a str, not {type(value).__name__}")
    if len(value) > limit:
        raise ValueError(
            f"AuditEvent.{name} is {len(value)} characters long; at most {limit} are allowed"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"AuditEvent.{name} is not valid Unicode text (it holds a lone surrogate)"
        ) from None


def _text(limit: int) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        _check_text(attribute.name, value, limit)

    return check


def _optional_text(limit: int) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            _check_text(attribute.name, value, limit)

    return check


def _utc(value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"AuditEvent.time must be a datetime, not {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValueError("AuditEvent.time must be timezone-aware; use datetime.now(timezone.utc)")
    return value.astimezone(timezone.utc)


def _sorted_keys(keys: Iterable[str]) -> tuple[str, ...]:
    if isinstance(keys, (str, bytes)):
        raise TypeError(
            "AuditEvent.context_keys must be a collection of context keys, not one string"
        )
    items = list(itertools.islice(keys, MAX_CONTEXT_KEYS + 1))
    if len(items) > MAX_CONTEXT_KEYS:
        raise ValueError(f"AuditEvent.context_keys holds more than {MAX_CONTEXT_KEYS} keys")
    for item in items:
        _check_text("context_keys", item, MAX_CONTEXT_KEYS_LENGTH)
    if sum(map(len, items)) > MAX_CONTEXT_KEYS_LENGTH:
        raise ValueError(
            f"AuditEvent.context_keys is longer than {MAX_CONTEXT_KEYS_LENGTH} characters in all"
        )
    return tuple(sorted(set(items)))


@final
@attrs.frozen
class AuditEvent:
    """One audited use of a master key.

    ``context_keys`` lists the encryption context's keys (sorted, without repeats), never
    its values: it accepts any collection of keys, a context mapping included, and keeps
    only the keys. ``reason`` is a short, secret-free explanation for a denial or failure.
    ``time`` must be timezone-aware and is kept in UTC. Every string is capped in length
    (``MAX_*_LENGTH`` in this module); a bad event raises ``TypeError`` or ``ValueError``
    when it is made::

        >>> from datetime import datetime, timezone
        >>> event = AuditEvent(
        ...     time=datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        ...     principal="alice",
        ...     operation=Operation.UNWRAP,
        ...     key_id="orders-key",
        ...     context_keys={"tenant": "acme", "bucket": "orders"},
        ... )
        >>> event.context_keys
        ('bucket', 'tenant')
    """

    time: datetime = attrs.field(converter=_utc)
    principal: str = attrs.field(validator=_text(MAX_PRINCIPAL_LENGTH))
    operation: Operation = attrs.field(validator=attrs.validators.instance_of(Operation))
    key_id: str = attrs.field(validator=_text(MAX_KEY_ID_LENGTH))
    key_version: str | None = attrs.field(
        default=None, validator=_optional_text(MAX_KEY_VERSION_LENGTH)
    )
    context_keys: tuple[str, ...] = attrs.field(default=(), converter=_sorted_keys)
    outcome: Outcome = attrs.field(
        default=Outcome.SUCCESS, validator=attrs.validators.instance_of(Outcome)
    )
    reason: str = attrs.field(default="", validator=_text(MAX_REASON_LENGTH))


class AuditSink(Protocol):
    """Where audit events go. Implementations must not drop events silently.

    ``record`` raises if the event cannot be kept, so the audited operation fails rather
    than going unrecorded::

        class PrintSink:
            def record(self, event: AuditEvent) -> None:
                print(event.operation.value, event.key_id, event.outcome.value)
    """

    def record(self, event: AuditEvent) -> None: ...
