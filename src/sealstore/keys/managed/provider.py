"""``ManagedKeys``: the provider that wraps data keys under a managed keyring's versions.

Wraps are counted without writing the keyring for each one: a process reserves a block of
wraps (``RotationPolicy.reserve_block``) by raising the version's ``reserved_wraps`` in the
store *before* it uses any of them. A crash loses the unused rest of a block, so the stored
count is an upper bound of the wraps really made, never less; a version is rotated out when
its reserved count reaches ``RotationPolicy.max_wraps``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import ClassVar, Final, final

import attrs

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
from sealstore.keys.managed.keyring import (
    VERSION_ID,
    Keyring,
    KeyVersion,
    MasterKey,
    VersionState,
    add_version,
    decode_keyring,
    encode_keyring,
)
from sealstore.keys.managed.rotation import RotationPolicy
from sealstore.keys.managed.stores import KeyringStore

__all__ = ["ManagedKeys"]

_NO_KEYRING: Final = "managed"
"""The audit key id used when no keyring exists yet."""


def _version_of(key_ref: bytes) -> str:
    try:
        version = key_ref.decode("ascii")
    except UnicodeDecodeError:
        version = ""
    if not VERSION_ID.fullmatch(version):
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
        self.ring: Keyring | None = None
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
    per_request: ClassVar[bool] = False

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
        return self._wrap(data_key, immutable, context)

    def unwrap_data_key(self, header: Header) -> bytes:
        """Recover the data key of ``header`` under the master key version it names.

        Raises :class:`~sealstore.KeyNotFoundError` for a version not in the keyring,
        :class:`~sealstore.KeyRetiredError` for a retired one (both name the version) and
        :class:`~sealstore.DecryptionError` if the wrapped key fails authentication.
        """
        ring, entry = self._open(header)
        data_key = self._unwrap(ring, entry, header)
        self._record(Operation.UNWRAP, ring, entry.id, header.context)
        return data_key

    def record_plaintext_bytes(self, key_ref: bytes, size: int) -> None:
        """Nothing to account for: rotation by count counts data keys, not bytes."""

    def is_current(self, key_ref: bytes) -> bool:
        """Whether ``key_ref`` names the current version (the keyring is read afresh)."""
        return any(
            version.state is VersionState.CURRENT and version.id.encode("ascii") == key_ref
            for version in self.versions()
        )

    @staticmethod
    def describe_key_ref(key_ref: bytes) -> tuple[str | None, str | None]:
        """``(None, master key version)``: the reference is the version id."""
        return None, key_ref.decode("ascii", "replace")

    # Keyring administration.

    def rotate(self) -> KeyVersion:
        """Create a new master key version and make it current; returns it.

        Always adds a version, even if another process rotated a moment ago.
        """
        now = self._now()
        created: list[MasterKey] = []

        def change(raw: bytes | None) -> bytes:
            ring, entry = add_version(None if raw is None else decode_keyring(raw), now)
            created[:] = [entry]
            return encode_keyring(ring)

        with self._state.lock:
            ring = self._update(change, now)
        entry = ring.by_id[created[0].id]
        self._record(Operation.ROTATE, ring, entry.id, reason="on demand")
        return ring.view(entry)

    def retire(self, version: str) -> KeyVersion:
        """Stop ``version`` from decrypting; the current version cannot be retired.

        Rewrap the objects under it first. Retiring a retired version changes nothing.
        """

        def change(ring: Keyring, entry: MasterKey) -> Keyring | None:
            if entry.id == ring.current:
                raise KeyStateError(
                    f"master key version {version!r} is current and cannot be retired: "
                    "rotate first, then retire it"
                )
            return None if entry.retired else ring.replace(attrs.evolve(entry, retired=True))

        return self._administer(Operation.RETIRE, version, change)

    def reactivate(self, version: str) -> KeyVersion:
        """Let a retired ``version`` decrypt again (it does not become current)."""

        def change(ring: Keyring, entry: MasterKey) -> Keyring | None:
            return ring.replace(attrs.evolve(entry, retired=False)) if entry.retired else None

        return self._administer(Operation.REACTIVATE, version, change)

    def destroy(self, version: str) -> KeyVersion:
        """Delete a retired ``version``'s key for good; returns what it was.

        Objects still wrapped under it can never be decrypted again: rewrap them first,
        and keep a backup of the keyring from before.
        """

        def change(ring: Keyring, entry: MasterKey) -> Keyring | None:
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

    def _due(self, entry: MasterKey, now: datetime) -> str | None:
        """Why ``entry`` must stop being current, or ``None``."""
        if now - entry.created >= self.rotation.max_age:
            return "automatic: the current version reached max_age"
        if entry.reserved >= self.rotation.max_wraps:
            return "automatic: the current version reached max_wraps"
        return None

    def _reload(self, now: datetime) -> Keyring | None:
        """Read the store into the state; the caller holds the state lock."""
        raw = self.store.load()
        ring = None if raw is None else decode_keyring(raw)
        state = self._state
        state.ring = ring
        state.loaded_at = now
        return ring

    def _update(self, change: Callable[[bytes | None], bytes | None], now: datetime) -> Keyring:
        """Run ``change`` through the store and keep the result; the caller holds the lock."""
        raw = self.store.update(change)
        if raw is None:
            raise KeystoreError("the keyring store returned no document after an update")
        ring = decode_keyring(raw)
        state = self._state
        state.ring = ring
        state.loaded_at = now
        return ring

    def _usable_lease(self, ring: Keyring | None, now: datetime) -> MasterKey | None:
        state = self._state
        if ring is None or state.lease_left <= 0 or state.lease_version != ring.current:
            return None
        entry = ring.current_key
        if self._due(entry, now) is not None:
            return None
        state.lease_left -= 1
        return entry

    def _lease(self, now: datetime) -> tuple[Keyring, MasterKey, tuple[str, str] | None]:
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
            fresh = None if raw is None else decode_keyring(raw)
            reason = "first version" if fresh is None else self._due(fresh.current_key, now)
            # Decided on the stored keyring, not on this process's view: when another
            # process has just rotated, its new version is used rather than rotated again.
            if fresh is None or reason is not None:
                fresh, created = add_version(fresh, now)
                rotation.append((created.id, reason or ""))
            current = fresh.current_key
            granted = min(self.rotation.reserve_block, self.rotation.max_wraps - current.reserved)
            return encode_keyring(
                fresh.replace(attrs.evolve(current, reserved=current.reserved + granted))
            )

        ring = self._update(change, now)
        state.lease_version = ring.current
        state.lease_left = granted - 1
        return ring, ring.current_key, rotation[0] if rotation else None

    def _wrap(
        self, data_key: bytes, immutable: bytes, context: Mapping[str, str]
    ) -> tuple[bytes, bytes]:
        now = self._now()
        with self._state.lock:
            ring, entry, rotated = self._lease(now)
        if rotated is not None:
            self._record(Operation.ROTATE, ring, rotated[0], reason=rotated[1])
        key_ref = entry.id.encode("ascii")
        wrapped = ring.wrapper(entry).wrap(data_key, key_binding(immutable, key_ref))
        self._record(Operation.GENERATE, ring, entry.id, context)
        return key_ref, wrapped

    def _open(self, header: Header) -> tuple[Keyring, MasterKey]:
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
                Operation.UNWRAP,
                ring,
                version,
                header.context,
                outcome=Outcome.FAILURE,
                reason="unknown version",
            )
            raise _not_found(version)
        if entry.retired:
            self._record(
                Operation.UNWRAP,
                ring,
                version,
                header.context,
                outcome=Outcome.FAILURE,
                reason="retired version",
            )
            raise _retired(version)
        return ring, entry

    def _unwrap(self, ring: Keyring, entry: MasterKey, header: Header) -> bytes:
        try:
            return ring.wrapper(entry).unwrap(
                header.wrapped_key, key_binding(header.immutable, header.key_ref)
            )
        except DecryptionError:
            self._record(
                Operation.UNWRAP,
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
        change: Callable[[Keyring, MasterKey], Keyring | None],
    ) -> KeyVersion:
        """Apply ``change`` to ``version`` in the stored keyring, auditing the outcome."""
        if not isinstance(version, str) or not VERSION_ID.fullmatch(version):
            raise ValueError(
                "not a master key version id: ids are 1 to 128 ASCII letters, digits, '.', "
                "'_' or '-' (see ManagedKeys.versions())"
            )
        now = self._now()
        found: list[MasterKey] = []

        def apply(raw: bytes | None) -> bytes | None:
            ring = None if raw is None else decode_keyring(raw)
            entry = None if ring is None else ring.by_id.get(version)
            if ring is None or entry is None:
                raise _not_found(version)
            found[:] = [entry]
            new = change(ring, entry)
            return None if new is None else encode_keyring(new)

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
        ring: Keyring | None,
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
