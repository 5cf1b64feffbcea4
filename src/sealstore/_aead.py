"""The only module that calls AEAD primitives.

Everything that encrypts or authenticates bytes goes through here: the chunked body
(C2SP chunked encryption, instantiation Cobblestone-256), random access to single chunks of
that body, and the AES-256-GCM wrap of data keys. ``cryptography``'s ``InvalidTag`` never
leaves this module: it becomes :class:`~sealstore.errors.DecryptionError`.

Nonces, salts and keys are generated here and are never parameters of the public API.
"""

from __future__ import annotations

import hmac
import os
from typing import Final, final

from cryptography.cobblestone import Cobblestone256Decryptor, Cobblestone256Encryptor
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA512
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from sealstore.errors import DecryptionError, InvalidKeyError

KEY_SIZE: Final = 32
"""Bytes in every key handled here: data keys, master keys, customer keys."""
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
CHUNK_SIZE: Final = 16384
"""Plaintext bytes in every chunk but the last, which is always shorter."""
SEALED_CHUNK_SIZE: Final = CHUNK_SIZE + TAG_SIZE
SALT_SIZE: Final = 24
COMMITMENT_SIZE: Final = 32
BODY_PREFIX_SIZE: Final = SALT_SIZE + COMMITMENT_SIZE
MAX_CHUNKS: Final = 1 << 38
WRAPPED_KEY_SIZE: Final = NONCE_SIZE + KEY_SIZE + TAG_SIZE

_AEAD_NAME: Final = b"AEAD_AES_256_GCM"
_INFO_PREFIX: Final = b"c2sp.org/chunked-encryption@v1+" + _AEAD_NAME + b"\x00"
_DERIVED_SIZE: Final = KEY_SIZE + NONCE_SIZE + COMMITMENT_SIZE
_TAMPERED: Final = (
    "the object failed authentication: it was modified, truncated, or the key is wrong"
)


