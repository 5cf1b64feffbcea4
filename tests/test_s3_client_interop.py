"""The client and ``EncryptedStore(S3Backend(client, bucket))`` read each other's objects."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

import sealstore
from sealstore.backends import S3Backend
from tests.s3_client_support import SERVERS, Setup, customer, error_of, made_setup

DATA = os.urandom(70_000)


@pytest.fixture(params=SERVERS)
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    """The encrypting client over a fresh boto3 client, on each server."""
    with made_setup(request, request.param, tmp_path) as made:
        yield made


def store_of(setup: Setup, key_id: str | None = None) -> sealstore.EncryptedStore:
    """A store on the same bucket, with the same managed keys and KMS."""
    kms_keys = sealstore.KmsKeys(setup.kms, key_id=key_id)
    backend = S3Backend(setup.raw, setup.bucket)
    return sealstore.EncryptedStore(backend, setup.managed, readers=[kms_keys])


def test_store_reads_what_the_client_wrote(setup: Setup) -> None:
    """Objects the client writes in each mode read through the store, context included."""
    key_id = setup.kms.create_key(principal="default").key_id
    store = store_of(setup, key_id)
    secret = os.urandom(32)
    where = {"Bucket": setup.bucket}
    setup.s3.put_object(**where, Key=setup.key("m"), Body=DATA, ServerSideEncryption="AES256")
    setup.s3.put_object(
        **where, Key=setup.key("k"), Body=DATA, ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id
    )
    setup.s3.put_object(**where, Key=setup.key("c"), Body=DATA, **customer(secret))
    assert store.get(setup.key("m")) == DATA
    assert store.get(setup.key("k")) == DATA
    assert store.get(setup.key("c"), keys=sealstore.CustomerKeys(secret)) == DATA
    with store.open(setup.key("m")) as handle:
        handle.seek(50_000)
        assert handle.read(10) == DATA[50_000:50_010]
    listed = {head.name: head.plaintext_size for head in store.list(setup.prefix)}
    assert listed == dict.fromkeys((setup.key("m"), setup.key("k"), setup.key("c")), len(DATA))


def test_client_reads_what_the_store_wrote(setup: Setup) -> None:
    """Objects the store writes read through the client, whole and by range, in each mode."""
    key_id = setup.kms.create_key(principal="default").key_id
    store = store_of(setup, key_id)
    secret = os.urandom(32)
    store.put(setup.key("m"), DATA, context={"team": "a"})
    store.put(setup.key("k"), DATA, keys=sealstore.KmsKeys(setup.kms, key_id=key_id))
    store.put(setup.key("c"), DATA, keys=sealstore.CustomerKeys(secret))
    for name, extra in (("m", {}), ("k", {}), ("c", customer(secret))):
        where = {"Bucket": setup.bucket, "Key": setup.key(name), **extra}
        assert setup.s3.get_object(**where)["Body"].read() == DATA
        ranged = setup.s3.get_object(**where, Range="bytes=40000-40099")
        assert ranged["Body"].read() == DATA[40_000:40_100]
        assert setup.s3.head_object(**where)["ContentLength"] == len(DATA)
    got = setup.s3.get_object(Bucket=setup.bucket, Key=setup.key("k"))
    assert got["SSEKMSKeyId"] == key_id


@pytest.mark.parametrize(
    "given",
    ["", "bytes=0-99", "bytes=60000-60009", "bytes=-10", "bytes=30000-"],
)
def test_inline_objects_read_through_the_client(setup: Setup, given: str) -> None:
    """A store object whose header is too large for metadata (stored in front of the body)
    reads through the client, whole and by range, with the plaintext figures."""
    store = store_of(setup)
    name = setup.key("inline")
    store.put(name, DATA, context={"note": "x" * 3000})
    assert store.head(name).placement == "inline"
    where = {"Bucket": setup.bucket, "Key": name}
    got = setup.s3.get_object(**where, Range=given) if given else setup.s3.get_object(**where)
    start, end = (0, len(DATA))
    if given:
        first, _, last = given.removeprefix("bytes=").partition("-")
        if not first:
            start = len(DATA) - int(last)
        else:
            start, end = int(first), int(last) + 1 if last else len(DATA)
    assert got["Body"].read() == DATA[start:end]
    assert setup.s3.head_object(**where)["ContentLength"] == len(DATA)
    with pytest.raises(ClientError) as excinfo:
        setup.s3.get_object(**where, Range="bytes=70000-")
    assert error_of(excinfo) == ("InvalidRange", 416)


def test_name_binding_is_shared(setup: Setup) -> None:
    """Ciphertext moved by another tool fails in the store and in the client alike."""
    store = store_of(setup)
    setup.s3.put_object(Bucket=setup.bucket, Key=setup.key("a"), Body=b"v")
    setup.raw.copy_object(
        Bucket=setup.bucket,
        Key=setup.key("b"),
        CopySource={"Bucket": setup.bucket, "Key": setup.key("a")},
    )
    with pytest.raises(sealstore.ContextMismatchError):
        store.get(setup.key("b"))
    with pytest.raises(ClientError):
        setup.s3.get_object(Bucket=setup.bucket, Key=setup.key("b"))
