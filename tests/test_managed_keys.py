"""ManagedKeys: a rotating keyring of master keys, persisted in a KeyringStore."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import sealstore
from sealstore.audit import AuditEvent, MemoryAuditSink, Operation, Outcome
from sealstore.header import Mode, encode_header, parse_header
from sealstore.keys.managed import (
    FileKeyringStore,
    KeyringStore,
    KeyVersion,
    ManagedKeys,
    MemoryKeyringStore,
    RotationPolicy,
    VersionState,
    keyring,
)
from sealstore.sealed import RootKey, SealedFile
from sealstore.testing import FakeClock

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


class CountingStore:
    """A store that counts the calls made to the one it wraps."""

    def __init__(self, inner: KeyringStore) -> None:
        self.inner = inner
        self.loads = 0
        self.updates = 0

    def load(self) -> bytes | None:
        self.loads += 1
        return self.inner.load()

    def update(self, change: Callable[[bytes | None], bytes | None]) -> bytes | None:
        self.updates += 1
        return self.inner.update(change)


def version_of(blob: bytes) -> str:
    """The master key version named by an object's header."""
    return parse_header(blob).key_ref.decode()


def with_key_ref(blob: bytes, key_ref: bytes) -> bytes:
    """``blob`` with its header's key reference replaced (the wrapped key left as is)."""
    header = parse_header(blob)
    new = encode_header(header.mode, header.context_field, key_ref, header.wrapped_key)
    return new + blob[header.size :]


