"""Wycheproof AES-GCM vectors through ``sealstore._aead.Gcm``, and the data-key wrap built on it.

``vectors/aes_gcm_test.json`` holds vectors for many key, nonce and tag sizes; sealstore uses
AES-256-GCM with 96-bit nonces and 128-bit tags only, so those are the ones applied in full.
A valid vector seals to exactly ``ct || tag`` and opens back to ``msg``; an invalid one is
refused with :class:`sealstore.DecryptionError`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import sealstore
from sealstore import _aead

_FILE = Path(__file__).parent / "vectors" / "aes_gcm_test.json"


@dataclass(frozen=True)
class GcmVector:
    """One AEAD test case and the sizes (in bits) of its group."""

    tc_id: int
    comment: str
    flags: frozenset[str]
    result: str
    key_size: int
    iv_size: int
    tag_size: int
    key: bytes = field(repr=False)
    iv: bytes = field(repr=False)
    aad: bytes = field(repr=False)
    msg: bytes = field(repr=False)
    ct: bytes = field(repr=False)
    tag: bytes = field(repr=False)


def _load() -> tuple[int, list[GcmVector]]:
    document = json.loads(_FILE.read_text(encoding="utf-8"))
    vectors = [
        GcmVector(
            tc_id=test["tcId"],
            comment=test["comment"],
            flags=frozenset(test["flags"]),
            result=test["result"],
            key_size=group["keySize"],
            iv_size=group["ivSize"],
            tag_size=group["tagSize"],
            key=bytes.fromhex(test["key"]),
            iv=bytes.fromhex(test["iv"]),
            aad=bytes.fromhex(test["aad"]),
            msg=bytes.fromhex(test["msg"]),
            ct=bytes.fromhex(test["ct"]),
            tag=bytes.fromhex(test["tag"]),
        )
        for group in document["testGroups"]
        for test in group["tests"]
    ]
    return document["numberOfTests"], vectors


_DECLARED_COUNT, ALL_VECTORS = _load()
APPLIED = [v for v in ALL_VECTORS if v.key_size == 256 and v.iv_size == 96 and v.tag_size == 128]
VALID = [v for v in APPLIED if v.result == "valid"]
INVALID = [v for v in APPLIED if v.result == "invalid"]
# Empty nonces are invalid for GCM; the primitive refuses them before any decryption.
EMPTY_NONCES = [v for v in ALL_VECTORS if v.key_size == 256 and v.iv_size == 0]
SHORT_KEYS = {v.key_size: v.key for v in ALL_VECTORS if v.key_size != 256}


def _params(vectors: list[GcmVector]) -> list[object]:
    return [pytest.param(vector, id=f"tc{vector.tc_id}") for vector in vectors]


def test_every_vector_is_loaded() -> None:
    """The whole file loads, and the applied subset is the 66 AES-256-GCM/96/128 vectors."""
    assert len(ALL_VECTORS) == _DECLARED_COUNT == 316
    assert len(APPLIED) == 66
    assert len(VALID) == 39
    assert len(INVALID) == 27
    assert {v.result for v in ALL_VECTORS} == {"valid", "invalid"}


@pytest.mark.parametrize("vector", _params(VALID))
def test_seal_matches_valid(vector: GcmVector) -> None:
    """Gcm.seal produces exactly the vector's ciphertext followed by its tag."""
    assert _aead.Gcm(vector.key).seal(vector.iv, vector.msg, vector.aad) == vector.ct + vector.tag


@pytest.mark.parametrize("vector", _params(VALID))
def test_open_recovers_valid(vector: GcmVector) -> None:
    """Gcm.open returns the vector's message, from bytes and from a memoryview alike."""
    gcm = _aead.Gcm(vector.key)
    sealed = vector.ct + vector.tag
    assert gcm.open(vector.iv, sealed, vector.aad) == vector.msg
    with memoryview(sealed) as view:
        assert gcm.open(vector.iv, view, vector.aad) == vector.msg


@pytest.mark.parametrize("vector", _params(INVALID))
def test_open_refuses_invalid(vector: GcmVector) -> None:
    """Gcm.open raises DecryptionError for every invalid vector."""
    with pytest.raises(sealstore.DecryptionError):
        _aead.Gcm(vector.key).open(vector.iv, vector.ct + vector.tag, vector.aad)


@pytest.mark.parametrize("vector", _params(VALID))
def test_open_refuses_altered_valid(vector: GcmVector) -> None:
    """A valid vector with one tag bit flipped, or with other associated data, is refused."""
    gcm = _aead.Gcm(vector.key)
    flipped = vector.ct + vector.tag[:-1] + bytes([vector.tag[-1] ^ 1])
    with pytest.raises(sealstore.DecryptionError):
        gcm.open(vector.iv, flipped, vector.aad)
    with pytest.raises(sealstore.DecryptionError):
        gcm.open(vector.iv, vector.ct + vector.tag, vector.aad + b"\x00")


@pytest.mark.parametrize("vector", _params(EMPTY_NONCES))
def test_open_maps_refused_nonces_to_decryption_error(vector: GcmVector) -> None:
    """An empty nonce, which the primitive refuses outright, surfaces as DecryptionError."""
    assert vector.result == "invalid"
    with pytest.raises(sealstore.DecryptionError):
        _aead.Gcm(vector.key).open(vector.iv, vector.ct + vector.tag, vector.aad)


