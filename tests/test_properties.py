"""Properties of the core API over generated plaintexts, contexts, I/O patterns and damage."""

from __future__ import annotations

import contextlib
import io
import os
import random
from collections.abc import Callable, Mapping

import attrs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from typing_extensions import Buffer

import sealstore
from sealstore.header import (
    MAX_CONTEXT_SIZE,
    MAX_KEY_REF_SIZE,
    MAX_WRAPPED_KEY_SIZE,
    Mode,
    encode_context,
    encode_header,
    header_size,
    parse_header,
)

CHUNK = 16384
SEALED_CHUNK = CHUNK + 16
KEYS = sealstore.CustomerKeys(os.urandom(32))

# Every property runs a bounded number of examples, so the file stays fast on two cores.
# ``nox -s fuzz`` multiplies the example counts (SEALSTORE_FUZZ_SCALE) for a long run.
SCALE = max(1, int(os.environ.get("SEALSTORE_FUZZ_SCALE", "1")))
FEW = settings(max_examples=50 * SCALE, deadline=None)
SOME = settings(max_examples=100 * SCALE, deadline=None)
MANY = settings(max_examples=200 * SCALE, deadline=None)

# --- strategies --------------------------------------------------------------------------

sizes = st.one_of(
    # Chunk boundaries are where off-by-one errors live: 16384*k + {-1, 0, 1}.
    st.builds(lambda k, d: CHUNK * k + d, st.integers(1, 5), st.sampled_from((-1, 0, 1))),
    st.integers(0, 64),
    st.integers(0, 5 * CHUNK + 1),
)


@st.composite
def plaintexts(draw: st.DrawFn, size: st.SearchStrategy[int] = sizes) -> bytes:
    """Random bytes of a drawn size (drawn from a seed: large byte strings would overrun)."""
    return random.Random(draw(st.integers(0, 2**32))).randbytes(draw(size))


small_plaintexts = plaintexts(
    st.one_of(st.sampled_from((0, 1, CHUNK - 1, CHUNK, CHUNK + 1)), st.integers(0, 3 * CHUNK))
)

# A small alphabet makes two drawn contexts share keys often; it includes non-ASCII.
_FEW_LETTERS = "ab-_é☃\U0001f512"
context_text = st.one_of(st.text(max_size=12), st.text(alphabet=_FEW_LETTERS, max_size=4))
context_keys = st.one_of(
    st.text(min_size=1, max_size=12), st.text(alphabet=_FEW_LETTERS, min_size=1, max_size=4)
)
context_dicts = st.dictionaries(context_keys, context_text, max_size=6)
contexts = st.one_of(st.none(), context_dicts)


@attrs.frozen
class StreamShape:
    """How a stream source reads and how a sink writes."""

    readinto: bool
    read_limit: int
    sink: str
    write_limit: int
    seed: int


stream_shapes = st.builds(
    StreamShape,
    readinto=st.booleans(),
    read_limit=st.sampled_from((17, 1000, SEALED_CHUNK + 1, 1 << 21)),
    sink=st.sampled_from(("bytesio", "partial")),
    write_limit=st.sampled_from((1000, CHUNK + 7, 1 << 21)),
    seed=st.integers(0, 2**32),
)


# --- I/O doubles -------------------------------------------------------------------------


class ShortReads:
    """A seekable source whose ``read`` returns a random, non-empty part of what was asked."""

    def __init__(self, data: bytes, limit: int, rng: random.Random, position: int = 0) -> None:
        self._data = data
        self._limit = limit
        self._rng = rng
        self._position = position

    def read(self, size: int = -1, /) -> bytes:
        remaining = max(0, len(self._data) - self._position)
        if size < 0 or size > remaining:
            size = remaining
        if size:
            size = self._rng.randint(1, min(size, self._limit))
        piece = self._data[self._position : self._position + size]
        self._position += size
        return piece

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._data)}
        self._position = base[whence] + offset
        return self._position

    def tell(self) -> int:
        return self._position


class ShortReadsInto(ShortReads):
    """A :class:`ShortReads` that also offers ``readinto``, as raw and buffered files do."""

    def readinto(self, buffer: Buffer, /) -> int:
        with memoryview(buffer) as raw, raw.cast("B") as out:
            piece = self.read(len(out))
            out[: len(piece)] = piece
            return len(piece)


