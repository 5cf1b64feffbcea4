"""The key store document: keys, their material and aliases, and its JSON encoding.

The document lives sealed in ``keys.sealed``; its layout is in ``docs/local-kms.md``. A
:class:`Store` is one parsed version of it, never changed: every edit makes a new one.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import os
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final, final

import attrs

from sealstore import _aead
from sealstore.errors import KeyNotFoundError, KeystoreError, KmsError
from sealstore.kms.policy import KeyPolicy, check_principal

__all__ = [
    "MAX_ALIASES",
    "MAX_KEYS",
    "MAX_VERSIONS",
    "ROTATION_PERIOD",
    "KeyEntry",
    "KeyMetadata",
    "KeyState",
]

ROTATION_PERIOD: Final = timedelta(days=365)
"""A key whose newest material is this old gets new material when it is next used."""
MAX_KEYS: Final = 10_000
MAX_ALIASES: Final = 10_000
MAX_VERSIONS: Final = 1_000
"""Material versions one key may hold; yearly rotation reaches it in a thousand years."""

_DOCUMENT_FORMAT: Final = 2
"""The format written. Format 1, read as well, has no sequence number: it is sequence 0."""
_READABLE_FORMATS: Final = frozenset({1, 2})
_ALIAS_PREFIX: Final = "alias/"


class KeyState(str, enum.Enum):
    """Where a key is in its life."""

    ENABLED = "enabled"
    """Usable for every operation its policy grants."""
    DISABLED = "disabled"
    """Kept, but refuses to generate, decrypt or re-encrypt until enabled again."""
    PENDING_DELETION = "pending-deletion"
    """Refuses every use; destroyed at its deletion date unless the deletion is cancelled."""


@final
@attrs.frozen
class KeyMetadata:
    """What :meth:`LocalKms.describe_key` reports about a key; never its material.

    ``current_version`` is the material new blobs are made under, created at ``rotated``;
    ``next_rotation`` is when the next use adds new material.

    >>> import pathlib, tempfile
    >>> from sealstore.sealed import RootKey
    >>> from sealstore.kms.local import LocalKms
    >>> root_key = RootKey.from_bytes(bytes(32))
    >>> kms = LocalKms(pathlib.Path(tempfile.mkdtemp()), root_key=root_key, create=True)
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
class Material:
    version: int
    created: datetime
    secret: bytes = attrs.field(repr=False)


@attrs.frozen
class Key:
    key_id: str
    description: str
    creator: str
    created: datetime
    state: KeyState
    deletion_date: datetime | None
    policy: KeyPolicy
    materials: tuple[Material, ...] = attrs.field(repr=False)
    """Oldest first; version ``i`` is at index ``i - 1``."""

    @property
    def newest(self) -> Material:
        return self.materials[-1]

    def material(self, version: int) -> Material | None:
        if 1 <= version <= len(self.materials):
            return self.materials[version - 1]
        return None

    def rotation_due(self, now: datetime) -> bool:
        """Whether the newest material is old enough to replace, and there is room for more."""
        return now - self.newest.created >= ROTATION_PERIOD and len(self.materials) < MAX_VERSIONS

    def with_new_material(self, now: datetime) -> Key:
        if len(self.materials) >= MAX_VERSIONS:
            raise KmsError(
                f"key {self.key_id} already has {MAX_VERSIONS} material versions, the most "
                "a key may have; create a new key and re-encrypt to it"
            )
        material = Material(len(self.materials) + 1, now, os.urandom(_aead.KEY_SIZE))
        return attrs.evolve(self, materials=(*self.materials, material))


