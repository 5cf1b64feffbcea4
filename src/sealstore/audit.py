"""The audit trail: every use of a master key becomes an :class:`AuditEvent`.

Providers and key services send events to an :class:`AuditSink`, a one-method protocol.
Events carry who did what to which key, the *keys* of the encryption context and the
outcome; never key material, plaintext or context values.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Protocol

import attrs

__all__ = ["AuditEvent", "AuditSink", "Operation", "Outcome"]


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
    CREATE_KEY = "create-key"
    ENABLE_KEY = "enable-key"
    DISABLE_KEY = "disable-key"
    SCHEDULE_DELETION = "schedule-deletion"
    CANCEL_DELETION = "cancel-deletion"
    DELETE_KEY = "delete-key"
    PUT_POLICY = "put-policy"
    CREATE_ALIAS = "create-alias"
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


@attrs.frozen
class AuditEvent:
    """One audited use of a master key.

    ``context_keys`` lists the encryption context's keys (sorted), never its values.
    ``reason`` is a short, secret-free explanation for a denial or failure.
    """

    time: datetime
    principal: str
    operation: Operation
    key_id: str
    key_version: str | None = None
    context_keys: tuple[str, ...] = ()
    outcome: Outcome = Outcome.SUCCESS
    reason: str = ""


class AuditSink(Protocol):
    """Where audit events go. Implementations must not drop events silently."""

    def record(self, event: AuditEvent) -> None: ...
