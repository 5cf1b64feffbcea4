"""The object header: what is needed to find and unwrap an object's data key.

The byte layout is specified in ``docs/format.md``; this module is its only encoder and
decoder. Every length is checked against the bytes actually present and against a hard cap
before anything is allocated, so a hostile header costs no more than its own size.
"""

from __future__ import annotations

import enum
import functools
import struct
from collections.abc import Mapping
from typing import Final, NamedTuple, NoReturn

from sealstore.errors import FormatError, InvalidContextError

__all__ = [
    "EMPTY_CONTEXT_FIELD",
    "FORMAT_VERSION",
    "IMMUTABLE_PREFIX",
    "MAGIC",
    "MAX_CONTEXT_SIZE",
    "MAX_HEADER_SIZE",
    "MAX_KEY_REF_SIZE",
    "MAX_WRAPPED_KEY_SIZE",
    "PREFIX_SIZE",
    "Header",
    "Mode",
    "decode_context",
    "encode_context",
    "encode_header",
    "header_size",
    "parse_header",
]

MAGIC: Final = b"SEAL"
FORMAT_VERSION: Final = 1
PREFIX_SIZE: Final = 10
"""magic (4) + version (1) + mode (1) + header length (4)."""
MAX_HEADER_SIZE: Final = 16384
MAX_CONTEXT_SIZE: Final = 8192
"""Cap on the encoded encryption context, its 2-byte length excluded."""
MAX_KEY_REF_SIZE: Final = 4096
MAX_WRAPPED_KEY_SIZE: Final = 1024
_IMMUTABLE_LABEL: Final = b"sealstore/v1\x00"
_MIN_HEADER_SIZE: Final = PREFIX_SIZE + 3 * 2

_PREFIX = struct.Struct(">4sBBI")
_unpack_prefix = _PREFIX.unpack_from
_U16 = struct.Struct(">H")


class Mode(enum.IntEnum):
    """Which kind of provider holds the key that wraps an object's data key."""

    MANAGED = 1
    """A keyring of master keys managed by the library (like SSE-S3)."""
    KMS = 2
    """A key management service (like SSE-KMS)."""
    CUSTOMER = 3
    """A key the caller supplies on every request (like SSE-C)."""


def encode_context(context: Mapping[str, str] | None) -> bytes:
    """The canonical encoding of an encryption context, with its 2-byte length prefix.

    Pairs are sorted by the UTF-8 bytes of their keys; each is ``u16 len, key, u16 len,
    value``. Raises :class:`InvalidContextError` for anything that is not a mapping of
    non-empty strings to strings within the size cap.
    """
    if context is None:
        return EMPTY_CONTEXT_FIELD
    if type(context) is not dict and not isinstance(context, Mapping):
        raise InvalidContextError("the encryption context must be a mapping of str to str")
    if not context:
        return EMPTY_CONTEXT_FIELD
    pairs = []
    try:
        for key, value in context.items():
            if not (type(key) is str or isinstance(key, str)) or not (
                type(value) is str or isinstance(value, str)
            ):
                raise InvalidContextError("encryption context keys and values must be str")
            pairs.append((key.encode(), value.encode()))
    except UnicodeEncodeError:
        raise InvalidContextError(
            "encryption context keys and values must be encodable as UTF-8"
        ) from None
    pairs.sort()
    if not pairs[0][0]:  # the empty key sorts first
        raise InvalidContextError("encryption context keys must not be empty")
    pack = _U16.pack
    try:
        body = b"".join([pack(len(k)) + k + pack(len(v)) + v for k, v in pairs])
    except struct.error:  # a key or value over 65535 bytes: far over the cap
        raise InvalidContextError(
            f"an encryption context key or value is longer than the {MAX_CONTEXT_SIZE}-byte "
            "cap on the whole context"
        ) from None
    if len(body) > MAX_CONTEXT_SIZE:
        raise InvalidContextError(
            f"the encoded encryption context is {len(body)} bytes; at most "
            f"{MAX_CONTEXT_SIZE} are allowed"
        )
    return pack(len(body)) + body


