"""``FsspecBackend``: objects as files of any fsspec filesystem, under a root path.

fsspec is not imported here: the caller builds the filesystem and passes it in, and this
module uses a handful of its methods, described by :class:`FsspecFileSystem`.
"""

from __future__ import annotations

import contextlib
import io
import secrets
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any, Final, Protocol, final

from sealstore._io import PIECE_SIZE, GuardedStream, Readable, ReadableStream, pieces
from sealstore.backends._rules import (
    RESERVED_PREFIX,
    check_name,
    check_range,
    is_valid_name,
    prefix_directory,
    refuse_if_match,
    shown,
    storage_error,
)
from sealstore.backends.base import ObjectInfo
from sealstore.errors import BackendError, ObjectNotFoundError

__all__ = ["TEMPORARY_PREFIX", "FsspecBackend", "FsspecFile", "FsspecFileSystem"]

TEMPORARY_PREFIX: Final = RESERVED_PREFIX + "tmp-"
"""Names of writes in progress (or left by a crashed writer), directly under the root."""

_GLOB_CHARACTERS: Final = frozenset("*?[")
# Keys fsspec implementations use for the modification time, most precise first.
_TIME_KEYS: Final = ("LastModified", "last_modified", "mtime", "modified", "updated", "created")


class FsspecFile(Protocol):
    """The part of an fsspec file object this backend uses."""

    def read(self, size: int = -1, /) -> bytes: ...

    def write(self, data: Any, /) -> Any: ...

    def seek(self, offset: int, whence: int = 0, /) -> Any: ...

    def close(self) -> None: ...


class FsspecFileSystem(Protocol):
    """The methods of ``fsspec.AbstractFileSystem`` this backend uses."""

    def _strip_protocol(self, path: str) -> str: ...

    def open(self, path: str, mode: str = "rb") -> FsspecFile: ...

    def cat_file(self, path: str, start: int | None = None, end: int | None = None) -> bytes: ...

    def info(self, path: str) -> Mapping[str, Any]: ...

    def find(self, path: str, *, detail: bool) -> Mapping[str, Mapping[str, Any]]: ...

    def isdir(self, path: str) -> bool: ...

    def makedirs(self, path: str, exist_ok: bool = False) -> None: ...

    def cp_file(self, path1: str, path2: str) -> None: ...

    def mv(self, path1: str, path2: str) -> None: ...

    def rm_file(self, path: str) -> None: ...


