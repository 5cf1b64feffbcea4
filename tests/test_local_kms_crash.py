"""LocalKms loses nothing it reported: not to SIGKILL at any moment, not to concurrent writers.

The children are this file run as a program: each prints one JSON line per completed
operation (a key created, a rotation, a data key generated) and the parent checks, after
killing or joining them, that everything reported is still there and still decrypts.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from sealstore.audit import AuditEvent, JsonlAuditLog, Operation, Outcome
from sealstore.kms.local import LocalKms
from sealstore.kms.policy import KeyOperation, KeyPolicy
from sealstore.sealed import RootKey
from tests.crashes import check_audit_log, crash_kills, report_survived

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PRINCIPAL = "writer"
CONCURRENT_ROUNDS = 25


class NullSink:
    """Discards events: the parent's checks are not what is being audited."""

    def record(self, event: AuditEvent) -> None:
        """Drop ``event``."""


def _report(*fields: object) -> None:
    print(json.dumps(fields), flush=True)


def _crash_child(kms: LocalKms, rng: random.Random) -> None:
    """Create, rotate and generate forever, reporting each operation once it returned."""
    keys = [entry.key_id for entry in kms.list_keys()]
    while True:
        choice = rng.random()
        if not keys or choice < 0.15:
            key_id = kms.create_key(principal=PRINCIPAL).key_id
            keys.append(key_id)
            _report("key", key_id)
        elif choice < 0.35:
            key_id = rng.choice(keys)
            _report("rotate", key_id, kms.rotate_key(key_id, principal=PRINCIPAL))
        else:
            key_id = rng.choice(keys)
            context = {"n": str(rng.randrange(1 << 30))}
            data_key = kms.generate_data_key(key_id, context, principal=PRINCIPAL)
            encoded = [base64.b64encode(x).decode() for x in (data_key.plaintext, data_key.blob)]
            _report("blob", key_id, *encoded, context)


def _concurrent_child(kms: LocalKms, shared: str) -> None:
    """Create keys and rotate one shared key, in turns, a fixed number of times."""
    for _ in range(CONCURRENT_ROUNDS):
        _report("key", kms.create_key(principal=PRINCIPAL).key_id)
        _report("rotate", shared, kms.rotate_key(shared, principal=PRINCIPAL))


def _child_main(mode: str, directory: str, argument: str) -> None:
    root_key = RootKey.from_env()
    kms = LocalKms(directory, root_key=root_key)  # the default, hash-chained audit log
    if mode == "crash":
        _crash_child(kms, random.Random(int(argument)))
    else:
        _concurrent_child(kms, argument)


def _spawn(
    mode: str, directory: Path, argument: str, root_key: str, stderr: IO[bytes]
) -> subprocess.Popen[bytes]:
    # Run as a module from the project root: as a script, tests/typing would shadow typing.
    return subprocess.Popen(  # noqa: S603 - the tests' own program
        [sys.executable, "-m", __spec__.name, mode, str(directory), argument],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env={**os.environ, "SEALSTORE_ROOT_KEY": root_key},
    )


@contextlib.contextmanager
def _reaped(children: list[subprocess.Popen[bytes]]) -> Iterator[None]:
    """Kill and reap ``children`` however the block ends, so none outlives the test."""
    try:
        yield
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()


def _text(stderr: IO[bytes]) -> str:
    """What the children wrote to stderr, for a failure message."""
    stderr.seek(0)
    return stderr.read().decode(errors="replace")


def _parse(line: bytes) -> list[object]:
    fields = json.loads(line)
    assert isinstance(fields, list)
    return fields


