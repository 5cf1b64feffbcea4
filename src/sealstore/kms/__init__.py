"""Key management services: the :class:`KmsClient` protocol and its implementations.

A KMS holds master keys that never leave it. sealstore asks it for data keys (a plaintext
key and the same key encrypted under a master key: the *blob*), and later to decrypt a blob.
"""

from __future__ import annotations

from sealstore.kms.aws import AwsKms
from sealstore.kms.base import (
    DEFAULT_ALIAS,
    BatchDecryptingKmsClient,
    BatchReencryptingKmsClient,
    DataKey,
    KmsClient,
    ReencryptingKmsClient,
    RotationAwareKmsClient,
)
from sealstore.kms.local import LocalKms
from sealstore.kms.policy import KeyPolicy
from sealstore.kms.vault import VaultTransitKms

__all__ = [
    "DEFAULT_ALIAS",
    "AwsKms",
    "BatchDecryptingKmsClient",
    "BatchReencryptingKmsClient",
    "DataKey",
    "KeyPolicy",
    "KmsClient",
    "LocalKms",
    "ReencryptingKmsClient",
    "RotationAwareKmsClient",
    "VaultTransitKms",
]
