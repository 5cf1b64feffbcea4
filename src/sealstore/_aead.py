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


def _derive_chunk_key(key: bytes, context: bytes, salt: bytes) -> tuple[bytes, int, bytes]:
    """The chunk key, the base nonce (as an integer) and the commitment for one body."""
    derived = HKDFExpand(SHA512(), _DERIVED_SIZE, _INFO_PREFIX + salt + context).derive(key)
    base_nonce = int.from_bytes(derived[KEY_SIZE : KEY_SIZE + NONCE_SIZE], "big")
    return derived[:KEY_SIZE], base_nonce, derived[KEY_SIZE + NONCE_SIZE :]


def _checked_prefix(key: bytes, context: bytes, prefix: bytes) -> tuple[bytes, int]:
    """The chunk key and base nonce of a body whose first 56 bytes are ``prefix``.

    The commitment in ``prefix`` is compared in constant time before anything is returned.
    """
    _check_key(key)
    if len(prefix) != BODY_PREFIX_SIZE:
        raise DecryptionError(_TAMPERED)
    chunk_key, base_nonce, commitment = _derive_chunk_key(key, context, prefix[:SALT_SIZE])
    if not hmac.compare_digest(commitment, prefix[SALT_SIZE:]):
        raise DecryptionError(_TAMPERED)
    return chunk_key, base_nonce


def _chunk_nonce(base_nonce: int, index: int) -> bytes:
    return (base_nonce ^ index).to_bytes(NONCE_SIZE, "big")


@final
class ChunkSealer:
    """Seals the chunks of one body by index, in any order, in any process.

    Chunks are independent: chunk ``k`` is sealed under the nonce ``base nonce XOR k``, so
    a body can be written in parts (a multipart upload, a thread pool) by anyone who has
    the data key, the context and the body's first 56 bytes (:attr:`prefix`). The salt is
    drawn here by :meth:`new`; :meth:`resume` continues a body whose prefix was written.
    Callers must seal each index once: the index is the nonce.
    """

    __slots__ = ("_aead", "_base_nonce", "prefix")

    def __init__(self, chunk_key: bytes, base_nonce: int, prefix: bytes) -> None:
        self._aead = AESGCM(chunk_key)
        self._base_nonce = base_nonce
        self.prefix: Final = prefix
        """The body's first 56 bytes: salt and commitment."""

    @classmethod
    def new(cls, key: bytes, context: bytes) -> ChunkSealer:
        """A sealer for a new body, under a fresh random salt."""
        _check_key(key)
        salt = os.urandom(SALT_SIZE)
        chunk_key, base_nonce, commitment = _derive_chunk_key(key, context, salt)
        return cls(chunk_key, base_nonce, salt + commitment)

    @classmethod
    def resume(cls, key: bytes, context: bytes, prefix: bytes) -> ChunkSealer:
        """A sealer for the body that starts with ``prefix``, whose commitment is checked."""
        chunk_key, base_nonce = _checked_prefix(key, context, prefix)
        return cls(chunk_key, base_nonce, bytes(prefix))

    def seal_chunk(self, index: int, plaintext: bytes | memoryview) -> bytes:
        """Chunk ``index`` sealed: ciphertext and tag. A final chunk is shorter than 16384."""
        if not 0 <= index < MAX_CHUNKS or len(plaintext) > CHUNK_SIZE:
            raise ValueError("a chunk index is below 2^38 and a chunk at most 16384 bytes")
        return self._aead.encrypt(_chunk_nonce(self._base_nonce, index), plaintext, b"")

    def seal_run_into(
        self, first: int, plaintext: bytes | memoryview, out: bytearray | memoryview, *, final: bool
    ) -> int:
        """Seal consecutive chunks starting at index ``first`` into ``out``; bytes written.

        Without ``final``, ``plaintext`` must be whole chunks. With ``final``, the run ends
        the body: its last chunk is the short final one (empty when ``plaintext`` is a
        multiple of 16384 bytes). ``out`` needs :func:`sealed_run_size` bytes.
        """
        size = len(plaintext)
        full, rest = divmod(size, CHUNK_SIZE)
        if rest and not final:
            raise ValueError("a run that does not end the body must be whole chunks")
        count = full + 1 if final else full
        if first < 0 or first + count > MAX_CHUNKS:
            raise ValueError("chunk indices are below 2^38")
        view = memoryview(plaintext)
        target = memoryview(out)
        encrypt_into = self._aead.encrypt_into
        base_nonce = self._base_nonce
        written = 0
        # The nonce is computed inline (as _chunk_nonce does) and whole chunks skip len():
        # this loop runs once per 16 KiB of every large object and stream.
        at = 0
        for index in range(first, first + full):
            encrypt_into(
                (base_nonce ^ index).to_bytes(NONCE_SIZE, "big"),
                view[at : at + CHUNK_SIZE],
                None,
                target[written : written + SEALED_CHUNK_SIZE],
            )
            at += CHUNK_SIZE
            written += SEALED_CHUNK_SIZE
        if count > full:
            end = written + rest + TAG_SIZE
            encrypt_into(
                _chunk_nonce(base_nonce, first + full), view[at:], None, target[written:end]
            )
            written = end
        return written

    def __repr__(self) -> str:
        return "ChunkSealer(<key hidden>)"


