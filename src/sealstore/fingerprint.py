"""Salted HMAC-SHA256 fingerprints of customer keys.

A header written with :class:`~sealstore.CustomerKeys` stores a salt and
``HMAC-SHA256(customer key, label || salt)``. On decryption the fingerprint of the key
offered is compared (in constant time) with the stored one, so a wrong key is reported as
such before any decryption is attempted, and the stored value reveals nothing about the key.
"""

from __future__ import annotations

import hmac as _stdlib_hmac
from typing import Final

from cryptography.hazmat.primitives import hashes, hmac

__all__ = ["FINGERPRINT_SIZE", "SALT_SIZE", "customer_fingerprint", "hmac_sha256", "matches"]

SALT_SIZE: Final = 16
FINGERPRINT_SIZE: Final = 32
_LABEL: Final = b"sealstore/v1 customer key fingerprint\x00"
_SHA256: Final = hashes.SHA256()


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 of ``message`` under ``key`` (the full 32-byte tag)."""
    mac = hmac.HMAC(key, _SHA256)
    mac.update(message)
    return mac.finalize()


def customer_fingerprint(key: bytes, salt: bytes) -> bytes:
    """The fingerprint stored in headers for ``key`` with ``salt``."""
    return hmac_sha256(key, _LABEL + salt)


def matches(expected: bytes, actual: bytes) -> bool:
    """Constant-time comparison of two fingerprints."""
    return _stdlib_hmac.compare_digest(expected, actual)
