"""Progress on a terminal (rich), nothing otherwise: bytes for transfers, objects for bulk work.

The store is never changed for it: transfers count the bytes passing through the file objects
the command hands the store, bulk operations use their ``progress(done, total, name)`` hook.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text
from typing_extensions import Buffer

Advance = Callable[[int], None]
"""Called with the number of bytes moved since the last call."""
ObjectProgress = Callable[[int, int, str], None]
"""The bulk operations' hook: objects done so far, the total, the last object's name."""


class _ObjectRate(ProgressColumn):
    """Objects per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.1f} obj/s", style="progress.data.speed")


class Reporter:
    """Shows progress on ``console`` when ``enabled`` (a terminal, and no ``--json``)."""

    def __init__(self, console: Console, *, enabled: bool) -> None:
        self._console = console
        self.enabled = enabled

    @contextmanager
    def transfer(self, description: str, total: int | None) -> Iterator[Advance]:
        """A byte bar with size, rate and time left; yields the function to advance it."""
        if not self.enabled:
            yield _ignore
            return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self._console) as progress:
            task = progress.add_task(description, total=total)
            yield lambda count: progress.advance(task, count)

    @contextmanager
    def objects(self, description: str) -> Iterator[ObjectProgress]:
        """An object bar with count, rate and elapsed time; yields a bulk ``progress`` hook."""
        if not self.enabled:
            yield _ignore_object
            return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _ObjectRate(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[name]}", style="dim"),
        )
        with Progress(*columns, console=self._console) as progress:
            task = progress.add_task(description, total=None, name="")

            def update(done: int, total: int, name: str) -> None:
                progress.update(task, completed=done, total=total, name=name)

            yield update


class CountingReader:
    """A binary file whose reads advance a byte bar."""

    def __init__(self, raw: BinaryIO, advance: Advance) -> None:
        self._raw = raw
        self._advance = advance

    def read(self, size: int = -1, /) -> bytes:
        data = self._raw.read(size)
        self._advance(len(data))
        return data


class CountingWriter:
    """A binary file whose writes advance a byte bar."""

    def __init__(self, raw: BinaryIO, advance: Advance) -> None:
        self._raw = raw
        self._advance = advance

    def write(self, data: Buffer, /) -> int:
        written = self._raw.write(data)
        self._advance(written)
        return written


class Discard:
    """A sink that keeps nothing: ``verify`` decrypts into it, so no plaintext is stored."""

    def __init__(self, advance: Advance) -> None:
        self._advance = advance

    def write(self, data: Buffer, /) -> int:
        size = memoryview(data).nbytes
        self._advance(size)
        return size


def _ignore(_count: int) -> None:
    pass


def _ignore_object(_done: int, _total: int, _name: str) -> None:
    pass
