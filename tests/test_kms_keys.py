"""KmsKeys: per-object KMS data keys, bucket keys and their decryption cache."""

from __future__ import annotations

import base64
import io
import math
import os
from datetime import timedelta
from pathlib import Path

import pytest

import sealstore
from sealstore.audit import MemoryAuditSink, Operation
from sealstore.backends import MemoryBackend
from sealstore.header import Mode, encode_header, parse_header
from sealstore.keys import kms as kms_keys
from sealstore.keys.kms import (
    BUCKET_KEY,
    BUCKET_KEY_CONTEXT,
    BUCKET_KEY_REWRAPPABLE,
    PER_OBJECT,
    PER_OBJECT_REWRAPPABLE,
    BucketKeyPolicy,
    decode_key_ref,
    encode_key_ref,
)
from sealstore.kms.policy import KeyOperation
from sealstore.placement import METADATA_KEY
from sealstore.testing import CountingKms, FakeClock, KmsFailure, MemoryKms


@pytest.fixture
def kms() -> MemoryKms:
    """An in-memory KMS with two keys, "k1" and "k2"."""
    return MemoryKms(keys=["k1", "k2"])


def test_round_trip_through_every_api(kms: MemoryKms) -> None:
    """A per-object KMS data key round-trips through in-memory, stream and seekable APIs."""
    keys = sealstore.KmsKeys(kms, key_id="k1", principal="app")
    plaintext = os.urandom(40_000)
    blob = sealstore.encrypt(plaintext, keys, context={"tenant": "acme"})
    assert sealstore.decrypt(blob, keys, context={"tenant": "acme"}) == plaintext
    sink = io.BytesIO()
    sealstore.encrypt_stream(io.BytesIO(plaintext), sink, keys)
    out = io.BytesIO()
    sealstore.decrypt_stream(io.BytesIO(sink.getvalue()), out, keys)
    assert out.getvalue() == plaintext
    with sealstore.open_decrypted(io.BytesIO(blob), keys) as reader:
        reader.seek(20_000)
        assert reader.read(10) == plaintext[20_000:20_010]


def test_per_object_keys_call_the_kms_once_per_object_with_the_object_context(
    kms: MemoryKms,
) -> None:
    """Without bucket keys every write generates and every read decrypts, bound to the context."""
    keys = sealstore.KmsKeys(kms, key_id="k1")
    blobs = [sealstore.encrypt(b"x", keys, context={"n": str(i)}) for i in range(5)]
    for blob in blobs:
        sealstore.decrypt(blob, keys)
    assert kms.calls["generate_data_key"] == 5
    assert kms.calls["decrypt"] == 5
    assert kms.contexts[0] == {"n": "0"}
    kind, key_id, _ = decode_key_ref(parse_header(blobs[0]).key_ref)
    assert (kind, key_id) == (PER_OBJECT_REWRAPPABLE, "k1")


def test_default_key_is_resolved_once(kms: MemoryKms) -> None:
    """With no key id the KMS default key is used, and asked for once per provider."""
    keys = sealstore.KmsKeys(kms)
    for _ in range(3):
        blob = sealstore.encrypt(b"x", keys)
    assert kms.calls["default_key_id"] == 1
    assert decode_key_ref(parse_header(blob).key_ref)[1] == "default"


@pytest.mark.parametrize("max_objects", [1, 7, 1000])
def test_bucket_keys_bound_kms_calls_by_object_count(kms: MemoryKms, max_objects: int) -> None:
    """N encrypts use ceil(N / max_objects) generate calls; N decrypts no more decrypt calls."""
    policy = BucketKeyPolicy(max_objects=max_objects)
    writer = sealstore.KmsKeys(kms, key_id="k1", bucket_key=policy)
    count = 2000
    blobs = [sealstore.encrypt(b"payload", writer) for _ in range(count)]
    assert kms.calls["generate_data_key"] == math.ceil(count / max_objects)
    reader = sealstore.KmsKeys(kms, key_id="k1", bucket_key=True)
    assert all(sealstore.decrypt(blob, reader) == b"payload" for blob in blobs)
    assert kms.calls["decrypt"] <= math.ceil(count / max_objects)
    assert kms.contexts[0] == dict(BUCKET_KEY_CONTEXT)