def sealed_run_size(plaintext_size: int, *, final: bool) -> int:
    """Bytes :meth:`ChunkSealer.seal_run_into` writes for ``plaintext_size`` bytes."""
    count = plaintext_size // CHUNK_SIZE + (1 if final else 0)
    return plaintext_size + TAG_SIZE * count


@final
class ChunkOpener:
    """Random access to the chunks of one body: checks the commitment, then any chunk.

    ``prefix`` is the body's first 56 bytes (salt and commitment). The commitment is checked
    at construction, before any chunk can be decrypted.
    """

    __slots__ = ("_aead", "_base_nonce")

    def __init__(self, key: bytes, context: bytes, prefix: bytes) -> None:
        chunk_key, self._base_nonce = _checked_prefix(key, context, prefix)
        self._aead = AESGCM(chunk_key)

    def open_chunk(self, index: int, sealed: bytes | memoryview) -> bytes:
        """The plaintext of chunk ``index``, given its ciphertext and tag."""
        if not 0 <= index < MAX_CHUNKS or len(sealed) > SEALED_CHUNK_SIZE:
            raise DecryptionError(_TAMPERED)
        try:
            # _chunk_nonce inlined: this runs once per chunk of every random read.
            nonce = (self._base_nonce ^ index).to_bytes(NONCE_SIZE, "big")
            return self._aead.decrypt(nonce, sealed, None)
        except (InvalidTag, ValueError):
            raise DecryptionError(_TAMPERED) from None

    def open_chunk_into(self, index: int, sealed: bytes | memoryview, out: bytearray) -> int:
        """Decrypt chunk ``index`` into ``out`` (at least ``len(sealed) - 16`` bytes); bytes
        written. Nothing is written unless the chunk is authentic."""
        if not 0 <= index < MAX_CHUNKS or not TAG_SIZE <= len(sealed) <= SEALED_CHUNK_SIZE:
            raise DecryptionError(_TAMPERED)
        size = len(sealed) - TAG_SIZE
        try:
            self._aead.decrypt_into(
                _chunk_nonce(self._base_nonce, index),
                sealed,
                None,
                out if len(out) == size else memoryview(out)[:size],
            )
        except InvalidTag:
            raise DecryptionError(_TAMPERED) from None
        return size

    def open_run_into(
        self, first: int, sealed: bytes | memoryview, out: bytearray | memoryview, *, final: bool
    ) -> int:
        """Open consecutive chunks starting at index ``first`` into ``out``; bytes written.

        The reverse of :meth:`ChunkSealer.seal_run_into`: without ``final``, ``sealed`` must be
        whole sealed chunks; with ``final``, its last chunk is the body's short final one.
        ``out`` needs ``len(sealed)`` minus 16 bytes per chunk. A damaged chunk raises
        :class:`DecryptionError`, and then ``out`` may hold plaintext of the run's chunks
        before it, never of the damaged chunk or after.
        """
        full, rest = divmod(len(sealed), SEALED_CHUNK_SIZE)
        if final:
            # The final chunk is always shorter than a full one: a run ending on a chunk
            # boundary was cut there.
            if rest < TAG_SIZE:
                raise DecryptionError(_TAMPERED)
            count = full + 1
        elif rest:
            raise DecryptionError(_TAMPERED)
        else:
            count = full
        if first < 0 or first + count > MAX_CHUNKS:
            raise DecryptionError(_TAMPERED)
        view = memoryview(sealed)
        target = memoryview(out)
        decrypt_into = self._aead.decrypt_into
        base_nonce = self._base_nonce
        written = 0
        at = 0
        try:
            # As in ChunkSealer.seal_run_into: the nonce inline, whole chunks without len().
            for index in range(first, first + full):
                decrypt_into(
                    (base_nonce ^ index).to_bytes(NONCE_SIZE, "big"),
                    view[at : at + SEALED_CHUNK_SIZE],
                    None,
                    target[written : written + CHUNK_SIZE],
                )
                at += SEALED_CHUNK_SIZE
                written += CHUNK_SIZE
            if count > full:
                end = written + rest - TAG_SIZE
                decrypt_into(
                    _chunk_nonce(base_nonce, first + full), view[at:], None, target[written:end]
                )
                written = end
        except InvalidTag:
            raise DecryptionError(_TAMPERED) from None
        return written

    def __repr__(self) -> str:
        return "ChunkOpener(<key hidden>)"
