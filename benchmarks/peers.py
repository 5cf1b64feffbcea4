"""sealstore against the envelope-encryption peers, on the same workloads in one process.

Run with ``nox -s bench-peers`` (its own environment, with Tink and the AWS Encryption SDK
installed), or ``python benchmarks/peers.py`` where they are installed::

    python benchmarks/peers.py                           # full sizes, several minutes
    python benchmarks/peers.py --quick                   # small sizes, a smoke run
    python benchmarks/peers.py --markdown docs/benchmarks.md

Every workload runs each scheme in turn, repetition after repetition (interleaved), and keeps
the best time of each, next to yardsticks measured in the same rounds: the raw floors
(one-shot ``AESGCM``; chunked GCM, ``AESGCM.encrypt_into`` per 16 KiB chunk on one thread and
on two) and a hand-written Cobblestone envelope (``benchmarks/run.py``). Peak RSS is measured
in a fresh child process per scheme. ``--markdown`` rewrites only the marked peers section
of the file it is given.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import sealstore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import peer_schemes as peers
from benchmarks.measure import (
    KiB,
    MiB,
    best_interleaved,
    mb_per_s,
    memory_kib,
    reset_peak_memory,
    size_label,
    write_random_file,
)
from benchmarks.results import (
    PEERS_BEGIN,
    PEERS_END,
    Group,
    Row,
    Target,
    console_table,
    markdown_table,
)
from benchmarks.run import NullSink, committing_envelope, count_kms_calls, machine_facts
from sealstore import _bulk
from sealstore.keys.kms import BucketKeyPolicy

CHUNK: Final = 16384
TAG: Final = 16
CHILD_COMMAND: Final = "_rss-child"


@dataclass(frozen=True)
class Sizes:
    small_loops: int
    small_reps: int
    oneshot: int
    oneshot_reps: int
    stream: int
    stream_reps: int
    random_object: int
    random_reads: int
    random_reps: int
    rss_file: int
    kms_objects: int


FULL: Final = Sizes(2000, 5, 64 * MiB, 5, 256 * MiB, 3, 256 * MiB, 2000, 5, 256 * MiB, 10_000)
QUICK: Final = Sizes(200, 3, 4 * MiB, 3, 16 * MiB, 2, 16 * MiB, 500, 3, 32 * MiB, 1000)

ENVELOPE_PEERS: Final = ("Tink KmsEnvelopeAead", "AWS Encryption SDK")
INFO_PEERS: Final = ("Tink Aead", "Fernet")


# --------------------------------------------------------------------------- floors


def chunked_gcm(data: bytes, threads: int, aead: AESGCM) -> None:
    """Raw chunked GCM: ``encrypt_into`` per 16 KiB chunk, a reused output per thread."""
    view = memoryview(data)
    chunks = -(-len(data) // CHUNK)
    share = -(-chunks // threads)

    def work(first: int, last: int) -> None:
        out = memoryview(bytearray(CHUNK + TAG))
        for index in range(first, last):
            piece = view[index * CHUNK : (index + 1) * CHUNK]
            aead.encrypt_into(index.to_bytes(12, "big"), piece, None, out[: len(piece) + TAG])

    if threads == 1:
        work(0, chunks)
        return
    workers = [
        threading.Thread(target=work, args=(k * share, min((k + 1) * share, chunks)))
        for k in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


# --------------------------------------------------------------------------- schemes


def sealstore_scheme() -> peers.Scheme:
    keys = sealstore.CustomerKeys(os.urandom(32))
    return peers.Scheme(
        "sealstore",
        lambda plaintext: sealstore.encrypt(plaintext, keys),
        lambda blob: sealstore.decrypt(blob, keys),
    )


def committing_scheme() -> peers.Scheme:
    envelope = committing_envelope(b"")
    return peers.Scheme("Cobblestone envelope", envelope.encrypt, envelope.decrypt)


def gcm_floor() -> peers.Scheme:
    """One-shot AES-256-GCM under one key and a random nonce: no envelope at all."""
    aead = AESGCM(os.urandom(32))

    def encrypt(plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + aead.encrypt(nonce, plaintext, None)

    def decrypt(blob: bytes) -> bytes:
        return aead.decrypt(blob[:12], memoryview(blob)[12:], None)

    return peers.Scheme("one-shot AESGCM", encrypt, decrypt)


def all_schemes() -> dict[str, peers.Scheme]:
    schemes = [
        sealstore_scheme(),
        committing_scheme(),
        peers.tink_envelope(),
        peers.esdk(),
        peers.tink_aead(),
        peers.fernet(),
        gcm_floor(),
    ]
    return {scheme.name: scheme for scheme in schemes}


def check(scheme: peers.Scheme, plaintext: bytes) -> bytes:
    blob = scheme.encrypt(plaintext)
    if scheme.decrypt(blob) != plaintext:
        raise AssertionError(f"{scheme.name} lost data")
    return blob


def best_peer(best: dict[str, float], names: Sequence[str]) -> tuple[str, float]:
    """The fastest of ``names`` (rates, higher is better)."""
    name = max(names, key=lambda n: best[n])
    return name, best[name]


# --------------------------------------------------------------------------- 1. round trips


def bench_round_trips(sizes: Sizes, size: int) -> Group:
    label = size_label(size)
    plaintext = os.urandom(size)
    schemes = all_schemes()
    # The ESDK is two orders of magnitude slower per object: fewer loops keep it short.
    loops = dict.fromkeys(schemes, sizes.small_loops)
    loops["AWS Encryption SDK"] = max(sizes.small_loops // 20, 10)
    cases: dict[str, Callable[[], object]] = {}
    for name, scheme in schemes.items():
        check(scheme, plaintext)
        count = loops[name]

        def run(scheme: peers.Scheme = scheme, count: int = count) -> None:
            encrypt, decrypt = scheme.encrypt, scheme.decrypt
            for _ in range(count):
                decrypt(encrypt(plaintext))

        cases[name] = run
    seconds = best_interleaved(cases, sizes.small_reps)
    rate = {name: loops[name] / seconds[name] for name in schemes}
    peer, peer_rate = best_peer(rate, ENVELOPE_PEERS)
    ours = rate["sealstore"]
    name = f"sealstore {label} round trips"
    rows = [Row(name, ours, "ops/s", peer_rate, peer, Target(1.0, True, True))]
    if peer != "Tink KmsEnvelopeAead":
        tink = rate["Tink KmsEnvelopeAead"]
        rows.append(Row(name, ours, "ops/s", tink, "Tink KmsEnvelopeAead", Target(1.0, True, True)))
    rows += [
        Row(
            name,
            ours,
            "ops/s",
            rate["Cobblestone envelope"],
            "Cobblestone envelope",
            Target(0.9, True, True),
        ),
        Row(name, ours, "ops/s", rate["one-shot AESGCM"], "one-shot AESGCM (floor)"),
    ]
    rows += [
        Row(f"{other} {label} round trips", rate[other], "ops/s", ours, "sealstore")
        for other in (*ENVELOPE_PEERS, *INFO_PEERS)
    ]
    return Group(
        f"round-trips-{label}",
        f"Round trips of {label} (encrypt then decrypt)",
        f"Objects of {label} encrypted and decrypted in a loop ({sizes.small_loops} per "
        f"repetition, {loops['AWS Encryption SDK']} for the ESDK), best of {sizes.small_reps}. "
        "sealstore with `CustomerKeys` and no context.",
        rows,
    )


# --------------------------------------------------------------------------- 2. in memory


def bench_in_memory(sizes: Sizes) -> Group:
    size = sizes.oneshot
    label = size_label(size)
    plaintext = os.urandom(size)
    schemes = all_schemes()
    del schemes["Cobblestone envelope"]
    aead = AESGCM(os.urandom(32))
    nonce = os.urandom(12)
    sealed = aead.encrypt(nonce, plaintext, None)
    cases: dict[str, Callable[[], object]] = {
        "AESGCM.encrypt": lambda: aead.encrypt(nonce, plaintext, None),
        "AESGCM.decrypt": lambda: aead.decrypt(nonce, sealed, None),
    }
    for name, scheme in schemes.items():
        blob = check(scheme, plaintext)
        cases[f"{name} encrypt"] = partial(scheme.encrypt, plaintext)
        cases[f"{name} decrypt"] = partial(scheme.decrypt, blob)
    seconds = best_interleaved(cases, sizes.oneshot_reps)
    rate = {name: mb_per_s(size, value) for name, value in seconds.items()}
    rows = []
    for operation in ("encrypt", "decrypt"):
        peer, peer_rate = best_peer(rate, [f"{p} {operation}" for p in ENVELOPE_PEERS])
        ours = rate[f"sealstore {operation}"]
        name = f"sealstore {operation} {label}"
        floor_goal = Target(0.95, True, True) if operation == "decrypt" else None
        rows += [
            Row(name, ours, "MB/s", peer_rate, peer, Target(1.0, True, True)),
            Row(name, ours, "MB/s", rate[f"AESGCM.{operation}"], f"AESGCM.{operation}", floor_goal),
        ]
        rows += [
            Row(
                f"{other} {operation} {label}",
                rate[f"{other} {operation}"],
                "MB/s",
                ours,
                "sealstore",
            )
            for other in (*ENVELOPE_PEERS, *INFO_PEERS)
        ]
    return Group(
        "in-memory",
        f"Encrypt and decrypt of {label} in memory",
        f"One call over {label}, producing a fresh output; best of {sizes.oneshot_reps}. "
        f"sealstore with its default thread count ({_bulk.thread_count(None)} here). The "
        "floor is one `AESGCM.encrypt`/`decrypt` call over the same bytes.",
        rows,
    )


# --------------------------------------------------------------------------- 3. streams


def bench_streams(sizes: Sizes) -> Group:
    size = sizes.stream
    label = size_label(size)
    plaintext = os.urandom(size)
    keys = sealstore.CustomerKeys(os.urandom(32))
    aead = AESGCM(os.urandom(32))
    streamers = {s.name: s for s in (peers.tink_streamer(), peers.esdk_streamer())}
    sealed: dict[str, bytes] = {}
    for name, streamer in streamers.items():
        out = io.BytesIO()
        streamer.encrypt(io.BytesIO(plaintext), out)
        sealed[name] = out.getvalue()
        back = io.BytesIO()
        streamer.decrypt(io.BytesIO(sealed[name]), back)
        if back.getbuffer() != plaintext:
            raise AssertionError(f"{name} lost data")
    blob = sealstore.encrypt(plaintext, keys)
    check_sink = io.BytesIO()
    sealstore.decrypt_stream(io.BytesIO(blob), check_sink, keys)
    if check_sink.getbuffer() != plaintext:
        raise AssertionError("sealstore lost data")
    del check_sink

    cases: dict[str, Callable[[], object]] = {
        "chunked GCM, 1 thread": partial(chunked_gcm, plaintext, 1, aead),
        "chunked GCM, 2 threads": partial(chunked_gcm, plaintext, 2, aead),
        "sealstore encrypt": lambda: sealstore.encrypt_stream(
            io.BytesIO(plaintext), NullSink(), keys
        ),
        "sealstore decrypt": lambda: sealstore.decrypt_stream(io.BytesIO(blob), NullSink(), keys),
        "sealstore 1 thread encrypt": lambda: sealstore.encrypt_stream(
            io.BytesIO(plaintext), NullSink(), keys, threads=1
        ),
        "sealstore 1 thread decrypt": lambda: sealstore.decrypt_stream(
            io.BytesIO(blob), NullSink(), keys, threads=1
        ),
    }
    for name, streamer in streamers.items():
        cases[f"{name} encrypt"] = partial(_stream, streamer.encrypt, plaintext)
        cases[f"{name} decrypt"] = partial(_stream, streamer.decrypt, sealed[name])
    seconds = best_interleaved(cases, sizes.stream_reps)
    rate = {name: mb_per_s(size, value) for name, value in seconds.items()}
    one, two = rate["chunked GCM, 1 thread"], rate["chunked GCM, 2 threads"]
    rows = []
    for operation in ("encrypt", "decrypt"):
        peer, peer_rate = best_peer(rate, [f"{n} {operation}" for n in streamers])
        ours = rate[f"sealstore {operation}"]
        name = f"sealstore {operation}_stream {label}"
        rows += [
            Row(name, ours, "MB/s", peer_rate, peer, Target(1.0, True, True)),
            Row(name, ours, "MB/s", two, "chunked GCM, 2 threads", Target(0.85, True, True)),
            Row(
                f"sealstore {operation}_stream, threads=1",
                rate[f"sealstore 1 thread {operation}"],
                "MB/s",
                one,
                "chunked GCM, 1 thread",
            ),
        ]
        rows += [
            Row(f"{n} {operation}", rate[f"{n} {operation}"], "MB/s", ours, "sealstore")
            for n in streamers
        ]
    rows.append(Row("chunked GCM, 2 threads", two, "MB/s", one, "chunked GCM, 1 thread"))
    return Group(
        "streams",
        f"Streams of {label}, in-memory source to a discarding sink",
        f"`encrypt_stream`/`decrypt_stream` from an `io.BytesIO` into a sink that keeps "
        f"nothing, with the default thread count ({_bulk.thread_count(None)} here) and with "
        f"`threads=1`; the peers' streaming APIs over the same source and sink (1 MiB "
        f"copies). Floors: `AESGCM.encrypt_into` per 16 KiB chunk (a fresh nonce each, a "
        f"reused output buffer) over the same bytes, on one thread and on two threads each "
        f"taking half. Best of {sizes.stream_reps}.",
        rows,
    )


def _stream(operation: Callable[[Any, Any], object], data: bytes) -> None:
    operation(io.BytesIO(data), NullSink())


# --------------------------------------------------------------------------- 4. random reads


def bench_random_reads(sizes: Sizes) -> Group:
    size = sizes.random_object
    label = size_label(size)
    plaintext = os.urandom(size)
    keys = sealstore.CustomerKeys(os.urandom(32))
    blob = sealstore.encrypt(plaintext, keys)
    aead = AESGCM(os.urandom(32))
    # The floor's body: the same chunks, sealed under nonce = index, read from memory.
    body = bytearray()
    for index in range(-(-size // CHUNK)):
        body += aead.encrypt(
            index.to_bytes(12, "big"), plaintext[index * CHUNK : (index + 1) * CHUNK], None
        )
    floor_body = bytes(body)
    del body
    rng = random.Random(12)
    offsets = [rng.randrange(0, size - 4 * KiB) for _ in range(sizes.random_reads)]
    reader = sealstore.open_decrypted(io.BytesIO(blob), keys)
    for offset in offsets[:50]:
        reader.seek(offset)
        if reader.read(4 * KiB) != plaintext[offset : offset + 4 * KiB]:
            raise AssertionError("a ranged read lost data")

    def ours() -> None:
        seek, read = reader.seek, reader.read
        for offset in offsets:
            seek(offset)
            read(4096)

    def floor() -> None:
        view = memoryview(floor_body)
        decrypt = aead.decrypt
        for offset in offsets:
            first, last = offset // CHUNK, (offset + 4095) // CHUNK
            parts = []
            for index in range(first, last + 1):
                at = index * (CHUNK + TAG)
                parts.append(decrypt(index.to_bytes(12, "big"), view[at : at + CHUNK + TAG], None))
            start = offset - first * CHUNK
            b"".join(parts)[start : start + 4096]

    floor_file = io.BytesIO(floor_body)

    def floor_with_reads() -> None:
        seek, read, decrypt = floor_file.seek, floor_file.read, aead.decrypt
        for offset in offsets:
            first, last = offset // CHUNK, (offset + 4095) // CHUNK
            seek(first * (CHUNK + TAG))
            view = memoryview(read((last - first + 1) * (CHUNK + TAG)))
            parts = [
                decrypt(
                    index.to_bytes(12, "big"),
                    view[k * (CHUNK + TAG) : (k + 1) * (CHUNK + TAG)],
                    None,
                )
                for k, index in enumerate(range(first, last + 1))
            ]
            start = offset - first * CHUNK
            b"".join(parts)[start : start + 4096]

    tink = peers.tink_streamer()
    tink_sealed = io.BytesIO()
    tink.encrypt(io.BytesIO(plaintext), tink_sealed)
    whole = partial(_stream, tink.decrypt, tink_sealed.getvalue())
    seconds = best_interleaved(
        {"floor": floor, "floor with reads": floor_with_reads, "sealstore": ours},
        sizes.random_reps,
    )
    whole_seconds = best_interleaved({"tink": whole}, 1)["tink"]
    reads = len(offsets)
    return Group(
        "random-reads",
        f"4 KiB random reads of a {label} object",
        f"{reads} reads of 4 KiB at seeded random offsets: `open_decrypted` over an "
        "`io.BytesIO` of the object (seek, read); the floor slices the same reads' chunks out "
        "of a chunked-GCM body in memory and decrypts them with `AESGCM.decrypt` (1 or 2 "
        "chunks a read); a second floor also seeks and reads those chunks from an `io.BytesIO` "
        "of that body, as any reader of a file object must. No peer has random access: for "
        "information, Tink's whole-object "
        f"streaming decrypt, per read. Best of {sizes.random_reps}.",
        [
            Row(
                "open_decrypted 4 KiB reads",
                reads / seconds["sealstore"],
                "reads/s",
                reads / seconds["floor"],
                "chunked GCM floor",
                Target(0.8, True, True),
            ),
            Row(
                "open_decrypted 4 KiB reads",
                reads / seconds["sealstore"],
                "reads/s",
                reads / seconds["floor with reads"],
                "chunked GCM floor, seek and read from io.BytesIO",
            ),
            Row(
                "Tink streaming, whole decrypt per read",
                1 / whole_seconds,
                "reads/s",
                reads / seconds["sealstore"],
                "sealstore",
            ),
        ],
    )


# --------------------------------------------------------------------------- 5. peak RSS


def child_main(argv: Sequence[str]) -> int:
    scheme, source, destination = argv
    key = bytes.fromhex(sys.stdin.read().strip())
    encrypt: Callable[[Any, Any], object]
    if scheme == "sealstore":
        keys = sealstore.CustomerKeys(key)
        encrypt = partial(_sealstore_encrypt_stream, keys=keys)
    elif scheme == "tink":
        encrypt = peers.tink_streamer().encrypt
    else:
        encrypt = peers.esdk_streamer().encrypt
    with open(source, "rb") as src, open(destination, "wb") as dst:
        reset_peak_memory()
        before, _ = memory_kib()
        encrypt(src, dst)
        dst.flush()
    _, peak = memory_kib()
    print(json.dumps({"rss_growth_kib": peak - before}))
    return 0


def _sealstore_encrypt_stream(src: Any, dst: Any, *, keys: sealstore.CustomerKeys) -> None:
    sealstore.encrypt_stream(src, dst, keys)


def bench_rss(sizes: Sizes) -> Group:
    size = sizes.rss_file
    label = size_label(size)
    growth: dict[str, float] = {}
    names = {"sealstore": "sealstore", "tink": "Tink streaming", "esdk": "AWS Encryption SDK"}
    with tempfile.TemporaryDirectory(prefix="sealstore-peers-") as directory:
        plain, sealed = Path(directory) / "plain", Path(directory) / "sealed"
        write_random_file(plain, size)
        for scheme in names:
            completed = subprocess.run(  # noqa: S603 - this script, fixed arguments
                [sys.executable, __file__, CHILD_COMMAND, scheme, str(plain), str(sealed)],
                input=os.urandom(32).hex(),
                capture_output=True,
                text=True,
                check=True,
            )
            growth[scheme] = json.loads(completed.stdout)["rss_growth_kib"] / KiB
    peer = min(("tink", "esdk"), key=lambda n: growth[n])
    return Group(
        "rss",
        f"Peak RSS growth of a streaming encrypt of a {label} file",
        "Each scheme encrypts one file into another in a fresh child process, which records "
        "its peak RSS after imports and setup and again after the operation; the growth is "
        "the difference. Lower is better.",
        [
            Row(
                "sealstore encrypt_stream peak RSS growth",
                growth["sealstore"],
                "MiB",
                growth[peer],
                names[peer],
                Target(32, False, False),
                show_ratio=False,
            ),
            *(
                Row(f"{names[n]} peak RSS growth", growth[n], "MiB", show_ratio=False)
                for n in ("tink", "esdk")
            ),
        ],
    )


# --------------------------------------------------------------------------- 6. KMS calls


def bench_kms_calls(sizes: Sizes) -> Group:
    count = sizes.kms_objects
    plaintext = os.urandom(KiB)
    policy = BucketKeyPolicy()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sealstore-peers-kms-") as directory:
        local = sealstore.LocalKms(
            Path(directory) / "kms",
            root_key=sealstore.RootKey.from_bytes(os.urandom(32)),
            create=True,
        )
        key_id = local.default_key_id(principal="bench")
        for label, bucket in (("per-object keys", None), ("bucket keys", policy)):
            counted = count_kms_calls(local, key_id, plaintext, count, bucket)
            used = counted["generate_data_key"] + counted["decrypt"]
            goal = Target(2 * math.ceil(count / policy.max_objects), False, False)
            rows.append(Row(f"sealstore, {label}", used, "calls", target=goal if bucket else None))
    tink_calls = peers.Calls()
    tink = peers.tink_envelope(tink_calls)
    esdk_calls = peers.Calls()
    esdk = peers.esdk(esdk_calls)
    cached_calls = peers.Calls()
    cached_writer, cached_reader = peers.esdk_caching(cached_calls, policy.max_objects)
    for scheme, calls, runs in (
        (tink, tink_calls, count),
        (esdk, esdk_calls, min(count, 1000)),
        (cached_writer, cached_calls, count),
    ):
        sealed = [scheme.encrypt(plaintext) for _ in range(runs)]
        opener = cached_reader if scheme is cached_writer else scheme
        if any(opener.decrypt(blob) != plaintext for blob in sealed):
            raise AssertionError(f"{scheme.name} lost data")
        total = (calls.wrap + calls.unwrap) * count // runs
        rows.append(Row(scheme.name, total, "calls"))
    return Group(
        "kms-calls",
        f"Calls to the KMS per {count:,} objects (encrypt, then decrypt by a fresh reader)",
        f"{count:,} objects of 1 KiB encrypted, then decrypted by a second provider with "
        "nothing cached, counting the calls that reach the key-encryption key: sealstore's "
        "`KmsKeys` over `LocalKms` (through `CountingKms`), Tink's remote AEAD, and the ESDK "
        "master key's generate and decrypt (its default materials manager measured over "
        "1,000 objects and scaled; its caching manager reuses a data key for up to "
        f"{policy.max_objects} messages, like sealstore's bucket keys).",
        rows,
    )


# --------------------------------------------------------------------------- report


def section(facts: dict[str, str], groups: Sequence[Group], command: str) -> str:
    lines = [
        PEERS_BEGIN,
        "## Against the peers",
        "",
        f"Produced by `{command}`. Same workloads, one process, interleaved, best of N;",
        "ratios are figure / baseline; every target is checked against a baseline measured",
        "in the same run. The Amazon S3 Encryption Client for Python 4.0.0 is not measured:",
        "it pins `cryptography<49`, and sealstore needs the `cryptography.cobblestone` module",
        "of `cryptography` 51, so the two cannot share an environment, and its only API is an",
        "S3 client (put/get through S3 with a KMS keyring), not comparable in one process.",
        "",
        *(f"- {name}: {value}" for name, value in facts.items()),
    ]
    if facts.get("mode", "").startswith("quick"):
        lines += [
            "",
            "**A quick run** (small sizes, a smoke run): these figures show that the harness",
            "works, not where sealstore stands; the load average above says how busy the",
            "machine was. Run `nox -s bench-peers -- --markdown docs/benchmarks.md` on a quiet",
            "machine for the figures of record.",
        ]
    start_load = facts.get("load average at start (1, 5, 15 min)", "0").split(",")[0]
    load, cpus = float(start_load), os.cpu_count() or 1
    if load > cpus:
        lines += [
            "",
            f"**A busy machine**: the load average at the start ({load:.1f}) exceeded the "
            f"{cpus} CPUs, so other work shared them and the figures are noisy; the second "
            "CPU the thread pool and the two-thread floor count on was often not free.",
        ]
    targeted = [row for group in groups for row in group.rows if row.target is not None]
    if targeted:
        lines += [
            "",
            "### Targets",
            "",
            "Every target of this run, with its baseline from the same run:",
            "",
            markdown_table(targeted),
        ]
    for group in groups:
        lines += ["", f"### {group.title}", "", group.about, "", markdown_table(group.rows)]
    return "\n".join([*lines, "", PEERS_END]) + "\n"


def write_section(path: Path, text: str) -> None:
    """Replace the marked section of ``path`` with ``text`` (appended if absent)."""
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    if PEERS_BEGIN in old and PEERS_END in old:
        head, rest = old.split(PEERS_BEGIN, 1)
        _, tail = rest.split(PEERS_END, 1)
        new = head + text.rstrip("\n") + tail
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


GROUPS: Final = ("small", "memory", "streams", "random", "rss", "kms")


def main(argv: Sequence[str]) -> int:
    if argv and argv[0] == CHILD_COMMAND:
        return child_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", action="append", choices=GROUPS, help="run only this group")
    parser.add_argument("--markdown", type=Path, help="rewrite the peers section of this file")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    facts = {**machine_facts(args.quick), **{f"{k} (peer)": v for k, v in peers.versions().items()}}
    facts["sealstore threads (default)"] = str(_bulk.thread_count(None))
    for name, value in facts.items():
        print(f"{name}: {value}")
    runs: dict[str, Callable[[], list[Group]]] = {
        "small": lambda: [bench_round_trips(sizes, KiB), bench_round_trips(sizes, 64 * KiB)],
        "memory": lambda: [bench_in_memory(sizes)],
        "streams": lambda: [bench_streams(sizes)],
        "random": lambda: [bench_random_reads(sizes)],
        "rss": lambda: [bench_rss(sizes)],
        "kms": lambda: [bench_kms_calls(sizes)],
    }
    groups: list[Group] = []
    for key in args.only or GROUPS:
        started = time.perf_counter()
        for group in runs[key]():
            groups.append(group)
            print(f"\n{group.title}  [{time.perf_counter() - started:.1f} s]")
            print(console_table(group.rows), flush=True)
    missed = [row.name for group in groups for row in group.rows if row.status == "MISSED"]
    targets = sum(row.target is not None for group in groups for row in group.rows)
    print(f"\ntargets met: {targets - len(missed)} of {targets}")
    if args.markdown is not None:
        command = " ".join(["nox -s bench-peers --", *argv])
        write_section(args.markdown, section(facts, groups, command))
        print(f"peers section written to {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
