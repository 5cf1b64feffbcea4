"""Wycheproof HMAC-SHA256 vectors through ``sealstore.fingerprint``, and the fingerprints on top.

``vectors/hmac_sha256_test.json`` includes truncated tags: a vector's tag is compared with
the first ``tagSize / 8`` bytes of the full HMAC. Valid vectors must match; invalid ones
(modified tags) must not.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealstore import fingerprint

_FILE = Path(__file__).parent / "vectors" / "hmac_sha256_test.json"


@dataclass(frozen=True)
class MacVector:
    """One MAC test case and the sizes (in bits) of its group."""

    tc_id: int
    comment: str
    result: str
    key_size: int
    tag_size: int
    key: bytes = field(repr=False)
    msg: bytes = field(repr=False)
    tag: bytes = field(repr=False)


def _load() -> tuple[int, list[MacVector]]:
    document = json.loads(_FILE.read_text(encoding="utf-8"))
    vectors = [
        MacVector(
            tc_id=test["tcId"],
            comment=test["comment"],
            result=test["result"],
            key_size=group["keySize"],
            tag_size=group["tagSize"],
            key=bytes.fromhex(test["key"]),
            msg=bytes.fromhex(test["msg"]),
            tag=bytes.fromhex(test["tag"]),
        )
        for group in document["testGroups"]
        for test in group["tests"]
    ]
    return document["numberOfTests"], vectors


_DECLARED_COUNT, VECTORS = _load()
VALID = [v for v in VECTORS if v.result == "valid"]
INVALID = [v for v in VECTORS if v.result == "invalid"]


def _params(vectors: list[MacVector]) -> list[object]:
    return [pytest.param(vector, id=f"tc{vector.tc_id}") for vector in vectors]


def _truncated_mac(vector: MacVector) -> bytes:
    return fingerprint.hmac_sha256(vector.key, vector.msg)[: vector.tag_size // 8]


def test_every_vector_is_loaded() -> None:
    """All 174 vectors load, each valid or invalid, with tags of the declared size."""
    assert len(VECTORS) == _DECLARED_COUNT == 174
    assert len(VALID) + len(INVALID) == len(VECTORS)
    assert all(len(v.tag) * 8 == v.tag_size for v in VECTORS)
    assert all(len(v.key) * 8 == v.key_size for v in VECTORS)


@pytest.mark.parametrize("vector", _params(VALID))
def test_hmac_matches_valid(vector: MacVector) -> None:
    """hmac_sha256 reproduces every valid tag (truncated to the vector's tag size)."""
    assert _truncated_mac(vector) == vector.tag


@pytest.mark.parametrize("vector", _params(INVALID))
def test_hmac_differs_from_invalid(vector: MacVector) -> None:
    """hmac_sha256 never reproduces a modified tag, and matches() says so."""
    mac = _truncated_mac(vector)
    assert mac != vector.tag
    assert not fingerprint.matches(mac, vector.tag)


@pytest.mark.parametrize("vector", _params(VALID[:3]))
def test_hmac_is_full_length(vector: MacVector) -> None:
    """hmac_sha256 returns the full 32-byte tag, whatever the key length."""
    assert len(fingerprint.hmac_sha256(vector.key, vector.msg)) == 32


# Customer-key fingerprints

_KEY = bytes(range(32))
_SALT = bytes(range(100, 100 + fingerprint.SALT_SIZE))


def test_fingerprint_size() -> None:
    """A fingerprint is FINGERPRINT_SIZE (32) bytes."""
    assert fingerprint.FINGERPRINT_SIZE == 32
    assert len(fingerprint.customer_fingerprint(_KEY, _SALT)) == fingerprint.FINGERPRINT_SIZE


def test_fingerprint_is_deterministic() -> None:
    """The same key and salt always give the same fingerprint."""
    first = fingerprint.customer_fingerprint(_KEY, _SALT)
    assert fingerprint.customer_fingerprint(bytes(_KEY), bytes(_SALT)) == first


def test_salt_changes_fingerprint() -> None:
    """Another salt, even one bit away, gives another fingerprint for the same key."""
    reference = fingerprint.customer_fingerprint(_KEY, _SALT)
    others = {
        fingerprint.customer_fingerprint(_KEY, bytes([_SALT[0] ^ 1]) + _SALT[1:]),
        fingerprint.customer_fingerprint(_KEY, os.urandom(fingerprint.SALT_SIZE)),
        fingerprint.customer_fingerprint(_KEY, _SALT[:-1]),
    }
    assert reference not in others
    assert len(others) == 3


def test_key_changes_fingerprint() -> None:
    """Another key gives another fingerprint under the same salt."""
    reference = fingerprint.customer_fingerprint(_KEY, _SALT)
    assert fingerprint.customer_fingerprint(bytes([_KEY[0] ^ 1]) + _KEY[1:], _SALT) != reference
    assert fingerprint.customer_fingerprint(os.urandom(32), _SALT) != reference


def test_fingerprint_is_domain_separated() -> None:
    """A fingerprint is not the bare HMAC of the salt, so it cannot be confused with one."""
    assert fingerprint.customer_fingerprint(_KEY, _SALT) != fingerprint.hmac_sha256(_KEY, _SALT)


def test_fingerprint_does_not_contain_key_or_salt() -> None:
    """Neither the key nor the salt appears in the fingerprint."""
    value = fingerprint.customer_fingerprint(_KEY, _SALT)
    assert _KEY not in value
    assert _SALT not in value


def test_matches_accepts_equal_fingerprints() -> None:
    """matches() is true for a fingerprint and a recomputation of it."""
    stored = fingerprint.customer_fingerprint(_KEY, _SALT)
    assert fingerprint.matches(stored, fingerprint.customer_fingerprint(_KEY, _SALT))


@pytest.mark.parametrize("position", [0, 1, 15, 16, 30, 31])
def test_matches_rejects_one_byte_difference(position: int) -> None:
    """matches() is false when a single byte of the fingerprint differs."""
    stored = fingerprint.customer_fingerprint(_KEY, _SALT)
    altered = bytearray(stored)
    altered[position] ^= 0x80
    assert not fingerprint.matches(stored, bytes(altered))


def test_matches_rejects_other_lengths() -> None:
    """matches() is false for a truncated or extended fingerprint."""
    stored = fingerprint.customer_fingerprint(_KEY, _SALT)
    assert not fingerprint.matches(stored, stored[:-1])
    assert not fingerprint.matches(stored, stored + b"\x00")
    assert not fingerprint.matches(stored, b"")


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=40), st.binary(max_size=40))
def test_matches_is_equality(expected: bytes, actual: bytes) -> None:
    """matches(a, b) is exactly a == b."""
    assert fingerprint.matches(expected, actual) == (expected == actual)
    assert fingerprint.matches(expected, expected)
