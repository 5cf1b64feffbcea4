"""The ``sealstore`` command in a real terminal (a pty): what a person sees."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def _in_terminal(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run ``python -m sealstore ARGS`` on a pty; return the screen text without escapes."""
    controller, terminal = os.openpty()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and program
        [sys.executable, "-m", "sealstore", *args],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        cwd=cwd,
        env=env,
    )
    os.close(terminal)
    seen = bytearray()
    while True:
        try:
            data = os.read(controller, 65536)
        except OSError:  # the pty closes when the command's side is gone
            break
        if not data:
            break
        seen += data
    os.close(controller)
    assert process.wait(timeout=120) == 0, seen.decode(errors="replace")
    return _ANSI.sub(b"", bytes(seen)).decode(errors="replace")


def test_a_person_sees_a_progress_bar_then_the_summary(tmp_path: Path) -> None:
    """On a terminal, put and rewrap draw rich progress bars (bytes, objects) before the summary."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALSTORE_")}
    env.update(SEALSTORE_VAULT=str(tmp_path / "vault"), TERM="xterm-256color", COLUMNS="120")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(24 * 1024 * 1024))
    _in_terminal(["init"], env, tmp_path)
    screen = _in_terminal(["put", "big.bin"], env, tmp_path)
    bar = screen.find("━")
    summary = screen.find("put big.bin: 25,165,824 bytes, managed")
    assert 0 <= bar < summary, screen
    assert "25.2/25.2 MB" in screen
    rotated = _in_terminal(["rotate"], env, tmp_path)
    assert "rewrap" in rotated
    assert "1/1" in rotated
    assert rotated.find("━") < rotated.find("rewrapped 1 of 1 object(s)")
