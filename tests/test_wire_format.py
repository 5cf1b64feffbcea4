"""An independent decoder written from docs/format.md, checked against what sealstore writes.

The decoder below uses only ``struct`` and ``cryptography`` primitives (AES-GCM, HKDF-Expand,
HMAC) and constants copied from the format page, never sealstore's own codec. If sealstore's
output drifts from the documented layout, or the page from the code, these tests fail.
"""

from __future__ import annotations

import base64
import hmac as stdlib_hmac
import io
import os
import re
import struct
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

import sealstore
from sealstore.backends import MemoryBackend

FORMAT_PAGE = Path(__file__).resolve().parent.parent / "docs" / "format.md"

# Constants, as listed on the format page.
MAGIC = b"SEAL"
VERSION = 1
MODE_MANAGED, MODE_KMS, MODE_CUSTOMER = 1, 2, 3
PREFIX_SIZE = 10
MIN_HEADER, MAX_HEADER = 16, 16384
MAX_CONTEXT = 8192
MAX_KEY_REF = 4096
MAX_WRAPPED = 1024
IMMUTABLE_LABEL = b"sealstore/v1\x00"
FINGERPRINT_LABEL = b"sealstore/v1 customer key fingerprint\x00"
HKDF_INFO_PREFIX = b"c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM\x00"
CUSTOMER_SALT_SIZE, FINGERPRINT_SIZE = 16, 32
WRAP_NONCE_SIZE, WRAPPED_SIZE = 12, 60
CHUNK = 16384
TAG = 16
SEALED_CHUNK = CHUNK + TAG
BODY_SALT_SIZE, COMMITMENT_SIZE = 24, 32
BODY_PREFIX = BODY_SALT_SIZE + COMMITMENT_SIZE
MAX_CHUNKS = 1 << 38


class Refused(Exception):
    """The independent decoder refuses the bytes at ``step`` of the page's decoding table."""

    def __init__(self, step: int, reason: str) -> None:
        super().__init__(f"step {step}: {reason}")
        self.step = step


def u16(value: int) -> bytes:
    """``value`` as a 2-byte big-endian integer."""
    return struct.pack(">H", value)


def encode_context(context: Mapping[str, str] | None) -> bytes:
    """The context field: ``u16(C)`` then the canonical pairs, sorted by UTF-8 key bytes."""
    pairs = sorted((k.encode("utf-8"), v.encode("utf-8")) for k, v in (context or {}).items())
    body = b"".join(u16(len(k)) + k + u16(len(v)) + v for k, v in pairs)
    return u16(len(body)) + body


def encode_header(
    mode: int,
    context_field: bytes,
    key_ref: bytes,
    wrapped_key: bytes,
    *,
    magic: bytes = MAGIC,
    version: int = VERSION,
    length: int | None = None,
    trailer: bytes = b"",
) -> bytes:
    """A header from its fields; ``length`` and ``trailer`` let tests break the rules."""
    rest = context_field + u16(len(key_ref)) + key_ref + u16(len(wrapped_key)) + wrapped_key
    rest += trailer
    size = PREFIX_SIZE + len(rest) if length is None else length
    return magic + struct.pack(">BBI", version, mode, size) + rest


@dataclass(frozen=True)
class Header:
    """The fields of a decoded header, as the format page names them."""

    version: int
    mode: int
    length: int
    context_field: bytes
    context: dict[str, str]
    key_ref: bytes
    wrapped_key: bytes

    @property
    def immutable(self) -> bytes:
        """label || u8(1) || u8(mode) || context field."""
        return IMMUTABLE_LABEL + bytes((self.version, self.mode)) + self.context_field

    @property
    def wrap_ad(self) -> bytes:
        """immutable || u16(R) || key reference."""
        return self.immutable + u16(len(self.key_ref)) + self.key_ref


