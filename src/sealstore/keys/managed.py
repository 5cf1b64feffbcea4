"""``ManagedKeys``: a keyring of master keys managed by the library (like SSE-S3).

The keyring is a list of 256-bit master keys, each with a version id, a creation time, a
state and a count of the data keys reserved for wrapping under it. Exactly one version is
current: every new object's data key is wrapped under it, and the object's header names the
version (the key reference, 1..128 bytes of ``[A-Za-z0-9._-]``), so decryption finds its
master key without trying several.

The keyring is kept by a :class:`KeyringStore`, a two-method protocol over one document:
:class:`FileKeyringStore` seals it under a :class:`~sealstore.sealed.RootKey` in a file
replaced atomically under an exclusive lock; :class:`MemoryKeyringStore` keeps it in memory
for tests. The document is JSON::

    {"kind": "sealstore-keyring", "schema": 1, "keyring": "kr-<16 hex>",
     "next_sequence": 4, "current": "v000003-9f2c1a7b",
     "versions": [{"id": "v000001-5d0e33c2", "created": "2026-01-01T00:00:00+00:00",
                   "state": "active" | "retired", "reserved_wraps": 8192,
                   "key": "<base64 of 32 bytes>"}, ...]}

Wraps are counted without writing the keyring for each one: a process reserves a block of
wraps (``RotationPolicy.reserve_block``) by raising the version's ``reserved_wraps`` in the
store *before* it uses any of them. A crash loses the unused rest of a block, so the stored
count is an upper bound of the wraps really made, never less; a version is rotated out when
its reserved count reaches ``RotationPolicy.max_wraps``.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar, Final, Protocol, final

import attrs

from sealstore import _aead
from sealstore.audit import AuditEvent, AuditSink, Operation, Outcome
from sealstore.clock import utc_now
from sealstore.errors import (
    DecryptionError,
    FormatError,
    KeyNotFoundError,
    KeyRetiredError,
    KeyStateError,
    KeystoreError,
)
from sealstore.header import Header, Mode, key_binding
from sealstore.sealed import RootKey, SealedFile

__all__ = [
    "MAX_VERSIONS",
    "FileKeyringStore",
    "KeyVersion",
    "KeyringStore",
    "ManagedKeys",
    "MemoryKeyringStore",
    "RotationPolicy",
    "VersionState",
]

MAX_VERSIONS: Final = 10_000
"""Versions a keyring may hold; destroy retired versions to make room."""
_KIND: Final = "sealstore-keyring"
_SCHEMA: Final = 1
_PURPOSE: Final = b"managed keyring"
_VERSION_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,128}")
_KEYRING_ID: Final = re.compile(r"kr-[0-9a-f]{16}")
_MAX_WRAPS_LIMIT: Final = 1 << 32
"""Random 96-bit nonces: at most 2**32 wraps under one key keep collisions negligible."""
_MAX_BLOCK: Final = 1 << 20
_NO_KEYRING: Final = "managed"
"""The audit key id used when no keyring exists yet."""


class VersionState(str, enum.Enum):
    """The state of one master key version."""

    CURRENT = "current"
    """Wraps new data keys, and decrypts. Exactly one version is current."""
    ACTIVE = "active"
    """An older version: no longer wraps, still decrypts."""
    RETIRED = "retired"
    """Refuses to decrypt (:class:`~sealstore.KeyRetiredError`) until reactivated."""


@final
@attrs.frozen
class KeyVersion:
    """What may be shown of a master key version: never its key.

    >>> from datetime import datetime, timezone
    >>> KeyVersion("v000001-5d0e33c2", datetime(2026, 1, 1, tzinfo=timezone.utc),
    ...            VersionState.CURRENT, 4096).state
    <VersionState.CURRENT: 'current'>
    """

    id: str
    """The version id, as written in the key reference of the objects it wraps."""
    created: datetime
    state: VersionState
    reserved_wraps: int
    """Data keys reserved for wrapping under this version: an upper bound of those wrapped."""


def _positive(_instance: object, attribute: attrs.Attribute[timedelta], value: timedelta) -> None:
    if value <= timedelta(0):
        raise ValueError(f"RotationPolicy.{attribute.name} must be positive")


def _between(low: int, high: int) -> Callable[[object, attrs.Attribute[int], int], None]:
    def check(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if type(value) is not int or not low <= value <= high:
            raise ValueError(f"RotationPolicy.{attribute.name} must be an int in [{low}, {high}]")

    return check


@final
@attrs.frozen
class RotationPolicy:
    """When the current master key version is replaced, and how fresh the keyring is kept.

    >>> from datetime import timedelta
    >>> RotationPolicy(max_age=timedelta(days=30)).max_wraps == 2**28
    True

    ``max_age``: a version this old is rotated out before the next wrap.
    ``max_wraps``: a version is rotated out once this many wraps were reserved under it
    (default 2**28, far below the 2**32 that random 96-bit nonces allow under one key).
    ``reserve_block``: wraps reserved per write of the keyring; a crash forfeits at most one
    block per process. ``reload_after``: the keyring is re-read at least this often, so
    rotations, retirements and reactivations made by other processes take effect here.
    """

    max_age: timedelta = attrs.field(default=timedelta(days=90), validator=_positive)
    max_wraps: int = attrs.field(default=1 << 28, validator=_between(1, _MAX_WRAPS_LIMIT))
    reserve_block: int = attrs.field(default=4096, validator=_between(1, _MAX_BLOCK))
    reload_after: timedelta = attrs.field(default=timedelta(minutes=1), validator=_positive)


class KeyringStore(Protocol):
    """Where a keyring document lives: read it, or change it under an exclusive lock.

    The document holds master keys in the clear: a store must keep it confidential (as
    :class:`FileKeyringStore` does by sealing it) and durable.
    """

    def load(self) -> bytes | None:
        """The document as last stored, or ``None`` if none was ever stored."""
        ...

    def update(self, change: Callable[[bytes | None], bytes | None]) -> bytes | None:
        """Store ``change(current)`` atomically, excluding every other update meanwhile.

        ``change`` returning ``None`` stores nothing; an exception from it stores nothing and
        propagates. A store may call ``change`` again (after a lost conditional write); the
        last call's result is what is stored. Returns the document as it stands afterwards.
        """
        ...


@final
class MemoryKeyringStore:
    """A keyring held in memory, for tests: gone when the object is.

    >>> keys = ManagedKeys(MemoryKeyringStore())
    >>> keys.rotate().state
    <VersionState.CURRENT: 'current'>
    """

    def __init__(self) -> None:
        self._document: bytes | None = None
        self._lock = threading.Lock()

    def load(self) -> bytes | None:
        """The document as last stored, or ``None``."""
        return self._document

    def update(self, change: Callable[[bytes | None], bytes | None]) -> bytes | None:
        """Replace the document with ``change(current)`` under a lock."""
        with self._lock:
            new = change(self._document)
            if new is not None:
                self._document = new
            return self._document

    def __repr__(self) -> str:
        return "MemoryKeyringStore()"


@final
class FileKeyringStore:
    """A keyring sealed under a root key in one file, replaced atomically under a lock.

    Every change is written to a temporary file, fsynced and renamed over the old one while
    holding an exclusive lock on ``<path>.lock``, so a crash leaves the old keyring or the new
    one, and concurrent processes never lose each other's versions. Back up the file and keep
    the root key apart from it: both are needed to decrypt anything.

    >>> import pathlib, tempfile
    >>> root = RootKey.from_base64(RootKey.generate())
    >>> store = FileKeyringStore(pathlib.Path(tempfile.mkdtemp()) / "keyring", root)
    >>> store.load() is None
    True
    """

    def __init__(self, path: str | os.PathLike[str], root_key: RootKey) -> None:
        self._file = SealedFile(path, root_key, _PURPOSE)

    @property
    def path(self) -> Path:
        """Where the sealed keyring is."""
        return self._file.path

    def load(self) -> bytes | None:
        """The unsealed document, or ``None`` if the file does not exist yet.

        Raises :class:`~sealstore.RootKeyError` for a wrong root key (or an altered file) and
        :class:`~sealstore.KeystoreError` for a file that cannot be read or is not a keyring.
        """
        return self._file.read()

    def update(self, change: Callable[[bytes | None], bytes | None]) -> bytes | None:
        """Replace the document with ``change(current)``, crash-safely, under the lock."""
        return self._file.update(change)

    def __repr__(self) -> str:
        return f"FileKeyringStore({str(self._file.path)!r})"


# The keyring document, parsed.


@attrs.frozen(eq=False)
class _MasterKey:
    id: str
    created: datetime
    retired: bool
    reserved: int
    key: bytes = attrs.field(repr=False)


@attrs.frozen(eq=False)
class _Keyring:
    keyring_id: str
    next_sequence: int
    current: str
    versions: tuple[_MasterKey, ...]
    by_id: dict[str, _MasterKey] = attrs.field(init=False, repr=False)
    # Built on first use: a keyring snapshot is replaced, never changed, so entries stay valid.
    wrappers: dict[str, _aead.KeyWrapper] = attrs.field(init=False, repr=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "by_id", {entry.id: entry for entry in self.versions})

    @property
    def current_key(self) -> _MasterKey:
        return self.by_id[self.current]

    def wrapper(self, entry: _MasterKey) -> _aead.KeyWrapper:
        wrapper = self.wrappers.get(entry.id)
        if wrapper is None:
            wrapper = self.wrappers[entry.id] = _aead.KeyWrapper(entry.key)
        return wrapper

    def replace(self, entry: _MasterKey) -> _Keyring:
        versions = tuple(entry if old.id == entry.id else old for old in self.versions)
        return attrs.evolve(self, versions=versions)

    def view(self, entry: _MasterKey) -> KeyVersion:
        if entry.id == self.current:
            state = VersionState.CURRENT
        else:
            state = VersionState.RETIRED if entry.retired else VersionState.ACTIVE
        return KeyVersion(entry.id, entry.created, state, entry.reserved)


def _add_version(ring: _Keyring | None, now: datetime) -> tuple[_Keyring, _MasterKey]:
    """``ring`` with a new current version (a new keyring if ``None``), and that version."""
    if ring is None:
        ring = _Keyring(f"kr-{os.urandom(8).hex()}", 1, "", ())
    if len(ring.versions) >= MAX_VERSIONS:
        raise KeystoreError(
            f"the keyring holds {len(ring.versions)} versions, the most it may: destroy "
            "retired versions (after rewrapping their objects) to make room"
        )
    sequence = ring.next_sequence
    # The random suffix keeps ids unique across keyrings, and across a keyring restored
    # from a backup and the versions it had lost.
    entry = _MasterKey(
        f"v{sequence:06d}-{os.urandom(4).hex()}", now, False, 0, os.urandom(_aead.KEY_SIZE)
    )
    new = _Keyring(ring.keyring_id, sequence + 1, entry.id, (*ring.versions, entry))
    return new, entry


def _encode(ring: _Keyring) -> bytes:
    document = {
        "kind": _KIND,
        "schema": _SCHEMA,
        "keyring": ring.keyring_id,
        "next_sequence": ring.next_sequence,
        "current": ring.current,
        "versions": [
            {
                "id": entry.id,
                "created": entry.created.astimezone(timezone.utc).isoformat(),
                "state": "retired" if entry.retired else "active",
                "reserved_wraps": entry.reserved,
                "key": base64.b64encode(entry.key).decode("ascii"),
            }
            for entry in ring.versions
        ],
    }
    return json.dumps(document, separators=(",", ":")).encode()


def _malformed(what: str) -> KeystoreError:
    return KeystoreError(
        f"the keyring document is malformed ({what}); restore the keyring from a backup"
    )


def _get(obj: Mapping[str, Any], name: str, kind: type[Any]) -> Any:
    value = obj.get(name)
    if type(value) is not kind:
        raise _malformed(f"{name!r} is missing or not a JSON {kind.__name__}")
    return value


def _decode(raw: bytes) -> _Keyring:
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _malformed("not JSON") from None
    if type(document) is not dict or document.get("kind") != _KIND:
        raise _malformed("not a sealstore keyring")
    schema = document.get("schema")
    if schema != _SCHEMA:
        raise KeystoreError(
            f"the keyring has schema {schema!r}; this sealstore reads schema {_SCHEMA}: "
            "upgrade sealstore to read it"
        )
    keyring_id = _get(document, "keyring", str)
    next_sequence = _get(document, "next_sequence", int)
    current = _get(document, "current", str)
    items = _get(document, "versions", list)
    if not _KEYRING_ID.fullmatch(keyring_id) or next_sequence < 1:
        raise _malformed("bad keyring id or sequence")
    if not 0 < len(items) <= MAX_VERSIONS:
        raise _malformed(f"it must hold 1 to {MAX_VERSIONS} versions")
    versions = tuple(_decode_version(item) for item in items)
    ring = _Keyring(keyring_id, next_sequence, current, versions)
    if len(ring.by_id) != len(versions):
        raise _malformed("two versions share an id")
    entry = ring.by_id.get(current)
    if entry is None or entry.retired:
        raise _malformed("the current version is missing or retired")
    return ring


def _decode_version(item: object) -> _MasterKey:
    if type(item) is not dict:
        raise _malformed("a version is not a JSON object")
    version = _get(item, "id", str)
    state = _get(item, "state", str)
    reserved = _get(item, "reserved_wraps", int)
    if not _VERSION_ID.fullmatch(version) or state not in {"active", "retired"} or reserved < 0:
        raise _malformed("a version has a bad id, state or count")
    try:
        created = datetime.fromisoformat(_get(item, "created", str))
        key = base64.b64decode(_get(item, "key", str), validate=True)
    except (ValueError, binascii.Error):
        raise _malformed(f"version {version} has a bad time or key") from None
    if created.utcoffset() is None or len(key) != _aead.KEY_SIZE:
        raise _malformed(f"version {version} has a bad time or key")
    return _MasterKey(version, created, state == "retired", reserved, key)


def _version_of(key_ref: bytes) -> str:
    try:
        version = key_ref.decode("ascii")
    except UnicodeDecodeError:
        version = ""
    if not _VERSION_ID.fullmatch(version):
        raise FormatError(
            "malformed header: a managed key reference is a version id of 1 to 128 ASCII "
            "letters, digits, '.', '_' or '-'"
        )
    return version


def _not_found(version: str) -> KeyNotFoundError:
    return KeyNotFoundError(
        f"master key version {version!r} is not in the keyring: the object was written under "
        "another keyring, or the version was destroyed; read it with the keyring it was "
        "written under (or restore that keyring from a backup)"
    )


def _retired(version: str) -> KeyRetiredError:
    return KeyRetiredError(
        f"master key version {version!r} is retired and no longer decrypts: to read objects "
        f"under it, reactivate it (ManagedKeys.reactivate({version!r})) and rewrap them"
    )


def _non_empty(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError("ManagedKeys.principal must be a non-empty str")


_UNKNOWN_RELOAD_INTERVAL: Final = timedelta(seconds=1)
"""Reloads of the keyring for headers naming an unknown version are at most this frequent."""


class _State:
    """The mutable part of a ManagedKeys: the keyring as last read, and the wrap lease."""

    __slots__ = ("lease_left", "lease_version", "loaded_at", "lock", "ring", "unknown_reload_at")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ring: _Keyring | None = None
        self.loaded_at = datetime.min.replace(tzinfo=timezone.utc)
        self.unknown_reload_at = datetime.min.replace(tzinfo=timezone.utc)
        self.lease_version = ""
        self.lease_left = 0


@final
@attrs.frozen(eq=False, repr=False)
class ManagedKeys:
    """Master keys kept and rotated by the library, in a keyring (the SSE-S3 mode).

    Each object's data key is wrapped under the current master key version, and the header
    names the version. Old versions keep decrypting after a rotation until retired::

        >>> import sealstore
        >>> keys = sealstore.ManagedKeys(sealstore.keys.managed.MemoryKeyringStore())
        >>> blob = sealstore.encrypt(b"hello", keys)
        >>> old = keys.rotate()
        >>> sealstore.decrypt(blob, keys)
        b'hello'

    Rotation is automatic when the current version is older than ``rotation.max_age`` or
    has had ``rotation.max_wraps`` wraps reserved, and on demand with :meth:`rotate`.
    ``clock`` returns aware UTC datetimes; ``audit`` receives an event for every use of a
    master key, attributed to ``principal``. Safe to share between threads; several
    instances and processes may share one store.
    """

    mode: ClassVar[Mode] = Mode.MANAGED

    store: KeyringStore
    rotation: RotationPolicy = attrs.field(default=RotationPolicy(), kw_only=True)
    clock: Callable[[], datetime] = attrs.field(default=utc_now, kw_only=True)
    audit: AuditSink | None = attrs.field(default=None, kw_only=True)
    principal: str = attrs.field(default="sealstore", kw_only=True, validator=_non_empty)
    _state: _State = attrs.field(init=False, factory=_State)

    # The provider interface.

    def wrap_data_key(
        self, data_key: bytes, immutable: bytes, context: Mapping[str, str]
    ) -> tuple[bytes, bytes]:
        """Wrap ``data_key`` under the current version; returns ``(version id, wrapped)``."""
        return self._wrap(data_key, immutable, context, Operation.GENERATE)

    def unwrap_data_key(self, header: Header) -> bytes:
        """Recover the data key of ``header`` under the master key version it names.

        Raises :class:`~sealstore.KeyNotFoundError` for a version not in the keyring,
        :class:`~sealstore.KeyRetiredError` for a retired one (both name the version) and
        :class:`~sealstore.DecryptionError` if the wrapped key fails authentication.
        """
        ring, entry = self._open(header, Operation.UNWRAP)
        data_key = self._unwrap(ring, entry, header, Operation.UNWRAP)
        self._record(Operation.UNWRAP, ring, entry.id, header.context)
        return data_key

    # Rewrapping and keyring administration.

    def rewrap_data_key(self, header: Header) -> tuple[bytes, bytes]:
        """Re-wrap the data key of ``header`` under the current version, body untouched.

        Returns the new ``(key reference, wrapped key)`` for the same header fields; see the
        rewrap recipe in ``docs/managed-keys.md``.
        """
        ring, entry = self._open(header, Operation.REWRAP)
        data_key = self._unwrap(ring, entry, header, Operation.REWRAP)
        return self._wrap(
            data_key, header.immutable, header.context, Operation.REWRAP, f"from {entry.id}"
        )

    def rotate(self) -> KeyVersion:
        """Create a new master key version and make it current; returns it.

        Always adds a version, even if another process rotated a moment ago.
        """
        now = self._now()
        created: list[_MasterKey] = []

        def change(raw: bytes | None) -> bytes:
            ring, entry = _add_version(None if raw is None else _decode(raw), now)
            created[:] = [entry]
            return _encode(ring)

        with self._state.lock:
            ring = self._update(change, now)
        entry = ring.by_id[created[0].id]
        self._record(Operation.ROTATE, ring, entry.id, reason="on demand")
        return ring.view(entry)

    def retire(self, version: str) -> KeyVersion:
        """Stop ``version`` from decrypting; the current version cannot be retired.

        Rewrap the objects under it first. Retiring a retired version changes nothing.
        """

        def change(ring: _Keyring, entry: _MasterKey) -> _Keyring | None:
            if entry.id == ring.current:
                raise KeyStateError(
                    f"master key version {version!r} is current and cannot be retired: "
                    "rotate first, then retire it"
                )
            return None if entry.retired else ring.replace(attrs.evolve(entry, retired=True))

        return self._administer(Operation.RETIRE, version, change)

    def reactivate(self, version: str) -> KeyVersion:
        """Let a retired ``version`` decrypt again (it does not become current)."""

        def change(ring: _Keyring, entry: _MasterKey) -> _Keyring | None:
            return ring.replace(attrs.evolve(entry, retired=False)) if entry.retired else None

        return self._administer(Operation.ENABLE_KEY, version, change)

    def destroy(self, version: str) -> KeyVersion:
        """Delete a retired ``version``'s key for good; returns what it was.

        Objects still wrapped under it can never be decrypted again: rewrap them first,
        and keep a backup of the keyring from before.
        """

        def change(ring: _Keyring, entry: _MasterKey) -> _Keyring | None:
            if not entry.retired:
                raise KeyStateError(
                    f"master key version {version!r} is not retired: retire it (and wait "
                    "to see that nothing still needs it) before destroying it"
                )
            versions = tuple(other for other in ring.versions if other.id != entry.id)
            return attrs.evolve(ring, versions=versions)

        return self._administer(Operation.DELETE_KEY, version, change)

    def versions(self) -> tuple[KeyVersion, ...]:
        """Every version in the keyring, oldest first, read afresh from the store."""
        now = self._now()
        with self._state.lock:
            ring = self._reload(now)
        return () if ring is None else tuple(ring.view(entry) for entry in ring.versions)

    def __repr__(self) -> str:
        return f"ManagedKeys(store={self.store!r}, principal={self.principal!r})"

    # Internals.

    def _now(self) -> datetime:
        now = self.clock()
        if now.utcoffset() is None:
            raise ValueError("the clock of ManagedKeys must return timezone-aware datetimes")
        return now

    def _due(self, entry: _MasterKey, now: datetime) -> str | None:
        """Why ``entry`` must stop being current, or ``None``."""
        if now - entry.created >= self.rotation.max_age:
            return "automatic: the current version reached max_age"
        if entry.reserved >= self.rotation.max_wraps:
            return "automatic: the current version reached max_wraps"
        return None

    def _reload(self, now: datetime) -> _Keyring | None:
        """Read the store into the state; the caller holds the state lock."""
        raw = self.store.load()
        ring = None if raw is None else _decode(raw)
        state = self._state
        state.ring = ring
        state.loaded_at = now
        return ring

    def _update(self, change: Callable[[bytes | None], bytes | None], now: datetime) -> _Keyring:
        """Run ``change`` through the store and keep the result; the caller holds the lock."""
        raw = self.store.update(change)
        if raw is None:
            raise KeystoreError("the keyring store returned no document after an update")
        ring = _decode(raw)
        state = self._state
        state.ring = ring
        state.loaded_at = now
        return ring

    def _usable_lease(self, ring: _Keyring | None, now: datetime) -> _MasterKey | None:
        state = self._state
        if ring is None or state.lease_left <= 0 or state.lease_version != ring.current:
            return None
        entry = ring.current_key
        if self._due(entry, now) is not None:
            return None
        state.lease_left -= 1
        return entry

    def _lease(self, now: datetime) -> tuple[_Keyring, _MasterKey, tuple[str, str] | None]:
        """Take one wrap under the current version: ``(keyring, version, rotation)``.

        ``rotation`` is ``(new version, reason)`` when this call rotated the keyring. The
        caller holds the state lock.
        """
        state = self._state
        ring = state.ring
        if now - state.loaded_at >= self.rotation.reload_after:
            ring = self._reload(now)
        entry = self._usable_lease(ring, now)
        if ring is not None and entry is not None:
            return ring, entry, None

        rotation: list[tuple[str, str]] = []
        granted = 0

        def change(raw: bytes | None) -> bytes:
            nonlocal granted
            rotation.clear()
            fresh = None if raw is None else _decode(raw)
            reason = "first version" if fresh is None else self._due(fresh.current_key, now)
            # Decided on the stored keyring, not on this process's view: when another
            # process has just rotated, its new version is used rather than rotated again.
            if fresh is None or reason is not None:
                fresh, created = _add_version(fresh, now)
                rotation.append((created.id, reason or ""))
            current = fresh.current_key
            granted = min(self.rotation.reserve_block, self.rotation.max_wraps - current.reserved)
            return _encode(
                fresh.replace(attrs.evolve(current, reserved=current.reserved + granted))
            )

        ring = self._update(change, now)
        state.lease_version = ring.current
        state.lease_left = granted - 1
        return ring, ring.current_key, rotation[0] if rotation else None

    def _wrap(
        self,
        data_key: bytes,
        immutable: bytes,
        context: Mapping[str, str],
        operation: Operation,
        reason: str = "",
    ) -> tuple[bytes, bytes]:
        now = self._now()
        with self._state.lock:
            ring, entry, rotated = self._lease(now)
        if rotated is not None:
            self._record(Operation.ROTATE, ring, rotated[0], reason=rotated[1])
        key_ref = entry.id.encode("ascii")
        wrapped = ring.wrapper(entry).wrap(data_key, key_binding(immutable, key_ref))
        self._record(operation, ring, entry.id, context, reason=reason)
        return key_ref, wrapped

    def _open(self, header: Header, operation: Operation) -> tuple[_Keyring, _MasterKey]:
        """The keyring and version that unwrap ``header``, or the error naming the version."""
        version = _version_of(header.key_ref)
        now = self._now()
        state = self._state
        ring = state.ring
        unknown = ring is not None and version not in ring.by_id
        if (
            ring is None
            or now - state.loaded_at >= self.rotation.reload_after
            or (unknown and now - state.unknown_reload_at >= _UNKNOWN_RELOAD_INTERVAL)
        ):
            # Unknown here may be new elsewhere: read the store again before failing, but at
            # most once a second for unknown versions, so forged headers cannot make every
            # read reload (and lock) the keyring.
            with state.lock:
                if unknown:
                    state.unknown_reload_at = now
                ring = self._reload(now)
        entry = None if ring is None else ring.by_id.get(version)
        if ring is None or entry is None:
            self._record(
                operation,
                ring,
                version,
                header.context,
                outcome=Outcome.FAILURE,
                reason="unknown version",
            )
            raise _not_found(version)
        if entry.retired:
            self._record(
                operation,
                ring,
                version,
                header.context,
                outcome=Outcome.FAILURE,
                reason="retired version",
            )
            raise _retired(version)
        return ring, entry

    def _unwrap(
        self, ring: _Keyring, entry: _MasterKey, header: Header, operation: Operation
    ) -> bytes:
        try:
            return ring.wrapper(entry).unwrap(
                header.wrapped_key, key_binding(header.immutable, header.key_ref)
            )
        except DecryptionError:
            self._record(
                operation,
                ring,
                entry.id,
                header.context,
                outcome=Outcome.FAILURE,
                reason="the wrapped data key failed authentication",
            )
            raise

    def _administer(
        self,
        operation: Operation,
        version: str,
        change: Callable[[_Keyring, _MasterKey], _Keyring | None],
    ) -> KeyVersion:
        """Apply ``change`` to ``version`` in the stored keyring, auditing the outcome."""
        if not isinstance(version, str) or not _VERSION_ID.fullmatch(version):
            raise ValueError(
                "not a master key version id: ids are 1 to 128 ASCII letters, digits, '.', "
                "'_' or '-' (see ManagedKeys.versions())"
            )
        now = self._now()
        found: list[_MasterKey] = []

        def apply(raw: bytes | None) -> bytes | None:
            ring = None if raw is None else _decode(raw)
            entry = None if ring is None else ring.by_id.get(version)
            if ring is None or entry is None:
                raise _not_found(version)
            found[:] = [entry]
            new = change(ring, entry)
            return None if new is None else _encode(new)

        try:
            with self._state.lock:
                ring = self._update(apply, now)
        except (KeyNotFoundError, KeyStateError) as error:
            self._record(
                operation, self._state.ring, version, outcome=Outcome.FAILURE, reason=str(error)
            )
            raise
        self._record(operation, ring, version)
        entry = ring.by_id.get(version)
        if entry is None:  # destroyed: report it as it was
            gone = found[0]
            return KeyVersion(gone.id, gone.created, VersionState.RETIRED, gone.reserved)
        return ring.view(entry)

    def _record(
        self,
        operation: Operation,
        ring: _Keyring | None,
        version: str,
        context: Mapping[str, str] | None = None,
        *,
        outcome: Outcome = Outcome.SUCCESS,
        reason: str = "",
    ) -> None:
        if self.audit is None:
            return
        self.audit.record(
            AuditEvent(
                time=self._now(),
                principal=self.principal,
                operation=operation,
                key_id=_NO_KEYRING if ring is None else ring.keyring_id,
                key_version=version,
                context_keys=tuple(sorted(context)) if context else (),
                outcome=outcome,
                reason=reason,
            )
        )
