"""The exceptions sealstore raises.

Every exception derives from :class:`SealstoreError`::

    SealstoreError
    ├── FormatError             not a sealstore object, unsupported version, malformed header
    ├── DecryptionError         any authentication failure (tampering, truncation, wrong key)
    │   ├── WrongKeyError       the key given is not the one the object was encrypted under
    │   ├── KeyNotTrustedError  the object names a KMS key the provider does not read
    │   └── ContextMismatchError  the stored encryption context is not the expected one
    ├── ProviderMismatchError   the object was written in another mode than the provider's
    ├── InvalidDataError        data to write is not bytes, a file or an iterable of bytes
    ├── InvalidKeyError         a key given to a provider is unusable (also a ValueError)
    ├── InvalidContextError     an encryption context breaks the rules (also a ValueError)
    ├── AccessDeniedError       a key policy does not let this principal do this
    ├── KeyNotFoundError        no such master key, key version or KMS key
    ├── KeyStateError           the key exists but its state forbids the operation
    │   ├── KeyDisabledError
    │   ├── KeyPendingDeletionError
    │   └── KeyRetiredError     a master key version retired from decryption
    ├── RootKeyError            the root key cannot open the sealed keyring or KMS store
    ├── KeystoreError           a keyring or KMS store cannot be read or written
    ├── KmsError                any other failure reported by a key management service
    │   └── InvalidKmsRequestError  a malformed request to the KMS (also a ValueError)
    ├── ObjectNotFoundError     no object of that name in the storage (also a KeyError)
    ├── InvalidNameError        an object name the storage refuses (also a ValueError)
    ├── NotEncryptedError       a stored object was not encrypted by sealstore
    ├── AuditLogError           an audit log cannot be written or read
    └── BackendError            any other failure reported by the storage
        └── ObjectChangedError  the object changed since it was read (a conditional copy)

Messages say what was expected and what to do. They never contain key material or
plaintext; encryption-context *keys* may be named, their values never are.
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "AuditLogError",
    "BackendError",
    "ContextMismatchError",
    "DecryptionError",
    "FormatError",
    "InvalidContextError",
    "InvalidDataError",
    "InvalidKeyError",
    "InvalidKmsRequestError",
    "InvalidNameError",
    "KeyDisabledError",
    "KeyNotFoundError",
    "KeyNotTrustedError",
    "KeyPendingDeletionError",
    "KeyRetiredError",
    "KeyStateError",
    "KeystoreError",
    "KmsError",
    "NotEncryptedError",
    "ObjectChangedError",
    "ObjectNotFoundError",
    "ProviderMismatchError",
    "RootKeyError",
    "SealstoreError",
    "WrongKeyError",
]


class SealstoreError(Exception):
    """Root of every error raised by sealstore."""


class FormatError(SealstoreError):
    """The bytes are not a sealstore object this version can read.

    Raised for a missing magic number, an unsupported format version or mode, or a header
    whose lengths or fields break the format's rules. Nothing is decrypted before this check.
    """


class DecryptionError(SealstoreError):
    """The object failed authentication: it was modified, truncated, or the key is wrong.

    Deliberately opaque: it does not say which byte or which check failed.
    """


class WrongKeyError(DecryptionError):
    """The key given does not match the one the object was encrypted under.

    Detected from the key fingerprint stored in the header, before any decryption.
    """


class KeyNotTrustedError(DecryptionError):
    """The object names a KMS key the provider is not configured to read.

    A :class:`~sealstore.KmsKeys` reads only objects wrapped under its own key (and the keys in
    its ``trusted_key_ids``), so that whoever can write to the storage cannot pass off an object
    made under a key they control.
    """


class ContextMismatchError(DecryptionError):
    """The object's encryption context differs from the one the caller expects.

    The message names the differing context keys, never their values.
    """

    def __init__(
        self,
        *,
        missing: tuple[str, ...] = (),
        unexpected: tuple[str, ...] = (),
        differing: tuple[str, ...] = (),
        advice: str = "pass the context the object was written with",
    ) -> None:
        self.missing = missing
        self.unexpected = unexpected
        self.differing = differing
        parts = []
        if missing:
            parts.append(f"expected keys absent from the object: {_names(missing)}")
        if unexpected:
            parts.append(f"keys in the object that were not expected: {_names(unexpected)}")
        if differing:
            parts.append(f"keys whose values differ: {_names(differing)}")
        super().__init__(
            "the object's encryption context does not match the expected one ("
            + "; ".join(parts)
            + "); "
            + advice
        )


class InvalidKeyError(SealstoreError, ValueError):
    """A key handed to a provider is unusable (wrong type or length)."""


class InvalidDataError(SealstoreError, TypeError):
    """Data or a stream handed to sealstore cannot be used: not bytes, a binary file or an
    iterable of bytes, or a non-blocking stream (its ``read`` or ``write`` returned ``None``)."""


class ProviderMismatchError(SealstoreError):
    """The object was encrypted in a mode the given key provider does not serve.

    The message names the provider the object needs, e.g. ``ManagedKeys``.
    """


class InvalidContextError(SealstoreError, ValueError):
    """An encryption context is not a mapping of non-empty strings to strings within limits."""


class AccessDeniedError(SealstoreError):
    """A key policy does not allow this principal this operation on this key.

    The message names the principal, the operation and the key id.
    """


class KeyNotFoundError(SealstoreError):
    """No master key, key version or KMS key has the id or alias given."""


class KeyStateError(SealstoreError):
    """The key exists, but its state forbids the operation asked for."""


class KeyDisabledError(KeyStateError):
    """The KMS key is disabled: enable it to use it again."""


class KeyPendingDeletionError(KeyStateError):
    """The KMS key is scheduled for deletion: cancel the deletion to use it again."""


class KeyRetiredError(KeyStateError):
    """The master key version is retired and no longer decrypts: a managed keyring version,
    or a Vault Transit key version below the key's ``min_decryption_version``.

    The message names the version (or ``min_decryption_version``). Rewrap objects before
    retiring the version they use; :meth:`~sealstore.ManagedKeys.reactivate` (or lowering
    ``min_decryption_version``) lets a retired version decrypt again.
    """


class RootKeyError(SealstoreError):
    """The root key given cannot open the sealed keyring or key store: it is the wrong key,
    or the sealed file was altered."""


class KeystoreError(SealstoreError):
    """A keyring or key store could not be read or written (missing, corrupt, or I/O)."""


class KmsError(SealstoreError):
    """A key management service failed in a way no more specific error describes."""


class InvalidKmsRequestError(KmsError, ValueError):
    """A request to the KMS is malformed: a bad principal, alias, key policy, description or
    waiting period. The message says which argument and what is allowed."""


class ObjectNotFoundError(SealstoreError, KeyError):
    """No object of that name exists in the storage."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidNameError(SealstoreError, ValueError):
    """An object name the storage refuses: empty, absolute, with ``..``, NUL, and the like."""


class NotEncryptedError(SealstoreError):
    """A stored object was not encrypted by sealstore, and plaintext reads are not allowed.

    Refusing them keeps an attacker with access to the storage from swapping an encrypted
    object for a plaintext one. Migrate such objects with ``EncryptedStore.encrypt_existing``.
    """


class BackendError(SealstoreError):
    """The storage failed in a way no more specific error describes (I/O, network, service)."""


class AuditLogError(SealstoreError):
    """An audit log could not be written or read.

    Raised for an I/O failure, for a log whose final record is incomplete or unreadable
    (verify it, then repair it if a write was interrupted) and for an event whose record
    would exceed the log's record size cap.
    """


def _names(keys: tuple[str, ...]) -> str:
    return ", ".join(repr(k) for k in keys)


class ObjectChangedError(BackendError):
    """The object changed (its etag differs) since the caller read it: a conditional
    operation was refused so that it would not undo the other writer's change."""
