"""The ``sealstore`` fsspec filesystem: pandas and pyarrow reading and writing encrypted
files through it, on a local directory and on SeaweedFS, and the fsspec operations."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.arrow import ArrowFSWrapper

import sealstore
from sealstore.fsspec_fs import DEFAULT_BLOCK_SIZE, SealstoreFileSystem
from sealstore.header import PREFIX_SIZE
from sealstore.testing import CountingKms, MemoryKms
from tests.test_s3_backend import s3_client, unique_bucket

CHUNK_STORED = 16400  # one 16 KiB chunk and its tag
ROWS = 2 * 131072  # two row groups of 1 MiB per float64 column


class CountingFile:
    """A file of the target that counts the bytes read from it."""

    def __init__(self, inner: Any, counter: CountingTarget) -> None:
        self.inner = inner
        self.counter = counter

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.inner.read(size)
        self.counter.fetched += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class CountingTarget:
    """A target filesystem that counts the bytes fetched from it (a wrapper, not a subclass)."""

    def __init__(self, inner: Any, **cat_options: Any) -> None:
        self.inner = inner
        self.fetched = 0
        self.cat_options = cat_options

    def cat_file(self, path: str, start: int | None = None, end: int | None = None) -> bytes:
        data: bytes = self.inner.cat_file(path, start, end, **self.cat_options)
        self.fetched += len(data)
        return data

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        file = self.inner.open(path, mode, **kwargs)
        return CountingFile(file, self) if mode == "rb" else file

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def kms() -> CountingKms:
    """An in-memory KMS with one key, counting its calls."""
    inner = MemoryKms()
    inner.create_key("k1")
    return CountingKms(inner)


@pytest.fixture
def kms_keys(kms: CountingKms) -> sealstore.KmsKeys:
    """KMS keys over the counting KMS."""
    return sealstore.KmsKeys(kms, key_id="k1")


def _frame() -> pd.DataFrame:
    """Four incompressible float64 columns: each column chunk of a row group is 1 MiB."""
    rng = random.Random(7)
    return pd.DataFrame({name: [rng.random() for _ in range(ROWS)] for name in "abcd"})


def _read_one_column(
    fs: SealstoreFileSystem,
    path: str,
    target: CountingTarget,
    kms: CountingKms,
    frame: pd.DataFrame,
    **options: Any,
) -> tuple[int, int]:
    """Read column b of row group 1; return the bytes fetched and that column chunk's size
    plus the footer. Checks the values and that the data key was unwrapped once."""
    fetched, unwraps = target.fetched, kms.calls["decrypt"]
    with fs.open(path, "rb", **options) as file:
        parquet = pq.ParquetFile(file)
        table = parquet.read_row_group(1, columns=["b"])
        metadata = parquet.metadata
    assert kms.calls["decrypt"] - unwraps == 1
    assert table.column("b").to_numpy().tolist() == frame.b[ROWS // 2 :].tolist()
    needed = metadata.row_group(1).column(1).total_compressed_size + metadata.serialized_size
    return target.fetched - fetched, needed


def _check_parquet_reads(
    fs: SealstoreFileSystem, path: str, target: CountingTarget, kms: CountingKms
) -> None:
    frame = _frame()
    stored = fs.info(path)["stored_size"]
    # No cache: what is fetched is the column chunk and the footer (pyarrow reads the last
    # 64 KiB at once), each rounded out to whole chunks, and the object's header.
    fetched, needed = _read_one_column(fs, path, target, kms, frame, cache_type="none")
    assert needed < fetched <= needed + (64 << 10) + 8 * CHUNK_STORED
    # The default read-ahead adds at most one block.
    fetched, needed = _read_one_column(fs, path, target, kms, frame)
    assert needed < fetched <= needed + (64 << 10) + DEFAULT_BLOCK_SIZE + 8 * CHUNK_STORED
    assert fetched < stored // 3
    # pandas reads the whole of column b: one unwrap for each file it opens.
    opened: list[str] = []
    store_open = fs.store.open

    def counting_open(name: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(name)
        return store_open(name, *args, **kwargs)

    fs.store.open = counting_open  # type: ignore[method-assign]
    unwraps = kms.calls["decrypt"]
    back = pd.read_parquet(path, columns=["b"], filesystem=fs)
    assert back.b.tolist() == frame.b.tolist()
    assert opened
    assert kms.calls["decrypt"] - unwraps == len(opened)


def test_parquet_through_a_chained_url_on_a_directory(
    tmp_path: Path, kms: CountingKms, kms_keys: sealstore.KmsKeys
) -> None:
    """pandas writes encrypted Parquet through sealstore::file://; reading one column of one
    row group fetches that column and the footer, and unwraps the data key once."""
    url = f"sealstore::file://{tmp_path}/tables/data.parquet"
    _frame().to_parquet(
        url, storage_options={"sealstore": {"keys": kms_keys}}, row_group_size=ROWS // 2
    )
    assert kms.calls["generate_data_key"] == 1
    stored = (tmp_path / "tables" / "data.parquet").read_bytes()
    assert stored.startswith(b"SEAL")
    assert b"PAR1" not in stored  # Parquet's magic, at both ends of a plaintext file
    target = CountingTarget(fsspec.filesystem("file"))
    fs = SealstoreFileSystem(kms_keys, fs=target)
    _check_parquet_reads(fs, f"{tmp_path}/tables/data.parquet", target, kms)


@pytest.fixture
def seaweedfs_target(seaweedfs_server: str) -> tuple[CountingTarget, str]:
    """SeaweedFS as an fsspec filesystem (pyarrow's S3 client), with a bucket of its own."""
    bucket = unique_bucket(s3_client(seaweedfs_server))
    s3 = pafs.S3FileSystem(
        access_key="testing",
        secret_key="testing",
        endpoint_override=seaweedfs_server,
        region="us-east-1",
    )
    # fsspec's ArrowFSWrapper opens a file unseekable for a range from 0 (cat_file), then
    # seeks it; s3fs has no such problem, but cannot be installed beside boto3 here.
    return CountingTarget(ArrowFSWrapper(s3), seekable=True), bucket


def test_parquet_on_seaweedfs(
    seaweedfs_target: tuple[CountingTarget, str], kms: CountingKms, kms_keys: sealstore.KmsKeys
) -> None:
    """The same on SeaweedFS: pyarrow writes through the filesystem, reads stay ranged."""
    target, bucket = seaweedfs_target
    path = f"{bucket}/tables/data.parquet"
    options = {"fs": target, "keys": kms_keys, "fo": path}  # the root defaults to the bucket
    _frame().to_parquet(f"sealstore://{path}", storage_options=options, row_group_size=ROWS // 2)
    fs = SealstoreFileSystem(kms_keys, fs=target, root=bucket)
    assert fs.store.head("tables/data.parquet").plaintext_size == fs.info(path)["size"]
    _check_parquet_reads(fs, path, target, kms)
    assert fs.ls(f"{bucket}/tables", detail=False) == [path]
    fs.rm(f"{bucket}/tables", recursive=True)
    assert not fs.exists(path)


def test_csv_through_pandas(tmp_path: Path, plaintext: bytes) -> None:
    """pandas writes and reads CSV through sealstore::; the file on disk is ciphertext."""
    keys = sealstore.ManagedKeys(sealstore.MemoryKeyringStore())
    url = f"sealstore::file://{tmp_path}/report.csv"
    frame = pd.DataFrame({"item": [plaintext.decode()] * 3, "amount": [1, 2, 3]})
    frame.to_csv(url, index=False, storage_options={"keys": keys})
    assert plaintext not in (tmp_path / "report.csv").read_bytes()
    back = pd.read_csv(url, storage_options={"keys": keys})
    assert back.equals(frame)


@pytest.fixture
def memory_fs() -> Iterator[tuple[SealstoreFileSystem, Any, str]]:
    """A sealstore filesystem over a fresh fsspec memory filesystem, and a directory."""
    target = fsspec.filesystem("memory", skip_instance_cache=True)
    top = f"/fs-test-{os.urandom(4).hex()}"
    keys = sealstore.ManagedKeys(sealstore.MemoryKeyringStore())
    yield fsspec.filesystem("sealstore", fs=target, keys=keys), target, top
    target.rm(top, recursive=True)


def test_registered_through_the_entry_point() -> None:
    """fsspec finds the sealstore protocol through the fsspec.specs entry point."""
    (entry,) = entry_points(group="fsspec.specs", name="sealstore")
    assert entry.load() is SealstoreFileSystem
    assert fsspec.get_filesystem_class("sealstore") is SealstoreFileSystem


def test_sizes_are_plaintext_sizes(memory_fs: tuple[SealstoreFileSystem, Any, str]) -> None:
    """ls, info, size and find give plaintext sizes; directories are listed as such."""
    fs, target, top = memory_fs
    fs.pipe_file(f"{top}/a.txt", b"12345")
    fs.pipe_file(f"{top}/sub/b.txt", b"x" * 40000)
    fs.makedirs(f"{top}/empty", exist_ok=True)
    listed = fs.ls(top)
    assert [(e["name"], e["size"], e["type"]) for e in listed] == [
        (f"{top}/a.txt", 5, "file"),
        (f"{top}/empty", 0, "directory"),
        (f"{top}/sub", 0, "directory"),
    ]
    assert listed[0]["encrypted"]
    assert listed[0]["mode"] == "managed"
    assert listed[0]["stored_size"] > 5
    assert target.size(f"{top}/a.txt") == listed[0]["stored_size"]
    assert fs.size(f"{top}/sub/b.txt") == 40000
    assert fs.find(top) == [f"{top}/a.txt", f"{top}/sub/b.txt"]
    assert fs.info(top)["type"] == "directory"
    assert fs.info("/")["type"] == "directory"  # the root itself
    assert fs.isdir(f"{top}/sub")
    assert fs.isfile(f"{top}/a.txt")
    assert not fs.exists(f"{top}/missing")
    with pytest.raises(FileNotFoundError):
        fs.info(f"{top}/missing")
    with pytest.raises(FileNotFoundError):
        fs.ls(f"{top}/missing")


def test_random_access_reads(memory_fs: tuple[SealstoreFileSystem, Any, str]) -> None:
    """Ranges read anywhere in the file give the plaintext bytes there."""
    fs, _, top = memory_fs
    data = os.urandom(300_000)
    fs.pipe_file(f"{top}/data", data)
    assert fs.cat_file(f"{top}/data", 123_456, 200_000) == data[123_456:200_000]
    with fs.open(f"{top}/data", block_size=1000) as file:
        file.seek(-10, os.SEEK_END)
        assert file.read() == data[-10:]
        file.seek(5)
        assert file.read(7) == data[5:12]
    assert file.closed
    with pytest.raises(FileNotFoundError):
        fs.open(f"{top}/missing")


def test_delete_copy_move(memory_fs: tuple[SealstoreFileSystem, Any, str]) -> None:
    """rm, cp and mv work on objects; a copy is re-encrypted for its new name."""
    fs, target, top = memory_fs
    fs.pipe_file(f"{top}/d/one", b"one")
    fs.pipe_file(f"{top}/d/two", b"two")
    fs.cp(f"{top}/d/one", f"{top}/copy")
    assert fs.cat_file(f"{top}/copy") == b"one"
    assert target.cat_file(f"{top}/copy") != target.cat_file(f"{top}/d/one")
    fs.mv(f"{top}/copy", f"{top}/moved")
    assert fs.cat_file(f"{top}/moved") == b"one"
    assert not fs.exists(f"{top}/copy")
    fs.cp(f"{top}/d", f"{top}/e", recursive=True)
    assert fs.find(f"{top}/e") == [f"{top}/e/one", f"{top}/e/two"]
    fs.rm(f"{top}/d", recursive=True)
    fs.rm_file(f"{top}/moved")
    assert fs.find(top) == [f"{top}/e/one", f"{top}/e/two"]
    assert not target.exists(f"{top}/d")
    with pytest.raises(FileNotFoundError):
        fs.rm(f"{top}/nothing-here")
    with pytest.raises(FileNotFoundError):
        fs.cp_file(f"{top}/nothing-here", f"{top}/else")
    fs.mkdir(f"{top}/made")
    assert fs.isdir(f"{top}/made")
    fs.rmdir(f"{top}/made")
    assert not fs.exists(f"{top}/made")


def test_failed_write_leaves_nothing(memory_fs: tuple[SealstoreFileSystem, Any, str]) -> None:
    """A file written through the filesystem is stored on close, never after an error."""
    fs, target, top = memory_fs
    file = fs.open(f"{top}/partial", "wb")
    with pytest.raises(KeyError):
        _write_then_fail(file)
    assert not fs.exists(f"{top}/partial")
    assert target.find(top) == []
    with fs.open(f"{top}/text.txt", "w") as text:
        text.write("héllo\n")
    with fs.open(f"{top}/text.txt", "r") as text:
        assert text.read() == "héllo\n"


def _write_then_fail(file: Any) -> None:
    with file:
        file.write(b"half of it")
        raise KeyError("boom")


def test_objects_that_are_not_readable(memory_fs: tuple[SealstoreFileSystem, Any, str]) -> None:
    """A plaintext file is listed as not encrypted and refused; a damaged one is listed
    with its problem; a write in progress is not listed."""
    fs, target, top = memory_fs
    target.pipe_file(f"{top}/plain.txt", b"not encrypted")
    fs.pipe_file(f"{top}/damaged", b"cut short")
    target.pipe_file(f"{top}/damaged", target.cat_file(f"{top}/damaged")[: PREFIX_SIZE + 4])
    target.pipe_file(f"{top}/.sealstore-tmp-0123", b"in progress")
    listed = {entry["name"]: entry for entry in fs.ls(top)}
    assert sorted(listed) == [f"{top}/damaged", f"{top}/plain.txt"]
    assert listed[f"{top}/plain.txt"]["encrypted"] is False
    assert listed[f"{top}/damaged"]["size"] is None
    assert listed[f"{top}/damaged"]["problem"]
    with pytest.raises(sealstore.NotEncryptedError):
        fs.cat_file(f"{top}/plain.txt")


def test_keys_through_url_options(tmp_path: Path) -> None:
    """Keys reach the filesystem of a chained URL as its options, or as top-level ones."""
    keys = sealstore.ManagedKeys(sealstore.MemoryKeyringStore())
    url = f"sealstore::file://{tmp_path}/a/b.bin"
    with fsspec.open(url, "wb", sealstore={"keys": keys}) as file:
        file.write(b"secret bytes")
    with fsspec.open(url, "rb", keys=keys) as file:
        assert file.read() == b"secret bytes"
    fs, path = fsspec.core.url_to_fs(url, keys=keys)
    assert isinstance(fs, SealstoreFileSystem)
    assert path == f"{tmp_path}/a/b.bin"
    # The object's name is its path from the target's root: the store reads it there.
    store = sealstore.EncryptedStore(
        sealstore.backends.FsspecBackend(fsspec.filesystem("file"), "/"), keys
    )
    assert store.get(path.lstrip("/")) == b"secret bytes"
    with pytest.raises(sealstore.InvalidKeyError, match="storage_options"):
        fsspec.open(url, "rb").open()


def test_customer_keys_are_per_filesystem() -> None:
    """Customer keys go with every request; filesystems with other keys are never shared."""
    target = fsspec.filesystem("memory", skip_instance_cache=True)
    first = sealstore.CustomerKeys(os.urandom(32))
    second = sealstore.CustomerKeys(os.urandom(32))
    fs = fsspec.filesystem("sealstore", fs=target, keys=first)
    other = fsspec.filesystem("sealstore", fs=target, keys=second)
    assert fs is not other
    fs.pipe_file("/customer/x", b"mine")
    fs.cp_file("/customer/x", "/customer/y")
    assert fs.cat_file("/customer/y") == b"mine"
    with pytest.raises(sealstore.WrongKeyError):
        other.cat_file("/customer/x")
    target.rm("/customer", recursive=True)


def test_configuration_errors(tmp_path: Path) -> None:
    """Bad configurations and unsupported modes fail with a clear error."""
    keys = sealstore.ManagedKeys(sealstore.MemoryKeyringStore())
    target = fsspec.filesystem("memory", skip_instance_cache=True)
    with pytest.raises(ValueError, match="not both"):
        SealstoreFileSystem(keys, fs=target, target_protocol="file")
    s3 = ArrowFSWrapper(pafs.SubTreeFileSystem("/", pafs.LocalFileSystem()))
    s3.root_marker = ""
    with pytest.raises(ValueError, match="root="):
        SealstoreFileSystem(keys, fs=s3)
    fs = SealstoreFileSystem(keys, fs=target, root="/inside")
    with pytest.raises(sealstore.InvalidNameError, match="outside the root"):
        fs.open("/elsewhere/x", "wb")
    with pytest.raises(ValueError, match="'rb' or 'wb'"):
        fs.open("/inside/x", "ab")
    with pytest.raises(NotImplementedError, match="transactions"), fs.transaction:
        fs.open("/inside/x", "wb")
