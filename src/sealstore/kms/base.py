"""The KMS contract: :class:`KmsClient`, the three operations sealstore asks of a key
management service, and the :class:`DataKey` it answers with.

Re-encryption inside the KMS (``ReEncrypt``) is not among them: the header binds the KMS blob
into the associated data of the data key's wrap, so a rewrap must redo that wrap with the
key-encryption key in hand (``decrypt``, then ``generate_data_key`` under the new key).
Adapters may still offer it (:meth:`LocalKms.reencrypt`, :meth:`AwsKms.reencrypt`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Protocol

import attrs

__all__ = ["DEFAULT_ALIAS", "DataKey", "KmsClient"]

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
