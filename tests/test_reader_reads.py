"""Small reads through open_decrypted: the path that slices decrypted chunks directly."""

from __future__ import annotations

import io
import os
import random

import pytest

import sealstore
from sealstore import _aead

CHUNK = _aead.CHUNK_SIZE


class ShortReads(io.BytesIO):
    """A seekable source whose reads return at most 1000 bytes, as sockets and pipes may."""

    def read(self, size: int | None = -1, /) -> bytes:
        return super().read(1000 if size is None or size < 0 else min(size, 1000))


@pytest.fixture(scope="module")
def sample() -> tuple[sealstore.CustomerKeys, bytes, bytes]:
    keys = sealstore.CustomerKeys(os.urandom(32))
    plaintext = os.urandom(5 * CHUNK + 123)
    return keys, plaintext, sealstore.encrypt(plaintext, keys)


@pytest.mark.parametrize("source", [io.BytesIO, ShortReads])
def test_small_reads_anywhere_return_the_plaintext(
    sample: tuple[sealstore.CustomerKeys, bytes, bytes], source: type[io.BytesIO]
) -> None:
    """Reads within a chunk, across two or three, at the end and past it, in any order."""
    keys, plaintext, blob = sample
    rng = random.Random(7)
    spots = [
        (0, 1),
        (CHUNK - 1, 2),
        (CHUNK - 5, CHUNK + 10),
        (len(plaintext) - 3, 3),
        (len(plaintext) - 3, 100),
        (len(plaintext), 10),
    ]
    spots += [(rng.randrange(len(plaintext)), rng.randrange(1, 3 * CHUNK)) for _ in range(40)]
    with sealstore.open_decrypted(source(blob), keys) as reader:
        for offset, size in spots:
            reader.seek(offset)
            assert reader.read(size) == plaintext[offset : offset + size]
            assert reader.tell() == min(offset + size, len(plaintext))
        # The chunk read last is kept: reading inside it again decrypts nothing more.
        reader.seek(0)
        reader.read(10)
        before = reader.chunks_decrypted
        reader.seek(20)
        assert reader.read(10) == plaintext[20:30]
        assert reader.chunks_decrypted == before


def test_small_read_of_a_damaged_chunk_fails_and_keeps_failing(
    sample: tuple[sealstore.CustomerKeys, bytes, bytes],
) -> None:
    """A 10-byte read inside an altered chunk raises DecryptionError, then every read does."""
    keys, plaintext, blob = sample
    damaged = bytearray(blob)
    damaged[-3 * CHUNK] ^= 1
    with sealstore.open_decrypted(io.BytesIO(bytes(damaged)), keys) as reader:
        assert reader.read(10) == plaintext[:10]
        reader.seek(len(plaintext) - 3 * CHUNK)
        with pytest.raises(sealstore.DecryptionError):
            reader.read(10)
        reader.seek(0)
        with pytest.raises(sealstore.DecryptionError):
            reader.read(10)


def test_small_read_of_a_truncated_source_fails(
    sample: tuple[sealstore.CustomerKeys, bytes, bytes],
) -> None:
    """A read of a chunk the source no longer holds in full is damage, not a short read."""
    keys, _, blob = sample
    reader = sealstore.open_decrypted(io.BytesIO(blob), keys)
    reader._source = io.BytesIO(blob[: len(blob) - 2 * CHUNK])  # the file shrank under it
    reader.seek(3 * CHUNK)
    with pytest.raises(sealstore.DecryptionError):
        reader.read(10)


def test_closed_reader_refuses_reads_and_seeks(
    sample: tuple[sealstore.CustomerKeys, bytes, bytes],
) -> None:
    keys, _, blob = sample
    reader = sealstore.open_decrypted(io.BytesIO(blob), keys)
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        reader.read(10)
    with pytest.raises(ValueError, match="closed"):
        reader.seek(0)


def test_reader_refuses_bad_whence_and_hides_its_contents(
    sample: tuple[sealstore.CustomerKeys, bytes, bytes],
) -> None:
    keys, plaintext, blob = sample
    reader = sealstore.open_decrypted(io.BytesIO(blob), keys)
    with pytest.raises(ValueError, match="whence"):
        reader.seek(0, 3)
    assert repr(reader) == f"<DecryptedReader size={len(plaintext)} position=0>"
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        reader.tell()
