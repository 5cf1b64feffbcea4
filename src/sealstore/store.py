"""``EncryptedStore``: encrypt on write and decrypt on read, against any storage backend.

The store joins the envelope and a :class:`~sealstore.backends.Backend`. Every object it
writes is encrypted under the store's default provider (or a per-call one), with the object's
name bound into its encryption context (as :data:`OBJECT_CONTEXT_KEY`), so ciphertext moved or
copied to another name at the backend no longer decrypts. Reads dispatch on the mode recorded
in the object's header.

Where the backend keeps metadata, the header is stored there (the *detached* placement,
see :mod:`sealstore.placement`): ``list`` then knows plaintext sizes, a ranged read is one
request, and a rewrap rewrites only the metadata. Elsewhere the header is stored in front of
the body (*inline*).
"""

from __future__ import annotations

import contextlib
import io
import itertools
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from typing import Final, Literal, final, overload

import attrs
from typing_extensions import Buffer

from sealstore import _aead, _transfer
from sealstore._io import (
    Chain,
    Readable,
    ReadableStream,
    Writable,
    as_readable,
    read_up_to,
    stream_pieces,
    write_all,
)
from sealstore.backends.base import Backend, ObjectInfo
from sealstore.envelope import (
    EncryptingReader,
    decrypt_stream,
    open_decrypted,
    open_header,
    seal_header,
)
from sealstore.errors import (
    ContextMismatchError,
    DecryptionError,
    FormatError,
    InvalidContextError,
    InvalidKeyError,
    NotEncryptedError,
    ObjectChangedError,
    ObjectNotFoundError,
    ProviderMismatchError,
    SealstoreError,
    WrongKeyError,
)
from sealstore.header import PREFIX_SIZE, Header, Mode, encode_header, header_size, parse_header
from sealstore.keys import PROVIDER_FOR_MODE, KeyProvider, KmsKeys, ManagedKeys
from sealstore.placement import (
    METADATA_KEY,
    Placement,
    inline_metadata,
    looks_inline,
    parse_detached_header,
    place,
    read_marker,
)
from sealstore.reader import DecryptedReader
from sealstore.writer import EncryptedWriter

__all__ = [
    "METADATA_KEY",
    "OBJECT_CONTEXT_KEY",
    "BulkFailure",
    "BulkReport",
    "EncryptedStore",
    "ObjectHead",
    "Progress",
]

_OPEN_WINDOW: Final = 1 << 17
"""Bytes an open on S3 reads with the header: reads within them cost no further request."""

OBJECT_CONTEXT_KEY: Final = "sealstore:object"
"""The encryption-context key under which the store binds each object's name."""
RESERVED_CONTEXT_PREFIX: Final = "sealstore:"

Progress = Callable[[int, int, str], None]
"""Called after each object of a bulk operation with the count processed so far, the total
and the object's name."""
_Outcome = Literal["done", "current", "skipped"]
_READ_WINDOW: Final = 100
"""Objects :meth:`EncryptedStore.get_many` locates ahead by default: one Transit batch."""
_BULK_WINDOW: Final = 256
"""Objects a bulk rewrap locates ahead, so a KMS can open their blobs in one batch."""


@attrs.frozen
class BulkFailure:
    """One object a bulk operation could not process, and why (no key material in it)."""

    name: str
    error: str
    """The name of the sealstore error raised, such as ``"KeyRetiredError"``."""
    message: str