class Reported:
    """Everything the children said they did."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.versions: dict[str, int] = {}
        self.rotations: set[tuple[str, str]] = set()
        self.blobs: list[tuple[str, bytes, bytes, dict[str, str]]] = []

    def add(self, fields: list[object]) -> None:
        kind, key_id = fields[0], fields[1]
        assert isinstance(key_id, str)
        if kind == "key":
            self.keys.add(key_id)
        elif kind == "rotate":
            assert isinstance(fields[2], int)
            self.versions[key_id] = max(self.versions.get(key_id, 1), fields[2])
            self.rotations.add((key_id, str(fields[2])))
        else:
            plaintext, blob, context = fields[2], fields[3], fields[4]
            assert isinstance(plaintext, str)
            assert isinstance(blob, str)
            assert isinstance(context, dict)
            self.blobs.append(
                (key_id, base64.b64decode(plaintext), base64.b64decode(blob), context)
            )

    def check_one(self, kms: LocalKms, rng: random.Random) -> None:
        if self.blobs:
            key_id, plaintext, blob, context = rng.choice(self.blobs)
            assert kms.decrypt(key_id, blob, context, principal=PRINCIPAL) == plaintext

    def check(self, kms: LocalKms) -> None:
        listed = {entry.key_id for entry in kms.list_keys()}
        assert self.keys <= listed
        for key_id, version in self.versions.items():
            assert kms.describe_key(key_id, principal=PRINCIPAL).current_version >= version
        for key_id, plaintext, blob, context in self.blobs:
            assert kms.decrypt(key_id, blob, context, principal=PRINCIPAL) == plaintext


def test_sigkill_at_random_moments_loses_nothing_reported(tmp_path: Path) -> None:
    """After each SIGKILL the store opens, every key, rotation and data key a child reported
    is still there, and the audit log's chain verifies; at the end the log records every key
    creation and rotation reported."""
    rng = random.Random(20300101)
    root_key = RootKey.generate()
    directory = tmp_path / "kms"
    reported = Reported()
    checker = LocalKms(
        directory, root_key=RootKey.from_base64(root_key), audit=NullSink(), create=True
    )
    kills_mid_run = 0
    kills = crash_kills()
    with (tmp_path / "stderr").open("w+b") as stderr:
        for _ in range(kills):
            child = _spawn("crash", directory, str(rng.randrange(1 << 32)), root_key, stderr)
            assert child.stdout is not None
            with _reaped([child]):
                for _ in range(rng.randint(1, 25)):
                    line = child.stdout.readline()
                    assert line, _text(stderr)
                    reported.add(_parse(line))
                # Checking a random share of the reports first lets the kill land anywhere in
                # the child's next operation, not just at its start.
                for _ in range(rng.randint(0, 60)):
                    reported.check_one(checker, rng)
                child.send_signal(signal.SIGKILL)
                child.wait()
                kills_mid_run += child.returncode == -signal.SIGKILL
                # Operations that completed while the kill was on its way were reported too.
                for line in child.stdout.read().splitlines(keepends=True):
                    if line.endswith(b"\n"):
                        reported.add(_parse(line))
            kms = LocalKms(directory, root_key=RootKey.from_base64(root_key), audit=NullSink())
            reported.check(kms)
            check_audit_log(directory / "audit.jsonl")
    report_survived("LocalKms writes", kills, kills_mid_run)
    assert kills_mid_run == kills
    # The next change removes the copies that writers killed mid-write left behind.
    checker.create_key(principal=PRINCIPAL)
    assert not list(directory.glob(".keys.sealed.*"))
    assert len(reported.keys) >= 3
    assert reported.blobs
    log = JsonlAuditLog(directory / "audit.jsonl")
    assert log.verify().ok
    events = [event for event in log.events() if event.outcome is Outcome.SUCCESS]
    assert reported.keys <= {e.key_id for e in events if e.operation is Operation.CREATE_KEY}
    assert reported.rotations <= {
        (e.key_id, e.key_version) for e in events if e.operation is Operation.ROTATE
    }


def test_two_processes_creating_and_rotating_lose_nothing(tmp_path: Path) -> None:
    """Two processes creating keys and rotating one shared key at once: every key is kept and
    every rotation got its own version."""
    root_key = RootKey.generate()
    directory = tmp_path / "kms"
    kms = LocalKms(directory, root_key=RootKey.from_base64(root_key), audit=NullSink(), create=True)
    policy = KeyPolicy.owner("admin").grant(KeyOperation.ROTATE, PRINCIPAL)
    shared = kms.create_key(principal="admin", policy=policy).key_id
    with (tmp_path / "stderr").open("w+b") as stderr:
        children = [_spawn("concurrent", directory, shared, root_key, stderr) for _ in range(2)]
        with _reaped(children):
            outputs = [child.communicate(timeout=120)[0] for child in children]
        assert [child.returncode for child in children] == [0, 0], _text(stderr)
    reports = [_parse(line) for output in outputs for line in output.splitlines()]
    keys = {fields[1] for fields in reports if fields[0] == "key"}
    versions = sorted(int(str(fields[2])) for fields in reports if fields[0] == "rotate")
    assert len(keys) == 2 * CONCURRENT_ROUNDS
    assert keys <= {entry.key_id for entry in kms.list_keys()}
    assert versions == list(range(2, 2 + 2 * CONCURRENT_ROUNDS))
    meta = kms.describe_key(shared, principal="admin")
    assert meta.current_version == 1 + 2 * CONCURRENT_ROUNDS
    assert JsonlAuditLog(directory / "audit.jsonl").verify().ok


if __name__ == "__main__":
    _child_main(*sys.argv[1:4])
