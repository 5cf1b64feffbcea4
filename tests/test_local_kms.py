"""LocalKms: keys, aliases, policies, states, rotation, deletion, blobs and the audit trail."""

from __future__ import annotations

import base64
import json
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import sealstore
from sealstore import _aead
from sealstore.audit import AuditEvent, JsonlAuditLog, MemoryAuditSink, Operation, Outcome
from sealstore.header import encode_context
from sealstore.kms import KmsClient, RotationAwareKmsClient
from sealstore.kms.local import (
    DEFAULT_ALIAS,
    MAX_BLOB_SIZE,
    KeyEntry,
    KeyState,
    LocalKms,
    cache,
    document,
)
from sealstore.kms.policy import AUDITED_AS, KeyOperation, KeyPolicy
from sealstore.sealed import RootKey, SealedFile
from sealstore.testing import FakeClock

START = datetime(2030, 1, 1, tzinfo=timezone.utc)
CONTEXT = {"bucket": "orders", "object": "invoice-7"}
SECRET_VALUES = ("orders", "invoice-7")
DOCUMENT_PURPOSE = b"sealstore/local-kms/v1"
ADMIN = "admin"
USER = "user"
STRANGER = "mallory"


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock starting at 2030-01-01 UTC."""
    return FakeClock(START)


@pytest.fixture
def sink() -> MemoryAuditSink:
    """An in-memory audit sink."""
    return MemoryAuditSink()


def events_of(sink: MemoryAuditSink, operation: Operation) -> list[AuditEvent]:
    """The events ``sink`` recorded for ``operation``, oldest first."""
    return [event for event in sink.events if event.operation is operation]


@pytest.fixture
def root_key() -> RootKey:
    """A random root key."""
    return RootKey.from_bytes(os.urandom(32))


@pytest.fixture
def kms(tmp_path: Path, root_key: RootKey, clock: FakeClock, sink: MemoryAuditSink) -> LocalKms:
    """A LocalKms in a fresh directory, with a fake clock and an in-memory audit sink."""
    return LocalKms(tmp_path / "kms", root_key=root_key, clock=clock, audit=sink, create=True)


def read_document(path: Path, root_key: RootKey) -> bytes:
    """The key store's sealed JSON document (see docs/local-kms.md)."""
    document = SealedFile(path / "keys.sealed", root_key, DOCUMENT_PURPOSE).read()
    assert document is not None
    return document


def write_document(path: Path, root_key: RootKey, content: bytes) -> None:
    """Seal ``content`` as the key store document in ``path``."""

    def replace(_old: bytes | None) -> bytes:
        return content

    SealedFile(path / "keys.sealed", root_key, DOCUMENT_PURPOSE).update(replace)


def write_format_1_document(path: Path, root_key: RootKey, policy: KeyPolicy) -> None:
    """A key store as sealstore wrote it before documents had a sequence number and aliases
    an owner: key ``k1`` under ``policy``, with the alias ``alias/old``."""
    key = {
        "created": "2030-01-01T00:00:00+00:00",
        "creator": ADMIN,
        "deletion_date": None,
        "description": "",
        "materials": [
            {
                "created": "2030-01-01T00:00:00+00:00",
                "key": base64.b64encode(bytes(32)).decode(),
                "version": 1,
            }
        ],
        "policy": policy.as_dict(),
        "state": "enabled",
    }
    old = {"format": 1, "keys": {"k1": key}, "aliases": {"alias/old": "k1"}}
    write_document(path, root_key, json.dumps(old).encode())


def blob_version(blob: bytes) -> int:
    """The material version a blob names (see docs/local-kms.md)."""
    split = 2 + blob[1]
    return int.from_bytes(blob[split : split + 4], "big")


# Round trips and the blob format.


def test_generate_then_decrypt_round_trips(kms: LocalKms) -> None:
    """A data key's blob decrypts to the same 32-byte key under the same key and context."""
    key_id = kms.create_key(principal=ADMIN).key_id
    data_key = kms.generate_data_key(key_id, CONTEXT, principal=ADMIN)
    assert data_key.key_id == key_id
    assert len(data_key.plaintext) == 32
    assert kms.decrypt(key_id, data_key.blob, CONTEXT, principal=ADMIN) == data_key.plaintext
    second = kms.generate_data_key(key_id, CONTEXT, principal=ADMIN)
    assert second.plaintext != data_key.plaintext


def test_local_kms_is_a_kms_client(kms: LocalKms) -> None:
    """LocalKms satisfies the KmsClient protocol sealstore's KMS provider uses."""
    client: KmsClient = kms
    key_id = client.default_key_id(principal=USER)
    data_key = client.generate_data_key(key_id, {}, principal=USER)
    assert client.decrypt(key_id, data_key.blob, {}, principal=USER) == data_key.plaintext


def test_blob_layout_is_the_documented_one(kms: LocalKms, root_key: RootKey) -> None:
    """The blob is version, key id, material version and a KeyWrapper wrap with the documented
    associated data, which unwraps with the material read from the sealed document."""
    key_id = kms.create_key(principal=ADMIN).key_id
    data_key = kms.generate_data_key(key_id, CONTEXT, principal=ADMIN)
    blob = data_key.blob
    assert blob[0] == 1
    assert blob[1] == len(key_id) == 36
    assert blob[2:38] == key_id.encode("ascii")
    assert blob[38:42] == (1).to_bytes(4, "big")
    assert len(blob) == 42 + 60
    document = read_document(kms.path, root_key)
    material = base64.b64decode(json.loads(document)["keys"][key_id]["materials"][0]["key"])
    associated = b"sealstore/local-kms/blob/v1\x00" + blob[:42] + encode_context(CONTEXT)
    assert _aead.KeyWrapper(material).unwrap(blob[42:], associated) == data_key.plaintext


def test_repr_shows_no_secrets(kms: LocalKms) -> None:
    """Neither the service, a data key nor key metadata show key material in their repr."""
    meta = kms.create_key(principal=ADMIN, description="orders")
    data_key = kms.generate_data_key(meta.key_id, CONTEXT, principal=ADMIN)
    text = (
        repr(kms)
        + repr(data_key)
        + repr(meta)
        + repr(kms.describe_key(meta.key_id, principal=ADMIN))
    )
    assert repr(kms) == f"LocalKms({str(kms.path)!r})"
    for secret in (data_key.plaintext, data_key.blob):
        assert secret.hex() not in text
        assert repr(secret) not in text
        assert base64.b64encode(secret).decode() not in text


# Aliases.


def test_alias_resolves_wherever_a_key_id_is_accepted(kms: LocalKms) -> None:
    """An alias works for generate, decrypt, reencrypt and describe; results carry the real id."""
    key_id = kms.create_key(principal=ADMIN).key_id
    kms.create_alias("alias/orders", key_id, principal=ADMIN)
    data_key = kms.generate_data_key("alias/orders", CONTEXT, principal=ADMIN)
    assert data_key.key_id == key_id
    assert data_key.blob[2:38] == key_id.encode()
    assert kms.decrypt("alias/orders", data_key.blob, CONTEXT, principal=ADMIN) == (
        data_key.plaintext
    )
    assert kms.decrypt(key_id, data_key.blob, CONTEXT, principal=ADMIN) == data_key.plaintext
    new_id, _ = kms.reencrypt(
        "alias/orders", data_key.blob, CONTEXT, "alias/orders", principal=ADMIN
    )
    assert new_id == key_id
    meta = kms.describe_key("alias/orders", principal=ADMIN)
    assert meta.key_id == key_id
    assert meta.aliases == ("alias/orders",)
    assert KeyEntry(key_id, ("alias/orders",)) in kms.list_keys()


def test_aliases_are_unique_and_deletable(kms: LocalKms) -> None:
    """A taken alias is refused; once deleted it no longer resolves and can be reused."""
    first = kms.create_key(principal=ADMIN).key_id
    second = kms.create_key(principal=ADMIN).key_id
    kms.create_alias("alias/app", first, principal=ADMIN)
    with pytest.raises(sealstore.KmsError, match="already exists"):
        kms.create_alias("alias/app", second, principal=ADMIN)
    kms.delete_alias("alias/app", principal=ADMIN)
    with pytest.raises(sealstore.KeyNotFoundError):
        kms.generate_data_key("alias/app", {}, principal=ADMIN)
    with pytest.raises(sealstore.KeyNotFoundError):
        kms.delete_alias("alias/app", principal=ADMIN)
    kms.create_alias("alias/app", second, principal=ADMIN)
    assert kms.generate_data_key("alias/app", {}, principal=ADMIN).key_id == second


@pytest.mark.parametrize(
    "alias",
    [
        "orders",
        "alias/",
        "alias/has space",
        "alias/" + "x" * 251,
        "alias/sealstore/mine",
        DEFAULT_ALIAS,
    ],
)
def test_malformed_or_reserved_aliases_are_refused(kms: LocalKms, alias: str) -> None:
    """Aliases must be alias/ plus allowed characters, outside the reserved alias/sealstore/."""
    key_id = kms.create_key(principal=ADMIN).key_id
    with pytest.raises(sealstore.KmsError) as caught:
        kms.create_alias(alias, key_id, principal=ADMIN)
    assert isinstance(caught.value, ValueError)


