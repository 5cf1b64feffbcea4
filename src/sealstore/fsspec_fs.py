"""``SealstoreFileSystem``: the ``sealstore`` fsspec protocol, encrypting over any target.

A thin door: each fsspec call becomes a call to an
:class:`~sealstore.EncryptedStore` over :class:`~sealstore.backends.FsspecBackend` (the
target filesystem, under ``root``), so every byte is encrypted and authenticated by the
store, and objects are the same objects the store reads and writes. Paths are the target's
own paths (``/data/x.parquet``, ``bucket/data/x.parquet``); an object's *name*, to which
its ciphertext is bound, is its path relative to ``root``. Registered for fsspec through the
``fsspec.specs`` entry point (extra ``fsspec``), so chained URLs work::

    df.to_parquet("sealstore::s3://bucket/data/x.parquet",
                  storage_options={"sealstore": {"keys": keys}})

Reads are random access: a file opened ``"rb"`` unwraps its data key once, and each block
fsspec fetches decrypts only the chunks it covers. Writes stream through
:meth:`EncryptedStore.open(name, "wb") <sealstore.EncryptedStore.open>`. Never put a
caching filesystem (``simplecache::``, ``blockcache::``, ``filecache::``) *above*
``sealstore::``: it would keep plaintext on disk. Below it, it caches ciphertext.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterable, Iterator
from typing import Any, Final

import fsspec
from fsspec.implementations.chained import ChainedFileSystem
from fsspec.spec import AbstractBufferedFile

from sealstore._io import read_up_to
from sealstore.backends.fsspec import FsspecBackend
from sealstore.errors import FormatError, InvalidKeyError, InvalidNameError, ObjectNotFoundError
from sealstore.keys import CustomerKeys, KeyProvider, KmsKeys, ManagedKeys
from sealstore.reader import DecryptedReader
from sealstore.store import EncryptedStore, ObjectHead

__all__ = ["DEFAULT_BLOCK_SIZE", "SealstoreFileSystem"]

DEFAULT_BLOCK_SIZE: Final = 1 << 20
"""How far a read-mode file reads ahead (1 MiB): one ranged request, 64 chunks decrypted."""


class SealstoreFileSystem(ChainedFileSystem):  # type: ignore[misc]
    """Encrypted files over the fsspec filesystem ``fs`` (or ``target_protocol``).

    ``keys`` encrypt what is written and decrypt what was (``ManagedKeys`` or ``KmsKeys``;
    ``CustomerKeys`` are then given with every request); ``readers`` are more providers to
    read objects of other modes, as :class:`~sealstore.EncryptedStore` takes them. ``root``
    is the path objects' names are relative to (default: the target's root, or the bucket
    of the chained path on object stores); use the same root everywhere the objects are read.

    ``target_protocol``, ``target_options`` and ``fo`` are how fsspec passes the filesystem
    after ``::`` in a chained URL; give either them or ``fs``::

        fs = fsspec.filesystem("sealstore", fs=fsspec.filesystem("memory"), keys=keys)
        fs.pipe_file("/reports/q3.txt", b"revenue up")
        fs.cat_file("/reports/q3.txt")  # b"revenue up"
    """

    protocol = "sealstore"
    root_marker = ""
    # Instances hold keys, and fsspec's instance cache matches constructor arguments by their
    # repr, which hides key material: two filesystems with different keys must never be one.
    cachable = False

    def __init__(
        self,
        keys: ManagedKeys | KmsKeys | CustomerKeys | None = None,
        *,
        readers: Iterable[ManagedKeys | KmsKeys] = (),
        fs: Any = None,
        root: str | None = None,
        target_protocol: str | None = None,
        target_options: dict[str, Any] | None = None,
        fo: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        readers = tuple(readers)
        if keys is None and not readers:
            raise InvalidKeyError(
                "the sealstore filesystem needs keys: pass keys=ManagedKeys(...), KmsKeys(...) "
                "or CustomerKeys(...) (in a URL: storage_options={'sealstore': {'keys': ...}})"
            )
        if fs is None:
            fs = fsspec.filesystem(target_protocol or "file", **(target_options or {}))
        elif target_protocol is not None:
            raise ValueError(
                "give the target filesystem as fs= or as a chained URL "
                f"(sealstore::{target_protocol}://...), not both"
            )
        if root is None:
            root = fs.root_marker or _bucket_of(fs._strip_protocol(fo or ""))
        self.target = fs
        self._base = fs._strip_protocol(root).rstrip("/")
        # Customer keys are never a store's default: they go with every request instead.
        self._request_keys: KeyProvider | None = keys if isinstance(keys, CustomerKeys) else None
        default = None if isinstance(keys, CustomerKeys) else keys
        self.store = EncryptedStore(FsspecBackend(fs, root), default, readers=readers)

    # ------------------------------------------------------------------ files

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        name = self._name(path)
        if mode == "rb":
            with _not_found(path):
                reader = self.store.open(name, keys=self._request_keys)
            return _ReadFile(self, path, reader, block_size, cache_options, **kwargs)
        if mode == "wb":
            if not autocommit:
                raise NotImplementedError(
                    "the sealstore filesystem has no transactions: each file is stored "
                    "atomically when it is closed"
                )
            return self.store.open(name, "wb", keys=self._request_keys)
        raise ValueError(f"the sealstore filesystem opens files 'rb' or 'wb', not {mode!r}")

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """The object at ``path`` (plaintext size), or the directory the target has there."""
        path = self._target_path(path)
        name = self._name(path)
        if name:
            with contextlib.suppress(ObjectNotFoundError):
                return _entry(path, self.store.head(name))
        if self.target.isdir(path):
            return {"name": path, "size": 0, "type": "directory"}
        raise FileNotFoundError(errno.ENOENT, "no such object or directory", path)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """The objects (plaintext sizes) and directories directly under ``path``.

        Files of the target that are not objects (a write in progress) are left out; an
        object whose header cannot be read is listed with ``size`` ``None`` and its
        ``problem``.
        """
        path = self._target_path(path)
        with _not_found(path):
            found = self.target.ls(path, detail=True)
        entries = [entry for entry in map(self._listed, found) if entry is not None]
        entries.sort(key=lambda entry: entry["name"])
        return entries if detail else [entry["name"] for entry in entries]

    def _listed(self, found: dict[str, Any]) -> dict[str, Any] | None:
        path = found["name"]
        if found["type"] == "directory":
            return {"name": path, "size": 0, "type": "directory"}
        try:
            return _entry(path, self.store.head(self._name(path)))
        except (InvalidNameError, ObjectNotFoundError):  # not an object, or deleted since
            return None
        except FormatError as error:
            return {"name": path, "size": None, "type": "file", "problem": str(error)}

    def rm_file(self, path: str) -> None:
        """Delete the object at ``path``."""
        path = self._target_path(path)
        with _not_found(path):
            self.store.delete(self._name(path))

    def rm(
        self, path: str | list[str], recursive: bool = False, maxdepth: int | None = None
    ) -> None:
        """Delete objects, and with ``recursive`` the directories they leave empty."""
        for found in reversed(self.expand_path(path, recursive=recursive, maxdepth=maxdepth)):
            self._remove(found)

    def _remove(self, path: str) -> None:
        try:
            self.rm_file(path)
        except FileNotFoundError:
            if not self.target.isdir(path):
                raise
            # Object stores have no directories; a local one may still hold a write in
            # progress by someone else, which keeps it.
            with contextlib.suppress(OSError):
                self.target.rmdir(path)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy the object at ``path1`` to ``path2``, re-encrypted for its new name."""
        path1, path2 = self._target_path(path1), self._target_path(path2)
        with _not_found(path1):
            self.store.copy(
                self._name(path1),
                self._name(path2),
                keys=self._request_keys,
                source_keys=self._request_keys,
            )

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Make a directory in the target (object stores have none: nothing happens)."""
        self.target.mkdir(self._target_path(path), create_parents=create_parents, **kwargs)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Make a directory and its parents in the target."""
        self.target.makedirs(self._target_path(path), exist_ok=exist_ok)

    def rmdir(self, path: str) -> None:
        """Remove an empty directory of the target."""
        self.target.rmdir(self._target_path(path))

    # ------------------------------------------------------------------ paths

    def _target_path(self, path: str) -> str:
        return str(self.target._strip_protocol(self._strip_protocol(path)))

    def _name(self, path: str) -> str:
        """The object name of ``path``: relative to the root (``""`` for the root itself)."""
        path = self._target_path(path)
        if path.rstrip("/") == self._base:
            return ""
        if not path.startswith(self._base + "/"):
            raise InvalidNameError(
                f"{path!r} is outside the root {self._base or '/'!r} of this sealstore "
                "filesystem: give a path under it, or a filesystem with another root="
            )
        return path[len(self._base) + 1 :]


