"""The nonce of every chunk, pinned against the spec far past the first 65,536 chunks.

A chunk sealed or opened by index must use ``base nonce XOR index`` with the whole index
(up to 38 bits), or two chunks of one body share a nonce. The expected chunks are computed
here from ``docs/format.md`` alone: HKDF-Expand from :mod:`hmac` and :mod:`hashlib`, the XOR
done byte by byte, and a bare AES-256-GCM call, so that nothing of sealstore's own key
derivation or nonce arithmetic is trusted.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import sealstore
from sealstore import _aead

_INFO_PREFIX = b"c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM\x00"
_KEY = bytes(range(100, 132))
_CONTEXT = b"sealstore/v1\x00\x01\x03\x00\x00"
_SALT = bytes(range(24))
_CHUNK = 16384

# Past 2^16 (where a 16-bit index wraps), past 2^32, and at the format's last chunks (2^38).
INDICES = [
    (1 << 16) - 1,
    1 << 16,
    (1 << 16) + 1,
    (1 << 24) + 7,
    1 << 32,
    (1 << 32) + 3,
    (1 << 38) - 2,
    (1 << 38) - 1,
]


def _hkdf_expand_sha512(prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF-Expand with SHA-512, written out."""
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha512).digest()
        okm += block
        counter += 1
    return okm[:length]


def _derived() -> tuple[bytes, bytes, bytes]:
    """Chunk key, base nonce and commitment of the test body, per the spec."""
    okm = _hkdf_expand_sha512(_KEY, _INFO_PREFIX + _SALT + _CONTEXT, 76)
    return okm[:32], okm[32:44], okm[44:76]


def _spec_nonce(index: int) -> bytes:
    """``base nonce XOR index``, the index as a 96-bit big-endian integer, byte by byte."""
    _, base, _ = _derived()
    return bytes(a ^ b for a, b in zip(base, index.to_bytes(12, "big"), strict=True))


def _spec_chunk(index: int, plaintext: bytes) -> bytes:
    chunk_key, _, _ = _derived()
    return AESGCM(chunk_key).encrypt(_spec_nonce(index), plaintext, None)


def _prefix() -> bytes:
    _, _, commitment = _derived()
    return _SALT + commitment


def _plaintext(index: int, size: int = _CHUNK) -> bytes:
    return hashlib.shake_256(index.to_bytes(8, "big")).digest(size)


def test_spec_nonces_differ_where_a_truncated_index_would_not() -> None:
    """The indices pinned here collide in their low 16 bits, so a truncated index shows."""
    assert len({index & 0xFFFF for index in INDICES}) < len(INDICES)
    assert len({_spec_nonce(index) for index in INDICES}) == len(INDICES)


@pytest.mark.parametrize("index", INDICES)
def test_sealer_seals_chunk_under_the_spec_nonce(index: int) -> None:
    """ChunkSealer.seal_chunk at a high index equals AES-GCM under base nonce XOR index."""
    sealer = _aead.ChunkSealer.resume(_KEY, _CONTEXT, _prefix())
    plaintext = _plaintext(index)
    assert sealer.seal_chunk(index, plaintext) == _spec_chunk(index, plaintext)


@pytest.mark.parametrize("first", [(1 << 16) - 2, (1 << 32) - 1, (1 << 38) - 4])
def test_sealer_run_across_high_boundaries_uses_the_spec_nonces(first: int) -> None:
    """A run sealed across 2^16, 2^32 or up to the last index is the spec's chunks in order."""
    pieces = [_plaintext(first), _plaintext(first + 1), _plaintext(first + 2), b"end"]
    sealer = _aead.ChunkSealer.resume(_KEY, _CONTEXT, _prefix())
    message = b"".join(pieces)
    out = bytearray(_aead.sealed_run_size(len(message), final=True))
    assert sealer.seal_run_into(first, message, out, final=True) == len(out)
    expected = b"".join(_spec_chunk(first + k, piece) for k, piece in enumerate(pieces))
    assert bytes(out) == expected


@pytest.mark.parametrize("index", INDICES)
def test_opener_opens_chunk_under_the_spec_nonce(index: int) -> None:
    """ChunkOpener opens the spec's chunk at a high index, one chunk or as a run."""
    opener = _aead.ChunkOpener(_KEY, _CONTEXT, _prefix())
    plaintext = _plaintext(index)
    sealed = _spec_chunk(index, plaintext)
    assert opener.open_chunk(index, sealed) == plaintext
    out = bytearray(_CHUNK)
    assert opener.open_chunk_into(index, sealed, out) == _CHUNK
    assert out == plaintext
    out[:] = bytes(_CHUNK)
    assert opener.open_run_into(index, sealed, out, final=False) == _CHUNK
    assert out == plaintext


@pytest.mark.parametrize("index", [index for index in INDICES if index >= 1 << 16])
def test_opener_refuses_the_chunk_at_its_16_bit_alias(index: int) -> None:
    """A chunk sealed for one index does not open at another index sharing its low 16 bits."""
    alias = index & 0xFFFF
    opener = _aead.ChunkOpener(_KEY, _CONTEXT, _prefix())
    sealed = _spec_chunk(index, _plaintext(index))
    with pytest.raises(sealstore.DecryptionError):
        opener.open_chunk(alias, sealed)
    with pytest.raises(sealstore.DecryptionError):
        opener.open_run_into(alias, sealed, bytearray(_CHUNK), final=False)


@pytest.mark.parametrize("first", [(1 << 16) - 2, (1 << 32) - 1, (1 << 38) - 4])
def test_opener_run_across_high_boundaries_uses_the_spec_nonces(first: int) -> None:
    """open_run_into opens the spec's chunks across 2^16, 2^32 and up to the last index."""
    pieces = [_plaintext(first), _plaintext(first + 1), _plaintext(first + 2), b"end"]
    sealed = b"".join(_spec_chunk(first + k, piece) for k, piece in enumerate(pieces))
    opener = _aead.ChunkOpener(_KEY, _CONTEXT, _prefix())
    out = bytearray(sum(map(len, pieces)))
    assert opener.open_run_into(first, sealed, out, final=True) == len(out)
    assert out == b"".join(pieces)
