"""Wycheproof Cobblestone-256 vectors through every path that reads or writes the chunked body.

The vectors (``vectors/c2sp_chunked_encryption_aes_256_gcm_test.json``) are applied as their
documentation says. A valid vector decrypts to ``msgLength`` bytes whose SHA-512 is
``msgSha512``; an invalid one is refused, and one flagged ``InvalidKeySize`` is refused when
the key is given. Streaming decryption may release the longest valid prefix described by an
invalid vector's ``msgLength`` and ``msgSha512`` (flag ``PartialPlaintext``), never anything
beyond it, and once it has failed it keeps failing. Random-access decryption cannot read the
whole of an invalid message, and authenticating the message length from the final chunk
fails for every invalid vector except those flagged ``ValidFinalChunk``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import random
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import sealstore
from sealstore import _aead
from sealstore.reader import DecryptedReader

_FILE = Path(__file__).parent / "vectors" / "c2sp_chunked_encryption_aes_256_gcm_test.json"
_HANDLED_FLAGS = frozenset(
    {
        "ChunkReordering",
        "CounterRollover",
        "HeaderFailure",
        "InvalidKeySize",
        "ModifiedCiphertext",
        "PartialPlaintext",
        "TrailingData",
        "Truncation",
        "ValidFinalChunk",
        "WrongContext",
        "WrongKey",
    }
)
_EMPTY_SHA512 = hashlib.sha512(b"").digest()


@dataclass(frozen=True)
class ChunkedVector:
    """One test case, with ``ct`` decompressed.

    For an invalid vector, ``msg_length`` and ``msg_sha512`` describe the longest valid
    prefix of the message (empty when the file gives none).
    """

    tc_id: int
    comment: str
    flags: frozenset[str]
    valid: bool
    key: bytes = field(repr=False)
    ctx: bytes = field(repr=False)
    ct: bytes = field(repr=False)
    msg_length: int
    msg_sha512: bytes = field(repr=False)


def _load() -> tuple[int, list[tuple[str, str]], list[ChunkedVector]]:
    document = json.loads(_FILE.read_text(encoding="utf-8"))
    groups = []
    vectors = []
    for group in document["testGroups"]:
        groups.append((group["aead"], group["sha"]))
        for test in group["tests"]:
            sha = test.get("msgSha512")
            vectors.append(
                ChunkedVector(
                    tc_id=test["tcId"],
                    comment=test["comment"],
                    flags=frozenset(test["flags"]),
                    valid=test["result"] == "valid",
                    key=bytes.fromhex(test["key"]),
                    ctx=bytes.fromhex(test["ctx"]),
                    ct=zlib.decompress(bytes.fromhex(test["ct"])),
                    msg_length=test.get("msgLength", 0),
                    msg_sha512=_EMPTY_SHA512 if sha is None else bytes.fromhex(sha),
                )
            )
    return document["numberOfTests"], groups, vectors


_DECLARED_COUNT, _GROUPS, VECTORS = _load()
_BY_ID = {vector.tc_id: vector for vector in VECTORS}


def _honest_plaintext_size(body_length: int) -> int | None:
    """The message size an honest encryption of ``body_length`` bytes holds, if any.

    Straight from the spec: 56 header bytes, then chunks of 16384 + 16 bytes, then a final
    chunk of 16 to 16399 bytes (a short, possibly empty, message part and its tag).
    """
    sealed = body_length - 56
    if sealed < 16:
        return None
    full, final = divmod(sealed, 16400)
    if final < 16:
        return None
    return full * 16384 + final - 16


VALID = [v for v in VECTORS if v.valid]
INVALID = [v for v in VECTORS if not v.valid]
KEY_SIZE = [v for v in INVALID if "InvalidKeySize" in v.flags]
REFUSED = [v for v in INVALID if "InvalidKeySize" not in v.flags]
HEADER_FAILURES = [v for v in REFUSED if "HeaderFailure" in v.flags]
BAD_LENGTH = [
    v
    for v in REFUSED
    if "HeaderFailure" not in v.flags and _honest_plaintext_size(len(v.ct)) is None
]
OPENABLE = [
    v
    for v in REFUSED
    if "HeaderFailure" not in v.flags and _honest_plaintext_size(len(v.ct)) is not None
]
FORGED_FINAL_CHUNK = [v for v in REFUSED if "ValidFinalChunk" not in v.flags]
VALID_FINAL_CHUNK = [v for v in REFUSED if "ValidFinalChunk" in v.flags]
DISHONEST_LENGTH = [v for v in VECTORS if _honest_plaintext_size(len(v.ct)) is None]
HONEST_LENGTH_INVALID = [v for v in INVALID if _honest_plaintext_size(len(v.ct)) is not None]

# Piece sizes for streaming: the whole body at once, pieces that split the 56-byte header,
# small pieces, and pieces one chunk plus a few bytes long (never aligned to a chunk).
PIECES = [
    pytest.param(None, id="whole"),
    pytest.param(57, id="57"),
    pytest.param(1000, id="1000"),
    pytest.param(_aead.SEALED_CHUNK_SIZE + 7, id="16407"),
]


def _params(vectors: list[ChunkedVector]) -> list[object]:
    return [pytest.param(vector, id=f"tc{vector.tc_id}") for vector in vectors]


def _sha512(data: bytes) -> bytes:
    return hashlib.sha512(data).digest()


@dataclass
class _Streamed:
    plaintext: bytes
    error: sealstore.SealstoreError | None
    decryptor: _aead.StreamDecryptor


def _stream(vector: ChunkedVector, piece: int | None) -> _Streamed:
    """Push the body through a StreamDecryptor ``piece`` bytes at a time, then finalize."""
    size = piece or max(len(vector.ct), 1)
    decryptor = _aead.StreamDecryptor(vector.key, vector.ctx)
    # One update_into releases every chunk its piece completes: up to a chunk more than the
    # piece itself once earlier pieces have left a partial chunk buffered.
    out = bytearray(size + _aead.SEALED_CHUNK_SIZE)
    produced = bytearray()
    try:
        for start in range(0, len(vector.ct), size):
            count = decryptor.update_into(vector.ct[start : start + size], out)
            produced += out[:count]
        produced += decryptor.finalize()
    except sealstore.SealstoreError as error:
        return _Streamed(bytes(produced), error, decryptor)
    return _Streamed(bytes(produced), None, decryptor)


_MESSAGES: dict[int, bytes] = {}


def _message(vector: ChunkedVector) -> bytes:
    """The message of a valid vector, recovered by streaming decryption and checked."""
    if vector.tc_id not in _MESSAGES:
        streamed = _stream(vector, None)
        assert streamed.error is None
        assert _sha512(streamed.plaintext) == vector.msg_sha512
        _MESSAGES[vector.tc_id] = streamed.plaintext
    return _MESSAGES[vector.tc_id]


def _authentic_prefix(vector: ChunkedVector) -> bytes:
    """Plaintext of the leading full-size chunks that authenticate at their own index."""
    try:
        opener = _aead.ChunkOpener(vector.key, vector.ctx, vector.ct[: _aead.BODY_PREFIX_SIZE])
    except sealstore.DecryptionError:
        return b""
    parts: list[bytes] = []
    last_full = len(vector.ct) - _aead.SEALED_CHUNK_SIZE
    starts = range(_aead.BODY_PREFIX_SIZE, last_full + 1, _aead.SEALED_CHUNK_SIZE)
    with contextlib.suppress(sealstore.DecryptionError):
        for index, start in enumerate(starts):
            sealed = vector.ct[start : start + _aead.SEALED_CHUNK_SIZE]
            parts.append(opener.open_chunk(index, sealed))
    return b"".join(parts)


def _open(vector: ChunkedVector) -> DecryptedReader:
    return DecryptedReader(io.BytesIO(vector.ct), vector.key, vector.ctx, 0, len(vector.ct))


def _read(reader: DecryptedReader, size: int = -1) -> bytes:
    data = reader.read(size)
    assert data is not None
    return data


def _read_whole(vector: ChunkedVector) -> bytes:
    with _open(vector) as reader:
        return _read(reader)


def _seek_end(vector: ChunkedVector) -> int:
    with _open(vector) as reader:
        return reader.seek(0, io.SEEK_END)


def _decrypt_whole_body(vector: ChunkedVector) -> bytes:
    out = bytearray(_aead.plaintext_size(len(vector.ct)))
    with memoryview(out) as view:
        _aead.decrypt_body_into(vector.key, vector.ctx, vector.ct, view)
    return bytes(out)


def _read_until_failure(reader: DecryptedReader, size: int) -> tuple[bytes, bool]:
    """Read from the current position until end of file or failure: (bytes read, failed)."""
    produced = bytearray()
    try:
        while piece := _read(reader, size):
            produced += piece
    except sealstore.DecryptionError:
        return bytes(produced), True
    return bytes(produced), False


def _assert_decrypts_to(vector: ChunkedVector, body: bytes, message: bytes) -> None:
    """``body`` is a fresh encryption of ``message`` under the vector's key and context."""
    assert len(body) == _aead.body_size(len(message))
    assert _aead.plaintext_size(len(body)) == len(message)
    assert body[: _aead.SALT_SIZE] != vector.ct[: _aead.SALT_SIZE]
    fresh = ChunkedVector(
        tc_id=vector.tc_id,
        comment=vector.comment,
        flags=vector.flags,
        valid=True,
        key=vector.key,
        ctx=vector.ctx,
        ct=body,
        msg_length=len(message),
        msg_sha512=_sha512(message),
    )
    streamed = _stream(fresh, _aead.SEALED_CHUNK_SIZE + 7)
    assert streamed.error is None
    assert streamed.plaintext == message
    assert _read_whole(fresh) == message


