"""The keyring file survives a writer killed at any moment, and concurrent rotations.

The children are this module run as a program (see the bottom), so their code is type-checked
and linted with the tests.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import sealstore
from sealstore.audit import JsonlAuditLog
from sealstore.header import parse_header
from sealstore.keys.managed import FileKeyringStore, ManagedKeys, RotationPolicy, VersionState
from sealstore.sealed import RootKey
from tests.crashes import check_audit_log, crash_kills, report_survived

MAX_DELAY = 0.2
"""Seconds the parent lets a child run before killing it."""
ROTATIONS = 20
"""Rotations made by each of the two concurrent children."""
CHILD_POLICY = RotationPolicy(max_wraps=6, reserve_block=2)
"""Small enough that wraps also write the keyring and rotate it by count."""
CHILD_ITERATIONS = 1000
"""A bound on a child's loop, so a child nobody kills ends by itself."""


def _child(root: str, command: str, *args: str) -> subprocess.Popen[bytes]:
    """This file run as a child process, with the root key in its environment."""
    # Our own interpreter running this module, with arguments we chose. As a module run
    # from the project's root, so that tests/typing does not shadow the standard library.
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "tests.test_keyring_crash", command, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "SEALSTORE_ROOT_KEY": root},
    )


def _complete_lines(path: Path) -> list[list[str]]:
    """The fully written lines of a child's record file, split into words."""
    if not path.exists():
        return []
    text = path.read_text(encoding="ascii")
    complete = text[: text.rfind("\n") + 1]
    return [line.split(" ") for line in complete.splitlines()]


def test_keyring_survives_sigkill(tmp_path: Path) -> None:
    """After each of many SIGKILLs, every reported version is present and unwraps its objects,
    and the audit log of the rotations and wraps verifies."""
    rng = random.Random(3)
    kills = crash_kills()
    root = RootKey.generate()
    path = tmp_path / "keyring"
    audit = tmp_path / "audit.jsonl"
    reported_versions: set[str] = set()
    reported_objects: list[tuple[str, bytes]] = []
    killed_mid_loop = 0
    for kill in range(kills):
        records = tmp_path / f"records-{kill}"
        child = _child(root, "rotate-and-wrap", str(path), str(records), str(audit))
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == b"ready\n"
            # A bounded wait on the child, not a sleep: it is killed at a random moment.
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=rng.uniform(0, MAX_DELAY))
        finally:
            child.kill()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
            if child.stdin is not None:
                child.stdin.close()
        killed_mid_loop += child.returncode == -signal.SIGKILL
        for words in _complete_lines(records):
            if words[0] == "version":
                reported_versions.add(words[1])
            else:
                reported_objects.append((words[1], base64.b64decode(words[2])))

        keys = ManagedKeys(FileKeyringStore(path, RootKey.from_base64(root), create=True))
        versions = {version.id: version for version in keys.versions()}
        assert reported_versions <= versions.keys()
        assert [v.state for v in versions.values()].count(VersionState.CURRENT) == 1
        for payload, blob in reported_objects:
            assert parse_header(blob).key_ref.decode() in versions
            assert sealstore.decrypt(blob, keys, context={"n": payload}) == payload.encode()
        check_audit_log(audit)
    report_survived("keyring rotation", kills, killed_mid_loop)
    assert killed_mid_loop == kills
    assert len(reported_versions) >= kills
    assert reported_objects


def test_concurrent_rotations_lose_no_version(tmp_path: Path) -> None:
    """Two processes rotating the same keyring at once keep every version, one of them current."""
    root = RootKey.generate()
    path = tmp_path / "keyring"
    children = [_child(root, "rotate", str(path), str(ROTATIONS)) for _ in range(2)]
    made: list[str] = []
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline() == b"ready\n"
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            child.stdin.close()
        for child in children:
            assert child.stdout is not None
            made.extend(child.stdout.read().decode("ascii").split())
            assert child.wait() == 0
    finally:
        for child in children:
            child.kill()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
            if child.stdin is not None:
                child.stdin.close()
    versions = ManagedKeys(
        FileKeyringStore(path, RootKey.from_base64(root), create=True)
    ).versions()
    assert len(made) == len(set(made)) == 2 * ROTATIONS
    assert {version.id for version in versions} == set(made)
    current = [version.id for version in versions if version.state is VersionState.CURRENT]
    assert len(current) == 1
    assert current[0] == versions[-1].id


# The children.


def _rotate_and_wrap(path: str, records: str, audit: str) -> None:
    """Rotate, then wrap a few objects, in a loop; report each result once it is returned."""
    keys = ManagedKeys(
        FileKeyringStore(path, RootKey.from_env(), create=True),
        rotation=CHILD_POLICY,
        audit=JsonlAuditLog(audit),
    )
    with open(records, "w", encoding="ascii") as out:
        print("ready", flush=True)
        for n in range(CHILD_ITERATIONS):
            out.write(f"version {keys.rotate().id}\n")
            out.flush()
            for i in range(3):
                payload = f"{os.getpid()}.{n}.{i}"
                blob = sealstore.encrypt(payload.encode(), keys, context={"n": payload})
                out.write(f"object {payload} {base64.b64encode(blob).decode()}\n")
                out.flush()


def _rotate(path: str, count: str) -> None:
    """Wait for "go" on stdin, then rotate ``count`` times, printing each new version."""
    keys = ManagedKeys(FileKeyringStore(path, RootKey.from_env(), create=True))
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(int(count)):
        print(keys.rotate().id, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "rotate":
        _rotate(*sys.argv[2:4])
    else:
        _rotate_and_wrap(*sys.argv[2:5])
