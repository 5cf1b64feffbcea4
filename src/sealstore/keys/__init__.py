"""Key providers: who holds the key that wraps each object's data key.

Every provider has the methods of :class:`sealstore.keys.base.Provider`, which is all the
envelope and the store ever use of one: wrap a data key, unwrap it, describe a key
reference, account for bytes written, tell whether a key reference is current.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, TypeAlias

from sealstore.header import Mode
from sealstore.keys.customer import CustomerKeys
from sealstore.keys.kms import KmsKeys
from sealstore.keys.managed import ManagedKeys

__all__ = ["PROVIDER_FOR_MODE", "CustomerKeys", "KeyProvider", "KmsKeys", "ManagedKeys"]

KeyProvider: TypeAlias = CustomerKeys | ManagedKeys | KmsKeys
"""Every provider sealstore accepts: a closed union of final classes.

One provider serves one mode, so a function typed with this union cannot be handed two
conflicting ways of supplying keys.
"""

PROVIDER_FOR_MODE: Final[Mapping[Mode, type[KeyProvider]]] = {
    provider.mode: provider for provider in (ManagedKeys, KmsKeys, CustomerKeys)
}
"""The provider class that reads and writes each mode's objects."""