def test_only_the_owner_of_an_alias_may_delete_or_move_it(
    kms: LocalKms, sink: MemoryAuditSink
) -> None:
    """An alias belongs to the principal that created it: another principal allowed to
    manage aliases on the same key can neither delete it nor point it at a key of its own."""
    team = KeyPolicy.owner(ADMIN).grant("create-alias", "*").grant("delete-alias", "*")
    key_id = kms.create_key(principal=ADMIN, policy=team).key_id
    kms.create_alias("alias/orders", key_id, principal=USER)
    squatter_key = kms.create_key(principal=STRANGER).key_id
    with pytest.raises(sealstore.AccessDeniedError, match="does not own the alias"):
        kms.delete_alias("alias/orders", principal=STRANGER)
    with pytest.raises(sealstore.AccessDeniedError, match="does not own the alias"):
        kms.update_alias("alias/orders", squatter_key, principal=STRANGER)
    assert kms.describe_key("alias/orders", principal=ADMIN).key_id == key_id
    denied = [event for event in sink.events if event.outcome is Outcome.DENIED]
    assert [(event.operation, event.key_id) for event in denied] == [
        (Operation.DELETE_ALIAS, key_id),
        (Operation.UPDATE_ALIAS, key_id),
    ]
    kms.delete_alias("alias/orders", principal=USER)
    assert kms.list_keys()[0].aliases == ()


class RecordThen:
    """An audit sink that records each event in ``sink``, then calls ``after`` with it."""

    def __init__(self, sink: MemoryAuditSink, after: Callable[[AuditEvent], None]) -> None:
        self.sink = sink
        self.after = after

    def record(self, event: AuditEvent) -> None:
        self.sink.record(event)
        self.after(event)


def test_update_alias_moves_an_alias_without_freeing_its_name(
    tmp_path: Path, root_key: RootKey, clock: FakeClock, sink: MemoryAuditSink
) -> None:
    """update_alias repoints an alias in one step under the store's lock: a squatter trying
    to create the name while the move is under way finds it taken, and new data keys come
    from the new key."""

    def squat_during_a_move(event: AuditEvent) -> None:
        if event.operation is Operation.UPDATE_ALIAS and not thread.is_alive():
            thread.start()  # the move holds the lock: the squat waits for it

    hooked = RecordThen(sink, squat_during_a_move)
    kms = LocalKms(tmp_path / "kms", root_key=root_key, clock=clock, audit=hooked, create=True)
    old = kms.create_key(principal=ADMIN).key_id
    new = kms.create_key(principal=ADMIN).key_id
    kms.create_alias("alias/orders", old, principal=ADMIN)
    squatter = LocalKms(tmp_path / "kms", root_key=root_key, clock=clock, audit=MemoryAuditSink())
    squatter_key = squatter.create_key(principal=STRANGER).key_id
    attempts: list[BaseException] = []

    def squat() -> None:
        try:
            squatter.create_alias("alias/orders", squatter_key, principal=STRANGER)
        except sealstore.SealstoreError as error:
            attempts.append(error)

    thread = threading.Thread(target=squat)
    kms.update_alias("alias/orders", new, principal=ADMIN)
    thread.join()
    assert len(attempts) == 1
    assert "already exists" in str(attempts[0])
    assert kms.generate_data_key("alias/orders", {}, principal=ADMIN).key_id == new
    assert kms.describe_key(old, principal=ADMIN).aliases == ()
    (moved,) = events_of(sink, Operation.UPDATE_ALIAS)
    assert (moved.key_id, moved.outcome) == (new, Outcome.SUCCESS)
    assert moved.reason == f"alias alias/orders moved from key {old}"


def test_update_alias_needs_rights_on_both_keys(kms: LocalKms, clock: FakeClock) -> None:
    """Moving an alias needs delete-alias on the key it leaves and create-alias on the key it
    goes to, which must not be pending deletion; reserved and unknown aliases are refused."""
    policy = KeyPolicy.owner(ADMIN).grant("create-alias", USER).grant("delete-alias", USER)
    old = kms.create_key(principal=ADMIN, policy=policy).key_id
    kms.create_alias("alias/app", old, principal=USER)
    new = kms.create_key(principal=ADMIN).key_id
    with pytest.raises(sealstore.AccessDeniedError, match=f"'create-alias' on key {new}"):
        kms.update_alias("alias/app", new, principal=USER)
    kms.put_key_policy(new, KeyPolicy.owner(ADMIN).grant("create-alias", USER), principal=ADMIN)
    kms.put_key_policy(old, policy.revoke("delete-alias", USER), principal=ADMIN)
    with pytest.raises(sealstore.AccessDeniedError, match=f"'delete-alias' on key {old}"):
        kms.update_alias("alias/app", new, principal=USER)
    kms.put_key_policy(old, policy, principal=ADMIN)
    kms.schedule_key_deletion(new, principal=ADMIN)
    with pytest.raises(sealstore.KeyPendingDeletionError):
        kms.update_alias("alias/app", new, principal=USER)
    kms.cancel_key_deletion(new, principal=ADMIN)
    kms.update_alias("alias/app", new, principal=USER)
    assert kms.describe_key("alias/app", principal=ADMIN).key_id == new
    with pytest.raises(sealstore.KeyNotFoundError):
        kms.update_alias("alias/missing", new, principal=USER)
    with pytest.raises(sealstore.KmsError) as caught:
        kms.update_alias(DEFAULT_ALIAS, new, principal=USER)
    assert isinstance(caught.value, ValueError)


def test_an_alias_without_an_owner_belongs_to_its_key_administrators(
    tmp_path: Path, root_key: RootKey
) -> None:
    """An alias from a key store written before aliases had owners may be deleted or moved
    by whoever holds delete-alias on its key, and by no one else; moving keeps it ownerless."""
    path = tmp_path / "old"
    write_format_1_document(path, root_key, KeyPolicy.owner(ADMIN).grant("delete-alias", USER))
    kms = LocalKms(path, root_key=root_key, audit=MemoryAuditSink())
    other = kms.create_key(principal=STRANGER).key_id
    with pytest.raises(sealstore.AccessDeniedError, match="'delete-alias' on key k1"):
        kms.update_alias("alias/old", other, principal=STRANGER)
    target = kms.create_key(principal=ADMIN).key_id
    kms.update_alias("alias/old", target, principal=ADMIN)
    assert json.loads(read_document(path, root_key))["alias_owners"] == {}
    with pytest.raises(sealstore.AccessDeniedError):
        kms.delete_alias("alias/old", principal=USER)  # USER administers k1, not the target
    kms.update_alias("alias/old", "k1", principal=ADMIN)
    kms.delete_alias("alias/old", principal=USER)
    assert kms.describe_key("k1", principal=ADMIN).aliases == ()


# The policy matrix: principal x operation x key state.


ALSO_NEEDED: dict[KeyOperation, tuple[KeyOperation, ...]] = {
    # Re-encrypting from a key can end in a key the caller decrypts with: it is decrypting.
    KeyOperation.REENCRYPT_FROM: (KeyOperation.DECRYPT,),
}


class Cell:
    """One key set up in a given state, with everything an operation on it needs."""

    def __init__(self, kms: LocalKms, operation: KeyOperation, grantee: str, caller: str) -> None:
        self.kms = kms
        policy = KeyPolicy.owner(ADMIN).grant(operation, grantee)
        for needed in ALSO_NEEDED.get(operation, ()):
            policy = policy.grant(needed, grantee)
        # The caller owns the alias, so that the key policy alone decides whether it may go.
        self.key_id = kms.create_key(
            principal=ADMIN, policy=policy.grant(KeyOperation.CREATE_ALIAS, caller)
        ).key_id
        self.alias = "alias/cell"
        kms.create_alias(self.alias, self.key_id, principal=caller)
        kms.put_key_policy(self.key_id, policy, principal=ADMIN)
        self.blob = kms.generate_data_key(self.key_id, CONTEXT, principal=ADMIN).blob
        # The other end of a re-encryption: a key every principal may re-encrypt from and to.
        other_policy = (
            KeyPolicy.owner(ADMIN)
            .grant(KeyOperation.REENCRYPT_FROM, "*")
            .grant(KeyOperation.DECRYPT, "*")
            .grant(KeyOperation.REENCRYPT_TO, "*")
        )
        self.other_id = kms.create_key(principal=ADMIN, policy=other_policy).key_id
        self.other_blob = kms.generate_data_key(self.other_id, CONTEXT, principal=ADMIN).blob

    def set_state(self, state: str) -> None:
        if state == "disabled":
            self.kms.disable_key(self.key_id, principal=ADMIN)
        elif state == "pending-deletion":
            self.kms.schedule_key_deletion(self.key_id, principal=ADMIN)
        elif state == "unknown":
            self.key_id = str(uuid.uuid4())
            self.alias = "alias/unknown"


