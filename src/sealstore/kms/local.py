"""``LocalKms``: an embedded key management service persisted in a directory.

Master keys live in one sealed document, ``keys.sealed`` (a
:class:`~sealstore.sealed.SealedFile` under the root key): every change is a locked
read-modify-write replaced atomically, so a crash leaves the old document or the new one.
Every use, change, denial and failure is sent to an audit sink; by default a hash-chained
JSON-lines log, ``audit.jsonl``, in the same directory.

Blob layout (integers big-endian), documented in ``docs/local-kms.md``::

    version 1 (1) | key id length n (1) | key id (n, ASCII) | material version (4)
    | nonce (12) | AES-256-GCM ciphertext of the data key (32) | tag (16)

The associated data of the wrap is ``"sealstore/local-kms/blob/v1\\0"``, the blob's first
``6 + n`` bytes and the canonical encryption context, so a blob opens only under the key and
material it names, with the context it was made with.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import enum
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final, final

import attrs

from sealstore import _aead
from sealstore.audit import AuditEvent, AuditSink, JsonlAuditLog, Operation, Outcome
from sealstore.clock import utc_now
from sealstore.errors import (
    AccessDeniedError,
    DecryptionError,
    KeyDisabledError,
    KeyNotFoundError,
    KeyPendingDeletionError,
    KeyStateError,
    KeystoreError,
    KmsError,
    SealstoreError,
)
from sealstore.header import encode_context
from sealstore.kms.base import DEFAULT_ALIAS, DataKey
from sealstore.kms.policy import (
    ANY_PRINCIPAL,
    InvalidKmsRequestError,
    KeyOperation,
    KeyPolicy,
    check_principal,
)
from sealstore.sealed import MAX_DOCUMENT_SIZE, SealedFile
from sealstore.sealed.root import RootKey

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

ROTATION_PERIOD: Final = timedelta(days=365)
"""A key whose newest material is this old gets new material when it is next used."""
MIN_WAITING_DAYS: Final = 7
MAX_WAITING_DAYS: Final = 30
DEFAULT_WAITING_DAYS: Final = 30
MAX_KEYS: Final = 10_000
MAX_ALIASES: Final = 10_000
MAX_VERSIONS: Final = 1_000
"""Material versions one key may hold; yearly rotation reaches it in a thousand years."""
MAX_DESCRIPTION_LENGTH: Final = 8192
MAX_NAME_LENGTH: Final = 256
"""Cap on a key id or alias given by a caller."""
BLOB_VERSION: Final = 1
_MAX_BLOB_KEY_ID: Final = 255
_BLOB_FIXED: Final = 1 + 1 + 4 + _aead.WRAPPED_KEY_SIZE
MAX_BLOB_SIZE: Final = _BLOB_FIXED + _MAX_BLOB_KEY_ID
"""No blob is longer: longer input is refused before it is parsed."""

_PURPOSE: Final = b"sealstore/local-kms/v1"
_BLOB_LABEL: Final = b"sealstore/local-kms/blob/v1\x00"
_DOCUMENT_NAME: Final = "keys.sealed"
_AUDIT_NAME: Final = "audit.jsonl"
_DOCUMENT_FORMAT: Final = 1
_ALIAS_PREFIX: Final = "alias/"
_RESERVED_ALIAS_PREFIX: Final = "alias/sealstore/"
_ALIAS_PATTERN: Final = re.compile(r"alias/[A-Za-z0-9/_-]{1,250}")
_MAX_REASON_LENGTH: Final = 500
_RACY_WINDOW_NS: Final = 3_000_000_000
"""A document modified this recently is read again (not parsed again) on every call: a file
system may give a rewrite within one timestamp tick (up to 2 s on some) the same mtime, size
and, reused, inode."""
_DESCRIPTION_INVALID: Final = (
    f"a key description must be a str of at most {MAX_DESCRIPTION_LENGTH} characters"
)

# Until the audit operations name alias deletion, it is recorded as an alias change.


class KeyState(str, enum.Enum):
    """Where a key is in its life."""

    ENABLED = "enabled"
    """Usable for every operation its policy grants."""
    DISABLED = "disabled"
    """Kept, but refuses to generate, decrypt or re-encrypt until enabled again."""
    PENDING_DELETION = "pending-deletion"
    """Refuses every use; destroyed at its deletion date unless the deletion is cancelled."""


_USE_STATES: Final = frozenset({KeyState.ENABLED})
_CHANGE_STATES: Final = frozenset({KeyState.ENABLED, KeyState.DISABLED})
_DEFAULT_KEY_POLICY: Final = KeyPolicy(
    dict.fromkeys(
        (
            KeyOperation.GENERATE,
            KeyOperation.DECRYPT,
            KeyOperation.REENCRYPT_FROM,
            KeyOperation.REENCRYPT_TO,
            KeyOperation.DESCRIBE,
        ),
        (ANY_PRINCIPAL,),
    )
)


@final
@attrs.frozen
class KeyMetadata:
    """What :meth:`LocalKms.describe_key` reports about a key; never its material.

    ``current_version`` is the material new blobs are made under, created at ``rotated``;
    ``next_rotation`` is when the next use adds new material.

    >>> import pathlib, tempfile
    >>> from sealstore.sealed import RootKey
    >>> kms = LocalKms(pathlib.Path(tempfile.mkdtemp()), root_key=RootKey.from_bytes(bytes(32)))
    >>> meta = kms.create_key(principal="alice", description="orders")
    >>> meta.state, meta.current_version, meta.creator
    (<KeyState.ENABLED: 'enabled'>, 1, 'alice')
    """

    key_id: str
    aliases: tuple[str, ...]
    description: str
    creator: str
    created: datetime
    state: KeyState
    deletion_date: datetime | None
    current_version: int
    rotated: datetime
    policy: KeyPolicy

    @property
    def next_rotation(self) -> datetime:
        """When the key next gets new material automatically (at its first use after this)."""
        return self.rotated + ROTATION_PERIOD


@final
@attrs.frozen
class KeyEntry:
    """One line of :meth:`LocalKms.list_keys`: a key id and the aliases pointing at it."""

    key_id: str
    aliases: tuple[str, ...]


@attrs.frozen
class _Material:
    version: int
    created: datetime
    secret: bytes = attrs.field(repr=False)


@attrs.frozen
class _Key:
    key_id: str
    description: str
    creator: str
    created: datetime
    state: KeyState
    deletion_date: datetime | None
    policy: KeyPolicy
    materials: tuple[_Material, ...] = attrs.field(repr=False)
    """Oldest first; version ``i`` is at index ``i - 1``."""

    @property
    def newest(self) -> _Material:
        return self.materials[-1]

    def material(self, version: int) -> _Material | None:
        if 1 <= version <= len(self.materials):
            return self.materials[version - 1]
        return None

    def with_new_material(self, now: datetime) -> _Key:
        material = _Material(len(self.materials) + 1, now, os.urandom(_aead.KEY_SIZE))
        return attrs.evolve(self, materials=(*self.materials, material))


@final
class _Store:
    """One parsed version of the document. Never changed: edits make a new one."""

    __slots__ = ("_wrappers", "aliases", "keys", "next_deletion")

    def __init__(self, keys: dict[str, _Key], aliases: dict[str, str]) -> None:
        self.keys = keys
        self.aliases = aliases
        self.next_deletion = min(
            (key.deletion_date for key in keys.values() if key.deletion_date is not None),
            default=None,
        )
        # One wrapper per material used, so bounded by the document's size.
        self._wrappers: dict[tuple[str, int], _aead.KeyWrapper] = {}

    def wrapper(self, key: _Key, material: _Material) -> _aead.KeyWrapper:
        wrapper = self._wrappers.get((key.key_id, material.version))
        if wrapper is None:
            wrapper = self._wrappers[key.key_id, material.version] = _aead.KeyWrapper(
                material.secret
            )
        return wrapper

    def resolve(self, name: str) -> _Key:
        if name.startswith(_ALIAS_PREFIX):
            key_id = self.aliases.get(name)
            if key_id is None:
                raise KeyNotFoundError(
                    f"no key has the alias {name!r}; create the alias (create_alias) or name "
                    "the key by its id"
                )
        else:
            key_id = name
        key = self.keys.get(key_id)
        if key is None:
            raise KeyNotFoundError(
                f"no key {name!r} exists in this key store (it may have been deleted); "
                "list_keys shows the keys there are"
            )
        return key

    def aliases_by_key(self) -> dict[str, tuple[str, ...]]:
        found: dict[str, list[str]] = {}
        for alias, key_id in sorted(self.aliases.items()):
            found.setdefault(key_id, []).append(alias)
        return {key_id: tuple(aliases) for key_id, aliases in found.items()}

    def with_key(self, key: _Key) -> _Store:
        return _Store({**self.keys, key.key_id: key}, self.aliases)

    def with_aliases(self, aliases: dict[str, str]) -> _Store:
        return _Store(self.keys, aliases)

    def purged(self, now: datetime) -> tuple[_Store, list[_Key]]:
        """This store without the keys whose deletion date has come, and those keys."""
        if self.next_deletion is None or now < self.next_deletion:
            return self, []
        gone = [key for key in self.keys.values() if _expired(key, now)]
        keys = {key_id: key for key_id, key in self.keys.items() if not _expired(key, now)}
        aliases = {alias: key_id for alias, key_id in self.aliases.items() if key_id in keys}
        return _Store(keys, aliases), gone


def _expired(key: _Key, now: datetime) -> bool:
    return key.deletion_date is not None and now >= key.deletion_date


@attrs.frozen
class _Cached:
    """The last document read: its file's signature, its sealed bytes and what they hold."""

    signature: tuple[int, int, int, int]
    sealed: bytes = attrs.field(repr=False)
    store: _Store
    settled: bool
    """Whether the file is old enough for its signature alone to prove it unchanged."""


