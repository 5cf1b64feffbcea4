"""A concurrency soak: four processes share one encrypted store for a while, then it is checked.

Run as a program (``nox -s soak``, or ``python -m tests.soak --seconds 60``), not collected
as tests. For each backend (``FileSystemBackend``, and ``S3Backend`` on a SeaweedFS started
on 127.0.0.1 and stopped by PID) four processes, each with its own ``EncryptedStore`` and
``ManagedKeys`` over one ``FileKeyringStore`` on local disk, work on one set of names:

- *writer*: puts objects (and sometimes deletes one), the content derived from the name and
  a version label it notes down before each put;
- *reader*: ``get``, ranged reads through ``open`` and ``list``, checking every byte;
- *rotator*: rotates the keyring a few times a second, and reads;
- *rewrapper*: ``rewrap_all`` over the whole store, again and again.

The only errors allowed are the documented conflicts: ``ObjectChangedError`` (a read or a
rewrap raced an overwrite), ``ObjectNotFoundError`` (deleted meanwhile) and ``BulkReport``
failures naming ``ObjectChangedError``. Afterwards every object must decrypt and hold one of
the values written to it. Counts per operation and outcome are printed; the exit status is 1
if anything else happened.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, Final

import sealstore
from sealstore.backends import Backend, FileSystemBackend, S3Backend
from sealstore.keys.managed import RotationPolicy

ROLES: Final = ("writer", "reader", "rotator", "rewrapper")
NAMES: Final = tuple(f"d{number % 3}/object-{number:02d}" for number in range(36))
MAX_SIZE: Final = 200_000
ALLOWED: Final = frozenset({"ok", "ObjectChangedError", "ObjectNotFoundError"})
"""Outcomes of an operation that are not failures of the store."""
POLICY: Final = RotationPolicy(reload_after=timedelta(seconds=1), reserve_block=16)
"""Rotations elsewhere are seen within a second; wraps write the keyring often."""


def content(name: str, version: str) -> bytes:
    """The plaintext written as ``version`` of ``name``: it names both, and its size and
    filler follow from them, so any read can be checked on its own."""
    label = f"{name}|{version}|".encode()
    seed = hashlib.sha256(label).digest()
    size = int.from_bytes(seed[:4], "big") % MAX_SIZE
    return (label + seed * (size // len(seed) + 1))[: max(size, len(label))]


def version_of(name: str, plaintext: bytes) -> str:
    """The version label ``plaintext`` says it is, checked against the rest of its bytes."""
    parts = plaintext.split(b"|", 2)
    if len(parts) != 3 or parts[0].decode(errors="replace") != name:
        raise WrongContentError(f"{name!r} holds content that is not one of its values")
    version = parts[1].decode()
    if content(name, version) != plaintext:
        raise WrongContentError(f"{name!r} holds a damaged copy of its version {version!r}")
    return version


class WrongContentError(Exception):
    """A read returned bytes that were never written to that object."""


# ------------------------------------------------------------------------------- the workers


def _backend(config: dict[str, Any]) -> Backend:
    if config["kind"] == "filesystem":
        return FileSystemBackend(config["root"])
    import boto3  # noqa: PLC0415 - only the S3 soak needs it

    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=config["endpoint"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return S3Backend(client, config["bucket"], config["prefix"], list_by_directory=True)


def _store(config: dict[str, Any]) -> sealstore.EncryptedStore:
    keyring = sealstore.FileKeyringStore(config["keyring"], sealstore.RootKey.from_env())
    return sealstore.EncryptedStore(
        _backend(config), sealstore.ManagedKeys(keyring, rotation=POLICY)
    )


class _Tally:
    """Outcomes per operation, and what went wrong beyond the documented conflicts."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.problems: list[str] = []

    def run(
        self,
        operation: str,
        call: Callable[[], object],
        documented: tuple[type[Exception], ...] = (),
    ) -> None:
        """Run ``call``, counting its outcome; ``documented`` errors are also expected."""
        expected: tuple[type[Exception], ...] = (
            sealstore.ObjectChangedError,
            sealstore.ObjectNotFoundError,
            *documented,
        )
        try:
            call()
        except expected as error:
            self.counts[f"{operation} {type(error).__name__}"] += 1
        except Exception as error:  # every other error is what the soak looks for
            self.counts[f"{operation} unexpected {type(error).__name__}"] += 1
            if len(self.problems) < 20:
                self.problems.append(f"{operation}: {type(error).__name__}: {error}")
        else:
            self.counts[f"{operation} ok"] += 1


