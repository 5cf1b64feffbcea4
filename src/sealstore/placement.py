"""Where an object's header lives: in the backend's metadata (*detached*) or before the body
(*inline*).

Every door that stores objects (the store, the S3 client) places headers with this codec, so
each reads what the others wrote. Where the backend keeps metadata, the header goes there
when it fits: ``{METADATA_KEY: "detached:" + base64(header)}``. A listing then knows plaintext
sizes, a ranged read is one request, and a rewrap rewrites only the metadata. Otherwise the
header is written in front of the body, and on backends with metadata the object is marked
``{METADATA_KEY: "inline"}``; an object without the marker on such a backend is plaintext.
The layout is in ``docs/format.md`` ("Header placement").

>>> placement, metadata = place(b"SEAL...", keeps_metadata=True)
>>> placement, metadata
('detached', {'sealstore': 'detached:U0VBTC4uLg=='})
>>> read_marker(metadata, "name")
('detached', b'SEAL...')
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Final, Literal

from typing_extensions import Buffer

from sealstore.errors import FormatError
from sealstore.header import MAGIC, PREFIX_SIZE, Header, parse_header

__all__ = [
    "MAX_METADATA_HEADER",
    "METADATA_KEY",
    "Placement",
    "inline_metadata",
    "looks_inline",
    "parse_detached_header",
    "place",
    "read_marker",
]

METADATA_KEY: Final = "sealstore"
"""The metadata key that marks an encrypted object and holds a detached header."""
MAX_METADATA_HEADER: Final = 1536
"""Longest base64 header kept in metadata (S3 allows 2 KB of user metadata in all)."""
_DETACHED: Final = "detached:"
_INLINE: Final = "inline"

Placement = Literal["inline", "detached"]


def place(header: bytes, *, keeps_metadata: bool) -> tuple[Placement, dict[str, str] | None]:
    """Where ``header`` goes on a backend, and the metadata to store with the object.

    ``"detached"``: the metadata holds the header and the body is stored alone. ``"inline"``:
    the header is stored in front of the body; the metadata (``None`` on a backend that keeps
    none) marks the object as encrypted.
    """
    if keeps_metadata:
        encoded = base64.b64encode(header).decode("ascii")
        if len(encoded) <= MAX_METADATA_HEADER:
            return "detached", {METADATA_KEY: _DETACHED + encoded}
    return "inline", inline_metadata(keeps_metadata=keeps_metadata)


def inline_metadata(*, keeps_metadata: bool) -> dict[str, str] | None:
    """The metadata of an object whose header is stored in front of its body."""
    return {METADATA_KEY: _INLINE} if keeps_metadata else None


def read_marker(metadata: Mapping[str, str], name: str) -> tuple[Placement | None, bytes | None]:
    """What an object's metadata says of its header: ``(placement, detached header bytes)``.

    ``(None, None)``: no marker, the object is not encrypted (on a backend that keeps
    metadata). ``("inline", None)``: the header is in front of the body. Raises
    :class:`~sealstore.FormatError` for a marker that is damaged or unknown.
    """
    marker = metadata.get(METADATA_KEY)
    if marker is None:
        return None, None
    if marker.startswith(_DETACHED):
        try:
            return "detached", base64.b64decode(marker[len(_DETACHED) :], validate=True)
        except (binascii.Error, ValueError):
            raise FormatError(
                f"object {name!r} has a malformed sealstore header in its metadata"
            ) from None
    if marker != _INLINE:
        raise FormatError(f"object {name!r} has an unknown sealstore metadata marker")
    return "inline", None


def looks_inline(prefix: bytes) -> bool:
    """Whether the first ``PREFIX_SIZE`` bytes of an object can start an inline header."""
    return len(prefix) >= PREFIX_SIZE and prefix[:4] == MAGIC


def parse_detached_header(header: Buffer) -> Header:
    """Parse header bytes kept apart from their body; they must hold exactly one header."""
    data = memoryview(header).cast("B")
    parsed = parse_header(data)
    if parsed.size != len(data):
        raise FormatError("malformed header: a detached header has bytes after its end")
    return parsed