def document(store: MemoryKeyringStore) -> dict[str, Any]:
    """The keyring document a memory store holds, parsed."""
    raw = store.load()
    assert raw is not None
    parsed: dict[str, Any] = json.loads(raw)
    return parsed


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock starting on 2026-01-01 UTC."""
    return FakeClock(START)


@pytest.fixture
def sink() -> MemoryAuditSink:
    """An audit sink that keeps events in a list."""
    return MemoryAuditSink()


@pytest.fixture
def keys(clock: FakeClock) -> ManagedKeys:
    """A ManagedKeys over a fresh memory store and the fake clock."""
    return ManagedKeys(MemoryKeyringStore(), clock=clock)


@pytest.fixture
def root() -> RootKey:
    """A random raw root key."""
    return RootKey.from_base64(RootKey.generate())


# Round trips through every API.


@pytest.mark.parametrize("size", [0, 1, 16384, 70_000])
def test_round_trip_through_every_api(keys: ManagedKeys, size: int) -> None:
    """Objects written with ManagedKeys read back through decrypt, streams and random access."""
    plaintext = os.urandom(size)
    context = {"bucket": "orders"}
    blob = sealstore.encrypt(plaintext, keys, context=context)
    assert sealstore.decrypt(blob, keys, context=context) == plaintext
    sink = io.BytesIO()
    sealstore.encrypt_stream(io.BytesIO(plaintext), sink, keys, context=context)
    streamed = sink.getvalue()
    out = io.BytesIO()
    assert sealstore.decrypt_stream(io.BytesIO(streamed), out, keys, context=context) == size
    assert out.getvalue() == plaintext
    with sealstore.open_decrypted(io.BytesIO(blob), keys, context=context) as reader:
        reader.seek(size // 2)
        assert reader.read() == plaintext[size // 2 :]
    assert parse_header(blob).mode is Mode.MANAGED
    (current,) = keys.versions()
    assert version_of(blob) == version_of(streamed) == current.id


def test_version_ids_follow_the_documented_shape(keys: ManagedKeys) -> None:
    """Version ids are a zero-padded sequence and random hex, and unique."""
    made = [keys.rotate().id for _ in range(3)]
    assert [v[:8] for v in made] == ["v000001-", "v000002-", "v000003-"]
    assert all(re.fullmatch(r"v[0-9]{6}-[0-9a-f]{8}", v) for v in made)
    other = ManagedKeys(MemoryKeyringStore()).rotate().id
    assert other[:8] == "v000001-"
    assert other != made[0]  # 32 random bits tell keyrings apart


def test_objects_survive_a_new_instance_on_the_same_file(tmp_path: Path, root: RootKey) -> None:
    """A keyring file written by one ManagedKeys is read by another opened on the same path."""
    blob = sealstore.encrypt(
        b"persisted", ManagedKeys(FileKeyringStore(tmp_path / "ring", root, create=True))
    )
    again = ManagedKeys(FileKeyringStore(tmp_path / "ring", root))
    assert sealstore.decrypt(blob, again) == b"persisted"
    assert repr(FileKeyringStore(tmp_path / "ring", root)) == repr(str(tmp_path / "ring")).join(
        ("FileKeyringStore(", ")")
    )


# Rotation.


def test_rotation_by_age(clock: FakeClock, sink: MemoryAuditSink) -> None:
    """The current version is replaced once it reaches max_age, and old objects still decrypt."""
    keys = ManagedKeys(MemoryKeyringStore(), clock=clock, audit=sink)
    first = sealstore.encrypt(b"one", keys)
    clock.advance(timedelta(days=90) - timedelta(seconds=1))
    second = sealstore.encrypt(b"two", keys)
    assert version_of(second) == version_of(first)
    clock.advance(timedelta(seconds=1))
    third = sealstore.encrypt(b"three", keys)
    assert version_of(third) != version_of(first)
    states = [(v.id, v.state) for v in keys.versions()]
    assert states == [
        (version_of(first), VersionState.ACTIVE),
        (version_of(third), VersionState.CURRENT),
    ]
    assert keys.versions()[1].created == START + timedelta(days=90)
    assert [sealstore.decrypt(b, keys) for b in (first, second, third)] == [
        b"one",
        b"two",
        b"three",
    ]
    rotations = [(e.key_version, e.reason) for e in sink.events if e.operation is Operation.ROTATE]
    assert rotations == [
        (version_of(first), "first version"),
        (version_of(third), "automatic: the current version reached max_age"),
    ]


def test_rotation_by_age_follows_the_policy(clock: FakeClock) -> None:
    """A shorter max_age rotates sooner."""
    keys = ManagedKeys(
        MemoryKeyringStore(), clock=clock, rotation=RotationPolicy(max_age=timedelta(hours=1))
    )
    first = sealstore.encrypt(b"x", keys)
    clock.advance(timedelta(hours=1))
    assert version_of(sealstore.encrypt(b"x", keys)) != version_of(first)


def test_rotation_by_count() -> None:
    """A version wraps at most max_wraps data keys; reservations come in blocks."""
    store = CountingStore(MemoryKeyringStore())
    keys = ManagedKeys(store, rotation=RotationPolicy(max_wraps=5, reserve_block=2))
    blobs = [sealstore.encrypt(b"%d" % i, keys) for i in range(12)]
    used = [version_of(b) for b in blobs]
    versions = keys.versions()
    assert len(versions) == 3
    assert used == [versions[0].id] * 5 + [versions[1].id] * 5 + [versions[2].id] * 2
    assert [v.reserved_wraps for v in versions] == [5, 5, 2]
    assert [v.state for v in versions] == [
        VersionState.ACTIVE,
        VersionState.ACTIVE,
        VersionState.CURRENT,
    ]
    # Blocks of 2, 2, 1 for each full version, then one block: 7 writes for 12 wraps.
    assert store.updates == 7
    assert [sealstore.decrypt(b, keys) for b in blobs] == [b"%d" % i for i in range(12)]


def test_wraps_are_reserved_before_use_so_a_crash_overcounts() -> None:
    """The stored count is raised a block ahead, so a lost process leaves an upper bound."""
    store = MemoryKeyringStore()
    policy = RotationPolicy(max_wraps=8, reserve_block=4)
    first = ManagedKeys(store, rotation=policy)
    sealstore.encrypt(b"a", first)
    assert [v.reserved_wraps for v in first.versions()] == [4]
    # `first` is abandoned, as by a crash, with 3 reserved wraps unused.
    second = ManagedKeys(store, rotation=policy)
    sealstore.encrypt(b"b", second)
    assert [v.reserved_wraps for v in second.versions()] == [8]
    third = ManagedKeys(store, rotation=policy)
    blob = sealstore.encrypt(b"c", third)
    versions = third.versions()
    assert [v.reserved_wraps for v in versions] == [8, 4]
    assert version_of(blob) == versions[1].id


def test_rotate_on_demand(keys: ManagedKeys, sink: MemoryAuditSink) -> None:
    """rotate() returns a new current version; earlier versions become active and decrypt."""
    old = sealstore.encrypt(b"old", keys)
    new_version = keys.rotate()
    assert isinstance(new_version, KeyVersion)
    assert new_version.state is VersionState.CURRENT
    assert new_version.reserved_wraps == 0
    new = sealstore.encrypt(b"new", keys)
    assert version_of(new) == new_version.id != version_of(old)
    assert sealstore.decrypt(old, keys) == b"old"
    assert [v.state for v in keys.versions()] == [VersionState.ACTIVE, VersionState.CURRENT]


def test_rotate_creates_the_keyring_when_there_is_none(keys: ManagedKeys) -> None:
    """On an empty store, versions() is empty and rotate() creates the first version."""
    assert keys.versions() == ()
    first = keys.rotate()
    assert keys.versions() == (first,)


# Retirement, reactivation, destruction.


def test_retired_version_refuses_and_names_itself(keys: ManagedKeys) -> None:
    """Decrypting under a retired version raises KeyRetiredError naming the version."""
    blob = sealstore.encrypt(b"data", keys)
    old = version_of(blob)
    keys.rotate()
    retired = keys.retire(old)
    assert retired.state is VersionState.RETIRED
    with pytest.raises(sealstore.KeyRetiredError, match=old):
        sealstore.decrypt(blob, keys)
    with pytest.raises(sealstore.KeyRetiredError, match=old):
        sealstore.decrypt_stream(io.BytesIO(blob), io.BytesIO(), keys)
    assert keys.retire(old) == retired  # retiring again changes nothing
    assert keys.reactivate(old).state is VersionState.ACTIVE
    assert sealstore.decrypt(blob, keys) == b"data"


def test_the_current_version_cannot_be_retired(keys: ManagedKeys) -> None:
    """retire() refuses the current version with a KeyStateError that says to rotate first."""
    current = keys.rotate()
    with pytest.raises(sealstore.KeyStateError, match="rotate first") as caught:
        keys.retire(current.id)
    assert not isinstance(caught.value, sealstore.KeyRetiredError)
    assert keys.versions()[0].state is VersionState.CURRENT


def test_unknown_versions_are_key_not_found(keys: ManagedKeys) -> None:
    """Retiring, reactivating or destroying a version not in the keyring is KeyNotFoundError."""
    for action in (keys.retire, keys.reactivate, keys.destroy):
        with pytest.raises(sealstore.KeyNotFoundError, match="v000009-00000000"):
            action("v000009-00000000")
    keys.rotate()
    with pytest.raises(sealstore.KeyNotFoundError, match="v000009-00000000"):
        keys.retire("v000009-00000000")


@pytest.mark.parametrize("version", ["", "v1 2", "v" * 129, 7])
def test_administration_refuses_malformed_version_ids(keys: ManagedKeys, version: object) -> None:
    """retire, reactivate and destroy refuse what cannot be a version id, without echoing it."""
    keys.rotate()
    for action in (keys.retire, keys.reactivate, keys.destroy):
        with pytest.raises(ValueError, match="not a master key version id") as caught:
            action(version)  # type: ignore[arg-type]
        assert "v" * 129 not in str(caught.value)


def test_destroy_only_retired_versions(keys: ManagedKeys) -> None:
    """destroy() removes a retired version for good; objects under it are then not found."""
    blob = sealstore.encrypt(b"doomed", keys)
    old = version_of(blob)
    keys.rotate()
    with pytest.raises(sealstore.KeyStateError, match="retire it"):
        keys.destroy(old)
    keys.retire(old)
    gone = keys.destroy(old)
    assert (gone.id, gone.state) == (old, VersionState.RETIRED)
    assert [v.id for v in keys.versions()] != [old]
    assert old not in {v.id for v in keys.versions()}
    with pytest.raises(sealstore.KeyNotFoundError, match=old):
        sealstore.decrypt(blob, keys)


def test_the_keyring_is_bounded(keys: ManagedKeys, monkeypatch: pytest.MonkeyPatch) -> None:
    """At MAX_VERSIONS rotation refuses with KeystoreError; destroying a version makes room."""
    monkeypatch.setattr(keyring, "MAX_VERSIONS", 3)  # read where the keyring is built
    first = keys.rotate()
    keys.rotate()
    keys.rotate()
    with pytest.raises(sealstore.KeystoreError, match="destroy retired versions"):
        keys.rotate()
    keys.retire(first.id)
    keys.destroy(first.id)
    assert keys.rotate().id.startswith("v000004-")


# Errors on reading.


def test_unknown_version_names_it(keys: ManagedKeys) -> None:
    """An object naming a version this keyring never had raises KeyNotFoundError naming it."""
    foreign = sealstore.encrypt(b"x", ManagedKeys(MemoryKeyringStore()))
    with pytest.raises(sealstore.KeyNotFoundError, match=version_of(foreign)):
        sealstore.decrypt(foreign, keys)
    sealstore.encrypt(b"y", keys)
    invented = with_key_ref(foreign, b"v123456-deadbeef")
    with pytest.raises(sealstore.KeyNotFoundError, match="v123456-deadbeef"):
        sealstore.decrypt(invented, keys)


@pytest.mark.parametrize("key_ref", [b"bad ref", b"v1/2", b"\xff", b"x" * 129])
def test_malformed_key_reference_is_a_format_error(keys: ManagedKeys, key_ref: bytes) -> None:
    """A managed key reference outside 1..128 bytes of [A-Za-z0-9._-] is a FormatError."""
    blob = with_key_ref(sealstore.encrypt(b"x", keys), key_ref)
    with pytest.raises(sealstore.FormatError, match="managed key reference"):
        sealstore.decrypt(blob, keys)


def test_a_key_reference_of_128_bytes_is_looked_up(keys: ManagedKeys) -> None:
    """The longest allowed version id is well-formed: it is looked up and not found."""
    blob = with_key_ref(sealstore.encrypt(b"x", keys), b"v" * 128)
    with pytest.raises(sealstore.KeyNotFoundError):
        sealstore.decrypt(blob, keys)


def test_tampered_wrapped_key_fails_authentication(keys: ManagedKeys) -> None:
    """A changed byte of the wrapped data key raises DecryptionError."""
    blob = bytearray(sealstore.encrypt(b"x", keys))
    blob[parse_header(bytes(blob)).size - 1] ^= 1
    with pytest.raises(sealstore.DecryptionError):
        sealstore.decrypt(bytes(blob), keys)


def test_key_reference_is_bound_to_the_wrap(keys: ManagedKeys) -> None:
    """Pointing a header at another existing version fails authentication, not silently."""
    blob = sealstore.encrypt(b"x", keys)
    other = keys.rotate().id
    with pytest.raises(sealstore.DecryptionError):
        sealstore.decrypt(with_key_ref(blob, other.encode()), keys)


def test_providers_of_the_wrong_mode_name_the_needed_one(keys: ManagedKeys) -> None:
    """A managed object read with CustomerKeys, or a customer one with ManagedKeys, says which."""
    customer = sealstore.CustomerKeys(os.urandom(32))
    with pytest.raises(sealstore.ProviderMismatchError, match="ManagedKeys"):
        sealstore.decrypt(sealstore.encrypt(b"x", keys), customer)
    with pytest.raises(sealstore.ProviderMismatchError, match="CustomerKeys"):
        sealstore.decrypt(sealstore.encrypt(b"x", customer), keys)
    with pytest.raises(sealstore.ProviderMismatchError, match="ManagedKeys"):
        sealstore.open_decrypted(io.BytesIO(sealstore.encrypt(b"x", keys)), customer)


# Root keys and the sealed keyring file.


def test_root_key_from_the_environment(tmp_path: Path) -> None:
    """A root key read from SEALSTORE_ROOT_KEY opens the keyring it sealed."""
    environ = {"SEALSTORE_ROOT_KEY": RootKey.generate()}
    path = tmp_path / "ring"
    blob = sealstore.encrypt(
        b"env", ManagedKeys(FileKeyringStore(path, RootKey.from_env(environ=environ), create=True))
    )
    again = ManagedKeys(FileKeyringStore(path, RootKey.from_env(environ=environ)))
    assert sealstore.decrypt(blob, again) == b"env"
    with pytest.raises(sealstore.RootKeyError, match="SEALSTORE_ROOT_KEY"):
        RootKey.from_env(environ={})


@pytest.mark.parametrize("encoding", ["raw", "base64"])
def test_root_key_from_a_file(tmp_path: Path, encoding: str) -> None:
    """A key file of 32 raw bytes or their base64 opens the keyring it sealed."""
    secret = os.urandom(32)
    key_file = tmp_path / "root.key"
    key_file.write_bytes(secret if encoding == "raw" else base64.b64encode(secret))
    path = tmp_path / "ring"
    blob = sealstore.encrypt(
        b"file", ManagedKeys(FileKeyringStore(path, RootKey.from_file(key_file), create=True))
    )
    again = ManagedKeys(FileKeyringStore(path, RootKey.from_bytes(secret)))
    assert sealstore.decrypt(blob, again) == b"file"


def test_root_key_from_a_passphrase(tmp_path: Path) -> None:
    """A passphrase opens its keyring; another passphrase, or a raw key, is a RootKeyError."""
    path = tmp_path / "ring"
    phrase = RootKey.from_passphrase("correct horse battery staple", work_factor=12)
    blob = sealstore.encrypt(b"phrase", ManagedKeys(FileKeyringStore(path, phrase, create=True)))
    same = RootKey.from_passphrase("correct horse battery staple", work_factor=12)
    assert sealstore.decrypt(blob, ManagedKeys(FileKeyringStore(path, same))) == b"phrase"
    wrong = RootKey.from_passphrase("incorrect horse battery staple", work_factor=12)
    with pytest.raises(sealstore.RootKeyError):
        sealstore.decrypt(blob, ManagedKeys(FileKeyringStore(path, wrong)))
    with pytest.raises(sealstore.RootKeyError):
        ManagedKeys(FileKeyringStore(path, RootKey.from_bytes(os.urandom(32)))).versions()


def test_wrong_root_key_is_a_clear_error(tmp_path: Path, root: RootKey) -> None:
    """Another root key raises RootKeyError when reading, writing or rotating, not garbage."""
    path = tmp_path / "ring"
    blob = sealstore.encrypt(b"x", ManagedKeys(FileKeyringStore(path, root, create=True)))
    before = path.read_bytes()
    wrong = ManagedKeys(FileKeyringStore(path, RootKey.from_base64(RootKey.generate())))
    with pytest.raises(sealstore.RootKeyError, match="root key"):
        sealstore.decrypt(blob, wrong)
    with pytest.raises(sealstore.RootKeyError):
        sealstore.encrypt(b"y", wrong)
    with pytest.raises(sealstore.RootKeyError):
        wrong.rotate()
    assert path.read_bytes() == before


def test_root_key_can_be_changed_by_copying_the_document(tmp_path: Path, root: RootKey) -> None:
    """The documented recipe re-seals a keyring under a new root key; objects still decrypt."""
    old = FileKeyringStore(tmp_path / "keyring", root, create=True)
    blob = sealstore.encrypt(b"kept", ManagedKeys(old))
    new_root = RootKey.from_base64(RootKey.generate())
    new = FileKeyringStore(tmp_path / "keyring.new", new_root, create=True)
    new.update(lambda _: old.load())
    (tmp_path / "keyring.new").replace(tmp_path / "keyring")
    assert sealstore.decrypt(blob, ManagedKeys(FileKeyringStore(old.path, new_root))) == b"kept"
    with pytest.raises(sealstore.RootKeyError):
        ManagedKeys(FileKeyringStore(old.path, root)).versions()


def test_keyring_file_is_sealed(tmp_path: Path, root: RootKey) -> None:
    """The file on disk holds neither the JSON document nor any master key."""
    store = FileKeyringStore(tmp_path / "ring", root, create=True)
    ManagedKeys(store).rotate()
    raw = store.load()
    assert raw is not None
    on_disk = (tmp_path / "ring").read_bytes()
    key = base64.b64decode(json.loads(raw)["versions"][0]["key"])
    assert on_disk.startswith(b"SLKS")
    assert key not in on_disk
    assert b"sealstore-keyring" not in on_disk
    assert store.path == tmp_path / "ring"


# The keyring document.


def test_document_schema() -> None:
    """The stored document is the versioned JSON schema the module documents."""
    store = MemoryKeyringStore()
    keys = ManagedKeys(store)
    first = keys.rotate()
    second = keys.rotate()
    keys.retire(first.id)
    doc = document(store)
    assert set(doc) == {
        "kind",
        "schema",
        "keyring",
        "revision",
        "next_sequence",
        "current",
        "versions",
    }
    assert (doc["kind"], doc["schema"], doc["next_sequence"]) == ("sealstore-keyring", 1, 3)
    assert doc["revision"] == 3  # one per write: two rotations and a retirement
    assert doc["current"] == second.id
    assert doc["keyring"].startswith("kr-")
    assert [v["state"] for v in doc["versions"]] == ["retired", "active"]
    assert all(len(base64.b64decode(v["key"])) == 32 for v in doc["versions"])
    assert datetime.fromisoformat(doc["versions"][0]["created"]) == first.created


def _edit(change: Callable[[dict[str, Any]], object]) -> Callable[[bytes | None], bytes]:
    def apply(raw: bytes | None) -> bytes:
        assert raw is not None
        doc = json.loads(raw)
        change(doc)
        return json.dumps(doc).encode()

    return apply


def _retire_current(doc: dict[str, Any]) -> None:
    doc["versions"][-1]["state"] = "retired"


def _short_key(doc: dict[str, Any]) -> None:
    doc["versions"][0]["key"] = base64.b64encode(bytes(16)).decode()


def _naive_time(doc: dict[str, Any]) -> None:
    doc["versions"][0]["created"] = "2026-01-01T00:00:00"


def _duplicate(doc: dict[str, Any]) -> None:
    doc["versions"].append(doc["versions"][0])


def _bool_count(doc: dict[str, Any]) -> None:
    doc["versions"][0]["reserved_wraps"] = True


def _not_an_object(doc: dict[str, Any]) -> None:
    doc["versions"][0] = "v000001-00000000"


def _bad_time(doc: dict[str, Any]) -> None:
    doc["versions"][0]["created"] = "yesterday"


def _bad_key(doc: dict[str, Any]) -> None:
    doc["versions"][0]["key"] = "not base64!"


def _bad_state(doc: dict[str, Any]) -> None:
    doc["versions"][0]["state"] = "destroyed"


@pytest.mark.parametrize(
    "damage",
    [
        lambda doc: doc.update(kind="something-else"),
        lambda doc: doc.update(current="v000009-00000000"),
        lambda doc: doc.update(versions=[]),
        lambda doc: doc.update(keyring="kr-XYZ"),
        lambda doc: doc.pop("next_sequence"),
        lambda doc: doc.update(revision=-1),
        lambda doc: doc.update(revision="3"),
        lambda doc: doc.update(revision=True),
        _retire_current,
        _short_key,
        _naive_time,
        _duplicate,
        _bool_count,
        _not_an_object,
        _bad_time,
        _bad_key,
        _bad_state,
    ],
)
def test_malformed_documents_are_refused(damage: Callable[[dict[str, Any]], object]) -> None:
    """A keyring document that breaks the schema raises KeystoreError, never a raw error."""
    store = MemoryKeyringStore()
    keys = ManagedKeys(store)
    keys.rotate()
    store.update(_edit(damage))
    with pytest.raises(sealstore.KeystoreError, match="malformed"):
        keys.versions()


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"\xff\xfe"])
def test_documents_that_are_not_keyrings_are_refused(raw: bytes) -> None:
    """Bytes that are not a JSON keyring raise KeystoreError."""
    store = MemoryKeyringStore()
    store.update(lambda _: raw)
    with pytest.raises(sealstore.KeystoreError, match="restore the keyring from a backup"):
        ManagedKeys(store).versions()


def test_newer_schema_asks_for_an_upgrade() -> None:
    """A document of a later schema says to upgrade sealstore."""
    store = MemoryKeyringStore()
    keys = ManagedKeys(store)
    keys.rotate()
    store.update(_edit(lambda doc: doc.update(schema=2)))
    with pytest.raises(sealstore.KeystoreError, match="upgrade sealstore"):
        keys.versions()


class ForgetfulStore:
    """A broken store whose update reports no document."""

    def load(self) -> bytes | None:
        return None

    def update(self, change: Callable[[bytes | None], bytes | None]) -> bytes | None:
        change(None)
        return None


def test_a_store_that_loses_updates_is_a_keystore_error() -> None:
    """A store that returns no document after an update raises KeystoreError."""
    with pytest.raises(sealstore.KeystoreError, match="no document"):
        sealstore.encrypt(b"x", ManagedKeys(ForgetfulStore()))


# Several instances, processes' worth of views, and threads.


def test_instances_on_one_store_see_each_others_versions(clock: FakeClock) -> None:
    """A version made by one instance unwraps in another at once, and wraps there soon."""
    store = MemoryKeyringStore()
    first = ManagedKeys(store, clock=clock)
    second = ManagedKeys(store, clock=clock)
    old = sealstore.encrypt(b"old", first)
    assert sealstore.decrypt(old, second) == b"old"
    new_version = second.rotate()
    new = sealstore.encrypt(b"new", second)
    # `first` keeps wrapping under its reserved block until its view is reload_after old...
    clock.advance(timedelta(seconds=59))
    assert version_of(sealstore.encrypt(b"x", first)) == version_of(old)
    clock.advance(timedelta(seconds=1))
    assert version_of(sealstore.encrypt(b"x", first)) == new_version.id
    third = ManagedKeys(store, clock=clock)
    sealstore.encrypt(b"x", third)
    newest = second.rotate()
    assert sealstore.decrypt(new, third) == b"new"
    # ...or until it reads the keyring for another reason, such as a version it does not know.
    assert sealstore.decrypt(sealstore.encrypt(b"newest", second), third) == b"newest"
    assert version_of(sealstore.encrypt(b"x", third)) == newest.id


def test_retirement_elsewhere_takes_effect_after_reload(clock: FakeClock) -> None:
    """A version retired through one instance stops decrypting in another within reload_after."""
    store = MemoryKeyringStore()
    first = ManagedKeys(store, clock=clock)
    second = ManagedKeys(store, clock=clock)
    blob = sealstore.encrypt(b"x", first)
    assert sealstore.decrypt(blob, second) == b"x"
    first.rotate()
    first.retire(version_of(blob))
    clock.advance(timedelta(minutes=1))
    with pytest.raises(sealstore.KeyRetiredError):
        sealstore.decrypt(blob, second)


def test_concurrent_automatic_rotations_collapse(clock: FakeClock, sink: MemoryAuditSink) -> None:
    """When two instances both find the current version too old, only one new version is made."""
    store = MemoryKeyringStore()
    first = ManagedKeys(store, clock=clock, audit=sink)
    second = ManagedKeys(store, clock=clock, audit=sink)
    sealstore.encrypt(b"a", first)
    sealstore.encrypt(b"b", second)
    clock.advance(timedelta(days=91))
    one = sealstore.encrypt(b"c", first)
    two = sealstore.encrypt(b"d", second)
    assert version_of(one) == version_of(two)
    assert len(first.versions()) == 2
    reasons = [e.reason for e in sink.events if e.operation is Operation.ROTATE]
    assert reasons == ["first version", "automatic: the current version reached max_age"]


def test_explicit_rotations_never_collapse() -> None:
    """Every rotate() call adds a version, whoever else rotated."""
    store = MemoryKeyringStore()
    made = {ManagedKeys(store).rotate().id for _ in range(5)}
    versions = ManagedKeys(store).versions()
    assert {v.id for v in versions} == made
    assert [v.state for v in versions].count(VersionState.CURRENT) == 1


def test_threads_share_one_instance_safely() -> None:
    """Many threads wrapping at once: every object decrypts and no version exceeds max_wraps."""
    keys = ManagedKeys(MemoryKeyringStore(), rotation=RotationPolicy(max_wraps=20, reserve_block=3))
    results: list[list[bytes]] = [[] for _ in range(8)]

    def work(index: int) -> None:
        results[index].extend(sealstore.encrypt(b"%d" % index, keys) for _ in range(50))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts: dict[str, int] = {}
    for index, blobs in enumerate(results):
        assert len(blobs) == 50
        for blob in blobs:
            assert sealstore.decrypt(blob, keys) == b"%d" % index
            counts[version_of(blob)] = counts.get(version_of(blob), 0) + 1
    reserved = {v.id: v.reserved_wraps for v in keys.versions()}
    assert sum(counts.values()) == 400
    assert all(counts[v] <= reserved[v] <= 20 for v in counts)
    assert len(reserved) >= 20


# Rewrapping.


def rewrap(blob: bytes, keys: ManagedKeys) -> bytes:
    """The rewrap recipe of docs/managed-keys.md: the same data key, wrapped anew."""
    header = parse_header(blob)
    data_key = keys.unwrap_data_key(header)
    key_ref, wrapped = keys.wrap_data_key(data_key, header.immutable, header.context)
    return encode_header(header.mode, header.context_field, key_ref, wrapped) + blob[header.size :]


def test_rewrap_moves_an_object_to_the_current_version(
    keys: ManagedKeys, sink: MemoryAuditSink
) -> None:
    """An unwrap then a wrap re-wraps under the current version; the body is untouched."""
    audited = ManagedKeys(keys.store, clock=keys.clock, audit=sink)
    blob = sealstore.encrypt(b"payload", audited, context={"name": "a"})
    old = version_of(blob)
    current = audited.rotate()
    header = parse_header(blob)
    sink.clear()
    moved = rewrap(blob, audited)
    assert version_of(moved) == current.id
    assert moved[parse_header(moved).size :] == blob[header.size :]
    audited.retire(old)
    assert sealstore.decrypt(moved, audited, context={"name": "a"}) == b"payload"
    assert [(e.operation, e.key_version, e.context_keys) for e in sink.events[:2]] == [
        (Operation.UNWRAP, old, ("name",)),
        (Operation.GENERATE, current.id, ("name",)),
    ]
    with pytest.raises(sealstore.KeyRetiredError):
        rewrap(blob, audited)


# Audit.


def test_audit_events(clock: FakeClock, sink: MemoryAuditSink) -> None:
    """Wraps, unwraps, rotations, retirements and failures are audited, without secrets."""
    keys = ManagedKeys(MemoryKeyringStore(), clock=clock, audit=sink, principal="svc-orders")
    blob = sealstore.encrypt(b"x", keys, context={"tenant": "acme-secret"})
    version = version_of(blob)
    sealstore.decrypt(blob, keys)
    new = keys.rotate()
    with pytest.raises(sealstore.KeyStateError):
        keys.retire(new.id)
    keys.retire(version)
    with pytest.raises(sealstore.KeyRetiredError):
        sealstore.decrypt(blob, keys)
    keys.reactivate(version)
    tampered = bytearray(blob)
    tampered[parse_header(blob).size - 1] ^= 1
    with pytest.raises(sealstore.DecryptionError):
        sealstore.decrypt(bytes(tampered), keys)
    with pytest.raises(sealstore.KeyNotFoundError):
        sealstore.decrypt(with_key_ref(blob, b"v000777-00000000"), keys)
    seen = [(e.operation, e.key_version, e.outcome) for e in sink.events]
    assert seen == [
        (Operation.ROTATE, version, Outcome.SUCCESS),
        (Operation.GENERATE, version, Outcome.SUCCESS),
        (Operation.UNWRAP, version, Outcome.SUCCESS),
        (Operation.ROTATE, new.id, Outcome.SUCCESS),
        (Operation.RETIRE, new.id, Outcome.FAILURE),
        (Operation.RETIRE, version, Outcome.SUCCESS),
        (Operation.UNWRAP, version, Outcome.FAILURE),
        (Operation.REACTIVATE, version, Outcome.SUCCESS),
        (Operation.UNWRAP, version, Outcome.FAILURE),
        (Operation.UNWRAP, "v000777-00000000", Outcome.FAILURE),
    ]
    keyring_id = document_id(keys)
    assert all(e.principal == "svc-orders" for e in sink.events)
    assert all(e.key_id == keyring_id for e in sink.events)
    assert all(e.time == START for e in sink.events)
    assert sink.events[1].context_keys == ("tenant",)
    assert [e.reason for e in sink.events if e.outcome is Outcome.FAILURE][1:] == [
        "retired version",
        "the wrapped data key failed authentication",
        "unknown version",
    ]
    assert "acme-secret" not in repr(sink.events)


def test_reactivation_is_audited_as_reactivate(keys: ManagedKeys, sink: MemoryAuditSink) -> None:
    """A reactivation, done or refused, is recorded under its own operation: "reactivate"."""
    audited = ManagedKeys(keys.store, clock=keys.clock, audit=sink)
    old = audited.rotate().id
    audited.rotate()
    audited.retire(old)
    audited.reactivate(old)
    with pytest.raises(sealstore.KeyNotFoundError):
        audited.reactivate("v000009-00000000")
    seen = [(e.operation.value, e.key_version, e.outcome) for e in sink.events[-2:]]
    assert seen == [
        ("reactivate", old, Outcome.SUCCESS),
        ("reactivate", "v000009-00000000", Outcome.FAILURE),
    ]


def document_id(keys: ManagedKeys) -> str:
    """The keyring id of a ManagedKeys over a memory store."""
    assert isinstance(keys.store, MemoryKeyringStore)
    keyring_id: str = document(keys.store)["keyring"]
    return keyring_id


def test_no_audit_sink_means_no_events(keys: ManagedKeys) -> None:
    """Without a sink nothing is recorded and everything still works (the default)."""
    assert keys.audit is None
    assert sealstore.decrypt(sealstore.encrypt(b"x", keys), keys) == b"x"


def test_unknown_version_on_an_empty_keyring_is_audited(sink: MemoryAuditSink) -> None:
    """With no keyring yet, a read fails as not found and is audited under a placeholder id."""
    keys = ManagedKeys(MemoryKeyringStore(), audit=sink)
    foreign = sealstore.encrypt(b"x", ManagedKeys(MemoryKeyringStore()))
    with pytest.raises(sealstore.KeyNotFoundError):
        sealstore.decrypt(foreign, keys)
    assert [(e.key_id, e.outcome) for e in sink.events] == [("managed", Outcome.FAILURE)]


# Representations and configuration.


def test_no_key_bytes_in_any_repr() -> None:
    """Neither the provider, its store, its versions nor its errors show master key bytes."""
    store = MemoryKeyringStore()
    keys = ManagedKeys(store)
    blob = sealstore.encrypt(b"x", keys)
    keys.rotate()
    secrets = [base64.b64decode(v["key"]) for v in document(store)["versions"]]
    shown = [repr(keys), repr(store), repr(keys.versions()), str(keys.versions())]
    keys.retire(version_of(blob))
    with pytest.raises(sealstore.KeyRetiredError) as caught:
        sealstore.decrypt(blob, keys)
    shown.append(str(caught.value))
    for key in secrets:
        for text in shown:
            assert key.hex() not in text
            assert base64.b64encode(key).decode() not in text
            assert repr(key) not in text
    assert repr(keys) == "ManagedKeys(store=MemoryKeyringStore(), principal='sealstore')"


@pytest.mark.parametrize(
    "options",
    [
        {"max_age": timedelta(0)},
        {"max_age": timedelta(days=-1)},
        {"max_wraps": 0},
        {"max_wraps": 2**32 + 1},
        {"max_wraps": True},
        {"reserve_block": 0},
        {"reserve_block": 2**20 + 1},
        {"reload_after": timedelta(0)},
    ],
)
def test_rotation_policy_is_validated(options: dict[str, Any]) -> None:
    """A RotationPolicy out of bounds is refused when made."""
    with pytest.raises(ValueError, match="RotationPolicy"):
        RotationPolicy(**options)


def test_rotation_policy_defaults() -> None:
    """Defaults: 90 days, 2**28 wraps, blocks of 4096, reload every minute."""
    policy = RotationPolicy()
    assert policy.max_age == timedelta(days=90)
    assert policy.max_wraps == 2**28
    assert policy.reserve_block == 4096
    assert policy.reload_after == timedelta(minutes=1)
    assert ManagedKeys(MemoryKeyringStore()).rotation == policy


@pytest.mark.parametrize("principal", ["", b"svc"])
def test_principal_is_validated(principal: object) -> None:
    """The principal named in audit events must be a non-empty str."""
    with pytest.raises(ValueError, match="principal"):
        ManagedKeys(MemoryKeyringStore(), principal=principal)  # type: ignore[arg-type]


def test_naive_clock_is_refused() -> None:
    """A clock returning naive datetimes is a ValueError, not a silent mix of time zones."""
    keys = ManagedKeys(MemoryKeyringStore(), clock=lambda: datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        sealstore.encrypt(b"x", keys)


def test_default_clock_is_utc_now() -> None:
    """Without a clock argument, versions are stamped with the current UTC time."""
    before = datetime.now(timezone.utc)
    version = ManagedKeys(MemoryKeyringStore()).rotate()
    assert before <= version.created <= datetime.now(timezone.utc)
    assert version.created.utcoffset() == timedelta(0)


def test_mode_is_managed() -> None:
    """ManagedKeys serves the managed mode."""
    assert ManagedKeys.mode is Mode.MANAGED
    assert ManagedKeys(MemoryKeyringStore()).mode is sealstore.Mode.MANAGED


def test_forged_versions_do_not_make_every_read_reload_the_keyring(clock: FakeClock) -> None:
    """Headers naming unknown versions reload the keyring at most once a second."""
    store = CountingStore(MemoryKeyringStore())
    keys = ManagedKeys(store, clock=clock)
    blob = sealstore.encrypt(b"x", keys)
    before = store.loads
    for number in range(1000):
        forged = with_key_ref(blob, f"v{number:06d}-forged00".encode())
        with pytest.raises(sealstore.KeyNotFoundError):
            sealstore.decrypt(forged, keys)
    assert store.loads - before <= 1
    clock.advance(timedelta(seconds=1))
    with pytest.raises(sealstore.KeyNotFoundError):
        sealstore.decrypt(with_key_ref(blob, b"v999999-forged00"), keys)
    assert store.loads - before == 2


def test_versions_rotated_in_quick_succession_elsewhere_are_found(clock: FakeClock) -> None:
    """Objects under versions another process rotated within the same second all decrypt."""
    shared = MemoryKeyringStore()
    writer, reader = ManagedKeys(shared, clock=clock), ManagedKeys(shared, clock=clock)
    sealstore.decrypt(sealstore.encrypt(b"first", writer), reader)
    for number in range(3):
        writer.rotate()
        blob = sealstore.encrypt(str(number).encode(), writer)
        assert sealstore.decrypt(blob, reader) == str(number).encode()


# A keyring change is recorded before it is saved, and not saved if recording fails.


class FailingSink:
    """An audit sink that cannot record some operations, and notes what the keyring held
    each time it was asked to record."""

    def __init__(self, store: KeyringStore, failing: set[Operation]) -> None:
        self.store = store
        self.failing = failing
        self.events: list[AuditEvent] = []
        self.documents_seen: list[bytes | None] = []

    def record(self, event: AuditEvent) -> None:
        self.documents_seen.append(self.store.load())
        if event.operation in self.failing:
            raise sealstore.AuditLogError("the audit log is full")
        self.events.append(event)


def _administration(keys: ManagedKeys, clock: FakeClock) -> dict[Operation, Callable[[], object]]:
    """A keyring whose versions allow each administrative call, and those calls."""
    old = keys.rotate().id
    retired = keys.rotate().id
    keys.rotate()
    keys.retire(retired)
    destroyable = keys.rotate().id
    keys.rotate()
    keys.retire(destroyable)

    def rotate_by_age() -> object:
        clock.advance(timedelta(days=365))
        return sealstore.encrypt(b"x", keys)

    return {
        Operation.ROTATE: keys.rotate,
        Operation.RETIRE: lambda: keys.retire(old),
        Operation.REACTIVATE: lambda: keys.reactivate(retired),
        Operation.DELETE_KEY: lambda: keys.destroy(destroyable),
        Operation.GENERATE: rotate_by_age,  # an automatic rotation, recorded as ROTATE
    }


@pytest.mark.parametrize(
    "operation",
    [Operation.ROTATE, Operation.RETIRE, Operation.REACTIVATE, Operation.DELETE_KEY],
)
def test_a_change_the_audit_sink_refuses_is_not_saved(
    clock: FakeClock, operation: Operation
) -> None:
    """rotate, retire, reactivate and destroy leave the keyring as it was when recording fails."""
    store = MemoryKeyringStore()
    sink = FailingSink(store, set())
    keys = ManagedKeys(store, clock=clock, audit=sink)
    call = _administration(keys, clock)[operation]
    before = store.load()
    sink.failing.add(operation)
    with pytest.raises(sealstore.AuditLogError, match="full"):
        call()
    assert store.load() == before
    assert keys.revision() == json.loads(before or b"")["revision"]


def test_an_automatic_rotation_the_audit_sink_refuses_is_not_saved(clock: FakeClock) -> None:
    """A wrap that would rotate by age fails, and rotates nothing, when recording fails."""
    store = MemoryKeyringStore()
    sink = FailingSink(store, set())
    keys = ManagedKeys(store, clock=clock, audit=sink)
    rotate_by_age = _administration(keys, clock)[Operation.GENERATE]
    before = store.load()
    sink.failing.add(Operation.ROTATE)
    with pytest.raises(sealstore.AuditLogError):
        rotate_by_age()
    assert store.load() == before
    sink.failing.clear()
    rotate_by_age()
    assert sink.events[-2].operation is Operation.ROTATE
    assert sink.events[-2].reason == "automatic: the current version reached max_age"


def test_the_first_version_is_not_made_when_recording_fails() -> None:
    """With a failing sink, the first wrap creates no keyring at all."""
    store = MemoryKeyringStore()
    keys = ManagedKeys(store, audit=FailingSink(store, {Operation.ROTATE}))
    with pytest.raises(sealstore.AuditLogError):
        sealstore.encrypt(b"x", keys)
    assert store.load() is None


def test_changes_are_recorded_before_they_are_saved(clock: FakeClock) -> None:
    """When a change's event is recorded, the stored keyring does not hold the change yet."""
    store = MemoryKeyringStore()
    sink = FailingSink(store, set())
    keys = ManagedKeys(store, clock=clock, audit=sink)
    first = keys.rotate()
    second = keys.rotate()
    keys.retire(first.id)
    assert [event.operation for event in sink.events] == [
        Operation.ROTATE,
        Operation.ROTATE,
        Operation.RETIRE,
    ]
    assert sink.documents_seen[0] is None  # the first rotation: recorded before any keyring
    seen = [json.loads(raw or b"") for raw in sink.documents_seen[1:]]
    assert seen[0]["current"] == first.id  # the second, while the first was still current
    assert seen[1]["current"] == second.id
    assert seen[1]["versions"][0]["state"] == "active"  # retirement recorded, not yet saved


