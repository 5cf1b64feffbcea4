"""Envelope encryption of whole objects: header plus chunked body, in memory or streamed.

The object layout (``docs/format.md``) is a header followed by one C2SP chunked-encryption
body whose input key is a fresh random data key. The data key is wrapped by the key provider
and stored in the header.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TypeAlias

from typing_extensions import Buffer

from sealstore import _aead, _bulk
from sealstore._io import (
    PIECE_SIZE,
    Readable,
    SeekableReadable,
    Writable,
    read_up_to,
    stream_pieces,
    write_all,
)
from sealstore.errors import (
    ContextMismatchError,
    FormatError,
    ProviderMismatchError,
    SealstoreError,
)
from sealstore.header import (
    EMPTY_CONTEXT_FIELD,
    IMMUTABLE_PREFIX,
    PREFIX_SIZE,
    Header,
    encode_context,
    encode_header,
    header_size,
    parse_header,
)
from sealstore.keys import PROVIDER_FOR_MODE, KeyProvider, KmsKeys
from sealstore.placement import parse_detached_header
from sealstore.reader import DecryptedReader

__all__ = [
    "EncryptingReader",
    "decrypt",
    "decrypt_many",
    "decrypt_stream",
    "encrypt",
    "encrypt_detached",
    "encrypt_stream",
    "open_decrypted",
]

Context: TypeAlias = "Mapping[str, str] | None"
Callback: TypeAlias = "Callable[[int], None] | None"
"""A byte-progress callback (boto3's ``Callback`` convention): called with the number of
plaintext bytes transferred since the previous call."""

_NO_CONTEXT: Mapping[str, str] = MappingProxyType({})

_IN_PLACE_THRESHOLD = 1 << 16
"""From this plaintext size on, results are built in place rather than concatenated."""


def seal_header(
    keys: KeyProvider, context: Context, size: int | None
) -> tuple[bytes, bytes, bytes, bytes]:
    """A new object's encoded header, immutable fields, data key and key reference.

    ``size`` is the plaintext size when known in advance (bucket keys count bytes).
    """
    context_field = EMPTY_CONTEXT_FIELD if context is None else encode_context(context)
    immutable = IMMUTABLE_PREFIX[keys.mode] + context_field
    data_key = os.urandom(_aead.KEY_SIZE)
    key_ref, wrapped = keys.wrap_data_key(data_key, immutable, context or _NO_CONTEXT)
    if size is not None:
        keys.record_plaintext_bytes(key_ref, size)
    return encode_header(keys.mode, context_field, key_ref, wrapped), immutable, data_key, key_ref


def open_header(header: Header, keys: KeyProvider, context: Context) -> bytes:
    """Check ``header`` against the provider and expected context; return its data key."""
    if header.mode is not keys.mode:
        needed = PROVIDER_FOR_MODE[header.mode].__name__
        raise ProviderMismatchError(
            f"this object was encrypted in {header.mode.name.lower()} mode: "
            f"read it with {needed}, not {type(keys).__name__}"
        )
    if context is not None:
        # A plain dict equal to the stored context needs no encoding: comparing the decoded
        # mappings instead of encoding the expected one saved about 1.4 us of the 11.3 us a
        # 1 KiB decrypt with a two-entry context cost, in an interleaved timeit A/B of the two
        # versions in one process (nox -s bench times the whole round trip, not this part).
        # Anything else is encoded, which refuses what no stored context could be.
        if type(context) is not dict:
            encode_context(context)  # refuses anything that is not a mapping of str to str
        if header.context != context:
            encode_context(context)  # an expected context no object could carry is refused
            _raise_context_mismatch(header.context, context)
    return keys.unwrap_data_key(header)


def _raise_context_mismatch(stored: Mapping[str, str], expected: Mapping[str, str]) -> None:
    raise ContextMismatchError(
        missing=tuple(sorted(expected.keys() - stored.keys())),
        unexpected=tuple(sorted(stored.keys() - expected.keys())),
        differing=tuple(
            sorted(k for k in stored.keys() & expected.keys() if stored[k] != expected[k])
        ),
    )


def encrypt(
    plaintext: Buffer, keys: KeyProvider, *, context: Context = None, threads: int | None = None
) -> bytes:
    """Encrypt ``plaintext`` into one self-contained object (header, then body).

    ``context`` is bound to the object: :func:`decrypt` can insist on it, and any change
    to the stored copy makes decryption fail::

        >>> import os, sealstore
        >>> keys = sealstore.CustomerKeys(os.urandom(32))
        >>> blob = sealstore.encrypt(b"report", keys, context={"tenant": "acme"})
        >>> sealstore.decrypt(blob, keys, context={"tenant": "acme"})
        b'report'

    Plaintexts of 2 MiB and more may be encrypted by ``threads`` threads (default: the
    ``SEALSTORE_THREADS`` environment variable, else one); the output does not depend on
    the thread count.
    """
    if threads is not None:
        _bulk.thread_count(threads)  # a bad count is refused whatever the size
    data = plaintext if type(plaintext) is bytes else memoryview(plaintext).cast("B")
    size = len(data)
    header_bytes, immutable, data_key, _ = seal_header(keys, context, size)
    if size < _IN_PLACE_THRESHOLD:
        return _aead.seal_small(data_key, immutable, header_bytes, data)
    total = len(header_bytes) + _aead.body_size(size)
    # Build a large result inside one buffer that becomes the returned bytes without a copy:
    # a fresh multi-megabyte output is bound by page faults, so a second copy would cost
    # about as much as the encryption itself.
    out = io.BytesIO()
    out.write(header_bytes)
    out.seek(total - 1)
    out.write(b"\0")
    with out.getbuffer() as view, view[len(header_bytes) :] as body:
        if size >= _bulk.PARALLEL_THRESHOLD and (workers := _bulk.thread_count(threads)) > 1:
            _bulk.seal_body_into(data_key, immutable, data, body, threads=workers)
        else:
            _aead.encrypt_body_into(data_key, immutable, data, body)
    return out.getvalue()


def decrypt(
    blob: Buffer,
    keys: KeyProvider,
    *,
    context: Context = None,
    header: Buffer | None = None,
    threads: int | None = None,
) -> bytes:
    """Decrypt an object made by :func:`encrypt`.

    With ``header`` (the detached placement, see :func:`encrypt_detached`), ``blob`` is the
    body alone and ``header`` the header bytes kept elsewhere.

    Raises :class:`~sealstore.FormatError` for bytes that are not a readable object,
    :class:`~sealstore.ProviderMismatchError` for a provider of another mode,
    :class:`~sealstore.ContextMismatchError` if ``context`` is given and differs from the
    stored one, :class:`~sealstore.WrongKeyError` for a wrong customer key, and
    :class:`~sealstore.DecryptionError` for anything modified or truncated.

    Bodies of 2 MiB and more are decrypted by ``threads`` threads (as in :func:`encrypt`).
    """
    if threads is not None:
        _bulk.thread_count(threads)
    if header is None and type(blob) is bytes and len(blob) < _IN_PLACE_THRESHOLD:
        # Small objects: slicing bytes (a small copy) is cheaper than going through views.
        parsed = parse_header(blob)
        data_key = open_header(parsed, keys, context)
        return _aead.open_small(data_key, parsed.immutable, blob[parsed.size :])
    data = memoryview(blob).cast("B")
    if header is None:
        parsed = parse_header(data)
        body = data[parsed.size :]
    else:
        parsed = parse_detached_header(header)
        body = data
    data_key = open_header(parsed, keys, context)
    size = _aead.plaintext_size(len(body))
    if size < _IN_PLACE_THRESHOLD:
        return _aead.open_small(data_key, parsed.immutable, body)
    out = io.BytesIO()
    out.seek(size - 1)
    out.write(b"\0")
    with out.getbuffer() as view:
        if size >= _bulk.PARALLEL_THRESHOLD and (workers := _bulk.thread_count(threads)) > 1:
            _bulk.open_body_into(data_key, parsed.immutable, body, view, threads=workers)
        else:
            _aead.decrypt_body_into(data_key, parsed.immutable, body, view)
    return out.getvalue()


def decrypt_many(
    blobs: Sequence[Buffer], keys: KeyProvider, *, context: Context = None
) -> list[bytes]:
    """:func:`decrypt` each of ``blobs`` (objects made by :func:`encrypt`), in order.

    A :class:`~sealstore.KmsKeys` provider whose client decrypts in batches opens the
    per-object keys of all the blobs first, in one KMS request per key and batch
    (:meth:`~sealstore.KmsKeys.prefetch`), instead of one request per blob. The first blob
    that does not decrypt raises what :func:`decrypt` raises for it.

    >>> import sealstore
    >>> keys = sealstore.ManagedKeys(sealstore.MemoryKeyringStore())
    >>> blobs = [sealstore.encrypt(b"one", keys), sealstore.encrypt(b"two", keys)]
    >>> sealstore.decrypt_many(blobs, keys)
    [b'one', b'two']
    """
    if not isinstance(keys, KmsKeys):
        return [decrypt(blob, keys, context=context) for blob in blobs]
    headers: list[Header] = []
    for blob in blobs:
        with contextlib.suppress(FormatError):  # raised in order by decrypt below
            headers.append(parse_header(memoryview(blob).cast("B")))
    try:
        with contextlib.suppress(SealstoreError):  # each blob raises its own error
            keys.prefetch(headers)
        return [decrypt(blob, keys, context=context) for blob in blobs]
    finally:
        keys.prefetch(())  # no key opened ahead outlives the call


def encrypt_detached(
    plaintext: Buffer, keys: KeyProvider, *, context: Context = None
) -> tuple[bytes, bytes]:
    """Encrypt ``plaintext`` into a header and a body kept apart (the detached placement).

    The two together are exactly the object :func:`encrypt` would make; a backend with
    object metadata keeps the header there::

        >>> import os, sealstore
        >>> keys = sealstore.CustomerKeys(os.urandom(32))
        >>> header, body = sealstore.encrypt_detached(b"data", keys)
        >>> sealstore.decrypt(body, keys, header=header)
        b'data'
    """
    data = plaintext if type(plaintext) is bytes else memoryview(plaintext).cast("B")
    header_bytes, immutable, data_key, _ = seal_header(keys, context, len(data))
    body = bytearray(_aead.body_size(len(data)))
    with memoryview(body) as view:
        _aead.encrypt_body_into(data_key, immutable, data, view)
    return header_bytes, bytes(body)


def encrypt_stream(
    src: Readable,
    dst: Writable,
    keys: KeyProvider,
    *,
    context: Context = None,
    callback: Callback = None,
    threads: int | None = None,
) -> int:
    """Encrypt everything ``src`` yields into ``dst``; return the bytes written.

    Memory stays at a few megabytes whatever the size of the stream. The output is the
    same object :func:`encrypt` produces, readable by all the decryption functions.
    ``callback``, if given, is called with the number of plaintext bytes encrypted and
    written since its previous call (boto3's ``Callback`` convention), once per piece.

    From the second megabyte on, ``threads`` threads encrypt batches of chunks side by side
    (default: the ``SEALSTORE_THREADS`` environment variable, else one); memory stays at
    about ``(threads + 2) x 2 MiB``. ``threads=1`` keeps all the work on the calling thread.
    """
    workers = _bulk.thread_count(threads)
    header_bytes, immutable, data_key, key_ref = seal_header(keys, context, None)
    write_all(dst, memoryview(header_bytes))
    if workers > 1:
        body_written, consumed = _bulk.seal_stream(
            data_key, immutable, src, dst, threads=workers, callback=callback
        )
        keys.record_plaintext_bytes(key_ref, consumed)
        return len(header_bytes) + body_written
    written = len(header_bytes)
    consumed = 0
    encryptor = _aead.StreamEncryptor(data_key, immutable)
    out = bytearray(_aead.StreamEncryptor.max_output(PIECE_SIZE))
    with memoryview(out) as out_view:
        for piece in stream_pieces(src):
            count = encryptor.update_into(piece, out_view)
            write_all(dst, out_view[:count])
            written += count
            consumed += len(piece)
            if callback is not None:
                callback(len(piece))
    tail = encryptor.finalize()
    write_all(dst, memoryview(tail))
    keys.record_plaintext_bytes(key_ref, consumed)
    return written + len(tail)


def decrypt_stream(
    src: Readable,
    dst: Writable,
    keys: KeyProvider,
    *,
    context: Context = None,
    header: Buffer | None = None,
    callback: Callback = None,
    threads: int | None = None,
) -> int:
    """Decrypt an object read from ``src`` into ``dst``; return the plaintext bytes written.

    With ``header`` (the detached placement), ``src`` yields the body alone. ``callback``,
    if given, is called with the number of plaintext bytes written to ``dst`` since its
    previous call (boto3's ``Callback`` convention).

    Only authenticated chunks reach ``dst``. If the object was truncated or altered, what
    was written is a prefix of the true plaintext and :class:`~sealstore.DecryptionError`
    is raised. Treat the output as incomplete whenever an error is raised: when only the
    final chunk is damaged, the prefix written can be every byte of the plaintext.

    ``threads`` threads decrypt large bodies a batch of chunks at a time (as in
    :func:`encrypt_stream`); batches still reach ``dst`` in order, and only once authenticated.
    """
    workers = _bulk.thread_count(threads)
    if header is None:
        prefix = _read_exact(src, PREFIX_SIZE)
        parsed = parse_header(prefix + _read_exact(src, header_size(prefix) - PREFIX_SIZE))
    else:
        parsed = parse_detached_header(header)
    data_key = open_header(parsed, keys, context)
    if workers > 1:
        return _bulk.open_stream(
            data_key, parsed.immutable, src, dst, threads=workers, callback=callback
        )
    decryptor = _aead.StreamDecryptor(data_key, parsed.immutable)
    out = bytearray(_aead.StreamDecryptor.max_output(PIECE_SIZE))
    written = 0
    with memoryview(out) as out_view:
        for piece in stream_pieces(src):
            count = decryptor.update_into(piece, out_view)
            write_all(dst, out_view[:count])
            written += count
            if callback is not None and count:
                callback(count)
    tail = decryptor.finalize()
    write_all(dst, memoryview(tail))
    if callback is not None and tail:
        callback(len(tail))
    return written + len(tail)


def open_decrypted(
    fileobj: SeekableReadable,
    keys: KeyProvider,
    *,
    context: Context = None,
    header: Buffer | None = None,
) -> DecryptedReader:
    """A read-only, seekable file over the plaintext of the object in ``fileobj``.

    The object starts at ``fileobj``'s current position (with ``header``, the detached
    placement, the body does). Reads fetch and decrypt only the chunks they touch::

        >>> import io, os, sealstore
        >>> keys = sealstore.CustomerKeys(os.urandom(32))
        >>> blob = sealstore.encrypt(bytes(range(256)) * 1000, keys)
        >>> with sealstore.open_decrypted(io.BytesIO(blob), keys) as f:
        ...     _ = f.seek(100_000)
        ...     f.read(3)
        b'\\xa0\\xa1\\xa2'
    """
    start = fileobj.tell()
    if header is None:
        prefix = _read_exact(fileobj, PREFIX_SIZE)
        size = header_size(prefix)
        parsed = parse_header(prefix + _read_exact(fileobj, size - PREFIX_SIZE))
    else:
        parsed, size = parse_detached_header(header), 0
    data_key = open_header(parsed, keys, context)
    end = fileobj.seek(0, io.SEEK_END)
    return DecryptedReader(fileobj, data_key, parsed.immutable, start + size, end - start - size)


class EncryptingReader:
    """A readable stream of an object's bytes that encrypts ``src`` as it is read.

    The pull-based twin of :func:`encrypt_stream`, for code that consumes a stream (an
    upload, say) rather than writing to a sink. ``header`` holds the object's header; with
    ``include_header=False`` the stream yields the body alone (a detached placement keeps the
    header elsewhere). ``callback``, if given, is called with the number of plaintext bytes
    consumed since its previous call, as pieces are encrypted. Memory stays within a few
    pieces of ``PIECE_SIZE``::

        >>> import io, os, sealstore
        >>> keys = sealstore.CustomerKeys(os.urandom(32))
        >>> reader = EncryptingReader(io.BytesIO(b"data"), keys)
        >>> sealstore.decrypt(reader.read(), keys)
        b'data'
    """

    def __init__(
        self,
        src: Readable,
        keys: KeyProvider,
        *,
        context: Context = None,
        include_header: bool = True,
        callback: Callback = None,
    ) -> None:
        self.header, immutable, data_key, self._key_ref = seal_header(keys, context, None)
        self._callback = callback
        self._keys = keys
        self._pieces = stream_pieces(src)
        self._encryptor = _aead.StreamEncryptor(data_key, immutable)
        self._pending = bytearray(self.header if include_header else b"")
        self._consumed = 0
        self._finished = False

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes of the object (everything left if ``size`` is negative)."""
        want = PIECE_SIZE if size is None or size < 0 else size
        while not self._finished and (len(self._pending) < want or size is None or size < 0):
            piece = next(self._pieces, None)
            if piece is not None:
                self._consumed += len(piece)
                self._pending += self._encryptor.update(piece)
                if self._callback is not None:
                    self._callback(len(piece))
            else:
                self._pending += self._encryptor.finalize()
                self._finished = True
                self._keys.record_plaintext_bytes(self._key_ref, self._consumed)
        if size is None or size < 0:
            size = len(self._pending)
        out = bytes(self._pending[:size])
        del self._pending[:size]
        return out


def _read_exact(src: Readable, size: int) -> bytes:
    """Exactly ``size`` bytes, or :class:`FormatError` if the source ends first."""
    data = read_up_to(src.read, size)
    if len(data) < size:
        raise FormatError("not a sealstore object: the stream ends inside the header")
    return data