def test_reading_back_a_bucket_key_asks_the_kms_once(kms: MemoryKms) -> None:
    """The writer's bucket key is not served from memory to readers: the KMS decides (once)."""
    keys = sealstore.KmsKeys(kms, key_id="k1", bucket_key=True)
    blobs = [sealstore.encrypt(b"x", keys) for _ in range(3)]
    assert all(sealstore.decrypt(blob, keys) == b"x" for blob in blobs)
    assert kms.calls["decrypt"] == 1
    assert decode_key_ref(parse_header(blobs[0]).key_ref)[0] == BUCKET_KEY_REWRAPPABLE


def test_write_only_principal_cannot_read_through_bucket_keys(tmp_path: Path) -> None:
    """A principal allowed to generate but not to decrypt cannot read what it wrote."""
    kms = sealstore.LocalKms(
        tmp_path / "kms",
        root_key=sealstore.RootKey.from_bytes(os.urandom(32)),
        audit=sealstore.MemoryAuditSink(),
        create=True,
    )
    key_id = kms.create_key(principal="admin").key_id
    policy = sealstore.KeyPolicy.owner("admin").grant(KeyOperation.GENERATE, "writer")
    kms.put_key_policy(key_id, policy, principal="admin")
    writer = sealstore.KmsKeys(kms, key_id=key_id, principal="writer", bucket_key=True)
    blob = sealstore.encrypt(b"log line", writer)
    with pytest.raises(sealstore.AccessDeniedError):
        sealstore.decrypt(blob, writer)


def test_bucket_key_is_replaced_when_too_old(kms: MemoryKms) -> None:
    """A bucket key older than max_age is replaced by a fresh one."""
    clock = FakeClock()
    policy = BucketKeyPolicy(max_age=timedelta(minutes=5))
    keys = sealstore.KmsKeys(kms, key_id="k1", bucket_key=policy, clock=clock)
    first = parse_header(sealstore.encrypt(b"x", keys)).key_ref
    clock.advance(timedelta(minutes=4))
    assert parse_header(sealstore.encrypt(b"x", keys)).key_ref == first
    clock.advance(timedelta(minutes=1))
    assert parse_header(sealstore.encrypt(b"x", keys)).key_ref != first
    assert kms.calls["generate_data_key"] == 2


@pytest.mark.parametrize("streamed", [False, True])
def test_bucket_key_is_replaced_after_max_bytes(kms: MemoryKms, streamed: bool) -> None:
    """Once a bucket key covers max_bytes of plaintext, the next object gets a new one."""
    keys = sealstore.KmsKeys(kms, key_id="k1", bucket_key=BucketKeyPolicy(max_bytes=100_000))

    def write(size: int) -> bytes:
        if not streamed:
            return sealstore.encrypt(bytes(size), keys)
        sink = io.BytesIO()
        sealstore.encrypt_stream(io.BytesIO(bytes(size)), sink, keys)
        return sink.getvalue()

    first = parse_header(write(60_000)).key_ref
    assert parse_header(write(60_000)).key_ref == first
    assert parse_header(write(10)).key_ref != first
    assert kms.calls["generate_data_key"] == 2


