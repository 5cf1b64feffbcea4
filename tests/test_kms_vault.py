"""``VaultTransitKms`` against a real OpenBao dev server, and its errors at the hvac seam."""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import hvac
import hvac.exceptions
import pytest

import sealstore
from sealstore.audit import MemoryAuditSink, Operation, Outcome
from sealstore.backends import MemoryBackend
from sealstore.header import encode_header, parse_header
from sealstore.keys.kms import decode_key_ref
from sealstore.kms import KmsClient, RotationAwareKmsClient
from sealstore.kms.vault import (
    BATCH_SIZE,
    CONTEXT_LABEL,
    VaultTransitKms,
    blob_version,
    transit_context,
)
from sealstore.placement import METADATA_KEY
from sealstore.testing import FakeClock
from tests.servers import free_ports, running_openbao

CONTEXT = {"bucket": "ledger-7f3a", "object": "2024/invoice-17.pdf"}
PRINCIPAL = "orders-service"


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def root_client(openbao: tuple[str, str], namespace: str | None = None) -> hvac.Client:
    """An hvac client holding the dev server's root token."""
    address, token = openbao
    return hvac.Client(url=address, token=token, namespace=namespace, timeout=10)


def enable_transit(client: hvac.Client) -> str:
    """A fresh Transit engine at a path of its own; its mount path."""
    mount = unique("transit")
    client.sys.enable_secrets_engine("transit", path=mount)
    return mount


def token_with_policy(client: hvac.Client, rules: str) -> str:
    """A new token whose only policy is ``rules`` (HCL)."""
    name = unique("policy")
    client.sys.create_or_update_policy(name, rules)
    token: str = client.auth.token.create(policies=[name], ttl="1h")["auth"]["client_token"]
    return token


@pytest.fixture(scope="module")
def mount(openbao_server: tuple[str, str]) -> str:
    """A Transit engine for this module's tests."""
    return enable_transit(root_client(openbao_server))


@pytest.fixture
def sink() -> MemoryAuditSink:
    """An empty in-memory audit sink."""
    return MemoryAuditSink()


@pytest.fixture
def kms(openbao_server: tuple[str, str], mount: str, sink: MemoryAuditSink) -> VaultTransitKms:
    """A VaultTransitKms with the root token, on this module's mount, auditing into ``sink``."""
    address, token = openbao_server
    return VaultTransitKms.with_token(
        address, token, mount=mount, default_key=unique("default"), audit=sink
    )


@pytest.fixture
def key(kms: VaultTransitKms) -> str:
    """A new derived Transit key."""
    return kms.create_key(unique("key"), principal=PRINCIPAL)


def test_round_trip_and_blob_shape(kms: VaultTransitKms, key: str) -> None:
    """A data key decrypts to itself; its blob is Transit's ciphertext naming version 1."""
    data_key = kms.generate_data_key(key, CONTEXT, principal=PRINCIPAL)
    assert data_key.key_id == key
    assert data_key.blob.startswith(b"vault:v1:")
    assert blob_version(data_key.blob) == 1
    assert kms.decrypt(key, data_key.blob, CONTEXT, principal=PRINCIPAL) == data_key.plaintext


def test_satisfies_kms_client_protocol(kms: VaultTransitKms) -> None:
    """VaultTransitKms is a KmsClient (checked by the type checker through this binding)."""
    client: KmsClient = kms
    assert client is kms
    assert isinstance(kms, RotationAwareKmsClient)


def test_transit_context_is_label_then_canonical_encoding() -> None:
    """The context sent to Transit is the label, then the header's canonical encoding."""
    sent = base64.b64decode(transit_context({"b": "2", "aa": "1"}))
    assert sent == CONTEXT_LABEL + bytes.fromhex("000d000261610001310001620001 32".replace(" ", ""))
    assert base64.b64decode(transit_context({})) == CONTEXT_LABEL + b"\x00\x00"


def test_a_key_that_is_not_derived_is_refused(
    kms: VaultTransitKms, openbao_server: tuple[str, str], mount: str
) -> None:
    """A Transit key without derivation would ignore the context: KeyStateError, no data key."""
    name = unique("plain")
    root_client(openbao_server).secrets.transit.create_key(name, mount_point=mount)
    with pytest.raises(sealstore.KeyStateError, match="derived=true"):
        kms.generate_data_key(name, CONTEXT, principal=PRINCIPAL)
    with pytest.raises(sealstore.KeyStateError):
        kms.decrypt(name, b"vault:v1:AAAA", CONTEXT, principal=PRINCIPAL)


def test_rotation_keeps_old_blobs_and_min_decryption_version_retires_them(
    kms: VaultTransitKms, key: str, openbao_server: tuple[str, str], mount: str
) -> None:
    """After a rotation new blobs name version 2 and old ones still open; once the key's
    min_decryption_version passes them, old blobs raise KeyRetiredError."""
    old = kms.generate_data_key(key, CONTEXT, principal=PRINCIPAL)
    assert kms.rotate_key(key, principal=PRINCIPAL) == 2
    new = kms.generate_data_key(key, CONTEXT, principal=PRINCIPAL)
    assert blob_version(new.blob) == 2
    assert kms.decrypt(key, old.blob, CONTEXT, principal=PRINCIPAL) == old.plaintext
    root_client(openbao_server).secrets.transit.update_key_configuration(
        key, min_decryption_version=2, mount_point=mount
    )
    with pytest.raises(sealstore.KeyRetiredError, match="min_decryption_version"):
        kms.decrypt(key, old.blob, CONTEXT, principal=PRINCIPAL)
    assert kms.decrypt(key, new.blob, CONTEXT, principal=PRINCIPAL) == new.plaintext