class BrokenDiskStore:
    """A store whose writes fail after the change was computed (a full disk, say)."""

    def __init__(self, inner: KeyringStore) -> None:
        self.inner = inner
        self.broken = False

    def load(self) -> bytes | None:
        return self.inner.load()

    def update(self, change: Callable[[bytes | None], bytes | None]) -> bytes | None:
        if not self.broken:
            return self.inner.update(change)
        change(self.inner.load())
        raise sealstore.KeystoreError("cannot write the keyring: No space left on device")


def test_a_change_recorded_but_not_saved_is_recorded_as_failed(sink: MemoryAuditSink) -> None:
    """If the keyring cannot be written after the event was recorded, a failure follows it."""
    store = BrokenDiskStore(MemoryKeyringStore())
    keys = ManagedKeys(store, audit=sink)
    keys.rotate()
    store.broken = True
    with pytest.raises(sealstore.KeystoreError, match="No space"):
        keys.rotate()
    recorded, failed = sink.events[-2:]
    assert (recorded.operation, recorded.outcome) == (Operation.ROTATE, Outcome.SUCCESS)
    assert (failed.operation, failed.outcome) == (Operation.ROTATE, Outcome.FAILURE)
    assert failed.key_version == recorded.key_version
    assert "saving the keyring failed" in failed.reason
    assert len(keys.versions()) == 1


