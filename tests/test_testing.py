"""sealstore.testing: the in-memory KMS, the fake clock and the pytest plugin behave as
documented, and stay out of the way of code that does not ask for them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from importlib.metadata import entry_points

import pytest

import sealstore
from sealstore.testing import (
    CountingKms,
    FakeClock,
    KmsFailure,
    MemoryAuditSink,
    MemoryBackend,
    MemoryKeyringStore,
    MemoryKms,
)

pytest_plugins = ["pytester"]

START = datetime(2030, 1, 1, tzinfo=timezone.utc)


# --- MemoryKms ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (KmsFailure.ACCESS_DENIED, sealstore.AccessDeniedError),
        (KmsFailure.KEY_DISABLED, sealstore.KeyDisabledError),
        (KmsFailure.PENDING_DELETION, sealstore.KeyPendingDeletionError),
        (KmsFailure.UNAVAILABLE, sealstore.KmsError),
    ],
)
def test_each_failure_raises_its_sealstore_error_until_recovered(
    failure: KmsFailure, error: type[sealstore.SealstoreError]
) -> None:
    """An injected failure fails every call with its error, naming the key and never the
    context, and is counted; after recover() the same calls succeed."""
    kms = MemoryKms(keys=["k1"])
    data_key = kms.generate_data_key("k1", {"tenant": "acme"}, principal="app")
    kms.fail(failure)
    with pytest.raises(error, match="'k1'") as raised:
        kms.decrypt("k1", data_key.blob, {"tenant": "acme"}, principal="app")
    assert "acme" not in str(raised.value)
    with pytest.raises(error):
        kms.generate_data_key("k1", {}, principal="app")
    with pytest.raises(error):
        kms.default_key_id(principal="app")
    assert kms.calls == {"generate_data_key": 2, "decrypt": 1, "default_key_id": 1}
    kms.recover()
    assert kms.decrypt("k1", data_key.blob, {"tenant": "acme"}, principal="app") == (
        data_key.plaintext
    )


def test_failures_apply_only_to_the_calls_they_name() -> None:
    """A failure limited to an operation, a key, a principal or a number of calls leaves every
    other call alone; the failure injected first wins."""
    kms = MemoryKms(keys=["k1", "k2"])
    kms.fail(KmsFailure.ACCESS_DENIED, principal="mallory")
    kms.fail(KmsFailure.KEY_DISABLED, key_id="k2", operation="generate_data_key")
    kms.fail(KmsFailure.UNAVAILABLE, operation="decrypt", times=2)
    with pytest.raises(sealstore.AccessDeniedError, match="mallory"):
        kms.generate_data_key("k2", {}, principal="mallory")
    with pytest.raises(sealstore.KeyDisabledError):
        kms.generate_data_key("k2", {}, principal="app")
    data_key = kms.generate_data_key("k1", {}, principal="app")
    for _ in range(2):
        with pytest.raises(sealstore.KmsError, match="unavailable"):
            kms.decrypt("k1", data_key.blob, {}, principal="app")
    assert kms.decrypt("k1", data_key.blob, {}, principal="app") == data_key.plaintext


def test_a_store_sees_the_injected_failure_as_the_kms_error() -> None:
    """Through a store, a disabled key surfaces as KeyDisabledError on read and write."""
    kms = MemoryKms(keys=["orders"])
    store = sealstore.EncryptedStore(MemoryBackend(), sealstore.KmsKeys(kms, key_id="orders"))
    store.put("a", b"x")
    kms.fail(KmsFailure.KEY_DISABLED, key_id="orders")
    with pytest.raises(sealstore.KeyDisabledError):
        store.get("a")
    with pytest.raises(sealstore.KeyDisabledError):
        store.put("b", b"y")


def test_latency_passes_on_the_clock_given_as_sleep() -> None:
    """With latency set, every call (failed ones too) sleeps that long through ``sleep``: on a
    fake clock, enough time passes for a bucket key cache entry to expire."""
    clock = FakeClock(START)
    kms = MemoryKms(keys=["k1"], latency=2.5, sleep=clock.sleep)
    kms.generate_data_key("k1", {}, principal="app")
    kms.fail(KmsFailure.UNAVAILABLE, times=1)
    with pytest.raises(sealstore.KmsError):
        kms.default_key_id(principal="app")
    assert clock() == START + timedelta(seconds=5)


def test_the_default_key_is_made_once_and_named_default() -> None:
    """default_key_id creates the key "default" on first use and only then."""
    kms = MemoryKms()
    assert list(kms.key_ids) == []
    assert kms.default_key_id(principal="a") == kms.default_key_id(principal="b") == "default"
    assert list(kms.key_ids) == ["default"]
    assert kms.calls["default_key_id"] == 2


def test_contexts_are_recorded_in_order() -> None:
    """Each generate_data_key and decrypt records a copy of its context."""
    kms = MemoryKms(keys=["k1"])
    context = {"n": "1"}
    data_key = kms.generate_data_key("k1", context, principal="app")
    context["n"] = "changed"
    with pytest.raises(sealstore.DecryptionError):
        kms.decrypt("k1", data_key.blob, context, principal="app")
    assert kms.contexts == [{"n": "1"}, {"n": "changed"}]


@pytest.mark.parametrize("key_id", ["", 7, "k1"])
def test_create_key_refuses_empty_and_taken_ids(key_id: object) -> None:
    """An empty, non-str or taken key id is a ValueError."""
    kms = MemoryKms(keys=["k1"])
    with pytest.raises(ValueError, match="key"):
        kms.create_key(key_id)  # type: ignore[arg-type]


@pytest.mark.parametrize("times", [0, -1, 1.5, True])
def test_fail_refuses_a_count_that_is_not_positive(times: object) -> None:
    """times must be a positive int."""
    with pytest.raises(ValueError, match="times"):
        MemoryKms().fail(KmsFailure.UNAVAILABLE, times=times)  # type: ignore[arg-type]


def test_fail_takes_only_a_kms_failure() -> None:
    """A failure given as a string is a TypeError (a typo would otherwise inject nothing)."""
    with pytest.raises(TypeError, match="KmsFailure"):
        MemoryKms().fail("unavailable")  # type: ignore[arg-type]


def test_repr_shows_counts_not_keys() -> None:
    """The repr counts keys and calls and holds no key material."""
    kms = MemoryKms(keys=["k1"])
    data_key = kms.generate_data_key("k1", {}, principal="app")
    assert repr(kms) == "MemoryKms(keys=1, calls=1)"
    assert data_key.plaintext.hex() not in repr(kms)


# --- FakeClock ------------------------------------------------------------------------------


def test_the_clock_moves_only_when_told() -> None:
    """Readings repeat until advance, set or sleep move the clock; advance adds its parts."""
    clock = FakeClock(START)
    assert clock() == clock() == clock.now == START
    assert clock.advance(timedelta(hours=1), minutes=30) == START + timedelta(hours=1.5)
    clock.sleep(30)
    assert clock() == START + timedelta(hours=1.5, seconds=30)
    clock.set(datetime(2031, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))))
    assert clock() == datetime(2031, 1, 1, tzinfo=timezone.utc)
    assert clock().tzinfo is timezone.utc
    assert repr(clock) == "FakeClock(2031-01-01T00:00:00+00:00)"


def test_a_ticking_clock_moves_after_each_reading() -> None:
    """With tick, each reading returns the time and then moves the clock by tick."""
    clock = FakeClock(START, tick=timedelta(seconds=1))
    assert [clock(), clock()] == [START, START + timedelta(seconds=1)]
    assert clock.now == START + timedelta(seconds=2)


@pytest.mark.parametrize("when", [datetime(2030, 1, 1), "2030-01-01"])
def test_the_clock_refuses_naive_times(when: object) -> None:
    """A naive datetime (or not a datetime) is refused at construction and by set()."""
    with pytest.raises(ValueError, match="aware"):
        FakeClock(when)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aware"):
        FakeClock().set(when)  # type: ignore[arg-type]


def test_the_clock_refuses_a_negative_tick_or_sleep() -> None:
    """Time does not tick backwards, and a negative sleep is refused as time.sleep does."""
    with pytest.raises(ValueError, match="tick"):
        FakeClock(tick=timedelta(seconds=-1))
    with pytest.raises(ValueError, match="non-negative"):
        FakeClock().sleep(-1)


def test_rotation_by_age_follows_the_fake_clock() -> None:
    """ManagedKeys rotates when the fake clock passes max_age, not before."""
    clock = FakeClock(START)
    policy = sealstore.RotationPolicy(max_age=timedelta(days=30))
    keys = sealstore.ManagedKeys(MemoryKeyringStore(), clock=clock, rotation=policy)
    sealstore.encrypt(b"x", keys)
    clock.advance(days=29)
    sealstore.encrypt(b"x", keys)
    assert len(keys.versions()) == 1
    clock.advance(days=2)
    sealstore.encrypt(b"x", keys)
    assert len(keys.versions()) == 2


# --- the package and the plugin -------------------------------------------------------------


def test_importing_sealstore_does_not_import_the_testing_kit() -> None:
    """import sealstore leaves sealstore.testing unimported, and sealstore.testing imports no
    pytest (checked in a fresh interpreter)."""
    code = textwrap.dedent(
        """
        import sys
        import sealstore
        assert "sealstore.testing" not in sys.modules, "sealstore imported sealstore.testing"
        import sealstore.testing
        assert "pytest" not in sys.modules, "sealstore.testing imported pytest"
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)  # noqa: S603


