"""S3KeyringStore: the managed keyring as one object in a bucket, changed by conditional writes.

SeaweedFS applies a conditional write atomically under a per-object lock, so the contract
(concurrent updates included) and the races run there; moto checks the condition and then
writes, so it is used only for the requests' shapes and its own answers (404 under If-Match).
Races are made deterministic by letting another handle write just before this one's PUT.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions
import pytest

import sealstore
from sealstore import (
    FileKeyringStore,
    KeystoreError,
    ManagedKeys,
    MemoryAuditSink,
    RootKey,
    RootKeyError,
    S3KeyringStore,
)
from sealstore.audit import Operation, Outcome
from sealstore.keys.managed import RotationPolicy
from sealstore.testing import FakeClock
from sealstore.testing.contracts import KeyringStoreContract
from tests.servers import free_ports, running_seaweedfs
from tests.test_s3_backend import Recorder, s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def _key() -> str:
    return f"keys/{uuid.uuid4().hex[:12]}/keyring"


@pytest.fixture
def root_key() -> RootKey:
    """A random root key."""
    return RootKey.from_bytes(os.urandom(32))


class TestS3KeyringStoreOnSeaweedFS(KeyringStoreContract):
    """The keyring store contract, on SeaweedFS, with a second handle on its own client."""

    @pytest.fixture
    def store(self, seaweedfs_bucket: tuple[S3Client, str], root_key: RootKey) -> S3KeyringStore:
        """A store whose object does not exist yet."""
        client, bucket = seaweedfs_bucket
        self.key = _key()
        return S3KeyringStore(client, bucket, self.key, root_key, create=True)

    @pytest.fixture
    def second_handle(
        self, seaweedfs_server: str, seaweedfs_bucket: tuple[S3Client, str], root_key: RootKey
    ) -> S3KeyringStore:
        """Another S3KeyringStore on the same object, through another client."""
        return S3KeyringStore(
            s3_client(seaweedfs_server), seaweedfs_bucket[1], self.key, root_key, create=True
        )


def _once(action: Callable[[], object]) -> Callable[[], None]:
    """A ``before`` hook that runs ``action`` the first time only."""
    done: list[bool] = []

    def hook() -> None:
        if not done:
            done.append(True)
            action()

    return hook


def _append(text: bytes) -> Callable[[bytes | None], bytes]:
    return lambda current: (current or b"") + text


# ------------------------------------------------------------------- requests (moto)


def test_the_first_write_creates_and_later_ones_name_the_etag_read(
    moto_bucket: tuple[S3Client, str], root_key: RootKey
) -> None:
    """Creation is a PUT with If-None-Match: *; an update is a PUT with If-Match: the etag
    of the object the change was computed on; nothing else is written."""
    client, bucket = moto_bucket
    recorder = Recorder(client)
    key = _key()
    store = S3KeyringStore(recorder, bucket, key, root_key, create=True)
    store.update(_append(b"one"))
    etag = client.head_object(Bucket=bucket, Key=key)["ETag"]
    store.update(_append(b", two"))
    store.update(lambda _current: None)
    puts = [r for c, r in zip(recorder.calls, recorder.requests, strict=True) if c == "put_object"]
    assert recorder.calls == ["get_object", "put_object"] * 2 + ["get_object"]
    assert puts[0]["IfNoneMatch"] == "*"
    assert "IfMatch" not in puts[0]
    assert puts[1]["IfMatch"] == etag
    assert "IfNoneMatch" not in puts[1]
    assert {p["Bucket"] for p in puts} == {bucket}
    assert {p["Key"] for p in puts} == {key}
    assert store.load() == b"one, two"
    assert store.conflicts == 0


def test_an_object_deleted_before_the_write_is_a_lost_race_on_moto(
    moto_bucket: tuple[S3Client, str], root_key: RootKey
) -> None:
    """moto answers 404 to If-Match on a deleted key: the update starts again from no
    keyring instead of failing (with create=True), and counts one conflict."""
    client, bucket = moto_bucket
    recorder = Recorder(client)
    key = _key()
    store = S3KeyringStore(recorder, bucket, key, root_key, create=True)
    store.update(_append(b"old"))
    seen: list[bytes | None] = []

    def change(current: bytes | None) -> bytes:
        seen.append(current)
        return b"new"

    recorder.before["put_object"] = _once(lambda: client.delete_object(Bucket=bucket, Key=key))
    assert store.update(change) == b"new"
    assert seen == [b"old", None]
    assert store.conflicts == 1


def test_a_keyring_deleted_meanwhile_is_not_recreated_without_create(
    moto_bucket: tuple[S3Client, str], root_key: RootKey
) -> None:
    """Without create=True, a keyring deleted between the read and the write is reported,
    not written afresh."""
    client, bucket = moto_bucket
    recorder = Recorder(client)
    key = _key()
    S3KeyringStore(client, bucket, key, root_key, create=True).update(_append(b"old"))
    store = S3KeyringStore(recorder, bucket, key, root_key)
    recorder.before["put_object"] = _once(lambda: client.delete_object(Bucket=bucket, Key=key))
    with pytest.raises(KeystoreError, match=f"no keyring at s3://{bucket}/{key}"):
        store.update(_append(b", new"))
    assert recorder.calls.count("put_object") == 1


# ------------------------------------------------------------------- races (SeaweedFS)


@pytest.fixture
def weed(seaweedfs_server: str, seaweedfs_bucket: tuple[S3Client, str]) -> tuple[Recorder, str]:
    """A recording client on SeaweedFS and the shared bucket."""
    return Recorder(s3_client(seaweedfs_server)), seaweedfs_bucket[1]


def test_a_lost_update_is_made_again_on_the_winners_document(
    weed: tuple[Recorder, str], root_key: RootKey
) -> None:
    """Another host's write between this read and this write makes the PUT fail (412): the
    change runs again on the other host's document, and both changes stand."""
    recorder, bucket = weed
    key = _key()
    other = S3KeyringStore(s3_client_of(recorder), bucket, key, root_key, create=True)
    other.update(_append(b"a"))
    store = S3KeyringStore(recorder, bucket, key, root_key)
    seen: list[bytes | None] = []

    def change(current: bytes | None) -> bytes:
        seen.append(current)
        return (current or b"") + b"+mine"

    recorder.before["put_object"] = _once(lambda: other.update(_append(b"+theirs")))
    assert store.update(change) == b"a+theirs+mine"
    assert seen == [b"a", b"a+theirs"]
    assert other.load() == b"a+theirs+mine"
    assert store.conflicts == 1
    assert other.conflicts == 0