CALLS: dict[KeyOperation, Callable[[Cell, str], object]] = {
    KeyOperation.GENERATE: lambda cell, who: cell.kms.generate_data_key(
        cell.key_id, CONTEXT, principal=who
    ),
    KeyOperation.DECRYPT: lambda cell, who: cell.kms.decrypt(
        cell.key_id, cell.blob, CONTEXT, principal=who
    ),
    KeyOperation.REENCRYPT_FROM: lambda cell, who: cell.kms.reencrypt(
        cell.key_id, cell.blob, CONTEXT, cell.other_id, principal=who
    ),
    KeyOperation.REENCRYPT_TO: lambda cell, who: cell.kms.reencrypt(
        cell.other_id, cell.other_blob, CONTEXT, cell.key_id, principal=who
    ),
    KeyOperation.DESCRIBE: lambda cell, who: cell.kms.describe_key(cell.key_id, principal=who),
    KeyOperation.ENABLE: lambda cell, who: cell.kms.enable_key(cell.key_id, principal=who),
    KeyOperation.DISABLE: lambda cell, who: cell.kms.disable_key(cell.key_id, principal=who),
    KeyOperation.SCHEDULE_DELETION: lambda cell, who: cell.kms.schedule_key_deletion(
        cell.key_id, principal=who
    ),
    KeyOperation.CANCEL_DELETION: lambda cell, who: cell.kms.cancel_key_deletion(
        cell.key_id, principal=who
    ),
    KeyOperation.ROTATE: lambda cell, who: cell.kms.rotate_key(cell.key_id, principal=who),
    KeyOperation.PUT_POLICY: lambda cell, who: cell.kms.put_key_policy(
        cell.key_id, KeyPolicy.owner(ADMIN), principal=who
    ),
    KeyOperation.CREATE_ALIAS: lambda cell, who: cell.kms.create_alias(
        "alias/new", cell.key_id, principal=who
    ),
    KeyOperation.DELETE_ALIAS: lambda cell, who: cell.kms.delete_alias(cell.alias, principal=who),
}


Expectations = dict[str, type[Exception] | None]
_USE_ONLY_WHEN_ENABLED: Expectations = {
    "enabled": None,
    "disabled": sealstore.KeyDisabledError,
    "pending-deletion": sealstore.KeyPendingDeletionError,
}
_CHANGE_UNLESS_PENDING: Expectations = {
    "enabled": None,
    "disabled": None,
    "pending-deletion": sealstore.KeyPendingDeletionError,
}
_ANY_STATE: Expectations = {"enabled": None, "disabled": None, "pending-deletion": None}
ALLOWED: dict[KeyOperation, Expectations] = {
    KeyOperation.GENERATE: _USE_ONLY_WHEN_ENABLED,
    KeyOperation.DECRYPT: _USE_ONLY_WHEN_ENABLED,
    KeyOperation.REENCRYPT_FROM: _USE_ONLY_WHEN_ENABLED,
    KeyOperation.REENCRYPT_TO: _USE_ONLY_WHEN_ENABLED,
    KeyOperation.ROTATE: _USE_ONLY_WHEN_ENABLED,
    KeyOperation.DESCRIBE: _ANY_STATE,
    KeyOperation.ENABLE: _CHANGE_UNLESS_PENDING,
    KeyOperation.DISABLE: _CHANGE_UNLESS_PENDING,
    KeyOperation.SCHEDULE_DELETION: _CHANGE_UNLESS_PENDING,
    KeyOperation.PUT_POLICY: _CHANGE_UNLESS_PENDING,
    KeyOperation.CREATE_ALIAS: _CHANGE_UNLESS_PENDING,
    KeyOperation.DELETE_ALIAS: _ANY_STATE,
    KeyOperation.CANCEL_DELETION: {
        "enabled": sealstore.KeyStateError,
        "disabled": sealstore.KeyStateError,
        "pending-deletion": None,
    },
}
STATES = ["enabled", "disabled", "pending-deletion", "unknown"]
# The caller: granted the operation by name, granted it through "*", or not granted it.
PRINCIPALS = ["named", "wildcard", "denied"]


def _expected(operation: KeyOperation, who: str, state: str) -> type[Exception] | None:
    if state == "unknown":
        return sealstore.KeyNotFoundError
    if who == "denied":
        return sealstore.AccessDeniedError
    return ALLOWED[operation][state]


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("who", PRINCIPALS)
@pytest.mark.parametrize("operation", list(KeyOperation))
def test_policy_matrix(
    kms: LocalKms, sink: MemoryAuditSink, operation: KeyOperation, who: str, state: str
) -> None:
    """Existence, then policy, then state decide each call, with the exact error type; the
    call is audited as the operation AUDITED_AS maps its key operation to."""
    caller = USER if who == "named" else STRANGER
    cell = Cell(kms, operation, "*" if who == "wildcard" else USER, caller)
    cell.set_state(state)
    expected = _expected(operation, who, state)
    if expected is None:
        CALLS[operation](cell, caller)
    else:
        with pytest.raises(expected) as caught:
            CALLS[operation](cell, caller)
        assert type(caught.value) is expected
    assert sink.events[-1].principal == caller
    assert sink.events[-1].operation is AUDITED_AS[operation]


def test_policy_matrix_covers_every_operation() -> None:
    """The expectations table names every key operation, so the matrix misses none."""
    assert set(ALLOWED) == set(CALLS) == set(AUDITED_AS) == set(KeyOperation)


def test_put_key_policy_changes_who_may_do_what(kms: LocalKms) -> None:
    """A new policy takes effect at once: the user it names may generate, others may not."""
    key_id = kms.create_key(principal=ADMIN).key_id
    with pytest.raises(sealstore.AccessDeniedError):
        kms.generate_data_key(key_id, CONTEXT, principal=USER)
    policy = KeyPolicy.build(administrators=[ADMIN], users=[USER])
    kms.put_key_policy(key_id, policy, principal=ADMIN)
    assert kms.generate_data_key(key_id, CONTEXT, principal=USER).key_id == key_id
    assert kms.describe_key(key_id, principal=USER).policy == policy
    # Separation of duties: the administrator no longer decrypts.
    with pytest.raises(sealstore.AccessDeniedError):
        kms.generate_data_key(key_id, CONTEXT, principal=ADMIN)


def test_a_policy_nobody_could_change_is_refused(kms: LocalKms) -> None:
    """create_key and put_key_policy refuse a policy granting put-policy to no one."""
    locked = KeyPolicy.build(users=[USER])
    with pytest.raises(sealstore.KmsError, match="put-policy") as caught:
        kms.create_key(principal=ADMIN, policy=locked)
    assert isinstance(caught.value, ValueError)
    key_id = kms.create_key(principal=ADMIN).key_id
    with pytest.raises(sealstore.KmsError, match="put-policy"):
        kms.put_key_policy(key_id, locked, principal=ADMIN)
    assert kms.describe_key(key_id, principal=ADMIN).policy == KeyPolicy.owner(ADMIN)


def test_the_access_denied_message_names_principal_operation_and_key(kms: LocalKms) -> None:
    """AccessDeniedError says who was refused what on which key."""
    key_id = kms.create_key(principal=ADMIN).key_id
    with pytest.raises(sealstore.AccessDeniedError) as caught:
        kms.rotate_key(key_id, principal=STRANGER)
    message = str(caught.value)
    assert STRANGER in message
    assert "rotate" in message
    assert key_id in message


def test_a_denied_principal_does_not_learn_the_key_state(kms: LocalKms) -> None:
    """A disabled or pending key still answers AccessDeniedError to a principal without rights."""
    key_id = kms.create_key(principal=ADMIN).key_id
    kms.disable_key(key_id, principal=ADMIN)
    with pytest.raises(sealstore.AccessDeniedError) as caught:
        kms.decrypt(key_id, b"\x01", CONTEXT, principal=STRANGER)
    assert "disabled" not in str(caught.value)


def test_key_policy_model() -> None:
    """KeyPolicy grants by name and by wildcard, revokes, and rejects malformed policies."""
    policy = KeyPolicy({"decrypt": ["auditor"], KeyOperation.DESCRIBE: ["*"]})
    assert policy.allows("auditor", KeyOperation.DECRYPT)
    assert not policy.allows("other", KeyOperation.DECRYPT)
    assert policy.allows("other", "describe")
    assert policy.grant("decrypt", "other").principals("decrypt") == {"auditor", "other"}
    assert not policy.revoke(KeyOperation.DECRYPT, "auditor").allows("auditor", "decrypt")
    assert KeyPolicy(policy.as_dict()) == policy
    assert "auditor" in repr(policy)
    bad: list[Callable[[], object]] = [
        lambda: KeyPolicy({"fly": ["a"]}),
        lambda: KeyPolicy({"decrypt": "auditor"}),
        lambda: KeyPolicy({"decrypt": [""]}),
        lambda: KeyPolicy({"decrypt": [f"p{i}" for i in range(101)]}),
        lambda: policy.allows("a", "fly"),
    ]
    for make in bad:
        with pytest.raises(sealstore.KmsError) as caught:
            make()
        assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("principal", ["", "*", "x" * 257, "line\nbreak", None])