@pytest.mark.parametrize("key_size", sorted(SHORT_KEYS))
def test_gcm_refuses_other_key_sizes(key_size: int) -> None:
    """AES-128 and AES-192 keys from the file are refused: sealstore uses 256-bit keys only."""
    with pytest.raises(sealstore.InvalidKeyError):
        _aead.Gcm(SHORT_KEYS[key_size])


def test_gcm_repr_hides_key() -> None:
    """The repr of a Gcm never shows its key."""
    key = VALID[0].key
    text = repr(_aead.Gcm(key))
    assert key.hex() not in text
    assert "hidden" in text


# KeyWrapper: a 32-byte data key sealed as nonce || ciphertext || tag.


def _flip(data: bytes, bit: int) -> bytes:
    altered = bytearray(data)
    altered[bit // 8] ^= 1 << (bit % 8)
    return bytes(altered)


def _unwraps(wrapper: _aead.KeyWrapper, wrapped: bytes, associated_data: bytes) -> bool:
    try:
        wrapper.unwrap(wrapped, associated_data)
    except sealstore.DecryptionError:
        return False
    return True


def test_wrap_unwrap_round_trip() -> None:
    """unwrap(wrap(k, ad), ad) == k, and the wrapped form is 60 bytes."""
    wrapper = _aead.KeyWrapper(os.urandom(32))
    data_key = os.urandom(32)
    wrapped = wrapper.wrap(data_key, b"mode=customer")
    assert len(wrapped) == _aead.WRAPPED_KEY_SIZE == 60
    assert wrapper.unwrap(wrapped, b"mode=customer") == data_key


def test_wrap_layout_is_nonce_then_gcm() -> None:
    """A wrapped key is a 12-byte nonce then AES-256-GCM of the key, in both directions."""
    kek = os.urandom(32)
    data_key = os.urandom(32)
    wrapper = _aead.KeyWrapper(kek)
    gcm = _aead.Gcm(kek)
    wrapped = wrapper.wrap(data_key, b"ad")
    assert gcm.open(wrapped[:12], wrapped[12:], b"ad") == data_key
    nonce = os.urandom(12)
    assert wrapper.unwrap(nonce + gcm.seal(nonce, data_key, b"ad"), b"ad") == data_key


def test_wrap_is_randomized() -> None:
    """Wrapping one key twice gives different outputs (fresh nonces)."""
    wrapper = _aead.KeyWrapper(os.urandom(32))
    data_key = os.urandom(32)
    assert wrapper.wrap(data_key, b"") != wrapper.wrap(data_key, b"")


@pytest.mark.parametrize("other_ad", [b"", b"mode=managed", b"mode=customer\x00", b"Mode=customer"])
def test_unwrap_binds_associated_data(other_ad: bytes) -> None:
    """A key wrapped under one associated data does not unwrap under another."""
    wrapper = _aead.KeyWrapper(os.urandom(32))
    wrapped = wrapper.wrap(os.urandom(32), b"mode=customer")
    with pytest.raises(sealstore.DecryptionError):
        wrapper.unwrap(wrapped, other_ad)


def test_unwrap_refuses_wrong_kek() -> None:
    """A key wrapped under one key-encryption key does not unwrap under another."""
    wrapped = _aead.KeyWrapper(os.urandom(32)).wrap(os.urandom(32), b"ad")
    with pytest.raises(sealstore.DecryptionError):
        _aead.KeyWrapper(os.urandom(32)).unwrap(wrapped, b"ad")


@pytest.mark.parametrize("length", [0, 1, 12, 28, 59, 61, 92])
def test_unwrap_refuses_wrong_length(length: int) -> None:
    """A wrapped key of any length but 60 bytes raises DecryptionError."""
    wrapper = _aead.KeyWrapper(os.urandom(32))
    wrapped = wrapper.wrap(os.urandom(32), b"ad")
    candidate = (wrapped * 2)[:length]
    with pytest.raises(sealstore.DecryptionError):
        wrapper.unwrap(candidate, b"ad")


def test_unwrap_refuses_every_bit_flip() -> None:
    """Flipping any single bit of a wrapped key (nonce, ciphertext or tag) is detected."""
    wrapper = _aead.KeyWrapper(os.urandom(32))
    wrapped = wrapper.wrap(os.urandom(32), b"ad")
    accepted = [
        bit for bit in range(len(wrapped) * 8) if _unwraps(wrapper, _flip(wrapped, bit), b"ad")
    ]
    assert accepted == []


@pytest.mark.parametrize("size", [0, 16, 24, 31, 33, 64])
def test_key_wrapper_refuses_bad_kek_size(size: int) -> None:
    """A key-encryption key that is not 32 bytes is refused at construction."""
    with pytest.raises(sealstore.InvalidKeyError):
        _aead.KeyWrapper(bytes(size))


def test_key_wrapper_repr_hides_key() -> None:
    """The repr of a KeyWrapper never shows its key."""
    kek = os.urandom(32)
    text = repr(_aead.KeyWrapper(kek))
    assert kek.hex() not in text
    assert "hidden" in text