def test_the_plugin_is_registered_as_sealstore() -> None:
    """The pytest11 entry point named sealstore points at sealstore.testing.plugin."""
    (entry,) = [ep for ep in entry_points(group="pytest11") if ep.name == "sealstore"]
    assert entry.value == "sealstore.testing.plugin"


def test_the_fixtures_work_together(
    sealstore_store: sealstore.EncryptedStore,
    sealstore_kms_keys: sealstore.KmsKeys,
    sealstore_kms: MemoryKms,
    sealstore_customer_keys: sealstore.CustomerKeys,
    sealstore_customer_key: bytes,
    sealstore_audit: MemoryAuditSink,
    sealstore_clock: FakeClock,
) -> None:
    """The store writes with managed keys; the KMS keys use the fixture KMS; customer keys
    use the fixture key; the providers record to the fixture sink and read the fixture clock."""
    sealstore_store.put("a", b"managed")
    assert sealstore_store.head("a").mode is sealstore.Mode.MANAGED
    kms_store = sealstore.EncryptedStore(sealstore_store.backend, sealstore_kms_keys)
    kms_store.put("b", b"kms")
    assert kms_store.get("b") == b"kms"
    assert sealstore_kms.calls["generate_data_key"] == 1
    sealstore_store.put("c", b"customer", keys=sealstore_customer_keys)
    assert sealstore_customer_keys.key == sealstore_customer_key
    assert sealstore_store.get("c", keys=sealstore_customer_keys) == b"customer"
    assert {event.time for event in sealstore_audit.events} == {sealstore_clock()}
    assert {event.principal for event in sealstore_audit.events} == {"sealstore-tests"}
    assert isinstance(sealstore_store.backend, MemoryBackend)


