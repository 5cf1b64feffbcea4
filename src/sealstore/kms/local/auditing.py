"""The audit trail of LocalKms calls: what each call's event says, and recording it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Final, final

import attrs

from sealstore.audit import AuditEvent, AuditSink, Operation, Outcome
from sealstore.clock import utc_now
from sealstore.errors import AccessDeniedError, KmsError, SealstoreError
from sealstore.kms.local.checks import MAX_NAME_LENGTH

_MAX_REASON_LENGTH: Final = 500
NOT_SAVED: Final = "the change recorded as a success may not have been saved"
"""How the failure of a call whose success was already recorded begins its reason."""


@attrs.define
class Call:
    """What the audit event of one call will say, filled in as the call learns it."""

    operation: Operation
    principal: str
    key_id: str
    context_keys: tuple[str, ...] = ()
    version: int | None = None
    reason: str = ""
    audit_success: bool = True
    committed: bool = False
    """Whether the call's success was recorded before its change was saved."""
    then: list[AuditEvent] = attrs.field(factory=list)
    """Further events to record after this one if the call succeeds."""


@final
class Auditor:
    """Sends events to an audit sink, stamped with the time ``now`` returns."""

    __slots__ = ("_now", "_sink")

    def __init__(self, sink: AuditSink, now: Callable[[], datetime]) -> None:
        self._sink = sink
        self._now = now

    @contextlib.contextmanager
    def call(
        self, operation: Operation, principal: object, key_id: object, context: object = None
    ) -> Iterator[Call]:
        """Record how the call in the ``with`` block ended: success, denial or failure."""
        call = Call(operation, _label(principal), _label(key_id), _context_keys(context))
        try:
            yield call
        except AccessDeniedError as error:
            self._record_call(call, Outcome.DENIED, str(error))
            raise
        except SealstoreError as error:
            self._record_call(call, Outcome.FAILURE, f"{type(error).__name__}: {error}")
            raise
        except Exception as error:
            self._record_call(call, Outcome.FAILURE, type(error).__name__)
            raise
        if call.audit_success:
            self._record_call(call, Outcome.SUCCESS, call.reason)
        for event in call.then:
            self.record(event)

    def commit(self, call: Call) -> None:
        """Record ``call`` as a success now, before its change is saved, and not again when
        it ends; a failure after this says the change may not have been saved."""
        self._record_call(call, Outcome.SUCCESS, call.reason)
        call.audit_success = False
        call.committed = True

    def record(self, event: AuditEvent) -> None:
        self._sink.record(event)

    def _record_call(self, call: Call, outcome: Outcome, reason: str) -> None:
        if call.committed and outcome is not Outcome.SUCCESS:
            reason = f"{NOT_SAVED}: {reason}"
        self.record(
            AuditEvent(
                time=self._event_time(),
                principal=call.principal,
                operation=call.operation,
                key_id=call.key_id,
                key_version=None if call.version is None else str(call.version),
                context_keys=call.context_keys,
                outcome=outcome,
                reason=reason[:_MAX_REASON_LENGTH],
            )
        )

    def _event_time(self) -> datetime:
        try:
            return self._now()
        except KmsError:  # a broken clock is itself a failure worth recording
            return utc_now()


def _label(value: object) -> str:
    """A value the caller gave, as the audit trail shows it (bounded, never rejected)."""
    if isinstance(value, str) and value.isprintable():
        return value[:MAX_NAME_LENGTH]
    return "<invalid>"


def _context_keys(context: object) -> tuple[str, ...]:
    """The context's keys for the audit trail, or none if the context is unusable."""
    if not isinstance(context, Mapping) or len(context) > 256:
        return ()
    keys = tuple(context)
    if not all(isinstance(key, str) and key.isprintable() for key in keys):
        return ()
    if sum(len(key) for key in keys) > 4096:
        return ()
    return tuple(sorted(keys))