def test_reencrypt_moves_a_blob_to_the_newest_version(kms: VaultTransitKms, key: str) -> None:
    """reencrypt (Transit rewrap) gives a blob of the newest version with the same plaintext,
    bound to the same context."""
    data_key = kms.generate_data_key(key, CONTEXT, principal=PRINCIPAL)
    kms.rotate_key(key, principal=PRINCIPAL)
    key_id, blob = kms.reencrypt(key, data_key.blob, CONTEXT, key, principal=PRINCIPAL)
    assert (key_id, blob_version(blob)) == (key, 2)
    assert kms.decrypt(key, blob, CONTEXT, principal=PRINCIPAL) == data_key.plaintext
    with pytest.raises(sealstore.DecryptionError):
        kms.decrypt(key, blob, {**CONTEXT, "object": "other"}, principal=PRINCIPAL)


def test_reencrypt_to_another_key_is_refused(kms: VaultTransitKms, key: str) -> None:
    """Transit cannot rewrap across keys: InvalidKmsRequestError, before any request."""
    data_key = kms.generate_data_key(key, CONTEXT, principal=PRINCIPAL)
    with pytest.raises(sealstore.InvalidKmsRequestError, match="only under its own key"):
        kms.reencrypt(key, data_key.blob, CONTEXT, "another", principal=PRINCIPAL)


def test_decrypt_many_answers_each_item(kms: VaultTransitKms, key: str) -> None:
    """One batch request opens good blobs and reports each bad one by its own error."""
    first = kms.generate_data_key(key, CONTEXT, principal=PRINCIPAL)
    second = kms.generate_data_key(key, {}, principal=PRINCIPAL)
    results = kms.decrypt_many(
        key,
        [
            (first.blob, CONTEXT),
            (second.blob, {"wrong": "context"}),
            (b"not a blob", {}),
            (second.blob, {}),
        ],
        principal=PRINCIPAL,
    )
    assert results[0] == first.plaintext
    assert isinstance(results[1], sealstore.DecryptionError)
    assert isinstance(results[2], sealstore.DecryptionError)
    assert results[3] == second.plaintext
    assert kms.decrypt_many(key, [], principal=PRINCIPAL) == []


def test_decrypt_many_sends_one_request_per_batch_size(
    kms: VaultTransitKms, key: str, sink: MemoryAuditSink
) -> None:
    """Blobs go BATCH_SIZE to a request (OpenBao refuses much larger bodies): 250 blobs
    cost three decrypt events, and every one opens."""
    data_keys = [kms.generate_data_key(key, {"n": str(n)}, principal=PRINCIPAL) for n in range(250)]
    before = len(sink.events)
    results = kms.decrypt_many(
        key, [(dk.blob, {"n": str(n)}) for n, dk in enumerate(data_keys)], principal=PRINCIPAL
    )
    assert results == [dk.plaintext for dk in data_keys]
    assert BATCH_SIZE == 100
    assert [event.operation for event in sink.events[before:]] == [Operation.UNWRAP] * 3


def test_decrypt_many_raises_what_concerns_the_whole_batch(kms: VaultTransitKms) -> None:
    """An unknown key fails the batch as a whole with KeyNotFoundError."""
    with pytest.raises(sealstore.KeyNotFoundError):
        kms.decrypt_many("no-such-key", [(b"vault:v1:AAAA", {})], principal=PRINCIPAL)


def test_soft_deleted_and_deleted_keys(
    kms: VaultTransitKms, openbao_server: tuple[str, str], mount: str
) -> None:
    """A soft-deleted key (OpenBao) raises KeyPendingDeletionError, and works again once
    restored; a deleted key raises KeyNotFoundError."""
    root = root_client(openbao_server)
    key = kms.create_key(unique("doomed"), principal=PRINCIPAL)
    data_key = kms.generate_data_key(key, CONTEXT, principal=PRINCIPAL)
    root.secrets.transit.update_key_configuration(key, deletion_allowed=True, mount_point=mount)
    root.adapter.delete(f"/v1/{mount}/keys/{key}/soft-delete")
    with pytest.raises(sealstore.KeyPendingDeletionError, match="soft-deleted"):
        kms.decrypt(key, data_key.blob, CONTEXT, principal=PRINCIPAL)
    with pytest.raises(sealstore.KeyPendingDeletionError):
        kms.generate_data_key(key, CONTEXT, principal=PRINCIPAL)
    root.adapter.post(f"/v1/{mount}/keys/{key}/soft-delete-restore")
    assert kms.decrypt(key, data_key.blob, CONTEXT, principal=PRINCIPAL) == data_key.plaintext
    root.secrets.transit.delete_key(key, mount_point=mount)
    with pytest.raises(sealstore.KeyNotFoundError):
        kms.decrypt(key, data_key.blob, CONTEXT, principal=PRINCIPAL)


def test_unknown_and_impossible_key_names(kms: VaultTransitKms) -> None:
    """An unknown key, or a name no Transit key can have, is KeyNotFoundError."""
    for name in ("no-such-key", "alias/orders", ""):
        with pytest.raises(sealstore.KeyNotFoundError):
            kms.generate_data_key(name, CONTEXT, principal=PRINCIPAL)


