"""Key management services: the :class:`KmsClient` protocol and its implementations.

A KMS holds master keys that never leave it. sealstore asks it for data keys (a plaintext
key and the same key encrypted under a master key: the *blob*), and later to decrypt a blob.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import attrs

__all__ = ["AwsKms", "DataKey", "KeyPolicy", "KmsClient", "LocalKms"]


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

    def reencrypt(
        self,
        key_id: str,
        blob: bytes,
        context: Mapping[str, str],
        new_key_id: str,
        *,
        principal: str,
    ) -> tuple[str, bytes]:
        """The same data key as a blob under ``new_key_id`` (for the same key, under its
        newest material), without the plaintext leaving the KMS: ``(key id, new blob)``."""
        ...

    def default_key_id(self, *, principal: str) -> str:
        """The key used when a caller names none, created on first use (like ``aws/s3``)."""
        ...


# Imported last: aws.py imports DataKey from this module. It imports no boto3.
from sealstore.kms.aws import AwsKms  # noqa: E402
from sealstore.kms.local import LocalKms  # noqa: E402
from sealstore.kms.policy import KeyPolicy  # noqa: E402
