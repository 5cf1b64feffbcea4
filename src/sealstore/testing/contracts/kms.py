"""The KMS contract: what every :class:`~sealstore.kms.KmsClient` adapter must do.

Subclass :class:`KmsClientContract` in a test module, name the subclass ``Test...`` and give
it a ``kms`` fixture returning the adapter and a ``key_ids`` fixture naming two distinct keys
the contract's ``principal`` may use::

    import pytest
    from sealstore.testing.contracts import KmsClientContract

    class TestMyKms(KmsClientContract):
        @pytest.fixture
        def kms(self):
            return MyKms(endpoint="http://127.0.0.1:4566")

        @pytest.fixture
        def key_ids(self, kms):
            return kms.create_key(), kms.create_key()

Override ``missing_key_id`` if ``"00000000-0000-4000-8000-000000000000"`` could name a key
of your KMS, and ``principal`` (a class attribute) if the keys are for another caller.
"""

from __future__ import annotations

import os
import threading
from typing import ClassVar

import pytest

from sealstore.errors import (
    AccessDeniedError,
    DecryptionError,
    KeyNotFoundError,
    SealstoreError,
)
from sealstore.kms.base import DataKey, KmsClient

__all__ = ["CONTEXT", "KmsClientContract"]

CONTEXT = {"bucket": "orders", "object": "2030/invoice-17.pdf"}
"""The encryption context the contract's blobs are generated with."""

_OTHER_CONTEXTS = [
    {"bucket": "orders", "object": "2030/invoice-18.pdf"},
    {"bucket": "orders"},
    {},
    {**CONTEXT, "extra": "x"},
]