def test_a_missing_mount_is_a_kms_error_naming_it(
    openbao_server: tuple[str, str],
) -> None:
    """A mount with no Transit engine: KmsError that says to check the mount."""
    address, token = openbao_server
    kms = VaultTransitKms.with_token(address, token, mount=unique("nowhere"))
    with pytest.raises(sealstore.KmsError, match="mount") as raised:
        kms.generate_data_key("orders", CONTEXT, principal=PRINCIPAL)
    assert token not in str(raised.value)


def test_encrypt_only_token_writes_but_cannot_read(
    openbao_server: tuple[str, str], mount: str, key: str
) -> None:
    """A token allowed datakey (and key reads) but not decrypt writes objects, and its reads
    fail with AccessDeniedError naming the operation, without the token."""
    root = root_client(openbao_server)
    token = token_with_policy(
        root,
        f'path "{mount}/datakey/plaintext/{key}" {{ capabilities = ["update"] }}\n'
        f'path "{mount}/keys/{key}" {{ capabilities = ["read"] }}\n',
    )
    writer = VaultTransitKms.with_token(openbao_server[0], token, mount=mount)
    keys = sealstore.KmsKeys(writer, key_id=key, principal=PRINCIPAL)
    blob = sealstore.encrypt(b"write only", keys, context=CONTEXT)
    with pytest.raises(sealstore.AccessDeniedError, match="decrypt") as raised:
        sealstore.decrypt(blob, keys)
    assert token not in str(raised.value)
    assert token not in repr(writer)


def test_a_token_without_any_policy_is_denied(
    openbao_server: tuple[str, str], mount: str, key: str
) -> None:
    """A token with the default policy only: AccessDeniedError on the first use."""
    token = token_with_policy(
        root_client(openbao_server), 'path "nothing/*" { capabilities = ["read"] }'
    )
    kms = VaultTransitKms.with_token(openbao_server[0], token, mount=mount)
    with pytest.raises(sealstore.AccessDeniedError):
        kms.generate_data_key(key, CONTEXT, principal=PRINCIPAL)


def test_approle_login(openbao_server: tuple[str, str], mount: str, key: str) -> None:
    """AppRole login gives a working client; a wrong secret id is AccessDeniedError."""
    root = root_client(openbao_server)
    auth_mount = unique("approle")
    root.sys.enable_auth_method("approle", path=auth_mount)
    policy = unique("policy")
    root.sys.create_or_update_policy(
        policy,
        f'path "{mount}/*" {{ capabilities = ["read", "update"] }}\n',
    )
    root.auth.approle.create_or_update_approle(
        "sealstore", token_policies=[policy], mount_point=auth_mount
    )
    role_id = root.auth.approle.read_role_id("sealstore", mount_point=auth_mount)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("sealstore", mount_point=auth_mount)["data"][
        "secret_id"
    ]
    kms = VaultTransitKms.with_approle(
        openbao_server[0], role_id, secret_id, auth_mount=auth_mount, mount=mount
    )
    keys = sealstore.KmsKeys(kms, key_id=key, principal=PRINCIPAL)
    assert sealstore.decrypt(sealstore.encrypt(b"approle", keys), keys) == b"approle"
    with pytest.raises(sealstore.AccessDeniedError, match="AppRole") as raised:
        VaultTransitKms.with_approle(
            openbao_server[0], role_id, "wrong-" + secret_id, auth_mount=auth_mount
        )
    assert secret_id not in str(raised.value)


def test_namespace(openbao_server: tuple[str, str]) -> None:
    """A Transit engine inside a namespace is reached through the client's namespace, and
    the same mount path outside it is another engine."""
    root = root_client(openbao_server)
    namespace = unique("tenant")
    root.sys.create_namespace(namespace)
    inside = root_client(openbao_server, namespace)
    mount = enable_transit(inside)
    kms = VaultTransitKms.with_token(*openbao_server, namespace=namespace, mount=mount)
    key = kms.create_key("orders", principal=PRINCIPAL)
    data_key = kms.generate_data_key(key, CONTEXT, principal=PRINCIPAL)
    assert kms.decrypt(key, data_key.blob, CONTEXT, principal=PRINCIPAL) == data_key.plaintext
    outside = VaultTransitKms.with_token(*openbao_server, mount=mount)
    with pytest.raises(sealstore.KmsError, match="mount"):
        outside.decrypt(key, data_key.blob, CONTEXT, principal=PRINCIPAL)


def test_default_key_is_created_derived_once(kms: VaultTransitKms) -> None:
    """default_key_id creates the default key on first use and names it every time."""
    first = kms.default_key_id(principal=PRINCIPAL)
    assert first == kms.default_key
    assert kms.default_key_id(principal=PRINCIPAL) == first
    data_key = kms.generate_data_key(first, {}, principal=PRINCIPAL)
    assert kms.decrypt(first, data_key.blob, {}, principal=PRINCIPAL) == data_key.plaintext