def _bucket_of(path: str) -> str:
    """The first segment of ``path``: on object stores, the bucket."""
    bucket = path.strip("/").split("/", 1)[0]
    if not bucket:
        raise ValueError(
            "the target filesystem has no root directory (an object store): give root= "
            "(a bucket, or a path in one, such as 'my-bucket/data')"
        )
    return bucket


def _entry(path: str, head: ObjectHead) -> dict[str, Any]:
    return {
        "name": path,
        "size": head.plaintext_size,
        "type": "file",
        "encrypted": head.encrypted,
        "stored_size": head.stored_size,
        "mode": None if head.mode is None else head.mode.name.lower(),
    }


@contextlib.contextmanager
def _not_found(path: str) -> Iterator[None]:
    """fsspec's vocabulary: a missing object is a :class:`FileNotFoundError`."""
    try:
        yield
    except ObjectNotFoundError as error:
        raise FileNotFoundError(errno.ENOENT, "no such object", path) from error


class _ReadFile(AbstractBufferedFile):  # type: ignore[misc]
    """fsspec's buffered file over a :class:`~sealstore.DecryptedReader`: each block fsspec
    fetches is one ranged read, which decrypts only the chunks it covers."""

    DEFAULT_BLOCK_SIZE = DEFAULT_BLOCK_SIZE

    def __init__(
        self,
        fs: SealstoreFileSystem,
        path: str,
        reader: DecryptedReader,
        block_size: int | None,
        cache_options: dict[str, Any] | None,
        **kwargs: Any,
    ) -> None:
        self._reader = reader
        super().__init__(
            fs,
            path,
            "rb",
            block_size=block_size,
            cache_options=cache_options,
            size=reader.size,
            **kwargs,
        )

    def _fetch_range(self, start: int, end: int) -> bytes:
        self._reader.seek(start)
        return read_up_to(self._reader.read, end - start)

    def close(self) -> None:
        """Close the file and the reader under it."""
        super().close()
        self._reader.close()
