"""Tampered, truncated, rearranged and hostile objects are refused by every decryption API.

Every case goes through ``decrypt``, ``decrypt_stream`` and ``open_decrypted`` (then reading
everything). All three must raise a :class:`sealstore.SealstoreError` subclass and hand back
no data; ``decrypt_stream`` may have written only whole, authenticated chunks of the true
plaintext before it raised, and never all of it unless the damage is confined to an empty
final chunk.

Header offsets follow the layout in ``sealstore.header``: magic (4), version (1), mode (1),
u32 header length, then three u16-length-prefixed fields: encryption context, key reference
(for ``CustomerKeys``, a 16-byte salt and a 32-byte fingerprint) and wrapped data key (60
bytes). The body is a 24-byte salt, a 32-byte commitment and chunks of 16384 + 16 bytes.
"""

from __future__ import annotations

import base64
import io
import os
import random
import struct
import tracemalloc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import pytest
from typing_extensions import Buffer

import sealstore
from sealstore import header as codec

CHUNK: Final = 16384
TAG: Final = 16
SEALED_CHUNK: Final = CHUNK + TAG
SALT: Final = 24
BODY_PREFIX: Final = SALT + 32
PREFIX: Final = 10
KEY_REF_SIZE: Final = 48
MIB: Final = 1 << 20
CONTEXT: Final = {"bucket": "orders", "tenant": "acme"}
OTHER_CONTEXT: Final = {"bucket": "invoices", "tenant": "acme"}
KEYS: Final = sealstore.CustomerKeys(os.urandom(32))

Context = Mapping[str, str] | None
ErrorTypes = tuple[type[sealstore.SealstoreError], ...]


@dataclass(frozen=True)
class Sample:
    """One encrypted object with what it was made from."""

    plaintext: bytes
    context: Context
    blob: bytes

    @property
    def header_size(self) -> int:
        return codec.header_size(self.blob[:PREFIX])

    @property
    def header(self) -> bytes:
        return self.blob[: self.header_size]

    @property
    def body(self) -> bytes:
        return self.blob[self.header_size :]

    @property
    def chunk_count(self) -> int:
        return len(self.plaintext) // CHUNK + 1

    def chunk(self, index: int) -> bytes:
        """The sealed bytes (ciphertext and tag) of chunk ``index``."""
        start = BODY_PREFIX + index * SEALED_CHUNK
        return self.body[start : start + SEALED_CHUNK]

    @property
    def context_length(self) -> int:
        (size,) = struct.unpack_from(">H", self.blob, PREFIX)
        return int(size)

    @property
    def key_ref_at(self) -> int:
        """Offset of the key reference's u16 length."""
        return PREFIX + 2 + self.context_length

    @property
    def wrapped_key_at(self) -> int:
        """Offset of the wrapped data key's u16 length."""
        return self.key_ref_at + 2 + KEY_REF_SIZE

    @property
    def key_ref(self) -> bytes:
        return self.blob[self.key_ref_at + 2 : self.wrapped_key_at]

    @property
    def wrapped_key(self) -> bytes:
        return self.blob[self.wrapped_key_at + 2 : self.header_size]


def _seal(size: int, context: Context, keys: sealstore.CustomerKeys = KEYS) -> Sample:
    plaintext = os.urandom(size)
    return Sample(plaintext, context, sealstore.encrypt(plaintext, keys, context=context))


SAMPLES: Final = {
    "empty": _seal(0, None),
    "empty-ctx": _seal(0, CONTEXT),
    "1k": _seal(1024, None),
    "1k-ctx": _seal(1024, CONTEXT),
    "3chunks": _seal(3 * CHUNK + 100, None),
    "3chunks-ctx": _seal(3 * CHUNK + 100, CONTEXT),
    # Past 64 KiB, decrypt builds its result in place rather than concatenating.
    "5chunks-ctx": _seal(5 * CHUNK + 100, CONTEXT),
}
TWINS: Final = {name: _seal(len(s.plaintext), s.context) for name, s in SAMPLES.items()}
"""Same key, size and context as the sample of the same name, but another object."""
BIG: Final = ["3chunks", "3chunks-ctx", "5chunks-ctx"]


# --- how a refusal is checked ------------------------------------------------------------


