"""The keyring document: master key versions, their model and their JSON codec.

The document, as a :class:`~sealstore.keys.managed.KeyringStore` keeps it, is JSON::

    {"kind": "sealstore-keyring", "schema": 1, "keyring": "kr-<16 hex>", "revision": 12,
     "next_sequence": 4, "current": "v000003-9f2c1a7b",
     "versions": [{"id": "v000001-5d0e33c2", "created": "2026-01-01T00:00:00+00:00",
                   "state": "active" | "retired", "reserved_wraps": 8192,
                   "key": "<base64 of 32 bytes>"}, ...]}

``revision`` counts the writes of the document (1 for the first; a document without it,
written before it existed, is revision 0): a copy with a lower revision is an older one.
``next_sequence`` numbers versions only. A parsed keyring is a snapshot: a change makes a
new one, never alters it.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import os
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Final, final

import attrs

from sealstore import _aead
from sealstore.errors import KeystoreError

__all__ = [
    "MAX_VERSIONS",
    "VERSION_ID",
    "KeyVersion",
    "Keyring",
    "MasterKey",
    "VersionState",
    "add_version",
    "decode_keyring",
    "encode_keyring",
]

MAX_VERSIONS: Final = 10_000
"""Versions a keyring may hold; destroy retired versions to make room."""
VERSION_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,128}")
"""A version id, as written in the key reference of the objects it wraps."""
_KIND: Final = "sealstore-keyring"
_SCHEMA: Final = 1
_KEYRING_ID: Final = re.compile(r"kr-[0-9a-f]{16}")


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


# The keyring document, parsed.


@attrs.frozen(eq=False)
class MasterKey:
    """One master key version as stored, its key included: never shown outside this package."""

    id: str
    created: datetime
    retired: bool
    reserved: int
    key: bytes = attrs.field(repr=False)


@attrs.frozen(eq=False)
class Keyring:
    """A parsed keyring document: a snapshot, replaced by every change, never altered."""

    keyring_id: str
    next_sequence: int
    current: str
    versions: tuple[MasterKey, ...]
    revision: int = 0
    by_id: dict[str, MasterKey] = attrs.field(init=False, repr=False)
    # Built on first use: a keyring snapshot is replaced, never changed, so entries stay valid.
    wrappers: dict[str, _aead.KeyWrapper] = attrs.field(init=False, repr=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "by_id", {entry.id: entry for entry in self.versions})

    @property
    def current_key(self) -> MasterKey:
        return self.by_id[self.current]

    def wrapper(self, entry: MasterKey) -> _aead.KeyWrapper:
        wrapper = self.wrappers.get(entry.id)
        if wrapper is None:
            wrapper = self.wrappers[entry.id] = _aead.KeyWrapper(entry.key)
        return wrapper

    def replace(self, entry: MasterKey) -> Keyring:
        versions = tuple(entry if old.id == entry.id else old for old in self.versions)
        return attrs.evolve(self, versions=versions)

    def view(self, entry: MasterKey) -> KeyVersion:
        if entry.id == self.current:
            state = VersionState.CURRENT
        else:
            state = VersionState.RETIRED if entry.retired else VersionState.ACTIVE
        return KeyVersion(entry.id, entry.created, state, entry.reserved)


def add_version(ring: Keyring | None, now: datetime) -> tuple[Keyring, MasterKey]:
    """``ring`` with a new current version (a new keyring if ``None``), and that version."""
    if ring is None:
        ring = Keyring(f"kr-{os.urandom(8).hex()}", 1, "", ())
    if len(ring.versions) >= MAX_VERSIONS:
        raise KeystoreError(
            f"the keyring holds {len(ring.versions)} versions, the most it may: destroy "
            "retired versions (after rewrapping their objects) to make room"
        )
    sequence = ring.next_sequence
    # The random suffix keeps ids unique across keyrings, and across a keyring restored
    # from a backup and the versions it had lost.
    entry = MasterKey(
        f"v{sequence:06d}-{os.urandom(4).hex()}", now, False, 0, os.urandom(_aead.KEY_SIZE)
    )
    new = attrs.evolve(
        ring, next_sequence=sequence + 1, current=entry.id, versions=(*ring.versions, entry)
    )
    return new, entry


def encode_keyring(ring: Keyring) -> bytes:
    document = {
        "kind": _KIND,
        "schema": _SCHEMA,
        "keyring": ring.keyring_id,
        "revision": ring.revision,
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


def decode_keyring(raw: bytes) -> Keyring:
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # nested past the stack too
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
    revision = _get(document, "revision", int) if "revision" in document else 0
    if not _KEYRING_ID.fullmatch(keyring_id) or next_sequence < 1 or revision < 0:
        raise _malformed("bad keyring id, sequence or revision")
    if not 0 < len(items) <= MAX_VERSIONS:
        raise _malformed(f"it must hold 1 to {MAX_VERSIONS} versions")
    versions = tuple(_decode_version(item) for item in items)
    ring = Keyring(keyring_id, next_sequence, current, versions, revision)
    if len(ring.by_id) != len(versions):
        raise _malformed("two versions share an id")
    entry = ring.by_id.get(current)
    if entry is None or entry.retired:
        raise _malformed("the current version is missing or retired")
    return ring


def _decode_version(item: object) -> MasterKey:
    if type(item) is not dict:
        raise _malformed("a version is not a JSON object")
    version = _get(item, "id", str)
    state = _get(item, "state", str)
    reserved = _get(item, "reserved_wraps", int)
    if not VERSION_ID.fullmatch(version) or state not in {"active", "retired"} or reserved < 0:
        raise _malformed("a version has a bad id, state or count")
    try:
        created = datetime.fromisoformat(_get(item, "created", str))
        if created.utcoffset() is not None:
            # OverflowError here, for a time UTC cannot hold, rather than when it is written.
            created = created.astimezone(timezone.utc)
        key = base64.b64decode(_get(item, "key", str), validate=True)
    except (ValueError, OverflowError, binascii.Error):
        raise _malformed(f"version {version} has a bad time or key") from None
    if created.utcoffset() is None or len(key) != _aead.KEY_SIZE:
        raise _malformed(f"version {version} has a bad time or key")
    return MasterKey(version, created, state == "retired", reserved, key)