def test_decryption_cache_expires_and_is_bounded(kms: MemoryKms) -> None:
    """Cached bucket keys expire after cache_ttl, and at most cache_size are kept."""
    clock = FakeClock()
    writer = sealstore.KmsKeys(kms, key_id="k1", bucket_key=BucketKeyPolicy(max_objects=1))
    blobs = [sealstore.encrypt(b"x", writer) for _ in range(3)]
    policy = BucketKeyPolicy(cache_size=2, cache_ttl=timedelta(seconds=30))
    reader = sealstore.KmsKeys(kms, key_id="k1", bucket_key=policy, clock=clock)
    for blob in blobs:
        sealstore.decrypt(blob, reader)
    assert kms.calls["decrypt"] == 3
    sealstore.decrypt(blobs[2], reader)  # still cached
    assert kms.calls["decrypt"] == 3
    sealstore.decrypt(blobs[0], reader)  # evicted by the size bound
    assert kms.calls["decrypt"] == 4
    clock.advance(timedelta(seconds=31))
    sealstore.decrypt(blobs[0], reader)  # expired
    assert kms.calls["decrypt"] == 5


def test_kms_refusal_surfaces_as_a_sealstore_error(kms: MemoryKms) -> None:
    """An object whose KMS key is unknown to the reader's KMS fails with KeyNotFoundError."""
    blob = sealstore.encrypt(b"x", sealstore.KmsKeys(kms, key_id="k1"))
    other = sealstore.KmsKeys(MemoryKms(), key_id="k1")
    with pytest.raises(sealstore.KeyNotFoundError):
        sealstore.decrypt(blob, other)


def test_context_is_bound_through_the_kms(kms: MemoryKms) -> None:
    """Editing the stored context breaks the KMS blob (per-object) or the wrap (bucket)."""
    for bucket in (False, True):
        keys = sealstore.KmsKeys(kms, key_id="k1", bucket_key=bucket)
        blob = sealstore.encrypt(b"x", keys, context={"a": "1"})
        forged = blob.replace(b"\x00\x01a\x00\x011", b"\x00\x01a\x00\x012")
        assert forged != blob
        with pytest.raises(sealstore.DecryptionError):
            sealstore.decrypt(forged, keys)


@pytest.mark.parametrize(
    "key_ref",
    [
        b"",
        b"\x01",
        b"\x05\x00\x01k\x00\x01b",
        b"\x00\x00\x01k\x00\x01b",
        b"\x01\x00\x00\x00\x01b",
        b"\x01\x00\x01k\x00\x00",
        b"\x01\x00\x05k\x00\x01b",
        b"\x01\x00\x01k\x00\x01bb",
        b"\x01\x00\x01\xff\x00\x01b",
    ],
)
def test_malformed_key_references_are_format_errors(key_ref: bytes) -> None:
    """Key references that break the documented layout raise FormatError."""
    with pytest.raises(sealstore.FormatError):
        decode_key_ref(key_ref)


def test_key_reference_layout() -> None:
    """encode_key_ref writes kind, u16-prefixed key id and u16-prefixed blob."""
    assert encode_key_ref(2, "k", b"blob") == b"\x02\x00\x01k\x00\x04blob"
    assert decode_key_ref(b"\x02\x00\x01k\x00\x04blob") == (2, "k", b"blob")


def test_repr_hides_key_material(kms: MemoryKms) -> None:
    """The provider's repr names the key id and principal, never key bytes."""
    keys = sealstore.KmsKeys(kms, key_id="k1", principal="app", bucket_key=True)
    sealstore.encrypt(b"x", keys)
    text = repr(keys)
    assert "k1" in text
    assert "app" in text
    state = keys._state.current
    assert state is not None
    assert state.data_key.plaintext.hex() not in text


@pytest.mark.parametrize("principal", ["", "*", "x" * 300, "tab\there"])
def test_unusable_principals_are_refused_at_construction(principal: str) -> None:
    """A principal no KMS could name is refused when the provider is made, not at first use."""
    with pytest.raises(sealstore.InvalidKmsRequestError):
        sealstore.KmsKeys(MemoryKms(), principal=principal)


def _local_kms(tmp_path: Path) -> sealstore.LocalKms:
    """A LocalKms that lets everyone use every key (the defaults of create_key)."""
    root = sealstore.RootKey.from_bytes(os.urandom(32))
    return sealstore.LocalKms(
        tmp_path / "kms", root_key=root, audit=sealstore.MemoryAuditSink(), create=True
    )


