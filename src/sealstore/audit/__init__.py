"""The audit trail: every use of a master key becomes an :class:`AuditEvent`.

Providers and key services send events to an :class:`AuditSink`, a one-method protocol.
Events carry who did what to which key, the *keys* of the encryption context and the
outcome; never key material, plaintext or context values.

Three sinks ship with sealstore:

- :class:`JsonlAuditLog`: an append-only file of hash-chained JSON lines whose
  :meth:`~JsonlAuditLog.verify` finds the first edited, deleted, inserted or reordered record;
- :class:`LoggingAuditSink`: one structured :mod:`logging` record per event;
- :class:`MemoryAuditSink`: a bounded list in memory, for tests.

The record format is specified in ``docs/audit.md``, precisely enough to verify a log
without sealstore.
"""

from __future__ import annotations

from sealstore.audit.chain import GENESIS_HASH, MAX_RECORD_SIZE

# The event limits and the record version stay reachable as sealstore.audit.NAME (the
# redundant aliases re-export them) without joining __all__.
from sealstore.audit.chain import RECORD_VERSION as RECORD_VERSION
from sealstore.audit.events import MAX_CONTEXT_KEYS as MAX_CONTEXT_KEYS
from sealstore.audit.events import MAX_CONTEXT_KEYS_LENGTH as MAX_CONTEXT_KEYS_LENGTH
from sealstore.audit.events import MAX_KEY_ID_LENGTH as MAX_KEY_ID_LENGTH
from sealstore.audit.events import MAX_KEY_VERSION_LENGTH as MAX_KEY_VERSION_LENGTH
from sealstore.audit.events import MAX_PRINCIPAL_LENGTH as MAX_PRINCIPAL_LENGTH
from sealstore.audit.events import MAX_REASON_LENGTH as MAX_REASON_LENGTH
from sealstore.audit.events import AuditEvent, AuditSink, Operation, Outcome
from sealstore.audit.jsonl import JsonlAuditLog, LogHead, VerificationResult
from sealstore.audit.sinks import LoggingAuditSink, MemoryAuditSink
from sealstore.errors import AuditLogError

__all__ = [
    "GENESIS_HASH",
    "MAX_RECORD_SIZE",
    "AuditEvent",
    "AuditLogError",
    "AuditSink",
    "JsonlAuditLog",
    "LogHead",
    "LoggingAuditSink",
    "MemoryAuditSink",
    "Operation",
    "Outcome",
    "VerificationResult",
]