def test_a_users_test_module_runs_with_the_plugin_from_its_entry_point(
    pytester: pytest.Pytester,
) -> None:
    """In a project of its own, a test using only sealstore.testing and the plugin's fixtures
    (loaded by its entry point, not named anywhere) passes."""
    pytester.makepyfile(
        test_user="""
        import pytest
        import sealstore
        from sealstore.testing import KmsFailure

        def test_reads_fail_while_the_key_is_disabled(sealstore_kms, sealstore_kms_keys):
            store = sealstore.EncryptedStore(sealstore.backends.MemoryBackend(), sealstore_kms_keys)
            store.put("invoice", b"42 EUR")
            sealstore_kms.fail(KmsFailure.KEY_DISABLED)
            with pytest.raises(sealstore.KeyDisabledError):
                store.get("invoice")

        def test_the_store_fixture(sealstore_store):
            sealstore_store.put("a", b"b")
            assert sealstore_store.get("a") == b"b"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_counting_kms_counts_every_call_it_passes_on() -> None:
    """CountingKms counts each call by method name, failed ones too, and passes it on."""
    inner = MemoryKms(keys=["k1"])
    kms = CountingKms(inner)
    data_key = kms.generate_data_key("k1", {}, principal="app")
    assert kms.decrypt("k1", data_key.blob, {}, principal="app") == data_key.plaintext
    assert kms.default_key_id(principal="app") == "default"
    inner.fail(KmsFailure.UNAVAILABLE, times=1)
    with pytest.raises(sealstore.KmsError):
        kms.decrypt("k1", data_key.blob, {}, principal="app")
    assert kms.calls == {"generate_data_key": 1, "decrypt": 2, "default_key_id": 1}
    assert kms.calls == inner.calls
    assert repr(kms) == "CountingKms(MemoryKms(keys=2, calls=4), calls=4)"
