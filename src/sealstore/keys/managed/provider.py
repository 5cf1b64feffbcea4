"""``ManagedKeys``: the provider that wraps data keys under a managed keyring's versions.

Wraps are counted without writing the keyring for each one: a process reserves a block of
wraps (``RotationPolicy.reserve_block``) by raising the version's ``reserved_wraps`` in the
store *before* it uses any of them. A crash loses the unused rest of a block, so the stored
count is an upper bound of the wraps really made, never less; a version is rotated out when
its reserved count reaches ``RotationPolicy.max_wraps``.

A change of the keyring is audited before it is saved: the event is recorded inside the
store's update, under its lock, and an audit sink that fails aborts the change. Every write
raises the keyring's revision, and an instance refuses a keyring whose revision is below the
highest it has read (or its ``min_revision``): an older copy put back in place.
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
"""After a reload that did not find a header's unknown version, the next reload for an unknown
version waits this long."""


class _State:
    """The mutable part of a ManagedKeys: the keyring as last read, and the wrap lease."""

    __slots__ = (
        "lease_left",
        "lease_version",
        "loaded_at",
        "lock",
        "revision",
        "ring",
        "unknown_reload_at",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ring: Keyring | None = None
        self.loaded_at = datetime.min.replace(tzinfo=timezone.utc)
        self.unknown_reload_at = datetime.min.replace(tzinfo=timezone.utc)
        self.lease_version = ""
        self.lease_left = 0
        self.revision = 0  # the highest keyring revision read or required: lower is a rollback


@attrs.frozen
class _Change:
    """A keyring change to save, and the event that records it (if it is one)."""

    ring: Keyring | None
    """The new keyring, or ``None`` to save nothing (the call changes nothing)."""
    operation: Operation | None = None
    """What is recorded before the change is saved; ``None`` records nothing."""
    version: str = ""
    reason: str = ""


def _revision_floor(_instance: object, _attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value < 0:
        raise ValueError("ManagedKeys.min_revision must be an int >= 0 (see revision())")


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
    master key, attributed to ``principal``; a change of the keyring is recorded before it is
    saved, and not saved if recording fails. Safe to share between threads; several
    instances and processes may share one store.

    A keyring older than one this instance has read (a copy put back in place) is refused
    with :class:`~sealstore.KeystoreError`. To refuse it in a new process too, keep
    :meth:`revision` somewhere the keyring's writers cannot change, and pass it back as
    ``min_revision``.
    """

    mode: ClassVar[Mode] = Mode.MANAGED
    per_request: ClassVar[bool] = False

    store: KeyringStore
    rotation: RotationPolicy = attrs.field(default=RotationPolicy(), kw_only=True)
    clock: Callable[[], datetime] = attrs.field(default=utc_now, kw_only=True)
    audit: AuditSink | None = attrs.field(default=None, kw_only=True)
    principal: str = attrs.field(default="sealstore", kw_only=True, validator=_non_empty)
    min_revision: int = attrs.field(default=0, kw_only=True, validator=_revision_floor)
    _state: _State = attrs.field(init=False, factory=_State)

    def __attrs_post_init__(self) -> None:
        self._state.revision = self.min_revision

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

    def rewrap_data_key(self, header: Header, source: object) -> None:
        """Never: the master keys are in hand, so a rewrap unwraps and wraps."""
        return None

    def record_plaintext_bytes(self, key_ref: bytes, size: int) -> None:
        """Nothing to account for: rotation by count counts data keys, not bytes."""

    def is_current(self, key_ref: bytes) -> bool:
        """Whether ``key_ref`` names the current version, as wraps see it: the keyring as last
        read, read again once ``rotation.reload_after`` has passed (a bulk rewrap asks this
        for every object, so it must not read the keyring each time)."""
        now = self._now()
        state = self._state
        with state.lock:
            ring = state.ring
            if ring is None or now - state.loaded_at >= self.rotation.reload_after:
                ring = self._reload(now)
        return ring is not None and ring.current.encode("ascii") == key_ref

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

        def change(ring: Keyring | None) -> _Change:
            new, entry = add_version(ring, now)
            created[:] = [entry]
            return _Change(new, Operation.ROTATE, entry.id, "on demand")

        with self._state.lock:
            ring = self._update(change, now)
        return ring.view(ring.by_id[created[0].id])

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

    def revision(self) -> int:
        """The keyring's revision, read afresh from the store: raised by every change.

        0 before the first change (or for a keyring last written by a sealstore that did not
        count revisions). Keep it where the keyring's writers cannot change it, and pass it
        back as ``min_revision`` to refuse an older copy of the keyring put in place.
        """
        now = self._now()
        with self._state.lock:
            self._reload(now)
            return self._state.revision

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
        self._check(ring)
        state = self._state
        state.ring = ring
        state.loaded_at = now
        return ring

    def _check(self, ring: Keyring | None) -> None:
        """Refuse ``ring`` if it is older than one already read (a rollback); else note its
        revision as the highest read. The caller holds the state lock."""
        revision = 0 if ring is None else ring.revision
        state = self._state
        if revision < state.revision:
            held = "no keyring" if ring is None else f"keyring revision {revision}"
            raise KeystoreError(
                f"{self.store!r} holds {held}, but revision {state.revision} was read before "
                "(or required with min_revision): an older copy of the keyring was put in "
                "its place. Put the newest keyring back; to go back to an older one on "
                "purpose (a restore from backup), use a new ManagedKeys with min_revision "
                f"at most {revision}"
            )
        state.revision = revision

    def _update(self, change: Callable[[Keyring | None], _Change], now: datetime) -> Keyring:
        """Apply ``change`` to the stored keyring, audited first; the caller holds the lock.

        The change's event is recorded before the new keyring is written, under the store's
        lock, so a failing audit sink aborts the change; if the write then fails, a failure
        is recorded too. A store that calls ``change`` again (its conditional write lost to
        another writer's) never saved the first result: that is recorded as a failure, then
        the change is made and recorded again on the newer keyring.
        """
        recorded: list[tuple[Operation, str, Keyring | None]] = []

        def apply(raw: bytes | None) -> bytes | None:
            for operation, version, shown in recorded:
                self._record(
                    operation,
                    shown,
                    version,
                    outcome=Outcome.FAILURE,
                    reason="another writer changed the keyring first; not saved, made again "
                    "on the newer keyring",
                )
            recorded.clear()
            ring = None if raw is None else decode_keyring(raw)
            self._check(ring)
            wanted = change(ring)
            if wanted.operation is not None:
                shown = ring if wanted.ring is None else wanted.ring
                self._record(wanted.operation, shown, wanted.version, reason=wanted.reason)
                recorded.append((wanted.operation, wanted.version, shown))
            if wanted.ring is None:
                return None
            revision = 0 if ring is None else ring.revision
            return encode_keyring(attrs.evolve(wanted.ring, revision=revision + 1))

        try:
            raw = self.store.update(apply)
            if raw is None:
                raise KeystoreError("the keyring store returned no document after an update")
            ring = decode_keyring(raw)
            self._check(ring)
        except Exception:
            for operation, version, shown in recorded:  # recorded, not saved: the log says so
                self._record(
                    operation,
                    shown,
                    version,
                    outcome=Outcome.FAILURE,
                    reason="the change was recorded, then saving the keyring failed",
                )
            raise
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

    def _lease(self, now: datetime) -> tuple[Keyring, MasterKey]:
        """Take one wrap under the current version, rotating first if it is due.

        The caller holds the state lock.
        """
        state = self._state
        ring = state.ring
        if now - state.loaded_at >= self.rotation.reload_after:
            ring = self._reload(now)
        entry = self._usable_lease(ring, now)
        if ring is not None and entry is not None:
            return ring, entry

        granted = 0

        def change(fresh: Keyring | None) -> _Change:
            nonlocal granted
            reason = "first version" if fresh is None else self._due(fresh.current_key, now)
            # Decided on the stored keyring, not on this process's view: when another
            # process has just rotated, its new version is used rather than rotated again.
            rotated = None
            if fresh is None or reason is not None:
                fresh, created = add_version(fresh, now)
                rotated = created.id
            current = fresh.current_key
            granted = min(self.rotation.reserve_block, self.rotation.max_wraps - current.reserved)
            new = fresh.replace(attrs.evolve(current, reserved=current.reserved + granted))
            if rotated is None:  # reserving wraps is not an event: the wraps themselves are
                return _Change(new)
            return _Change(new, Operation.ROTATE, rotated, reason or "")

        ring = self._update(change, now)
        state.lease_version = ring.current
        state.lease_left = granted - 1
        return ring, ring.current_key

    def _wrap(
        self, data_key: bytes, immutable: bytes, context: Mapping[str, str]
    ) -> tuple[bytes, bytes]:
        now = self._now()
        with self._state.lock:
            ring, entry = self._lease(now)
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
            # Unknown here may be new elsewhere: read the store again before failing. Only a
            # reload that does not find the version holds off the next one for a second, so
            # forged headers cannot make every read reload (and lock) the keyring, while
            # versions rotated elsewhere in quick succession are each found.
            with state.lock:
                ring = self._reload(now)
                if unknown and (ring is None or version not in ring.by_id):
                    state.unknown_reload_at = now
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

        def apply(ring: Keyring | None) -> _Change:
            entry = None if ring is None else ring.by_id.get(version)
            if ring is None or entry is None:
                raise _not_found(version)
            found[:] = [entry]
            return _Change(change(ring, entry), operation, version)

        try:
            with self._state.lock:
                ring = self._update(apply, now)
        except (KeyNotFoundError, KeyStateError) as error:
            self._record(
                operation, self._state.ring, version, outcome=Outcome.FAILURE, reason=str(error)
            )
            raise
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