def _writer(store: sealstore.EncryptedStore, rng: random.Random, tally: _Tally, log: Path) -> None:
    with log.open("a", encoding="utf-8") as written:
        for number in _until_deadline():
            name = rng.choice(NAMES)
            if rng.random() < 0.1:
                tally.run("delete", partial(store.delete, name))
                continue
            version = f"{os.getpid()}.{number}"
            written.write(f"{name} {version}\n")  # noted before the put: a value written
            written.flush()
            tally.run("put", partial(store.put, name, content(name, version)))


def _read_whole(store: sealstore.EncryptedStore, name: str) -> None:
    version_of(name, store.get(name))


def _read_range(store: sealstore.EncryptedStore, rng: random.Random, name: str) -> None:
    with store.open(name) as reader:
        size = reader.seek(0, os.SEEK_END)
        start = rng.randrange(size + 1)
        reader.seek(start)
        piece = reader.read(rng.randrange(1, 70_000))
        reader.seek(0)
        label = reader.read(200).split(b"|", 2)
    if len(label) != 3:
        raise WrongContentError(f"{name!r} starts with bytes never written to it")
    expected = content(name, label[1].decode())
    if expected[start : start + len(piece)] != piece:
        raise WrongContentError(f"a ranged read of {name!r} returned bytes never written there")


def _list_all(store: sealstore.EncryptedStore) -> None:
    for head in store.list():
        if not head.encrypted or head.problem is not None:
            raise WrongContentError(f"{head.name!r} is listed as {head}")


def _reader(store: sealstore.EncryptedStore, rng: random.Random, tally: _Tally) -> None:
    # docs/store.md: without etags, an open reader whose object is replaced fails
    # authentication (the object is read again by the next reader).
    replaced: tuple[type[Exception], ...] = (
        (sealstore.DecryptionError,) if isinstance(store.backend, FileSystemBackend) else ()
    )
    for _ in _until_deadline():
        name = rng.choice(NAMES)
        choice = rng.random()
        if choice < 0.6:
            tally.run("get", partial(_read_whole, store, name))
        elif choice < 0.95:
            tally.run("open+read", partial(_read_range, store, rng, name), replaced)
        else:
            tally.run("list", lambda: _list_all(store))


def _rotator(store: sealstore.EncryptedStore, rng: random.Random, tally: _Tally) -> None:
    keys = store.keys
    assert isinstance(keys, sealstore.ManagedKeys)
    for _ in _until_deadline():
        tally.run("rotate", keys.rotate)
        pause = time.monotonic() + rng.uniform(0.1, 0.4)
        while time.monotonic() < pause:
            name = rng.choice(NAMES)
            tally.run("get", partial(_read_whole, store, name))


def _rewrap_all(store: sealstore.EncryptedStore, tally: _Tally) -> None:
    report = store.rewrap_all()
    tally.counts["rewrap_all objects done"] += report.done
    tally.counts["rewrap_all objects current"] += report.current
    tally.counts["rewrap_all objects skipped"] += report.skipped
    for failure in report.failed:
        if failure.error == "ObjectChangedError":
            tally.counts["rewrap_all objects failed ObjectChangedError"] += 1
        else:
            tally.counts[f"rewrap_all objects failed unexpected {failure.error}"] += 1
            tally.problems.append(f"rewrap_all: {failure}")


def _rewrapper(store: sealstore.EncryptedStore, _rng: random.Random, tally: _Tally) -> None:
    for _ in _until_deadline():
        tally.run("rewrap_all", lambda: _rewrap_all(store, tally))


_DEADLINE = 0.0


def _until_deadline() -> Iterator[int]:
    number = 0
    while time.time() < _DEADLINE:
        yield number
        number += 1


def _worker(role: str, config_path: str, seed: str) -> None:
    global _DEADLINE  # noqa: PLW0603 - one worker per process
    config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    _DEADLINE = config["deadline"]
    store = _store(config)
    rng = random.Random(int(seed))
    tally = _Tally()
    directory = Path(config["records"])
    if role == "writer":
        _writer(store, rng, tally, directory / f"written-{seed}")
    else:
        {"reader": _reader, "rotator": _rotator, "rewrapper": _rewrapper}[role](store, rng, tally)
    result = {"counts": dict(tally.counts), "problems": tally.problems}
    (directory / f"result-{role}-{seed}.json").write_text(json.dumps(result), encoding="utf-8")


# ------------------------------------------------------------------------------- the parent


