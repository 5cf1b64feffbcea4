"""Benchmark group ``s3client``: ``EncryptingS3Client`` against the bare boto3 client.

On one SeaweedFS server (``weed mini`` on 127.0.0.1), in one process:

1. ``put_object`` / ``get_object`` (body read to the end) of a small and of a large object
   through the wrapper (managed keys, ``ServerSideEncryption="AES256"``) and through the bare
   client it wraps, interleaved, best of ``reps``.
2. Requests sent and bytes fetched by a cold 4 KiB ranged ``get_object`` of the large object,
   through a fresh wrapper, near the start and in the middle (target: at most 2 requests),
   counted with botocore's event hooks.
3. Requests sent by listing ``list_objects`` objects page by page through the wrapper's
   paginator and through the bare client's (target: the bare client's count).

Sizes come from :class:`S3ClientSizes`; ``QUICK`` is a smoke run.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tests.servers import running_seaweedfs

import sealstore
from benchmarks.measure import KiB, MiB, best_interleaved, mb_per_s, size_label
from benchmarks.results import Group, Row, Target
from benchmarks.store import s3_client
from sealstore.s3 import EncryptingS3Client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["FULL", "QUICK", "S3ClientSizes", "bench_s3_client"]

BUCKET: Final = "sealstore-bench-s3client"
SSE: Final = {"ServerSideEncryption": "AES256"}
AT_MOST_TWO: Final = Target(2, at_least=False, on_ratio=False)
NO_MORE_THAN_BARE: Final = Target(1.0, at_least=False, on_ratio=True)
RANGE: Final = 4 * KiB


@dataclass(frozen=True)
class S3ClientSizes:
    small: int
    small_ops: int
    large: int
    reps: int
    list_objects: int
    page_size: int


FULL: Final = S3ClientSizes(
    small=KiB, small_ops=300, large=64 * MiB, reps=5, list_objects=1000, page_size=100
)
QUICK: Final = S3ClientSizes(
    small=KiB, small_ops=30, large=4 * MiB, reps=2, list_objects=50, page_size=20
)


@dataclass
class _Traffic:
    requests: int = 0
    fetched: int = 0


@contextmanager
def _counted(client: S3Client) -> Iterator[_Traffic]:
    """Requests ``client`` sends, and object bytes its GETs are answered with, in the block."""
    traffic = _Traffic()

    def on_send(**_: Any) -> None:
        traffic.requests += 1

    def on_get(parsed: dict[str, Any], **_: Any) -> None:
        traffic.fetched += int(parsed.get("ContentLength", 0))

    events = client.meta.events
    events.register("before-send.s3", on_send)
    events.register("after-call.s3.GetObject", on_get)
    try:
        yield traffic
    finally:
        events.unregister("before-send.s3", on_send)
        events.unregister("after-call.s3.GetObject", on_get)


def _round_trips(
    bare: S3Client, wrapper: EncryptingS3Client, size: int, ops: int, reps: int
) -> list[Row]:
    body = os.urandom(size)
    label = size_label(size)

    def repeat(operation: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(ops):
                operation()

        return run

    def bare_get() -> bytes:
        return bare.get_object(Bucket=BUCKET, Key="bare")["Body"].read()

    def wrapped_get() -> bytes:
        data: bytes = wrapper.get_object(Bucket=BUCKET, Key="wrapped")["Body"].read()
        return data

    cases = {
        "bare put": repeat(lambda: bare.put_object(Bucket=BUCKET, Key="bare", Body=body)),
        "wrapped put": repeat(
            lambda: wrapper.put_object(Bucket=BUCKET, Key="wrapped", Body=body, **SSE)
        ),
        "bare get": repeat(bare_get),
        "wrapped get": repeat(wrapped_get),
    }
    best = best_interleaved(cases, reps)
    assert wrapped_get() == body
    rows = []
    for what in ("put", "get"):
        wrapped, plain = best[f"wrapped {what}"], best[f"bare {what}"]
        name = f"{what}_object {label}"
        if size >= MiB:
            rows.append(
                Row(
                    f"{name} through the wrapper",
                    mb_per_s(size * ops, wrapped),
                    "MB/s",
                    mb_per_s(size * ops, plain),
                    f"bare {what}_object",
                )
            )
        else:
            rows.append(
                Row(
                    f"{name} through the wrapper",
                    ops / wrapped,
                    "ops/s",
                    ops / plain,
                    f"bare {what}_object",
                )
            )
    return rows


def _cold_ranged_reads(endpoint: str, keys: sealstore.ManagedKeys, size: int) -> list[Row]:
    rows = []
    for where, start in (("near the start", 0), ("in the middle", size // 2)):
        client = s3_client(endpoint)
        wrapper = EncryptingS3Client(client, managed=keys)
        span = f"bytes={start}-{start + RANGE - 1}"
        with _counted(client) as traffic:
            data = wrapper.get_object(Bucket=BUCKET, Key="wrapped", Range=span)["Body"].read()
        assert len(data) == RANGE
        detail = f"{traffic.fetched:,} bytes fetched"
        rows.append(
            Row(
                f"cold 4 KiB ranged get_object {where}: requests",
                traffic.requests,
                "requests",
                detail=detail,
                target=AT_MOST_TWO,
            )
        )
    return rows


def _listing(bare: S3Client, wrapper: EncryptingS3Client, sizes: S3ClientSizes) -> Row:
    for index in range(sizes.list_objects):
        wrapper.put_object(Bucket=BUCKET, Key=f"listed/{index:05d}", Body=b"x", **SSE)
    counts = {}
    for name, client in (("bare", bare), ("wrapped", wrapper)):
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix="listed/", PaginationConfig={"PageSize": sizes.page_size}
        )
        with _counted(bare) as traffic:
            listed = sum(len(page.get("Contents", [])) for page in pages)
        assert listed == sizes.list_objects
        counts[name] = traffic.requests
    return Row(
        f"list {sizes.list_objects:,} objects, {sizes.page_size} a page: requests",
        counts["wrapped"],
        "requests",
        counts["bare"],
        "bare client's paginator",
        NO_MORE_THAN_BARE,
    )


def bench_s3_client(sizes: S3ClientSizes) -> Group:
    with (
        tempfile.TemporaryDirectory(prefix="sealstore-bench-s3client-") as directory,
        running_seaweedfs(Path(directory)) as endpoint,
    ):
        bare = s3_client(endpoint)
        bare.create_bucket(Bucket=BUCKET)
        keys = sealstore.ManagedKeys(sealstore.MemoryKeyringStore())
        wrapper = EncryptingS3Client(bare, managed=keys)
        rows = _round_trips(bare, wrapper, sizes.small, sizes.small_ops, sizes.reps)
        rows += _round_trips(bare, wrapper, sizes.large, 1, sizes.reps)
        rows += _cold_ranged_reads(endpoint, keys, sizes.large)
        rows.append(_listing(bare, wrapper, sizes))
    return Group(
        "s3client",
        "10. EncryptingS3Client against the bare boto3 client (SeaweedFS)",
        f"`put_object` and `get_object` of {size_label(sizes.small)} ({sizes.small_ops} a "
        f"round, as ops/s) and of {size_label(sizes.large)} through `EncryptingS3Client` "
        f"with `ServerSideEncryption='AES256'` (managed keys) against the bare client it "
        f"wraps, best of {sizes.reps} interleaved rounds; requests and bytes of a cold 4 KiB "
        f"ranged `get_object` of the {size_label(sizes.large)} object through a fresh "
        f"wrapper; requests to list {sizes.list_objects:,} objects with each paginator. "
        "SeaweedFS (`weed mini`) on 127.0.0.1, sharing the CPUs.",
        rows,
    )