class CollectingSink:
    """Keeps copies of what it is given (a sink must not keep the caller's buffers)."""

    def __init__(self, limit: int, rng: random.Random) -> None:
        self._limit = limit
        self._rng = rng
        self._parts: list[bytes] = []

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class PartialSink(CollectingSink):
    """A raw sink: ``write`` takes a random, non-empty prefix and says how much it took."""

    def write(self, data: Buffer, /) -> int:
        with memoryview(data) as raw, raw.cast("B") as flat:
            count = self._rng.randint(1, min(len(flat), self._limit)) if len(flat) else 0
            self._parts.append(bytes(flat[:count]))
        return count


def make_source(data: bytes, shape: StreamShape) -> ShortReads:
    """A source over ``data`` reading the way ``shape`` says."""
    kind = ShortReadsInto if shape.readinto else ShortReads
    return kind(data, shape.read_limit, random.Random(shape.seed))


def make_sink(shape: StreamShape) -> io.BytesIO | PartialSink:
    """A sink writing the way ``shape`` says; every kind has ``getvalue``."""
    rng = random.Random(shape.seed + 1)
    if shape.sink == "partial":
        return PartialSink(shape.write_limit, rng)
    return io.BytesIO()


def stream_encrypt(
    plaintext: bytes, context: Mapping[str, str] | None, shape: StreamShape
) -> bytes:
    """An object made by ``encrypt_stream`` through the I/O pattern of ``shape``."""
    sink = make_sink(shape)
    written = sealstore.encrypt_stream(make_source(plaintext, shape), sink, KEYS, context=context)
    blob = sink.getvalue()
    assert written == len(blob)
    return blob


def stream_decrypt(blob: bytes, context: Mapping[str, str] | None, shape: StreamShape) -> bytes:
    """The plaintext ``decrypt_stream`` writes, through the I/O pattern of ``shape``."""
    sink = make_sink(shape)
    written = sealstore.decrypt_stream(make_source(blob, shape), sink, KEYS, context=context)
    plaintext = sink.getvalue()
    assert written == len(plaintext)
    return plaintext


def reader_decrypt(blob: bytes, context: Mapping[str, str] | None, shape: StreamShape) -> bytes:
    """The plaintext ``open_decrypted`` reads to the end, over a short-reading source."""
    with sealstore.open_decrypted(make_source(blob, shape), KEYS, context=context) as reader:
        return reader.read()


def memory_decrypt(blob: bytes, context: Mapping[str, str] | None, shape: StreamShape) -> bytes:
    """The plaintext ``decrypt`` returns (``shape`` is unused)."""
    return sealstore.decrypt(blob, KEYS, context=context)


DECRYPTORS: dict[str, Callable[[bytes, Mapping[str, str] | None, StreamShape], bytes]] = {
    "decrypt": memory_decrypt,
    "decrypt_stream": stream_decrypt,
    "open_decrypted": reader_decrypt,
}


# --- round trips -------------------------------------------------------------------------


@SOME
@given(
    plaintext=plaintexts(),
    context=contexts,
    buffer_type=st.sampled_from((bytes, bytearray, memoryview)),
)
@example(plaintext=b"", context={"clé": "välue ☃", "\U0001f512": ""}, buffer_type=bytes)
def test_in_memory_round_trip(
    plaintext: bytes, context: dict[str, str] | None, buffer_type: Callable[[bytes], Buffer]
) -> None:
    """decrypt(encrypt(x)) == x for any size, context and buffer type of the plaintext."""
    blob = sealstore.encrypt(buffer_type(plaintext), KEYS, context=context)
    assert sealstore.decrypt(blob, KEYS, context=context) == plaintext
    assert sealstore.decrypt(blob, KEYS) == plaintext


@SOME
@given(plaintext=plaintexts(), context=contexts, put=stream_shapes, get=stream_shapes)
def test_stream_round_trip_with_short_reads_and_partial_writes(
    plaintext: bytes, context: dict[str, str] | None, put: StreamShape, get: StreamShape
) -> None:
    """encrypt_stream then decrypt_stream restores x whatever the reads and writes return."""
    blob = stream_encrypt(plaintext, context, put)
    assert stream_decrypt(blob, context, get) == plaintext


