"""What the core asks of every key provider, and nothing more.

The envelope and the store work with any provider through these six methods; none of them
ever tests which provider it holds. ``key_ref`` is the provider's key reference, stored in
the header (layouts in ``docs/format.md``); the associated data of every wrap is
``immutable || u16 len(key_ref) || key_ref`` (:func:`sealstore.header.key_binding`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Protocol

from sealstore.header import Header, Mode

__all__ = ["Provider"]


class Provider(Protocol):
    """The provider side of the envelope: wrap, unwrap, describe, account, compare."""

    mode: ClassVar[Mode]
    """The one mode whose objects this provider writes and reads."""
    per_request: ClassVar[bool]
    """Whether the key is supplied on every request (like SSE-C), so never a store default."""

    def wrap_data_key(
        self, data_key: bytes, immutable: bytes, context: Mapping[str, str]
    ) -> tuple[bytes, bytes]:
        """Wrap a new object's data key; return ``(key ref, wrapped key)``.

        ``immutable`` is the object's immutable header fields, ``context`` its encryption
        context.
        """
        ...

    def unwrap_data_key(self, header: Header) -> bytes:
        """The data key of a parsed header written in this provider's mode."""
        ...

    def rewrap_data_key(self, header: Header, source: object) -> tuple[bytes, bytes] | None:
        """A new ``(key ref, wrapped key)`` for ``header``, made without unwrapping the data
        key (a KMS re-encrypting its blob), or ``None``: unwrap with ``source``, then wrap.

        ``source`` is the provider the rewrap reads the object with.
        """
        ...

    def record_plaintext_bytes(self, key_ref: bytes, size: int) -> None:
        """Account for ``size`` bytes encrypted under the data key wrapped with ``key_ref``,
        once the object's size is known (bucket keys are replaced after so many bytes)."""
        ...

    def is_current(self, key_ref: bytes) -> bool:
        """Whether a data key wrapped with ``key_ref`` is already under the key this provider
        wraps new data keys with (a rewrap would change nothing but the wrapping)."""
        ...

    @staticmethod
    def describe_key_ref(key_ref: bytes) -> tuple[str | None, str | None]:
        """``(key id, key version)`` named by a key reference, without using any key: what
        :meth:`sealstore.EncryptedStore.head` reports. Raises
        :class:`~sealstore.FormatError` for a malformed reference."""
        ...