def test_audit_events_and_repr_hold_no_secrets(
    kms: VaultTransitKms, key: str, sink: MemoryAuditSink, openbao_server: tuple[str, str]
) -> None:
    """Events name operation, key and context keys; repr shows mount and default key only."""
    data_key = kms.generate_data_key(key, CONTEXT, principal=PRINCIPAL)
    kms.decrypt(key, data_key.blob, CONTEXT, principal=PRINCIPAL)
    with pytest.raises(sealstore.DecryptionError):
        kms.decrypt(key, data_key.blob, {}, principal=PRINCIPAL)
    used = [e for e in sink.events if e.operation in (Operation.GENERATE, Operation.UNWRAP)]
    assert [(e.operation, e.outcome) for e in used] == [
        (Operation.GENERATE, Outcome.SUCCESS),
        (Operation.UNWRAP, Outcome.SUCCESS),
        (Operation.UNWRAP, Outcome.FAILURE),
    ]
    assert {e.key_id for e in used} == {key}
    assert used[0].context_keys == ("bucket", "object")
    assert used[0].principal == PRINCIPAL
    shown = repr(kms) + "".join(map(repr, sink.events))
    assert openbao_server[1] not in shown
    assert "ledger-7f3a" not in shown
    assert repr(kms) == f"VaultTransitKms(mount={kms.mount!r}, default_key={kms.default_key!r})"


@pytest.mark.parametrize(
    ("option", "value"),
    [("mount", "/transit"), ("mount", ""), ("default_key", "a/b"), ("default_key", "")],
)
def test_options_are_validated(option: str, value: str) -> None:
    """A mount or default key name Vault could not take is refused at construction."""
    options: dict[str, Any] = {option: value}
    with pytest.raises(ValueError, match=option):
        VaultTransitKms(object(), **options)


def test_server_not_running() -> None:
    """No server at the address: KmsError naming the address, never hvac's or requests'."""
    (port,) = free_ports(1)
    address = f"http://127.0.0.1:{port}"
    kms = VaultTransitKms.with_token(address, "s.token-never-shown", timeout=2)
    with pytest.raises(sealstore.KmsError, match="did not answer") as raised:
        kms.generate_data_key("orders", CONTEXT, principal=PRINCIPAL)
    assert address in str(raised.value)
    assert "token-never-shown" not in str(raised.value)
    assert type(raised.value) is sealstore.KmsError


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[str, str, object]]:
    """An OpenBao of this test's own, which the test may stop: (address, token, stopper)."""
    token = "own-" + uuid.uuid4().hex
    manager = running_openbao(tmp_path, token)
    address = manager.__enter__()
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            manager.__exit__(None, None, None)

    try:
        yield address, token, stop
    finally:
        stop()


def test_server_stopped_mid_run(own_server: tuple[str, str, object]) -> None:
    """With the server gone, objects under a cached bucket key still read, per-object
    objects and new bucket keys fail with KmsError naming the address."""
    address, token, stop = own_server
    root = hvac.Client(url=address, token=token)
    root.sys.enable_secrets_engine("transit", path="transit")
    kms = VaultTransitKms.with_token(address, token, timeout=2)
    key = kms.create_key("orders", principal=PRINCIPAL)
    store = sealstore.EncryptedStore(
        MemoryBackend(), sealstore.KmsKeys(kms, key_id=key, principal=PRINCIPAL, bucket_key=True)
    )
    per_object = sealstore.KmsKeys(kms, key_id=key, principal=PRINCIPAL)
    for index in range(3):
        store.put(f"bucket/{index}", b"bucket-keyed %d" % index)
    store.put("single", b"per object", keys=per_object)
    assert store.get("bucket/0") == b"bucket-keyed 0"  # warms the read cache
    assert callable(stop)
    stop()
    for index in range(3):
        assert store.get(f"bucket/{index}") == b"bucket-keyed %d" % index
    with pytest.raises(sealstore.KmsError) as raised:
        store.get("single", keys=per_object)
    assert address in str(raised.value)
    with pytest.raises(sealstore.KmsError, match="did not answer"):
        store.put("new", b"per object", keys=per_object)
    fresh = sealstore.KmsKeys(kms, key_id=key, principal=PRINCIPAL, bucket_key=True)
    with pytest.raises(sealstore.KmsError, match="did not answer"):
        store.put("new", b"new bucket key", keys=fresh)
    assert type(raised.value) is sealstore.KmsError
    assert token not in str(raised.value)


def _events(sink: MemoryAuditSink, since: int) -> list[Operation]:
    return [event.operation for event in sink.events[since:]]


@pytest.mark.parametrize("bucket_key", [False, True])
def test_round_trips_through_kms_keys_and_a_store(
    kms: VaultTransitKms, key: str, bucket_key: bool
) -> None:
    """Objects written through KmsKeys over Transit read back, bound to their names."""
    keys = sealstore.KmsKeys(kms, key_id=key, principal=PRINCIPAL, bucket_key=bucket_key)
    assert sealstore.decrypt(sealstore.encrypt(b"direct", keys, context=CONTEXT), keys) == (
        b"direct"
    )
    store = sealstore.EncryptedStore(MemoryBackend(), keys)
    for index in range(3):
        store.put(f"orders/{index}", b"order %d" % index)
    assert [store.get(f"orders/{index}") for index in range(3)] == [
        b"order 0",
        b"order 1",
        b"order 2",
    ]
    assert store.head("orders/0").key_id == key