def _soak(config: dict[str, Any], seconds: float) -> bool:
    """Run the four workers against ``config``'s store, check it, print the counts."""
    records = Path(config["records"])
    config["deadline"] = time.time() + seconds + 5  # the workers' start-up is not counted
    config_path = records / "config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    started = time.monotonic()
    workers = [
        subprocess.Popen(  # noqa: S603 - our own interpreter running this module
            [sys.executable, "-m", "tests.soak", "--worker", role, str(config_path), str(seed)],
            cwd=Path(__file__).resolve().parent.parent,
        )
        for seed, role in enumerate(ROLES, 1)
    ]
    try:
        statuses = [worker.wait(timeout=seconds + 300) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    elapsed = time.monotonic() - started
    counts: Counter[str] = Counter()
    problems = [
        f"worker {role} exited with {s}" for role, s in zip(ROLES, statuses, strict=True) if s
    ]
    for path in sorted(records.glob("result-*.json")):
        result = json.loads(path.read_text(encoding="utf-8"))
        counts.update(result["counts"])
        problems.extend(result["problems"])
    final = _final_check(config, counts)
    problems.extend(final)
    print(f"\n== {config['kind']}: {elapsed:.0f} s, 4 processes")
    for key in sorted(counts):
        print(f"  {key:<55} {counts[key]:>8}")
    unexpected = {key: n for key, n in counts.items() if "unexpected" in key}
    for problem in problems:
        print(f"  PROBLEM {problem}")
    return not problems and not unexpected


def _final_check(config: dict[str, Any], counts: Counter[str]) -> list[str]:
    """Every object decrypts and holds a value written to it: the problems found."""
    written: set[tuple[str, str]] = set()
    for path in Path(config["records"]).glob("written-*"):
        for line in path.read_text(encoding="utf-8").splitlines():
            name, version = line.split(" ")
            written.add((name, version))
    store = _store(config)
    keys = store.keys
    assert isinstance(keys, sealstore.ManagedKeys)
    counts["final key versions"] = len(keys.versions())
    problems = []
    for head in store.list():
        try:
            version = version_of(head.name, store.get(head.name))
        except Exception as error:  # reported, with every other problem
            problems.append(f"final read of {head.name!r}: {type(error).__name__}: {error}")
            continue
        if (head.name, version) not in written:
            problems.append(f"{head.name!r} holds version {version!r}, which was never written")
        counts["final objects checked"] += 1
        current = keys.is_current((head.key_version or "").encode())
        counts[f"final objects under the current version: {current}"] += 1
    return problems


@contextlib.contextmanager
def _seaweedfs(base: Path) -> Iterator[dict[str, Any]]:
    """A SeaweedFS on 127.0.0.1 with a new bucket, stopped (by PID) on exit."""
    import boto3  # noqa: PLC0415 - only the S3 soak needs it

    from tests.servers import running_seaweedfs  # noqa: PLC0415

    with running_seaweedfs(base) as endpoint:
        bucket = f"soak-{uuid.uuid4().hex[:12]}"
        boto3.client(
            "s3",
            region_name="us-east-1",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_bucket(Bucket=bucket)
        yield {"kind": "seaweedfs", "endpoint": endpoint, "bucket": bucket, "prefix": "soak/"}


def main(argv: list[str]) -> int:
    """Soak each backend asked for; 0 when nothing but documented conflicts happened."""
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="per backend (default 60)")
    parser.add_argument("--backend", choices=("filesystem", "seaweedfs", "both"), default="both")
    args = parser.parse_args(argv)
    os.environ["SEALSTORE_ROOT_KEY"] = sealstore.RootKey.generate()
    backends = ("filesystem", "seaweedfs") if args.backend == "both" else (args.backend,)
    ok = True
    for kind in backends:
        with tempfile.TemporaryDirectory(prefix=f"sealstore-soak-{kind}-") as temporary:
            base = Path(temporary)
            keyring = base / "keyring"
            root = sealstore.RootKey.from_env()
            sealstore.ManagedKeys(sealstore.FileKeyringStore(keyring, root, create=True)).rotate()
            (base / "records").mkdir()
            common = {"keyring": str(keyring), "records": str(base / "records")}
            if kind == "filesystem":
                ok &= _soak({"kind": kind, "root": str(base / "objects"), **common}, args.seconds)
            else:
                with _seaweedfs(base) as place:
                    ok &= _soak({**place, **common}, args.seconds)
    print("\nsoak", "passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker(*sys.argv[2:5])
    else:
        sys.exit(main(sys.argv[1:]))