@pytest.mark.parametrize("bucket_key", [False, True])
def test_reads_refuse_objects_made_under_a_key_the_provider_was_not_given(
    tmp_path: Path, bucket_key: bool
) -> None:
    """Someone who can write to the storage, with a KMS key of their own, cannot pass off an
    object as genuine to a store configured for another key: KeyNotTrustedError."""
    kms = _local_kms(tmp_path)
    invoices = kms.create_key(principal="billing").key_id
    kms.create_alias("alias/invoices", invoices, principal="billing")
    attacker_key = kms.create_key(principal="mallory").key_id
    backend = MemoryBackend()
    reader = sealstore.KmsKeys(kms, key_id="alias/invoices", principal="billing")
    store = sealstore.EncryptedStore(backend, reader)
    store.put("invoice", b"genuine")
    forger = sealstore.KmsKeys(kms, key_id=attacker_key, principal="mallory", bucket_key=bucket_key)
    sealstore.EncryptedStore(backend, forger).put("invoice", b"forged")
    assert store.head("invoice").key_id == attacker_key
    with pytest.raises(sealstore.KeyNotTrustedError, match="trusted_key_ids"):
        store.get("invoice")
    assert isinstance(sealstore.KeyNotTrustedError("x"), sealstore.DecryptionError)


def test_trusted_key_ids_read_objects_under_an_earlier_key(tmp_path: Path) -> None:
    """During a migration, the old key is trusted explicitly; without it, its objects are
    refused once the provider names the new key."""
    kms = _local_kms(tmp_path)
    old = kms.create_key(principal="billing").key_id
    new = kms.create_key(principal="billing").key_id
    backend = MemoryBackend()
    sealstore.EncryptedStore(backend, sealstore.KmsKeys(kms, key_id=old, principal="billing")).put(
        "invoice", b"written under the old key"
    )
    moved = sealstore.KmsKeys(kms, key_id=new, principal="billing")
    with pytest.raises(sealstore.KeyNotTrustedError):
        sealstore.EncryptedStore(backend, moved).get("invoice")
    migrating = sealstore.KmsKeys(kms, key_id=new, principal="billing", trusted_key_ids=[old])
    store = sealstore.EncryptedStore(backend, migrating)
    assert store.get("invoice") == b"written under the old key"
    assert store.rewrap("invoice")
    assert store.head("invoice").key_id == new
    assert sealstore.EncryptedStore(backend, moved).get("invoice") == b"written under the old key"


def test_an_alias_reads_the_objects_of_the_key_it_names(tmp_path: Path) -> None:
    """A provider configured with an alias reads what it wrote: headers hold the key id."""
    kms = _local_kms(tmp_path)
    key_id = kms.create_key(principal="app").key_id
    kms.create_alias("alias/app", key_id, principal="app")
    keys = sealstore.KmsKeys(kms, key_id="alias/app", principal="app")
    blob = sealstore.encrypt(b"data", keys)
    assert decode_key_ref(parse_header(blob).key_ref)[1] == key_id
    by_alias = sealstore.KmsKeys(kms, key_id="alias/app", principal="app")
    assert sealstore.decrypt(blob, by_alias) == b"data"
    assert (
        sealstore.decrypt(blob, sealstore.KmsKeys(kms, key_id=key_id, principal="app")) == b"data"
    )
    with pytest.raises(sealstore.KeyNotTrustedError):  # the default key is another key
        sealstore.decrypt(blob, sealstore.KmsKeys(kms, principal="app"))


def test_trusted_key_ids_must_be_a_collection() -> None:
    """One string is refused rather than read as a set of characters."""
    with pytest.raises(sealstore.InvalidKeyError, match="collection"):
        sealstore.KmsKeys(MemoryKms(), key_id="k1", trusted_key_ids="k2")