@SOME
@given(plaintext=plaintexts(), context=contexts, shape=stream_shapes)
def test_open_decrypted_reads_the_whole_plaintext(
    plaintext: bytes, context: dict[str, str] | None, shape: StreamShape
) -> None:
    """open_decrypted(encrypt(x)).read() == x, over a source that returns short reads."""
    blob = sealstore.encrypt(plaintext, KEYS, context=context)
    assert reader_decrypt(blob, context, shape) == plaintext


@pytest.mark.parametrize("producer", ["encrypt", "encrypt_stream"])
@FEW
@given(plaintext=plaintexts(), context=contexts, put=stream_shapes, get=stream_shapes)
def test_any_encrypt_output_decrypts_through_any_decrypt_api(
    producer: str,
    plaintext: bytes,
    context: dict[str, str] | None,
    put: StreamShape,
    get: StreamShape,
) -> None:
    """Objects from each encrypt API have one layout and decrypt identically through all three."""
    reference = sealstore.encrypt(plaintext, KEYS, context=context)
    blob = reference if producer == "encrypt" else stream_encrypt(plaintext, context, put)
    assert len(blob) == len(reference)
    assert header_size(blob) == header_size(reference)
    results = {name: decrypt(blob, context, get) for name, decrypt in DECRYPTORS.items()}
    assert results == dict.fromkeys(DECRYPTORS, plaintext)


# --- random access -----------------------------------------------------------------------


