"""The core API: encrypt/decrypt, streams and random access agree with each other."""

from __future__ import annotations

import io
import os

import pytest

import sealstore
from sealstore.envelope import EncryptingReader

SIZES = [0, 1, 16383, 16384, 16385, 100_000]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_in_memory(keys: sealstore.CustomerKeys, size: int) -> None:
    """decrypt(encrypt(x)) == x at chunk-boundary sizes."""
    plaintext = os.urandom(size)
    assert sealstore.decrypt(sealstore.encrypt(plaintext, keys), keys) == plaintext


@pytest.mark.parametrize("size", SIZES)
def test_streams_produce_objects_every_api_reads(keys: sealstore.CustomerKeys, size: int) -> None:
    """encrypt_stream output decrypts through decrypt, decrypt_stream and open_decrypted."""
    plaintext = os.urandom(size)
    sink = io.BytesIO()
    written = sealstore.encrypt_stream(io.BytesIO(plaintext), sink, keys)
    blob = sink.getvalue()
    assert written == len(blob)
    assert sealstore.decrypt(blob, keys) == plaintext
    out = io.BytesIO()
    assert sealstore.decrypt_stream(io.BytesIO(blob), out, keys) == size
    assert out.getvalue() == plaintext
    with sealstore.open_decrypted(io.BytesIO(blob), keys) as reader:
        assert reader.read() == plaintext


def test_wrong_customer_key_is_named(keys: sealstore.CustomerKeys) -> None:
    """A different customer key raises WrongKeyError, not a generic failure."""
    blob = sealstore.encrypt(b"secret", keys)
    with pytest.raises(sealstore.WrongKeyError):
        sealstore.decrypt(blob, sealstore.CustomerKeys(os.urandom(32)))


def test_context_mismatch_names_keys_not_values(keys: sealstore.CustomerKeys) -> None:
    """ContextMismatchError lists the differing keys and never the values."""
    blob = sealstore.encrypt(b"x", keys, context={"tenant": "acme-secret", "extra": "v1"})
    with pytest.raises(sealstore.ContextMismatchError) as caught:
        sealstore.decrypt(blob, keys, context={"tenant": "globex-secret", "region": "eu"})
    message = str(caught.value)
    assert "'tenant'" in message
    assert "'region'" in message
    assert "'extra'" in message
    assert "secret" not in message
    assert caught.value.differing == ("tenant",)
    assert caught.value.missing == ("region",)
    assert caught.value.unexpected == ("extra",)


@pytest.mark.parametrize("size", [0, 1, 70_000])
@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_bytes_like_inputs(keys: sealstore.CustomerKeys, size: int, kind: type) -> None:
    """encrypt and decrypt accept any bytes-like object, small or large."""
    plaintext = os.urandom(size)
    blob = sealstore.encrypt(kind(bytearray(plaintext)), keys)
    assert sealstore.decrypt(kind(bytearray(blob)), keys) == plaintext


@pytest.mark.parametrize("size", [0, 16384, 3 * 16384 + 5, 2_500_000])
@pytest.mark.parametrize("read_size", [1, 1000, 70_000, -1])
def test_encrypting_reader_yields_an_object_every_api_reads(
    keys: sealstore.CustomerKeys, size: int, read_size: int
) -> None:
    """EncryptingReader, read in pieces of any size, yields a complete object."""
    plaintext = os.urandom(size)
    reader = EncryptingReader(io.BytesIO(plaintext), keys, context={"k": "v"})
    if read_size == 1 and size > 100_000:
        read_size = 4096  # single bytes over megabytes would only slow the suite down
    parts = []
    while part := reader.read(read_size):
        assert read_size < 0 or len(part) <= read_size
        parts.append(part)
    blob = b"".join(parts)
    assert blob.startswith(reader.header)
    assert sealstore.decrypt(blob, keys, context={"k": "v"}) == plaintext


def test_encrypting_reader_can_leave_the_header_out(keys: sealstore.CustomerKeys) -> None:
    """With include_header=False the stream is the body alone; header + body is the object."""
    reader = EncryptingReader(io.BytesIO(b"detached"), keys, include_header=False)
    body = reader.read()
    assert not body.startswith(b"SEAL")
    assert sealstore.decrypt(reader.header + body, keys) == b"detached"