def test_invalid_principals_are_refused_and_audited(
    kms: LocalKms, sink: MemoryAuditSink, principal: object
) -> None:
    """A missing, wildcard or oversized principal is refused, and the refusal is recorded."""
    key_id = kms.create_key(principal=ADMIN).key_id
    with pytest.raises(sealstore.KmsError) as caught:
        kms.generate_data_key(key_id, CONTEXT, principal=principal)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)
    event = sink.events[-1]
    assert event.operation is Operation.GENERATE
    assert event.outcome is Outcome.FAILURE


# Encryption context and foreign blobs.


@pytest.mark.parametrize(
    "other",
    [
        {},
        {"bucket": "orders"},
        {"bucket": "orders", "object": "invoice-8"},
        {"bucket": "orders", "object": "invoice-7", "extra": ""},
        {"Bucket": "orders", "object": "invoice-7"},
    ],
)
def test_a_different_context_fails(kms: LocalKms, other: dict[str, str]) -> None:
    """A blob decrypts only with exactly the context it was made with."""
    key_id = kms.create_key(principal=ADMIN).key_id
    blob = kms.generate_data_key(key_id, CONTEXT, principal=ADMIN).blob
    with pytest.raises(sealstore.DecryptionError):
        kms.decrypt(key_id, blob, other, principal=ADMIN)
    with pytest.raises(sealstore.DecryptionError):
        kms.reencrypt(key_id, blob, other, key_id, principal=ADMIN)


def test_a_blob_named_under_another_key_fails(kms: LocalKms) -> None:
    """Decrypting a blob while naming a key other than its own is a DecryptionError."""
    first = kms.create_key(principal=ADMIN).key_id
    second = kms.create_key(principal=ADMIN).key_id
    blob = kms.generate_data_key(first, CONTEXT, principal=ADMIN).blob
    with pytest.raises(sealstore.DecryptionError):
        kms.decrypt(second, blob, CONTEXT, principal=ADMIN)
    # Rewriting the key id in the blob does not help: it is bound into the wrap.
    forged = blob[:2] + second.encode() + blob[38:]
    with pytest.raises(sealstore.DecryptionError):
        kms.decrypt(second, forged, CONTEXT, principal=ADMIN)


def test_damaged_blobs_fail_as_decryption_errors(kms: LocalKms) -> None:
    """Truncated, extended, bit-flipped, oversized, mis-versioned blobs all fail cleanly."""
    key_id = kms.create_key(principal=ADMIN).key_id
    blob = kms.generate_data_key(key_id, CONTEXT, principal=ADMIN).blob
    damaged = [
        b"",
        blob[:1],
        blob[:-1],
        blob + b"\x00",
        b"\x02" + blob[1:],
        blob[:38] + (2).to_bytes(4, "big") + blob[42:],
        blob[:38] + (0).to_bytes(4, "big") + blob[42:],
        blob[:50] + bytes([blob[50] ^ 1]) + blob[51:],
        blob[:-1] + bytes([blob[-1] ^ 0x80]),
        bytes(MAX_BLOB_SIZE + 1),
    ]
    for bad in damaged:
        with pytest.raises(sealstore.DecryptionError):
            kms.decrypt(key_id, bad, CONTEXT, principal=ADMIN)
    with pytest.raises(sealstore.KmsError):
        kms.decrypt(key_id, bytearray(blob), CONTEXT, principal=ADMIN)  # type: ignore[arg-type]


def test_invalid_contexts_are_refused(kms: LocalKms) -> None:
    """A context that is not a mapping of non-empty strings raises InvalidContextError."""
    key_id = kms.create_key(principal=ADMIN).key_id
    for bad in ({"": "x"}, {"k": 1}, ["k"]):
        with pytest.raises(sealstore.InvalidContextError):
            kms.generate_data_key(key_id, bad, principal=ADMIN)  # type: ignore[arg-type]


# Rotation.


def test_yearly_rotation_on_use(kms: LocalKms, clock: FakeClock, sink: MemoryAuditSink) -> None:
    """After 365 days the next generate adds material; old blobs still decrypt."""
    key_id = kms.create_key(principal=ADMIN).key_id
    old = kms.generate_data_key(key_id, CONTEXT, principal=ADMIN)
    clock.advance(days=364, hours=23)
    assert blob_version(kms.generate_data_key(key_id, CONTEXT, principal=ADMIN).blob) == 1
    clock.advance(hours=1)
    new = kms.generate_data_key(key_id, CONTEXT, principal=ADMIN)
    assert blob_version(new.blob) == 2
    meta = kms.describe_key(key_id, principal=ADMIN)
    assert meta.current_version == 2
    assert meta.rotated == clock.now
    assert meta.next_rotation == clock.now + timedelta(days=365)
    assert kms.decrypt(key_id, old.blob, CONTEXT, principal=ADMIN) == old.plaintext
    assert kms.decrypt(key_id, new.blob, CONTEXT, principal=ADMIN) == new.plaintext
    (rotation,) = events_of(sink, Operation.ROTATE)
    assert rotation.key_version == "2"
    assert "automatic" in rotation.reason
    clock.advance(days=365 * 3)
    assert blob_version(kms.generate_data_key(key_id, CONTEXT, principal=ADMIN).blob) == 3


def test_rotation_on_demand(kms: LocalKms) -> None:
    """rotate_key adds material that new blobs use; every older blob keeps decrypting."""
    key_id = kms.create_key(principal=ADMIN).key_id
    blobs = []
    for expected_version in (1, 2, 3):
        data_key = kms.generate_data_key(key_id, CONTEXT, principal=ADMIN)
        assert blob_version(data_key.blob) == expected_version
        blobs.append(data_key)
        assert kms.rotate_key(key_id, principal=ADMIN) == expected_version + 1
    for data_key in blobs:
        assert kms.decrypt(key_id, data_key.blob, CONTEXT, principal=ADMIN) == data_key.plaintext


def test_reencrypt_to_the_same_key_moves_to_the_newest_material(kms: LocalKms) -> None:
    """Re-encrypting to the same key rewraps an old blob under the key's newest material."""
    key_id = kms.create_key(principal=ADMIN).key_id
    old = kms.generate_data_key(key_id, CONTEXT, principal=ADMIN)
    kms.rotate_key(key_id, principal=ADMIN)
    kms.rotate_key(key_id, principal=ADMIN)
    new_id, moved = kms.reencrypt(key_id, old.blob, CONTEXT, key_id, principal=ADMIN)
    assert new_id == key_id
    assert blob_version(moved) == 3
    assert kms.decrypt(key_id, moved, CONTEXT, principal=ADMIN) == old.plaintext


def test_blob_is_current_compares_the_material_version(
    kms: LocalKms, sink: MemoryAuditSink
) -> None:
    """blob_is_current holds for a blob of the key's newest material only: not for an older
    one, another key's blob, or what is no blob of the key. Answering is not audited."""
    assert isinstance(kms, RotationAwareKmsClient)
    key_id = kms.create_key(principal=ADMIN).key_id
    other = kms.create_key(principal=ADMIN).key_id
    kms.create_alias("alias/current", key_id, principal=ADMIN)
    old = kms.generate_data_key(key_id, CONTEXT, principal=ADMIN).blob
    assert kms.blob_is_current(key_id, old, principal=ADMIN)
    assert kms.blob_is_current("alias/current", old, principal=ADMIN)
    kms.rotate_key(key_id, principal=ADMIN)
    new = kms.generate_data_key(key_id, CONTEXT, principal=ADMIN).blob
    foreign = kms.generate_data_key(other, CONTEXT, principal=ADMIN).blob
    before = len(sink.events)
    assert not kms.blob_is_current(key_id, old, principal=ADMIN)
    assert kms.blob_is_current(key_id, new, principal=ADMIN)
    assert not kms.blob_is_current(key_id, foreign, principal=ADMIN)
    for junk in (b"", b"\x01" * 10, new + b"x", bytes(MAX_BLOB_SIZE + 1)):
        assert not kms.blob_is_current(key_id, junk, principal=ADMIN)
    assert not sink.events[before:]


def test_blob_is_current_needs_decrypt_on_the_key(kms: LocalKms, sink: MemoryAuditSink) -> None:
    """A principal the key policy does not let decrypt is denied, and the denial is audited
    (as describe-key); an unknown key is not found."""
    key_id = kms.create_key(principal=ADMIN).key_id
    blob = kms.generate_data_key(key_id, CONTEXT, principal=ADMIN).blob
    with pytest.raises(sealstore.AccessDeniedError):
        kms.blob_is_current(key_id, blob, principal=STRANGER)
    denied = events_of(sink, Operation.DESCRIBE_KEY)[-1]
    assert (denied.outcome, denied.principal, denied.key_id) == (Outcome.DENIED, STRANGER, key_id)
    with pytest.raises(sealstore.KeyNotFoundError):
        kms.blob_is_current(str(uuid.uuid4()), blob, principal=ADMIN)