@final
class Store:
    """One parsed version of the document. Never changed: edits make a new one."""

    __slots__ = ("_wrappers", "alias_owners", "aliases", "keys", "next_deletion", "sequence")

    def __init__(
        self,
        keys: dict[str, Key],
        aliases: dict[str, str],
        sequence: int = 0,
        alias_owners: dict[str, str] | None = None,
    ) -> None:
        self.keys = keys
        self.aliases = aliases
        self.sequence = sequence
        """How many times the document was written: every write adds one."""
        self.alias_owners = {} if alias_owners is None else alias_owners
        """The principal that created each alias; an alias missing here (one made before
        aliases had owners, or the default key's) belongs to its key's administrators."""
        self.next_deletion = min(
            (key.deletion_date for key in keys.values() if key.deletion_date is not None),
            default=None,
        )
        # One wrapper per material used, so bounded by the document's size.
        self._wrappers: dict[tuple[str, int], _aead.KeyWrapper] = {}

    def wrapper(self, key: Key, material: Material) -> _aead.KeyWrapper:
        wrapper = self._wrappers.get((key.key_id, material.version))
        if wrapper is None:
            wrapper = self._wrappers[key.key_id, material.version] = _aead.KeyWrapper(
                material.secret
            )
        return wrapper

    def resolve(self, name: str) -> Key:
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

    def check_room_for_key(self) -> None:
        if len(self.keys) >= MAX_KEYS:
            raise KmsError(
                f"the key store already holds {MAX_KEYS} keys, the most it may; schedule "
                "unused keys for deletion"
            )

    def check_room_for_alias(self) -> None:
        if len(self.aliases) >= MAX_ALIASES:
            raise KmsError(
                f"the key store already holds {MAX_ALIASES} aliases, the most it may; "
                "delete unused ones"
            )

    def with_key(self, key: Key) -> Store:
        return Store({**self.keys, key.key_id: key}, self.aliases, self.sequence, self.alias_owners)

    def with_alias(self, alias: str, key_id: str, owner: str | None) -> Store:
        """This store with ``alias`` pointing at ``key_id``, owned by ``owner``."""
        owners = {name: who for name, who in self.alias_owners.items() if name != alias}
        if owner is not None:
            owners[alias] = owner
        return Store(self.keys, {**self.aliases, alias: key_id}, self.sequence, owners)

    def without_alias(self, alias: str) -> Store:
        return Store(
            self.keys,
            {name: key_id for name, key_id in self.aliases.items() if name != alias},
            self.sequence,
            {name: owner for name, owner in self.alias_owners.items() if name != alias},
        )

    def numbered(self, sequence: int) -> Store:
        """This document as written with the sequence number ``sequence``."""
        return Store(self.keys, self.aliases, sequence, self.alias_owners)

    def purged(self, now: datetime) -> tuple[Store, list[Key]]:
        """This store without the keys whose deletion date has come, and those keys."""
        if self.next_deletion is None or now < self.next_deletion:
            return self, []
        gone = [key for key in self.keys.values() if is_expired(key, now)]
        keys = {key_id: key for key_id, key in self.keys.items() if not is_expired(key, now)}
        aliases = {alias: key_id for alias, key_id in self.aliases.items() if key_id in keys}
        owners = {alias: who for alias, who in self.alias_owners.items() if alias in aliases}
        return Store(keys, aliases, self.sequence, owners), gone


def is_expired(key: Key, now: datetime) -> bool:
    return key.deletion_date is not None and now >= key.deletion_date


def new_key(creator: str, description: str, policy: KeyPolicy, now: datetime) -> Key:
    return Key(
        key_id=str(uuid.uuid4()),
        description=description,
        creator=creator,
        created=now,
        state=KeyState.ENABLED,
        deletion_date=None,
        policy=policy,
        materials=(Material(1, now, os.urandom(_aead.KEY_SIZE)),),
    )


def key_metadata(store: Store, key: Key) -> KeyMetadata:
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


def format_time(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(timezone.utc).isoformat()


def _parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise TypeError(value)
    parsed = datetime.fromisoformat(value)
    if parsed.utcoffset() is None:
        raise ValueError(value)
    return parsed.astimezone(timezone.utc)


def encode_document(store: Store) -> bytes:
    keys: dict[str, Any] = {}
    for key_id, key in store.keys.items():
        keys[key_id] = {
            "description": key.description,
            "creator": key.creator,
            "created": format_time(key.created),
            "state": key.state.value,
            "deletion_date": None if key.deletion_date is None else format_time(key.deletion_date),
            "policy": key.policy.as_dict(),
            "materials": [
                {
                    "version": material.version,
                    "created": format_time(material.created),
                    "key": base64.b64encode(material.secret).decode("ascii"),
                }
                for material in key.materials
            ],
        }
    document = {
        "format": _DOCUMENT_FORMAT,
        "sequence": store.sequence,
        "keys": keys,
        "aliases": store.aliases,
        "alias_owners": store.alias_owners,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def decode_document(data: bytes, path: Path) -> Store:
    damaged = f"{path} holds a damaged key store document; restore it from a backup"
    try:
        document = json.loads(data)
        if document["format"] not in _READABLE_FORMATS:
            raise KeystoreError(
                f"{path} is key store format {document['format']!r}; upgrade sealstore to read it"
            )
        # Format 1 had neither: it is sequence 0, and its aliases have no owners.
        sequence, owners = 0, {}
        if document["format"] != 1:
            sequence = _int(document["sequence"])
            owners = {
                _str(alias): check_principal(owner)
                for alias, owner in document["alias_owners"].items()
            }
        if sequence < 0:
            raise ValueError("sequence")
        keys: dict[str, Key] = {}
        policies: dict[str, KeyPolicy] = {}
        for key_id, raw in document["keys"].items():
            materials = tuple(
                Material(
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
            keys[key_id] = Key(
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
        if not all(alias in aliases for alias in owners):
            raise ValueError("owner of a missing alias")
    # RecursionError: JSON nested past the stack; OverflowError: a time UTC cannot hold.
    except (
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        RecursionError,
        OverflowError,
        binascii.Error,
    ):
        raise KeystoreError(damaged) from None
    return Store(keys, aliases, sequence, owners)


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