# The file itself


def test_every_vector_is_loaded() -> None:
    """All vectors the file declares are loaded, for the one instantiation sealstore uses."""
    assert len(VECTORS) == _DECLARED_COUNT == 35
    assert len(_BY_ID) == len(VECTORS)
    assert set(_GROUPS) == {("AEAD_AES_256_GCM", "SHA-512")}
    assert len(VALID) == 10
    assert len(INVALID) == 25


def test_every_flag_is_handled() -> None:
    """Every flag in the file is one whose rules these tests apply."""
    used = frozenset().union(*(vector.flags for vector in VECTORS))
    assert used <= _HANDLED_FLAGS


@pytest.mark.parametrize("vector", _params(REFUSED))
def test_authentic_prefix_is_the_described_one(vector: ChunkedVector) -> None:
    """Opening chunks one by one from the start yields exactly the vector's valid prefix."""
    prefix = _authentic_prefix(vector)
    assert len(prefix) == vector.msg_length
    assert _sha512(prefix) == vector.msg_sha512


# Streaming decryption


@pytest.mark.parametrize("piece", PIECES)
@pytest.mark.parametrize("vector", _params(VALID))
def test_stream_decrypts_valid(vector: ChunkedVector, piece: int | None) -> None:
    """A valid body pushed in pieces decrypts to msgLength bytes with hash msgSha512."""
    streamed = _stream(vector, piece)
    assert streamed.error is None
    assert len(streamed.plaintext) == vector.msg_length
    assert _sha512(streamed.plaintext) == vector.msg_sha512