def test_reencrypt_between_keys(kms: LocalKms, sink: MemoryAuditSink) -> None:
    """A blob moved to another key decrypts there, with the same context, and not under the
    old key; both keys' uses are audited."""
    source = kms.create_key(principal=ADMIN).key_id
    target = kms.create_key(principal=ADMIN).key_id
    kms.create_alias("alias/target", target, principal=ADMIN)
    data_key = kms.generate_data_key(source, CONTEXT, principal=ADMIN)
    new_id, blob = kms.reencrypt(source, data_key.blob, CONTEXT, "alias/target", principal=ADMIN)
    assert new_id == target
    assert kms.decrypt(target, blob, CONTEXT, principal=ADMIN) == data_key.plaintext
    with pytest.raises(sealstore.DecryptionError):
        kms.decrypt(source, blob, CONTEXT, principal=ADMIN)
    with pytest.raises(sealstore.DecryptionError):
        kms.decrypt(target, blob, {}, principal=ADMIN)
    rewraps = events_of(sink, Operation.REWRAP)
    assert [event.key_id for event in rewraps] == [source, target]
    assert all(event.outcome is Outcome.SUCCESS for event in rewraps)


def test_reencrypt_reaches_the_destination_check_only_after_the_source(kms: LocalKms) -> None:
    """A principal allowed on the source but not the destination is denied on the destination."""
    source = kms.create_key(principal=USER).key_id
    target = kms.create_key(principal=ADMIN).key_id
    blob = kms.generate_data_key(source, CONTEXT, principal=USER).blob
    with pytest.raises(sealstore.AccessDeniedError) as caught:
        kms.reencrypt(source, blob, CONTEXT, target, principal=USER)
    assert target in str(caught.value)


def test_reencrypt_needs_decrypt_on_the_source(kms: LocalKms) -> None:
    """A principal granted reencrypt-from but not decrypt cannot re-encrypt a blob to a key it
    can decrypt with (the default key, or a key of its own) and so read the data key."""
    policy = KeyPolicy.owner(ADMIN).grant(KeyOperation.REENCRYPT_FROM, STRANGER)
    source = kms.create_key(principal=ADMIN, policy=policy).key_id
    data_key = kms.generate_data_key(source, CONTEXT, principal=ADMIN)
    own = kms.create_key(principal=STRANGER).key_id
    for target in (kms.default_key_id(principal=STRANGER), own):
        with pytest.raises(sealstore.AccessDeniedError, match="'decrypt'"):
            kms.reencrypt(source, data_key.blob, CONTEXT, target, principal=STRANGER)
    with pytest.raises(sealstore.AccessDeniedError):
        kms.decrypt(source, data_key.blob, CONTEXT, principal=STRANGER)


# Deletion.


def test_deletion_after_the_waiting_period(
    kms: LocalKms, clock: FakeClock, sink: MemoryAuditSink, root_key: RootKey
) -> None:
    """A key pending deletion refuses use until its date; then it and its aliases are gone."""
    key_id = kms.create_key(principal=ADMIN).key_id
    kms.create_alias("alias/doomed", key_id, principal=ADMIN)
    data_key = kms.generate_data_key(key_id, CONTEXT, principal=ADMIN)
    date = kms.schedule_key_deletion(key_id, principal=ADMIN, waiting_days=7)
    assert date == clock.now + timedelta(days=7)
    meta = kms.describe_key(key_id, principal=ADMIN)
    assert meta.state is KeyState.PENDING_DELETION
    assert meta.deletion_date == date
    clock.advance(days=6, hours=23)
    with pytest.raises(sealstore.KeyPendingDeletionError):
        kms.decrypt(key_id, data_key.blob, CONTEXT, principal=ADMIN)
    clock.advance(hours=1)
    with pytest.raises(sealstore.KeyNotFoundError):
        kms.decrypt(key_id, data_key.blob, CONTEXT, principal=ADMIN)
    with pytest.raises(sealstore.KeyNotFoundError):
        kms.describe_key("alias/doomed", principal=ADMIN)
    assert kms.list_keys() == ()
    (deletion,) = events_of(sink, Operation.DELETE_KEY)
    assert deletion.key_id == key_id
    document = read_document(kms.path, root_key)
    assert key_id.encode() not in document


def test_list_keys_hides_keys_past_their_deletion_date(kms: LocalKms, clock: FakeClock) -> None:
    """list_keys never shows a key whose deletion date has passed, even before it is purged."""
    keep = kms.create_key(principal=ADMIN).key_id
    doomed = kms.create_key(principal=ADMIN).key_id
    kms.schedule_key_deletion(doomed, principal=ADMIN)
    assert {entry.key_id for entry in kms.list_keys()} == {keep, doomed}
    clock.advance(days=30)
    assert [entry.key_id for entry in kms.list_keys()] == [keep]


def test_cancelled_deletion_leaves_the_key_disabled(kms: LocalKms, clock: FakeClock) -> None:
    """Cancelling a deletion keeps the key (disabled); enabling it makes old blobs work again."""
    key_id = kms.create_key(principal=ADMIN).key_id
    data_key = kms.generate_data_key(key_id, CONTEXT, principal=ADMIN)
    kms.schedule_key_deletion(key_id, principal=ADMIN)
    kms.cancel_key_deletion(key_id, principal=ADMIN)
    meta = kms.describe_key(key_id, principal=ADMIN)
    assert meta.state is KeyState.DISABLED
    assert meta.deletion_date is None
    clock.advance(days=31)
    with pytest.raises(sealstore.KeyDisabledError):
        kms.decrypt(key_id, data_key.blob, CONTEXT, principal=ADMIN)
    kms.enable_key(key_id, principal=ADMIN)
    assert kms.decrypt(key_id, data_key.blob, CONTEXT, principal=ADMIN) == data_key.plaintext


@pytest.mark.parametrize("days", [6, 31, 0, True, 7.5])
def test_waiting_period_must_be_7_to_30_days(kms: LocalKms, days: object) -> None:
    """A waiting period outside 7..30 whole days is refused and the key is untouched."""
    key_id = kms.create_key(principal=ADMIN).key_id
    with pytest.raises(sealstore.KmsError) as caught:
        kms.schedule_key_deletion(key_id, principal=ADMIN, waiting_days=days)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)
    assert kms.describe_key(key_id, principal=ADMIN).state is KeyState.ENABLED


def test_default_waiting_period_is_30_days(kms: LocalKms, clock: FakeClock) -> None:
    """Without waiting_days a key is deleted 30 days after scheduling."""
    key_id = kms.create_key(principal=ADMIN).key_id
    assert kms.schedule_key_deletion(key_id, principal=ADMIN) == clock.now + timedelta(days=30)


# The default key.


def test_default_key_is_created_once_and_open_to_every_principal(
    tmp_path: Path, kms: LocalKms, root_key: RootKey, clock: FakeClock, sink: MemoryAuditSink
) -> None:
    """The first caller creates the default key; every principal may use it; no one
    administers it; another instance on the same directory finds the same key."""
    key_id = kms.default_key_id(principal=USER)
    assert kms.default_key_id(principal=STRANGER) == key_id
    data_key = kms.generate_data_key(key_id, CONTEXT, principal=STRANGER)
    assert kms.decrypt(DEFAULT_ALIAS, data_key.blob, CONTEXT, principal=USER) == (
        data_key.plaintext
    )
    meta = kms.describe_key(DEFAULT_ALIAS, principal="anyone")
    assert meta.aliases == (DEFAULT_ALIAS,)
    assert meta.creator == USER
    for principal in (USER, ADMIN):
        with pytest.raises(sealstore.AccessDeniedError):
            kms.rotate_key(key_id, principal=principal)
        with pytest.raises(sealstore.AccessDeniedError):
            kms.schedule_key_deletion(key_id, principal=principal)
    with pytest.raises(sealstore.KmsError):
        kms.delete_alias(DEFAULT_ALIAS, principal=USER)
    other = LocalKms(tmp_path / "kms", root_key=root_key, clock=clock, audit=sink)
    assert other.default_key_id(principal=ADMIN) == key_id
    (creation,) = events_of(sink, Operation.CREATE_KEY)
    assert creation.key_id == key_id
    assert creation.principal == USER


def test_default_key_rotates_yearly(kms: LocalKms, clock: FakeClock) -> None:
    """The default key, which no one administers, still gets new material every year."""
    key_id = kms.default_key_id(principal=USER)
    clock.advance(days=365)
    assert blob_version(kms.generate_data_key(key_id, {}, principal=USER).blob) == 2


# Persistence, root keys and sharing a directory.