def _position_strategy(size: int) -> st.SearchStrategy[int]:
    """Absolute positions, near chunk boundaries and the end more often than elsewhere."""
    near_boundary = st.builds(
        lambda k, d: CHUNK * k + d, st.integers(0, size // CHUNK + 1), st.integers(-2, 2)
    )
    near_end = st.builds(lambda d: size + d, st.integers(-3, 3))
    return st.one_of(near_boundary, near_end, st.integers(-3, size + 3))


read_sizes = st.one_of(
    st.sampled_from(range(1, 65)),
    st.builds(lambda k, d: CHUNK * k + d, st.integers(1, 3), st.integers(-2, 2)),
    st.integers(0, 3 * CHUNK),
)


@SOME
@given(
    plaintext=plaintexts(st.one_of(st.integers(1, 5 * CHUNK + 1), sizes)),
    prefix=st.one_of(st.just(b""), st.binary(min_size=1, max_size=100)),
    short_reads=st.booleans(),
    data=st.data(),
)
def test_random_seeks_and_reads_match_plaintext_slices(
    plaintext: bytes, prefix: bytes, short_reads: bool, data: st.DataObject
) -> None:
    """Any sequence of seeks and reads returns the plaintext's slices; tell() follows along."""
    size = len(plaintext)
    stored = prefix + sealstore.encrypt(plaintext, KEYS)
    source: ShortReads | io.BytesIO
    if short_reads:
        source = ShortReadsInto(stored, 1000, random.Random(size), position=len(prefix))
    else:
        source = io.BytesIO(stored)
        source.seek(len(prefix))
    position = 0
    with sealstore.open_decrypted(source, KEYS) as reader:
        assert reader.size == size
        for _ in range(data.draw(st.integers(4, 16), label="operations")):
            operation = data.draw(
                st.sampled_from(("read", "readinto", "set", "cur", "end", "read-to-end", "read"))
            )
            if operation in {"set", "cur", "end"}:
                target = data.draw(_position_strategy(size), label="target")
                whence, offset = {
                    "set": (io.SEEK_SET, target),
                    "cur": (io.SEEK_CUR, target - position),
                    "end": (io.SEEK_END, target - size),
                }[operation]
                if target < 0:
                    with pytest.raises(ValueError, match="negative seek"):
                        reader.seek(offset, whence)
                else:
                    assert reader.seek(offset, whence) == target
                    position = target
            elif operation == "read-to-end":
                assert reader.read() == plaintext[position:]
                position = max(position, size)
            else:
                count = data.draw(read_sizes, label="count")
                if operation == "read":
                    got = reader.read(count)
                else:
                    buffer = bytearray(count)
                    got = bytes(buffer[: reader.readinto(buffer)])
                assert got == plaintext[position : position + count]
                position += len(got)
            assert reader.tell() == position
        # Past the end there is nothing, and asking moves nothing.
        reader.seek(size + data.draw(st.integers(0, 40_000), label="beyond"))
        beyond = reader.tell()
        assert reader.read(10) == b""
        assert reader.read() == b""
        assert reader.tell() == beyond


@MANY
@given(plaintext=plaintexts(), data=st.data())
def test_one_small_read_decrypts_at_most_two_chunks(plaintext: bytes, data: st.DataObject) -> None:
    """A fresh reader decrypts at most two chunks for one 4 KiB read at any offset."""
    blob = sealstore.encrypt(plaintext, KEYS)
    offset = data.draw(_position_strategy(len(plaintext)).filter(lambda n: n >= 0))
    with sealstore.open_decrypted(io.BytesIO(blob), KEYS) as reader:
        assert reader.chunks_decrypted == 0
        reader.seek(offset)
        assert reader.read(4096) == plaintext[offset : offset + 4096]
        assert reader.chunks_decrypted <= 2
    with sealstore.open_decrypted(io.BytesIO(blob), KEYS) as reader:
        # Seeking from the end authenticates the final chunk, and only that one.
        reader.seek(-min(offset, len(plaintext)), io.SEEK_END)
        assert reader.chunks_decrypted == 1


# --- encryption context ------------------------------------------------------------------


@st.composite
def context_pairs(draw: st.DrawFn) -> tuple[dict[str, str], dict[str, str]]:
    """A stored context and an expected one: equal, edited (keys dropped, changed, added)
    or unrelated."""
    stored = draw(context_dicts)
    how = draw(st.sampled_from(("same", "edited", "unrelated")))
    if how == "same":
        return stored, dict(stored)
    if how == "unrelated":
        return stored, draw(context_dicts)
    expected = {
        key: draw(context_text) if draw(st.booleans()) else value
        for key, value in stored.items()
        if draw(st.booleans())
    }
    expected.update(draw(st.dictionaries(context_keys, context_text, max_size=2)))
    return stored, expected


@SOME
@given(pair=context_pairs(), plaintext=small_plaintexts, shape=stream_shapes)
@example(pair=({}, {}), plaintext=b"x", shape=StreamShape(False, 1000, "bytesio", 1000, 0))
@example(
    pair=({"a": "1", "é": "2"}, {"a": "2", "☃": "3"}),
    plaintext=b"x",
    shape=StreamShape(False, 1000, "bytesio", 1000, 0),
)
def test_context_must_match_exactly(
    pair: tuple[dict[str, str], dict[str, str]], plaintext: bytes, shape: StreamShape
) -> None:
    """The exact context decrypts; any other raises ContextMismatchError naming the right keys."""
    stored, expected = pair
    blob = sealstore.encrypt(plaintext, KEYS, context=stored)
    for name, decrypt in DECRYPTORS.items():
        if expected == stored:
            assert decrypt(blob, expected, shape) == plaintext, name
            continue
        with pytest.raises(sealstore.ContextMismatchError) as caught:
            decrypt(blob, expected, shape)
        error = caught.value
        assert sorted(error.missing) == sorted(expected.keys() - stored.keys())
        assert sorted(error.unexpected) == sorted(stored.keys() - expected.keys())
        assert sorted(error.differing) == sorted(
            key for key in stored.keys() & expected.keys() if stored[key] != expected[key]
        )
        assert len(set(error.missing + error.unexpected + error.differing)) == len(
            error.missing + error.unexpected + error.differing
        )


# --- damage ------------------------------------------------------------------------------


@st.composite
def damaged(draw: st.DrawFn, blob: bytes) -> bytes:
    """``blob`` after one random mutation (which may, rarely, leave it unchanged)."""
    size = len(blob)
    head = header_size(blob)
    # The header and the body prefix are dense with fields, so aim there more often.
    position = draw(st.one_of(st.integers(0, 16), st.integers(0, head + 56), st.integers(0, size)))
    position = min(position, size - 1)
    kind = draw(st.sampled_from(("flip", "replace", "length", "slice", "insert", "junk")))
    if kind == "flip":
        bit = draw(st.integers(0, 7))
        return blob[:position] + bytes((blob[position] ^ (1 << bit),)) + blob[position + 1 :]
    if kind == "replace":
        return blob[:position] + bytes((draw(st.integers(0, 255)),)) + blob[position + 1 :]
    if kind == "length":
        at, width = draw(st.sampled_from(_length_fields(blob)))
        old = int.from_bytes(blob[at : at + width], "big")
        new = draw(
            st.one_of(
                st.integers(max(0, old - 3), old + 3), st.integers(0, (1 << (8 * width)) - 1)
            ).filter(lambda n: n < 1 << (8 * width))
        )
        return blob[:at] + new.to_bytes(width, "big") + blob[at + width :]
    if kind == "slice":
        end = draw(st.integers(position, size))
        return blob[:position] + blob[end:] if draw(st.booleans()) else blob[position:end]
    if kind == "insert":
        length = draw(st.one_of(st.integers(1, 40), st.sampled_from((16, CHUNK, SEALED_CHUNK))))
        if draw(st.booleans()):
            start = draw(st.integers(0, size))
            extra = blob[start : start + length]
        else:
            extra = random.Random(draw(st.integers(0, 2**32))).randbytes(length)
        return blob[:position] + extra + blob[position:]
    junk = draw(st.binary(max_size=200))
    if draw(st.booleans()):
        # A declared header length that fits the bytes, so the fields inside get parsed.
        junk = (len(junk) + 10).to_bytes(4, "big") + junk
    return b"SEAL\x01\x03" + junk


def _length_fields(blob: bytes) -> list[tuple[int, int]]:
    """Offsets and widths of the length fields in ``blob``'s header."""
    header = parse_header(blob)
    key_ref_length_at = 10 + len(header.context_field)
    fields = [
        (6, 4),
        (10, 2),
        (key_ref_length_at, 2),
        (key_ref_length_at + 2 + len(header.key_ref), 2),
    ]
    if header.context:
        fields.append((12, 2))  # the first context key's length
    return fields


@MANY
@given(plaintext=small_plaintexts, context=contexts, shape=stream_shapes, data=st.data())
def test_damaged_objects_fail_only_with_sealstore_errors(
    plaintext: bytes, context: dict[str, str] | None, shape: StreamShape, data: st.DataObject
) -> None:
    """Mutated objects raise a SealstoreError (or, if unchanged, decrypt); nothing else escapes."""
    blob = sealstore.encrypt(plaintext, KEYS, context=context)
    mutated = data.draw(damaged(blob), label="mutated")
    check_context = data.draw(st.booleans(), label="check context")
    expected = context if check_context else None

    for name, decrypt in DECRYPTORS.items():
        try:
            result = decrypt(mutated, expected, shape)
        except sealstore.SealstoreError:
            continue
        assert mutated == blob, f"{name} accepted a modified object"
        assert result == plaintext

    # decrypt_stream writes only authenticated chunks: a prefix of the true plaintext.
    sink = io.BytesIO()
    with contextlib.suppress(sealstore.SealstoreError):
        sealstore.decrypt_stream(io.BytesIO(mutated), sink, KEYS, context=expected)
    assert plaintext.startswith(sink.getvalue())

    # Random access may serve chunks the damage did not reach, but only genuine plaintext.
    offset = data.draw(st.integers(0, len(plaintext) + CHUNK), label="offset")
    count = data.draw(st.integers(0, 2 * CHUNK), label="count")
    try:
        with sealstore.open_decrypted(io.BytesIO(mutated), KEYS, context=expected) as reader:
            reader.seek(offset)
            got = reader.read(count)
            assert got == plaintext[offset : offset + count]
            reader.seek(0, io.SEEK_END)
            assert reader.tell() == len(plaintext)
    except sealstore.SealstoreError:
        pass


# --- header codec ------------------------------------------------------------------------


@SOME
@given(
    mode=st.sampled_from(Mode),
    context=contexts,
    key_ref=st.binary(min_size=1, max_size=200),
    wrapped_key=st.binary(min_size=1, max_size=100),
    trailer=st.binary(max_size=50),
)
@example(
    mode=Mode.CUSTOMER,
    context={"k": "v" * (MAX_CONTEXT_SIZE - 5)},
    key_ref=b"r" * MAX_KEY_REF_SIZE,
    wrapped_key=b"w" * MAX_WRAPPED_KEY_SIZE,
    trailer=b"",
)
def test_header_round_trips(
    mode: Mode,
    context: dict[str, str] | None,
    key_ref: bytes,
    wrapped_key: bytes,
    trailer: bytes,
) -> None:
    """Encoding a header and parsing it back gives the same fields, whatever bytes follow."""
    context_field = encode_context(context)
    encoded = encode_header(mode, context_field, key_ref, wrapped_key)
    assert header_size(encoded) == len(encoded)
    parsed = parse_header(encoded + trailer)
    assert (parsed.mode, parsed.context_field, parsed.key_ref, parsed.wrapped_key) == (
        mode,
        context_field,
        key_ref,
        wrapped_key,
    )
    assert parsed.context == (context or {})
    assert parsed.encode() == encoded


@SOME
@given(context=context_dicts, data=st.data())
def test_encode_context_is_canonical(context: dict[str, str], data: st.DataObject) -> None:
    """The same pairs in any insertion order encode to the same bytes."""
    shuffled = dict(data.draw(st.permutations(list(context.items())), label="order"))
    assert encode_context(shuffled) == encode_context(context)
    assert encode_context(context or None) == encode_context(context)


lone_surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)


