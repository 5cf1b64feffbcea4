"""``sealstore demo``: a tour of the library on its embedded defaults.

It needs nothing but the library itself, so ``python -m sealstore demo`` runs it even
without the ``cli`` extra.

It makes a store in a temporary directory (``FileSystemBackend``) with a keyring of managed
master keys and the embedded KMS, writes objects in all three modes, lists them, reads
ranges, rotates keys, rewraps, and shows the audit trail.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import sealstore
from sealstore.backends import FileSystemBackend


def demo(out: TextIO | None = None, directory: Path | None = None) -> None:
    """Run the tour, printing what it does to ``out`` (standard output by default)."""
    if directory is None:
        with tempfile.TemporaryDirectory(prefix="sealstore-demo-") as temporary:
            _tour(Path(temporary), out or sys.stdout)
    else:
        _tour(directory, out or sys.stdout)


def _tour(root: Path, out: TextIO) -> None:
    def say(line: str = "") -> None:
        print(line, file=out)

    say(f"working in {root}")
    root_key = sealstore.RootKey.from_bytes(os.urandom(32))
    audit = sealstore.JsonlAuditLog(root / "audit.jsonl")
    managed = sealstore.ManagedKeys(
        sealstore.FileKeyringStore(root / "keyring", root_key, create=True),
        audit=audit,
        principal="demo",
    )
    kms = sealstore.LocalKms(root / "kms", root_key=root_key, create=True)
    orders_key = kms.create_key(principal="demo", description="orders").key_id
    kms.create_alias("alias/orders", orders_key, principal="demo")
    kms_keys = sealstore.KmsKeys(kms, key_id="alias/orders", principal="demo")
    customer = sealstore.CustomerKeys(os.urandom(32), audit=audit, principal="demo")
    store = sealstore.EncryptedStore(
        FileSystemBackend(root / "objects"), managed, readers=[kms_keys]
    )
    say("store: FileSystemBackend, default ManagedKeys, KmsKeys over LocalKms for reading")
    say()

    lines = b"".join(f"line {i:06d}\n".encode() for i in range(20_000))
    store.put("logs/app.log", lines, context={"team": "platform"})
    store.put("orders/42.json", b'{"order": 42, "total": "19.99"}', keys=kms_keys)
    store.put("private/diary.txt", b"dear diary", keys=customer)
    say("wrote three objects, one per mode:")
    for head in store.list():
        size = "?" if head.plaintext_size is None else f"{head.plaintext_size:,}"
        key = head.key_version or head.key_id or "customer key (not stored)"
        mode = head.mode.name.lower() if head.mode else "plaintext"
        say(f"  {head.name:<20} {mode:<9} {size:>8} bytes  key: {key}")
    say()

    with store.open("logs/app.log") as reader:
        reader.seek(12 * 15_000)
        line = reader.read(12)
        say(f"ranged read of logs/app.log at byte {12 * 15_000:,}: {line!r}")
        say(f"  chunks decrypted: {reader.chunks_decrypted} of {len(lines) // 16384 + 1}")
    say(f"orders/42.json: {store.get('orders/42.json').decode()}")
    diary = store.get("private/diary.txt", keys=customer)
    say(f"private/diary.txt with its customer key: {diary!r}")
    say()

    old = store.head("logs/app.log").key_version
    new = managed.rotate().id
    kms.rotate_key(orders_key, principal="demo")
    say(f"rotated the managed master key: {old} -> {new}; rotated KMS key {orders_key[:8]}...")
    report = store.rewrap_all(
        "logs/", progress=lambda done, total, name: say(f"  [{done}/{total}] {name}")
    )
    current = store.head("logs/app.log").key_version
    say(f"rewrapped {report.done} object(s); logs/app.log is now under {current}")
    new_customer = sealstore.CustomerKeys(os.urandom(32), audit=audit, principal="demo")
    store.rewrap("private/diary.txt", keys=new_customer, source_keys=customer)
    say("re-keyed private/diary.txt to a new customer key without re-encrypting its body")
    say()

    _show_refusals(store, customer, say)
    _show_audit(audit, kms, say)


def _show_refusals(
    store: sealstore.EncryptedStore, old_key: sealstore.CustomerKeys, say: Callable[[str], None]
) -> None:
    refusals: list[tuple[str, Callable[[], object]]] = [
        ("reading the customer object without its key", lambda: store.get("private/diary.txt")),
        (
            "reading it with the old customer key",
            lambda: store.get("private/diary.txt", keys=old_key),
        ),
        (
            "reading with another expected context",
            lambda: store.get("logs/app.log", context={"team": "x"}),
        ),
    ]
    say("refusals:")
    for label, attempt in refusals:
        say(f"  {label}: {_refusal(attempt)}")
    say("")


def _show_audit(
    audit: sealstore.JsonlAuditLog, kms: sealstore.LocalKms, say: Callable[[str], None]
) -> None:
    say("audit trail (managed and customer keys):")
    for event in audit.events():
        say(
            f"  {event.time:%H:%M:%S} {event.principal} {event.operation.value:<18} "
            f"{event.outcome.value:<7} {event.key_id[:28]}"
        )
    verdict = audit.verify()
    say(f"  {verdict.records} records, hash chain {'intact' if verdict.ok else 'BROKEN'}")
    kms_verdict = sealstore.JsonlAuditLog(kms.path / "audit.jsonl").verify()
    say(f"LocalKms audit log: {kms_verdict.records} records, chain intact: {kms_verdict.ok}")


def _refusal(attempt: Callable[[], object]) -> str:
    try:
        attempt()
    except sealstore.SealstoreError as error:
        return f"{type(error).__name__}"
    raise SystemExit("a read that must fail succeeded")  # pragma: no cover
