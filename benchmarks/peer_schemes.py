"""The schemes the peer benchmark compares, each behind the same two small interfaces.

A :class:`Scheme` encrypts and decrypts whole objects in memory; a :class:`Streamer` encrypts
and decrypts from one binary stream into another. Every peer is set up as its documentation
describes for local keys, with the closest match to sealstore's properties where it offers a
choice: Tink's ``KmsEnvelopeAead`` (a fresh AES-256-GCM data key per object, wrapped by a
"remote" AEAD, here a local Tink AES-256-GCM key standing in for the KMS), Tink's streaming
AEAD ``AES256_GCM_HKDF_1MB``, and the AWS Encryption SDK with a raw AES-256 master key and the
key-committing suite without signatures (``AES_256_GCM_HKDF_SHA512_COMMIT_KEY``). Tink's
``Aead`` and Fernet use one key for every object, no per-object data key: they are shown for
information only.

The "KMS" of each envelope peer counts its calls (:class:`Calls`), so the benchmark can
report calls per 10,000 objects.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Final

import aws_encryption_sdk
import tink
from aws_encryption_sdk import Algorithm, CommitmentPolicy
from aws_encryption_sdk.identifiers import EncryptionKeyType, WrappingAlgorithm
from aws_encryption_sdk.key_providers.raw import RawMasterKey, WrappingKey
from cryptography.fernet import Fernet
from tink import aead, streaming_aead

__all__ = [
    "ESDK_SUITE",
    "Calls",
    "Scheme",
    "Streamer",
    "esdk",
    "esdk_caching",
    "esdk_streamer",
    "fernet",
    "tink_aead",
    "tink_envelope",
    "tink_streamer",
    "versions",
]

PIECE: Final = 1 << 20
ESDK_SUITE: Final = Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
"""Key commitment, no ECDSA signature: the suite closest to sealstore's body."""

aead.register()
streaming_aead.register()


@dataclass(frozen=True)
class Scheme:
    """Whole-object encryption in memory."""

    name: str
    encrypt: Callable[[bytes], bytes]
    decrypt: Callable[[bytes], bytes]


@dataclass(frozen=True)
class Streamer:
    """Stream-to-stream encryption."""

    name: str
    encrypt: Callable[[BinaryIO, Any], object]
    decrypt: Callable[[BinaryIO, Any], object]


@dataclass
class Calls:
    """Calls that reached a peer's key-encryption key (its "KMS")."""

    wrap: int = 0
    unwrap: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def versions() -> dict[str, str]:
    """Installed versions of the peers, for the report."""
    from importlib.metadata import version  # noqa: PLC0415 - only for the report

    return {name: version(name) for name in ("tink", "aws-encryption-sdk")}


# --------------------------------------------------------------------------- Tink


class _CountingAead(aead.Aead):  # type: ignore[misc]
    """A Tink AEAD that counts the calls it serves: the stand-in for a remote KMS key."""

    def __init__(self, inner: aead.Aead, calls: Calls) -> None:
        self._inner = inner
        self._calls = calls

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes:
        self._calls.wrap += 1
        return bytes(self._inner.encrypt(plaintext, associated_data))

    def decrypt(self, ciphertext: bytes, associated_data: bytes) -> bytes:
        self._calls.unwrap += 1
        return bytes(self._inner.decrypt(ciphertext, associated_data))


def _tink_aead_primitive() -> aead.Aead:
    handle = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM)
    return handle.primitive(aead.Aead)


def tink_envelope(calls: Calls | None = None) -> Scheme:
    """Tink ``KmsEnvelopeAead``: a fresh AES-256-GCM data key per object."""
    remote = _CountingAead(_tink_aead_primitive(), calls or Calls())
    envelope = aead.KmsEnvelopeAead(aead.aead_key_templates.AES256_GCM, remote)
    return Scheme(
        "Tink KmsEnvelopeAead",
        lambda plaintext: envelope.encrypt(plaintext, b""),
        lambda blob: envelope.decrypt(blob, b""),
    )


def tink_aead() -> Scheme:
    """Tink ``Aead`` (AES256_GCM): one key for every object."""
    primitive = _tink_aead_primitive()
    return Scheme(
        "Tink Aead",
        lambda plaintext: primitive.encrypt(plaintext, b""),
        lambda blob: primitive.decrypt(blob, b""),
    )


class _Unclosed(io.RawIOBase):
    """A writable view of a sink that ignores ``close``: Tink closes what it wraps."""

    def __init__(self, sink: Any) -> None:
        super().__init__()
        self._sink = sink

    def writable(self) -> bool:
        return True

    def write(self, data: Any, /) -> int:
        self._sink.write(data)
        return len(memoryview(data))