def test_a_kms_outage_is_ridden_out_by_bucket_keys_for_as_long_as_documented(
    kms: MemoryKms,
) -> None:
    """With the KMS down, cached bucket keys keep serving reads for cache_ttl and the
    writer's bucket key keeps serving writes for max_age; then both fail with KmsError, no
    stored object is touched, and everything reads again once the KMS is back."""
    clock = FakeClock()
    policy = BucketKeyPolicy(max_age=timedelta(minutes=10), cache_ttl=timedelta(minutes=5))
    writer = sealstore.KmsKeys(kms, key_id="k1", bucket_key=policy, clock=clock)
    reader = sealstore.KmsKeys(kms, key_id="k1", bucket_key=policy, clock=clock)
    store = sealstore.EncryptedStore(MemoryBackend(), writer)
    readers = sealstore.EncryptedStore(store.backend, reader)
    for n in range(3):
        store.put(f"o{n}", f"object {n}".encode())
    assert [readers.get(f"o{n}") for n in range(3)] == [b"object 0", b"object 1", b"object 2"]
    kms.fail(KmsFailure.UNAVAILABLE)
    assert readers.get("o1") == b"object 1"  # from the cache
    store.put("o3", b"object 3")  # the writer's bucket key needs no KMS call
    clock.advance(timedelta(minutes=6))
    with pytest.raises(sealstore.KmsError, match="unavailable"):
        readers.get("o2")  # the cache entry expired
    clock.advance(timedelta(minutes=5))
    with pytest.raises(sealstore.KmsError, match="unavailable"):
        store.put("o4", b"object 4")  # a new bucket key is due
    assert [head.name for head in store.list()] == ["o0", "o1", "o2", "o3"]
    per_object = sealstore.KmsKeys(kms, key_id="k1")
    with pytest.raises(sealstore.KmsError):
        sealstore.EncryptedStore(store.backend, per_object).get("o0")
    kms.recover()
    assert [readers.get(f"o{n}") for n in range(4)] == [f"object {n}".encode() for n in range(4)]


def _with_key_ref(blob: bytes, key_ref: bytes) -> bytes:
    """``blob`` with its header's key reference replaced by ``key_ref``."""
    header = parse_header(blob)
    rebuilt = encode_header(header.mode, header.context_field, key_ref, header.wrapped_key)
    return rebuilt + blob[header.size :]


@pytest.mark.parametrize("bucket", [False, True])
def test_swapped_key_references_fail(kms: MemoryKms, bucket: bool) -> None:
    """Kinds 3 and 4 leave the blob out of the wrap: another object's blob, or the same one
    relabelled as another kind, still fails authentication."""
    first = sealstore.KmsKeys(kms, key_id="k1", bucket_key=bucket)
    second = sealstore.KmsKeys(kms, key_id="k1", bucket_key=bucket)
    one = sealstore.encrypt(b"one", first, context={"n": "1"})
    two = sealstore.encrypt(b"two", second, context={"n": "2"})
    with pytest.raises(sealstore.DecryptionError):
        sealstore.decrypt(_with_key_ref(one, parse_header(two).key_ref), first)
    key_ref = parse_header(one).key_ref
    assert key_ref[0] == (BUCKET_KEY_REWRAPPABLE if bucket else PER_OBJECT_REWRAPPABLE)
    for kind in (1, 2, 3, 4):
        if kind != key_ref[0]:
            with pytest.raises(sealstore.DecryptionError):
                sealstore.decrypt(_with_key_ref(one, bytes((kind,)) + key_ref[1:]), first)