def _field(raw: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 2 > len(raw):
        raise Refused(7, "a length runs past the header")
    (size,) = struct.unpack_from(">H", raw, pos)
    if pos + 2 + size > len(raw):
        raise Refused(7, "a field runs past the header")
    return raw[pos + 2 : pos + 2 + size], pos + 2 + size


def _decode_context_body(body: bytes) -> dict[str, str]:
    context: dict[str, str] = {}
    pos, previous = 0, None
    while pos < len(body):
        if pos + 2 > len(body):
            raise Refused(9, "a context length runs past the context")
        (key_size,) = struct.unpack_from(">H", body, pos)
        key = body[pos + 2 : pos + 2 + key_size]
        pos += 2 + key_size
        if pos + 2 > len(body):
            raise Refused(9, "a context value length runs past the context")
        (value_size,) = struct.unpack_from(">H", body, pos)
        value = body[pos + 2 : pos + 2 + value_size]
        pos += 2 + value_size
        if pos > len(body):
            raise Refused(9, "a context field runs past the context")
        if not key or (previous is not None and key <= previous):
            raise Refused(9, "context keys must be non-empty and strictly increasing")
        previous = key
        try:
            context[key.decode("utf-8")] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(9, "the context is not UTF-8") from None
    return context


def decode_header(data: bytes) -> Header:
    """Steps 1 to 9: a header from the start of ``data`` (which may continue with the body)."""
    if len(data) < PREFIX_SIZE:
        raise Refused(1, "shorter than the prefix")
    magic, version, mode, length = struct.unpack_from(">4sBBI", data)
    if magic != MAGIC:
        raise Refused(2, "no magic")
    if version != VERSION:
        raise Refused(3, "unsupported version")
    if mode not in (MODE_MANAGED, MODE_KMS, MODE_CUSTOMER):
        raise Refused(4, "unknown mode")
    if not MIN_HEADER <= length <= MAX_HEADER:
        raise Refused(5, "header length out of range")
    if len(data) < length:
        raise Refused(6, "shorter than the header length")
    raw = data[:length]
    context_body, pos = _field(raw, PREFIX_SIZE)
    key_ref, pos = _field(raw, pos)
    wrapped_key, pos = _field(raw, pos)
    if pos != length:
        raise Refused(7, "bytes after the wrapped key")
    if len(context_body) > MAX_CONTEXT:
        raise Refused(8, "context over its cap")
    if not 1 <= len(key_ref) <= MAX_KEY_REF:
        raise Refused(8, "key reference empty or over its cap")
    if not 1 <= len(wrapped_key) <= MAX_WRAPPED:
        raise Refused(8, "wrapped key empty or over its cap")
    context = _decode_context_body(context_body)
    context_field = raw[PREFIX_SIZE : PREFIX_SIZE + 2 + len(context_body)]
    return Header(version, mode, length, context_field, context, key_ref, wrapped_key)


def customer_fingerprint(key: bytes, salt: bytes) -> bytes:
    """HMAC-SHA256(customer key, fingerprint label || salt)."""
    mac = HMAC(key, hashes.SHA256())
    mac.update(FINGERPRINT_LABEL + salt)
    return mac.finalize()


def unwrap_data_key(
    header: Header, key: bytes, expected_context: Mapping[str, str] | None = None
) -> bytes:
    """Steps 10 to 14: the data key of a customer-mode header."""
    if header.mode != MODE_CUSTOMER:
        raise Refused(10, "not a customer-mode object")
    if expected_context is not None and encode_context(expected_context) != header.context_field:
        raise Refused(11, "the stored context is not the expected one")
    if len(header.key_ref) != CUSTOMER_SALT_SIZE + FINGERPRINT_SIZE:
        raise Refused(12, "a customer key reference is 48 bytes")
    salt, stored = header.key_ref[:CUSTOMER_SALT_SIZE], header.key_ref[CUSTOMER_SALT_SIZE:]
    if not stdlib_hmac.compare_digest(customer_fingerprint(key, salt), stored):
        raise Refused(13, "wrong customer key")
    if len(header.wrapped_key) != WRAPPED_SIZE:
        raise Refused(14, "a customer wrapped key is 60 bytes")
    nonce, sealed = header.wrapped_key[:WRAP_NONCE_SIZE], header.wrapped_key[WRAP_NONCE_SIZE:]
    try:
        return AESGCM(key).decrypt(nonce, sealed, header.wrap_ad)
    except InvalidTag:
        raise Refused(14, "the wrapped key does not open") from None


def body_size(plaintext_size: int) -> int:
    """56 + n + 16 * (n // 16384 + 1)."""
    return BODY_PREFIX + plaintext_size + TAG * (plaintext_size // CHUNK + 1)


def plaintext_size(stored_body_size: int) -> int:
    """Step 15: the plaintext size implied by a body size, or refusal for an invalid one."""
    sealed = stored_body_size - BODY_PREFIX
    full, last = divmod(sealed, SEALED_CHUNK)
    if sealed < TAG or last < TAG or full >= MAX_CHUNKS:
        raise Refused(15, "no honest encryption produces this body size")
    return full * CHUNK + last - TAG


def chunk_offset(index: int) -> int:
    """Where chunk ``index`` starts in the body."""
    return BODY_PREFIX + index * SEALED_CHUNK


@dataclass(frozen=True)
class ChunkKeys:
    """What HKDF-Expand derives for one body."""

    key: bytes
    base_nonce: bytes
    commitment: bytes

    def nonce(self, index: int) -> bytes:
        """base nonce XOR the chunk index, as 96-bit big-endian integers."""
        return (int.from_bytes(self.base_nonce, "big") ^ index).to_bytes(12, "big")


def derive(data_key: bytes, body_salt: bytes, immutable: bytes) -> ChunkKeys:
    """HKDF-Expand-SHA-512 to 76 bytes: chunk key, base nonce, commitment."""
    okm = HKDFExpand(hashes.SHA512(), 76, HKDF_INFO_PREFIX + body_salt + immutable).derive(data_key)
    return ChunkKeys(okm[:32], okm[32:44], okm[44:])


def decrypt_chunks(data_key: bytes, immutable: bytes, body: bytes) -> list[bytes]:
    """Steps 15 to 17: the plaintext of every chunk, each found at its documented offset."""
    size = plaintext_size(len(body))
    keys = derive(data_key, body[:BODY_SALT_SIZE], immutable)
    if not stdlib_hmac.compare_digest(keys.commitment, body[BODY_SALT_SIZE:BODY_PREFIX]):
        raise Refused(16, "the commitment does not match")
    aead = AESGCM(keys.key)
    chunks = []
    for index in range(size // CHUNK + 1):
        start = chunk_offset(index)
        sealed = body[start : min(start + SEALED_CHUNK, len(body))]
        try:
            chunks.append(aead.decrypt(keys.nonce(index), sealed, b""))
        except InvalidTag:
            raise Refused(17, f"chunk {index} does not authenticate") from None
    return chunks


def decode_detached(
    header_bytes: bytes,
    body: bytes,
    key: bytes,
    expected_context: Mapping[str, str] | None = None,
) -> bytes:
    """The plaintext of an object whose header is stored apart from its body."""
    header = decode_header(header_bytes)
    if header.length != len(header_bytes):
        raise Refused(7, "a detached header is exactly its header length")
    data_key = unwrap_data_key(header, key, expected_context)
    return b"".join(decrypt_chunks(data_key, header.immutable, body))


def decode(blob: bytes, key: bytes, expected_context: Mapping[str, str] | None = None) -> bytes:
    """The plaintext of an inline object, through every documented check in order."""
    header = decode_header(blob)
    data_key = unwrap_data_key(header, key, expected_context)
    return b"".join(decrypt_chunks(data_key, header.immutable, blob[header.length :]))


# --------------------------------------------------------------------------------------------
# sealstore's output against the page.


def _encrypt(
    plaintext: bytes, keys: sealstore.CustomerKeys, context: dict[str, str] | None
) -> bytes:
    return sealstore.encrypt(plaintext, keys, context=context)


def _encrypt_stream(
    plaintext: bytes, keys: sealstore.CustomerKeys, context: dict[str, str] | None
) -> bytes:
    sink = io.BytesIO()
    written = sealstore.encrypt_stream(io.BytesIO(plaintext), sink, keys, context=context)
    assert written == len(sink.getvalue())
    return sink.getvalue()


Producer = Callable[[bytes, sealstore.CustomerKeys, dict[str, str] | None], bytes]
Reader = Callable[[bytes, sealstore.CustomerKeys, dict[str, str] | None], bytes]
PRODUCERS = [pytest.param(_encrypt, id="encrypt"), pytest.param(_encrypt_stream, id="stream")]
SIZES = [0, 1, 16383, 16384, 16385, 2 * CHUNK + 100]
CONTEXTS = [
    pytest.param(None, id="no-context"),
    pytest.param({}, id="empty-context"),
    pytest.param({"tenant": "acme"}, id="one-pair"),
    pytest.param(
        {"object": "reports/2026/q3.csv", "région": "eu-west-3", "b": "", "aa": "x"},
        id="unicode-and-ordering",
    ),
]


@pytest.mark.parametrize("produce", PRODUCERS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("context", CONTEXTS)
def test_fresh_objects_follow_the_documented_layout(
    produce: Producer, size: int, context: dict[str, str] | None
) -> None:
    """Every header field and the body size are as documented, and the decoder decrypts."""
    key = os.urandom(32)
    plaintext = os.urandom(size)
    blob = produce(plaintext, sealstore.CustomerKeys(key), context)

    assert blob[:4] == b"SEAL"
    assert blob[4] == 1
    assert blob[5] == 3
    (length,) = struct.unpack(">I", blob[6:10])
    header = decode_header(blob)
    assert header.length == length
    assert header.context_field == encode_context(context)
    assert header.context == (context or {})
    assert len(header.key_ref) == 48
    assert len(header.wrapped_key) == 60
    assert length == 16 + (len(header.context_field) - 2) + 48 + 60
    rebuilt = encode_header(3, header.context_field, header.key_ref, header.wrapped_key)
    assert rebuilt == blob[:length]
    salt, fingerprint = header.key_ref[:16], header.key_ref[16:]
    assert fingerprint == customer_fingerprint(key, salt)
    assert header.immutable == b"sealstore/v1\x00\x01\x03" + encode_context(context)
    assert header.wrap_ad == header.immutable + b"\x00\x30" + header.key_ref

    body = blob[length:]
    assert len(body) == body_size(size) == 56 + size + 16 * (size // 16384 + 1)
    assert plaintext_size(len(body)) == size
    assert decode(blob, key, context) == plaintext


def test_context_encoding_is_the_documented_bytes() -> None:
    """{"b": "2", "aa": "1"} is stored as the context field shown on the format page."""
    keys = sealstore.CustomerKeys(os.urandom(32))
    blob = sealstore.encrypt(b"", keys, context={"b": "2", "aa": "1"})
    expected = bytes.fromhex("000d00026161000131000162000132")
    assert blob[10 : 10 + len(expected)] == expected
    assert encode_context({"b": "2", "aa": "1"}) == expected


def test_context_keys_sort_by_utf8_bytes() -> None:
    """Pairs are ordered by the UTF-8 bytes of their keys, whatever the insertion order."""
    context = {"é": "1", "z": "2", "Z": "3", "ab": "4", "a": "5"}
    keys = sealstore.CustomerKeys(os.urandom(32))
    header = decode_header(sealstore.encrypt(b"x", keys, context=context))
    assert list(header.context) == ["Z", "a", "ab", "z", "é"]
    assert header.context_field == encode_context(context)


def test_context_cap_is_8192_bytes_of_context_body() -> None:
    """A context body of exactly 8192 bytes is stored; one more byte is refused."""
    key = os.urandom(32)
    keys = sealstore.CustomerKeys(key)
    at_cap = {"k": "v" * (8192 - 5)}
    blob = sealstore.encrypt(b"data", keys, context=at_cap)
    header = decode_header(blob)
    assert struct.unpack(">H", blob[10:12]) == (8192,)
    assert header.length == 16 + 8192 + 48 + 60
    assert decode(blob, key, at_cap) == b"data"
    with pytest.raises(sealstore.InvalidContextError):
        sealstore.encrypt(b"data", keys, context={"k": "v" * (8192 - 4)})


def test_chunks_sit_at_documented_offsets_with_xored_nonces() -> None:
    """Chunk k is at H + 56 + k * 16400 and opens alone with base nonce XOR k."""
    key = os.urandom(32)
    plaintext = os.urandom(3 * CHUNK + 5)
    blob = sealstore.encrypt(plaintext, sealstore.CustomerKeys(key))
    header = decode_header(blob)
    body = blob[header.length :]
    derived = derive(unwrap_data_key(header, key), body[:24], header.immutable)
    assert body[24:56] == derived.commitment
    aead = AESGCM(derived.key)
    sealed_sizes = [16400, 16400, 16400, 5 + 16]
    for index, sealed_size in enumerate(sealed_sizes):
        start = header.length + 56 + index * 16400
        sealed = blob[start : start + sealed_size]
        piece = aead.decrypt(derived.nonce(index), sealed, b"")
        assert piece == plaintext[index * CHUNK : (index + 1) * CHUNK]
    assert derived.nonce(3)[:7] == derived.base_nonce[:7]
    assert header.length + 56 + sum(sealed_sizes) == len(blob)
    with sealstore.open_decrypted(io.BytesIO(blob), sealstore.CustomerKeys(key)) as reader:
        reader.seek(2 * CHUNK)
        assert reader.read(CHUNK) == plaintext[2 * CHUNK : 3 * CHUNK]


def test_one_key_provider_instance_reuses_its_key_reference() -> None:
    """Objects from one CustomerKeys share salt and fingerprint; wraps and body salts differ."""
    key = os.urandom(32)
    keys = sealstore.CustomerKeys(key)
    first, second = (sealstore.encrypt(b"same", keys) for _ in range(2))
    one, two = decode_header(first), decode_header(second)
    assert one.key_ref == two.key_ref
    assert one.wrapped_key[:12] != two.wrapped_key[:12]
    assert first[one.length : one.length + 24] != second[two.length : two.length + 24]
    other = decode_header(sealstore.encrypt(b"same", sealstore.CustomerKeys(key)))
    assert other.key_ref[:16] != one.key_ref[:16]
    assert other.key_ref[16:] == customer_fingerprint(key, other.key_ref[:16])


def test_detached_placement_is_the_same_bytes_split_at_the_header_length() -> None:
    """The header alone and the body alone decode, and the body size gives the plaintext size."""
    key = os.urandom(32)
    plaintext = os.urandom(CHUNK + 7)
    blob = sealstore.encrypt(plaintext, sealstore.CustomerKeys(key), context={"name": "a/b"})
    (length,) = struct.unpack(">I", blob[6:10])
    header_bytes, body = blob[:length], blob[length:]
    assert plaintext_size(len(body)) == len(plaintext)
    assert decode_detached(header_bytes, body, key, {"name": "a/b"}) == plaintext
    keys = sealstore.CustomerKeys(key)
    assert sealstore.decrypt(header_bytes + body, keys, context={"name": "a/b"}) == plaintext


def test_store_metadata_holds_the_header_as_documented() -> None:
    """On storage with metadata, the `sealstore` key holds "detached:" + base64 of the header
    (and the stored object is the body), or "inline" past 1536 characters (header + body)."""
    backend = MemoryBackend()
    key = os.urandom(32)
    store = sealstore.EncryptedStore(backend)
    store.put("small", b"payload", keys=sealstore.CustomerKeys(key))
    marker = backend.head("small").metadata["sealstore"]
    assert marker.startswith("detached:")
    header_bytes = base64.b64decode(marker[len("detached:") :], validate=True)
    with closing(backend.get("small")) as stored:
        body = stored.read()
    context = {"sealstore:object": "small"}
    assert decode_detached(header_bytes, body, key, context) == b"payload"
    store.put("large", b"payload", keys=sealstore.CustomerKeys(key), context={"k": "v" * 1200})
    assert backend.head("large").metadata == {"sealstore": "inline"}
    with closing(backend.get("large")) as stored:
        blob = stored.read()
    (length,) = struct.unpack(">I", blob[6:10])
    context = {"k": "v" * 1200, "sealstore:object": "large"}
    assert decode_detached(blob[:length], blob[length:], key, context) == b"payload"


def test_documented_size_formulas_at_the_edges() -> None:
    """The body size and plaintext size formulas agree at chunk boundaries and at the limit."""
    assert [body_size(n) for n in (0, 1, 16383, 16384, 16385)] == [72, 73, 16455, 16472, 16473]
    for n in (0, 1, 16383, 16384, 16385, 100_000, 2**52 - 1):
        assert plaintext_size(body_size(n)) == n
    assert body_size(2**52 - 1) == 56 + (2**38 - 1) * 16400 + 16 + 16383
    for invalid in (0, 55, 56, 71, 56 + 16400, 56 + 16400 + 15, 56 + 2**38 * 16400 + 16):
        with pytest.raises(Refused):
            plaintext_size(invalid)


class _VirtualSource:
    """A seekable source that reports ``total`` bytes but holds only the first ``blob``."""

    def __init__(self, blob: bytes, total: int) -> None:
        self._blob = blob
        self._total = total
        self._position = 0

    def read(self, size: int = -1, /) -> bytes:
        end = len(self._blob) if size < 0 else self._position + size
        data = self._blob[self._position : end]
        self._position += len(data)
        return data

    def seek(self, offset: int, whence: int = 0, /) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._total}[whence]
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position


@pytest.mark.parametrize(
    ("stored_body_size", "expected"),
    [
        pytest.param(56 + 16400 + 16 + 5, 16389, id="two-chunks"),
        pytest.param(56 + (2**38 - 1) * 16400 + 16 + 16383, 2**52 - 1, id="largest"),
    ],
)
def test_random_access_size_follows_the_formula(stored_body_size: int, expected: int) -> None:
    """open_decrypted reports the plaintext size the formula gives, up to 2^52 - 1 bytes."""
    key = os.urandom(32)
    keys = sealstore.CustomerKeys(key)
    blob = sealstore.encrypt(b"", keys)
    length = decode_header(blob).length
    source = _VirtualSource(blob[: length + 56], length + stored_body_size)
    reader = sealstore.open_decrypted(source, keys)
    assert reader.size == expected == plaintext_size(stored_body_size)


def test_random_access_refuses_more_than_2_to_the_38_chunks() -> None:
    """A body size implying 2^38 + 1 chunks is refused before any chunk is read."""
    keys = sealstore.CustomerKeys(os.urandom(32))
    blob = sealstore.encrypt(b"", keys)
    length = decode_header(blob).length
    source = _VirtualSource(blob[: length + 56], length + 56 + 2**38 * 16400 + 16)
    with pytest.raises(sealstore.DecryptionError):
        sealstore.open_decrypted(source, keys)


@pytest.mark.parametrize(
    ("cut_body_to", "valid_size"),
    [
        (0, False),
        (55, False),
        (56, False),
        (56 + 15, False),
        (56 + 16, True),
        (56 + 16400, False),
        (56 + 16400 + 15, False),
        (56 + 16400 + 16, True),
    ],
)
def test_truncated_bodies_fail_as_the_size_rules_say(cut_body_to: int, valid_size: bool) -> None:
    """Invalid body sizes are refused at step 15, valid-looking ones at a later step."""
    key = os.urandom(32)
    keys = sealstore.CustomerKeys(key)
    blob = sealstore.encrypt(os.urandom(CHUNK + 10), keys)
    length = decode_header(blob).length
    cut = blob[: length + cut_body_to]
    with pytest.raises(Refused) as refused:
        decode(cut, key)
    assert (refused.value.step > 15) is valid_size
    for read in READERS:
        with pytest.raises(sealstore.DecryptionError):
            read(cut, keys, None)


# --------------------------------------------------------------------------------------------
# The decoding table: every documented check, in the documented order.

STEP_ERRORS: dict[int, type[sealstore.SealstoreError]] = {
    **dict.fromkeys(range(1, 10), sealstore.FormatError),
    10: sealstore.ProviderMismatchError,
    11: sealstore.ContextMismatchError,
    12: sealstore.FormatError,
    13: sealstore.WrongKeyError,
    **dict.fromkeys(range(14, 18), sealstore.DecryptionError),
}


def _read_decrypt(
    blob: bytes, keys: sealstore.CustomerKeys, context: dict[str, str] | None
) -> bytes:
    return sealstore.decrypt(blob, keys, context=context)


def _read_stream(
    blob: bytes, keys: sealstore.CustomerKeys, context: dict[str, str] | None
) -> bytes:
    sink = io.BytesIO()
    sealstore.decrypt_stream(io.BytesIO(blob), sink, keys, context=context)
    return sink.getvalue()


def _read_random_access(
    blob: bytes, keys: sealstore.CustomerKeys, context: dict[str, str] | None
) -> bytes:
    with sealstore.open_decrypted(io.BytesIO(blob), keys, context=context) as reader:
        return reader.read()


READERS = [_read_decrypt, _read_stream, _read_random_access]

BASE_CONTEXT = {"tenant": "acme"}


@dataclass(frozen=True)
class Parts:
    """A valid object taken apart, so that a case can rebuild it with one rule broken."""

    header: Header
    body: bytes

    @property
    def blob(self) -> bytes:
        """The object rebuilt unchanged."""
        return self.rebuild()

    def rebuild(
        self,
        *,
        mode: int | None = None,
        context_field: bytes | None = None,
        key_ref: bytes | None = None,
        wrapped_key: bytes | None = None,
        magic: bytes = MAGIC,
        version: int = VERSION,
        length: int | None = None,
        trailer: bytes = b"",
    ) -> bytes:
        """The object with the given header fields replaced."""
        h = self.header
        header = encode_header(
            h.mode if mode is None else mode,
            h.context_field if context_field is None else context_field,
            h.key_ref if key_ref is None else key_ref,
            h.wrapped_key if wrapped_key is None else wrapped_key,
            magic=magic,
            version=version,
            length=length,
            trailer=trailer,
        )
        return header + self.body


def _patch(blob: bytes, offset: int, data: bytes) -> bytes:
    return blob[:offset] + data + blob[offset + len(data) :]


def _flip(blob: bytes, offset: int) -> bytes:
    return _patch(blob, offset, bytes([blob[offset] ^ 0x01]))


def _context_body(*pairs: tuple[bytes, bytes]) -> bytes:
    body = b"".join(u16(len(k)) + k + u16(len(v)) + v for k, v in pairs)
    return u16(len(body)) + body


@dataclass(frozen=True)
class Case:
    """One broken rule: how to break it, the step that catches it, and how to read."""

    step: int
    mutate: Callable[[Parts], bytes]
    expected_context: dict[str, str] | None = None
    other_key: bool = False


def _h(parts: Parts) -> int:
    return parts.header.length


CASES = {
    "empty": Case(1, lambda p: b""),
    "nine-bytes": Case(1, lambda p: p.blob[:9]),
    "magic": Case(2, lambda p: p.rebuild(magic=b"SEAM")),
    "version-0": Case(3, lambda p: p.rebuild(version=0)),
    "version-2": Case(3, lambda p: p.rebuild(version=2)),
    "mode-0": Case(4, lambda p: _patch(p.blob, 5, b"\x00")),
    "mode-4": Case(4, lambda p: _patch(p.blob, 5, b"\x04")),
    "length-15": Case(5, lambda p: p.rebuild(length=15)),
    "length-16385": Case(5, lambda p: p.rebuild(length=16385)),
    "length-2^32-1": Case(5, lambda p: p.rebuild(length=2**32 - 1)),
    "header-cut": Case(6, lambda p: p.blob[: _h(p) - 1]),
    "context-length-past-header": Case(7, lambda p: _patch(p.blob, 10, b"\xff\xff")),
    "wrapped-length-past-header": Case(7, lambda p: _patch(p.blob, _h(p) - 62, b"\x00\x3d")),
    "byte-after-wrapped-key": Case(7, lambda p: p.rebuild(trailer=b"\x00")),
    "context-over-cap": Case(
        8, lambda p: p.rebuild(context_field=_context_body((b"k", b"v" * 8188)))
    ),
    "key-ref-empty": Case(8, lambda p: p.rebuild(key_ref=b"")),
    "key-ref-over-cap": Case(8, lambda p: p.rebuild(key_ref=bytes(4097))),
    "wrapped-empty": Case(8, lambda p: p.rebuild(wrapped_key=b"")),
    "wrapped-over-cap": Case(8, lambda p: p.rebuild(wrapped_key=bytes(1025))),
    "context-pair-runs-past": Case(9, lambda p: p.rebuild(context_field=u16(5) + u16(10) + b"abc")),
    "context-unsorted": Case(
        9, lambda p: p.rebuild(context_field=_context_body((b"b", b""), (b"a", b"")))
    ),
    "context-repeated-key": Case(
        9, lambda p: p.rebuild(context_field=_context_body((b"a", b""), (b"a", b"")))
    ),
    "context-empty-key": Case(9, lambda p: p.rebuild(context_field=_context_body((b"", b"v")))),
    "context-key-not-utf8": Case(
        9, lambda p: p.rebuild(context_field=_context_body((b"\xff", b"v")))
    ),
    "context-value-not-utf8": Case(
        9, lambda p: p.rebuild(context_field=_context_body((b"k", b"\xc3")))
    ),
    "mode-managed": Case(10, lambda p: p.rebuild(mode=MODE_MANAGED)),
    "mode-kms": Case(10, lambda p: p.rebuild(mode=MODE_KMS)),
    "mode-kms-and-context-differs": Case(10, lambda p: p.rebuild(mode=MODE_KMS), {"tenant": "x"}),
    "context-differs": Case(11, lambda p: p.blob, {"tenant": "globex"}),
    "context-missing": Case(11, lambda p: p.blob, {}),
    "context-differs-and-other-key": Case(11, lambda p: p.blob, {"t": "a"}, other_key=True),
    "context-differs-and-short-key-ref": Case(11, lambda p: p.rebuild(key_ref=bytes(47)), {}),
    "key-ref-47": Case(12, lambda p: p.rebuild(key_ref=p.header.key_ref[:47])),
    "key-ref-49": Case(12, lambda p: p.rebuild(key_ref=p.header.key_ref + b"\x00")),
    "other-key": Case(13, lambda p: p.blob, other_key=True),
    "other-key-and-body-cut": Case(13, lambda p: p.blob[:-1], BASE_CONTEXT, other_key=True),
    "salt-flipped": Case(13, lambda p: _flip(p.blob, 28)),
    "fingerprint-flipped": Case(13, lambda p: _flip(p.blob, 28 + 16 + 31)),
    "wrapped-59": Case(14, lambda p: p.rebuild(wrapped_key=p.header.wrapped_key[:59])),
    "wrap-nonce-flipped": Case(14, lambda p: _flip(p.blob, _h(p) - 60)),
    "wrapped-tag-flipped": Case(14, lambda p: _flip(p.blob, _h(p) - 1)),
    "context-edited": Case(
        14, lambda p: p.rebuild(context_field=encode_context({"tenant": "acmf"}))
    ),
    "body-empty": Case(15, lambda p: p.blob[: _h(p)]),
    "body-55": Case(15, lambda p: p.blob[: _h(p) + 55]),
    "body-71": Case(15, lambda p: p.blob[: _h(p) + 71]),
    "body-salt-flipped": Case(16, lambda p: _flip(p.blob, _h(p))),
    "commitment-flipped": Case(16, lambda p: _flip(p.blob, _h(p) + 24 + 31)),
    "chunk-flipped": Case(17, lambda p: _flip(p.blob, _h(p) + 56)),
    "tag-flipped": Case(17, lambda p: _flip(p.blob, len(p.blob) - 1)),
    "byte-appended": Case(17, lambda p: p.blob + b"\x00"),
}


@pytest.mark.parametrize("read", READERS)
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_each_check_raises_its_documented_error(case: Case, read: Reader) -> None:
    """sealstore and the independent decoder both stop at the documented step, with its error."""
    key = os.urandom(32)
    plaintext = b"a short plaintext"
    original = sealstore.encrypt(plaintext, sealstore.CustomerKeys(key), context=BASE_CONTEXT)
    header = decode_header(original)
    parts = Parts(header, original[header.length :])
    assert parts.blob == original
    blob = case.mutate(parts)
    # A case either breaks the bytes or reads them with the wrong key or context.
    assert blob != original or case.other_key or case.expected_context is not None
    reader_key = os.urandom(32) if case.other_key else key

    with pytest.raises(Refused) as refused:
        decode(blob, reader_key, case.expected_context)
    assert refused.value.step == case.step
    with pytest.raises(sealstore.SealstoreError) as raised:
        read(blob, sealstore.CustomerKeys(reader_key), case.expected_context)
    assert type(raised.value) is STEP_ERRORS[case.step]


MALFORMED_EXPECTED_CONTEXTS: list[Any] = [
    {1: "a", "b": "c"},
    {"tenant": 1},
    {"": "acme"},
    {("tenant",): "acme"},
]


@pytest.mark.parametrize("read", READERS)
@pytest.mark.parametrize("expected", MALFORMED_EXPECTED_CONTEXTS, ids=repr)
def test_expected_context_that_could_never_be_stored_is_refused_at_step_11(
    expected: Any, read: Reader
) -> None:
    """An expected context that is not a map of non-empty str to str is InvalidContextError."""
    keys = sealstore.CustomerKeys(os.urandom(32))
    blob = sealstore.encrypt(b"x", keys, context=BASE_CONTEXT)
    with pytest.raises(sealstore.InvalidContextError):
        read(blob, keys, expected)


# --------------------------------------------------------------------------------------------
# The worked example printed on the format page.


def _worked_example() -> tuple[bytes, bytes, str]:
    section = FORMAT_PAGE.read_text(encoding="utf-8").split("## Worked example", 1)[1]
    key_match = re.search(r"^customer key: ([0-9a-f]{64})$", section, re.MULTILINE)
    assert key_match is not None
    dump = re.findall(r"^[0-9a-f]{4}  ((?:[0-9a-f]{2} ?)+)$", section, re.MULTILINE)
    return bytes.fromhex(key_match.group(1)), bytes.fromhex("".join(dump)), section


def _table_rows(section: str) -> list[list[str]]:
    return [
        [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("|")
    ]


def test_worked_example_decodes_as_printed() -> None:
    """The example object on the format page decodes to its plaintext with its key."""
    key, blob, _ = _worked_example()
    assert len(blob) == 227
    assert decode(blob, key, {"tenant": "acme"}) == b"quarterly numbers"
    keys = sealstore.CustomerKeys(key)
    assert sealstore.decrypt(blob, keys, context={"tenant": "acme"}) == b"quarterly numbers"


def test_worked_example_annotations_match_the_bytes() -> None:
    """Every annotated field and intermediate value on the format page is the real one."""
    key, blob, section = _worked_example()
    header = decode_header(blob)
    data_key = unwrap_data_key(header, key)
    derived = derive(data_key, blob[header.length : header.length + 24], header.immutable)
    intermediates = {
        "immutable fields (31 bytes)": header.immutable,
        "wrap AD (81 bytes)": header.wrap_ad,
        "data key (unwrapped)": data_key,
        "chunk key": derived.key,
        "base nonce (also chunk 0's nonce)": derived.base_nonce,
        "commitment (derived, equals the stored one)": derived.commitment,
    }
    next_offset = 0
    seen = set()
    for row in _table_rows(section):
        if len(row) == 4 and re.fullmatch(r"[0-9a-f]{2}", row[0]):
            offset, size = int(row[0], 16), int(row[1])
            assert offset == next_offset
            assert blob[offset : offset + size] == bytes.fromhex(row[2].replace(" ", ""))
            next_offset = offset + size
        elif len(row) == 2 and row[0] in intermediates:
            assert bytes.fromhex(row[1]) == intermediates[row[0]]
            seen.add(row[0])
    assert next_offset == len(blob)
    assert seen == set(intermediates)


def test_multipart_uploads_store_plain_format_v1_in_the_documented_parts(
    moto_bucket: tuple[Any, str],
) -> None:
    """An S3 client multipart upload (full-size last part) stores one ordinary body: part 1
    is the prefix and chunks 0..319, part 2 chunks 320..639, part 3 the empty final chunk."""
    from sealstore.s3 import EncryptingS3Client  # noqa: PLC0415 - needs boto3

    raw, bucket = moto_bucket
    key = os.urandom(32)
    sse: dict[str, Any] = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}
    s3 = EncryptingS3Client(raw)
    name = f"wire-{os.urandom(4).hex()}"
    part = 320 * CHUNK
    plaintext = os.urandom(2 * part)
    upload = s3.create_multipart_upload(Bucket=bucket, Key=name, **sse)["UploadId"]
    etags = [
        s3.upload_part(Bucket=bucket, Key=name, UploadId=upload, PartNumber=n, Body=piece, **sse)[
            "ETag"
        ]
        for n, piece in ((2, plaintext[part:]), (1, plaintext[:part]))
    ]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=name,
        UploadId=upload,
        MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": etags[1]}, {"PartNumber": 2, "ETag": etags[0]}]
        },
        **sse,
    )
    sizes = [
        raw.head_object(Bucket=bucket, Key=name, PartNumber=n)["ContentLength"] for n in (1, 2, 3)
    ]
    assert sizes == [56 + 320 * 16400, 320 * 16400, 16]
    stored = raw.get_object(Bucket=bucket, Key=name)
    body = stored["Body"].read()
    header_bytes = base64.b64decode(stored["Metadata"]["sealstore"].removeprefix("detached:"))
    header = decode_header(header_bytes)
    derived = derive(unwrap_data_key(header, key), body[:24], header.immutable)
    assert body[24:56] == derived.commitment
    aead = AESGCM(derived.key)
    for index in (0, 319, 320, 639):
        sealed = body[chunk_offset(index) : chunk_offset(index) + 16400]
        assert (
            aead.decrypt(derived.nonce(index), sealed, b"")
            == plaintext[index * CHUNK : (index + 1) * CHUNK]
        )
    assert aead.decrypt(derived.nonce(640), body[chunk_offset(640) :], b"") == b""
    assert sealstore.decrypt(body, sealstore.CustomerKeys(key), header=header_bytes) == plaintext