def test_two_creations_at_once_make_one_keyring(
    weed: tuple[Recorder, str], root_key: RootKey
) -> None:
    """Two hosts that both find no keyring: the second creation fails (If-None-Match) and is
    made again as an update of the first one's keyring."""
    recorder, bucket = weed
    key = _key()
    other = S3KeyringStore(s3_client_of(recorder), bucket, key, root_key, create=True)
    store = S3KeyringStore(recorder, bucket, key, root_key, create=True)
    recorder.before["put_object"] = _once(lambda: other.update(_append(b"first")))
    assert store.update(_append(b", second")) == b"first, second"
    assert store.conflicts == 1


def test_an_update_that_keeps_losing_gives_up_and_writes_nothing(
    weed: tuple[Recorder, str], root_key: RootKey
) -> None:
    """After ``attempts`` lost writes the update raises KeystoreError naming the object;
    only the other writer's changes are stored."""
    recorder, bucket = weed
    key = _key()
    other = S3KeyringStore(s3_client_of(recorder), bucket, key, root_key, create=True)
    other.update(_append(b"x"))
    store = S3KeyringStore(recorder, bucket, key, root_key, attempts=3)
    recorder.before["put_object"] = lambda: other.update(_append(b"x"))
    with pytest.raises(KeystoreError, match=f"s3://{bucket}/{key}: other writers") as caught:
        store.update(_append(b"mine"))
    assert "3 times" in str(caught.value)
    assert other.load() == b"xxxx"
    assert store.conflicts == 3


def s3_client_of(recorder: Recorder) -> Any:
    """A separate client on the recorder's endpoint, as another host would have."""
    return s3_client(recorder.client.meta.endpoint_url)


# ------------------------------------------------------------------- errors


def test_a_missing_keyring_is_an_error_unless_created(
    seaweedfs_bucket: tuple[S3Client, str], root_key: RootKey
) -> None:
    """A key with no object is KeystoreError naming it, for load and update, unless
    create=True (then load is None)."""
    client, bucket = seaweedfs_bucket
    key = _key()
    store = S3KeyringStore(client, bucket, key, root_key)
    for call in (store.load, lambda: store.update(_append(b"x"))):
        with pytest.raises(KeystoreError, match=f"no keyring at s3://{bucket}/{key}: pass create"):
            call()
    assert S3KeyringStore(client, bucket, key, root_key, create=True).load() is None


