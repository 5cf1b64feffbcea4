"""The KMS contract: :class:`KmsClient`, the three operations sealstore asks of a key
management service, and the :class:`DataKey` it answers with.

More abilities are optional, each a protocol of its own that :class:`~sealstore.KmsKeys`
uses when the client has it: :class:`ReencryptingKmsClient` (re-encryption inside the KMS, so
a rewrap of an object written with a rewrappable key reference never handles the key),
:class:`BatchDecryptingKmsClient` (many blobs opened in one round trip),
:class:`BatchReencryptingKmsClient` (many blobs re-encrypted in one round trip) and
:class:`RotationAwareKmsClient` (whether a blob is under its key's newest material, so a
rewrap after a rotation knows which objects to move).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Protocol, runtime_checkable

import attrs

from sealstore.errors import SealstoreError

__all__ = [
    "DEFAULT_ALIAS",
    "BatchDecryptingKmsClient",
    "BatchReencryptingKmsClient",
    "DataKey",
    "KmsClient",
    "ReencryptingKmsClient",
    "RotationAwareKmsClient",
]

DEFAULT_ALIAS: Final = "alias/sealstore/default"
"""The alias of the key a KMS adapter creates for :meth:`KmsClient.default_key_id`."""


@attrs.frozen
class DataKey:
    """A data key from a KMS: the plaintext key and its encrypted blob.

    ``key_id`` is the master key's id as the KMS reports it (for AWS, the key ARN), which is
    what sealstore stores in the header.
    """

    key_id: str
    plaintext: bytes = attrs.field(repr=False)
    blob: bytes = attrs.field(repr=False)


class KmsClient(Protocol):
    """The operations sealstore needs from a key management service.

    ``principal`` is the caller's identity, for key policies and the audit trail (a service
    that authenticates callers itself, like AWS KMS, records it but decides by its own
    credentials). ``context`` is the KMS encryption context: a blob only decrypts with the
    context it was generated with. Errors are sealstore's: :class:`~sealstore.AccessDeniedError`,
    :class:`~sealstore.KeyNotFoundError`, :class:`~sealstore.KeyDisabledError`,
    :class:`~sealstore.KeyPendingDeletionError`, :class:`~sealstore.DecryptionError` for a
    blob that does not open (wrong context, altered), :class:`~sealstore.KmsError` otherwise.
    """

    def generate_data_key(
        self, key_id: str, context: Mapping[str, str], *, principal: str
    ) -> DataKey:
        """A fresh 32-byte data key and its blob under the master key ``key_id``."""
        ...

    def decrypt(
        self, key_id: str, blob: bytes, context: Mapping[str, str], *, principal: str
    ) -> bytes:
        """The plaintext of a blob made for ``key_id`` with ``context``."""
        ...

    def default_key_id(self, *, principal: str) -> str:
        """The key used when a caller names none, created on first use (like ``aws/s3``)."""
        ...


@runtime_checkable
class ReencryptingKmsClient(Protocol):
    """A KMS that re-encrypts a blob under a key's newest material without revealing it.

    :class:`~sealstore.LocalKms`, :class:`~sealstore.AwsKms` and
    :class:`~sealstore.VaultTransitKms` (within one key) have it.
    """

    def reencrypt(
        self,
        key_id: str,
        blob: bytes,
        context: Mapping[str, str],
        new_key_id: str,
        *,
        principal: str,
    ) -> tuple[str, bytes]:
        """``(key id, new blob)``: the plaintext of ``blob`` under ``new_key_id``, same context."""
        ...


@runtime_checkable
class BatchDecryptingKmsClient(Protocol):
    """A KMS that opens many blobs of one key in one request
    (:meth:`~sealstore.VaultTransitKms.decrypt_many`)."""

    def decrypt_many(
        self,
        key_id: str,
        items: Sequence[tuple[bytes, Mapping[str, str]]],
        *,
        principal: str,
    ) -> list[bytes | SealstoreError]:
        """Each ``(blob, context)``'s plaintext, or the error that item alone failed with."""
        ...


@runtime_checkable
class BatchReencryptingKmsClient(Protocol):
    """A KMS that re-encrypts many blobs of one key in one request
    (:meth:`~sealstore.VaultTransitKms.reencrypt_many`)."""

    def reencrypt_many(
        self,
        key_id: str,
        items: Sequence[tuple[bytes, Mapping[str, str]]],
        new_key_id: str,
        *,
        principal: str,
    ) -> list[tuple[str, bytes] | SealstoreError]:
        """Each ``(blob, context)`` as ``(key id, new blob)`` under ``new_key_id``, or the
        error that item alone failed with."""
        ...


@runtime_checkable
class RotationAwareKmsClient(Protocol):
    """A KMS whose blobs say which material of their key made them, so a rewrap after a
    rotation knows which objects still need moving onto the newest material.

    :class:`~sealstore.LocalKms` and :class:`~sealstore.VaultTransitKms` have it. AWS KMS
    does not need it: it rotates key material transparently, and its ``ReEncrypt`` always
    picks the newest, so a blob's material cannot be told apart from outside.
    """

    def blob_is_current(self, key_id: str, blob: bytes, *, principal: str) -> bool:
        """Whether ``blob``, made for ``key_id``, was made under the key's newest material
        (as far as the client knows: an implementation may cache the newest version
        briefly). A blob that names no material is not current."""
        ...
