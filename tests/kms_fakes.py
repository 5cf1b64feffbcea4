"""A small in-memory KMS and a call-counting wrapper, for testing providers in isolation."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping

from sealstore import _aead
from sealstore.errors import KeyNotFoundError
from sealstore.header import encode_context
from sealstore.kms import DataKey, KmsClient


class MemoryKms:
    """Keys in a dict; blobs are ``seal_blob(master, data key, key id + context)``."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}

    def create_key(self, key_id: str) -> str:
        self.keys[key_id] = os.urandom(32)
        return key_id

    def generate_data_key(
        self, key_id: str, context: Mapping[str, str], *, principal: str
    ) -> DataKey:
        master = self._master(key_id)
        plaintext = os.urandom(32)
        blob = _aead.seal_blob(master, plaintext, key_id.encode() + encode_context(context))
        return DataKey(key_id=key_id, plaintext=plaintext, blob=blob)

    def decrypt(
        self, key_id: str, blob: bytes, context: Mapping[str, str], *, principal: str
    ) -> bytes:
        master = self._master(key_id)
        return _aead.open_blob(master, blob, key_id.encode() + encode_context(context))

    def default_key_id(self, *, principal: str) -> str:
        if "default" not in self.keys:
            self.create_key("default")
        return "default"

    def _master(self, key_id: str) -> bytes:
        try:
            return self.keys[key_id]
        except KeyError:
            raise KeyNotFoundError(f"no KMS key {key_id!r}") from None


class CountingKms:
    """Wraps a KmsClient and counts its calls by operation."""

    def __init__(self, inner: KmsClient) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.contexts: list[dict[str, str]] = []

    def generate_data_key(
        self, key_id: str, context: Mapping[str, str], *, principal: str
    ) -> DataKey:
        self.calls["generate"] += 1
        self.contexts.append(dict(context))
        return self.inner.generate_data_key(key_id, context, principal=principal)

    def decrypt(
        self, key_id: str, blob: bytes, context: Mapping[str, str], *, principal: str
    ) -> bytes:
        self.calls["decrypt"] += 1
        self.contexts.append(dict(context))
        return self.inner.decrypt(key_id, blob, context, principal=principal)

    def default_key_id(self, *, principal: str) -> str:
        self.calls["default_key_id"] += 1
        return self.inner.default_key_id(principal=principal)


__all__ = ["CountingKms", "MemoryKms"]