@attrs.define
class _Call:
    """What the audit event of one call will say, filled in as the call learns it."""

    operation: Operation
    principal: str
    key_id: str
    context_keys: tuple[str, ...] = ()
    version: int | None = None
    reason: str = ""
    audit_success: bool = True
    then: list[AuditEvent] = attrs.field(factory=list)
    """Further events to record after this one if the call succeeds."""


@final
class LocalKms:
    """An embedded key management service: master keys, aliases, policies and rotation,
    persisted (sealed under ``root_key``) in the directory ``path``.

    It implements :class:`~sealstore.kms.KmsClient`. Every call names the ``principal``
    making it; key policies decide what each principal may do. Every use, change, denial
    and failure is recorded in ``audit`` (by default the hash-chained log
    ``path / "audit.jsonl"``). ``clock`` returns the current time as an aware datetime.

    >>> import pathlib, tempfile
    >>> from sealstore.sealed import RootKey
    >>> kms = LocalKms(pathlib.Path(tempfile.mkdtemp()), root_key=RootKey.from_bytes(bytes(32)))
    >>> key_id = kms.create_key(principal="alice").key_id
    >>> kms.create_alias("alias/orders", key_id, principal="alice")
    >>> data_key = kms.generate_data_key("alias/orders", {"bucket": "b"}, principal="alice")
    >>> data_key.key_id == key_id
    True
    >>> kms.decrypt(key_id, data_key.blob, {"bucket": "b"}, principal="alice") == data_key.plaintext
    True
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        root_key: RootKey,
        clock: Callable[[], datetime] = utc_now,
        audit: AuditSink | None = None,
    ) -> None:
        self._path = Path(path)
        try:
            self._path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise KeystoreError(
                f"cannot create the key store directory {self._path}: {error.strerror}"
            ) from None
        self._document = SealedFile(self._path / _DOCUMENT_NAME, root_key, _PURPOSE)
        self._clock = clock
        self._audit: AuditSink = JsonlAuditLog(self._path / _AUDIT_NAME) if audit is None else audit
        self._cache: _Cached | None = None
        self._snapshot()  # a wrong root key or a damaged store fails here, not at first use

    @property
    def path(self) -> Path:
        """The directory holding the key store."""
        return self._path

    def __repr__(self) -> str:
        return f"LocalKms({str(self._path)!r})"

    # The KmsClient protocol.

    def generate_data_key(
        self, key_id: str, context: Mapping[str, str], *, principal: str
    ) -> DataKey:
        """A fresh 32-byte data key and its blob under the newest material of ``key_id``.

        ``key_id`` may be an alias; the result names the key's real id.
        """
        with self._audited(Operation.GENERATE, principal, key_id, context) as call:
            principal = check_principal(principal)
            name = _check_name(key_id)
            encoded = encode_context(context)
            now = self._now()
            store = self._current(now, principal)
            key = self._usable(store, name, principal, KeyOperation.GENERATE, call)
            store, key = self._rotated_if_due(store, key, now, principal, KeyOperation.GENERATE)
            material = key.newest
            call.version = material.version
            data_key = os.urandom(_aead.KEY_SIZE)
            return DataKey(key.key_id, data_key, _seal(store, key, material, data_key, encoded))

    def decrypt(
        self, key_id: str, blob: bytes, context: Mapping[str, str], *, principal: str
    ) -> bytes:
        """The data key in ``blob``, which must name ``key_id`` (or the key it is an alias of)
        and have been made with exactly ``context``; otherwise :class:`DecryptionError`."""
        with self._audited(Operation.UNWRAP, principal, key_id, context) as call:
            principal = check_principal(principal)
            name = _check_name(key_id)
            encoded = encode_context(context)
            _check_blob(blob)
            store = self._current(self._now(), principal)
            key = self._usable(store, name, principal, KeyOperation.DECRYPT, call)
            material, header, wrapped = _blob_parts(key, blob, call)
            return store.wrapper(key, material).unwrap(wrapped, _BLOB_LABEL + header + encoded)

    def reencrypt(
        self,
        key_id: str,
        blob: bytes,
        context: Mapping[str, str],
        new_key_id: str,
        *,
        principal: str,
    ) -> tuple[str, bytes]:
        """The data key in ``blob`` as a new blob under the newest material of
        ``new_key_id``, with the same context: ``(real key id, new blob)``.

        Re-encrypting to the same key moves a blob onto the key's newest material.
        """
        with self._audited(Operation.REWRAP, principal, key_id, context) as call:
            principal = check_principal(principal)
            name = _check_name(key_id)
            new_name = _check_name(new_key_id)
            encoded = encode_context(context)
            _check_blob(blob)
            now = self._now()
            store = self._current(now, principal)
            source = self._usable(store, name, principal, KeyOperation.REENCRYPT_FROM, call)
            call.key_id = new_name
            target = self._usable(store, new_name, principal, KeyOperation.REENCRYPT_TO, call)
            call.key_id = source.key_id
            material, header, wrapped = _blob_parts(source, blob, call)
            data_key = store.wrapper(source, material).unwrap(
                wrapped, _BLOB_LABEL + header + encoded
            )
            store, target = self._rotated_if_due(
                store, target, now, principal, KeyOperation.REENCRYPT_TO
            )
            new_material = target.newest
            new_blob = _seal(store, target, new_material, data_key, encoded)
            call.reason = f"re-encrypted to key {target.key_id} version {new_material.version}"
            call.then.append(
                AuditEvent(
                    time=now,
                    principal=principal,
                    operation=Operation.REWRAP,
                    key_id=target.key_id,
                    key_version=str(new_material.version),
                    context_keys=call.context_keys,
                    reason=f"re-encrypted from key {source.key_id} version {material.version}",
                )
            )
            return target.key_id, new_blob

    def default_key_id(self, *, principal: str) -> str:
        """The id of the key behind ``alias/sealstore/default``, created at first use.

        Every principal may generate, decrypt, re-encrypt with and describe the default key;
        no one administers it, and it rotates yearly on its own.
        """
        with self._audited(Operation.CREATE_KEY, principal, DEFAULT_ALIAS) as call:
            call.audit_success = False  # only a call that creates the key is audited
            principal = check_principal(principal)
            now = self._now()
            store = self._current(now, principal)
            key_id = store.aliases.get(DEFAULT_ALIAS)
            if key_id is not None:
                return key_id
            created: list[_Key] = []

            def create(current: _Store) -> _Store | None:
                if DEFAULT_ALIAS in current.aliases:
                    return None  # another process made it first
                _check_room(current)
                key = _new_key(
                    principal,
                    "the default key, used when no key is named",
                    _DEFAULT_KEY_POLICY,
                    now,
                )
                created.append(key)
                return _Store(
                    {**current.keys, key.key_id: key},
                    {**current.aliases, DEFAULT_ALIAS: key.key_id},
                )

            store = self._mutate(create, now, principal)
            if created:
                call.key_id, call.version = created[0].key_id, 1
                call.reason = f"the default key, alias {DEFAULT_ALIAS}"
                call.audit_success = True
            return store.aliases[DEFAULT_ALIAS]

    # Administration.

    def create_key(
        self, *, principal: str, description: str = "", policy: KeyPolicy | None = None
    ) -> KeyMetadata:
        """A new enabled key with fresh material (version 1).

        Without ``policy``, ``principal`` alone may do everything with it
        (:meth:`KeyPolicy.owner`). A policy must grant ``put-policy`` to someone, or the key
        could never be administered.
        """
        with self._audited(Operation.CREATE_KEY, principal, "") as call:
            principal = check_principal(principal)
            if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_LENGTH:
                raise InvalidKmsRequestError(_DESCRIPTION_INVALID)
            policy = KeyPolicy.owner(principal) if policy is None else _check_policy(policy)
            now = self._now()
            self._current(now, principal)
            key = _new_key(principal, description, policy, now)
            call.key_id, call.version = key.key_id, 1

            def create(current: _Store) -> _Store:
                _check_room(current)
                return current.with_key(key)

            return _metadata(self._mutate(create, now, principal), key)

    def describe_key(self, key_id: str, *, principal: str) -> KeyMetadata:
        """The metadata of ``key_id`` (an id or alias), in any state."""
        with self._audited(Operation.DESCRIBE_KEY, principal, key_id) as call:
            principal = check_principal(principal)
            name = _check_name(key_id)
            store = self._current(self._now(), principal)
            key = store.resolve(name)
            call.key_id, call.version = key.key_id, key.newest.version
            _authorize(key, principal, KeyOperation.DESCRIBE)
            return _metadata(store, key)

    def list_keys(self) -> tuple[KeyEntry, ...]:
        """Every key in the store with its aliases, oldest first.

        Ids and aliases only: reading a key's metadata needs ``describe`` on it.
        """
        now = self._now()
        store = self._snapshot()
        aliases = store.aliases_by_key()
        keys = sorted(store.keys.values(), key=lambda key: (key.created, key.key_id))
        return tuple(
            KeyEntry(key.key_id, aliases.get(key.key_id, ()))
            for key in keys
            if not _expired(key, now)
        )

    def enable_key(self, key_id: str, *, principal: str) -> None:
        """Make a disabled key usable again (an enabled key stays enabled)."""
        self._administer(
            Operation.ENABLE_KEY,
            KeyOperation.ENABLE,
            key_id,
            principal,
            states=_CHANGE_STATES,
            edit=lambda key, _now: attrs.evolve(key, state=KeyState.ENABLED),
        )

    def disable_key(self, key_id: str, *, principal: str) -> None:
        """Refuse every use of the key until it is enabled again; its material is kept."""
        self._administer(
            Operation.DISABLE_KEY,
            KeyOperation.DISABLE,
            key_id,
            principal,
            states=_CHANGE_STATES,
            edit=lambda key, _now: attrs.evolve(key, state=KeyState.DISABLED),
        )

    def schedule_key_deletion(
        self, key_id: str, *, principal: str, waiting_days: int = DEFAULT_WAITING_DAYS
    ) -> datetime:
        """Destroy the key ``waiting_days`` (7 to 30) from now; returns that date.

        Until then the key refuses every use and the deletion can be cancelled. Afterwards its
        material is gone, and every blob made under it is lost for good.
        """
        if (
            isinstance(waiting_days, bool)
            or not isinstance(waiting_days, int)
            or not MIN_WAITING_DAYS <= waiting_days <= MAX_WAITING_DAYS
        ):
            with self._audited(Operation.SCHEDULE_DELETION, principal, key_id):
                raise InvalidKmsRequestError(
                    f"waiting_days must be an int from {MIN_WAITING_DAYS} to {MAX_WAITING_DAYS}"
                )
        key = self._administer(
            Operation.SCHEDULE_DELETION,
            KeyOperation.SCHEDULE_DELETION,
            key_id,
            principal,
            states=_CHANGE_STATES,
            edit=lambda key, now: attrs.evolve(
                key,
                state=KeyState.PENDING_DELETION,
                deletion_date=now + timedelta(days=waiting_days),
            ),
            reason=lambda key: f"deletion on {_format_time(key.deletion_date)}",
        )
        assert key.deletion_date is not None
        return key.deletion_date

    def cancel_key_deletion(self, key_id: str, *, principal: str) -> None:
        """Cancel a scheduled deletion; the key is then disabled (enable it to use it)."""
        self._administer(
            Operation.CANCEL_DELETION,
            KeyOperation.CANCEL_DELETION,
            key_id,
            principal,
            states=frozenset({KeyState.PENDING_DELETION}),
            edit=lambda key, _now: attrs.evolve(key, state=KeyState.DISABLED, deletion_date=None),
        )

    def rotate_key(self, key_id: str, *, principal: str) -> int:
        """Add new material to an enabled key now; returns its version.

        New blobs use it; blobs made under older material still decrypt.
        """

        def rotate(key: _Key, now: datetime) -> _Key:
            if len(key.materials) >= MAX_VERSIONS:
                raise KmsError(
                    f"key {key.key_id} already has {MAX_VERSIONS} material versions, the most "
                    "a key may have; create a new key and re-encrypt to it"
                )
            return key.with_new_material(now)

        key = self._administer(
            Operation.ROTATE,
            KeyOperation.ROTATE,
            key_id,
            principal,
            states=_USE_STATES,
            edit=rotate,
        )
        return key.newest.version

    def put_key_policy(self, key_id: str, policy: KeyPolicy, *, principal: str) -> None:
        """Replace the key's policy. ``policy`` must grant ``put-policy`` to someone."""
        if not isinstance(policy, KeyPolicy) or not policy.principals(KeyOperation.PUT_POLICY):
            with self._audited(Operation.PUT_POLICY, principal, key_id):
                _check_policy(policy)
        self._administer(
            Operation.PUT_POLICY,
            KeyOperation.PUT_POLICY,
            key_id,
            principal,
            states=_CHANGE_STATES,
            edit=lambda key, _now: attrs.evolve(key, policy=policy),
        )

    def create_alias(self, alias: str, key_id: str, *, principal: str) -> None:
        """Point the new alias ``alias`` (``alias/`` then letters, digits, ``/_-``) at a key.

        Aliases are unique; ``alias/sealstore/`` is reserved. Delete an alias to reuse it.
        """
        with self._audited(Operation.CREATE_ALIAS, principal, key_id) as call:
            principal = check_principal(principal)
            alias = _check_alias(alias)
            name = _check_name(key_id)
            call.reason = f"alias {alias}"
            now = self._now()
            self._current(now, principal)

            def add(store: _Store) -> _Store:
                key = store.resolve(name)
                call.key_id = key.key_id
                _authorize(key, principal, KeyOperation.CREATE_ALIAS)
                _require_state(key, _CHANGE_STATES)
                if alias in store.aliases:
                    raise KmsError(
                        f"the alias {alias!r} already exists; delete it first or choose another"
                    )
                if len(store.aliases) >= MAX_ALIASES:
                    raise KmsError(
                        f"the key store already holds {MAX_ALIASES} aliases, the most it may; "
                        "delete unused ones"
                    )
                return store.with_aliases({**store.aliases, alias: key.key_id})

            self._mutate(add, now, principal)

    def delete_alias(self, alias: str, *, principal: str) -> None:
        """Delete ``alias``; the key it points at is unchanged."""
        with self._audited(Operation.DELETE_ALIAS, principal, alias) as call:
            principal = check_principal(principal)
            alias = _check_alias(alias)
            call.reason = f"deleted alias {alias}"
            now = self._now()
            self._current(now, principal)

            def remove(store: _Store) -> _Store:
                key = store.resolve(alias)
                call.key_id = key.key_id
                _authorize(key, principal, KeyOperation.DELETE_ALIAS)
                return store.with_aliases(
                    {name: key_id for name, key_id in store.aliases.items() if name != alias}
                )

            self._mutate(remove, now, principal)

    # Internals.

    def _administer(
        self,
        operation: Operation,
        key_operation: KeyOperation,
        key_id: object,
        principal: object,
        *,
        states: frozenset[KeyState],
        edit: Callable[[_Key, datetime], _Key],
        reason: Callable[[_Key], str] | None = None,
    ) -> _Key:
        with self._audited(operation, principal, key_id) as call:
            checked = check_principal(principal)
            name = _check_name(key_id)
            now = self._now()
            self._current(now, checked)
            edited: list[_Key] = []

            def change(store: _Store) -> _Store:
                key = store.resolve(name)
                call.key_id = key.key_id
                _authorize(key, checked, key_operation)
                _require_state(key, states)
                edited.append(edit(key, now))
                return store.with_key(edited[0])

            self._mutate(change, now, checked)
            call.version = edited[0].newest.version
            if reason is not None:
                call.reason = reason(edited[0])
            return edited[0]

    def _usable(
        self, store: _Store, name: str, principal: str, operation: KeyOperation, call: _Call
    ) -> _Key:
        key = store.resolve(name)
        call.key_id = key.key_id
        _authorize(key, principal, operation)
        _require_state(key, _USE_STATES)
        return key

    def _rotated_if_due(
        self, store: _Store, key: _Key, now: datetime, principal: str, operation: KeyOperation
    ) -> tuple[_Store, _Key]:
        if not _rotation_due(key, now):
            return store, key
        rotated: list[_Key] = []

        def rotate(current: _Store) -> _Store | None:
            fresh = current.keys.get(key.key_id)
            if (
                fresh is None
                or fresh.state is not KeyState.ENABLED
                or not _rotation_due(fresh, now)
            ):
                return None  # gone, disabled, or rotated by someone else meanwhile
            rotated.append(fresh.with_new_material(now))
            return current.with_key(rotated[0])

        store = self._mutate(rotate, now, principal)
        if rotated:
            self._record(
                AuditEvent(
                    time=now,
                    principal=principal,
                    operation=Operation.ROTATE,
                    key_id=key.key_id,
                    key_version=str(rotated[0].newest.version),
                    reason="automatic yearly rotation",
                )
            )
        # The key may have changed while the lock was free: check it again.
        fresh = store.resolve(key.key_id)
        _authorize(fresh, principal, operation)
        _require_state(fresh, _USE_STATES)
        return store, fresh

    def _now(self) -> datetime:
        now = self._clock()
        if not isinstance(now, datetime) or now.utcoffset() is None:
            raise KmsError(
                "the LocalKms clock must return timezone-aware datetimes, such as "
                "datetime.now(timezone.utc)"
            )
        return now.astimezone(timezone.utc)

    def _snapshot(self) -> _Store:
        """The document as it is on disk, decrypted and parsed again only when it changed."""
        path = self._document.path
        cached = self._cache
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return _Store({}, {})
        except OSError as error:
            raise KeystoreError(f"cannot read {path}: {error.strerror}") from None
        try:
            # The descriptor pins one file: a writer replaces the file, never changes it, so
            # this signature and these bytes belong together.
            stat = os.fstat(fd)
            signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino, stat.st_dev)
            if cached is not None and cached.settled and cached.signature == signature:
                return cached.store
            sealed = _read_all(fd, min(stat.st_size, MAX_DOCUMENT_SIZE + 1))
        except OSError as error:
            raise KeystoreError(f"cannot read {path}: {error.strerror}") from None
        finally:
            os.close(fd)
        if cached is not None and cached.sealed == sealed:
            store = cached.store  # every write draws a new nonce: same bytes, same document
        else:
            # May read a newer document than ``sealed``, never an older one.
            document = self._document.read()
            store = _Store({}, {}) if document is None else _decode(document, path)
        settled = time.time_ns() - stat.st_mtime_ns > _RACY_WINDOW_NS
        self._cache = _Cached(signature, sealed, store, settled)
        return store

    def _current(self, now: datetime, principal: str) -> _Store:
        """The document, after destroying the keys whose deletion date has come."""
        store = self._snapshot()
        if store.next_deletion is not None and now >= store.next_deletion:
            store = self._mutate(lambda current: None, now, principal)
        return store

    def _mutate(
        self, change: Callable[[_Store], _Store | None], now: datetime, principal: str
    ) -> _Store:
        """Apply ``change`` to the document under its lock (after purging expired keys) and
        write the result; ``change`` returns ``None`` to leave the document as it is."""
        purged: list[_Key] = []
        outcome: list[_Store] = []

        def apply(current: bytes | None) -> bytes | None:
            store = _Store({}, {}) if current is None else _decode(current, self._document.path)
            store, gone = store.purged(now)
            changed = change(store)
            purged[:] = gone
            outcome[:] = [store if changed is None else changed]
            if changed is None and not gone:
                return None
            return _encode(outcome[0])

        try:
            self._document.update(apply)
        finally:
            self._cache = None
        for key in purged:
            self._record(
                AuditEvent(
                    time=now,
                    principal=principal,
                    operation=Operation.DELETE_KEY,
                    key_id=key.key_id,
                    key_version=str(key.newest.version),
                    reason=(
                        f"the deletion date {_format_time(key.deletion_date)} passed; "
                        "the key material was destroyed"
                    ),
                )
            )
        return outcome[0]

    @contextlib.contextmanager
    def _audited(
        self, operation: Operation, principal: object, key_id: object, context: object = None
    ) -> Iterator[_Call]:
        """Record how the call in the ``with`` block ended: success, denial or failure."""
        call = _Call(operation, _label(principal), _label(key_id), _context_keys(context))
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
            self._record(event)

    def _record_call(self, call: _Call, outcome: Outcome, reason: str) -> None:
        self._record(
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

    def _record(self, event: AuditEvent) -> None:
        self._audit.record(event)

    def _event_time(self) -> datetime:
        try:
            return self._now()
        except KmsError:  # a broken clock is itself a failure worth recording
            return utc_now()


def _read_all(fd: int, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = os.read(fd, size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _new_key(creator: str, description: str, policy: KeyPolicy, now: datetime) -> _Key:
    return _Key(
        key_id=str(uuid.uuid4()),
        description=description,
        creator=creator,
        created=now,
        state=KeyState.ENABLED,
        deletion_date=None,
        policy=policy,
        materials=(_Material(1, now, os.urandom(_aead.KEY_SIZE)),),
    )


def _metadata(store: _Store, key: _Key) -> KeyMetadata:
    return KeyMetadata(
        key_id=key.key_id,
        aliases=store.aliases_by_key().get(key.key_id, ()),
        description=key.description,
        creator=key.creator,
        created=key.created,
        state=key.state,
        deletion_date=key.deletion_date,
        current_version=key.newest.version,
        rotated=key.newest.created,
        policy=key.policy,
    )


def _rotation_due(key: _Key, now: datetime) -> bool:
    return now - key.newest.created >= ROTATION_PERIOD and len(key.materials) < MAX_VERSIONS


def _check_room(store: _Store) -> None:
    if len(store.keys) >= MAX_KEYS:
        raise KmsError(
            f"the key store already holds {MAX_KEYS} keys, the most it may; schedule unused "
            "keys for deletion"
        )


def _authorize(key: _Key, principal: str, operation: KeyOperation) -> None:
    if not key.policy.allows(principal, operation):
        raise AccessDeniedError(
            f"principal {principal!r} is not allowed {operation.value!r} on key {key.key_id}; "
            "ask an administrator of the key to grant it in the key policy"
        )


def _require_state(key: _Key, states: frozenset[KeyState]) -> None:
    if key.state in states:
        return
    if KeyState.PENDING_DELETION in states:  # only cancelling a deletion asks for this state
        raise KeyStateError(
            f"key {key.key_id} is {key.state.value}, not scheduled for deletion; there is no "
            "deletion to cancel"
        )
    if key.state is KeyState.DISABLED:
        raise KeyDisabledError(f"key {key.key_id} is disabled; enable it (enable_key) to use it")
    raise KeyPendingDeletionError(
        f"key {key.key_id} is scheduled for deletion on {_format_time(key.deletion_date)}; "
        "cancel the deletion (cancel_key_deletion) to use it"
    )


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidKmsRequestError(
            f"a key id or alias must be a non-empty str of at most {MAX_NAME_LENGTH} characters"
        )
    return name


def _check_alias(alias: object) -> str:
    if not isinstance(alias, str) or not _ALIAS_PATTERN.fullmatch(alias):
        raise InvalidKmsRequestError(
            "an alias is 'alias/' followed by 1 to 250 letters, digits, '/', '_' or '-'"
        )
    if alias.startswith(_RESERVED_ALIAS_PREFIX):
        raise InvalidKmsRequestError(
            f"aliases under {_RESERVED_ALIAS_PREFIX!r} are reserved for sealstore; choose "
            "another name"
        )
    return alias


def _check_policy(policy: object) -> KeyPolicy:
    if not isinstance(policy, KeyPolicy):
        raise InvalidKmsRequestError("a key policy must be a sealstore.kms.policy.KeyPolicy")
    if not policy.principals(KeyOperation.PUT_POLICY):
        raise InvalidKmsRequestError(
            "the key policy grants 'put-policy' to no one, so the key could never be "
            "administered again; grant it to an administrator"
        )
    return policy


def _check_blob(blob: object) -> None:
    if not isinstance(blob, bytes):
        raise InvalidKmsRequestError("a blob must be bytes")
    if len(blob) > MAX_BLOB_SIZE:
        raise DecryptionError(
            f"the blob is {len(blob)} bytes long; a LocalKms blob is at most {MAX_BLOB_SIZE}"
        )


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


def _blob_header(key_id: str, version: int) -> bytes:
    encoded = key_id.encode("ascii")
    return bytes((BLOB_VERSION, len(encoded))) + encoded + version.to_bytes(4, "big")


def _seal(store: _Store, key: _Key, material: _Material, data_key: bytes, context: bytes) -> bytes:
    header = _blob_header(key.key_id, material.version)
    return header + store.wrapper(key, material).wrap(data_key, _BLOB_LABEL + header + context)


def _blob_parts(key: _Key, blob: bytes, call: _Call) -> tuple[_Material, bytes, bytes]:
    """The material ``blob`` names, its header and its wrapped key; checks it names ``key``."""
    if len(blob) <= _BLOB_FIXED or blob[0] != BLOB_VERSION or len(blob) != _BLOB_FIXED + blob[1]:
        raise DecryptionError("the blob is not a LocalKms blob (or not of a version this reads)")
    split = 6 + blob[1]
    version = int.from_bytes(blob[split - 4 : split], "big")
    call.version = version
    if blob[2 : split - 4] != key.key_id.encode("ascii"):
        raise DecryptionError(
            f"the blob was not made under key {key.key_id}; decrypt it with the key it names"
        )
    material = key.material(version)
    if material is None:
        raise DecryptionError(
            f"the blob names material version {version}, which key {key.key_id} does not have"
        )
    return material, blob[:split], blob[split:]


def _format_time(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(timezone.utc).isoformat()


def _parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise TypeError(value)
    parsed = datetime.fromisoformat(value)
    if parsed.utcoffset() is None:
        raise ValueError(value)
    return parsed.astimezone(timezone.utc)


def _encode(store: _Store) -> bytes:
    keys: dict[str, Any] = {}
    for key_id, key in store.keys.items():
        keys[key_id] = {
            "description": key.description,
            "creator": key.creator,
            "created": _format_time(key.created),
            "state": key.state.value,
            "deletion_date": None if key.deletion_date is None else _format_time(key.deletion_date),
            "policy": key.policy.as_dict(),
            "materials": [
                {
                    "version": material.version,
                    "created": _format_time(material.created),
                    "key": base64.b64encode(material.secret).decode("ascii"),
                }
                for material in key.materials
            ],
        }
    document = {"format": _DOCUMENT_FORMAT, "keys": keys, "aliases": store.aliases}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _decode(data: bytes, path: Path) -> _Store:
    damaged = f"{path} holds a damaged key store document; restore it from a backup"
    try:
        document = json.loads(data)
        if document["format"] != _DOCUMENT_FORMAT:
            raise KeystoreError(
                f"{path} is key store format {document['format']!r}; upgrade sealstore to read it"
            )
        keys: dict[str, _Key] = {}
        policies: dict[str, KeyPolicy] = {}
        for key_id, raw in document["keys"].items():
            materials = tuple(
                _Material(
                    _int(entry["version"]),
                    _parse_time(entry["created"]),
                    base64.b64decode(entry["key"], validate=True),
                )
                for entry in raw["materials"]
            )
            if not materials or [m.version for m in materials] != list(
                range(1, len(materials) + 1)
            ):
                raise ValueError("material versions")
            if any(len(material.secret) != _aead.KEY_SIZE for material in materials):
                raise ValueError("material size")
            deletion = raw["deletion_date"]
            keys[key_id] = _Key(
                key_id=_str(key_id),
                description=_str(raw["description"]),
                creator=_str(raw["creator"]),
                created=_parse_time(raw["created"]),
                state=KeyState(raw["state"]),
                deletion_date=None if deletion is None else _parse_time(deletion),
                policy=_policy(raw["policy"], policies),
                materials=materials,
            )
        aliases = {_str(alias): _str(key_id) for alias, key_id in document["aliases"].items()}
        if not all(key_id in keys for key_id in aliases.values()):
            raise ValueError("alias of a missing key")
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise KeystoreError(damaged) from None
    return _Store(keys, aliases)


def _policy(raw: object, seen: dict[str, KeyPolicy]) -> KeyPolicy:
    """The policy ``raw`` describes; keys sharing a policy share one parsed object."""
    text = json.dumps(raw, sort_keys=True)
    policy = seen.get(text)
    if policy is None:
        if not isinstance(raw, dict):
            raise TypeError(raw)
        policy = seen[text] = KeyPolicy(raw)
    return policy


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(value)
    return value