def decode_context(field: bytes) -> dict[str, str]:
    """Decode a context body (without its length prefix), insisting on the canonical form.

    Raises :class:`FormatError` unless every length fits, keys are non-empty, strictly
    increasing and everything is UTF-8: each context has exactly one encoding.
    """
    context: dict[str, str] = {}
    pos, end, previous = 0, len(field), b""
    try:
        while pos < end:
            key_end = pos + 2 + (field[pos] << 8 | field[pos + 1])
            value_end = key_end + 2 + (field[key_end] << 8 | field[key_end + 1])
            if value_end > end:
                raise FormatError("malformed header: an encryption context entry runs past it")
            key = field[pos + 2 : key_end]
            if key <= previous:
                raise FormatError("malformed header: the encryption context is not canonical")
            context[key.decode()] = field[key_end + 2 : value_end].decode()
            pos, previous = value_end, key
    except IndexError:
        raise FormatError("malformed header: an encryption context length runs past it") from None
    except UnicodeDecodeError:
        raise FormatError("malformed header: the encryption context is not UTF-8") from None
    return context


def header_size(prefix: bytes | memoryview) -> int:
    """Validate the first :data:`PREFIX_SIZE` bytes of an object; return the header's size.

    Checks the magic number, version, mode and the declared length against the cap, so a
    reader knows how many bytes to fetch before it fetches them.
    """
    if len(prefix) < PREFIX_SIZE:
        raise FormatError("not a sealstore object: shorter than a header")
    magic, version, mode, size = _PREFIX.unpack_from(prefix)
    if (
        magic != MAGIC
        or version != FORMAT_VERSION
        or mode not in _MODES
        or not _MIN_HEADER_SIZE <= size <= MAX_HEADER_SIZE
    ):
        _refuse_prefix(magic, version, mode, size)
    return size  # type: ignore[no-any-return]


def _refuse_prefix(magic: bytes, version: int, mode: int, size: int) -> NoReturn:
    if magic != MAGIC:
        raise FormatError(
            "not a sealstore object: the magic number is missing (an object stored with its "
            "header in the backend's metadata is the body alone: pass that header as header=)"
        )
    if version != FORMAT_VERSION:
        raise FormatError(
            f"unsupported format version {version}; this sealstore reads version "
            f"{FORMAT_VERSION}: upgrade sealstore to read this object"
        )
    if mode not in _MODES:
        raise FormatError(f"malformed header: unknown mode {mode}")
    raise FormatError(
        f"malformed header: declared length {size} is outside {_MIN_HEADER_SIZE}..{MAX_HEADER_SIZE}"
    )


_MODES: Final = {m.value: m for m in Mode}
IMMUTABLE_PREFIX: Final = {m: _IMMUTABLE_LABEL + bytes((FORMAT_VERSION, m)) for m in Mode}
"""Per mode, the immutable fields before the encoded context: label, version and mode.

``IMMUTABLE_PREFIX[mode] + context_field`` is the body's chunked-encryption context."""
EMPTY_CONTEXT_FIELD: Final = b"\x00\x00"
"""The encoding of an empty (or absent) encryption context."""


def key_binding(immutable: bytes, key_ref: bytes) -> bytes:
    """The associated data of the data key wrap: immutable fields, then the key reference."""
    return immutable + _U16.pack(len(key_ref)) + key_ref


class Header(NamedTuple):
    """A decoded header. ``context_field`` is the context's canonical encoding, as stored.

    A named tuple rather than an attrs class: one is built for every object read, and a
    tuple is the cheapest immutable record Python has. :func:`parse_header` fills the
    derived fields.
    """

    mode: Mode
    context_field: bytes
    key_ref: bytes
    wrapped_key: bytes
    context: Mapping[str, str]
    """The encryption context, decoded from ``context_field``."""
    immutable: bytes
    """The fields fixed for the object's life: the body's chunked-encryption context and the
    start of the data key wrap's associated data (see :data:`IMMUTABLE_PREFIX`)."""
    size: int
    """Bytes of the encoded header."""

    def encode(self) -> bytes:
        """The header's bytes, exactly as stored in front of (or beside) the body."""
        return encode_header(self.mode, self.context_field, self.key_ref, self.wrapped_key)


def encode_header(mode: Mode, context_field: bytes, key_ref: bytes, wrapped_key: bytes) -> bytes:
    """Encode a header from its fields (``context_field`` as :func:`encode_context` made it)."""
    return _header_head(mode, context_field, key_ref, len(wrapped_key)) + wrapped_key