def test_rotation_then_server_side_rewrap(
    kms: VaultTransitKms,
    key: str,
    sink: MemoryAuditSink,
    openbao_server: tuple[str, str],
    mount: str,
) -> None:
    """After a rotation, a forced bulk rewrap has Transit rewrap the blobs (no data key is
    generated or decrypted): per-object blobs in one batch request, objects sharing a bucket
    key with one call; everything reads once the old version is below
    min_decryption_version."""
    per_object = sealstore.KmsKeys(kms, key_id=key, principal=PRINCIPAL)
    bucket = sealstore.KmsKeys(kms, key_id=key, principal=PRINCIPAL, bucket_key=True)
    store = sealstore.EncryptedStore(MemoryBackend(), per_object)
    for index in range(4):
        store.put(f"single/{index}", b"single %d" % index)
        store.put(f"shared/{index}", b"shared %d" % index, keys=bucket)
    kms.rotate_key(key, principal=PRINCIPAL)
    before = len(sink.events)
    single = store.rewrap_all("single/", force=True)
    shared = store.rewrap_all("shared/", keys=bucket, force=True)
    assert (single.done, shared.done) == (4, 4)
    assert _events(sink, before) == [Operation.REWRAP] * 2
    root_client(openbao_server).secrets.transit.update_key_configuration(
        key, min_decryption_version=2, mount_point=mount
    )
    reader = sealstore.KmsKeys(kms, key_id=key, principal=PRINCIPAL, bucket_key=True)
    for index in range(4):
        assert store.get(f"single/{index}", keys=reader) == b"single %d" % index
        assert store.get(f"shared/{index}", keys=reader) == b"shared %d" % index


def test_objects_below_min_decryption_version_fail_as_retired(
    kms: VaultTransitKms, key: str, openbao_server: tuple[str, str], mount: str
) -> None:
    """An object whose blob is of a version no longer allowed raises KeyRetiredError."""
    keys = sealstore.KmsKeys(kms, key_id=key, principal=PRINCIPAL)
    store = sealstore.EncryptedStore(MemoryBackend(), keys)
    store.put("old", b"old")
    kms.rotate_key(key, principal=PRINCIPAL)
    root_client(openbao_server).secrets.transit.update_key_configuration(
        key, min_decryption_version=2, mount_point=mount
    )
    with pytest.raises(sealstore.KeyRetiredError):
        store.get("old")


def _stored_blob(backend: MemoryBackend, name: str) -> bytes:
    """The KMS blob in the header of the stored object ``name``."""
    marker = backend.head(name).metadata.get(METADATA_KEY, "")
    if marker.startswith("detached:"):
        stored = base64.b64decode(marker.removeprefix("detached:"))
    else:
        stored = backend.get(name).read()
    return decode_key_ref(parse_header(stored).key_ref)[2]


def _requests_sent(kms: VaultTransitKms) -> list[str]:
    """The paths of the HTTP requests ``kms`` sends from now on, as they are answered."""
    sent: list[str] = []
    kms.client.session.hooks["response"].append(
        lambda response, **_: sent.append(response.request.path_url)
    )
    return sent


def test_rotation_then_rewrap_without_force_moves_every_object_to_the_newest_version(
    kms: VaultTransitKms,
    key: str,
    sink: MemoryAuditSink,
    openbao_server: tuple[str, str],
    mount: str,
) -> None:
    """After the key is rotated elsewhere (an operator, another host), rewrap_all without
    force finds the blobs of the older version and has Transit rewrap them: one key read,
    one batch request for the per-object blobs, one rewrap for the objects sharing a bucket
    key. A second rewrap_all finds every object current and sends nothing."""
    backend = MemoryBackend()
    per_object = sealstore.KmsKeys(kms, key_id=key, principal=PRINCIPAL)
    bucket = sealstore.KmsKeys(kms, key_id=key, principal=PRINCIPAL, bucket_key=True)
    store = sealstore.EncryptedStore(backend, per_object)
    names = [f"{group}/{index}" for group in ("single", "shared") for index in range(6)]
    for name in names:
        store.put(name, name.encode(), keys=bucket if name.startswith("shared") else None)
    root_client(openbao_server).secrets.transit.rotate_key(key, mount_point=mount)
    sent = _requests_sent(kms)
    before = len(sink.events)
    single = store.rewrap_all("single/")
    shared = store.rewrap_all("shared/", keys=bucket)
    assert (single.done, single.current, shared.done, shared.current) == (6, 0, 6, 0)
    assert _events(sink, before) == [Operation.DESCRIBE_KEY, Operation.REWRAP, Operation.REWRAP]
    assert len(sent) == 3
    assert [blob_version(_stored_blob(backend, name)) for name in names] == [2] * 12
    sent.clear()
    again = [store.rewrap_all("single/"), store.rewrap_all("shared/", keys=bucket)]
    assert [(report.done, report.current) for report in again] == [(0, 6), (0, 6)]
    assert sent == []
    root_client(openbao_server).secrets.transit.update_key_configuration(
        key, min_decryption_version=2, mount_point=mount
    )
    reader = sealstore.KmsKeys(kms, key_id=key, principal=PRINCIPAL, bucket_key=True)
    assert [store.get(name, keys=reader) for name in names] == [name.encode() for name in names]


def test_a_rewrap_of_one_object_after_a_rotation_moves_it(kms: VaultTransitKms, key: str) -> None:
    """rewrap(name) without force moves an object of an older version, then finds it
    current."""
    backend = MemoryBackend()
    store = sealstore.EncryptedStore(
        backend, sealstore.KmsKeys(kms, key_id=key, principal=PRINCIPAL)
    )
    store.put("doc", b"doc")
    assert store.rewrap("doc") is False
    kms.rotate_key(key, principal=PRINCIPAL)
    assert store.rewrap("doc") is True
    assert blob_version(_stored_blob(backend, "doc")) == 2
    assert store.rewrap("doc") is False
    assert store.get("doc") == b"doc"