@pytest.mark.parametrize("piece", PIECES)
@pytest.mark.parametrize("vector", _params(REFUSED))
def test_stream_releases_at_most_the_valid_prefix(vector: ChunkedVector, piece: int | None) -> None:
    """An invalid body fails with DecryptionError after releasing only a valid prefix."""
    streamed = _stream(vector, piece)
    assert isinstance(streamed.error, sealstore.DecryptionError)
    assert len(streamed.plaintext) <= vector.msg_length
    assert streamed.plaintext == _authentic_prefix(vector)[: len(streamed.plaintext)]
    if len(streamed.plaintext) == vector.msg_length:
        assert _sha512(streamed.plaintext) == vector.msg_sha512


@pytest.mark.parametrize("piece", PIECES)
@pytest.mark.parametrize("vector", _params(REFUSED))
def test_stream_keeps_failing(vector: ChunkedVector, piece: int | None) -> None:
    """After its first failure a StreamDecryptor refuses every further call."""
    streamed = _stream(vector, piece)
    assert streamed.error is not None
    out = bytearray(2 * _aead.SEALED_CHUNK_SIZE)
    for _ in range(2):
        with pytest.raises(sealstore.DecryptionError):
            streamed.decryptor.update_into(b"", out)
        with pytest.raises(sealstore.DecryptionError):
            streamed.decryptor.update_into(vector.ct[: _aead.SEALED_CHUNK_SIZE], out)
        with pytest.raises(sealstore.DecryptionError):
            streamed.decryptor.finalize()


