"""What the crash tests share: how many times they kill, and how their children report work.

Each crash test runs a child program (its own module, run with ``python -m``) and kills it
with SIGKILL at random moments, ``crash_kills()`` times. The count comes from the environment
variable ``SEALSTORE_CRASH_KILLS`` (``nox -s crash`` sets it to 200); without it the tests
kill :data:`DEFAULT_KILLS` times, enough to exercise every check while the suite stays quick.

A child *acknowledges* each operation once it has returned, by appending a line to a side
file and fsyncing it (:class:`Acknowledger`). After a kill the parent reads the complete
lines (:func:`acknowledged`) and checks that everything acknowledged survived.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final, TextIO

from sealstore.audit import JsonlAuditLog

__all__ = [
    "DEFAULT_KILLS",
    "KILLS_VARIABLE",
    "Acknowledger",
    "acknowledged",
    "check_audit_log",
    "crash_kills",
    "kill_after",
    "killed",
    "report_survived",
    "spawn",
]

KILLS_VARIABLE: Final = "SEALSTORE_CRASH_KILLS"
DEFAULT_KILLS: Final = 10
PROJECT_ROOT: Final = Path(__file__).resolve().parent.parent


def crash_kills() -> int:
    """How many SIGKILLs each crash test delivers: ``SEALSTORE_CRASH_KILLS``, or the default."""
    value = os.environ.get(KILLS_VARIABLE, "").strip()
    if not value:
        return DEFAULT_KILLS
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{KILLS_VARIABLE} must be a whole number >= 1, not {value!r}")
    return int(value)


class Acknowledger:
    """The child's side: one durable line per completed operation, appended to ``path``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._file: TextIO = open(path, "a", encoding="ascii")  # noqa: SIM115 - kept open

    def __call__(self, *words: object) -> None:
        """Append ``words`` as one line and fsync it: once this returns, the line is kept."""
        self._file.write(" ".join(map(str, words)) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())


def acknowledged(path: Path) -> list[list[str]]:
    """The complete lines of an acknowledgement file, split into words (none if missing)."""
    if not path.exists():
        return []
    text = path.read_text(encoding="ascii")
    return [line.split(" ") for line in text[: text.rfind("\n") + 1].splitlines()]


def spawn(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``module`` run as a child program, from the project's root, its stdout a pipe.

    As a module run from the root, so that ``tests/typing`` does not shadow the standard
    library's ``typing``.
    """
    return subprocess.Popen(  # noqa: S603 - our own interpreter running the tests' own module
        [sys.executable, "-m", module, *args],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


@contextlib.contextmanager
def kill_after(
    child: subprocess.Popen[bytes], rng: random.Random, low: float, high: float
) -> Iterator[None]:
    """Wait for the child's ``ready`` line, run the block, then let the child work for a
    random ``low`` to ``high`` seconds and SIGKILL it (unless it has ended). The child is
    always reaped, however the block ends."""
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n", "the child failed to start"
        yield
        # A bounded wait on the child, not a sleep: it also notices a child that ended early.
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=rng.uniform(low, high))
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


def killed(child: subprocess.Popen[bytes]) -> bool:
    """Whether ``child`` ended by our SIGKILL (rather than finishing its work first)."""
    return child.returncode == -signal.SIGKILL


def check_audit_log(path: Path) -> tuple[int, bool]:
    """Check that the audit log at ``path`` verifies up to its last complete record; return
    how many records it holds, and whether an incomplete last line had to be repaired.

    ``docs/audit.md``: an interrupted write can leave only an incomplete last line, which
    ``verify()`` reports at that line (every record before it checked good) and ``repair()``
    removes, after which the log verifies whole.
    """
    log = JsonlAuditLog(path)
    result = log.verify()
    repaired = not result.ok
    if repaired:
        assert result.problem.startswith("incomplete record"), result
        assert result.first_bad_line == result.records + 1 == path.read_bytes().count(b"\n") + 1
        assert log.repair() > 0
        result = log.verify()
    assert result.ok, result
    return result.records, repaired


def report_survived(scenario: str, kills: int, mid_run: int) -> None:
    """Print what a crash test survived (``nox -s crash`` shows it with ``-rP``)."""
    print(f"{scenario}: {kills} SIGKILLs survived, {mid_run} of them while the child worked")
