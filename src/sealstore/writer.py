"""``EncryptedWriter``: a binary file that encrypts and uploads what is written to it.

Backends take a stream to read from (:meth:`~sealstore.backends.Backend.put`); a writer
turns that around. The upload runs in a thread of its own, reading from a pipe that holds at
most ``limit`` bytes: :meth:`EncryptedWriter.write` blocks while the pipe is full, so memory
stays bounded whatever the size of the object. The object exists only once
:meth:`~EncryptedWriter.close` returns: until then every backend keeps the write aside (a
temporary file, an incomplete multipart upload, bytes not yet stored), and discarding the
writer makes the pipe fail, so the backend's own clean-up runs and nothing is left.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Final, Generic, TypeVar

from typing_extensions import Buffer

from sealstore._io import PIECE_SIZE, Readable
from sealstore.errors import BackendError

__all__ = ["EncryptedWriter"]

_T = TypeVar("_T")

DEFAULT_LIMIT: Final = PIECE_SIZE
"""The most bytes a writer holds before :meth:`EncryptedWriter.write` waits for the upload."""


class _Discarded(Exception):
    """Raised to the upload by the pipe of a writer that was discarded."""


class _Pipe:
    """Bytes handed from the writing thread to the uploading one, at most ``limit`` at a time."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._changed = threading.Condition()
        self._finished = False
        self._discarded = False
        self._reader_gone = False

    def write(self, data: memoryview) -> bool:
        """Hand over all of ``data``, waiting while the pipe is full; ``False`` if the
        reader is gone (the upload ended, with an error, before reading everything)."""
        with self._changed:
            while data:
                while len(self._buffer) >= self._limit and not self._reader_gone:
                    self._changed.wait()
                if self._reader_gone:
                    return False
                room = self._limit - len(self._buffer)
                self._buffer += data[:room]
                data = data[room:]
                self._changed.notify_all()
        return True

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes; waits for as many as the pipe can hold, or for the end."""
        with self._changed:
            wanted = self._limit if size is None or size < 0 else min(size, self._limit)
            while not self._discarded and not self._finished and len(self._buffer) < wanted:
                self._changed.wait()
            if self._discarded:
                raise _Discarded("the writer was discarded: nothing is stored")
            out = bytes(self._buffer[:wanted])
            del self._buffer[:wanted]
            self._changed.notify_all()
            return out

    def finish(self) -> None:
        """Let the reader see the end of the stream."""
        with self._changed:
            self._finished = True
            self._changed.notify_all()

    def discard(self) -> None:
        """Make every further read fail, and drop what is buffered."""
        with self._changed:
            self._discarded = True
            self._buffer.clear()
            self._changed.notify_all()

    def reader_gone(self) -> None:
        """The upload ended: writes can no longer be taken."""
        with self._changed:
            self._reader_gone = True
            self._changed.notify_all()


class _Upload(Generic[_T]):
    """What the upload thread left: its result, or the error it raised."""

    def __init__(self) -> None:
        self.result: _T | None = None
        self.error: BaseException | None = None


def _run(job: Callable[[], _T], pipe: _Pipe, upload: _Upload[_T]) -> None:
    # The thread holds the pipe and the job, never the writer: a writer dropped without
    # close() is collected, and its finalizer discards the upload.
    try:
        upload.result = job()
    except BaseException as error:  # handed to the writing thread, raised there
        upload.error = error
    finally:
        pipe.reader_gone()


class EncryptedWriter(io.BufferedIOBase, Generic[_T]):
    """A write-only binary file whose bytes are encrypted and uploaded as they are written.

    Made by :meth:`EncryptedStore.open(name, "wb") <sealstore.EncryptedStore.open>`. The
    object is stored when :meth:`close` returns, and what was stored is then in
    :attr:`result` (an :class:`~sealstore.ObjectHead`). An exception inside a ``with``
    block, :meth:`discard`, or a writer dropped without being closed leaves no object (and
    an object of that name stays as it was)::

        >>> import sealstore
        >>> from sealstore.backends import MemoryBackend
        >>> store = sealstore.EncryptedStore(
        ...     MemoryBackend(), sealstore.ManagedKeys(sealstore.MemoryKeyringStore())
        ... )
        >>> with store.open("log.txt", "wb") as writer:
        ...     _ = writer.write(b"first line\\n")
        ...     _ = writer.write(b"second line\\n")
        >>> writer.result.plaintext_size
        23
        >>> store.get("log.txt")
        b'first line\\nsecond line\\n'

    An error of the upload (the storage refusing the name, say) is raised by the next
    :meth:`write` or by :meth:`close`; the writer is then closed and nothing is stored.
    """

    def __init__(
        self,
        start: Callable[[Readable], Callable[[], _T]],
        *,
        name: str,
        limit: int = DEFAULT_LIMIT,
    ) -> None:
        """``start`` is given the stream of plaintext to read and returns the upload, which
        runs in the writer's thread. ``name`` names the object (for ``repr``)."""
        super().__init__()
        self.name = name
        self.result: _T | None = None
        self._position = 0
        self._pipe = _Pipe(limit)
        self._upload: _Upload[_T] = _Upload()
        job = start(self._pipe)
        self._thread = threading.Thread(
            target=_run,
            args=(job, self._pipe, self._upload),
            name=f"sealstore-writer-{id(self):x}",
            daemon=True,  # an unclosed writer must not keep the interpreter from exiting
        )
        self._thread.start()

    def writable(self) -> bool:
        """True: this file is written to."""
        return True

    def write(self, data: Buffer, /) -> int:
        """Take all of ``data``; waits while the upload is behind by more than the limit."""
        if self.closed:
            raise ValueError("write to a closed writer")
        view = memoryview(data).cast("B")
        if not self._pipe.write(view):
            self._end()
            raise self._failure()
        self._position += len(view)
        return len(view)

    def tell(self) -> int:
        """How many bytes were written."""
        if self.closed:
            raise ValueError("tell on a closed writer")
        return self._position

    def flush(self) -> None:
        """Nothing to do: bytes are handed to the upload as they are written, and only
        :meth:`close` stores the object."""
        if self.closed:
            raise ValueError("flush of a closed writer")

    def close(self) -> None:
        """Finish the upload and store the object; raises the upload's error, if any."""
        if self.closed:
            return
        self._pipe.finish()
        self._end()
        if self._upload.error is not None:
            raise self._failure()
        self.result = self._upload.result

    def discard(self) -> None:
        """Abandon the upload: nothing is stored, and the writer is closed."""
        if self.closed:
            return
        self._pipe.discard()
        self._end()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close (store the object), or discard it if the block raised."""
        if error is None:
            self.close()
        else:
            self.discard()

    def __del__(self) -> None:
        # io's own finalizer would close(), which stores a half-written object.
        if hasattr(self, "_thread"):  # not when start() raised in __init__
            self.discard()

    def _end(self) -> None:
        try:
            self._thread.join()
        finally:
            super().close()

    def _failure(self) -> BaseException:
        # No error means the upload returned without reading to the end: a backend's bug.
        return self._upload.error or BackendError(
            f"the upload of {self.name!r} ended before the data did: nothing was stored"
        )

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self._position} bytes written"
        return f"<EncryptedWriter {self.name!r}: {state}>"