def test_a_path_without_a_key_store_is_refused_unless_create_is_passed(
    tmp_path: Path, root_key: RootKey
) -> None:
    """A mistyped path (missing, empty, a file) raises KeystoreError naming it and create=True,
    and creates nothing; create=True makes only the last directory."""
    missing = tmp_path / "kms-typo"
    empty = tmp_path / "empty"
    empty.mkdir()
    a_file = tmp_path / "file"
    a_file.write_bytes(b"")
    for path, problem in (
        (missing, "does not exist"),
        (empty, "holds no keys.sealed"),
        (a_file, "is not a directory"),
    ):
        with pytest.raises(sealstore.KeystoreError, match=problem) as caught:
            LocalKms(path, root_key=root_key, audit=MemoryAuditSink())
        assert str(path) in str(caught.value)
        assert "create=True" in str(caught.value)
    assert not missing.exists()
    assert list(empty.iterdir()) == []
    orphan = tmp_path / "no-parent" / "kms"
    with pytest.raises(sealstore.KeystoreError, match="parent directory does not exist"):
        LocalKms(orphan, root_key=root_key, audit=MemoryAuditSink(), create=True)
    assert not orphan.parent.exists()
    with pytest.raises(sealstore.KeystoreError, match=f"cannot create .*{a_file.name}"):
        LocalKms(a_file, root_key=root_key, audit=MemoryAuditSink(), create=True)


def test_create_makes_a_store_that_reopens_without_it(tmp_path: Path, root_key: RootKey) -> None:
    """create=True makes the directory (mode 0700) and an empty store at sequence 1, which
    opens without create=True; create=True on an existing store opens it unchanged."""
    path = tmp_path / "kms"
    kms = LocalKms(path, root_key=root_key, audit=MemoryAuditSink(), create=True)
    assert path.stat().st_mode & 0o777 == 0o700
    assert kms.sequence == 1
    assert LocalKms(path, root_key=root_key, audit=MemoryAuditSink()).list_keys() == ()
    key_id = kms.create_key(principal=ADMIN).key_id
    again = LocalKms(path, root_key=root_key, audit=MemoryAuditSink(), create=True)
    assert [entry.key_id for entry in again.list_keys()] == [key_id]
    assert again.sequence == 2


def test_a_key_store_that_disappears_is_not_made_anew(tmp_path: Path, root_key: RootKey) -> None:
    """A keys.sealed deleted while in use fails every call, and create=True with an anchor
    refuses to replace it with an empty store."""
    kms = LocalKms(tmp_path / "kms", root_key=root_key, audit=MemoryAuditSink(), create=True)
    kms.create_key(principal=ADMIN)
    anchor = kms.sequence
    (kms.path / "keys.sealed").unlink()
    with pytest.raises(sealstore.KeystoreError, match="deleted or moved"):
        kms.list_keys()
    with pytest.raises(sealstore.KeystoreError, match="deleted or moved"):
        kms.create_key(principal=ADMIN)
    with pytest.raises(sealstore.KeystoreError, match=f"min_sequence={anchor}"):
        LocalKms(
            kms.path, root_key=root_key, audit=MemoryAuditSink(), create=True, min_sequence=anchor
        )
    assert not (kms.path / "keys.sealed").exists()


def test_a_wrong_root_key_is_a_root_key_error(kms: LocalKms, tmp_path: Path) -> None:
    """Opening a store with another root key fails clearly, at construction."""
    kms.create_key(principal=ADMIN)
    with pytest.raises(sealstore.RootKeyError):
        LocalKms(
            tmp_path / "kms", root_key=RootKey.from_bytes(os.urandom(32)), audit=MemoryAuditSink()
        )


def test_a_damaged_document_is_a_keystore_error(tmp_path: Path, root_key: RootKey) -> None:
    """A sealed document that is not a key store is reported as damaged, not as a crash."""
    for content in (
        b"not json",
        b'{"format": 1}',
        b'{"format": 1, "keys": {"k": {}}, "aliases": {}}',
        b'{"format": 2, "keys": {}, "aliases": {}}',
        b'{"format": 2, "sequence": -1, "keys": {}, "aliases": {}, "alias_owners": {}}',
        b'{"format":2,"sequence":1,"keys":{},"aliases":{},"alias_owners":{"alias/a":"x"}}',
        b'{"format":2,"sequence":1,"keys":{},"aliases":{},"alias_owners":{"alias/a":""}}',
    ):
        path = tmp_path / content.hex()[:16]
        write_document(path, root_key, content)
        with pytest.raises(sealstore.KeystoreError, match="damaged"):
            LocalKms(path, root_key=root_key, audit=MemoryAuditSink())
    newer = tmp_path / "newer"
    write_document(newer, root_key, b'{"format": 3, "sequence": 1, "keys": {}, "aliases": {}}')
    with pytest.raises(sealstore.KeystoreError, match="upgrade"):
        LocalKms(newer, root_key=root_key, audit=MemoryAuditSink())


def test_state_survives_reopening(
    kms: LocalKms, tmp_path: Path, root_key: RootKey, clock: FakeClock
) -> None:
    """Keys, materials, aliases, states and policies come back from disk intact."""
    key_id = kms.create_key(principal=ADMIN, description="orders").key_id
    kms.create_alias("alias/orders", key_id, principal=ADMIN)
    data_key = kms.generate_data_key(key_id, CONTEXT, principal=ADMIN)
    kms.rotate_key(key_id, principal=ADMIN)
    kms.put_key_policy(
        key_id, KeyPolicy.build(administrators=[ADMIN], users=[USER]), principal=ADMIN
    )
    reopened = LocalKms(tmp_path / "kms", root_key=root_key, clock=clock, audit=MemoryAuditSink())
    assert reopened.describe_key(key_id, principal=ADMIN) == kms.describe_key(
        key_id, principal=ADMIN
    )
    assert reopened.decrypt("alias/orders", data_key.blob, CONTEXT, principal=USER) == (
        data_key.plaintext
    )


def test_an_older_key_store_put_back_is_refused(
    kms: LocalKms, tmp_path: Path, root_key: RootKey, clock: FakeClock
) -> None:
    """A copy of keys.sealed taken before a key was destroyed, put back afterwards, is refused
    by the instance that saw the later document, and, given the sequence as an anchor, by a
    new instance: the destroyed key does not come back."""
    key_id = kms.create_key(principal=ADMIN).key_id
    document_path = kms.path / "keys.sealed"
    old_copy = tmp_path / "keys.sealed.old"
    old_copy.write_bytes(document_path.read_bytes())
    kms.schedule_key_deletion(key_id, principal=ADMIN, waiting_days=7)
    clock.advance(days=7)
    assert kms.list_keys() == ()
    kms.create_key(principal=ADMIN)
    anchor = kms.sequence
    os.replace(old_copy, document_path)
    with pytest.raises(sealstore.KeystoreError, match="older") as caught:
        kms.describe_key(key_id, principal=ADMIN)
    assert str(document_path) in str(caught.value)
    assert "already read" in str(caught.value)
    with pytest.raises(sealstore.KeystoreError, match="older"):
        kms.create_key(principal=ADMIN)
    with pytest.raises(sealstore.KeystoreError, match=f"min_sequence={anchor}"):
        LocalKms(
            kms.path, root_key=root_key, clock=clock, audit=MemoryAuditSink(), min_sequence=anchor
        )
    # Without the anchor a new instance has nothing to compare with.
    unanchored = LocalKms(kms.path, root_key=root_key, clock=clock, audit=MemoryAuditSink())
    assert unanchored.sequence < anchor


def test_every_write_adds_one_to_the_sequence(kms: LocalKms, clock: FakeClock) -> None:
    """Each change, automatic rotation and purge included, adds exactly one to the sequence;
    a call that changes nothing writes nothing."""
    start = kms.sequence
    key_id = kms.create_key(principal=ADMIN).key_id
    assert kms.sequence == start + 1
    kms.enable_key(key_id, principal=ADMIN)  # already enabled
    kms.generate_data_key(key_id, {}, principal=ADMIN)
    assert kms.sequence == start + 1
    clock.advance(days=365)
    kms.generate_data_key(key_id, {}, principal=ADMIN)
    assert kms.sequence == start + 2
    kms.schedule_key_deletion(key_id, principal=ADMIN, waiting_days=7)
    clock.advance(days=7)
    assert kms.list_keys() == ()
    assert kms.sequence == start + 3
    kms.default_key_id(principal=USER)
    assert kms.sequence == start + 5  # the purge, then the default key


def test_a_format_1_document_is_read_as_sequence_0_and_upgraded(
    tmp_path: Path, root_key: RootKey
) -> None:
    """A key store written before documents had a sequence number opens as sequence 0; its
    next change writes format 2, sequence 1."""
    path = tmp_path / "old"
    write_format_1_document(path, root_key, KeyPolicy.owner(ADMIN))
    kms = LocalKms(path, root_key=root_key, audit=MemoryAuditSink())
    assert kms.sequence == 0
    assert kms.describe_key("alias/old", principal=ADMIN).key_id == "k1"
    kms.rotate_key("k1", principal=ADMIN)
    written = json.loads(read_document(path, root_key))
    assert (written["format"], written["sequence"]) == (2, 1)


@pytest.mark.parametrize("anchor", [-1, True, 1.0, "3"])
def test_min_sequence_must_be_a_natural_number(
    kms: LocalKms, root_key: RootKey, anchor: object
) -> None:
    """A min_sequence that is not an int of at least 0 is refused as a bad argument."""
    with pytest.raises(sealstore.KmsError) as caught:
        LocalKms(kms.path, root_key=root_key, audit=MemoryAuditSink(), min_sequence=anchor)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)