def test_reserving_wraps_is_not_an_event(sink: MemoryAuditSink) -> None:
    """Writes that only reserve wraps record nothing of their own: the wraps are recorded."""
    keys = ManagedKeys(MemoryKeyringStore(), audit=sink, rotation=RotationPolicy(reserve_block=1))
    for _ in range(3):
        sealstore.encrypt(b"x", keys)
    assert [event.operation for event in sink.events] == [Operation.ROTATE] + [
        Operation.GENERATE
    ] * 3
    assert keys.revision() == 3


# An older copy of the keyring put back in place is refused.


def test_a_keyring_rolled_back_under_a_running_instance_is_refused(
    tmp_path: Path, root: RootKey
) -> None:
    """A backup copied over the keyring, bringing back a destroyed version, is a KeystoreError."""
    path = tmp_path / "keyring"
    keys = ManagedKeys(FileKeyringStore(path, root, create=True))
    old = keys.rotate().id
    blob = sealstore.encrypt(b"under the old version", keys)
    backup = path.read_bytes()
    keys.rotate()
    keys.retire(old)
    keys.destroy(old)
    path.write_bytes(backup)
    for call in (keys.versions, keys.rotate, lambda: sealstore.decrypt(blob, keys)):
        with pytest.raises(sealstore.KeystoreError, match="older copy") as caught:
            call()
        assert str(path) in str(caught.value)
        assert "revision 2" in str(caught.value)
        assert "revision 5" in str(caught.value)
    assert path.read_bytes() == backup  # nothing was written on top of the old copy


