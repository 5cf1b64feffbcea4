"""The main-job entry point, ``python -m sealstore demo``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sealstore.__main__ import main


def test_demo_runs_and_reports_every_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo round-trips, reads a range, and shows each kind of refusal by name."""
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "decrypted all 240,000 bytes: identical" in out
    assert "b'line 015000\\n'" in out
    assert "1 of 15 chunks decrypted" in out
    for error in ("WrongKeyError", "ContextMismatchError", "DecryptionError"):
        assert error in out


def test_module_entry_point_runs_as_a_program() -> None:
    """``python -m sealstore demo`` exits 0; an unknown command exits 2 with usage."""
    ok = subprocess.run(
        [sys.executable, "-m", "sealstore", "demo"], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stderr
    assert "ranged read" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "sealstore", "nonsense"], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2
    assert "usage" in bad.stderr