def test_two_instances_see_each_others_changes(
    kms: LocalKms, tmp_path: Path, root_key: RootKey, clock: FakeClock
) -> None:
    """Changes made through one instance are seen by another on the same directory at once."""
    other = LocalKms(tmp_path / "kms", root_key=root_key, clock=clock, audit=MemoryAuditSink())
    key_id = kms.create_key(principal=ADMIN).key_id
    data_key = other.generate_data_key(key_id, CONTEXT, principal=ADMIN)
    other.disable_key(key_id, principal=ADMIN)
    with pytest.raises(sealstore.KeyDisabledError):
        kms.decrypt(key_id, data_key.blob, CONTEXT, principal=ADMIN)
    kms.enable_key(key_id, principal=ADMIN)
    kms.rotate_key(key_id, principal=ADMIN)
    assert blob_version(other.generate_data_key(key_id, CONTEXT, principal=ADMIN).blob) == 2


def test_threads_share_one_instance(kms: LocalKms) -> None:
    """Concurrent generate, decrypt, rotate and create calls from threads lose nothing."""
    key_id = kms.create_key(principal=ADMIN).key_id

    def work(index: int) -> tuple[str, bytes, bytes]:
        if index % 10 == 0:
            kms.rotate_key(key_id, principal=ADMIN)
        if index % 10 == 5:
            kms.create_key(principal=ADMIN)
        data_key = kms.generate_data_key(key_id, {"n": str(index)}, principal=ADMIN)
        assert kms.decrypt(key_id, data_key.blob, {"n": str(index)}, principal=ADMIN) == (
            data_key.plaintext
        )
        return str(index), data_key.blob, data_key.plaintext

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(100)))
    for index, blob, plaintext in results:
        assert kms.decrypt(key_id, blob, {"n": index}, principal=ADMIN) == plaintext
    assert kms.describe_key(key_id, principal=ADMIN).current_version == 11
    assert len(kms.list_keys()) == 11


def test_a_naive_clock_is_refused(tmp_path: Path, root_key: RootKey) -> None:
    """A clock returning naive datetimes makes calls fail with KmsError, not silently."""
    kms = LocalKms(
        tmp_path, root_key=root_key, clock=datetime.now, audit=MemoryAuditSink(), create=True
    )
    with pytest.raises(sealstore.KmsError, match="timezone-aware"):
        kms.create_key(principal=ADMIN)


# The audit trail.


def test_successes_denials_and_failures_are_audited(kms: LocalKms, sink: MemoryAuditSink) -> None:
    """Each call leaves one event with principal, operation, key, version, context keys and
    outcome; denials and failures say why."""
    key_id = kms.create_key(principal=ADMIN).key_id
    data_key = kms.generate_data_key(key_id, CONTEXT, principal=ADMIN)
    kms.decrypt(key_id, data_key.blob, CONTEXT, principal=ADMIN)
    with pytest.raises(sealstore.AccessDeniedError):
        kms.decrypt(key_id, data_key.blob, CONTEXT, principal=STRANGER)
    kms.disable_key(key_id, principal=ADMIN)
    with pytest.raises(sealstore.KeyDisabledError):
        kms.generate_data_key(key_id, CONTEXT, principal=ADMIN)
    with pytest.raises(sealstore.KeyNotFoundError):
        kms.generate_data_key("alias/missing", CONTEXT, principal=ADMIN)
    kms.enable_key(key_id, principal=ADMIN)
    with pytest.raises(sealstore.DecryptionError):
        kms.decrypt(key_id, data_key.blob, {"bucket": "orders"}, principal=ADMIN)
    summary = [(e.operation, e.principal, e.key_id, e.outcome) for e in sink.events]
    assert summary == [
        (Operation.CREATE_KEY, ADMIN, key_id, Outcome.SUCCESS),
        (Operation.GENERATE, ADMIN, key_id, Outcome.SUCCESS),
        (Operation.UNWRAP, ADMIN, key_id, Outcome.SUCCESS),
        (Operation.UNWRAP, STRANGER, key_id, Outcome.DENIED),
        (Operation.DISABLE_KEY, ADMIN, key_id, Outcome.SUCCESS),
        (Operation.GENERATE, ADMIN, key_id, Outcome.FAILURE),
        (Operation.GENERATE, ADMIN, "alias/missing", Outcome.FAILURE),
        (Operation.ENABLE_KEY, ADMIN, key_id, Outcome.SUCCESS),
        (Operation.UNWRAP, ADMIN, key_id, Outcome.FAILURE),
    ]
    generate = sink.events[1]
    assert generate.key_version == "1"
    assert generate.context_keys == ("bucket", "object")
    assert generate.time == START
    assert "decrypt" in sink.events[3].reason
    assert "KeyDisabledError" in sink.events[5].reason
    assert "DecryptionError" in sink.events[8].reason


def test_admin_changes_are_audited(kms: LocalKms, sink: MemoryAuditSink) -> None:
    """Rotation, policy, alias and deletion changes each leave a success event."""
    key_id = kms.create_key(principal=ADMIN).key_id
    kms.rotate_key(key_id, principal=ADMIN)
    kms.put_key_policy(key_id, KeyPolicy.owner(ADMIN), principal=ADMIN)
    kms.create_alias("alias/a", key_id, principal=ADMIN)
    kms.delete_alias("alias/a", principal=ADMIN)
    kms.schedule_key_deletion(key_id, principal=ADMIN)
    kms.cancel_key_deletion(key_id, principal=ADMIN)
    operations = [event.operation for event in sink.events]
    assert operations[:4] == [
        Operation.CREATE_KEY,
        Operation.ROTATE,
        Operation.PUT_POLICY,
        Operation.CREATE_ALIAS,
    ]
    assert operations[-2:] == [Operation.SCHEDULE_DELETION, Operation.CANCEL_DELETION]
    assert "deleted alias alias/a" in sink.events[4].reason
    assert sink.events[1].key_version == "2"
    assert all(event.outcome is Outcome.SUCCESS for event in sink.events)
    assert all(event.key_id == key_id for event in sink.events)


def test_audit_events_hold_no_context_values_or_key_material(
    kms: LocalKms, sink: MemoryAuditSink
) -> None:
    """No event carries an encryption-context value, a data key, a blob or key material."""
    key_id = kms.create_key(principal=ADMIN).key_id
    secrets: list[bytes] = []
    for context in (CONTEXT, {"bucket": "orders", "object": "wrong"}):
        data_key = kms.generate_data_key(key_id, CONTEXT, principal=ADMIN)
        secrets += [data_key.plaintext, data_key.blob]
        try:
            kms.decrypt(key_id, data_key.blob, context, principal=ADMIN)
            kms.reencrypt(key_id, data_key.blob, context, key_id, principal=STRANGER)
        except sealstore.SealstoreError:
            pass
    text = "\n".join(repr(event) for event in sink.events)
    assert len(sink.events) == 6
    for value in (*SECRET_VALUES, "wrong"):
        assert repr(value) not in text
    for secret in secrets:
        for encoded in (secret.hex(), base64.b64encode(secret).decode(), repr(secret)):
            assert encoded not in text


def test_default_audit_is_a_hash_chained_log_in_the_directory(
    tmp_path: Path, root_key: RootKey
) -> None:
    """Without a sink, LocalKms appends to path/audit.jsonl, a log that verifies."""
    kms = LocalKms(tmp_path / "kms", root_key=root_key, create=True)
    key_id = kms.create_key(principal=ADMIN).key_id
    data_key = kms.generate_data_key(key_id, CONTEXT, principal=ADMIN)
    with pytest.raises(sealstore.AccessDeniedError):
        kms.decrypt(key_id, data_key.blob, CONTEXT, principal=STRANGER)
    log = JsonlAuditLog(tmp_path / "kms" / "audit.jsonl")
    assert log.verify().ok
    events = list(log.events())
    assert [(e.operation, e.outcome) for e in events] == [
        (Operation.CREATE_KEY, Outcome.SUCCESS),
        (Operation.GENERATE, Outcome.SUCCESS),
        (Operation.UNWRAP, Outcome.DENIED),
    ]
    raw = (tmp_path / "kms" / "audit.jsonl").read_text()
    assert "invoice-7" not in raw
    assert data_key.plaintext.hex() not in raw


def test_an_audit_sink_that_fails_fails_the_call(tmp_path: Path, root_key: RootKey) -> None:
    """If the event cannot be recorded, the caller gets the sink's error, not a data key."""

    class BrokenSink:
        def record(self, event: AuditEvent) -> None:
            raise sealstore.KmsError("audit storage unavailable")

    kms = LocalKms(tmp_path, root_key=root_key, audit=BrokenSink(), create=True)
    with pytest.raises(sealstore.KmsError, match="audit storage unavailable"):
        kms.default_key_id(principal=USER)


class FailingSink:
    """An audit sink that refuses the success records of one operation once told to, and
    keeps the others in ``kept``."""

    def __init__(self) -> None:
        self.kept = MemoryAuditSink()
        self.refuse: Operation | None = None

    def record(self, event: AuditEvent) -> None:
        if event.operation is self.refuse and event.outcome is Outcome.SUCCESS:
            raise sealstore.AuditLogError("audit storage unavailable")
        self.kept.record(event)


