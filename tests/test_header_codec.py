"""The header codec's edges: short input, oversize headers, the cached head of a header."""

from __future__ import annotations

import os

import pytest

import sealstore
from sealstore import header
from sealstore.header import Mode, encode_header, parse_header


@pytest.mark.parametrize("data", [b"", b"SEAL", b"SEAL\x01\x03\x00\x00"])
def test_parse_header_refuses_less_than_a_prefix(data: bytes) -> None:
    with pytest.raises(sealstore.FormatError, match="shorter than a header"):
        parse_header(data)
    with pytest.raises(sealstore.FormatError, match="shorter than a header"):
        parse_header(memoryview(data))
    with pytest.raises(sealstore.FormatError, match="shorter than a header"):
        header.header_size(data)


def test_encode_header_refuses_a_header_over_the_cap() -> None:
    """A header over 16384 bytes is refused, each time it is asked for (nothing cached)."""
    key_ref = os.urandom(8192)
    context_field = header.encode_context({"k": "v" * 8000})
    for _ in range(2):
        with pytest.raises(sealstore.InvalidContextError, match="16384"):
            encode_header(Mode.KMS, context_field, key_ref, os.urandom(1024) * 4)


def test_headers_sharing_a_head_differ_only_in_their_wrapped_keys() -> None:
    """The cached head is reused, and each header still parses back to its own fields."""
    key_ref = os.urandom(48)
    context_field = header.encode_context({"tenant": "acme"})
    first, second = os.urandom(60), os.urandom(60)
    one = encode_header(Mode.CUSTOMER, context_field, key_ref, first)
    two = encode_header(Mode.CUSTOMER, context_field, key_ref, second)
    assert one[:-60] == two[:-60]
    for encoded, wrapped in ((one, first), (two, second)):
        parsed = parse_header(memoryview(encoded + b"body"))
        assert (parsed.mode, parsed.context_field, parsed.key_ref, parsed.wrapped_key) == (
            Mode.CUSTOMER,
            context_field,
            key_ref,
            wrapped,
        )
        assert parsed.context == {"tenant": "acme"}
        assert parsed.size == len(encoded)
    other = encode_header(Mode.MANAGED, context_field, key_ref, first)
    assert other[5] == Mode.MANAGED
    assert other[6:] == one[6:]
