"""S3's errors, as boto3 raises them: ``botocore.exceptions.ClientError`` with a code and a status.

Code written for S3 catches ``ClientError`` and reads ``error.response["Error"]["Code"]`` and
``error.response["ResponseMetadata"]["HTTPStatusCode"]``. The client raises the same for what
it refuses itself (bad SSE arguments, a missing customer key) and for what sealstore raises
underneath (a KMS denial, a wrong key, tampered ciphertext), so one ``except ClientError``
covers both. The sealstore error, when there is one, is the ``ClientError``'s ``__cause__``.
"""

from __future__ import annotations

from typing import Final, NoReturn

from botocore.exceptions import ClientError

from sealstore.errors import (
    AccessDeniedError,
    ContextMismatchError,
    DecryptionError,
    FormatError,
    InvalidContextError,
    InvalidKeyError,
    KeyNotFoundError,
    KeyNotTrustedError,
    KeyRetiredError,
    KeyStateError,
    NotEncryptedError,
    ProviderMismatchError,
    SealstoreError,
    WrongKeyError,
)

__all__ = ["DECRYPTION_FAILED", "client_error", "raise_client_error", "translated"]

DECRYPTION_FAILED: Final = "DecryptionFailed"
"""The code of a stored object that fails authentication (S3 itself has no such error)."""


def client_error(operation: str, code: str, message: str, status: int = 400) -> ClientError:
    """The ``ClientError`` S3 would raise for ``operation``, with ``code`` and ``status``."""
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}},
    }
    return ClientError(response, operation)  # type: ignore[arg-type]


def raise_client_error(operation: str, code: str, message: str, status: int = 400) -> NoReturn:
    """Raise :func:`client_error`; for call sites that refuse a request."""
    raise client_error(operation, code, message, status)


def translated(error: SealstoreError, operation: str) -> ClientError:
    """The ``ClientError`` for a sealstore error met while serving ``operation``.

    The codes and statuses are those S3 answers in the same situation (ceph's s3-tests
    check them); :data:`DECRYPTION_FAILED` marks what only client-side encryption can meet.
    """
    code, status = _code_and_status(error)
    made = client_error(operation, code, str(error), status)
    made.__cause__ = error
    return made


_CODES: Final[tuple[tuple[type[SealstoreError], str, int], ...]] = (
    # First match wins: subclasses before their bases.
    (WrongKeyError, "InvalidArgument", 400),
    (KeyNotTrustedError, "AccessDenied", 403),
    (AccessDeniedError, "AccessDenied", 403),
    (ContextMismatchError, "InvalidRequest", 400),
    (DecryptionError, DECRYPTION_FAILED, 400),
    (FormatError, DECRYPTION_FAILED, 400),
    (KeyRetiredError, "InvalidRequest", 400),
    (KeyNotFoundError, "KMS.NotFoundException", 400),
    (KeyStateError, "KMS.DisabledException", 400),
    (InvalidKeyError, "InvalidArgument", 400),
    (InvalidContextError, "InvalidArgument", 400),
    (ProviderMismatchError, "InvalidRequest", 400),
    (NotEncryptedError, "InvalidRequest", 400),
)


def _code_and_status(error: SealstoreError) -> tuple[str, int]:
    for kind, code, status in _CODES:
        if isinstance(error, kind):
            return code, status
    return "InternalError", 500