@pytest.mark.parametrize("bucket", [False, True])
def test_kinds_1_and_2_still_read_and_rewrap_into_kinds_3_and_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bucket: bool
) -> None:
    """Objects written with kinds 1 and 2 (as earlier versions wrote them) read, and a rewrap
    through a KMS that can re-encrypt still redoes their wrap, giving kind 3 or 4."""
    root = sealstore.RootKey.from_bytes(os.urandom(32))
    local = sealstore.LocalKms(tmp_path / "kms", root_key=root, create=True)
    key_id = local.create_key(principal="app").key_id
    keys = sealstore.KmsKeys(local, key_id=key_id, principal="app", bucket_key=bucket)
    store = sealstore.EncryptedStore(MemoryBackend(), keys)
    with monkeypatch.context() as patch:
        patch.setattr(kms_keys, "PER_OBJECT_REWRAPPABLE", PER_OBJECT)
        patch.setattr(kms_keys, "BUCKET_KEY_REWRAPPABLE", BUCKET_KEY)
        store.put("legacy", b"written as before")
    assert store.head("legacy").key_id == key_id
    reader = sealstore.KmsKeys(local, key_id=key_id, principal="app", bucket_key=bucket)
    assert store.get("legacy", keys=reader) == b"written as before"
    local.rotate_key(key_id, principal="app")
    assert store.rewrap("legacy", keys=reader, force=True)
    assert store.get("legacy", keys=reader) == b"written as before"
    raw = store.backend.head("legacy").metadata["sealstore"].removeprefix("detached:")
    kind = parse_header(base64.b64decode(raw)).key_ref[0]
    assert kind == (BUCKET_KEY_REWRAPPABLE if bucket else PER_OBJECT_REWRAPPABLE)


def test_prefetch_without_a_batching_client_does_nothing(kms: MemoryKms) -> None:
    """A client without decrypt_many is asked nothing ahead; reads ask it one by one."""
    keys = sealstore.KmsKeys(kms, key_id="k1")
    blob = sealstore.encrypt(b"x", keys)
    keys.prefetch([parse_header(blob)])
    assert kms.calls["decrypt"] == 0
    assert sealstore.decrypt(blob, keys) == b"x"
    assert kms.calls["decrypt"] == 1


def _local_kms_with_key(tmp_path: Path) -> tuple[sealstore.LocalKms, str]:
    root = sealstore.RootKey.from_bytes(os.urandom(32))
    local = sealstore.LocalKms(tmp_path / "kms", root_key=root, create=True)
    return local, local.create_key(principal="app").key_id


def test_a_rewrap_through_an_alias_learns_the_object_is_current(tmp_path: Path) -> None:
    """A provider naming its key by alias does not know the key id until the KMS answers:
    a rewrap asks (re-encrypting inside the KMS), learns the object is under its key, and
    leaves it as it is."""
    local, key_id = _local_kms_with_key(tmp_path)
    local.create_alias("alias/orders", key_id, principal="app")
    backend = MemoryBackend()
    sealstore.EncryptedStore(backend, sealstore.KmsKeys(local, key_id=key_id, principal="app")).put(
        "doc", b"x"
    )
    before = backend.head("doc").metadata
    store = sealstore.EncryptedStore(
        backend, sealstore.KmsKeys(local, key_id="alias/orders", principal="app")
    )
    assert store.rewrap("doc") is False
    assert backend.head("doc").metadata == before


def _material_version(backend: MemoryBackend, name: str) -> int:
    """The LocalKms material version named by the blob in the header of ``name``
    (docs/local-kms.md)."""
    marker = backend.head(name).metadata[METADATA_KEY]
    header = parse_header(base64.b64decode(marker.removeprefix("detached:")))
    blob = decode_key_ref(header.key_ref)[2]
    return int.from_bytes(blob[2 + blob[1] : 6 + blob[1]], "big")