def test_the_latest_version_is_remembered_for_version_ttl(
    openbao_server: tuple[str, str], mount: str, sink: MemoryAuditSink
) -> None:
    """blob_is_current reads a key's latest version once per version_ttl: a rotation made
    elsewhere is seen once that expires, or at once when a blob of a newer version shows
    up; a rotation made through the client is seen at once."""
    clock = FakeClock()
    kms = VaultTransitKms(
        root_client(openbao_server),
        mount=mount,
        audit=sink,
        clock=clock,
        version_ttl=timedelta(seconds=30),
    )
    key = kms.create_key(unique("key"), principal=PRINCIPAL)
    first = kms.generate_data_key(key, CONTEXT, principal=PRINCIPAL)
    before = len(sink.events)
    assert kms.blob_is_current(key, first.blob, principal=PRINCIPAL)
    assert kms.blob_is_current(key, first.blob, principal=PRINCIPAL)
    assert _events(sink, before) == [Operation.DESCRIBE_KEY]
    elsewhere = root_client(openbao_server).secrets.transit
    elsewhere.rotate_key(key, mount_point=mount)
    assert kms.blob_is_current(key, first.blob, principal=PRINCIPAL)  # not seen yet
    clock.advance(seconds=31)
    assert not kms.blob_is_current(key, first.blob, principal=PRINCIPAL)
    assert _events(sink, before) == [Operation.DESCRIBE_KEY] * 2
    elsewhere.rotate_key(key, mount_point=mount)
    newer = kms.generate_data_key(key, CONTEXT, principal=PRINCIPAL)
    assert blob_version(newer.blob) == 3
    assert kms.blob_is_current(key, newer.blob, principal=PRINCIPAL)
    assert not kms.blob_is_current(key, first.blob, principal=PRINCIPAL)
    assert _events(sink, before)[-2:] == [Operation.GENERATE, Operation.DESCRIBE_KEY]
    assert kms.rotate_key(key, principal=PRINCIPAL) == 4
    since = len(sink.events)
    assert not kms.blob_is_current(key, newer.blob, principal=PRINCIPAL)
    assert _events(sink, since) == []


def test_a_blob_naming_no_version_or_a_future_one_is_not_current(
    kms: VaultTransitKms, key: str
) -> None:
    """blob_is_current is False for what is no Transit ciphertext and for a version the key
    does not have yet; a key name Transit cannot have is not found."""
    assert kms.blob_is_current(key, b"not a transit ciphertext", principal=PRINCIPAL) is False
    assert kms.blob_is_current(key, b"vault:v99:AAAA", principal=PRINCIPAL) is False
    assert kms.blob_is_current(key, "vault:v1:AAAA", principal=PRINCIPAL) is False  # type: ignore[arg-type]
    with pytest.raises(sealstore.KeyNotFoundError):
        kms.blob_is_current("a/b", b"vault:v1:AAAA", principal=PRINCIPAL)
    with pytest.raises(ValueError, match="version_ttl"):
        VaultTransitKms(object(), version_ttl=timedelta(seconds=-1))


def test_bulk_rewrap_to_another_key_decrypts_in_one_batch(
    kms: VaultTransitKms, sink: MemoryAuditSink
) -> None:
    """Moving objects to another key (which Transit cannot rewrap to) opens their blobs with
    one batch request, then wraps them under one bucket key of the new key."""
    old = kms.create_key(unique("old"), principal=PRINCIPAL)
    new = kms.create_key(unique("new"), principal=PRINCIPAL)
    store = sealstore.EncryptedStore(
        MemoryBackend(), sealstore.KmsKeys(kms, key_id=old, principal=PRINCIPAL)
    )
    for index in range(6):
        store.put(f"moving/{index}", b"moving %d" % index)
    moved = sealstore.KmsKeys(kms, key_id=new, principal=PRINCIPAL, bucket_key=True)
    before = len(sink.events)
    assert store.rewrap_all("moving/", keys=moved).done == 6
    assert _events(sink, before) == [Operation.UNWRAP, Operation.GENERATE]
    reader = sealstore.KmsKeys(kms, key_id=new, principal=PRINCIPAL)
    assert store.get("moving/5", keys=reader) == b"moving 5"
    assert store.head("moving/5").key_id == new


def _swap_key_refs(first: bytes, second: bytes) -> bytes:
    """``first`` with the key reference of ``second`` in its header."""
    ours, theirs = parse_header(first), parse_header(second)
    header = encode_header(ours.mode, ours.context_field, theirs.key_ref, ours.wrapped_key)
    return header + first[ours.size :]


@pytest.mark.parametrize("bucket_key", [False, True])
def test_swapped_blobs_fail_authentication(
    kms: VaultTransitKms, key: str, bucket_key: bool
) -> None:
    """An object given another object's key reference (blob) does not decrypt: Transit
    refuses a per-object blob under another context, and another bucket key's KEK does not
    open the wrapped data key."""
    first = sealstore.KmsKeys(kms, key_id=key, principal=PRINCIPAL, bucket_key=bucket_key)
    second = sealstore.KmsKeys(kms, key_id=key, principal=PRINCIPAL, bucket_key=bucket_key)
    one = sealstore.encrypt(b"one", first, context={"n": "1"})
    two = sealstore.encrypt(b"two", second, context={"n": "2"})
    with pytest.raises(sealstore.DecryptionError):
        sealstore.decrypt(_swap_key_refs(one, two), first)