def _raised(call: Callable[[], object]) -> sealstore.SealstoreError:
    """The SealstoreError ``call`` raises; any other outcome fails the test."""
    try:
        result = call()
    except sealstore.SealstoreError as error:
        return error
    except Exception as error:  # the escape of any other type is what is being hunted
        pytest.fail(f"{type(error).__name__} escaped instead of a SealstoreError: {error!r}")
    pytest.fail(f"returned {type(result).__name__} instead of raising")


def _read_all(blob: bytes, keys: sealstore.CustomerKeys, context: Context) -> object:
    with sealstore.open_decrypted(io.BytesIO(blob), keys, context=context) as reader:
        try:
            return reader.read()
        except sealstore.SealstoreError:
            # Once failed, the reader must not serve anything, not even from the start.
            reader.seek(0)
            _raised(lambda: reader.read(1))
            raise


def _rejected(
    blob: bytes,
    plaintext: bytes,
    *,
    keys: sealstore.CustomerKeys = KEYS,
    context: Context = None,
    released_at_most: int | None = None,
    kinds: ErrorTypes | None = None,
    may_write_all: bool = False,
) -> list[sealstore.SealstoreError]:
    """Check ``decrypt`` (of bytes and of a bytearray), ``decrypt_stream`` and
    ``open_decrypted`` all refuse ``blob``; return their errors.

    ``released_at_most`` bounds what ``decrypt_stream`` may write (the plaintext offset of
    the first damaged chunk); ``kinds`` lists the exact error types allowed;
    ``may_write_all`` is for objects whose damage is confined to an empty final chunk.
    """
    sink = io.BytesIO()
    errors = [
        _raised(lambda: sealstore.decrypt(blob, keys, context=context)),
        _raised(lambda: sealstore.decrypt(bytearray(blob), keys, context=context)),
        _raised(lambda: sealstore.decrypt_stream(io.BytesIO(blob), sink, keys, context=context)),
        _raised(lambda: _read_all(blob, keys, context)),
    ]
    written = sink.getvalue()
    assert plaintext.startswith(written), "decrypt_stream wrote bytes that are not plaintext"
    assert len(written) % CHUNK == 0, f"decrypt_stream wrote a partial chunk ({len(written)})"
    if not may_write_all:
        assert len(written) < len(plaintext) or not written, "decrypt_stream wrote everything"
    if released_at_most is not None:
        assert len(written) <= released_at_most, "a chunk past the damage was released"
    if kinds is not None:
        for error in errors:
            assert type(error) in kinds, f"{type(error).__name__}: {error}"
    return errors


def _flip(data: bytes, offset: int, bit: int) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= 1 << bit
    return bytes(changed)


def _u16(value: int) -> bytes:
    return struct.pack(">H", value)