@functools.lru_cache(maxsize=256)
def _header_head(mode: Mode, context_field: bytes, key_ref: bytes, wrapped_size: int) -> bytes:
    """Every byte of a header before the wrapped key itself.

    Only the wrapped key differs between the headers one provider writes with one context,
    so the rest is built once: with a customer key it halved the encoding of a header
    (0.69 to 0.33 us, interleaved timeit A/B in one process, CPU time). The cache is bounded
    and holds nothing secret: modes, encoded contexts and key references are stored in
    every header.
    """
    size = PREFIX_SIZE + len(context_field) + 4 + len(key_ref) + wrapped_size
    if size > MAX_HEADER_SIZE:
        raise InvalidContextError(
            f"the header would be {size} bytes; at most {MAX_HEADER_SIZE} are allowed"
        )
    return b"".join(
        (
            _PREFIX.pack(MAGIC, FORMAT_VERSION, mode, size),
            context_field,
            _U16.pack(len(key_ref)),
            key_ref,
            _U16.pack(wrapped_size),
        )
    )


def parse_header(data: bytes | memoryview) -> Header:
    """Decode a complete header; ``data`` may continue past it (the body is ignored)."""
    # The prefix is checked inline rather than through header_size, and the field lengths
    # are read byte by byte rather than through struct: this runs once per object read, and
    # the two together took 0.2 us off a 1.4 us parse (interleaved timeit A/B of the two
    # versions in one process, CPU time; nox -s bench-peers times the whole round trip).
    if len(data) < PREFIX_SIZE:
        raise FormatError("not a sealstore object: shorter than a header")
    magic, version, mode_value, size = _unpack_prefix(data)
    if (
        magic != MAGIC
        or version != FORMAT_VERSION
        or mode_value not in _MODES
        or not _MIN_HEADER_SIZE <= size <= MAX_HEADER_SIZE
    ):
        _refuse_prefix(magic, version, mode_value, size)
    if len(data) < size:
        raise FormatError("malformed header: the object is shorter than its declared header")
    raw = data[:size] if type(data) is bytes else bytes(data[:size])
    context_size = raw[PREFIX_SIZE] << 8 | raw[PREFIX_SIZE + 1]
    key_ref_at = PREFIX_SIZE + 2 + context_size
    if key_ref_at + 2 > size:
        raise FormatError("malformed header: the encryption context runs past the header")
    key_ref_size = raw[key_ref_at] << 8 | raw[key_ref_at + 1]
    wrapped_at = key_ref_at + 2 + key_ref_size
    if wrapped_at + 2 > size:
        raise FormatError("malformed header: the key reference runs past the header")
    wrapped_size = raw[wrapped_at] << 8 | raw[wrapped_at + 1]
    if wrapped_at + 2 + wrapped_size != size:
        raise FormatError(
            "malformed header: the wrapped data key does not end where the header does"
        )
    if context_size > MAX_CONTEXT_SIZE:
        raise FormatError("malformed header: the encryption context exceeds its cap")
    if not 0 < key_ref_size <= MAX_KEY_REF_SIZE:
        raise FormatError("malformed header: the key reference is empty or exceeds its cap")
    if not 0 < wrapped_size <= MAX_WRAPPED_KEY_SIZE:
        raise FormatError("malformed header: the wrapped data key is empty or exceeds its cap")
    context_field = raw[PREFIX_SIZE:key_ref_at]
    mode = _MODES[mode_value]
    # tuple.__new__ directly: the named tuple's generated __new__ is a Python-level call,
    # and this runs once per object read. It saved about 0.4 us of a 2.8 us parse, some 4 %
    # of a 1 KiB decrypt (9 us), in an interleaved timeit A/B in one process (nox -s bench
    # times the whole round trip, not this part).
    return tuple.__new__(
        Header,
        (
            mode,
            context_field,
            raw[key_ref_at + 2 : wrapped_at],
            raw[wrapped_at + 2 :],
            decode_context(context_field[2:]) if context_size else {},
            IMMUTABLE_PREFIX[mode] + context_field,
            size,
        ),
    )
