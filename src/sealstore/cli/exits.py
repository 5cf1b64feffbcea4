"""The command's exit codes, and which errors lead to which.

======  =====================================================================================
code    meaning
======  =====================================================================================
0       success
1       an error not listed below (storage unreachable, a vault or key store problem, ...)
2       a usage error: an unknown command or option, a missing or malformed argument
3       not found: the object or key named does not exist
4       integrity: an object failed authentication, is not a sealstore object, or is not
        encrypted where it must be (``verify`` found such objects); an audit log is broken
5       refused: access denied, a key disabled, retired or pending deletion, a wrong root key,
        or no key of the object's mode was given (a customer key, for example)
6       partly done: a bulk operation went on past objects that failed (each is listed)
130     interrupted (Ctrl-C)
======  =====================================================================================
"""

from __future__ import annotations

from typing import Final

from sealstore.errors import (
    AccessDeniedError,
    DecryptionError,
    FormatError,
    KeyNotFoundError,
    KeyStateError,
    NotEncryptedError,
    ObjectNotFoundError,
    ProviderMismatchError,
    RootKeyError,
    SealstoreError,
)

OK: Final = 0
ERROR: Final = 1
USAGE: Final = 2
NOT_FOUND: Final = 3
INTEGRITY: Final = 4
REFUSED: Final = 5
PARTIAL: Final = 6
INTERRUPTED: Final = 130


def code_for(error: SealstoreError) -> int:
    """The exit code for a sealstore error that ended the command."""
    if isinstance(error, (ObjectNotFoundError, KeyNotFoundError)):
        return NOT_FOUND
    if isinstance(error, (DecryptionError, FormatError, NotEncryptedError)):
        return INTEGRITY
    if isinstance(error, (AccessDeniedError, KeyStateError, ProviderMismatchError, RootKeyError)):
        return REFUSED
    return ERROR