def test_a_missing_bucket_is_named(seaweedfs_server: str, root_key: RootKey) -> None:
    """A bucket that does not exist is KeystoreError naming the bucket and the key."""
    store = S3KeyringStore(s3_client(seaweedfs_server), "no-such-bucket-here", "k", root_key)
    with pytest.raises(KeystoreError, match=r"s3://no-such-bucket-here/k.*'no-such-bucket-here'"):
        store.load()


def test_an_unreachable_server_is_a_keystore_error(root_key: RootKey) -> None:
    """No server at the endpoint: KeystoreError naming the keyring, not a botocore error."""
    (port,) = free_ports(1)
    client = s3_client(f"http://127.0.0.1:{port}", retries={"max_attempts": 1})
    store = S3KeyringStore(client, "bucket", "ring", root_key, create=True)
    for call in (store.load, lambda: store.update(_append(b"x"))):
        with pytest.raises(KeystoreError, match="s3://bucket/ring: EndpointConnectionError"):
            call()


def test_access_denied_is_a_keystore_error(
    seaweedfs_server: str, seaweedfs_bucket: tuple[S3Client, str], root_key: RootKey
) -> None:
    """Credentials the server refuses: KeystoreError with the S3 code and what to check."""
    wrong = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=seaweedfs_server,
        aws_access_key_id="testing",
        aws_secret_access_key="not-the-secret",
    )
    store = S3KeyringStore(wrong, seaweedfs_bucket[1], _key(), root_key, create=True)
    with pytest.raises(KeystoreError, match="S3 answered SignatureDoesNotMatch; check the client"):
        store.load()


def test_a_wrong_root_key_or_another_object_is_refused(
    seaweedfs_bucket: tuple[S3Client, str], root_key: RootKey
) -> None:
    """Another root key: RootKeyError naming the object, and the root key in no message;
    an object that is not a sealed document: KeystoreError."""
    client, bucket = seaweedfs_bucket
    key = _key()
    S3KeyringStore(client, bucket, key, root_key, create=True).update(_append(b"doc"))
    raw = os.urandom(32)
    other = RootKey.from_bytes(raw)
    with pytest.raises(RootKeyError, match=f"does not open s3://{bucket}/{key}") as caught:
        S3KeyringStore(client, bucket, key, other).update(_append(b"x"))
    assert base64.b64encode(raw).decode() not in str(caught.value)
    client.put_object(Bucket=bucket, Key=key, Body=b"not a keyring")
    with pytest.raises(KeystoreError, match=f"s3://{bucket}/{key} is not a sealed"):
        S3KeyringStore(client, bucket, key, root_key).load()


def test_a_write_the_server_refuses_is_a_keystore_error(
    seaweedfs_bucket: tuple[S3Client, str], root_key: RootKey
) -> None:
    """A PUT refused for another reason than a lost race (SeaweedFS: a key over 1,024 bytes)
    is KeystoreError with the S3 code, not retried."""
    client, bucket = seaweedfs_bucket
    store = S3KeyringStore(client, bucket, "k/" + "x" * 1100, root_key, create=True)
    with pytest.raises(KeystoreError, match=r"cannot write the keyring .*KeyTooLongError; see"):
        store.update(_append(b"x"))
    assert store.conflicts == 0