@pytest.mark.parametrize("vector", _params(KEY_SIZE))
def test_stream_rejects_invalid_key_size(vector: ChunkedVector) -> None:
    """A key that is not 32 bytes is refused when the StreamDecryptor is made."""
    with pytest.raises(sealstore.InvalidKeyError):
        _aead.StreamDecryptor(vector.key, vector.ctx)


@pytest.mark.parametrize("vector", _params(VALID))
def test_finished_stream_accepts_nothing_more(vector: ChunkedVector) -> None:
    """Once finalized, a StreamDecryptor refuses further data instead of decrypting it."""
    streamed = _stream(vector, None)
    assert streamed.error is None
    with pytest.raises(sealstore.DecryptionError):
        streamed.decryptor.update_into(vector.ct, bytearray(len(vector.ct)))
    with pytest.raises(sealstore.DecryptionError):
        streamed.decryptor.finalize()


@pytest.mark.parametrize("piece", [1000, _aead.SEALED_CHUNK_SIZE + 7])
def test_stream_decryptor_max_output_suffices(piece: int) -> None:
    """A buffer of max_output(len(data)) bytes holds every update_into, whatever the pieces."""
    vector = _BY_ID[5]
    decryptor = _aead.StreamDecryptor(vector.key, vector.ctx)
    produced = bytearray()
    for start in range(0, len(vector.ct), piece):
        data = vector.ct[start : start + piece]
        out = bytearray(_aead.StreamDecryptor.max_output(len(data)))
        count = decryptor.update_into(data, out)
        produced += out[:count]
    produced += decryptor.finalize()
    assert _sha512(bytes(produced)) == vector.msg_sha512


# Whole-body decryption


@pytest.mark.parametrize("vector", _params(VALID))
def test_whole_body_decrypts_valid(vector: ChunkedVector) -> None:
    """decrypt_body_into recovers the message of every valid vector."""
    plaintext = _decrypt_whole_body(vector)
    assert len(plaintext) == vector.msg_length
    assert _sha512(plaintext) == vector.msg_sha512


@pytest.mark.parametrize("vector", _params(REFUSED))
def test_whole_body_refuses_invalid(vector: ChunkedVector) -> None:
    """decrypt_body_into (with plaintext_size sizing its output) refuses every invalid vector."""
    with pytest.raises(sealstore.DecryptionError):
        _decrypt_whole_body(vector)


@pytest.mark.parametrize("vector", _params(KEY_SIZE))
def test_whole_body_rejects_invalid_key_size(vector: ChunkedVector) -> None:
    """decrypt_body_into refuses a key that is not 32 bytes."""
    out = bytearray(_aead.plaintext_size(len(vector.ct)))
    with memoryview(out) as view, pytest.raises(sealstore.InvalidKeyError):
        _aead.decrypt_body_into(vector.key, vector.ctx, vector.ct, view)


# Random-access decryption


@pytest.mark.parametrize("vector", _params(VALID))
def test_reader_reads_valid(vector: ChunkedVector) -> None:
    """DecryptedReader reads the whole message of a valid vector, then reports end of file."""
    with _open(vector) as reader:
        assert reader.size == vector.msg_length
        plaintext = _read(reader)
        assert len(plaintext) == vector.msg_length
        assert _sha512(plaintext) == vector.msg_sha512
        assert reader.tell() == vector.msg_length
        assert _read(reader) == b""


@pytest.mark.parametrize("vector", _params(VALID))
def test_reader_seek_end_authenticates_final_chunk(vector: ChunkedVector) -> None:
    """Seeking from the end of a valid vector decrypts just the final chunk and succeeds."""
    message = _message(vector)
    with _open(vector) as reader:
        assert reader.seek(0, io.SEEK_END) == vector.msg_length
        assert reader.chunks_decrypted == 1
        tail = min(10, vector.msg_length)
        assert reader.seek(-tail, io.SEEK_END) == vector.msg_length - tail
        assert _read(reader) == message[vector.msg_length - tail :]