def test_the_revision_anchor_refuses_a_rollback_in_a_new_instance(
    tmp_path: Path, root: RootKey
) -> None:
    """min_revision, kept from revision(), makes a fresh instance refuse an older keyring."""
    path = tmp_path / "keyring"
    keys = ManagedKeys(FileKeyringStore(path, root, create=True))
    keys.rotate()
    backup, backup_revision = path.read_bytes(), keys.revision()
    keys.rotate()
    anchor = keys.revision()
    assert anchor == backup_revision + 1
    path.write_bytes(backup)
    fresh = ManagedKeys(FileKeyringStore(path, root), min_revision=anchor)
    with pytest.raises(sealstore.KeystoreError, match="min_revision at most 1"):
        fresh.versions()
    # Without the anchor a new process cannot know; with a lower one, the restore is accepted.
    assert len(ManagedKeys(FileKeyringStore(path, root)).versions()) == 1
    restored = ManagedKeys(FileKeyringStore(path, root), min_revision=backup_revision)
    assert len(restored.versions()) == 1


def test_a_removed_keyring_is_refused_once_one_was_read(tmp_path: Path, root: RootKey) -> None:
    """A keyring file removed under an instance is not replaced by a new, empty keyring."""
    path = tmp_path / "keyring"
    keys = ManagedKeys(FileKeyringStore(path, root, create=True))
    sealstore.encrypt(b"x", keys)
    path.unlink()
    with pytest.raises(sealstore.KeystoreError, match="holds no keyring"):
        keys.rotate()
    assert not path.exists()