def _client_error(code: str, status: int, operation: str) -> Exception:
    response: Any = {
        "Error": {"Code": code, "Message": "as the server says"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return botocore.exceptions.ClientError(response, operation)


class _StandIn:
    """What a server does not answer on demand, for the seam's translation: a body that
    breaks while read, an answer without an etag, a 5xx to a write."""

    def __init__(self, *, body_error: Exception | None = None, etag: str | None = '"e"') -> None:
        self.body_error = body_error
        self.etag = etag

    def get_object(self, **_: Any) -> Any:
        if self.etag == "missing":
            raise _client_error("NoSuchKey", 404, "GetObject")
        return {"Body": _Body(self.body_error), "ETag": self.etag}

    def put_object(self, **_: Any) -> Any:
        raise _client_error("SlowDown", 503, "PutObject")


class _Body:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.closed = False

    def read(self, _size: int) -> bytes:
        if self.error is not None:
            raise self.error
        return b"sealed"

    def close(self) -> None:
        self.closed = True


def test_what_no_server_answers_on_demand_is_translated(root_key: RootKey) -> None:
    """A body that breaks while read, an answer without an etag and a 503 are KeystoreErrors
    naming the keyring, each saying what to do."""
    broken = _StandIn(body_error=botocore.exceptions.ReadTimeoutError(endpoint_url="x"))
    with pytest.raises(KeystoreError, match="cannot read the keyring s3://b/k: ReadTimeoutError"):
        S3KeyringStore(broken, "b", "k", root_key).load()
    with pytest.raises(KeystoreError, match="s3://b/k: no etag came with it"):
        S3KeyringStore(_StandIn(etag=None), "b", "k", root_key).load()
    store = S3KeyringStore(_StandIn(etag="missing"), "b", "k", root_key, create=True)
    with pytest.raises(KeystoreError, match="answered SlowDown; the service is failing"):
        store.update(_append(b"x"))


def test_arguments_are_checked(root_key: RootKey) -> None:
    """A bucket with a slash, an empty key or attempts < 1 is a ValueError at once."""
    for bucket, key, attempts in (("a/b", "k", 1), ("b", "", 1), ("b", "k", 0)):
        with pytest.raises(ValueError, match=r"bucket|key|attempts"):
            S3KeyringStore(object(), bucket, key, root_key, attempts=attempts)  # type: ignore[arg-type]


def test_errors_that_are_not_from_s3_propagate(root_key: RootKey) -> None:
    """A client that fails in a way no S3 client does is not disguised as a keystore error."""

    class Broken:
        def get_object(self, **_: Any) -> Any:
            raise ZeroDivisionError

        def put_object(self, **_: Any) -> Any:
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        S3KeyringStore(Broken(), "b", "k", root_key).load()


def test_repr_and_location(root_key: RootKey) -> None:
    """The repr names the object (never the root key)."""
    store = S3KeyringStore(object(), "b", "k/ring", root_key)  # type: ignore[arg-type]
    assert repr(store) == "S3KeyringStore('s3://b/k/ring')"
    assert store.location == "s3://b/k/ring"


# ------------------------------------------------------------------- with ManagedKeys


def test_a_keyring_file_copied_into_the_bucket_opens_there(
    tmp_path: Path, seaweedfs_bucket: tuple[S3Client, str], root_key: RootKey
) -> None:
    """The object holds the same sealed bytes as a keyring file: a file's bytes put in the
    bucket decrypt the objects written under it."""
    client, bucket = seaweedfs_bucket
    keys = ManagedKeys(FileKeyringStore(tmp_path / "ring", root_key, create=True))
    blob = sealstore.encrypt(b"under the file", keys)
    key = _key()
    client.put_object(Bucket=bucket, Key=key, Body=(tmp_path / "ring").read_bytes())
    moved = ManagedKeys(S3KeyringStore(client, bucket, key, root_key))
    assert sealstore.decrypt(blob, moved) == b"under the file"


def test_a_rolled_back_keyring_is_refused_and_not_written_over(
    seaweedfs_bucket: tuple[S3Client, str], root_key: RootKey
) -> None:
    """An older copy of the object put back is refused by the ManagedKeys that read a newer
    one, and by a new one given the revision as anchor; nothing is written over it."""
    client, bucket = seaweedfs_bucket
    key = _key()
    store = S3KeyringStore(client, bucket, key, root_key, create=True)
    keys = ManagedKeys(store)
    keys.rotate()
    old = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    keys.rotate()
    anchor = keys.revision()
    client.put_object(Bucket=bucket, Key=key, Body=old)
    for call in (keys.versions, keys.rotate):
        with pytest.raises(KeystoreError, match=f"revision 1.*revision {anchor} was read"):
            call()
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == old
    assert len(ManagedKeys(store).versions()) == 1  # no anchor: a fresh process accepts it
    with pytest.raises(KeystoreError, match="an older copy of the keyring"):
        ManagedKeys(store, min_revision=anchor).versions()


def _events(sink: MemoryAuditSink, operation: Operation) -> list[tuple[str | None, Outcome]]:
    return [(e.key_version, e.outcome) for e in sink.events if e.operation is operation]


def test_a_contested_automatic_rotation_has_one_winner(
    weed: tuple[Recorder, str], root_key: RootKey
) -> None:
    """Two hosts find the current version due at once; the one whose write loses takes the
    other's new version instead of rotating again: one new version, one saved rotation in
    the audit trails (the loser's attempt is recorded, then marked not saved)."""
    recorder, bucket = weed
    key = _key()
    clock = FakeClock()
    policy = RotationPolicy(max_age=timedelta(hours=1), reload_after=timedelta(days=1))
    sinks = MemoryAuditSink(), MemoryAuditSink()
    host_a = ManagedKeys(
        S3KeyringStore(recorder, bucket, key, root_key, create=True),
        rotation=policy,
        clock=clock,
        audit=sinks[0],
    )
    host_b = ManagedKeys(
        S3KeyringStore(s3_client_of(recorder), bucket, key, root_key),
        rotation=policy,
        clock=clock,
        audit=sinks[1],
    )
    first = host_a.rotate()
    sealstore.encrypt(b"b reads the keyring", host_b)
    clock.advance(timedelta(hours=2))
    blobs: list[bytes] = []
    recorder.before["put_object"] = _once(lambda: blobs.append(sealstore.encrypt(b"b", host_b)))
    blobs.append(sealstore.encrypt(b"a", host_a))
    versions = host_a.versions()
    assert len(versions) == 2
    second = versions[1].id
    saved_by_b = [(second, Outcome.SUCCESS)]
    assert _events(sinks[1], Operation.ROTATE) == saved_by_b
    rotations_a = _events(sinks[0], Operation.ROTATE)
    assert rotations_a[0] == (first.id, Outcome.SUCCESS)
    lost = rotations_a[1][0]
    assert lost != second
    assert rotations_a[1:] == [(lost, Outcome.SUCCESS), (lost, Outcome.FAILURE)]
    for blob in blobs:
        assert sealstore.decrypt(blob, host_a) in {b"a", b"b"}
        assert sealstore.decrypt(blob, host_b) in {b"a", b"b"}


def test_contested_explicit_rotations_both_stand(
    weed: tuple[Recorder, str], root_key: RootKey
) -> None:
    """Two rotate() calls at once both add a version: the loser's first attempt is marked
    not saved, and the version it then saves is the current one."""
    recorder, bucket = weed
    key = _key()
    sink = MemoryAuditSink()
    host_a = ManagedKeys(S3KeyringStore(recorder, bucket, key, root_key, create=True), audit=sink)
    host_b = ManagedKeys(S3KeyringStore(s3_client_of(recorder), bucket, key, root_key, create=True))
    host_a.rotate()
    won: list[str] = []
    recorder.before["put_object"] = _once(lambda: won.append(host_b.rotate().id))
    mine = host_a.rotate()
    ids = [v.id for v in host_b.versions()]
    assert ids[1:] == [won[0], mine.id]
    rotations = _events(sink, Operation.ROTATE)
    assert rotations[-1] == (mine.id, Outcome.SUCCESS)
    assert rotations[-2][1] is Outcome.FAILURE
    assert rotations[-2][0] not in ids


def test_a_host_rides_out_a_bucket_outage_until_its_next_reload(tmp_path: Path) -> None:
    """With the server stopped, a host keeps reading objects of versions it knows and wrapping
    within its reserved block until ``reload_after`` has passed; then every use of the keys
    fails with KeystoreError naming the keyring, never a botocore error."""
    root_key = RootKey.from_bytes(os.urandom(32))
    clock = FakeClock()
    policy = RotationPolicy(reload_after=timedelta(minutes=1), reserve_block=100)
    with running_seaweedfs(tmp_path) as endpoint:
        client = s3_client(endpoint, retries={"max_attempts": 1}, connect_timeout=2)
        client.create_bucket(Bucket="outage")
        store = S3KeyringStore(client, "outage", "keys/keyring", root_key, create=True)
        keys = ManagedKeys(store, rotation=policy, clock=clock)
        blob = sealstore.encrypt(b"written before", keys)
    clock.advance(timedelta(seconds=30))
    assert sealstore.decrypt(blob, keys) == b"written before"
    assert sealstore.decrypt(sealstore.encrypt(b"during", keys), keys) == b"during"
    clock.advance(timedelta(seconds=31))
    calls: list[Callable[[], object]] = [
        lambda: sealstore.decrypt(blob, keys),
        lambda: sealstore.encrypt(b"after", keys),
        keys.rotate,
    ]
    for call in calls:
        with pytest.raises(KeystoreError, match="s3://outage/keys/keyring: EndpointConnection"):
            call()