def _context_field(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """A context field built by hand from raw pairs, in the order given."""
    body = b"".join(_u16(len(k)) + k + _u16(len(v)) + v for k, v in pairs)
    return _u16(len(body)) + body


def _build_header(
    context_field: bytes, key_ref: bytes, wrapped_key: bytes, *, mode: int = 3
) -> bytes:
    rest = context_field + _u16(len(key_ref)) + key_ref + _u16(len(wrapped_key)) + wrapped_key
    return b"SEAL" + bytes((1, mode)) + struct.pack(">I", PREFIX + len(rest)) + rest


def _with_u32_length(blob: bytes, value: int) -> bytes:
    return blob[:6] + struct.pack(">I", value) + blob[PREFIX:]


def _with_u16(blob: bytes, offset: int, value: int) -> bytes:
    return blob[:offset] + _u16(value) + blob[offset + 2 :]


def _with_byte(blob: bytes, offset: int, value: int) -> bytes:
    return blob[:offset] + bytes((value,)) + blob[offset + 1 :]


def test_hand_built_header_matches_the_codec() -> None:
    """The header builder used for hostile cases reproduces real headers byte for byte."""
    for sample in SAMPLES.values():
        pairs = sorted((k.encode(), v.encode()) for k, v in (sample.context or {}).items())
        rebuilt = _build_header(_context_field(pairs), sample.key_ref, sample.wrapped_key)
        assert rebuilt == sample.header
        assert len(sample.key_ref) == KEY_REF_SIZE
        assert sealstore.decrypt(sample.blob, KEYS) == sample.plaintext


# --- single-bit flips ----------------------------------------------------------------------


def _header_flip_kinds(sample: Sample, offset: int) -> ErrorTypes:
    """The error types a flip at ``offset`` of the header may produce."""
    if offset < PREFIX:  # magic, version, mode (3 -> 1 or 2 names another provider), length
        return (sealstore.FormatError, sealstore.ProviderMismatchError)
    if PREFIX + 2 <= offset < sample.key_ref_at:  # context bytes: malformed, or bound
        return (sealstore.FormatError, sealstore.DecryptionError, sealstore.ContextMismatchError)
    if sample.key_ref_at + 2 <= offset < sample.wrapped_key_at:  # salt and fingerprint
        return (sealstore.WrongKeyError,)
    if sample.wrapped_key_at + 2 <= offset:  # nonce, wrapped key, tag
        return (sealstore.DecryptionError,)
    return (sealstore.FormatError,)  # the three u16 lengths


HEADER_FLIPS: Final = [
    (name, offset) for name in ("1k-ctx", "empty") for offset in range(SAMPLES[name].header_size)
]


@pytest.mark.parametrize(("name", "offset"), HEADER_FLIPS)
def test_every_header_bit_flip_is_refused(name: str, offset: int) -> None:
    """Each of the 8 bit flips of this header byte is refused, by the layer that owns it."""
    sample = SAMPLES[name]
    kinds = _header_flip_kinds(sample, offset)
    for bit in range(8):
        blob = _flip(sample.blob, offset, bit)
        _rejected(blob, sample.plaintext, released_at_most=0, kinds=kinds)
        if sample.context is not None:
            _rejected(
                blob, sample.plaintext, context=sample.context, released_at_most=0, kinds=kinds
            )


def _named_body_offsets(sample: Sample) -> list[tuple[str, int]]:
    offsets = [("salt", 0), ("salt-end", SALT - 1), ("commitment", SALT)]
    offsets.append(("commitment-end", BODY_PREFIX - 1))
    for index in range(sample.chunk_count):
        start = BODY_PREFIX + index * SEALED_CHUNK
        size = min(CHUNK, len(sample.plaintext) - index * CHUNK)
        if size:
            offsets += [(f"chunk{index}", start), (f"chunk{index}-mid", start + size // 2)]
            offsets.append((f"chunk{index}-end", start + size - 1))
        offsets += [(f"tag{index}", start + size), (f"tag{index}-end", start + size + TAG - 1)]
    offsets.append(("last-byte", len(sample.body) - 1))
    return offsets


def _random_body_offsets(name: str, count: int) -> list[tuple[str, int, int]]:
    rng = random.Random(f"sealstore tamper {name}")
    size = len(SAMPLES[name].body)
    return [(f"random{i}", rng.randrange(size), rng.randrange(8)) for i in range(count)]


BODY_FLIPS: Final = [
    pytest.param(name, offset, bit, id=f"{name}-{label}-bit{bit}")
    for name, sample in SAMPLES.items()
    for label, offset in _named_body_offsets(sample)
    for bit in (0, 7)
] + [
    pytest.param(name, offset, bit, id=f"{name}-{label}-bit{bit}")
    for name in ("3chunks-ctx", "5chunks-ctx")
    for label, offset, bit in _random_body_offsets(name, 30)
]


def _damaged_chunk_start(body_offset: int) -> int:
    """Plaintext offset of the chunk a body offset belongs to (0 for salt and commitment)."""
    return max(0, (body_offset - BODY_PREFIX) // SEALED_CHUNK) * CHUNK


@pytest.mark.parametrize(("name", "offset", "bit"), BODY_FLIPS)
def test_body_bit_flip_is_refused(name: str, offset: int, bit: int) -> None:
    """A flipped body bit fails authentication; no chunk from the damaged one on is released."""
    sample = SAMPLES[name]
    blob = _flip(sample.blob, sample.header_size + offset, bit)
    _rejected(
        blob,
        sample.plaintext,
        context=sample.context,
        released_at_most=_damaged_chunk_start(offset),
        kinds=(sealstore.DecryptionError,),
    )


# --- truncation and extension ----------------------------------------------------------


def _body_cuts(sample: Sample) -> list[int]:
    boundaries = [BODY_PREFIX + k * SEALED_CHUNK + d for k in range(5) for d in (-1, 0, 1)]
    cuts = {0, len(sample.body) - 1, *boundaries}
    return sorted(cut for cut in cuts if 0 <= cut < len(sample.body))


BODY_CUTS: Final = [
    pytest.param(name, cut, id=f"{name}-body{cut}")
    for name, sample in SAMPLES.items()
    for cut in _body_cuts(sample)
]


@pytest.mark.parametrize(("name", "cut"), BODY_CUTS)
def test_truncated_body_is_refused(name: str, cut: int) -> None:
    """A body cut at a chunk boundary (±1), at 0 or one byte short is refused."""
    sample = SAMPLES[name]
    _rejected(
        sample.blob[: sample.header_size + cut],
        sample.plaintext,
        released_at_most=_damaged_chunk_start(cut),
        kinds=(sealstore.DecryptionError,),
    )


@pytest.mark.parametrize("name", list(SAMPLES))
@pytest.mark.parametrize("keep", [0, 1, 4, 9, 10, 11, 12, "half", "all-but-one"])
def test_truncated_header_is_refused(name: str, keep: int | str) -> None:
    """An object cut inside its header is a FormatError, whatever the cut."""
    sample = SAMPLES[name]
    if keep == "half":
        keep = sample.header_size // 2
    elif keep == "all-but-one":
        keep = sample.header_size - 1
    assert isinstance(keep, int)
    _rejected(sample.blob[:keep], sample.plaintext, kinds=(sealstore.FormatError,))


APPENDED: Final = {
    "one-byte": b"\x00",
    "sixteen-bytes": bytes(range(16)),
    "foreign-chunk": TWINS["3chunks"].chunk(0),
    "foreign-final-chunk": TWINS["1k"].chunk(0),
}


@pytest.mark.parametrize("name", list(SAMPLES))
@pytest.mark.parametrize("extra", list(APPENDED))
def test_appended_bytes_are_refused(name: str, extra: str) -> None:
    """Bytes appended to an object, even a whole chunk of another object, are refused."""
    sample = SAMPLES[name]
    _rejected(
        sample.blob + APPENDED[extra],
        sample.plaintext,
        released_at_most=len(sample.plaintext) // CHUNK * CHUNK,
        kinds=(sealstore.DecryptionError,),
    )


def _rearranged(sample: Sample, twin: Sample, order: list[int | str]) -> bytes:
    """The object with its chunks in ``order``: indices, or ``"twin1"`` for the twin's chunk 1."""
    chunks = [
        twin.chunk(int(item[4:])) if isinstance(item, str) else sample.chunk(item) for item in order
    ]
    return sample.header + sample.body[:BODY_PREFIX] + b"".join(chunks)


def _rearrangements(count: int) -> dict[str, tuple[list[int | str], int]]:
    """name: (chunk order, plaintext offset of the first misplaced chunk), for ``count``
    chunks (at least four: three full ones and a short final one)."""
    chunks: list[int | str] = list(range(count))
    final, last_full = count - 1, count - 2
    return {
        "swap-0-1": ([1, 0, *chunks[2:]], 0),
        "swap-1-2": ([0, 2, 1, *chunks[3:]], CHUNK),
        "swap-last-full-and-final": ([*chunks[:last_full], final, last_full], last_full * CHUNK),
        "duplicate-0": ([0, 0, *chunks[1:]], CHUNK),
        "duplicate-1": ([0, 1, 1, *chunks[2:]], 2 * CHUNK),
        "duplicate-final": ([*chunks, final], final * CHUNK),
        "drop-0": (chunks[1:], 0),
        "drop-1": ([0, *chunks[2:]], CHUNK),
        "drop-last-full": ([*chunks[:last_full], final], last_full * CHUNK),
        "twin-chunk-1": ([0, "twin1", *chunks[2:]], CHUNK),
        "twin-final": ([*chunks[:final], f"twin{final}"], final * CHUNK),
    }


REARRANGEMENTS: Final = list(_rearrangements(4))


@pytest.mark.parametrize("name", BIG)
@pytest.mark.parametrize("case", list(REARRANGEMENTS))
def test_rearranged_chunks_are_refused(name: str, case: str) -> None:
    """Swapped, duplicated, dropped or foreign chunks fail at the first misplaced one."""
    sample = SAMPLES[name]
    order, first_bad = _rearrangements(sample.chunk_count)[case]
    blob = _rearranged(sample, TWINS[name], order)
    assert blob != sample.blob
    _rejected(
        blob,
        sample.plaintext,
        context=sample.context,
        released_at_most=first_bad,
        kinds=(sealstore.DecryptionError,),
    )


@pytest.mark.parametrize("damage", ["dropped", "tag-flipped"])
def test_damaged_empty_final_chunk_is_refused(damage: str) -> None:
    """An object of whole chunks whose empty final chunk is cut or altered is refused.

    ``decrypt_stream`` may already have written every full chunk, which here is the whole
    plaintext: only the error reports the damage, so callers must not ignore it.
    """
    sample = _seal(2 * CHUNK, CONTEXT)
    blob = (
        sample.blob[:-TAG] if damage == "dropped" else _flip(sample.blob, len(sample.blob) - 1, 0)
    )
    _rejected(blob, sample.plaintext, may_write_all=True, kinds=(sealstore.DecryptionError,))


# --- headers and bodies moved between objects -------------------------------------------------


MOVES: Final = {
    # name: (object whose header is used, object whose body is used)
    "header-onto-twin-body": (SAMPLES["3chunks"], TWINS["3chunks"]),
    "header-onto-twin-body-with-context": (SAMPLES["3chunks-ctx"], TWINS["3chunks-ctx"]),
    "large-header-onto-twin-body": (SAMPLES["5chunks-ctx"], TWINS["5chunks-ctx"]),
    "context-header-onto-plain-body": (SAMPLES["3chunks-ctx"], SAMPLES["3chunks"]),
    "plain-header-onto-context-body": (SAMPLES["3chunks"], SAMPLES["3chunks-ctx"]),
    "header-onto-other-context-body": (
        SAMPLES["1k-ctx"],
        _seal(1024, OTHER_CONTEXT),
    ),
    "small-header-onto-big-body": (SAMPLES["1k"], SAMPLES["3chunks"]),
    "big-header-onto-small-body": (SAMPLES["3chunks"], SAMPLES["1k"]),
    "empty-header-onto-empty-body": (SAMPLES["empty"], TWINS["empty"]),
}


@pytest.mark.parametrize("case", list(MOVES))
def test_header_moved_onto_another_body_is_refused(case: str) -> None:
    """A header put in front of another object's body (same key) releases nothing."""
    header_from, body_from = MOVES[case]
    blob = header_from.header + body_from.body
    for plaintext in (header_from.plaintext, body_from.plaintext):
        _rejected(blob, plaintext, released_at_most=0, kinds=(sealstore.DecryptionError,))


def test_header_from_another_key_is_a_wrong_key() -> None:
    """A header written under another customer key is named as a wrong key."""
    stranger = _seal(1024, CONTEXT, keys=sealstore.CustomerKeys(os.urandom(32)))
    sample = SAMPLES["1k-ctx"]
    _rejected(
        stranger.header + sample.body,
        sample.plaintext,
        released_at_most=0,
        kinds=(sealstore.WrongKeyError,),
    )


# --- hostile lengths -----------------------------------------------------------------------


HOSTILE_BASE: Final = SAMPLES["1k-ctx"]
SHORT_LENGTHS: Final = [0, 9, 10, 15]
LONG_LENGTHS: Final = [0xFFFFFFFF, 0x7FFFFFFF, codec.MAX_HEADER_SIZE + 1]


def _hostile_cases() -> dict[str, tuple[bytes, int]]:
    """name: (blob, most bytes a streaming reader may consume before refusing it)."""
    base, size = HOSTILE_BASE, HOSTILE_BASE.header_size
    cases = {
        f"header-length-{value:#x}": (_with_u32_length(base.blob, value), PREFIX)
        for value in LONG_LENGTHS + SHORT_LENGTHS
    }
    for label, value in (
        ("max-past-object", codec.MAX_HEADER_SIZE),
        ("one-more", size + 1),
        ("one-less", size - 1),
    ):
        cases[f"header-length-{label}"] = (
            _with_u32_length(base.blob, value),
            codec.MAX_HEADER_SIZE,
        )
    for field, at in (
        ("context", PREFIX),
        ("key-ref", base.key_ref_at),
        ("wrapped-key", base.wrapped_key_at),
    ):
        for label, value in (
            ("0xffff", 0xFFFF),
            ("0x8000", 0x8000),
            ("past-header", size - at - 2 + 1),
        ):
            cases[f"{field}-length-{label}"] = (_with_u16(base.blob, at, value), size)
    context = base.blob[PREFIX : base.key_ref_at]
    over_cap_context = _context_field([(b"k", b"v" * (codec.MAX_CONTEXT_SIZE - 4))])
    crafted = {
        "context-over-cap": (over_cap_context, base.key_ref, base.wrapped_key),
        "key-ref-over-cap": (context, bytes(codec.MAX_KEY_REF_SIZE + 1), base.wrapped_key),
        "wrapped-key-over-cap": (context, base.key_ref, bytes(codec.MAX_WRAPPED_KEY_SIZE + 1)),
        "key-ref-empty": (context, b"", base.wrapped_key),
        "wrapped-key-empty": (context, base.key_ref, b""),
        "key-ref-short": (context, base.key_ref[:-1], base.wrapped_key),
    }
    for name, fields in crafted.items():
        header = _build_header(*fields)
        assert len(header) <= codec.MAX_HEADER_SIZE
        cases[name] = (header + base.body, len(header))
    return cases


HOSTILE: Final = _hostile_cases()


def test_over_cap_context_is_just_over_the_cap() -> None:
    """The over-cap context case is one byte past the cap, so the cap itself is what fails."""
    blob = HOSTILE["context-over-cap"][0]
    (length,) = struct.unpack_from(">H", blob, PREFIX)
    assert length == codec.MAX_CONTEXT_SIZE + 1


def _peak_memory(call: Callable[[], object]) -> int:
    """Peak bytes traced while ``call`` runs (it must raise a SealstoreError)."""
    tracemalloc.start()
    try:
        _raised(call)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_header_is_refused_without_large_allocations(case: str) -> None:
    """A hostile length is refused by all APIs, tracing well under 1 MiB of allocations."""
    blob, _ = HOSTILE[case]
    _rejected(blob, HOSTILE_BASE.plaintext, released_at_most=0, kinds=(sealstore.FormatError,))
    source = io.BytesIO(blob)
    calls: list[Callable[[], object]] = [
        lambda: sealstore.decrypt(blob, KEYS),
        lambda: sealstore.decrypt_stream(source, io.BytesIO(), KEYS),
        lambda: sealstore.open_decrypted(source, KEYS),
    ]
    for call in calls:
        source.seek(0)
        assert _peak_memory(call) < MIB


_ZEROS: Final = bytes(64 * 1024)


class EndlessSource(io.RawIOBase):
    """A seekable source of ``prefix`` then zeros, ``size`` bytes in all, made up as read.

    ``served`` counts the bytes handed out; asking for or reading past ``budget`` fails the
    test rather than letting a reader that does not stop run through gigabytes.
    """

    def __init__(self, prefix: bytes, size: int = 8 << 30, budget: int = 64 * MIB) -> None:
        super().__init__()
        self._prefix = prefix
        self._size = size
        self._budget = budget
        self._position = 0
        self.served = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1, /) -> bytes:
        # Asking is allocating (io.RawIOBase.read makes a buffer of the size asked for).
        if not 0 <= size <= self._budget - self.served:
            pytest.fail(f"the reader asked for {size} bytes at once")
        data = super().read(size)
        assert data is not None
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = base + offset
        return self._position

    def readinto(self, buffer: Buffer, /) -> int:
        with memoryview(buffer) as raw, raw.cast("B") as out:
            count = max(0, min(len(out), self._size - self._position))
            self.served += count
            if self.served > self._budget:
                pytest.fail(f"the reader consumed more than {self._budget} bytes")
            head = self._prefix[self._position : self._position + count]
            out[: len(head)] = head
            filled = len(head)
            while filled < count:
                step = min(len(_ZEROS), count - filled)
                out[filled : filled + step] = _ZEROS[:step]
                filled += step
            self._position += count
            return count


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_header_on_endless_source_stops_early(case: str) -> None:
    """A hostile header in front of gigabytes of zeros fails after reading one header at most."""
    blob, limit = HOSTILE[case]
    prefix = blob[: HOSTILE_BASE.header_size + codec.MAX_HEADER_SIZE]
    stream_source, sink = EndlessSource(prefix), io.BytesIO()
    error = _raised(lambda: sealstore.decrypt_stream(stream_source, sink, KEYS))
    assert type(error) is sealstore.FormatError
    assert sink.getvalue() == b""
    assert stream_source.served <= limit
    reader_source = EndlessSource(prefix)
    error = _raised(lambda: sealstore.open_decrypted(reader_source, KEYS))
    assert type(error) is sealstore.FormatError
    assert reader_source.served <= limit


@pytest.mark.parametrize("name", ["empty", "1k-ctx"])
def test_valid_header_then_endless_zeros_stops_early(name: str) -> None:
    """A genuine header in front of gigabytes of zeros fails at the commitment, early."""
    header = SAMPLES[name].header
    stream_source, sink = EndlessSource(header), io.BytesIO()
    error = _raised(lambda: sealstore.decrypt_stream(stream_source, sink, KEYS))
    assert type(error) is sealstore.DecryptionError
    assert sink.getvalue() == b""
    assert stream_source.served <= len(header) + 2 * MIB
    reader_source = EndlessSource(header)
    error = _raised(lambda: sealstore.open_decrypted(reader_source, KEYS))
    assert type(error) is sealstore.DecryptionError
    assert reader_source.served <= len(header) + SEALED_CHUNK


# --- malformed and foreign headers -------------------------------------------------------------


NON_CANONICAL: Final[dict[str, bytes]] = {
    "unsorted": _context_field([(b"tenant", b"acme"), (b"bucket", b"orders")]),
    "unsorted-prefix-key": _context_field([(b"ab", b"1"), (b"a", b"2")]),
    "duplicate-key": _context_field([(b"bucket", b"a"), (b"bucket", b"b")]),
    "duplicate-pair": _context_field([(b"bucket", b"a"), (b"bucket", b"a")]),
    "empty-key": _context_field([(b"", b"x")]),
    "empty-key-then-key": _context_field([(b"", b"x"), (b"b", b"y")]),
    "invalid-utf8-key": _context_field([(b"\xff\xfe", b"x")]),
    "invalid-utf8-value": _context_field([(b"k", b"\xc3\x28")]),
    "surrogate-in-value": _context_field([(b"k", b"\xed\xa0\x80")]),
    "overlong-utf8-key": _context_field([(b"\xc0\xaf", b"x")]),
    "dangling-length-byte": _u16(1) + b"\x00",
    "value-missing": _u16(3) + _u16(1) + b"k",
    "key-overruns-context": _u16(3) + _u16(10) + b"k",
    "value-overruns-context": _u16(6) + _u16(1) + b"k" + _u16(9) + b"v",
}


@pytest.mark.parametrize("case", list(NON_CANONICAL))
def test_non_canonical_context_is_a_format_error(case: str) -> None:
    """A stored context that is not in canonical form is a FormatError, not a mismatch."""
    sample = SAMPLES["1k-ctx"]
    blob = _build_header(NON_CANONICAL[case], sample.key_ref, sample.wrapped_key) + sample.body
    for context in (None, {"k": "x"}):
        for error in _rejected(
            blob, sample.plaintext, context=context, kinds=(sealstore.FormatError,)
        ):
            assert "malformed header" in str(error)


BAD_PREFIXES: Final = {
    # name: (offset, new byte, what the message must mention)
    "magic-lowercase": (0, ord("s"), "magic"),
    "magic-last-byte": (3, ord("K"), "magic"),
    "version-0": (4, 0, "version 0"),
    "version-2": (4, 2, "version 2"),
    "version-255": (4, 255, "version 255"),
    "mode-0": (5, 0, "mode 0"),
    "mode-4": (5, 4, "mode 4"),
    "mode-255": (5, 255, "mode 255"),
}


@pytest.mark.parametrize("case", list(BAD_PREFIXES))
def test_bad_magic_version_or_mode_says_what_is_wrong(case: str) -> None:
    """A bad magic, version or mode is a FormatError whose message names the problem."""
    offset, value, mentions = BAD_PREFIXES[case]
    sample = SAMPLES["1k-ctx"]
    for error in _rejected(
        _with_byte(sample.blob, offset, value),
        sample.plaintext,
        released_at_most=0,
        kinds=(sealstore.FormatError,),
    ):
        assert mentions in str(error)


NOT_SEALSTORE: Final = {
    "empty": b"",
    "hello": b"hello",
    "ten-zeros": bytes(10),
    "random": random.Random(7).randbytes(1000),
    "magic-only": b"SEAL",
    "prefix-only": b"SEAL\x01\x03",
    "text": b"%PDF-1.7\n" + b"x" * 200,
}


@pytest.mark.parametrize("case", list(NOT_SEALSTORE))
def test_non_sealstore_input_is_a_format_error(case: str) -> None:
    """Bytes that were never a sealstore object are a FormatError in every API."""
    _rejected(NOT_SEALSTORE[case], b"", kinds=(sealstore.FormatError,))


@pytest.mark.parametrize("name", ["1k", "3chunks-ctx"])
@pytest.mark.parametrize(("mode", "provider"), [(1, "ManagedKeys"), (2, "KmsKeys")])
def test_other_mode_names_the_provider_needed(name: str, mode: int, provider: str) -> None:
    """A managed or KMS object read with CustomerKeys names the provider it needs."""
    sample = SAMPLES[name]
    for error in _rejected(
        _with_byte(sample.blob, 5, mode),
        sample.plaintext,
        released_at_most=0,
        kinds=(sealstore.ProviderMismatchError,),
    ):
        assert provider in str(error)


# --- nothing secret in errors or reprs --------------------------------------------------------


def _encodings(secret: bytes) -> list[str]:
    """Ways a secret could be spelled inside a message."""
    raw = secret.decode("latin-1")
    return [
        raw,
        repr(secret),
        repr(secret)[2:-1],
        secret.hex(),
        secret.hex().upper(),
        secret[:8].hex(),
        base64.b64encode(secret).decode().rstrip("="),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        base64.b32encode(secret).decode().rstrip("="),
    ]


SECRET_TEXT: Final = b"the eagle lands at midnight; "


@pytest.mark.parametrize(
    "case",
    [
        "wrapped-key-flip",
        "key-ref-flip",
        "body-flip",
        "truncated",
        "wrong-key",
        "context-mismatch",
        "other-mode",
        "bad-magic",
        "hostile-length",
    ],
)
def test_errors_never_contain_key_or_plaintext(case: str) -> None:
    """No error message or repr holds the key (in any encoding), the plaintext or a value."""
    key = os.urandom(32)
    keys = sealstore.CustomerKeys(key)
    plaintext = SECRET_TEXT * 2000
    context = {"tenant": "value-never-shown"}
    blob = sealstore.encrypt(plaintext, keys, context=context)
    size = codec.header_size(blob[:PREFIX])
    other_key = os.urandom(32)
    read_keys, read_context = keys, None
    if case == "wrapped-key-flip":
        blob = _flip(blob, size - 1, 3)
    elif case == "key-ref-flip":
        blob = _flip(blob, size - 60 - 2 - 1, 3)
    elif case == "body-flip":
        blob = _flip(blob, size + BODY_PREFIX + CHUNK + 5, 3)
    elif case == "truncated":
        blob = blob[: size + BODY_PREFIX + SEALED_CHUNK + 1]
    elif case == "wrong-key":
        read_keys = sealstore.CustomerKeys(other_key)
    elif case == "context-mismatch":
        read_context = {"tenant": "another-value-never-shown"}
    elif case == "other-mode":
        blob = _with_byte(blob, 5, 1)
    elif case == "bad-magic":
        blob = _with_byte(blob, 0, 0)
    else:
        blob = _with_u32_length(blob, 0xFFFFFFFF)
    errors = _rejected(blob, plaintext, keys=read_keys, context=read_context)
    forbidden = [
        *_encodings(key),
        *_encodings(other_key),
        "eagle",
        "value-never-shown",
    ]
    for error in errors:
        for text in (str(error), repr(error)):
            for secret in forbidden:
                assert secret not in text, f"{type(error).__name__} leaks a secret"


def test_customer_keys_repr_hides_the_key() -> None:
    """repr and str of CustomerKeys show no spelling of the key, random or printable."""
    for key in (os.urandom(32), b"correct horse battery staple!!!!"):
        keys = sealstore.CustomerKeys(key)
        for text in (repr(keys), str(keys)):
            assert "CustomerKeys" in text
            for secret in _encodings(key):
                assert secret not in text


def test_rejected_key_is_not_echoed() -> None:
    """A key of the wrong length is refused without quoting it."""
    key = b"correct horse battery staple!!!"
    with pytest.raises(sealstore.InvalidKeyError) as caught:
        sealstore.CustomerKeys(key)
    for secret in _encodings(key):
        assert secret not in str(caught.value)
        assert secret not in repr(caught.value)
