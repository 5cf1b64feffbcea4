"""How the benchmarks measure: best-of timings, peak memory in a fresh child, test files.

Timings are taken with the garbage collector held off (:func:`time_once`), the repetitions
of several cases interleaved (:func:`best_interleaved`). Peak memory is read from the
kernel's account of the process (:func:`memory_kib`) in a child started by :func:`run_child`,
which runs ``run.py`` with a hidden sub-command and reads one JSON report from its output::

    best = best_interleaved({"copy": copy, "encrypt": encrypt}, reps=5)
    mb_per_s(GiB, best["encrypt"])
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import json
import math
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = [
    "PIECE",
    "ChildResult",
    "GiB",
    "KiB",
    "MiB",
    "best_interleaved",
    "file_sha256",
    "files_equal",
    "looped",
    "mb_per_s",
    "memory_kib",
    "reset_peak_memory",
    "run_child",
    "size_label",
    "time_once",
    "write_random_file",
]

KiB: Final = 1 << 10
MiB: Final = 1 << 20
GiB: Final = 1 << 30
PIECE: Final = MiB
"""Bytes per step of file copies and of the in-memory crypto ceiling (the streams' read size)."""
RUN_SCRIPT: Final = Path(__file__).resolve().with_name("run.py")
"""The script a child runs, with one of its hidden sub-commands."""


# --------------------------------------------------------------------------- timing


def time_once(operation: Callable[[], object]) -> float:
    """Seconds one call takes, with the garbage collector kept out of the measurement."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        result = operation()
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    # Dropped outside the timed region: a large fresh output is unmapped here, so the next
    # call pays its page faults again, as a real caller would.
    del result
    return elapsed


def best_interleaved(cases: Mapping[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Best time of each case over ``reps`` rounds, each round running every case once."""
    best = dict.fromkeys(cases, math.inf)
    for _ in range(reps):
        for name, operation in cases.items():
            best[name] = min(best[name], time_once(operation))
    return best


def looped(operation: Callable[[], object], count: int) -> Callable[[], None]:
    """A callable that runs ``operation`` ``count`` times (a timeit-style inner loop)."""

    def run() -> None:
        for _ in itertools.repeat(None, count):
            operation()

    return run


def mb_per_s(size: int, seconds: float) -> float:
    return size / seconds / 1e6


def size_label(size: int) -> str:
    if size >= GiB and size % GiB == 0:
        return f"{size // GiB} GiB"
    if size >= MiB and size % MiB == 0:
        return f"{size // MiB} MiB"
    return f"{size // KiB} KiB"


# --------------------------------------------------------------------------- files


def write_random_file(path: Path, size: int) -> str:
    """Fill ``path`` with ``size`` random bytes, one megabyte at a time; their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        remaining = size
        while remaining:
            piece = os.urandom(min(remaining, PIECE))
            out.write(piece)
            digest.update(piece)
            remaining -= len(piece)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file at ``path``, read a megabyte at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while piece := source.read(PIECE):
            digest.update(piece)
    return digest.hexdigest()


def files_equal(left: Path, right: Path) -> bool:
    with left.open("rb") as a, right.open("rb") as b:
        while True:
            x, y = a.read(PIECE), b.read(PIECE)
            if x != y:
                return False
            if not x:
                return True


# --------------------------------------------------------------------------- memory


@dataclass(frozen=True)
class ChildResult:
    seconds: float
    rss_growth_kib: int


def memory_kib() -> tuple[int, int]:
    """This process's current and peak resident set size, in KiB.

    On Linux both come from ``/proc/self/status``: its peak (``VmHWM``) belongs to this
    process image alone, whereas ``ru_maxrss`` survives ``exec`` and so starts at the peak of
    the process that spawned this one (here the benchmark parent, hundreds of megabytes),
    which would hide any growth below that.
    """
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:  # not Linux: ru_maxrss is all there is
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak, peak
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            found[name] = int(value.split()[0])
    return found["VmRSS"], found["VmHWM"]


def reset_peak_memory() -> None:
    """Lower the recorded peak RSS to the current RSS, where the kernel allows it."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def run_child(arguments: Sequence[str], stdin: str) -> dict[str, Any]:
    """Run ``run.py *arguments`` in a fresh interpreter, ``stdin`` on its standard input.

    Returns the JSON object the child prints. Secrets go on ``stdin``, so that they never
    show in a process listing.
    """
    command = [sys.executable, str(RUN_SCRIPT), *arguments]
    completed = subprocess.run(  # noqa: S603 - this benchmark's own script and arguments
        command,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the child {' '.join(arguments)} failed:\n{completed.stderr}")
    report = json.loads(completed.stdout)
    if not isinstance(report, dict):
        raise RuntimeError(f"the child {' '.join(arguments)} printed no JSON object")
    return report