class KmsClientContract:
    """The contract tests; subclasses provide the ``kms`` and ``key_ids`` fixtures."""

    principal: ClassVar[str] = "contract-tester"
    """The principal every call is made for."""

    @pytest.fixture
    def kms(self) -> KmsClient:
        """The adapter under test: every subclass overrides this."""
        raise NotImplementedError

    @pytest.fixture
    def key_ids(self, kms: KmsClient) -> tuple[str, str]:
        """Two distinct keys :attr:`principal` may use: every subclass overrides this."""
        raise NotImplementedError

    @pytest.fixture
    def missing_key_id(self) -> str:
        """A well-formed key id that names no key."""
        return "00000000-0000-4000-8000-000000000000"

    def _generate(self, kms: KmsClient, key_id: str, context: dict[str, str]) -> DataKey:
        return kms.generate_data_key(key_id, context, principal=self.principal)

    # generate_data_key and decrypt

    def test_a_data_key_decrypts_to_the_same_32_bytes(
        self, kms: KmsClient, key_ids: tuple[str, str]
    ) -> None:
        """generate_data_key gives 32 bytes and a blob (not the bytes) that decrypts to them."""
        data_key = self._generate(kms, key_ids[0], CONTEXT)
        assert isinstance(data_key, DataKey)
        assert isinstance(data_key.plaintext, bytes)
        assert len(data_key.plaintext) == 32
        assert isinstance(data_key.blob, bytes)
        assert data_key.plaintext not in data_key.blob
        opened = kms.decrypt(data_key.key_id, data_key.blob, CONTEXT, principal=self.principal)
        assert opened == data_key.plaintext

    def test_every_data_key_is_fresh(self, kms: KmsClient, key_ids: tuple[str, str]) -> None:
        """Two data keys under the same key and context differ, and so do their blobs."""
        first = self._generate(kms, key_ids[0], CONTEXT)
        second = self._generate(kms, key_ids[0], CONTEXT)
        assert first.plaintext != second.plaintext
        assert first.blob != second.blob

    def test_the_key_id_reported_is_stable_and_decrypts(
        self, kms: KmsClient, key_ids: tuple[str, str]
    ) -> None:
        """The key id a data key reports (what headers store) is the same every time, and
        names the key to the KMS when decrypting."""
        first = self._generate(kms, key_ids[0], CONTEXT)
        second = self._generate(kms, first.key_id, {})
        assert second.key_id == first.key_id
        assert kms.decrypt(first.key_id, second.blob, {}, principal=self.principal) == (
            second.plaintext
        )

    def test_distinct_keys_report_distinct_ids(
        self, kms: KmsClient, key_ids: tuple[str, str]
    ) -> None:
        """Data keys of the two keys report two different key ids."""
        first = self._generate(kms, key_ids[0], CONTEXT)
        second = self._generate(kms, key_ids[1], CONTEXT)
        assert first.key_id != second.key_id

    @pytest.mark.parametrize("context", [{}, CONTEXT, {"é": "日本語", "k": ""}])
    def test_contexts_round_trip(
        self, kms: KmsClient, key_ids: tuple[str, str], context: dict[str, str]
    ) -> None:
        """Empty, ordinary and non-ASCII contexts (an empty value too) round-trip."""
        data_key = self._generate(kms, key_ids[0], context)
        opened = kms.decrypt(data_key.key_id, data_key.blob, context, principal=self.principal)
        assert opened == data_key.plaintext

    def test_the_order_of_the_context_does_not_matter(
        self, kms: KmsClient, key_ids: tuple[str, str]
    ) -> None:
        """A context is a mapping: the same pairs in another order decrypt the blob."""
        data_key = self._generate(kms, key_ids[0], CONTEXT)
        reordered = dict(reversed(list(CONTEXT.items())))
        opened = kms.decrypt(data_key.key_id, data_key.blob, reordered, principal=self.principal)
        assert opened == data_key.plaintext

    @pytest.mark.parametrize("other", _OTHER_CONTEXTS, ids=["value", "fewer", "empty", "more"])
    def test_a_blob_needs_its_own_context(
        self, kms: KmsClient, key_ids: tuple[str, str], other: dict[str, str]
    ) -> None:
        """Any other context is refused with DecryptionError, whose message holds no value."""
        data_key = self._generate(kms, key_ids[0], CONTEXT)
        with pytest.raises(DecryptionError) as raised:
            kms.decrypt(data_key.key_id, data_key.blob, other, principal=self.principal)
        assert "invoice" not in str(raised.value)

    def test_an_altered_blob_is_refused(self, kms: KmsClient, key_ids: tuple[str, str]) -> None:
        """A blob with one bit flipped, or cut short, raises DecryptionError."""
        data_key = self._generate(kms, key_ids[0], CONTEXT)
        flipped = data_key.blob[:-1] + bytes([data_key.blob[-1] ^ 1])
        for altered in (flipped, data_key.blob[: len(data_key.blob) // 2]):
            with pytest.raises(DecryptionError):
                kms.decrypt(data_key.key_id, altered, CONTEXT, principal=self.principal)

    def test_a_blob_opens_only_under_its_own_key(
        self, kms: KmsClient, key_ids: tuple[str, str]
    ) -> None:
        """Naming the other key for a blob is refused (DecryptionError or AccessDeniedError)."""
        data_key = self._generate(kms, key_ids[0], CONTEXT)
        other = self._generate(kms, key_ids[1], CONTEXT).key_id
        with pytest.raises((DecryptionError, AccessDeniedError)):
            kms.decrypt(other, data_key.blob, CONTEXT, principal=self.principal)

    def test_a_missing_key_is_key_not_found(self, kms: KmsClient, missing_key_id: str) -> None:
        """generate_data_key and decrypt under a key that does not exist: KeyNotFoundError."""
        with pytest.raises(KeyNotFoundError):
            self._generate(kms, missing_key_id, CONTEXT)
        with pytest.raises(KeyNotFoundError):
            kms.decrypt(missing_key_id, os.urandom(64), CONTEXT, principal=self.principal)

    def test_a_context_that_is_not_str_to_str_is_refused(
        self, kms: KmsClient, key_ids: tuple[str, str]
    ) -> None:
        """A context holding a non-str value raises a sealstore error, not the client's own."""
        with pytest.raises(SealstoreError):
            self._generate(kms, key_ids[0], {"n": 1})  # type: ignore[dict-item]

    # default_key_id

    def test_the_default_key_is_stable_and_usable(self, kms: KmsClient) -> None:
        """default_key_id names the same key on every call, and that key makes data keys."""
        first = kms.default_key_id(principal=self.principal)
        assert kms.default_key_id(principal=self.principal) == first
        data_key = self._generate(kms, first, CONTEXT)
        opened = kms.decrypt(data_key.key_id, data_key.blob, CONTEXT, principal=self.principal)
        assert opened == data_key.plaintext

    def test_concurrent_first_uses_agree_on_one_default_key(self, kms: KmsClient) -> None:
        """Threads asking for the default key at once all get the same one."""
        answers: list[str] = []
        errors: list[BaseException] = []

        def ask() -> None:
            try:
                answers.append(kms.default_key_id(principal=self.principal))
            except BaseException as error:  # reported by the assertion below
                errors.append(error)

        threads = [threading.Thread(target=ask) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(set(answers)) == 1
