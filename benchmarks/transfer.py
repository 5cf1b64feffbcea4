"""Benchmark group ``transfer``: the store's concurrent S3 transfers against boto3's own.

``EncryptedStore.put`` / ``download`` on ``S3Backend`` over SeaweedFS (``weed mini`` on
127.0.0.1) against boto3's ``upload_fileobj`` / ``download_fileobj`` of the same plaintext,
with the same part size and concurrency, interleaved in one process; then the same through
:mod:`benchmarks.latency`, a proxy that adds a delay to every request. Targets: ratio >= 0.9
both ways.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tests.servers import running_seaweedfs

import sealstore
from benchmarks.latency import latency_proxy
from benchmarks.measure import GiB, MiB, best_interleaved, mb_per_s, size_label, write_random_file
from benchmarks.results import Group, Row, Target
from benchmarks.store import s3_client
from sealstore.backends.s3 import S3Backend
from sealstore.s3 import EncryptingS3Client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["FULL", "QUICK", "TransferSizes", "bench_transfer"]

BUCKET: Final = "sealstore-bench-transfer"
TARGET: Final = Target(0.9, at_least=True, on_ratio=True)


@dataclass(frozen=True)
class TransferSizes:
    size: int
    part_size: int
    concurrency: int
    reps: int
    latency_ms: float


FULL: Final = TransferSizes(size=GiB, part_size=8 * MiB, concurrency=4, reps=3, latency_ms=10)
QUICK: Final = TransferSizes(size=48 * MiB, part_size=8 * MiB, concurrency=4, reps=1, latency_ms=10)


class _NullSink:
    """Takes every byte and keeps none, so both sides measure the transfer alone."""

    def write(self, data: Any, /) -> int:
        with memoryview(data) as view:
            return view.nbytes


def _client(endpoint: str, concurrency: int) -> S3Client:
    return s3_client(endpoint, connections=max(10, 2 * concurrency))


def _measure(endpoint: str, plain: Path, sizes: TransferSizes) -> dict[str, float]:
    from boto3.s3.transfer import TransferConfig  # noqa: PLC0415

    client = _client(endpoint, sizes.concurrency)
    config = TransferConfig(
        multipart_threshold=sizes.part_size,
        multipart_chunksize=sizes.part_size,
        max_concurrency=sizes.concurrency,
    )
    backend = S3Backend(client, BUCKET, part_size=sizes.part_size, concurrency=sizes.concurrency)
    keys = sealstore.ManagedKeys(sealstore.MemoryKeyringStore())
    store = sealstore.EncryptedStore(backend, keys)
    wrapper = EncryptingS3Client(client, managed=keys)

    def boto_put() -> None:
        with plain.open("rb") as source:
            client.upload_fileobj(source, BUCKET, "boto3", Config=config)

    def store_put() -> None:
        with plain.open("rb") as source:
            store.put("store", source)

    def client_put() -> None:
        with plain.open("rb") as source:
            wrapper.upload_fileobj(source, BUCKET, "client", Config=config)

    def client_get() -> None:
        wrapper.download_fileobj(BUCKET, "client", _NullSink(), Config=config)

    def boto_get() -> None:
        client.download_fileobj(BUCKET, "boto3", _NullSink(), Config=config)  # type: ignore[arg-type]

    def store_get() -> None:
        store.download("store", _NullSink())

    puts = best_interleaved(
        {"boto3": boto_put, "store": store_put, "client": client_put}, sizes.reps
    )
    gets = best_interleaved(
        {"boto3": boto_get, "store": store_get, "client": client_get}, sizes.reps
    )
    return {f"{name} put": seconds for name, seconds in puts.items()} | {
        f"{name} get": seconds for name, seconds in gets.items()
    }


def bench_transfer(sizes: TransferSizes) -> Group:
    label = size_label(sizes.size)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="sealstore-bench-transfer-") as directory:
        folder = Path(directory)
        plain = folder / "plain"
        write_random_file(plain, sizes.size)
        (folder / "seaweedfs").mkdir()
        with running_seaweedfs(folder / "seaweedfs") as endpoint:
            _client(endpoint, 1).create_bucket(Bucket=BUCKET)
            for latency in (0.0, sizes.latency_ms):
                if latency:
                    with latency_proxy(endpoint, latency / 1000) as proxied:
                        seconds = _measure(proxied, plain, sizes)
                else:
                    seconds = _measure(endpoint, plain, sizes)
                where = f"+{latency:g} ms per request" if latency else "no added latency"
                for what, boto_name in (("put", "upload_fileobj"), ("get", "download_fileobj")):
                    for candidate, shown in (
                        ("store", f"store.{'put' if what == 'put' else 'download'}"),
                        ("client", f"EncryptingS3Client.{boto_name}"),
                    ):
                        rows.append(
                            Row(
                                f"{shown} {label}, {where}",
                                mb_per_s(sizes.size, seconds[f"{candidate} {what}"]),
                                "MB/s",
                                mb_per_s(sizes.size, seconds[f"boto3 {what}"]),
                                f"boto3 {boto_name}",
                                TARGET,
                            )
                        )
    return Group(
        "transfer",
        "11. The store's concurrent S3 transfers against boto3's (SeaweedFS)",
        f"`EncryptedStore.put` of a {label} file and `EncryptedStore.download` into a null "
        f"sink on `S3Backend(part_size={size_label(sizes.part_size)}, "
        f"concurrency={sizes.concurrency})`, and `EncryptingS3Client.upload_fileobj` / "
        f"`download_fileobj` with that `TransferConfig`, against boto3's `upload_fileobj` / "
        f"`download_fileobj` of the same plaintext with `TransferConfig` of the same part "
        f"size and concurrency; SeaweedFS (`weed mini`) on 127.0.0.1, sharing the CPUs. Then "
        f"the same through a proxy on 127.0.0.1 that delays each request by "
        f"{sizes.latency_ms:g} ms (benchmarks/latency.py). Best of {sizes.reps}, interleaved.",
        rows,
    )
