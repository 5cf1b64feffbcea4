"""``LocalKms``: an embedded key management service persisted in a directory.

Master keys live in one sealed document, ``keys.sealed`` (a
:class:`~sealstore.sealed.SealedFile` under the root key): every change is a locked
read-modify-write replaced atomically, so a crash leaves the old document or the new one.
Every use, change, denial and failure is sent to an audit sink; by default a hash-chained
JSON-lines log, ``audit.jsonl``, in the same directory.

The modules: :mod:`.service` (:class:`LocalKms` and the calls that use keys), :mod:`.admin`
(the calls that manage them), :mod:`.keystore` (what both work on), :mod:`.document` (the key
store document and its encoding), :mod:`.cache` (reading it again only when it changed),
:mod:`.blob` (the blob format), :mod:`.checks` (argument, policy and state checks) and
:mod:`.auditing` (the audit event of each call).
"""

from __future__ import annotations

from sealstore.kms.local.admin import DEFAULT_WAITING_DAYS
from sealstore.kms.local.blob import MAX_BLOB_SIZE
from sealstore.kms.local.document import ROTATION_PERIOD, KeyEntry, KeyMetadata, KeyState
from sealstore.kms.local.service import DEFAULT_ALIAS, LocalKms

__all__ = [
    "DEFAULT_ALIAS",
    "DEFAULT_WAITING_DAYS",
    "MAX_BLOB_SIZE",
    "ROTATION_PERIOD",
    "KeyEntry",
    "KeyMetadata",
    "KeyState",
    "LocalKms",
]
