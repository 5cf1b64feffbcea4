"""KmsKeys: per-object KMS data keys, bucket keys and their decryption cache."""

from __future__ import annotations

import io
import math
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import sealstore
from sealstore.header import parse_header
from sealstore.keys.kms import (
    BUCKET_KEY,
    BUCKET_KEY_CONTEXT,
    PER_OBJECT,
    BucketKeyPolicy,
    decode_key_ref,
    encode_key_ref,
)
from sealstore.kms.policy import KeyOperation
from tests.kms_fakes import CountingKms, MemoryKms


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def kms() -> CountingKms:
    """A counting wrapper over an in-memory KMS with one key, "k1"."""
    inner = MemoryKms()
    inner.create_key("k1")
    inner.create_key("k2")
    return CountingKms(inner)


def test_round_trip_through_every_api(kms: CountingKms) -> None:
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
    kms: CountingKms,
) -> None:
    """Without bucket keys every write generates and every read decrypts, bound to the context."""
    keys = sealstore.KmsKeys(kms, key_id="k1")
    blobs = [sealstore.encrypt(b"x", keys, context={"n": str(i)}) for i in range(5)]
    for blob in blobs:
        sealstore.decrypt(blob, keys)
    assert kms.calls["generate"] == 5
    assert kms.calls["decrypt"] == 5
    assert kms.contexts[0] == {"n": "0"}
    kind, key_id, _ = decode_key_ref(parse_header(blobs[0]).key_ref)
    assert (kind, key_id) == (PER_OBJECT, "k1")


def test_default_key_is_resolved_once(kms: CountingKms) -> None:
    """With no key id the KMS default key is used, and asked for once per provider."""
    keys = sealstore.KmsKeys(kms)
    for _ in range(3):
        blob = sealstore.encrypt(b"x", keys)
    assert kms.calls["default_key_id"] == 1
    assert decode_key_ref(parse_header(blob).key_ref)[1] == "default"


@pytest.mark.parametrize("max_objects", [1, 7, 1000])
def test_bucket_keys_bound_kms_calls_by_object_count(kms: CountingKms, max_objects: int) -> None:
    """N encrypts use ceil(N / max_objects) generate calls; N decrypts no more decrypt calls."""
    policy = BucketKeyPolicy(max_objects=max_objects)
    writer = sealstore.KmsKeys(kms, key_id="k1", bucket_key=policy)
    count = 2000
    blobs = [sealstore.encrypt(b"payload", writer) for _ in range(count)]
    assert kms.calls["generate"] == math.ceil(count / max_objects)
    reader = sealstore.KmsKeys(kms, key_id="k1", bucket_key=True)
    assert all(sealstore.decrypt(blob, reader) == b"payload" for blob in blobs)
    assert kms.calls["decrypt"] <= math.ceil(count / max_objects)
    assert kms.contexts[0] == dict(BUCKET_KEY_CONTEXT)


def test_reading_back_a_bucket_key_asks_the_kms_once(kms: CountingKms) -> None:
    """The writer's bucket key is not served from memory to readers: the KMS decides (once)."""
    keys = sealstore.KmsKeys(kms, key_id="k1", bucket_key=True)
    blobs = [sealstore.encrypt(b"x", keys) for _ in range(3)]
    assert all(sealstore.decrypt(blob, keys) == b"x" for blob in blobs)
    assert kms.calls["decrypt"] == 1
    assert decode_key_ref(parse_header(blobs[0]).key_ref)[0] == BUCKET_KEY


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


def test_bucket_key_is_replaced_when_too_old(kms: CountingKms) -> None:
    """A bucket key older than max_age is replaced by a fresh one."""
    clock = FakeClock()
    policy = BucketKeyPolicy(max_age=timedelta(minutes=5))
    keys = sealstore.KmsKeys(kms, key_id="k1", bucket_key=policy, clock=clock)
    first = parse_header(sealstore.encrypt(b"x", keys)).key_ref
    clock.advance(timedelta(minutes=4))
    assert parse_header(sealstore.encrypt(b"x", keys)).key_ref == first
    clock.advance(timedelta(minutes=1))
    assert parse_header(sealstore.encrypt(b"x", keys)).key_ref != first
    assert kms.calls["generate"] == 2


@pytest.mark.parametrize("streamed", [False, True])
def test_bucket_key_is_replaced_after_max_bytes(kms: CountingKms, streamed: bool) -> None:
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
    assert kms.calls["generate"] == 2


def test_decryption_cache_expires_and_is_bounded(kms: CountingKms) -> None:
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


def test_kms_refusal_surfaces_as_a_sealstore_error(kms: CountingKms) -> None:
    """An object whose KMS key is unknown to the reader's KMS fails with KeyNotFoundError."""
    blob = sealstore.encrypt(b"x", sealstore.KmsKeys(kms, key_id="k1"))
    other = sealstore.KmsKeys(MemoryKms(), key_id="k1")
    with pytest.raises(sealstore.KeyNotFoundError):
        sealstore.decrypt(blob, other)


def test_context_is_bound_through_the_kms(kms: CountingKms) -> None:
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
        b"\x03\x00\x01k\x00\x01b",
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


def test_repr_hides_key_material(kms: CountingKms) -> None:
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