def body_size(plaintext_size: int) -> int:
    """Bytes of the chunked body that encrypts ``plaintext_size`` bytes."""
    return BODY_PREFIX_SIZE + plaintext_size + TAG_SIZE * (plaintext_size // CHUNK_SIZE + 1)


def plaintext_size(body_size: int) -> int:
    """Plaintext bytes in a chunked body of ``body_size`` bytes.

    Raises :class:`DecryptionError` for a size no honest encryption produces (a truncated or
    extended body), since the size alone proves the body was altered.
    """
    sealed = body_size - BODY_PREFIX_SIZE
    full, last = divmod(sealed, SEALED_CHUNK_SIZE)
    if sealed < TAG_SIZE or last < TAG_SIZE or full >= MAX_CHUNKS:
        raise DecryptionError(_TAMPERED)
    return full * CHUNK_SIZE + last - TAG_SIZE


def _check_key(key: bytes) -> None:
    if len(key) != KEY_SIZE:
        raise InvalidKeyError(f"keys must be {KEY_SIZE} bytes, got {len(key)}")


@final
class Gcm:
    """AES-256-GCM under one key, with every failure mapped to :class:`DecryptionError`."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        _check_key(key)
        self._aead = AESGCM(key)

    def seal(self, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
        """Ciphertext followed by the 16-byte tag."""
        return self._aead.encrypt(nonce, plaintext, associated_data)

    def open(self, nonce: bytes, sealed: bytes | memoryview, associated_data: bytes) -> bytes:
        """The plaintext of ``sealed`` (ciphertext then tag), or :class:`DecryptionError`."""
        try:
            return self._aead.decrypt(nonce, sealed, associated_data)
        except (InvalidTag, ValueError):
            raise DecryptionError(_TAMPERED) from None

    def __repr__(self) -> str:
        return "Gcm(<key hidden>)"


@final
class KeyWrapper:
    """Wraps 32-byte data keys under a key-encryption key, bound to associated data.

    Each wrap draws a random 96-bit nonce: ``nonce || ciphertext || tag`` (60 bytes).
    """

    __slots__ = ("_aead",)

    def __init__(self, kek: bytes) -> None:
        _check_key(kek)
        # AESGCM is used directly rather than through Gcm: this runs once per object.
        self._aead = AESGCM(kek)

    def wrap(self, data_key: bytes, associated_data: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, data_key, associated_data)

    def unwrap(self, wrapped: bytes, associated_data: bytes) -> bytes:
        if len(wrapped) != WRAPPED_KEY_SIZE:
            raise DecryptionError(_TAMPERED)
        try:
            return self._aead.decrypt(wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:], associated_data)
        except InvalidTag:
            raise DecryptionError(_TAMPERED) from None

    def __repr__(self) -> str:
        return "KeyWrapper(<key hidden>)"


def encrypt_body_into(
    key: bytes, context: bytes, plaintext: bytes | memoryview, out: memoryview
) -> None:
    """Encrypt a whole message into ``out``, which is exactly ``body_size(len)`` bytes."""
    _check_key(key)
    encryptor = Cobblestone256Encryptor(key, context)
    written = encryptor.update_into(plaintext, out)
    tail = encryptor.finalize()
    out[written : written + len(tail)] = tail


def seal_blob(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """AES-256-GCM under a random 96-bit nonce: ``nonce || ciphertext || tag``.

    For documents sealed at rest (keyrings, key stores), not for object bodies.
    """
    nonce = os.urandom(NONCE_SIZE)
    return nonce + Gcm(key).seal(nonce, plaintext, associated_data)


def open_blob(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    """The plaintext of a :func:`seal_blob` result, or :class:`DecryptionError`."""
    if len(sealed) < NONCE_SIZE + TAG_SIZE:
        raise DecryptionError(_TAMPERED)
    return Gcm(key).open(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], associated_data)


def seal_small(
    data_key: bytes, context: bytes, header: bytes, plaintext: bytes | memoryview
) -> bytes:
    """``header`` followed by the body encrypting ``plaintext``, as one bytes object.

    For small objects, where concatenating is cheaper than building in place. ``data_key``
    is a fresh 32-byte key drawn by the caller, so its length is not checked again.
    """
    encryptor = Cobblestone256Encryptor(data_key, context)
    return b"".join((header, encryptor.update(plaintext), encryptor.finalize()))


def open_small(data_key: bytes, context: bytes, body: bytes | memoryview) -> bytes:
    """Decrypt a whole small body into new bytes (see :func:`decrypt_body_into` for large).

    ``data_key`` is an unwrapped data key, whose length the unwrap already fixed.
    """
    decryptor = Cobblestone256Decryptor(data_key, context)
    try:
        head = decryptor.update(body)
        tail = decryptor.finalize()
    except InvalidTag:
        raise DecryptionError(_TAMPERED) from None
    return head + tail if head else tail


def decrypt_body_into(
    key: bytes, context: bytes, body: bytes | memoryview, out: memoryview
) -> None:
    """Decrypt a whole body into ``out``, which is exactly ``plaintext_size(len)`` bytes."""
    _check_key(key)
    decryptor = Cobblestone256Decryptor(key, context)
    try:
        written = decryptor.update_into(body, out)
        tail = decryptor.finalize()
    except InvalidTag:
        raise DecryptionError(_TAMPERED) from None
    out[written : written + len(tail)] = tail


@final
class StreamEncryptor:
    """Encrypts one message pushed in pieces; output is exactly ``body_size`` bytes."""

    __slots__ = ("_encryptor",)

    def __init__(self, key: bytes, context: bytes) -> None:
        _check_key(key)
        self._encryptor = Cobblestone256Encryptor(key, context)

    @staticmethod
    def max_output(input_size: int) -> int:
        """A buffer this large holds what one ``update_into`` of ``input_size`` bytes writes,
        whatever was buffered before (less than a chunk)."""
        return BODY_PREFIX_SIZE + (input_size // CHUNK_SIZE + 1) * SEALED_CHUNK_SIZE

    def update_into(self, data: bytes | memoryview, out: bytearray | memoryview) -> int:
        return self._encryptor.update_into(data, out)

    def update(self, data: bytes | memoryview) -> bytes:
        return self._encryptor.update(data)

    def finalize(self) -> bytes:
        return self._encryptor.finalize()


@final
class StreamDecryptor:
    """Decrypts one body pushed in pieces, releasing only authenticated chunks.

    After the first failure every further call fails too, so a caller that keeps reading
    never mistakes a damaged body for a shorter, valid one.
    """

    __slots__ = ("_decryptor", "_failed")

    def __init__(self, key: bytes, context: bytes) -> None:
        _check_key(key)
        self._decryptor = Cobblestone256Decryptor(key, context)
        self._failed = False

    @staticmethod
    def max_output(input_size: int) -> int:
        """A buffer this large holds what one ``update_into`` of ``input_size`` bytes writes,
        whatever was buffered before (less than a sealed chunk)."""
        return (input_size // SEALED_CHUNK_SIZE + 1) * CHUNK_SIZE

    def update_into(self, data: bytes | memoryview, out: bytearray | memoryview) -> int:
        """Decrypt the chunks ``data`` completes into ``out`` (see :meth:`max_output`)."""
        if self._failed:
            raise DecryptionError(_TAMPERED)
        try:
            return self._decryptor.update_into(data, out)
        except InvalidTag:
            self._failed = True
            raise DecryptionError(_TAMPERED) from None

    def finalize(self) -> bytes:
        """The final chunk's plaintext; fails if the body is truncated or altered."""
        if self._failed:
            raise DecryptionError(_TAMPERED)
        self._failed = True  # a finished decryptor accepts nothing more
        try:
            return self._decryptor.finalize()
        except InvalidTag:
            raise DecryptionError(_TAMPERED) from None


@final
class ChunkOpener:
    """Random access to the chunks of one body: checks the commitment, then any chunk.

    ``prefix`` is the body's first 56 bytes (salt and commitment). The commitment is checked
    at construction, before any chunk can be decrypted.
    """

    __slots__ = ("_base_nonce", "_gcm")

    def __init__(self, key: bytes, context: bytes, prefix: bytes) -> None:
        _check_key(key)
        if len(prefix) != BODY_PREFIX_SIZE:
            raise DecryptionError(_TAMPERED)
        salt, commitment = prefix[:SALT_SIZE], prefix[SALT_SIZE:]
        derived = HKDFExpand(SHA512(), _DERIVED_SIZE, _INFO_PREFIX + salt + context).derive(key)
        if not hmac.compare_digest(derived[KEY_SIZE + NONCE_SIZE :], commitment):
            raise DecryptionError(_TAMPERED)
        self._gcm = Gcm(derived[:KEY_SIZE])
        self._base_nonce = int.from_bytes(derived[KEY_SIZE : KEY_SIZE + NONCE_SIZE], "big")

    def open_chunk(self, index: int, sealed: bytes | memoryview) -> bytes:
        """The plaintext of chunk ``index``, given its ciphertext and tag."""
        if not 0 <= index < MAX_CHUNKS or len(sealed) > SEALED_CHUNK_SIZE:
            raise DecryptionError(_TAMPERED)
        nonce = (self._base_nonce ^ index).to_bytes(NONCE_SIZE, "big")
        return self._gcm.open(nonce, sealed, b"")

    def __repr__(self) -> str:
        return "ChunkOpener(<key hidden>)"