def test_rotation_then_rewrap_without_force_moves_objects_to_the_newest_material(
    tmp_path: Path,
) -> None:
    """After a LocalKms key is rotated, rewrap_all without force re-encrypts (inside the KMS)
    the blobs of older material: one re-encryption per object, one per bucket key. A second
    rewrap_all finds every object current and asks the KMS for nothing it audits."""
    sink = MemoryAuditSink()
    root = sealstore.RootKey.from_bytes(os.urandom(32))
    local = sealstore.LocalKms(tmp_path / "kms", root_key=root, audit=sink, create=True)
    key_id = local.create_key(principal="app").key_id
    per_object = sealstore.KmsKeys(local, key_id=key_id, principal="app")
    bucket = sealstore.KmsKeys(local, key_id=key_id, principal="app", bucket_key=True)
    backend = MemoryBackend()
    store = sealstore.EncryptedStore(backend, per_object)
    names = [f"{group}/{index}" for group in ("single", "shared") for index in range(5)]
    for name in names:
        store.put(name, name.encode(), keys=bucket if name.startswith("shared") else None)
    assert store.rewrap_all().current == 10
    local.rotate_key(key_id, principal="app")
    before = len(sink.events)
    single = store.rewrap_all("single/")
    shared = store.rewrap_all("shared/", keys=bucket)
    assert (single.done, single.current, shared.done, shared.current) == (5, 0, 5, 0)
    operations = [event.operation for event in sink.events[before:]]
    # Each re-encryption is audited for its source and its destination key.
    assert operations == [Operation.REWRAP] * 2 * (5 + 1)
    assert [_material_version(backend, name) for name in names] == [2] * 10
    before = len(sink.events)
    again = [store.rewrap_all("single/"), store.rewrap_all("shared/", keys=bucket)]
    assert [(report.done, report.current) for report in again] == [(0, 5), (0, 5)]
    assert not sink.events[before:]
    reader = sealstore.KmsKeys(local, key_id=key_id, principal="app", bucket_key=True)
    assert [store.get(name, keys=reader) for name in names] == [name.encode() for name in names]


def test_a_client_that_cannot_tell_material_apart_keeps_objects_current(tmp_path: Path) -> None:
    """Through a client without blob_is_current (here LocalKms behind CountingKms, as for
    AWS KMS, whose rotation is transparent) an object naming the key stays current after a
    rotation: moving it takes force=True."""
    local, key_id = _local_kms_with_key(tmp_path)
    counting = CountingKms(local)
    store = sealstore.EncryptedStore(
        MemoryBackend(), sealstore.KmsKeys(counting, key_id=key_id, principal="app")
    )
    store.put("doc", b"doc")
    local.rotate_key(key_id, principal="app")
    counting.calls.clear()
    assert store.rewrap("doc") is False
    assert sum(counting.calls.values()) == 0
    assert store.rewrap("doc", force=True) is True


def test_prefetch_skips_malformed_key_references(kms: MemoryKms) -> None:
    """A header whose KMS key reference breaks its layout is left for the unwrap to refuse."""
    keys = sealstore.KmsKeys(kms, key_id="k1")
    header = parse_header(encode_header(Mode.KMS, b"\x00\x00", b"\x09", bytes(60)))
    keys.prefetch([header])
    with pytest.raises(sealstore.FormatError):
        keys.unwrap_data_key(header)


def test_bucket_key_rewraps_inside_the_kms_are_remembered_within_bounds(tmp_path: Path) -> None:
    """Objects under several bucket keys, rewrapped inside the KMS with a one-entry memo,
    all end up readable under the key's newest material."""
    local, key_id = _local_kms_with_key(tmp_path)
    policy = BucketKeyPolicy(max_objects=2, cache_size=1)
    keys = sealstore.KmsKeys(local, key_id=key_id, principal="app", bucket_key=policy)
    store = sealstore.EncryptedStore(MemoryBackend(), keys)
    for index in range(6):
        store.put(f"doc/{index}", b"doc %d" % index)
    local.rotate_key(key_id, principal="app")
    assert store.rewrap_all("doc/", force=True).done == 6
    reader = sealstore.KmsKeys(local, key_id=key_id, principal="app", bucket_key=True)
    assert [store.get(f"doc/{index}", keys=reader) for index in range(6)] == [
        b"doc %d" % index for index in range(6)
    ]
