"""sealstore: encryption at rest for any storage.

Every object is encrypted with its own AES-256-GCM data key (as a C2SP chunked-encryption
body, so it streams in bounded memory and supports random-access reads), and that data key
is wrapped by a key provider::

    >>> import os, sealstore
    >>> keys = sealstore.CustomerKeys(os.urandom(32))
    >>> blob = sealstore.encrypt(b"attack at dawn", keys, context={"bucket": "orders"})
    >>> sealstore.decrypt(blob, keys, context={"bucket": "orders"})
    b'attack at dawn'
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from sealstore.audit import (
    AuditEvent,
    AuditSink,
    JsonlAuditLog,
    LoggingAuditSink,
    MemoryAuditSink,
)
from sealstore.envelope import (
    EncryptingReader,
    decrypt,
    decrypt_many,
    decrypt_stream,
    encrypt,
    encrypt_detached,
    encrypt_stream,
    open_decrypted,
)
from sealstore.errors import (
    AccessDeniedError,
    AuditLogError,
    BackendError,
    ContextMismatchError,
    DecryptionError,
    FormatError,
    InvalidContextError,
    InvalidDataError,
    InvalidKeyError,
    InvalidKmsRequestError,
    InvalidNameError,
    KeyDisabledError,
    KeyNotFoundError,
    KeyNotTrustedError,
    KeyPendingDeletionError,
    KeyRetiredError,
    KeyStateError,
    KeystoreError,
    KmsError,
    NotEncryptedError,
    ObjectChangedError,
    ObjectNotFoundError,
    ProviderMismatchError,
    RootKeyError,
    SealstoreError,
    WrongKeyError,
)
from sealstore.header import Mode
from sealstore.keys import CustomerKeys, KeyProvider, KmsKeys, ManagedKeys
from sealstore.keys.managed import (
    FileKeyringStore,
    KeyringStore,
    KeyVersion,
    MemoryKeyringStore,
    RotationPolicy,
    S3KeyringStore,
    VersionState,
)
from sealstore.kms import AwsKms, KeyPolicy, LocalKms, VaultTransitKms
from sealstore.reader import DecryptedReader
from sealstore.sealed import RootKey
from sealstore.store import BulkFailure, BulkReport, EncryptedStore, ObjectHead
from sealstore.writer import EncryptedWriter

try:
    __version__ = _version("sealstore")
except _PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "AccessDeniedError",
    "AuditEvent",
    "AuditLogError",
    "AuditSink",
    "AwsKms",
    "BackendError",
    "BulkFailure",
    "BulkReport",
    "ContextMismatchError",
    "CustomerKeys",
    "DecryptedReader",
    "DecryptionError",
    "EncryptedStore",
    "EncryptedWriter",
    "EncryptingReader",
    "FileKeyringStore",
    "FormatError",
    "InvalidContextError",
    "InvalidDataError",
    "InvalidKeyError",
    "InvalidKmsRequestError",
    "InvalidNameError",
    "JsonlAuditLog",
    "KeyDisabledError",
    "KeyNotFoundError",
    "KeyNotTrustedError",
    "KeyPendingDeletionError",
    "KeyPolicy",
    "KeyProvider",
    "KeyRetiredError",
    "KeyStateError",
    "KeyVersion",
    "KeyringStore",
    "KeystoreError",
    "KmsError",
    "KmsKeys",
    "LocalKms",
    "LoggingAuditSink",
    "ManagedKeys",
    "MemoryAuditSink",
    "MemoryKeyringStore",
    "Mode",
    "NotEncryptedError",
    "ObjectChangedError",
    "ObjectHead",
    "ObjectNotFoundError",
    "ProviderMismatchError",
    "RootKey",
    "RootKeyError",
    "RotationPolicy",
    "S3KeyringStore",
    "SealstoreError",
    "VaultTransitKms",
    "VersionState",
    "WrongKeyError",
    "__version__",
    "decrypt",
    "decrypt_many",
    "decrypt_stream",
    "encrypt",
    "encrypt_detached",
    "encrypt_stream",
    "open_decrypted",
]
