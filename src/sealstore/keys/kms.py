"""``KmsKeys``: data keys from a key management service (like SSE-KMS)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, final

import attrs

from sealstore.header import Header, Mode

__all__ = ["KmsKeys"]


@final
@attrs.frozen(eq=False)
class KmsKeys:
    """Placeholder for the KMS provider."""

    mode: ClassVar[Mode] = Mode.KMS

    def wrap_data_key(
        self, data_key: bytes, immutable: bytes, context: Mapping[str, str]
    ) -> tuple[bytes, bytes]:
        raise NotImplementedError

    def unwrap_data_key(self, header: Header) -> bytes:
        raise NotImplementedError
