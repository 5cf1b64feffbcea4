"""Key providers: who holds the key that wraps each object's data key."""

from __future__ import annotations

from typing import TypeAlias

from sealstore.keys.customer import CustomerKeys

__all__ = ["CustomerKeys", "KeyProvider"]

KeyProvider: TypeAlias = CustomerKeys
"""Every provider sealstore accepts: a closed union, dispatched with ``match``.

One provider serves one mode, so a function typed with this union cannot be handed two
conflicting ways of supplying keys.
"""
