"""``ManagedKeys``: a keyring of master keys managed by the library (like SSE-S3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, final

import attrs

from sealstore.header import Header, Mode

__all__ = ["ManagedKeys"]


@final
@attrs.frozen(eq=False)
class ManagedKeys:
    """Placeholder for the managed-keys provider; its keyring is being built."""

    mode: ClassVar[Mode] = Mode.MANAGED

    def wrap_data_key(
        self, data_key: bytes, immutable: bytes, context: Mapping[str, str]
    ) -> tuple[bytes, bytes]:
        raise NotImplementedError

    def unwrap_data_key(self, header: Header) -> bytes:
        raise NotImplementedError