def test_every_write_raises_the_revision(keys: ManagedKeys) -> None:
    """rotate, reserve, retire and reactivate each add one; a change of nothing adds none."""
    assert keys.revision() == 0
    first = keys.rotate()
    assert keys.revision() == 1
    sealstore.encrypt(b"x", keys)  # reserves a block of wraps
    keys.rotate()
    keys.retire(first.id)
    assert keys.revision() == 4
    keys.retire(first.id)  # already retired: nothing to write
    assert keys.revision() == 4
    keys.reactivate(first.id)
    assert keys.revision() == 5


def test_a_keyring_without_a_revision_is_revision_0() -> None:
    """A document written before revisions existed reads as revision 0; the next write makes 1."""
    store = MemoryKeyringStore()
    keys = ManagedKeys(store)
    keys.rotate()
    store.update(_edit(lambda doc: doc.pop("revision")))
    older = ManagedKeys(store)
    assert older.revision() == 0
    assert len(older.versions()) == 1
    older.rotate()
    assert document(store)["revision"] == 1


@pytest.mark.parametrize("floor", [-1, True, "3", 1.0])
def test_min_revision_is_validated(floor: object) -> None:
    """min_revision must be a non-negative int."""
    with pytest.raises(ValueError, match="min_revision"):
        ManagedKeys(MemoryKeyringStore(), min_revision=floor)  # type: ignore[arg-type]


