"""The blob: a data key wrapped under one material version of one key.

Layout (integers big-endian), documented in ``docs/local-kms.md``::

    version 1 (1) | key id length n (1) | key id (n, ASCII) | material version (4)
    | nonce (12) | AES-256-GCM ciphertext of the data key (32) | tag (16)

The associated data of the wrap is ``"sealstore/local-kms/blob/v1\\0"``, the blob's first
``6 + n`` bytes and the canonical encryption context, so a blob opens only under the key and
material it names, with the context it was made with.
"""

from __future__ import annotations

from typing import Final

from sealstore import _aead
from sealstore.errors import DecryptionError
from sealstore.kms.local.auditing import Call
from sealstore.kms.local.document import Key, Material, Store
from sealstore.kms.policy import InvalidKmsRequestError

__all__ = ["BLOB_VERSION", "MAX_BLOB_SIZE"]

BLOB_VERSION: Final = 1
_MAX_BLOB_KEY_ID: Final = 255
_BLOB_FIXED: Final = 1 + 1 + 4 + _aead.WRAPPED_KEY_SIZE
MAX_BLOB_SIZE: Final = _BLOB_FIXED + _MAX_BLOB_KEY_ID
"""No blob is longer: longer input is refused before it is parsed."""

_BLOB_LABEL: Final = b"sealstore/local-kms/blob/v1\x00"


def check_blob(blob: object) -> None:
    if not isinstance(blob, bytes):
        raise InvalidKmsRequestError("a blob must be bytes")
    if len(blob) > MAX_BLOB_SIZE:
        raise DecryptionError(
            f"the blob is {len(blob)} bytes long; a LocalKms blob is at most {MAX_BLOB_SIZE}"
        )


def _blob_header(key_id: str, version: int) -> bytes:
    encoded = key_id.encode("ascii")
    return bytes((BLOB_VERSION, len(encoded))) + encoded + version.to_bytes(4, "big")


def seal_blob(store: Store, key: Key, material: Material, data_key: bytes, context: bytes) -> bytes:
    header = _blob_header(key.key_id, material.version)
    return header + store.wrapper(key, material).wrap(data_key, _BLOB_LABEL + header + context)


def material_version(key: Key, blob: object) -> int | None:
    """The material version ``blob`` names, if it is a blob of ``key`` (its wrap unchecked:
    the version is authenticated when the blob is opened)."""
    if (
        not isinstance(blob, bytes)
        or not _BLOB_FIXED < len(blob) <= MAX_BLOB_SIZE
        or blob[0] != BLOB_VERSION
        or len(blob) != _BLOB_FIXED + blob[1]
        or blob[2 : 2 + blob[1]] != key.key_id.encode("ascii")
    ):
        return None
    split = 6 + blob[1]
    return int.from_bytes(blob[split - 4 : split], "big")


def _blob_parts(key: Key, blob: bytes, call: Call) -> tuple[Material, bytes, bytes]:
    """The material ``blob`` names, its header and its wrapped key; checks it names ``key``."""
    if len(blob) <= _BLOB_FIXED or blob[0] != BLOB_VERSION or len(blob) != _BLOB_FIXED + blob[1]:
        raise DecryptionError("the blob is not a LocalKms blob (or not of a version this reads)")
    split = 6 + blob[1]
    version = int.from_bytes(blob[split - 4 : split], "big")
    call.version = version
    if blob[2 : split - 4] != key.key_id.encode("ascii"):
        raise DecryptionError(
            f"the blob was not made under key {key.key_id}; decrypt it with the key it names"
        )
    material = key.material(version)
    if material is None:
        raise DecryptionError(
            f"the blob names material version {version}, which key {key.key_id} does not have"
        )
    return material, blob[:split], blob[split:]


def unseal_blob(
    store: Store, key: Key, blob: bytes, context: bytes, call: Call
) -> tuple[Material, bytes]:
    """The material ``blob`` was made under and the data key in it; checks it names ``key``."""
    material, header, wrapped = _blob_parts(key, blob, call)
    return material, store.wrapper(key, material).unwrap(wrapped, _BLOB_LABEL + header + context)