# Answers a real server does not give (malformed, sealed, throttled) come from a stand-in for
# hvac's Transit API, as tests/test_kms_aws.py uses botocore's Stubber for AWS.


def stand_in(**methods: Any) -> VaultTransitKms:
    """A VaultTransitKms whose client answers each Transit method with ``methods[name]``
    (called with the method's arguments), and finds every key derived."""

    def read_key(*_args: Any, **_kwargs: Any) -> Any:
        return {"data": {"derived": True, "latest_version": 1}}

    transit = SimpleNamespace(**{"read_key": read_key, **methods})
    client = SimpleNamespace(url="http://vault.test:8200", secrets=SimpleNamespace(transit=transit))
    return VaultTransitKms(client, audit=MemoryAuditSink())


def answer(value: Any) -> Any:
    """A Transit method that returns ``value``."""
    return lambda *_args, **_kwargs: value


def failing(error: Exception) -> Any:
    """A Transit method that raises ``error``."""

    def method(*_args: Any, **_kwargs: Any) -> Any:
        raise error

    return method


GOOD_BLOB = b"vault:v1:" + base64.b64encode(bytes(60))


def test_the_latest_versions_remembered_are_bounded() -> None:
    """A client remembers the latest versions of at most 1024 keys: past that, the key read
    longest ago is read again."""
    reads: list[str] = []

    def read_key(name: str, **_kwargs: Any) -> Any:
        reads.append(name)
        return {"data": {"derived": True, "latest_version": 1}}

    kms = stand_in(read_key=read_key)
    for index in range(1025):
        assert kms.blob_is_current(f"k{index}", GOOD_BLOB, principal=PRINCIPAL)
    assert kms.blob_is_current("k1024", GOOD_BLOB, principal=PRINCIPAL)
    assert len(reads) == 1025
    assert kms.blob_is_current("k0", GOOD_BLOB, principal=PRINCIPAL)
    assert reads[-1] == "k0"
    assert len(reads) == 1026


@pytest.mark.parametrize(
    "response",
    [
        None,
        {"data": None},
        {"data": {"plaintext": "not base64!", "ciphertext": GOOD_BLOB.decode()}},
        {"data": {"plaintext": base64.b64encode(bytes(31)).decode(), "ciphertext": "x"}},
        {"data": {"plaintext": base64.b64encode(bytes(32)).decode(), "ciphertext": "vault:x"}},
        {"data": {"plaintext": base64.b64encode(bytes(32)).decode(), "ciphertext": 7}},
    ],
)
def test_malformed_data_key_answers_are_kms_errors(response: Any) -> None:
    """A datakey answer without a 32-byte plaintext and a Transit ciphertext: KmsError."""
    kms = stand_in(generate_data_key=answer(response))
    with pytest.raises(sealstore.KmsError, match="without a valid"):
        kms.generate_data_key("orders", CONTEXT, principal=PRINCIPAL)


def test_a_blob_that_opens_to_no_data_key_is_a_decryption_error() -> None:
    """A Transit ciphertext that opens to something other than 32 bytes was not made by
    sealstore: DecryptionError."""
    kms = stand_in(decrypt_data=answer({"data": {"plaintext": base64.b64encode(b"x").decode()}}))
    with pytest.raises(sealstore.DecryptionError, match="no 32-byte data key"):
        kms.decrypt("orders", GOOD_BLOB, CONTEXT, principal=PRINCIPAL)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (hvac.exceptions.VaultDown(errors=["Vault is sealed"]), "503"),
        (hvac.exceptions.InternalServerError(errors=["boom"]), "500"),
        (hvac.exceptions.RateLimitExceeded(errors=["slow down"]), "429"),
        (hvac.exceptions.UnexpectedError(errors=["teapot"]), "error"),
    ],
)
def test_server_side_failures_are_kms_errors_naming_the_address(
    error: Exception, status: str
) -> None:
    """Sealed, failing, throttling or odd answers: KmsError with the address and status."""
    kms = stand_in(decrypt_data=failing(error))
    with pytest.raises(sealstore.KmsError) as raised:
        kms.decrypt("orders", GOOD_BLOB, CONTEXT, principal=PRINCIPAL)
    assert type(raised.value) is sealstore.KmsError
    assert "http://vault.test:8200" in str(raised.value)
    assert f"HTTP {status}" in str(raised.value)
    assert raised.value.__cause__ is error


def test_a_refused_batch_body_is_a_kms_error_not_a_decryption_error() -> None:
    """OpenBao's refusal of a too complex JSON body concerns the request: KmsError."""
    error = hvac.exceptions.InvalidRequest(
        errors=["refused JSON input due to high complexity: exceeded maximum number of strings"]
    )
    kms = stand_in(decrypt_data=failing(error))
    with pytest.raises(sealstore.KmsError) as raised:
        kms.decrypt_many("orders", [(GOOD_BLOB, CONTEXT)], principal=PRINCIPAL)
    assert not isinstance(raised.value, sealstore.DecryptionError)


