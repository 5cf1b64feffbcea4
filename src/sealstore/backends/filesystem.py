"""``FileSystemBackend``: one file per object under a root directory, replaced atomically.

An object named ``a/b/c`` is the file ``root/a/b/c``, holding exactly the object's bytes.
A write goes to a temporary file in the object's directory (named with
:data:`~sealstore.backends._names.RESERVED_PREFIX`, which no object name may use), is fsynced,
renamed over the object and made durable with an fsync of the directory: a writer killed at
any moment leaves the old object or the new one, never a part of either.

Names cannot escape the root. Besides the name rules every backend applies (no ``..``, no
leading ``/``, no NUL...), every path is opened one segment at a time, each relative to the
directory opened before it and with ``O_NOFOLLOW``: a symbolic link anywhere under the root
is refused rather than followed, so no link (even one created while an operation runs) can
lead outside. POSIX only.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import secrets
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Final, final

from typing_extensions import Buffer

from sealstore._io import GuardedStream, Readable, ReadableStream, pieces
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
from sealstore.errors import BackendError, InvalidNameError, ObjectNotFoundError

__all__ = ["TEMPORARY_PREFIX", "FileSystemBackend"]

TEMPORARY_PREFIX: Final = RESERVED_PREFIX + "tmp-"
"""File names of writes in progress (or left by a crashed writer): never objects."""

_DIRECTORY_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO someone placed under the root must not hang the reader.
_READ_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CREATE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_WRITES: Final = frozenset({"put", "copy to"})


@final
class FileSystemBackend:
    """Objects as files under ``root`` (created if missing); no metadata is kept.

    Files hold the object's bytes and nothing else, so the directory can be read with any
    tool and existing files are objects already. ``metadata`` given to :meth:`put` is ignored
    (:attr:`keeps_metadata` is false), and there is no etag: one would mean reading the whole
    file on every :meth:`head`. ``last_modified`` is the file's modification time.

    >>> import tempfile
    >>> backend = FileSystemBackend(tempfile.mkdtemp())
    >>> backend.put("reports/q1.txt", b"numbers").size
    7
    >>> with backend.get("reports/q1.txt", start=3) as stream:
    ...     stream.read()
    b'bers'
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        # The root is resolved once: links above it are the caller's choice, links under it
        # are never followed.
        self._root = os.path.realpath(os.fspath(root))
        try:
            os.makedirs(self._root, exist_ok=True)
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise BackendError(f"cannot create the root directory {self._root}: {reason}") from None

    @property
    def root(self) -> str:
        """The absolute path of the root directory, links resolved."""
        return self._root

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
        """Write ``data`` to a temporary file, fsync it, and rename it over ``name``.

        ``metadata`` is ignored. Raises :class:`~sealstore.BackendError` when a prefix of
        ``name`` is an object (``a`` exists, so ``a/b`` cannot) or ``name`` is a directory.
        Files have no etags: ``if_match`` is refused.
        """
        refuse_if_match(self, if_match)
        return self._write(name, pieces(data), "put")

    def get(
        self, name: str, *, start: int = 0, end: int | None = None, if_match: str | None = None
    ) -> ReadableStream:
        """A stream of the bytes ``[start, end)`` of ``name``, read from the open file.

        Files have no etags: ``if_match`` is refused.
        """
        refuse_if_match(self, if_match)
        check_range(start, end)
        directories, last = self._split(name)
        with self._seam("get", name):
            parent = self._open_directory(directories, create=False)
            try:
                fd = os.open(last, _READ_FLAGS, dir_fd=parent)
            finally:
                os.close(parent)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise FileNotFoundError(errno.ENOENT, "not a regular file")
                os.lseek(fd, start, os.SEEK_SET)
                file = io.FileIO(fd, "rb", closefd=True)
            except BaseException:
                os.close(fd)
                raise
        return GuardedStream(
            file,
            None if end is None else end - start,
            translate=lambda error: (
                self._failure(error, "read", name) if isinstance(error, OSError) else None
            ),
        )

    def head(self, name: str) -> ObjectInfo:
        """Size and modification time of ``name``, from the file's status."""
        directories, last = self._split(name)
        with self._seam("head", name):
            status = self._status(directories, last)
        return _info(name, status)

    def delete(self, name: str) -> None:
        """Remove the file of ``name``; :class:`~sealstore.ObjectNotFoundError` if there is none.

        Directories left empty stay: they are not objects and cost nothing to list.
        """
        directories, last = self._split(name)
        with self._seam("delete", name):
            parent = self._open_directory(directories, create=False)
            try:
                self._check_regular(os.stat(last, dir_fd=parent, follow_symlinks=False))
                os.unlink(last, dir_fd=parent)
                os.fsync(parent)
            finally:
                os.close(parent)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose name starts with ``prefix``, in name order.

        Walks only the directories that can hold such names, one directory in memory at a
        time; skips links, temporary files and files whose names are not valid object names.
        """
        directory = prefix_directory(prefix)
        if directory is None:
            return iter(())
        return self._walk(prefix, directory)

    def copy(
        self,
        source: str,
        destination: str,
        *,
        metadata: Mapping[str, str] | None = None,
        if_match: str | None = None,
    ) -> ObjectInfo:
        """Copy the bytes of ``source`` to ``destination`` (atomically, like :meth:`put`).

        ``metadata`` is ignored, so copying an object onto itself changes nothing. This
        backend keeps no etags, so it refuses ``if_match``.
        """
        refuse_if_match(self, if_match)
        check_name(destination)
        if source == destination:
            return self.head(source)
        with contextlib.closing(self.get(source)) as stream:
            return self._write(destination, pieces(stream), "copy to")

    def _write(self, name: str, data: Iterator[Buffer], operation: str) -> ObjectInfo:
        directories, last = self._split(name)
        with self._seam(operation, name):
            parent = self._open_directory(directories, create=True)
        try:
            return self._write_in(parent, last, name, data, operation)
        finally:
            os.close(parent)

    def _write_in(
        self, parent: int, last: str, name: str, data: Iterator[Buffer], operation: str
    ) -> ObjectInfo:
        temporary = TEMPORARY_PREFIX + secrets.token_hex(8)
        with self._seam(operation, name):
            fd = os.open(temporary, _CREATE_FLAGS, 0o666, dir_fd=parent)
        try:
            try:
                # The data source's own errors pass through untranslated: they are the caller's.
                for piece in data:
                    with self._seam(operation, name):
                        _write_all(fd, memoryview(piece).cast("B"))
                with self._seam(operation, name):
                    os.fsync(fd)
                    status = os.fstat(fd)
            finally:
                os.close(fd)
            with self._seam(operation, name):
                os.rename(temporary, last, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=parent)
            raise
        with self._seam(operation, name):
            os.fsync(parent)
        return _info(name, status)

    def _walk(self, prefix: str, directory: str) -> Iterator[ObjectInfo]:
        try:
            start = self._open_directory(directory.split("/") if directory else [], create=False)
        except OSError:
            return  # no such directory (or a link, or a file): nothing can match
        base = directory + "/" if directory else ""
        # Entries of one directory, sorted so that a depth-first walk yields names in order:
        # a directory sorts as its name plus "/", which every name under it starts with.
        stack: list[tuple[int, str, Iterator[tuple[str, os.DirEntry[str]]]]] = []
        try:
            stack.append((start, base, self._entries(start, base, prefix)))
            while stack:
                fd, _, entries = stack[-1]
                entry_item = next(entries, None)
                if entry_item is None:
                    os.close(fd)
                    stack.pop()
                    continue
                key, entry = entry_item
                if key.endswith("/"):
                    try:
                        child = os.open(entry.name, _DIRECTORY_FLAGS, dir_fd=fd)
                    except OSError:
                        continue  # removed or replaced by a link since it was listed
                    stack.append((child, key, self._entries(child, key, prefix)))
                    continue
                try:
                    status = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # deleted since it was listed
                if stat.S_ISREG(status.st_mode):
                    yield _info(key, status)
        except OSError as error:
            raise self._failure(error, "list", prefix or "the root") from None
        finally:
            for fd, _, _ in stack:
                os.close(fd)

    @staticmethod
    def _entries(fd: int, base: str, prefix: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
        found: list[tuple[str, os.DirEntry[str]]] = []
        with os.scandir(fd) as listing:
            for entry in listing:
                name = base + entry.name
                if not is_valid_name(name):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    key = name + "/"
                    if key.startswith(prefix) or prefix.startswith(key):
                        found.append((key, entry))
                elif name.startswith(prefix) and entry.is_file(follow_symlinks=False):
                    found.append((name, entry))
        found.sort(key=lambda item: item[0])
        return iter(found)

    def _split(self, name: str) -> tuple[tuple[str, ...], str]:
        check_name(name)
        *directories, last = name.split("/")
        # Implied by the name rules; checked again so no future rule change can open a way out.
        path = os.path.normpath(os.path.join(self._root, *directories, last))
        if os.path.commonpath([self._root, path]) != self._root or path == self._root:
            raise InvalidNameError(f"invalid object name {shown(name)}: it leaves {self!r}")
        return tuple(directories), last

    def _open_directory(self, directories: Sequence[str], *, create: bool) -> int:
        fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for segment in directories:
                try:
                    child = os.open(segment, _DIRECTORY_FLAGS, dir_fd=fd)
                except NotADirectoryError:
                    # Linux reports a link opened with O_NOFOLLOW | O_DIRECTORY as "not a
                    # directory"; say what it really is.
                    if stat.S_ISLNK(os.stat(segment, dir_fd=fd, follow_symlinks=False).st_mode):
                        raise OSError(errno.ELOOP, "a symbolic link") from None
                    raise
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(segment, dir_fd=fd)
                        os.fsync(fd)  # the new directory survives a crash with the object
                    child = os.open(segment, _DIRECTORY_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _status(self, directories: Sequence[str], last: str) -> os.stat_result:
        parent = self._open_directory(directories, create=False)
        try:
            status = os.stat(last, dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(parent)
        self._check_regular(status)
        return status

    @staticmethod
    def _check_regular(status: os.stat_result) -> None:
        if stat.S_ISLNK(status.st_mode):
            raise OSError(errno.ELOOP, "a symbolic link")
        if not stat.S_ISREG(status.st_mode):
            raise FileNotFoundError(errno.ENOENT, "not a regular file")

    @contextlib.contextmanager
    def _seam(self, operation: str, name: str) -> Iterator[None]:
        try:
            yield
        except OSError as error:
            raise self._failure(error, operation, name) from None

    def _failure(self, error: OSError, operation: str, name: str) -> Exception:
        if error.errno == errno.ELOOP:
            return InvalidNameError(
                f"cannot {operation} {shown(name)}: its path in {self!r} goes through a "
                "symbolic link, and FileSystemBackend never follows links"
            )
        if error.errno == errno.ENOTDIR and operation not in _WRITES:
            return ObjectNotFoundError(f"no object named {shown(name)} in {self!r}")
        if error.errno in {errno.ENOTDIR, errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST}:
            return BackendError(
                f"cannot {operation} {shown(name)} in {self!r}: on a file system a name cannot "
                "be both an object and the start of other names followed by '/'; "
                "delete the conflicting object or choose another name"
            )
        return storage_error(error, operation, name, repr(self))

    def __repr__(self) -> str:
        return f"FileSystemBackend({self._root!r})"


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view) :]


def _info(name: str, status: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        name=name,
        size=status.st_size,
        last_modified=datetime.fromtimestamp(status.st_mtime_ns / 1e9, timezone.utc),
    )