Setup = Callable[[LocalKms, FakeClock, str], object]


def _disable(kms: LocalKms, clock: FakeClock, key_id: str) -> None:
    kms.disable_key(key_id, principal=ADMIN)


def _schedule(kms: LocalKms, clock: FakeClock, key_id: str) -> None:
    kms.schedule_key_deletion(key_id, principal=ADMIN, waiting_days=7)


def _alias(kms: LocalKms, clock: FakeClock, key_id: str) -> None:
    kms.create_alias("alias/there", key_id, principal=ADMIN)


def _alias_and_another_key(kms: LocalKms, clock: FakeClock, key_id: str) -> None:
    _alias(kms, clock, key_id)
    kms.create_key(principal=ADMIN)


def _a_year_later(kms: LocalKms, clock: FakeClock, key_id: str) -> None:
    clock.advance(days=365)


def _past_deletion(kms: LocalKms, clock: FakeClock, key_id: str) -> None:
    _schedule(kms, clock, key_id)
    clock.advance(days=7)


def _nothing(kms: LocalKms, clock: FakeClock, key_id: str) -> None:
    pass


Change = Callable[[LocalKms, str], object]
CHANGES: dict[str, tuple[Operation, Setup, Change]] = {
    "create_key": (Operation.CREATE_KEY, _nothing, lambda kms, _: kms.create_key(principal=ADMIN)),
    "default key": (
        Operation.CREATE_KEY,
        _nothing,
        lambda kms, _: kms.default_key_id(principal=USER),
    ),
    "enable_key": (
        Operation.ENABLE_KEY,
        _disable,
        lambda kms, key_id: kms.enable_key(key_id, principal=ADMIN),
    ),
    "disable_key": (
        Operation.DISABLE_KEY,
        _nothing,
        lambda kms, key_id: kms.disable_key(key_id, principal=ADMIN),
    ),
    "schedule_key_deletion": (
        Operation.SCHEDULE_DELETION,
        _nothing,
        lambda kms, key_id: kms.schedule_key_deletion(key_id, principal=ADMIN),
    ),
    "cancel_key_deletion": (
        Operation.CANCEL_DELETION,
        _schedule,
        lambda kms, key_id: kms.cancel_key_deletion(key_id, principal=ADMIN),
    ),
    "rotate_key": (
        Operation.ROTATE,
        _nothing,
        lambda kms, key_id: kms.rotate_key(key_id, principal=ADMIN),
    ),
    "automatic rotation": (
        Operation.ROTATE,
        _a_year_later,
        lambda kms, key_id: kms.generate_data_key(key_id, {}, principal=ADMIN),
    ),
    "put_key_policy": (
        Operation.PUT_POLICY,
        _nothing,
        lambda kms, key_id: kms.put_key_policy(
            key_id, KeyPolicy.owner(ADMIN).grant("decrypt", USER), principal=ADMIN
        ),
    ),
    "create_alias": (
        Operation.CREATE_ALIAS,
        _nothing,
        lambda kms, key_id: kms.create_alias("alias/new", key_id, principal=ADMIN),
    ),
    "delete_alias": (
        Operation.DELETE_ALIAS,
        _alias,
        lambda kms, key_id: kms.delete_alias("alias/there", principal=ADMIN),
    ),
    "update_alias": (
        Operation.UPDATE_ALIAS,
        _alias_and_another_key,
        lambda kms, key_id: kms.update_alias(
            "alias/there",
            next(entry.key_id for entry in kms.list_keys() if entry.key_id != key_id),
            principal=ADMIN,
        ),
    ),
    "deletion after the waiting period": (
        Operation.DELETE_KEY,
        _past_deletion,
        lambda kms, key_id: kms.create_key(principal=ADMIN),
    ),
}


@pytest.mark.parametrize("name", list(CHANGES))
def test_a_change_that_cannot_be_recorded_is_not_made(
    tmp_path: Path, root_key: RootKey, clock: FakeClock, name: str
) -> None:
    """Every kind of change is recorded before it is saved: when the audit sink refuses the
    record, the call fails with the sink's error and the key store is left as it was."""
    operation, setup, change = CHANGES[name]
    sink = FailingSink()
    kms = LocalKms(tmp_path / "kms", root_key=root_key, clock=clock, audit=sink, create=True)
    key_id = kms.create_key(principal=ADMIN).key_id
    setup(kms, clock, key_id)
    before = read_document(kms.path, root_key)
    sink.refuse = operation
    with pytest.raises(sealstore.AuditLogError, match="audit storage unavailable"):
        change(kms, key_id)
    assert read_document(kms.path, root_key) == before
    sink.refuse = None
    change(kms, key_id)
    assert read_document(kms.path, root_key) != before
    assert events_of(sink.kept, operation)[-1].outcome is Outcome.SUCCESS


def test_a_change_recorded_but_not_saved_says_so(
    kms: LocalKms, sink: MemoryAuditSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When saving fails after the success was recorded, a failure record follows it saying
    the change may not have been saved."""
    key_id = kms.create_key(principal=ADMIN).key_id

    def cannot_write(self: SealedFile, data: bytes) -> None:
        raise sealstore.KeystoreError(f"cannot write {self.path}: No space left on device")

    monkeypatch.setattr(SealedFile, "_write", cannot_write)
    with pytest.raises(sealstore.KeystoreError, match="No space left"):
        kms.rotate_key(key_id, principal=ADMIN)
    recorded, failed = sink.events[-2:]
    assert (recorded.operation, recorded.outcome) == (Operation.ROTATE, Outcome.SUCCESS)
    assert (failed.operation, failed.outcome) == (Operation.ROTATE, Outcome.FAILURE)
    assert failed.reason.startswith(
        "the change recorded as a success may not have been saved: KeystoreError: cannot write"
    )
    assert kms.describe_key(key_id, principal=ADMIN).current_version == 1


def test_limits_are_enforced(
    kms: LocalKms, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Material versions, keys and aliases are capped; at the version cap a key stops
    rotating on its own but keeps working."""
    monkeypatch.setattr(document, "MAX_VERSIONS", 2)
    monkeypatch.setattr(document, "MAX_KEYS", 2)
    monkeypatch.setattr(document, "MAX_ALIASES", 1)
    key_id = kms.create_key(principal=ADMIN).key_id
    assert kms.rotate_key(key_id, principal=ADMIN) == 2
    with pytest.raises(sealstore.KmsError, match="material versions"):
        kms.rotate_key(key_id, principal=ADMIN)
    clock.advance(days=400)
    assert blob_version(kms.generate_data_key(key_id, {}, principal=ADMIN).blob) == 2
    kms.create_key(principal=ADMIN)
    with pytest.raises(sealstore.KmsError, match="keys"):
        kms.create_key(principal=ADMIN)
    kms.create_alias("alias/one", key_id, principal=ADMIN)
    with pytest.raises(sealstore.KmsError, match="aliases"):
        kms.create_alias("alias/two", key_id, principal=ADMIN)


@pytest.mark.parametrize(
    "call",
    [
        lambda kms: kms.create_key(principal=ADMIN, description=b"orders"),
        lambda kms: kms.create_key(principal=ADMIN, description="x" * 8193),
        lambda kms: kms.create_key(principal=ADMIN, policy={"generate": [ADMIN]}),
        lambda kms: kms.put_key_policy("alias/x", {"put-policy": [ADMIN]}, principal=ADMIN),
        lambda kms: kms.generate_data_key("", {}, principal=ADMIN),
        lambda kms: kms.generate_data_key("k" * 257, {}, principal=ADMIN),
        lambda kms: kms.describe_key(None, principal=ADMIN),
    ],
)
def test_malformed_arguments_are_refused(kms: LocalKms, call: Callable[[LocalKms], object]) -> None:
    """Bad descriptions, policies and key names raise an error that is a KmsError and a
    ValueError, and change nothing."""
    with pytest.raises(sealstore.KmsError) as caught:
        call(kms)
    assert isinstance(caught.value, ValueError)
    assert kms.list_keys() == ()


def test_a_settled_document_is_trusted_by_signature_and_changes_still_show(
    kms: LocalKms,
    tmp_path: Path,
    root_key: RootKey,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once the file is old enough its signature alone vouches for the cached document, and a
    change by another instance (a new file) is still noticed."""
    monkeypatch.setattr(cache, "_RACY_WINDOW_NS", 0)
    other = LocalKms(tmp_path / "kms", root_key=root_key, clock=clock, audit=MemoryAuditSink())
    key_id = kms.create_key(principal=ADMIN).key_id
    for _ in range(3):
        data_key = other.generate_data_key(key_id, CONTEXT, principal=ADMIN)
        assert kms.decrypt(key_id, data_key.blob, CONTEXT, principal=ADMIN) == data_key.plaintext
        version = other.rotate_key(key_id, principal=ADMIN)
        assert kms.describe_key(key_id, principal=ADMIN).current_version == version
