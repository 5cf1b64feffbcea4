"""The sealed-document codec: a document sealed under a root key for one purpose.

Bytes in, bytes out, with no I/O, so any place that keeps a document (a file, an object in
a bucket) stores the same layout. Layout (integers big-endian)::

    magic "SLKS" (4) | version 1 (1) | scrypt log2 N, r, p (3; zeros for a raw root key)
    | salt (16) | nonce (12) | AES-256-GCM ciphertext and tag of the document

The sealing key is HKDF-SHA256 of the root key (or of its scrypt stretch) with the salt and
a purpose label; the associated data is the purpose label followed by the first 24 bytes.
"""

from __future__ import annotations

import os
from typing import Final

from sealstore import _aead
from sealstore.errors import DecryptionError, KeystoreError, RootKeyError
from sealstore.sealed.root import RootKey

__all__ = ["MAX_DOCUMENT_SIZE", "SALT_SIZE", "open_document", "seal_document"]

_MAGIC: Final = b"SLKS"
_VERSION: Final = 1
SALT_SIZE: Final = 16
"""Bytes of the salt drawn when a document is first sealed, kept by every later seal."""
_PREFIX_SIZE: Final = 4 + 1 + 3 + SALT_SIZE
MAX_DOCUMENT_SIZE: Final = 64 << 20
"""A sealed document larger than this is refused as corrupt rather than read."""


def seal_document(
    root_key: RootKey, purpose: bytes, document: bytes, salt: bytes | None = None
) -> bytes:
    """``document`` sealed under ``root_key`` for ``purpose``.

    ``salt`` is the salt of the document being replaced (from :func:`open_document`), so a
    passphrase root key is not stretched again; ``None`` draws a new one.

    >>> root = RootKey.from_bytes(bytes(32))
    >>> data = seal_document(root, b"example", b"hello")
    >>> open_document(root, b"example", data, "the example")[1]
    b'hello'
    """
    if salt is None:
        salt = os.urandom(SALT_SIZE)
    elif len(salt) != SALT_SIZE:
        raise ValueError(f"a sealed document's salt is {SALT_SIZE} bytes")
    log2_n, r, p = root_key.kdf_parameters
    prefix = _MAGIC + bytes((_VERSION, log2_n, r, p)) + salt
    key = root_key.derive(purpose, salt, (log2_n, r, p))
    return prefix + _aead.seal_blob(key, document, purpose + prefix)


def open_document(
    root_key: RootKey, purpose: bytes, data: bytes, where: str
) -> tuple[bytes, bytes]:
    """``(salt, document)`` of the sealed ``data``; ``where`` names it in errors.

    Raises :class:`~sealstore.KeystoreError` for data that is not a sealed document (or of
    a newer version, or too large) and :class:`~sealstore.RootKeyError` when ``root_key`` does
    not open it (another key, or altered data).
    """
    if len(data) > MAX_DOCUMENT_SIZE or len(data) < _PREFIX_SIZE or data[:4] != _MAGIC:
        raise KeystoreError(f"{where} is not a sealed sealstore key file")
    if data[4] != _VERSION:
        raise KeystoreError(
            f"{where} has sealed-file version {data[4]}; upgrade sealstore to read it"
        )
    prefix, salt = data[:_PREFIX_SIZE], data[8:_PREFIX_SIZE]
    key = root_key.derive(purpose, salt, (data[5], data[6], data[7]))
    try:
        return salt, _aead.open_blob(key, data[_PREFIX_SIZE:], purpose + prefix)
    except DecryptionError:
        raise RootKeyError(
            f"the root key does not open {where}: it is not the key the file was "
            "sealed with, or the file was altered"
        ) from None