# A keyring file is created only when asked to.


def test_a_missing_keyring_file_is_an_error_unless_created(tmp_path: Path, root: RootKey) -> None:
    """Without create=True a missing file raises KeystoreError naming it, and nothing is made."""
    path = tmp_path / "keyrnig"  # mistyped
    keys = ManagedKeys(FileKeyringStore(path, root))
    for call in (keys.versions, keys.rotate, lambda: sealstore.encrypt(b"x", keys)):
        with pytest.raises(sealstore.KeystoreError, match="create=True") as caught:
            call()
        assert str(path) in str(caught.value)
    with pytest.raises(sealstore.KeystoreError, match="create=True"):
        FileKeyringStore(path, root).update(lambda _: b"document")
    assert list(tmp_path.iterdir()) == []


def test_create_makes_the_file_but_not_its_directory(tmp_path: Path, root: RootKey) -> None:
    """create=True makes the keyring in an existing directory, never missing directories."""
    nested = tmp_path / "no" / "such" / "keyring"
    with pytest.raises(sealstore.KeystoreError, match="does not exist") as caught:
        ManagedKeys(FileKeyringStore(nested, root, create=True)).rotate()
    assert str(nested.parent) in str(caught.value)
    assert list(tmp_path.iterdir()) == []
    path = tmp_path / "keyring"
    made = ManagedKeys(FileKeyringStore(path, root, create=True)).rotate()
    assert [v.id for v in ManagedKeys(FileKeyringStore(path, root)).versions()] == [made.id]


def test_a_keyring_removed_before_the_lock_is_not_recreated(
    tmp_path: Path, root: RootKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is checked again under the lock: removed meanwhile, it is not made anew."""
    path = tmp_path / "keyring"
    FileKeyringStore(path, root, create=True).update(lambda _: b"document")
    store = FileKeyringStore(path, root)
    locked = SealedFile.locked

    @contextlib.contextmanager
    def removed_then_locked(self: SealedFile) -> Iterator[None]:
        path.unlink()
        with locked(self):
            yield

    monkeypatch.setattr(SealedFile, "locked", removed_then_locked)
    with pytest.raises(sealstore.KeystoreError, match="create=True"):
        store.update(lambda _: b"new document")
    assert not path.exists()


def test_an_unreadable_keyring_path_is_a_keystore_error(tmp_path: Path, root: RootKey) -> None:
    """A path that cannot even be looked up raises KeystoreError, not a raw OSError."""
    path = tmp_path / ("x" * 300) / "keyring"  # a name too long for the filesystem
    store = FileKeyringStore(path, root, create=True)
    for call in (store.load, lambda: store.update(lambda _: b"document")):
        with pytest.raises(sealstore.KeystoreError, match="cannot read"):
            call()
