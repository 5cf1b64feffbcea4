"""Key providers: who holds the key that wraps each object's data key.

Every provider has the same two methods, used by the envelope:

``wrap_data_key(data_key, immutable, context) -> (key_ref, wrapped_key)``
    Wrap a fresh data key for a new object. ``immutable`` is the object's immutable header
    fields (see ``docs/format.md``), ``context`` its encryption context.
``unwrap_data_key(header) -> data_key``
    Recover the data key of a parsed header written in the provider's mode.

The associated data of every wrap is ``immutable || u16 len(key_ref) || key_ref``
(:func:`sealstore.header.key_binding`).
"""

from __future__ import annotations

from typing import TypeAlias

from sealstore.keys.customer import CustomerKeys
from sealstore.keys.kms import KmsKeys
from sealstore.keys.managed import ManagedKeys

__all__ = ["CustomerKeys", "KeyProvider", "KmsKeys", "ManagedKeys"]

KeyProvider: TypeAlias = CustomerKeys | ManagedKeys | KmsKeys
"""Every provider sealstore accepts: a closed union of final classes.

One provider serves one mode, so a function typed with this union cannot be handed two
conflicting ways of supplying keys.
"""
