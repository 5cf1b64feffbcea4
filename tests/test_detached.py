"""The detached placement: header kept apart from the body, same bytes as inline."""

from __future__ import annotations

import io
import os

import pytest

import sealstore
from sealstore.envelope import EncryptingReader

SIZES = [0, 1, 16384, 70_000, 300_000]


@pytest.mark.parametrize("size", SIZES)
def test_detached_parts_are_the_inline_object(keys: sealstore.CustomerKeys, size: int) -> None:
    """header + body from encrypt_detached is an inline object, and each API reads the parts."""
    plaintext = os.urandom(size)
    header, body = sealstore.encrypt_detached(plaintext, keys, context={"k": "v"})
    assert sealstore.decrypt(header + body, keys) == plaintext
    assert sealstore.decrypt(body, keys, header=header, context={"k": "v"}) == plaintext
    sink = io.BytesIO()
    assert sealstore.decrypt_stream(io.BytesIO(body), sink, keys, header=header) == size
    assert sink.getvalue() == plaintext
    with sealstore.open_decrypted(io.BytesIO(body), keys, header=header) as reader:
        assert reader.read() == plaintext
        reader.seek(-min(size, 10), io.SEEK_END)
        assert reader.read() == plaintext[size - min(size, 10) :]


def test_inline_object_splits_into_detached_parts(keys: sealstore.CustomerKeys) -> None:
    """An inline object cut at its header size reads as header and body."""
    blob = sealstore.encrypt(b"payload", keys)
    size = sealstore.header.header_size(blob[:10])
    assert sealstore.decrypt(blob[size:], keys, header=blob[:size]) == b"payload"


def test_encrypting_reader_body_pairs_with_its_header(keys: sealstore.CustomerKeys) -> None:
    """EncryptingReader without the header streams a body that its header decrypts."""
    reader = EncryptingReader(io.BytesIO(b"x" * 50_000), keys, include_header=False)
    body = reader.read()
    assert sealstore.decrypt(body, keys, header=reader.header) == b"x" * 50_000


def test_header_with_trailing_bytes_is_refused(keys: sealstore.CustomerKeys) -> None:
    """A detached header must be exactly one header: extra bytes are a FormatError."""
    header, body = sealstore.encrypt_detached(b"x", keys)
    for read in (
        lambda: sealstore.decrypt(body, keys, header=header + b"\x00"),
        lambda: sealstore.decrypt_stream(
            io.BytesIO(body), io.BytesIO(), keys, header=header + b"!"
        ),
        lambda: sealstore.open_decrypted(io.BytesIO(body), keys, header=header + b"!"),
    ):
        with pytest.raises(sealstore.FormatError):
            read()


def test_header_moved_onto_another_body_fails(keys: sealstore.CustomerKeys) -> None:
    """A detached header paired with another object's body fails authentication."""
    header, _ = sealstore.encrypt_detached(b"first", keys)
    _, other_body = sealstore.encrypt_detached(b"other", keys)
    with pytest.raises(sealstore.DecryptionError):
        sealstore.decrypt(other_body, keys, header=header)
    with pytest.raises(sealstore.DecryptionError):
        sealstore.decrypt_stream(io.BytesIO(other_body), io.BytesIO(), keys, header=header)
    with pytest.raises(sealstore.DecryptionError):
        sealstore.open_decrypted(io.BytesIO(other_body), keys, header=header)