def tink_streamer() -> Streamer:
    """Tink streaming AEAD ``AES256_GCM_HKDF_1MB``: segments of 1 MiB, key per stream."""
    handle = tink.new_keyset_handle(streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB)
    primitive = handle.primitive(streaming_aead.StreamingAead)

    def encrypt(src: BinaryIO, dst: Any) -> None:
        with primitive.new_encrypting_stream(_Unclosed(dst), b"") as stream:
            shutil.copyfileobj(src, stream, PIECE)

    def decrypt(src: BinaryIO, dst: Any) -> None:
        with primitive.new_decrypting_stream(src, b"") as stream:
            shutil.copyfileobj(stream, dst, PIECE)

    return Streamer("Tink streaming AES256_GCM_HKDF_1MB", encrypt, decrypt)


# --------------------------------------------------------------------------- AWS ESDK


class _CountingMasterKey(RawMasterKey):  # type: ignore[misc]
    """A raw AES-256 master key that counts the data-key operations it performs."""

    calls: Calls

    def _generate_data_key(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.wrap += 1
        return super()._generate_data_key(*args, **kwargs)

    def _decrypt_data_key(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.unwrap += 1
        return super()._decrypt_data_key(*args, **kwargs)


def _esdk_key(calls: Calls | None) -> _CountingMasterKey:
    key = _CountingMasterKey(
        provider_id="sealstore-bench",
        key_id=b"bench-key",
        wrapping_key=WrappingKey(
            wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
            wrapping_key=os.urandom(32),
            wrapping_key_type=EncryptionKeyType.SYMMETRIC,
        ),
    )
    key.calls = calls or Calls()
    return key


def _esdk_client() -> aws_encryption_sdk.EncryptionSDKClient:
    return aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )


def esdk(calls: Calls | None = None) -> Scheme:
    """AWS Encryption SDK, raw AES-256 master key, a fresh data key per message."""
    client = _esdk_client()
    key = _esdk_key(calls)

    def encrypt(plaintext: bytes) -> bytes:
        blob, _ = client.encrypt(source=plaintext, key_provider=key, algorithm=ESDK_SUITE)
        return bytes(blob)

    def decrypt(blob: bytes) -> bytes:
        plaintext, _ = client.decrypt(source=blob, key_provider=key)
        return bytes(plaintext)

    return Scheme("AWS Encryption SDK", encrypt, decrypt)


def esdk_caching(calls: Calls, max_messages: int) -> tuple[Scheme, Scheme]:
    """The ESDK with its caching materials manager: a writer and a fresh reader, sharing
    one master key, each with its own cache (data keys reused up to ``max_messages``)."""
    client = _esdk_client()
    key = _esdk_key(calls)

    def manager() -> aws_encryption_sdk.CachingCryptoMaterialsManager:
        return aws_encryption_sdk.CachingCryptoMaterialsManager(
            master_key_provider=key,
            cache=aws_encryption_sdk.LocalCryptoMaterialsCache(capacity=100),
            max_age=600.0,
            max_messages_encrypted=max_messages,
        )

    writing, reading = manager(), manager()

    def encrypt(plaintext: bytes) -> bytes:
        blob, _ = client.encrypt(source=plaintext, materials_manager=writing, algorithm=ESDK_SUITE)
        return bytes(blob)

    def decrypt(blob: bytes) -> bytes:
        plaintext, _ = client.decrypt(source=blob, materials_manager=reading)
        return bytes(plaintext)

    name = "AWS Encryption SDK, caching materials manager"
    return Scheme(name, encrypt, lambda blob: b""), Scheme(name, encrypt, decrypt)


def esdk_streamer() -> Streamer:
    """AWS Encryption SDK streaming, default frames (4 KiB), same suite and key."""
    client = _esdk_client()
    key = _esdk_key(None)

    def encrypt(src: BinaryIO, dst: Any) -> None:
        with client.stream(mode="e", source=src, key_provider=key, algorithm=ESDK_SUITE) as s:
            for piece in s:
                dst.write(piece)

    def decrypt(src: BinaryIO, dst: Any) -> None:
        with client.stream(mode="d", source=src, key_provider=key) as s:
            for piece in s:
                dst.write(piece)

    return Streamer("AWS Encryption SDK streaming", encrypt, decrypt)


# --------------------------------------------------------------------------- Fernet


def fernet() -> Scheme:
    """cryptography's Fernet: AES-128-CBC + HMAC, one key for every token, base64 output."""
    token = Fernet(Fernet.generate_key())
    return Scheme("Fernet", token.encrypt, token.decrypt)