@pytest.mark.parametrize("response", [None, {"data": {"batch_results": "no"}}, {"data": {}}])
def test_a_malformed_batch_answer_is_a_kms_error(response: Any) -> None:
    """A batch answer without one result per item: KmsError."""
    kms = stand_in(decrypt_data=answer(response))
    with pytest.raises(sealstore.KmsError, match="batch_results"):
        kms.decrypt_many("orders", [(GOOD_BLOB, CONTEXT)], principal=PRINCIPAL)


def test_a_batch_of_only_impossible_blobs_sends_nothing() -> None:
    """Blobs that cannot be Transit ciphertexts fail one by one without a request."""
    kms = stand_in(decrypt_data=failing(AssertionError("no request expected")))
    results = kms.decrypt_many("orders", [(b"x", {}), (b"", {})], principal=PRINCIPAL)
    assert all(isinstance(result, sealstore.DecryptionError) for result in results)


def test_a_malformed_batch_item_is_that_item_s_error() -> None:
    """An item answered neither with a plaintext nor an error fails alone."""
    good = {"plaintext": base64.b64encode(bytes(32)).decode()}
    kms = stand_in(decrypt_data=answer({"data": {"batch_results": [good, "junk"]}}))
    results = kms.decrypt_many(
        "orders", [(GOOD_BLOB, CONTEXT), (GOOD_BLOB, CONTEXT)], principal=PRINCIPAL
    )
    assert results[0] == bytes(32)
    assert isinstance(results[1], sealstore.DecryptionError)


def test_foreign_exceptions_pass_through_audited() -> None:
    """An exception from neither hvac nor requests (a bug in a stand-in) is not disguised."""
    kms = stand_in(generate_data_key=failing(RuntimeError("bug")))
    with pytest.raises(RuntimeError, match="bug"):
        kms.generate_data_key("orders", CONTEXT, principal=PRINCIPAL)
    assert isinstance(kms.audit, MemoryAuditSink)
    assert kms.audit.events[-1].outcome is Outcome.FAILURE


def test_a_malformed_key_version_is_a_kms_error() -> None:
    """rotate_key needs the key's latest_version as a positive integer."""
    kms = stand_in(rotate_key=answer(None))
    with pytest.raises(sealstore.KmsError, match="latest_version"):
        stand_in(
            rotate_key=answer(None), read_key=answer({"data": {"latest_version": True}})
        ).rotate_key("orders", principal=PRINCIPAL)
    assert kms.rotate_key("orders", principal=PRINCIPAL) == 1


def test_reencrypt_many_answers_each_item(kms: VaultTransitKms, key: str) -> None:
    """One rewrap batch moves good blobs to the newest version and reports each bad one."""
    first = kms.generate_data_key(key, CONTEXT, principal=PRINCIPAL)
    second = kms.generate_data_key(key, {}, principal=PRINCIPAL)
    kms.rotate_key(key, principal=PRINCIPAL)
    results = kms.reencrypt_many(
        key,
        [(first.blob, CONTEXT), (second.blob, {"wrong": "context"}), (b"junk", {})],
        key,
        principal=PRINCIPAL,
    )
    assert isinstance(results[0], tuple)
    assert results[0][0] == key
    assert blob_version(results[0][1]) == 2
    assert kms.decrypt(key, results[0][1], CONTEXT, principal=PRINCIPAL) == first.plaintext
    assert isinstance(results[1], sealstore.DecryptionError)
    assert isinstance(results[2], sealstore.DecryptionError)
    with pytest.raises(sealstore.InvalidKmsRequestError):
        kms.reencrypt_many(key, [(first.blob, CONTEXT)], "another", principal=PRINCIPAL)


def test_a_malformed_rewrap_batch_item_is_that_item_s_error() -> None:
    """A rewrap batch item answered without a Transit ciphertext fails alone."""
    good = {"ciphertext": GOOD_BLOB.decode()}
    kms = stand_in(rewrap_data=answer({"data": {"batch_results": [good, {"ciphertext": 1}]}}))
    results = kms.reencrypt_many(
        "orders", [(GOOD_BLOB, CONTEXT), (GOOD_BLOB, CONTEXT)], "orders", principal=PRINCIPAL
    )
    assert results[0] == ("orders", GOOD_BLOB)
    assert isinstance(results[1], sealstore.KmsError)


def test_concurrent_rotations_all_stand_and_succeed(
    kms: VaultTransitKms, key: str, sink: MemoryAuditSink
) -> None:
    """OpenBao answers some concurrent rotations of one key with HTTP 500 although they
    applied; each rotation that moved the key on is reported and audited as a success."""
    failures: list[BaseException] = []

    def rotate_many() -> None:
        try:
            for _ in range(15):
                kms.rotate_key(key, principal=PRINCIPAL)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=rotate_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert kms.rotate_key(key, principal=PRINCIPAL) == 62
    rotations = [e for e in sink.events if e.operation is Operation.ROTATE and e.key_id == key]
    assert [e.outcome for e in rotations] == [Outcome.SUCCESS] * 61


def test_a_failed_rotation_that_left_the_key_as_it_was_is_a_kms_error() -> None:
    """HTTP 500 on rotate with the latest version unchanged: the rotation did not happen."""
    kms = stand_in(rotate_key=failing(hvac.exceptions.InternalServerError(errors=["boom"])))
    with pytest.raises(sealstore.KmsError, match="HTTP 500"):
        kms.rotate_key("orders", principal=PRINCIPAL)