@pytest.mark.parametrize("vector", _params(VALID))
def test_reader_random_reads_match_stream(vector: ChunkedVector) -> None:
    """Reads at random positions, reached by every kind of seek, equal the streamed slices."""
    message = _message(vector)
    size = len(message)
    boundaries = [k * _aead.CHUNK_SIZE for k in range(1, size // _aead.CHUNK_SIZE + 1)]
    rng = random.Random(vector.tc_id)
    with _open(vector) as reader:
        for _ in range(40):
            if boundaries and rng.random() < 0.5:
                start = max(0, rng.choice(boundaries) + rng.randint(-3, 3))
            else:
                start = rng.randint(0, size + 10)
            length = rng.choice([0, 1, rng.randint(1, 3 * _aead.CHUNK_SIZE)])
            whence = rng.choice([io.SEEK_SET, io.SEEK_CUR, io.SEEK_END])
            if whence == io.SEEK_SET:
                reader.seek(start)
            elif whence == io.SEEK_CUR:
                reader.seek(start - reader.tell(), io.SEEK_CUR)
            else:
                reader.seek(start - size, io.SEEK_END)
            assert reader.tell() == start
            assert _read(reader, length) == message[start : start + length]


@pytest.mark.parametrize("vector", _params(VALID))
def test_reader_at_an_offset_of_a_larger_source(vector: ChunkedVector) -> None:
    """A body stored between other bytes reads the same, given its offset and length."""
    source = io.BytesIO(b"\xa5" * 13 + vector.ct + b"\x5a" * 9)
    with DecryptedReader(source, vector.key, vector.ctx, 13, len(vector.ct)) as reader:
        assert _read(reader) == _message(vector)


@pytest.mark.parametrize("vector", _params(REFUSED))
def test_reader_refuses_invalid(vector: ChunkedVector) -> None:
    """Opening and reading the whole of an invalid vector raises DecryptionError."""
    with pytest.raises(sealstore.DecryptionError):
        _read_whole(vector)


@pytest.mark.parametrize("vector", _params(HEADER_FAILURES))
def test_reader_refuses_header_failure_at_construction(vector: ChunkedVector) -> None:
    """A bad header (short, wrong commitment, wrong key or context) fails on construction."""
    with pytest.raises(sealstore.DecryptionError):
        _open(vector)


@pytest.mark.parametrize("vector", _params(BAD_LENGTH))
def test_reader_refuses_impossible_length_at_construction(vector: ChunkedVector) -> None:
    """A body length no honest encryption produces fails on construction."""
    with pytest.raises(sealstore.DecryptionError):
        _open(vector)


@pytest.mark.parametrize("vector", _params(KEY_SIZE))
def test_reader_rejects_invalid_key_size(vector: ChunkedVector) -> None:
    """A key that is not 32 bytes is refused when the reader is made."""
    with pytest.raises(sealstore.InvalidKeyError):
        _open(vector)


@pytest.mark.parametrize("size", [1000, _aead.CHUNK_SIZE, _aead.CHUNK_SIZE + 1, -1])
@pytest.mark.parametrize("vector", _params(OPENABLE))
def test_reader_returns_at_most_the_valid_prefix_then_keeps_failing(
    vector: ChunkedVector, size: int
) -> None:
    """Sequential reads of an invalid vector stop inside the valid prefix, then always fail."""
    with _open(vector) as reader:
        produced, failed = _read_until_failure(reader, size)
        assert failed
        assert len(produced) <= vector.msg_length
        assert produced == _authentic_prefix(vector)[: len(produced)]
        if len(produced) == vector.msg_length:
            assert _sha512(produced) == vector.msg_sha512
        for _ in range(2):
            with pytest.raises(sealstore.DecryptionError):
                reader.read(1)
            with pytest.raises(sealstore.DecryptionError):
                reader.read()
            with pytest.raises(sealstore.DecryptionError):
                reader.readinto(bytearray(10))
            reader.seek(0)
            with pytest.raises(sealstore.DecryptionError):
                reader.read(1)
            with pytest.raises(sealstore.DecryptionError):
                reader.seek(0, io.SEEK_END)


@pytest.mark.parametrize("vector", _params([v for v in OPENABLE if v.msg_length]))
def test_reader_reads_the_valid_prefix_of_invalid(vector: ChunkedVector) -> None:
    """A read covering only authentic chunks of a damaged body succeeds: reads are local."""
    with _open(vector) as reader:
        assert _read(reader, vector.msg_length) == _authentic_prefix(vector)


@pytest.mark.parametrize("vector", _params(FORGED_FINAL_CHUNK))
def test_reader_seek_end_fails_without_valid_final_chunk(vector: ChunkedVector) -> None:
    """Authenticating the length fails unless the final chunk is valid at its index."""
    with pytest.raises(sealstore.DecryptionError):
        _seek_end(vector)


@pytest.mark.parametrize("vector", _params(VALID_FINAL_CHUNK))
def test_reader_valid_final_chunk_still_refuses_whole_read(vector: ChunkedVector) -> None:
    """With a valid final chunk, seeking to the end may succeed but the message never reads."""
    with _open(vector) as reader:
        with contextlib.suppress(sealstore.DecryptionError):
            reader.seek(0, io.SEEK_END)
        reader.seek(0)
        with pytest.raises(sealstore.DecryptionError):
            reader.read()


# Encryption


@pytest.mark.parametrize(
    "piece", [pytest.param(None, id="whole"), pytest.param(4 * _aead.CHUNK_SIZE, id="64KiB")]
)
@pytest.mark.parametrize("vector", _params(VALID))
def test_stream_encryptor_round_trip(vector: ChunkedVector, piece: int | None) -> None:
    """StreamEncryptor re-encrypts a vector's message into a body both decryptors accept."""
    message = _message(vector)
    size = piece or max(len(message), 1)
    encryptor = _aead.StreamEncryptor(vector.key, vector.ctx)
    out = bytearray(_aead.StreamEncryptor.max_output(size))
    body = bytearray()
    for start in range(0, len(message), size):
        count = encryptor.update_into(message[start : start + size], out)
        body += out[:count]
    body += encryptor.finalize()
    _assert_decrypts_to(vector, bytes(body), message)


@pytest.mark.parametrize("piece", [1000, 16000])
def test_stream_encryptor_max_output_suffices(piece: int) -> None:
    """A buffer of max_output(len(data)) bytes holds every update_into, whatever the pieces."""
    vector = _BY_ID[5]
    message = _message(vector)
    encryptor = _aead.StreamEncryptor(vector.key, vector.ctx)
    body = bytearray()
    for start in range(0, len(message), piece):
        data = message[start : start + piece]
        out = bytearray(_aead.StreamEncryptor.max_output(len(data)))
        count = encryptor.update_into(data, out)
        body += out[:count]
    body += encryptor.finalize()
    _assert_decrypts_to(vector, bytes(body), message)


@pytest.mark.parametrize("vector", _params(VALID))
def test_encrypt_body_into_round_trip(vector: ChunkedVector) -> None:
    """encrypt_body_into re-encrypts a vector's message into a body both decryptors accept."""
    message = _message(vector)
    out = bytearray(_aead.body_size(len(message)))
    with memoryview(out) as view:
        _aead.encrypt_body_into(vector.key, vector.ctx, message, view)
    _assert_decrypts_to(vector, bytes(out), message)


@pytest.mark.parametrize("vector", _params(VALID[:1]))
def test_encryption_is_randomized(vector: ChunkedVector) -> None:
    """Two encryptions of one message under one key and context differ (fresh salts)."""
    message = _message(vector)
    bodies = []
    for _ in range(2):
        out = bytearray(_aead.body_size(len(message)))
        with memoryview(out) as view:
            _aead.encrypt_body_into(vector.key, vector.ctx, message, view)
        bodies.append(bytes(out))
    assert bodies[0] != bodies[1]


# Sizes


@pytest.mark.parametrize("vector", _params(VALID))
def test_plaintext_size_of_valid(vector: ChunkedVector) -> None:
    """plaintext_size maps a valid body's length to msgLength, and body_size maps it back."""
    assert _aead.plaintext_size(len(vector.ct)) == vector.msg_length
    assert _aead.body_size(vector.msg_length) == len(vector.ct)


@pytest.mark.parametrize("vector", _params(DISHONEST_LENGTH))
def test_plaintext_size_refuses_impossible_lengths(vector: ChunkedVector) -> None:
    """A body length no honest encryption produces raises DecryptionError."""
    with pytest.raises(sealstore.DecryptionError):
        _aead.plaintext_size(len(vector.ct))


@pytest.mark.parametrize("vector", _params(HONEST_LENGTH_INVALID))
def test_plaintext_size_of_invalid_with_possible_length(vector: ChunkedVector) -> None:
    """An invalid body of a possible length gets the size that length implies."""
    assert _aead.plaintext_size(len(vector.ct)) == _honest_plaintext_size(len(vector.ct))


@pytest.mark.parametrize(
    "length",
    [0, 1, 55, 56, 57, 71, 72, 73, 16455, 16456, 16457, 16471, 16472, 16473, 32855, 32856, 32872],
)
def test_plaintext_size_around_chunk_boundaries(length: int) -> None:
    """plaintext_size agrees with the spec's layout at lengths around every boundary."""
    expected = _honest_plaintext_size(length)
    if expected is None:
        with pytest.raises(sealstore.DecryptionError):
            _aead.plaintext_size(length)
    else:
        assert _aead.plaintext_size(length) == expected
        assert _aead.body_size(expected) == length


@pytest.mark.parametrize("vector", _params(VALID))
def test_chunk_sealer_reproduces_valid(vector: ChunkedVector) -> None:
    """Resumed from the vector's prefix, the sealer writes the vector's body byte for byte,
    whether the chunks are sealed as one run, or one by one in reverse order."""
    message = _message(vector)
    prefix = vector.ct[: _aead.BODY_PREFIX_SIZE]
    sealer = _aead.ChunkSealer.resume(vector.key, vector.ctx, prefix)
    out = bytearray(_aead.sealed_run_size(len(message), final=True))
    written = sealer.seal_run_into(0, message, out, final=True)
    assert written == len(out)
    assert prefix + bytes(out) == vector.ct
    count = len(message) // _aead.CHUNK_SIZE + 1
    pieces = {
        index: sealer.seal_chunk(
            index, message[index * _aead.CHUNK_SIZE : (index + 1) * _aead.CHUNK_SIZE]
        )
        for index in reversed(range(count))
    }
    assert prefix + b"".join(pieces[index] for index in range(count)) == vector.ct


@pytest.mark.parametrize("vector", _params(KEY_SIZE))
def test_chunk_sealer_rejects_invalid_key_size(vector: ChunkedVector) -> None:
    with pytest.raises(sealstore.InvalidKeyError):
        _aead.ChunkSealer.resume(vector.key, vector.ctx, vector.ct[: _aead.BODY_PREFIX_SIZE])


def test_new_chunk_sealer_body_decrypts_and_resumes_only_from_its_prefix() -> None:
    key, context = bytes(range(32)), b"ctx"
    sealer = _aead.ChunkSealer.new(key, context)
    message = bytes(range(256)) * 200
    out = bytearray(_aead.sealed_run_size(len(message), final=True))
    sealer.seal_run_into(0, message, out, final=True)
    body = sealer.prefix + bytes(out)
    plain = bytearray(len(message))
    _aead.decrypt_body_into(key, context, body, memoryview(plain))
    assert plain == message
    assert repr(sealer) == "ChunkSealer(<key hidden>)"
    forged = bytes([sealer.prefix[0] ^ 1]) + sealer.prefix[1:]
    with pytest.raises(sealstore.DecryptionError):
        _aead.ChunkSealer.resume(key, context, forged)
    with pytest.raises(ValueError, match="whole chunks"):
        sealer.seal_run_into(0, b"x", bytearray(17), final=False)
    with pytest.raises(ValueError, match="2\\^38"):
        sealer.seal_chunk(_aead.MAX_CHUNKS, b"")
    with pytest.raises(ValueError, match="2\\^38"):
        sealer.seal_run_into(_aead.MAX_CHUNKS, b"", bytearray(16), final=True)
