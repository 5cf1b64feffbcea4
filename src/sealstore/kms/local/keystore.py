"""The key store behind a LocalKms: its directory, its document, its clock and its audit
trail, and how a call reads and changes the document."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Final

from sealstore.audit import AuditEvent, AuditSink, JsonlAuditLog, Operation
from sealstore.clock import utc_now
from sealstore.errors import KeystoreError, KmsError
from sealstore.kms.local.auditing import Auditor, Call
from sealstore.kms.local.cache import CachedDocument
from sealstore.kms.local.document import Store, format_time
from sealstore.kms.policy import AUDITED_AS, InvalidKmsRequestError, KeyOperation
from sealstore.sealed import RootKey, SealedFile

_PURPOSE: Final = b"sealstore/local-kms/v1"
_DOCUMENT_NAME: Final = "keys.sealed"
_AUDIT_NAME: Final = "audit.jsonl"


class KeyStore:
    """The state every LocalKms call works on, and the steps they share."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        root_key: RootKey,
        clock: Callable[[], datetime] = utc_now,
        audit: AuditSink | None = None,
        create: bool = False,
        min_sequence: int = 0,
    ) -> None:
        if isinstance(min_sequence, bool) or not isinstance(min_sequence, int) or min_sequence < 0:
            raise InvalidKmsRequestError(
                "min_sequence must be an int of at least 0: a sequence number LocalKms.sequence "
                "returned"
            )
        self._path = Path(path)
        document = SealedFile(self._path / _DOCUMENT_NAME, root_key, _PURPOSE)
        if create:
            _make_directory(self._path)
        else:
            _require_store(self._path, document.path)
        self._document = CachedDocument(document, min_sequence)
        self._clock = clock
        self._auditor = Auditor(
            JsonlAuditLog(self._path / _AUDIT_NAME) if audit is None else audit, self._now
        )
        if create:
            self._document.create()
        # A wrong root key or a damaged store fails here, not at first use.
        self._document.snapshot()

    @property
    def path(self) -> Path:
        """The directory holding the key store."""
        return self._path

    @property
    def sequence(self) -> int:
        """The sequence number of the key store as it is now: every change adds one.

        An older copy of the key store put back in place is refused by every instance that saw
        a later one. To have it refused by a new instance too, store this number where the key
        store's writers cannot change it and pass it back as ``min_sequence``.
        """
        return self._document.snapshot().sequence

    def _now(self) -> datetime:
        now = self._clock()
        if not isinstance(now, datetime) or now.utcoffset() is None:
            raise KmsError(
                "the LocalKms clock must return timezone-aware datetimes, such as "
                "datetime.now(timezone.utc)"
            )
        return now.astimezone(timezone.utc)

    def _current(self, now: datetime, principal: str) -> Store:
        """The document, after destroying the keys whose deletion date has come."""
        store = self._document.snapshot()
        if store.next_deletion is not None and now >= store.next_deletion:
            store = self._mutate(lambda current: None, now, principal)
        return store

    def _mutate(
        self,
        change: Callable[[Store], Store | None],
        now: datetime,
        principal: str,
        call: Call | None = None,
    ) -> Store:
        """Apply ``change`` to the document under its lock (after purging expired keys) and
        write the result; ``change`` returns ``None`` to leave the document as it is.

        What the change does is recorded first, still under the lock and before the document
        is replaced: the destruction of each purged key, then ``call`` as a success if
        ``change`` changed something. If recording fails, nothing is saved.
        """

        def apply(current: Store) -> Store | None:
            store, gone = current.purged(now)
            changed = change(store)
            for key in gone:
                self._record(
                    AuditEvent(
                        time=now,
                        principal=principal,
                        operation=Operation.DELETE_KEY,
                        key_id=key.key_id,
                        key_version=str(key.newest.version),
                        reason=(
                            f"the deletion date {format_time(key.deletion_date)} passed; "
                            "the key material was destroyed"
                        ),
                    )
                )
            if changed is None:
                return store if gone else None
            if call is not None:
                self._auditor.commit(call)
            return changed

        return self._document.update(apply)

    def _audited(
        self, operation: KeyOperation, principal: object, key_id: object, context: object = None
    ) -> contextlib.AbstractContextManager[Call]:
        """Record how the call in the ``with`` block ended: success, denial or failure.

        ``operation`` is what the key policy must grant; the event names the audit operation
        :data:`~sealstore.kms.policy.AUDITED_AS` maps it to. A call no policy governs
        (creating a key) uses ``self._auditor.call`` with its audit operation instead.
        """
        return self._auditor.call(AUDITED_AS[operation], principal, key_id, context)

    def _record(self, event: AuditEvent) -> None:
        self._auditor.record(event)


def _make_directory(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, exist_ok=True)
    except FileNotFoundError:
        raise KeystoreError(
            f"cannot create the key store directory {path}: its parent directory does not "
            "exist (create=True makes the last directory only)"
        ) from None
    except OSError as error:
        raise KeystoreError(
            f"cannot create the key store directory {path}: {error.strerror}"
        ) from None


def _require_store(path: Path, document: Path) -> None:
    """A mistyped path must not quietly become a new, empty key store."""
    if not path.is_dir():
        problem = "does not exist" if not path.exists() else "is not a directory"
        raise KeystoreError(
            f"there is no key store at {path}: it {problem}; check the path, or pass "
            "create=True to create a new key store"
        )
    if not document.exists():
        raise KeystoreError(
            f"there is no key store in {path}: it holds no {document.name}; check the path, "
            "or pass create=True to create a new key store there"
        )