@attrs.frozen
class BulkReport:
    """What a bulk operation (:meth:`EncryptedStore.rewrap_all`,
    :meth:`EncryptedStore.encrypt_existing`) did with the ``total`` objects it listed.

    ``done`` were rewritten; ``current`` needed nothing (already under the current key, or
    already encrypted); ``skipped`` were not there to process (deleted since they were
    listed, or not encrypted for a rewrap); ``failed`` names each object that raised an error,
    which the operation went on past.
    """

    total: int
    done: int
    current: int
    skipped: int
    failed: tuple[BulkFailure, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether no object failed."""
        return not self.failed


@attrs.frozen
class ObjectHead:
    """What the store can tell about an object without decrypting its body.

    ``plaintext_size`` is ``None`` for an inline object listed without reading its header.
    ``context`` is the caller's encryption context (the store's own binding removed).
    ``key_id`` is the KMS key id (KMS mode) or the keyring's version id is in
    ``key_version`` (managed mode).
    """

    name: str
    encrypted: bool
    stored_size: int
    plaintext_size: int | None = None
    mode: Mode | None = None
    key_id: str | None = None
    key_version: str | None = None
    context: Mapping[str, str] = attrs.field(factory=dict)
    placement: Placement | None = None
    etag: str | None = None
    version_id: str | None = None
    detailed: bool = True
    """False for an entry of :meth:`EncryptedStore.list` made from the listing alone (on S3,
    whose listings carry no headers): ``encrypted`` and ``plaintext_size`` are then what the
    stored size implies for an object the store wrote with its header in metadata, and
    ``mode``, keys and ``context`` are unknown; :meth:`EncryptedStore.head` reads them."""
    problem: str | None = None
    """Set when the object's header cannot be read (by :meth:`EncryptedStore.list`: the
    object cannot be read either until it is repaired or restored), or when an object that
    is not encrypted starts like a header of another format version (see
    :meth:`EncryptedStore.encrypt_existing`)."""


@attrs.frozen
class _Located:
    info: ObjectInfo
    header: Header | None
    header_bytes: bytes | None
    placement: Placement | None
    ambiguous: str | None = None
    """Why an object that starts with the magic is not read as encrypted: its prefix is not
    a valid header prefix of this format version (a plaintext object, or a newer format)."""

    @property
    def body_start(self) -> int:
        if self.placement == "inline" and self.header is not None:
            return self.header.size
        return 0


@final
class EncryptedStore:
    """Objects in ``backend``, encrypted under ``keys`` by default.

    >>> import sealstore
    >>> from sealstore.backends import MemoryBackend
    >>> keys = sealstore.ManagedKeys(sealstore.MemoryKeyringStore())
    >>> store = sealstore.EncryptedStore(MemoryBackend(), keys)
    >>> _ = store.put("reports/q3.txt", b"revenue up", context={"team": "finance"})
    >>> store.get("reports/q3.txt")
    b'revenue up'

    ``keys`` is the default for writes, like a bucket's default encryption; ``readers`` are
    more providers the store may use to read objects written in other modes. Customer keys
    are never a default: they are given on every request. Objects the store did not encrypt
    are refused on read unless ``allow_plaintext_reads`` is set (else an attacker with access
    to the storage could swap an encrypted object for a plaintext one);
    :meth:`encrypt_existing` migrates them.
    """

    def __init__(
        self,
        backend: Backend,
        keys: ManagedKeys | KmsKeys | None = None,
        *,
        readers: Iterable[ManagedKeys | KmsKeys] = (),
        allow_plaintext_reads: bool = False,
    ) -> None:
        providers = (*readers, *([keys] if keys is not None else []))
        if any(provider.per_request for provider in providers):
            raise InvalidKeyError(
                "customer keys are supplied on every request (keys=...), never as a store default"
            )
        self.backend = backend
        self.keys = keys
        self.allow_plaintext_reads = allow_plaintext_reads
        self._readers: dict[Mode, KeyProvider] = {}
        for provider in providers:
            if provider.mode in self._readers:
                raise InvalidKeyError(
                    f"two {type(provider).__name__} providers given (keys= and readers= "
                    "together): a store reads each mode with one provider; drop one of them"
                )
            self._readers[provider.mode] = provider

    # ------------------------------------------------------------------ writing

    def put(
        self,
        name: str,
        data: Buffer | Readable | Iterable[bytes],
        *,
        keys: KeyProvider | None = None,
        context: Mapping[str, str] | None = None,
        callback: Callable[[int], None] | None = None,
    ) -> ObjectHead:
        """Encrypt ``data`` (bytes, a binary file object or an iterable of bytes) as ``name``.

        Streams in bounded memory whatever the size. ``callback``, if given, is called with
        the number of plaintext bytes encrypted for the backend since its previous call
        (boto3's ``Callback`` convention).
        """
        return self._put(name, as_readable(data), keys, context, callback)

    def copy(
        self,
        source: str,
        destination: str,
        *,
        keys: KeyProvider | None = None,
        source_keys: KeyProvider | None = None,
        context: Mapping[str, str] | None = None,
    ) -> ObjectHead:
        """Copy ``source`` to ``destination``, re-encrypted for its new name.

        ``keys`` (default: the store's) may be of another mode than the source's: a copy can
        re-key an object. ``context`` defaults to the source's context.
        """
        located = self._locate(source)
        header = self._require_encrypted(source, located)
        provider = self._reader_for(source, header, source_keys)
        # The source must be bound to its own name: a copy must not launder ciphertext that
        # was moved at the backend into a valid object.
        expected = self._expected(source, header, None, provider)
        if context is None:
            context = _user_context(header.context)
        with self._open_located(source, located, provider, expected) as plaintext:
            return self.put(destination, plaintext, keys=keys, context=context)

    def delete(self, name: str) -> None:
        """Remove ``name`` from the backend."""
        self.backend.delete(name)

    # ------------------------------------------------------------------ reading

    def get(
        self,
        name: str,
        *,
        keys: KeyProvider | None = None,
        context: Mapping[str, str] | None = None,
        callback: Callable[[int], None] | None = None,
    ) -> bytes:
        """The plaintext of ``name``. With ``context``, the stored context must equal it.

        ``callback``, if given, is called as for :meth:`download`.
        """
        sink = io.BytesIO()
        self.download(name, sink, keys=keys, context=context, callback=callback)
        return sink.getvalue()

    def download(
        self,
        name: str,
        dst: Writable,
        *,
        keys: KeyProvider | None = None,
        context: Mapping[str, str] | None = None,
        callback: Callable[[int], None] | None = None,
    ) -> int:
        """Decrypt ``name`` into the binary file ``dst`` in bounded memory; return its size.

        Only authenticated plaintext reaches ``dst``; on an error, what was written is an
        incomplete prefix and must be discarded. ``callback``, if given, is called with the
        number of plaintext bytes written to ``dst`` since its previous call (boto3's
        ``Callback`` convention).
        """
        transfers = self._transfers()
        if transfers is not None:
            return self._download_parts(
                transfers, name, dst, keys=keys, context=context, callback=callback
            )
        located = self._locate(name)
        return self._download_located(
            name, located, dst, keys=keys, context=context, callback=callback
        )

    def _download_located(
        self,
        name: str,
        located: _Located,
        dst: Writable,
        *,
        keys: KeyProvider | None,
        context: Mapping[str, str] | None,
        callback: Callable[[int], None] | None,
    ) -> int:
        """:meth:`download` of an object whose header ``located`` holds (read with one
        request, conditional on the etag it was located with)."""
        if located.header is None:
            return self._plaintext_read(name, located, dst, callback)
        provider = self._reader_for(name, located.header, keys)
        expected = self._expected(name, located.header, context, provider)
        with self._same_version(name, located) as body:
            return decrypt_stream(
                body,
                dst,
                provider,
                context=expected,
                header=located.header_bytes,
                callback=callback,
            )

    def get_many(
        self,
        names: Iterable[str],
        *,
        keys: KeyProvider | None = None,
        context: Mapping[str, str] | None = None,
        window: int = _READ_WINDOW,
    ) -> Generator[tuple[str, bytes], None, None]:
        """``(name, plaintext)`` for each of ``names``, in their order, as :meth:`get` reads
        them, with fewer KMS requests.

        ``names`` are taken ``window`` at a time: the headers of a window are read first, so
        a KMS provider whose client decrypts in batches opens their per-object keys in one
        request per key (:meth:`KmsKeys.prefetch`, 100 blobs a request on
        :class:`~sealstore.VaultTransitKms`), then each body is read and decrypted as it is
        yielded. Memory holds ``window`` headers and one object's plaintext (never a window
        of bodies); ``names`` may be any iterable, consumed as the results are. An object
        that cannot be read raises the error :meth:`get` raises for it, after the objects
        before it were yielded. Bodies are read with one request each: for large objects,
        :meth:`download` moves parts concurrently on S3. Closing the generator early drops
        the keys opened ahead.
        """
        if window < 1:
            raise ValueError(f"window must be at least 1, not {window}")
        if isinstance(names, str):
            raise TypeError("get_many() takes an iterable of names, not one name")
        prefetching: dict[int, KmsKeys] = {}
        pending = iter(names)
        try:
            while batch := list(itertools.islice(pending, window)):
                located = self._prefetch_for_read(batch, keys, prefetching)
                for name in batch:
                    yield name, self._get_located(name, located.get(name), keys, context)
        finally:
            for reader in prefetching.values():  # no key opened ahead outlives the reads
                reader.prefetch(())

    def _get_located(
        self,
        name: str,
        located: _Located | None,
        keys: KeyProvider | None,
        context: Mapping[str, str] | None,
    ) -> bytes:
        """The plaintext of ``name``, from the header located ahead if there is one; an
        object replaced since then (or not located) is read afresh, as :meth:`get` would."""
        if located is not None:
            sink = io.BytesIO()
            try:
                self._download_located(
                    name, located, sink, keys=keys, context=context, callback=None
                )
            except ObjectChangedError:
                pass
            else:
                return sink.getvalue()
        return self.get(name, keys=keys, context=context)

    def _prefetch_for_read(
        self,
        names: Sequence[str],
        keys: KeyProvider | None,
        prefetching: dict[int, KmsKeys],
    ) -> dict[str, _Located]:
        """Locate a window of :meth:`get_many`'s objects, and let each KMS provider open
        their per-object keys in as few requests as its client allows. An object that fails
        here is left to fail when it is read, where its error is raised in order."""
        found: dict[str, _Located] = {}
        pending: dict[int, tuple[KmsKeys, list[Header]]] = {}
        for name in names:
            try:
                located = found[name] = self._locate(name)
                header = located.header
                if header is None:
                    continue
                reader = self._reader_for(name, header, keys)
            except SealstoreError:
                continue
            if isinstance(reader, KmsKeys):
                pending.setdefault(id(reader), (reader, []))[1].append(header)
        for reader, headers in pending.values():
            prefetching[id(reader)] = reader
            with contextlib.suppress(SealstoreError):  # each object raises its own error
                reader.prefetch(headers)
        return found

    @contextlib.contextmanager
    def _same_version(self, name: str, located: _Located) -> Iterator[Readable]:
        """The body of the very object whose header ``located`` holds.

        With an etag, the read is conditional on it; an inline header is read again from the
        same stream as the body (one open file). Either way an object replaced since its
        header was read raises :class:`~sealstore.ObjectChangedError`, never a
        :class:`~sealstore.DecryptionError` that would pass a legitimate write for tampering.
        """
        with closing(self.backend.get(name, if_match=located.info.etag)) as stream:
            header = located.header if located.placement == "inline" else None
            if header is not None and read_up_to(stream.read, header.size) != located.header_bytes:
                raise ObjectChangedError(
                    f"{name!r} was replaced while it was being read; read it again"
                )
            yield stream

    @overload
    def open(
        self,
        name: str,
        mode: Literal["rb"] = "rb",
        *,
        keys: KeyProvider | None = None,
        context: Mapping[str, str] | None = None,
    ) -> DecryptedReader: ...

    @overload
    def open(
        self,
        name: str,
        mode: Literal["wb"],
        *,
        keys: KeyProvider | None = None,
        context: Mapping[str, str] | None = None,
    ) -> EncryptedWriter[ObjectHead]: ...

    def open(
        self,
        name: str,
        mode: Literal["rb", "wb"] = "rb",
        *,
        keys: KeyProvider | None = None,
        context: Mapping[str, str] | None = None,
    ) -> DecryptedReader | EncryptedWriter[ObjectHead]:
        """A file over the plaintext of ``name``: to read (``"rb"``) or to write (``"wb"``).

        To read: a seekable file; each read fetches from the backend only the chunks it
        touches (one ranged request) and decrypts only those. With ``context``, the stored
        context must equal it.

        To write: an :class:`~sealstore.writer.EncryptedWriter` that encrypts (under
        ``keys``, default the store's, with ``context``, as :meth:`put` does) and uploads as
        it is written, in bounded memory. The object is stored when the writer is closed;
        an exception inside ``with``, or a writer dropped unclosed, stores nothing.
        """
        if mode == "wb":
            return self._open_writer(name, keys, context)
        if mode != "rb":
            raise ValueError(f"open() mode must be 'rb' or 'wb', not {mode!r}")
        transfers = self._transfers()
        window = b""
        if transfers is None:
            located = self._locate(name)
        else:
            # One GET brings the header (in its metadata) and the first bytes: no HEAD first.
            info, window = transfers.fetch(name, end=_OPEN_WINDOW)
            located = self._located_from(name, info, window)
        header = self._require_encrypted(name, located)
        provider = self._reader_for(name, header, keys)
        expected = self._expected(name, header, context, provider)
        return self._open_located(name, located, provider, expected, window)

    def _open_writer(
        self, name: str, keys: KeyProvider | None, context: Mapping[str, str] | None
    ) -> EncryptedWriter[ObjectHead]:
        provider = self._writer(keys)
        bound = self._bind(name, context)
        transfers = self._transfers()
        if transfers is not None:

            def start_parts(plaintext: Readable) -> Callable[[], ObjectHead]:
                # Wrapped here, in the caller's thread: a key that cannot wrap fails open().
                sealed = seal_header(provider, bound, None)
                return lambda: self._upload(
                    transfers, name, plaintext, provider=provider, sealed=sealed, callback=None
                )

            return EncryptedWriter(start_parts, name=name)

        def start(plaintext: Readable) -> Callable[[], ObjectHead]:
            # Made here, in the caller's thread: a key that cannot wrap fails open().
            body = EncryptingReader(plaintext, provider, context=bound, include_header=False)
            return lambda: self._store(name, body.header, body)

        return EncryptedWriter(start, name=name)

    def head(self, name: str, *, keys: KeyProvider | None = None) -> ObjectHead:
        """What the header says of ``name``, without decrypting its body.

        With ``keys`` the data key is also unwrapped, which proves they are the right keys
        (for a customer-key object: raises :class:`~sealstore.WrongKeyError` otherwise).
        """
        located = self._locate(name)
        if keys is not None and located.header is not None:
            self._reader_for(name, located.header, keys).unwrap_data_key(located.header)
        return _describe(name, located)

    def list(self, prefix: str = "", *, details: bool = False) -> Iterator[ObjectHead]:
        """Every object under ``prefix``, encrypted or not, in name order.

        Where listings carry the headers (metadata), each entry says everything
        :meth:`head` does. On S3, whose listings carry no metadata, the store costs only the
        listing's requests: each entry has ``detailed`` False and the plaintext size the
        stored size implies; with ``details``, each object's header is read too (one request
        per object).
        """
        brief = not details and not getattr(self.backend, "lists_metadata", True)
        for info in self.backend.list(prefix):
            if brief and not info.metadata:
                yield _from_listing(info)
                continue
            try:
                head = self._listed(info)
            except ObjectNotFoundError:  # deleted by someone else since the backend listed it
                continue
            yield head

    def _listed(self, info: ObjectInfo) -> ObjectHead:
        try:
            located = self._locate(info.name, info)
        except FormatError as error:  # one damaged object must not hide the others
            return ObjectHead(
                name=info.name,
                encrypted=True,
                stored_size=info.size,
                etag=info.etag,
                version_id=info.version_id,
                problem=str(error),
            )
        return _describe(info.name, located)

    # ------------------------------------------------------------------ key management

    def rewrap(
        self,
        name: str,
        *,
        keys: KeyProvider | None = None,
        source_keys: KeyProvider | None = None,
        force: bool = False,
    ) -> bool:
        """Re-wrap the data key of ``name`` under the provider's current key; body untouched.

        ``keys`` (default: the store's provider of the object's mode) wraps; ``source_keys``
        unwraps (default: the same). The mode cannot change (it is bound into the body): use
        :meth:`copy` to move an object to another mode. Returns ``False`` when there was
        nothing to do: the object is not encrypted, or already under the current key (unless
        ``force``: for example to move a KMS blob to its key's newest material).
        """
        return self._rewrap_one(name, keys, source_keys, force=force) == "done"

    def rewrap_all(
        self,
        prefix: str = "",
        *,
        keys: KeyProvider | None = None,
        source_keys: KeyProvider | None = None,
        force: bool = False,
        progress: Progress | None = None,
    ) -> BulkReport:
        """:meth:`rewrap` every encrypted object under ``prefix``.

        Goes on past an object that fails, and reports each failure by name; objects already
        under the current key are left as they are (unless ``force``), objects deleted or not
        encrypted meanwhile are skipped.
        """
        located: dict[str, _Located] = {}
        prefetching: dict[int, KmsKeys] = {}

        def prepare(infos: Sequence[ObjectInfo]) -> None:
            located.clear()
            located.update(
                self._prefetch_for_rewrap(infos, keys, source_keys, prefetching, force=force)
            )

        try:
            return self._bulk(
                prefix,
                lambda info: self._rewrap_one(
                    info.name, keys, source_keys, force=force, located=located.pop(info.name, None)
                ),
                progress,
                prepare,
            )
        finally:
            for reader in prefetching.values():  # no key opened ahead outlives the rewrap
                reader.prefetch(())

    def encrypt_existing(
        self,
        prefix: str = "",
        *,
        include_ambiguous: bool = False,
        progress: Progress | None = None,
    ) -> BulkReport:
        """Encrypt, in place, every object under ``prefix`` the store did not encrypt.

        Each replacement is atomic on the backend. Objects already encrypted count as current;
        an object whose header cannot be read is reported as failed, never encrypted twice.
        On backends without metadata, an object that starts with the format's magic but not
        with a header this version reads is *ambiguous* (plaintext that happens to start so,
        or an object of a newer format): it is reported as failed unless
        ``include_ambiguous`` says such objects are plaintext to encrypt.
        """
        return self._bulk(prefix, lambda info: self._encrypt_one(info, include_ambiguous), progress)

    # ------------------------------------------------------------------ internals

    def _bulk(
        self,
        prefix: str,
        one: Callable[[ObjectInfo], _Outcome],
        progress: Progress | None,
        prepare: Callable[[Sequence[ObjectInfo]], None] | None = None,
    ) -> BulkReport:
        infos = list(self.backend.list(prefix))
        counts = {"done": 0, "current": 0, "skipped": 0}
        failed: list[BulkFailure] = []
        for processed, info in enumerate(infos, 1):
            if prepare is not None and processed % _BULK_WINDOW == 1:
                prepare(infos[processed - 1 : processed - 1 + _BULK_WINDOW])
            try:
                counts[one(info)] += 1
            except ObjectNotFoundError:
                counts["skipped"] += 1  # deleted by someone else since it was listed
            except SealstoreError as error:
                failed.append(BulkFailure(info.name, type(error).__name__, str(error)))
            if progress is not None:
                progress(processed, len(infos), info.name)
        return BulkReport(
            len(infos), counts["done"], counts["current"], counts["skipped"], tuple(failed)
        )

    def _encrypt_one(self, info: ObjectInfo, include_ambiguous: bool) -> _Outcome:
        located = self._locate(info.name, info)
        if located.header is not None:
            return "current"
        if located.ambiguous is not None and not include_ambiguous:
            self._require_encrypted(info.name, located)
        # Read and replaced under the etag it was listed with: an object written by someone
        # else meanwhile (encrypted or not) is never encrypted in its place, nor twice.
        etag = located.info.etag
        with closing(self.backend.get(info.name, if_match=etag)) as plaintext:
            self._put(info.name, plaintext, None, None, None, if_match=etag)
        return "done"

    def _writer(self, keys: KeyProvider | None) -> KeyProvider:
        provider = keys if keys is not None else self.keys
        if provider is None:
            raise ProviderMismatchError(
                "this store has no default keys: pass keys=ManagedKeys(...), KmsKeys(...) "
                "or CustomerKeys(...)"
            )
        return provider

    def _bind(self, name: str, context: Mapping[str, str] | None) -> dict[str, str]:
        bound = dict(context or {})
        reserved = sorted(k for k in bound if isinstance(k, str) and k.startswith("sealstore:"))
        if reserved:
            raise InvalidContextError(
                f"context keys starting with {RESERVED_CONTEXT_PREFIX!r} are reserved for the "
                f"store: {', '.join(map(repr, reserved))}"
            )
        bound[OBJECT_CONTEXT_KEY] = name
        return bound

    def _expected(
        self,
        name: str,
        header: Header,
        context: Mapping[str, str] | None,
        provider: KeyProvider,
    ) -> dict[str, str] | None:
        """The context to insist on: the caller's plus the name, or at least the name."""
        if context is not None:
            return self._bind(name, context)
        if header.context.get(OBJECT_CONTEXT_KEY) != name:
            # A header edited in place also names another object: only a header that
            # authenticates was really written for another name and moved here.
            try:
                provider.unwrap_data_key(header)
            except WrongKeyError:
                raise
            except DecryptionError:
                raise DecryptionError(
                    f"the header of {name!r} fails authentication: it was altered (or the "
                    "wrong keys were given); restore the object from a copy"
                ) from None
            raise ContextMismatchError(
                differing=(OBJECT_CONTEXT_KEY,),
                advice=f"{name!r} holds ciphertext written for another name: it was moved or "
                "copied at the backend, which the store refuses",
            )
        return None

    def _reader_for(self, name: str, header: Header, keys: KeyProvider | None) -> KeyProvider:
        if keys is not None:
            return keys  # the envelope checks its mode and names the provider needed
        provider = self._readers.get(header.mode)
        if provider is None:
            needed = PROVIDER_FOR_MODE[header.mode].__name__
            hint = (
                "customer keys are given on every read: pass keys=CustomerKeys(key)"
                if PROVIDER_FOR_MODE[header.mode].per_request
                else f"pass keys={needed}(...) or give the store one in readers="
            )
            raise ProviderMismatchError(f"object {name!r} needs {needed}: {hint}")
        return provider

    def _put(
        self,
        name: str,
        data: Readable,
        keys: KeyProvider | None,
        context: Mapping[str, str] | None,
        callback: Callable[[int], None] | None,
        *,
        if_match: str | None = None,
    ) -> ObjectHead:
        """Encrypt ``data`` as ``name`` and store it in the placement the backend allows."""
        transfers = self._transfers()
        if transfers is not None:
            provider = self._writer(keys)
            sealed = seal_header(provider, self._bind(name, context), None)
            return self._upload(
                transfers,
                name,
                data,
                provider=provider,
                sealed=sealed,
                callback=callback,
                if_match=if_match,
            )
        reader = EncryptingReader(
            data,
            self._writer(keys),
            context=self._bind(name, context),
            include_header=False,
            callback=callback,
        )
        return self._store(name, reader.header, reader, if_match=if_match)

    def _store(
        self, name: str, header: bytes, body: Readable, *, if_match: str | None = None
    ) -> ObjectHead:
        """Store an encrypted ``body`` with its ``header`` where the backend allows."""
        placement, metadata = place(header, keeps_metadata=self.backend.keeps_metadata)
        stored = body if placement == "detached" else Chain(header, body)
        info = self.backend.put(name, stored, metadata=metadata, if_match=if_match)
        located = _Located(attrs.evolve(info, name=name), parse_header(header), header, placement)
        return _describe(name, located)

    def _transfers(self) -> _transfer.TransferBackend | None:
        """The backend, if it moves large bodies in concurrent parts (S3)."""
        backend = self.backend
        return backend if isinstance(backend, _transfer.TransferBackend) else None

    def _upload(
        self,
        transfers: _transfer.TransferBackend,
        name: str,
        data: Readable,
        *,
        provider: KeyProvider,
        sealed: tuple[bytes, bytes, bytes, bytes],
        callback: Callable[[int], None] | None,
        if_match: str | None = None,
    ) -> ObjectHead:
        """Seal ``data`` in concurrent parts under the header made by ``seal_header``."""
        header, immutable, data_key, key_ref = sealed
        sealer = _aead.ChunkSealer.new(data_key, immutable)
        placement, metadata = place(header, keeps_metadata=True)
        lead = sealer.prefix if placement == "detached" else header + sealer.prefix
        target = transfers.uploads(name, metadata=metadata, if_match=if_match)
        response, size = _transfer.upload_sealed(
            data,
            sealer,
            target,
            lead=lead,
            part_size=_transfer.plaintext_part_size(transfers.part_size),
            concurrency=transfers.concurrency,
            callback=callback,
        )
        provider.record_plaintext_bytes(key_ref, size)
        stored = len(lead) - _aead.BODY_PREFIX_SIZE + _aead.body_size(size)
        info = ObjectInfo(
            name=name,
            size=stored,
            metadata=metadata or {},
            etag=getattr(response, "etag", None),
            version_id=getattr(response, "version_id", None),
        )
        return _describe(name, _Located(info, parse_header(header), header, placement))

    def _download_parts(
        self,
        transfers: _transfer.TransferBackend,
        name: str,
        dst: Writable,
        *,
        keys: KeyProvider | None,
        context: Mapping[str, str] | None,
        callback: Callable[[int], None] | None,
    ) -> int:
        """:meth:`download` in concurrent ranged reads, the first of which brings the header.

        The other parts are fetched as soon as the first answer's headers have arrived (they
        bring the header in metadata, the size and the etag), while the first part's bytes
        are still arriving.
        """
        part_size = _transfer.plaintext_part_size(transfers.part_size)
        # One whole part, and the empty final chunk of a body that is exactly one part.
        window = _aead.BODY_PREFIX_SIZE + _aead.sealed_run_size(part_size, final=True)
        info, stream = transfers.open_range(name, end=window)
        with closing(stream):
            placement, _ = read_marker(info.metadata, name)
            if placement is None:
                located = _Located(info, None, None, None)
                if not self.allow_plaintext_reads:
                    self._require_encrypted(name, located)
                copied = _copy_stream(stream, dst, callback)
                if info.size > copied:
                    rest = self.backend.get(name, start=copied, if_match=info.etag)
                    copied += _copy_stream(rest, dst, callback)
                return copied
            lead = read_up_to(stream.read, PREFIX_SIZE if placement == "inline" else 0)
            if placement == "inline" and looks_inline(lead):
                lead += read_up_to(stream.read, header_size(lead) - PREFIX_SIZE)
            located = self._located_from(name, info, lead)
            header = located.header
            assert header is not None  # a marker, so a header or a FormatError
            provider = self._reader_for(name, header, keys)
            expected = self._expected(name, header, context, provider)
            data_key = open_header(header, provider, expected)
            prefix = read_up_to(stream.read, _aead.BODY_PREFIX_SIZE)
            opener = _aead.ChunkOpener(data_key, header.immutable, prefix)
            start = located.body_start
            return _transfer.download_sealed(
                lambda begin, end: transfers.fetch(name, start=begin, end=end, if_match=info.etag)[
                    1
                ],
                opener,
                dst,
                body_start=start,
                body_size=info.size - start,
                first=prefix,
                first_stream=(stream, window - start),
                part_size=part_size,
                concurrency=transfers.concurrency,
                callback=callback,
            )

    def _located_from(self, name: str, info: ObjectInfo, first: bytes) -> _Located:
        """What :meth:`_locate` finds, from a read that returned metadata and first bytes
        (which always cover an inline header: callers read at least the largest header)."""
        placement, header_bytes = read_marker(info.metadata, name)
        if placement is None:
            return _Located(info, None, None, None)
        if header_bytes is not None:
            return _Located(info, parse_detached_header(header_bytes), header_bytes, placement)
        prefix = first[:PREFIX_SIZE]
        if not looks_inline(prefix):
            raise FormatError(f"object {name!r} is marked encrypted but has no header")
        header_bytes = first[: header_size(prefix)]
        return _Located(info, parse_header(header_bytes), header_bytes, "inline")

    def _locate(self, name: str, listed: ObjectInfo | None = None) -> _Located:
        if self.backend.keeps_metadata:
            info = listed if listed is not None and listed.metadata else self.backend.head(name)
            placement, header_bytes = read_marker(info.metadata, name)
            if placement is None:
                return _Located(info, None, None, None)
            if header_bytes is not None:
                return _Located(info, parse_detached_header(header_bytes), header_bytes, placement)
        else:
            info = listed if listed is not None else self.backend.head(name)
        with closing(self.backend.get(name, end=PREFIX_SIZE)) as stream:
            prefix = read_up_to(stream.read, PREFIX_SIZE)
        if not looks_inline(prefix):
            if self.backend.keeps_metadata:  # marked inline, yet no header: damaged
                raise FormatError(f"object {name!r} is marked encrypted but has no header")
            return _Located(info, None, None, None)
        try:
            size = header_size(prefix)
        except FormatError as error:
            if self.backend.keeps_metadata:
                raise
            # Only a prefix valid for this format version makes an object encrypted: plaintext
            # that happens to start with the magic stays readable and can be migrated.
            return _Located(info, None, None, None, ambiguous=str(error))
        with closing(self.backend.get(name, start=PREFIX_SIZE, end=size)) as stream:
            header_bytes = prefix + read_up_to(stream.read, size - PREFIX_SIZE)
        return _Located(info, parse_header(header_bytes), header_bytes, "inline")

    def _require_encrypted(self, name: str, located: _Located) -> Header:
        if located.ambiguous is not None:
            raise FormatError(
                f"object {name!r} starts like a sealstore header but is not one this version "
                f"reads ({located.ambiguous}); if it is plaintext written before encryption, "
                "read it with allow_plaintext_reads=True or encrypt it with "
                "encrypt_existing(include_ambiguous=True)"
            )
        if located.header is None:
            raise NotEncryptedError(
                f"object {name!r} is not encrypted: read it with get() on a store that allows "
                "plaintext reads, or encrypt it with encrypt_existing()"
            )
        return located.header

    def _plaintext_read(
        self,
        name: str,
        located: _Located,
        dst: Writable,
        callback: Callable[[int], None] | None,
    ) -> int:
        if not self.allow_plaintext_reads:
            self._require_encrypted(name, located)
        return _copy_stream(self.backend.get(name), dst, callback)

    def _open_located(
        self,
        name: str,
        located: _Located,
        provider: KeyProvider,
        expected: Mapping[str, str] | None,
        window: bytes = b"",
    ) -> DecryptedReader:
        """A reader over a located object; ``expected`` comes from :meth:`_expected`.

        ``window`` holds the object's first bytes, already read: reads within it are free.
        """
        info = located.info
        source = _RangedSource(self.backend, name, info.size, info.etag, window)
        source.seek(located.body_start)
        return open_decrypted(source, provider, context=expected, header=located.header_bytes)

    def _prefetch_for_rewrap(
        self,
        infos: Sequence[ObjectInfo],
        keys: KeyProvider | None,
        source_keys: KeyProvider | None,
        prefetching: dict[int, KmsKeys],
        *,
        force: bool,
    ) -> dict[str, _Located]:
        """Locate a window of a bulk rewrap's objects, and let a KMS provider open the blobs
        it will need in as few requests as its client allows (:meth:`KmsKeys.prefetch`).

        The objects located are handed to :meth:`_rewrap_one`, so each is still read once; an
        object that fails here is left to fail there, where failures are reported. Each
        provider asked is added to ``prefetching``.
        """
        found: dict[str, _Located] = {}
        pending: dict[int, tuple[KmsKeys, KeyProvider, list[Header]]] = {}
        for info in infos:
            try:
                located = self._locate(info.name, info)
                header = located.header
                if header is None:
                    continue
                found[info.name] = located
                reader = self._reader_for(info.name, header, source_keys)
                wrapping = keys if keys is not None else self._reader_for(info.name, header, None)
                if not isinstance(reader, KmsKeys) or (
                    not force and wrapping.is_current(header.key_ref)
                ):
                    continue
            except SealstoreError:
                continue
            pending.setdefault(id(reader), (reader, wrapping, []))[2].append(header)
        for reader, writer, headers in pending.values():
            prefetching[id(reader)] = reader
            with contextlib.suppress(SealstoreError):  # each object reports its own failure
                reader.prefetch(headers, rewrapped_by=writer)
        return found

    def _rewrap_one(
        self,
        name: str,
        keys: KeyProvider | None,
        source_keys: KeyProvider | None,
        *,
        force: bool,
        located: _Located | None = None,
    ) -> _Outcome:
        if located is None:
            located = self._locate(name)
        header = located.header
        if header is None:
            return "skipped"
        unwrapping = self._reader_for(name, header, source_keys)
        wrapping = keys if keys is not None else self._reader_for(name, header, None)
        if wrapping.mode is not header.mode:
            raise ProviderMismatchError(
                f"a rewrap keeps the mode ({PROVIDER_FOR_MODE[header.mode].__name__} for "
                f"{name!r}): use "
                "copy() to move an object to another mode"
            )
        if not force and wrapping.is_current(header.key_ref):
            return "current"
        # A KMS that re-encrypts the blob itself keeps the key-encryption key inside it.
        rewrapped = wrapping.rewrap_data_key(header, unwrapping)
        data_key = unwrapping.unwrap_data_key(header) if rewrapped is None else None
        if not force and wrapping.is_current(header.key_ref):  # learnt from the KMS's answer
            return "current"
        if data_key is not None:
            rewrapped = wrapping.wrap_data_key(data_key, header.immutable, header.context)
        assert rewrapped is not None  # one of the two ways above
        key_ref, wrapped = rewrapped
        new_header = encode_header(header.mode, header.context_field, key_ref, wrapped)
        etag = located.info.etag
        if located.placement == "detached":
            placement, metadata = place(new_header, keeps_metadata=True)
            if placement == "detached":
                # Conditional on the etag the header was read with: a body replaced meanwhile
                # must not be paired with a header rewrapped from the one it replaced.
                self.backend.copy(name, name, metadata=metadata, if_match=etag)
                return "done"
            # The new header no longer fits in metadata: it moves in front of the body, read
            # and written under the same etag condition.
            with closing(self.backend.get(name, if_match=etag)) as body:
                self.backend.put(name, Chain(new_header, body), metadata=metadata, if_match=etag)
            return "done"
        # One stream from the start: its header must still be the one unwrapped above, so a
        # body written meanwhile by someone else is never paired with this object's data key.
        with closing(self.backend.get(name, if_match=etag)) as stream:
            if read_up_to(stream.read, header.size) != located.header_bytes:
                raise ObjectChangedError(
                    f"{name!r} changed while it was being rewrapped; it was left as it is"
                )
            metadata = inline_metadata(keeps_metadata=self.backend.keeps_metadata)
            self.backend.put(name, Chain(new_header, stream), metadata=metadata, if_match=etag)
        return "done"

    def __repr__(self) -> str:
        return f"EncryptedStore({self.backend!r}, {self.keys!r})"


def _user_context(context: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in context.items() if k != OBJECT_CONTEXT_KEY}


def _copy_stream(
    stream: ReadableStream, dst: Writable, callback: Callable[[int], None] | None
) -> int:
    """Copy a backend's stream to ``dst``, then close it; the bytes copied."""
    copied = 0
    with closing(stream):
        for piece in stream_pieces(stream):
            write_all(dst, memoryview(piece))
            copied += len(piece)
            if callback is not None:
                callback(len(piece))
    return copied


def _from_listing(info: ObjectInfo) -> ObjectHead:
    """An entry from a listing alone: the plaintext size the stored size implies."""
    try:
        size: int | None = _aead.plaintext_size(info.size)
    except DecryptionError:  # no body the store writes has this size
        size = None
    return ObjectHead(
        name=info.name,
        encrypted=size is not None,
        stored_size=info.size,
        plaintext_size=size,
        etag=info.etag,
        version_id=info.version_id,
        detailed=False,
    )


def _describe(name: str, located: _Located) -> ObjectHead:
    info, header = located.info, located.header
    if header is None:
        return ObjectHead(
            name=name,
            encrypted=False,
            stored_size=info.size,
            plaintext_size=info.size,
            etag=info.etag,
            version_id=info.version_id,
            problem=located.ambiguous,
        )
    key_id, key_version = PROVIDER_FOR_MODE[header.mode].describe_key_ref(header.key_ref)
    body = info.size - located.body_start
    try:
        size: int | None = _aead.plaintext_size(body)
    except DecryptionError:  # an impossible size: the body is damaged
        size = None
    return ObjectHead(
        name=name,
        encrypted=True,
        stored_size=info.size,
        plaintext_size=size,
        mode=header.mode,
        key_id=key_id,
        key_version=key_version,
        context=_user_context(header.context),
        placement=located.placement,
        etag=info.etag,
        version_id=info.version_id,
    )


class _RangedSource:
    """A seekable view of a stored object; each read is one ranged request, conditional on
    the object's etag where the backend has etags. Reads within ``window`` (the object's
    first bytes, already read) cost no request."""

    def __init__(
        self, backend: Backend, name: str, size: int, etag: str | None, window: bytes = b""
    ) -> None:
        self._backend = backend
        self._name = name
        self._size = size
        self._etag = etag
        self._window = window
        self._position = 0

    def read(self, size: int = -1, /) -> bytes:
        end = self._size if size is None or size < 0 else min(self._size, self._position + size)
        start = self._position
        if end <= start:
            return b""
        held = len(self._window)
        data = self._window[start:end] if start < held else b""
        if start + len(data) < end:
            get = self._backend.get
            begin = start + len(data)
            with closing(get(self._name, start=begin, end=end, if_match=self._etag)) as stream:
                data += read_up_to(stream.read, end - begin)
        self._position += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position
