"""The fuzz harnesses (tests/fuzz): seeds stay valid, every reproducer stays fixed, and a
short coverage-guided campaign of each target runs with the suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

import sealstore
from sealstore.keys.managed.keyring import decode_keyring, encode_keyring
from sealstore.kms.local.document import decode_document
from tests.fuzz.seeds import CORPUS, REPRODUCERS
from tests.fuzz.targets import TARGETS, FuzzTarget, MemoryBoundError, exercise

ROOT = Path(__file__).resolve().parents[1]
SHORT_RUNS = int(os.environ.get("SEALSTORE_FUZZ_SHORT_RUNS", "2000"))
"""Inputs per target in the suite's campaign; ``nox -s fuzz`` runs a million."""


def _inputs(root: Path) -> list[tuple[str, Path]]:
    return [(name, path) for name in TARGETS for path in sorted((root / name).glob("*"))]


SEEDS = _inputs(CORPUS)
REPRODUCER_FILES = _inputs(REPRODUCERS)


@pytest.fixture
def traced() -> Iterator[None]:
    """Trace allocations, so :func:`exercise` checks each target's memory bound."""
    tracemalloc.start()
    yield
    tracemalloc.stop()


def test_every_target_has_seeds() -> None:
    """Each target starts from at least one committed seed."""
    assert {name for name, _ in SEEDS} == TARGETS.keys()


@pytest.mark.parametrize(("name", "path"), SEEDS, ids=[f"{n}/{p.name}" for n, p in SEEDS])
@pytest.mark.usefixtures("traced")
def test_seed_is_a_valid_input(name: str, path: Path) -> None:
    """A seed passes its target's parser without any error and within its memory bound."""
    target = TARGETS[name]
    target.run(path.read_bytes())
    exercise(target, path.read_bytes())


@pytest.mark.parametrize(
    ("name", "path"), REPRODUCER_FILES, ids=[f"{n}/{p.name}" for n, p in REPRODUCER_FILES]
)
@pytest.mark.usefixtures("traced")
def test_reproducer_is_fixed(name: str, path: Path) -> None:
    """An input the fuzzer once broke a parser with now meets only sealstore errors."""
    exercise(TARGETS[name], path.read_bytes())


@pytest.mark.parametrize("name", TARGETS)
def test_short_campaign(name: str, tmp_path: Path) -> None:
    """A short coverage-guided run of the target finds nothing (memory checked every input)."""
    result = subprocess.run(  # noqa: S603 (our own interpreter and module)
        [
            sys.executable,
            "-m",
            "tests.fuzz.run",
            name,
            "--work",
            str(tmp_path / "corpus"),
            "--memory-every=1",
            f"-runs={SHORT_RUNS}",
            f"-artifact_prefix={tmp_path}/",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"Done {SHORT_RUNS} runs" in result.stderr


# --- the harness itself -----------------------------------------------------------------


def test_exercise_accepts_sealstore_errors() -> None:
    """A target may raise any SealstoreError: that is how a parser refuses input."""

    def refuse(data: bytes) -> None:
        raise sealstore.FormatError("refused")

    exercise(FuzzTarget("refuse", refuse), b"x")


def test_exercise_lets_other_exceptions_through() -> None:
    """Any other exception out of a target reaches the fuzzer as a finding."""
    with pytest.raises(ValueError, match="invalid literal"):
        exercise(FuzzTarget("crash", lambda data: print(int(data))), b"x")


@pytest.mark.usefixtures("traced")
def test_exercise_checks_the_memory_bound() -> None:
    """An input whose handling allocates past the bound is a finding."""

    def hog_memory(data: bytes) -> None:
        assert len(bytearray(len(data) * 1000)) == len(data) * 1000

    hog = FuzzTarget("hog", hog_memory)
    exercise(hog, b"")
    with pytest.raises(MemoryBoundError, match="hog: 1024 input bytes"):
        exercise(hog, bytes(1024))


# --- what the fuzzers found -------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"[" * 2000, b'{"format":1,"keys":' + b"[" * 2000])
def test_deeply_nested_local_kms_document_is_a_keystore_error(raw: bytes) -> None:
    """JSON nested past Python's recursion limit is a damaged key store, not RecursionError."""
    with pytest.raises(sealstore.KeystoreError, match="damaged key store"):
        decode_document(raw, Path("keys.sealed"))


def test_local_kms_document_time_outside_utc_is_a_keystore_error() -> None:
    """A material time that UTC cannot hold (9999-12-31T23:59:59-01:00) is damage, not
    an OverflowError."""
    raw = (REPRODUCERS / "local_kms_document" / "time-out-of-range.json").read_bytes()
    assert b"9999-12-31T23:59:59-01:00" in raw
    with pytest.raises(sealstore.KeystoreError, match="damaged key store"):
        decode_document(raw, Path("keys.sealed"))


def test_deeply_nested_keyring_is_a_keystore_error() -> None:
    """JSON nested past Python's recursion limit is a malformed keyring, not RecursionError."""
    with pytest.raises(sealstore.KeystoreError, match="not JSON"):
        decode_keyring(b"[" * 2000)


def test_keyring_time_outside_utc_is_refused() -> None:
    """A version time that UTC cannot hold is refused when read, not when the keyring is
    next written (where it raised OverflowError)."""
    raw = (REPRODUCERS / "keyring" / "time-out-of-range.json").read_bytes()
    assert json.loads(raw)["versions"][0]["created"] == "9999-12-31T23:59:59-01:00"
    with pytest.raises(sealstore.KeystoreError, match="bad time or key"):
        encode_keyring(decode_keyring(raw))
