"""The main-job entry point, ``python -m sealstore demo``."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import sealstore
from sealstore.cli.tour import demo


def test_demo_uses_every_mode_rotates_rewraps_and_audits(tmp_path: Path) -> None:
    """The tour writes all three modes, reads a range, rewraps, refuses, and keeps a valid log."""
    out = io.StringIO()
    demo(out, tmp_path)
    text = out.getvalue()
    for mode in ("managed", "kms", "customer"):
        assert f" {mode} " in text
    assert "b'line 015000\\n'" in text
    assert "chunks decrypted: 1 of 15" in text
    assert "rewrapped 1 object(s)" in text
    for error in ("ProviderMismatchError", "WrongKeyError", "ContextMismatchError"):
        assert error in text
    assert "hash chain intact" in text
    assert sealstore.JsonlAuditLog(tmp_path / "audit.jsonl").verify().ok
    assert sealstore.JsonlAuditLog(tmp_path / "kms" / "audit.jsonl").verify().ok
    stored = b"".join(p.read_bytes() for p in (tmp_path / "objects").rglob("*") if p.is_file())
    for plaintext in (b"19.99", b"dear diary", b"line 000001"):
        assert plaintext not in stored


def test_module_entry_point_runs_as_a_program() -> None:
    """``python -m sealstore demo`` exits 0; an unknown command exits 2 with the usage line."""
    ok = subprocess.run(
        [sys.executable, "-m", "sealstore", "demo"], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stderr
    assert "ranged read" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "sealstore", "nonsense"], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2
    assert "Usage: sealstore" in bad.stderr