@final
class FsspecBackend:
    """Objects as files of the fsspec filesystem ``fs``, under the path ``root``.

    An object ``a/b`` is the file ``root/a/b``. A write goes to a temporary file directly
    under ``root``, then ``fs.mv`` moves it to its place: on a local filesystem that is one
    atomic rename; elsewhere it is whatever the filesystem's move is (on object stores a
    server-side copy, itself atomic, then a delete). No metadata is kept and there is no
    etag. Symbolic links are whatever the filesystem makes of them: for a local directory,
    :class:`~sealstore.backends.FileSystemBackend` refuses them and fsyncs its writes.

    >>> import fsspec
    >>> backend = FsspecBackend(fsspec.filesystem("memory"), "/example")
    >>> backend.put("a/b.txt", b"hello").size
    5
    >>> [info.name for info in backend.list()]
    ['a/b.txt']
    """

    def __init__(self, fs: FsspecFileSystem, root: str) -> None:
        if _GLOB_CHARACTERS & set(root):
            raise ValueError(
                f"the root {root!r} holds one of * ? [: fsspec would expand it as a pattern"
            )
        self._fs = fs
        self._root = fs._strip_protocol(root)
        # The text every path under the root starts with ("" for a filesystem's own root).
        self._base = self._root.rstrip("/")
        self._where = f"FsspecBackend({type(fs).__name__}, {root!r})"

    @property
    def keeps_metadata(self) -> bool:
        """False: files hold only the object's bytes."""
        return False

    def put(
        self,
        name: str,
        data: bytes | Readable | Iterable[bytes],
        *,
        metadata: Mapping[str, str] | None = None,
        if_match: str | None = None,
    ) -> ObjectInfo:
        """Write ``data`` to a temporary file and move it over ``name``; ``metadata`` is ignored
        and ``if_match`` refused (no etags)."""
        refuse_if_match(self, if_match)
        path = self._path(name)
        source = pieces(data)
        temporary = self._temporary()
        try:
            with self._seam("put", name):
                self._fs.makedirs(self._root, exist_ok=True)
                file = self._fs.open(temporary, "wb")
            try:
                # The data source's own errors pass through untranslated: they are the caller's.
                for piece in source:
                    with self._seam("put", name):
                        file.write(piece)
            finally:
                with self._seam("put", name):
                    file.close()
            self._publish(temporary, path, name)
        except BaseException:
            self._discard(temporary)
            raise
        return self.head(name)

    def get(
        self, name: str, *, start: int = 0, end: int | None = None, if_match: str | None = None
    ) -> ReadableStream:
        """A stream of the bytes ``[start, end)`` of ``name`` (``if_match`` is refused: this
        backend keeps no etags).

        A range of at most 1 MiB is fetched in one ``cat_file`` call (one ranged request on
        object stores); a longer or open-ended one streams from ``fs.open``.
        """
        refuse_if_match(self, if_match)
        path = self._path(name)
        check_range(start, end)
        with self._seam("get", name):
            if end is not None and end - start <= PIECE_SIZE:
                return io.BytesIO(self._fs.cat_file(path, start, end))
            file = self._fs.open(path, "rb")
            try:
                file.seek(start)
            except BaseException:
                file.close()
                raise
        return GuardedStream(
            file,
            None if end is None else end - start,
            translate=lambda error: (
                self._failure(error, "read", name) if isinstance(error, OSError) else None
            ),
        )

    def head(self, name: str) -> ObjectInfo:
        """Size and modification time of ``name``, from ``fs.info``."""
        path = self._path(name)
        with self._seam("head", name):
            info = self._fs.info(path)
        if info.get("type") != "file":
            raise self._missing(name)
        return _object_info(name, info)

    def delete(self, name: str) -> None:
        """Remove the file of ``name``; :class:`~sealstore.ObjectNotFoundError` if there is none."""
        path = self._path(name)
        self.head(name)
        with self._seam("delete", name):
            self._fs.rm_file(path)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose name starts with ``prefix``, in name order.

        Searches only under the directory the prefix names; ``fs.find`` returns the whole
        listing at once, so it is held in memory.
        """
        directory = prefix_directory(prefix)
        if directory is None:
            return iter(())
        top = f"{self._base}/{directory}" if directory else self._root
        with self._seam("list", prefix or "the root"):
            found = self._fs.find(top, detail=True)
        start = len(self._base) + 1
        objects = sorted(
            (path[start:], info)
            for path, info in found.items()
            if path.startswith(self._base + "/") and info.get("type") == "file"
        )
        return iter(
            [
                _object_info(name, info)
                for name, info in objects
                if name.startswith(prefix) and is_valid_name(name)
            ]
        )

    def copy(
        self,
        source: str,
        destination: str,
        *,
        metadata: Mapping[str, str] | None = None,
        if_match: str | None = None,
    ) -> ObjectInfo:
        """Copy ``source`` to ``destination`` with ``fs.cp_file`` (server-side where it can).

        ``metadata`` is ignored, so copying an object onto itself changes nothing. This
        backend keeps no etags, so it refuses ``if_match``.
        """
        refuse_if_match(self, if_match)
        path = self._path(destination)
        original = self.head(source)
        if source == destination:
            return original
        temporary = self._temporary()
        try:
            with self._seam("copy", source):
                self._fs.cp_file(self._path(source), temporary)
            self._publish(temporary, path, destination)
        except BaseException:
            self._discard(temporary)
            raise
        return self.head(destination)

    def _path(self, name: str) -> str:
        return f"{self._base}/{check_name(name)}"

    def _temporary(self) -> str:
        return f"{self._base}/{TEMPORARY_PREFIX}{secrets.token_hex(8)}"

    def _publish(self, temporary: str, path: str, name: str) -> None:
        with self._seam("put", name):
            # fsspec's move puts a file *into* a directory of the target's name: refuse that.
            if self._fs.isdir(path):
                raise BackendError(
                    f"cannot put {shown(name)} in {self._where}: it is a directory (the start "
                    "of other names followed by '/'); choose another name"
                )
            self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            self._fs.mv(temporary, path)

    def _discard(self, temporary: str) -> None:
        with contextlib.suppress(OSError):
            self._fs.rm_file(temporary)

    @contextlib.contextmanager
    def _seam(self, operation: str, name: str) -> Iterator[None]:
        try:
            yield
        except OSError as error:
            raise self._failure(error, operation, name) from None

    def _failure(self, error: OSError, operation: str, name: str) -> Exception:
        # Reading through a file as if it were a directory: some filesystems say "not a
        # directory", fsspec's memory filesystem says "exists".
        if operation != "put" and isinstance(
            error, (IsADirectoryError, NotADirectoryError, FileExistsError)
        ):
            return self._missing(name)
        return storage_error(error, operation, name, self._where)

    def _missing(self, name: str) -> ObjectNotFoundError:
        return ObjectNotFoundError(f"no object named {shown(name)} in {self._where}")

    def __repr__(self) -> str:
        return self._where


def _object_info(name: str, info: Mapping[str, Any]) -> ObjectInfo:
    return ObjectInfo(name=name, size=int(info["size"]), last_modified=_modified(info))


def _modified(info: Mapping[str, Any]) -> datetime | None:
    for key in _TIME_KEYS:
        value = info.get(key)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, timezone.utc)
    return None
