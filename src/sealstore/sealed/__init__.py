"""Documents sealed at rest under a root key: the managed keyring, the LocalKms key store.

:class:`RootKey` is the secret; :mod:`sealstore.sealed.codec` seals and opens one document
as bytes, for one purpose, wherever it is kept; :class:`SealedFile` keeps one in a local file
replaced atomically under a lock. None of them is a key provider: they hold the master keys
that providers use.
"""

from __future__ import annotations

from sealstore.sealed.codec import MAX_DOCUMENT_SIZE, open_document, seal_document
from sealstore.sealed.file import SealedFile
from sealstore.sealed.root import DEFAULT_WORK_FACTOR, ENV_VARIABLE, RootKey

__all__ = [
    "DEFAULT_WORK_FACTOR",
    "ENV_VARIABLE",
    "MAX_DOCUMENT_SIZE",
    "RootKey",
    "SealedFile",
    "open_document",
    "seal_document",
]
