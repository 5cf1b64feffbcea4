"""The keyring store contract: what every :class:`~sealstore.KeyringStore` must do.

Subclass :class:`KeyringStoreContract` in a test module, name the subclass ``Test...`` and
give it a ``store`` fixture returning a fresh store that holds no keyring yet::

    import pytest
    from sealstore.testing.contracts import KeyringStoreContract

    class TestMyKeyringStore(KeyringStoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            return MyKeyringStore(tmp_path / "keyring")

        @pytest.fixture
        def second_handle(self, tmp_path, store):
            return MyKeyringStore(tmp_path / "keyring")

``second_handle`` (by default the store itself) is another handle on the same keyring, as
another process would open it: it must see the first handle's changes, and updates through
either must exclude each other.
"""

from __future__ import annotations

import os
import threading

import pytest

from sealstore.envelope import decrypt, encrypt
from sealstore.keys.managed import KeyringStore, ManagedKeys

__all__ = ["KeyringStoreContract"]


class _Refused(Exception):
    """Raised by a change function in the contract's tests."""


def _count(current: bytes | None) -> bytes:
    return str(int(current or b"0") + 1).encode()


class KeyringStoreContract:
    """The contract tests; subclasses provide the ``store`` fixture."""

    @pytest.fixture
    def store(self) -> KeyringStore:
        """A fresh store holding no keyring: every subclass overrides this."""
        raise NotImplementedError

    @pytest.fixture
    def second_handle(self, store: KeyringStore) -> KeyringStore:
        """Another handle on the same keyring (by default, the same object)."""
        return store

    def test_a_fresh_store_holds_nothing(self, store: KeyringStore) -> None:
        """load() of a store never written is None."""
        assert store.load() is None

    def test_update_stores_the_change_and_returns_it(self, store: KeyringStore) -> None:
        """update gives ``change`` the current document, stores its result, and returns it."""
        seen: list[bytes | None] = []

        def change(current: bytes | None) -> bytes:
            seen.append(current)
            return b"first" if current is None else current + b", second"

        assert store.update(change) == b"first"
        assert store.update(change) == b"first, second"
        assert seen[0] is None
        assert seen[-1] == b"first"
        assert store.load() == b"first, second"

    def test_any_bytes_round_trip(self, store: KeyringStore) -> None:
        """Documents are bytes, not text: every byte value and 256 KiB are kept exactly."""
        document = bytes(range(256)) + os.urandom(256 << 10)
        store.update(lambda _current: document)
        assert store.load() == document

    def test_a_change_returning_none_stores_nothing(self, store: KeyringStore) -> None:
        """``change`` returning None leaves the document as it was; update returns it."""
        assert store.update(lambda _current: None) is None
        assert store.load() is None
        store.update(lambda _current: b"kept")
        assert store.update(lambda _current: None) == b"kept"
        assert store.load() == b"kept"

    def test_a_change_that_raises_stores_nothing(self, store: KeyringStore) -> None:
        """An exception from ``change`` propagates as it is, and the document is unchanged."""
        store.update(lambda _current: b"kept")

        def refuse(_current: bytes | None) -> bytes:
            raise _Refused("no")

        with pytest.raises(_Refused):
            store.update(refuse)
        assert store.load() == b"kept"

    def test_another_handle_sees_the_changes(
        self, store: KeyringStore, second_handle: KeyringStore
    ) -> None:
        """A change through one handle is what the other loads and is given to change next."""
        store.update(lambda _current: b"from the first")
        assert second_handle.load() == b"from the first"
        second_handle.update(lambda current: (current or b"") + b", then the second")
        assert store.load() == b"from the first, then the second"

    def test_concurrent_updates_lose_nothing(
        self, store: KeyringStore, second_handle: KeyringStore
    ) -> None:
        """Updates from several threads, through both handles, exclude each other: a counter
        incremented by each of them ends at the number of updates."""
        errors: list[BaseException] = []

        def increment(handle: KeyringStore) -> None:
            try:
                for _ in range(5):
                    handle.update(_count)
            except BaseException as error:  # reported by the assertion below
                errors.append(error)

        handles = [store, second_handle] * 2
        threads = [threading.Thread(target=increment, args=(handle,)) for handle in handles]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert store.load() == b"20"

    def test_a_managed_keyring_lives_in_it(
        self, store: KeyringStore, second_handle: KeyringStore
    ) -> None:
        """ManagedKeys keeps its versions in the store: another provider on the other handle
        decrypts what the first encrypted."""
        blob = encrypt(b"kept in the keyring", ManagedKeys(store))
        assert decrypt(blob, ManagedKeys(second_handle)) == b"kept in the keyring"