@st.composite
def invalid_contexts(draw: st.DrawFn) -> dict[object, object]:
    """A context that breaks exactly one rule, next to some valid pairs."""
    context: dict[object, object] = dict(
        draw(st.dictionaries(context_keys, context_text, max_size=3))
    )
    rule = draw(st.sampled_from(("key type", "value type", "empty key", "surrogate", "too big")))
    not_str = st.one_of(st.integers(), st.binary(), st.none(), st.tuples(st.text(max_size=2)))
    if rule == "key type":
        context[draw(not_str)] = "v"
    elif rule == "value type":
        context[draw(context_keys)] = draw(not_str)
    elif rule == "empty key":
        context[""] = draw(context_text)
    elif rule == "surrogate":
        text = draw(context_text) + draw(lone_surrogates) + draw(context_text)
        if draw(st.booleans()):
            context[text] = "v"
        else:
            context[draw(context_keys)] = text
    else:
        # 4 bytes of lengths, a 1-byte key and a value of 2-byte characters: one byte over.
        context["x"] = "é" * ((MAX_CONTEXT_SIZE - 4) // 2) + "z" * draw(st.integers(0, 9))
    return context


@SOME
@given(context=invalid_contexts())
@example(context={"": ""})
@example(context={"\ud800": "v"})
@example(context={"k": "\udfff"})
@example(context={1: "v"})
@example(context={"k": b"v"})
@example(context={"k": "v" * (MAX_CONTEXT_SIZE - 4)})
def test_invalid_contexts_are_rejected(context: dict[object, object]) -> None:
    """Non-str pairs, empty keys, lone surrogates and oversize contexts raise
    InvalidContextError, a ValueError, from the codec and from the public API."""
    with pytest.raises(sealstore.InvalidContextError) as caught:
        encode_context(context)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)
    with pytest.raises(sealstore.InvalidContextError):
        sealstore.encrypt(b"data", KEYS, context=context)  # type: ignore[arg-type]
    blob = sealstore.encrypt(b"data", KEYS)
    with pytest.raises(sealstore.InvalidContextError):
        sealstore.decrypt(blob, KEYS, context=context)  # type: ignore[arg-type]


@pytest.mark.parametrize(("extra", "accepted"), [(0, True), (1, False)])
def test_context_size_cap_is_exact(extra: int, accepted: bool) -> None:
    """A context of exactly the cap encodes (and round-trips); one byte more is rejected."""
    # One pair costs 4 bytes of lengths plus its key and value.
    context = {"k": "v" * (MAX_CONTEXT_SIZE - 5 + extra)}
    if accepted:
        blob = sealstore.encrypt(b"", KEYS, context=context)
        assert parse_header(blob).context == context
        assert sealstore.decrypt(blob, KEYS, context=context) == b""
    else:
        with pytest.raises(sealstore.InvalidContextError, match=str(MAX_CONTEXT_SIZE)):
            encode_context(context)
