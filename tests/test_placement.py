"""The placement codec: where a header lives, as every door writes and reads it."""

from __future__ import annotations

import base64
import os

import pytest

import sealstore
from sealstore.placement import (
    MAX_METADATA_HEADER,
    METADATA_KEY,
    inline_metadata,
    looks_inline,
    parse_detached_header,
    place,
    read_marker,
)


def test_a_header_that_fits_goes_to_metadata_and_reads_back() -> None:
    """A small header is detached as "detached:" + base64, and the marker gives it back."""
    header, _ = sealstore.encrypt_detached(b"x", sealstore.CustomerKeys(os.urandom(32)))
    placement, metadata = place(header, keeps_metadata=True)
    assert placement == "detached"
    assert metadata == {METADATA_KEY: "detached:" + base64.b64encode(header).decode()}
    assert read_marker(metadata, "n") == ("detached", header)
    assert parse_detached_header(header).size == len(header)


def test_a_header_too_long_for_metadata_goes_inline() -> None:
    """Past the metadata cap the header is stored in front of the body, marked inline."""
    header = b"SEAL" + bytes(MAX_METADATA_HEADER)  # base64 of it is longer than the cap
    assert place(header, keeps_metadata=True) == ("inline", {METADATA_KEY: "inline"})
    assert read_marker({METADATA_KEY: "inline"}, "n") == ("inline", None)


def test_backends_without_metadata_always_get_inline_headers() -> None:
    """Without metadata there is nowhere to put a header but in front of the body."""
    assert place(b"SEAL", keeps_metadata=False) == ("inline", None)
    assert inline_metadata(keeps_metadata=False) is None


def test_no_marker_means_plaintext() -> None:
    """An object without the marker, on a backend with metadata, was not encrypted."""
    assert read_marker({"other": "value"}, "n") == (None, None)


@pytest.mark.parametrize(
    ("marker", "problem"),
    [("detached:not base64!", "malformed"), ("sideways", "unknown")],
)
def test_damaged_markers_are_format_errors(marker: str, problem: str) -> None:
    """A marker that cannot be read is a FormatError naming the object, never plaintext."""
    with pytest.raises(sealstore.FormatError, match=f"'obj'.*{problem}|{problem}.*"):
        read_marker({METADATA_KEY: marker}, "obj")


def test_a_detached_header_must_end_where_its_bytes_do() -> None:
    """Trailing bytes after a detached header are refused."""
    header, _ = sealstore.encrypt_detached(b"x", sealstore.CustomerKeys(os.urandom(32)))
    with pytest.raises(sealstore.FormatError, match="bytes after its end"):
        parse_detached_header(header + b"\0")


def test_inline_prefixes_start_with_the_magic() -> None:
    """Only a full prefix that starts with the magic can begin an inline header."""
    blob = sealstore.encrypt(b"x", sealstore.CustomerKeys(os.urandom(32)))
    assert looks_inline(blob[:10])
    assert not looks_inline(blob[:9])
    assert not looks_inline(b"PLAINTEXT!")
