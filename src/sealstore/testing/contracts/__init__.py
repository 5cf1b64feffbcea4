"""Contract suites: importable test classes to run against your own adapters.

Each class holds the tests every adapter of one protocol must pass; subclass it in a test
module as ``Test...`` and give it the fixtures its docstring names:

- :class:`BackendContract` for a :class:`~sealstore.backends.Backend` (fixture ``backend``);
- :class:`KmsClientContract` for a :class:`~sealstore.kms.KmsClient` (``kms``, ``key_ids``);
- :class:`KeyringStoreContract` for a :class:`~sealstore.KeyringStore` (``store``).

This package imports pytest; :mod:`sealstore.testing` does not import it.
"""

from __future__ import annotations

from sealstore.testing.contracts.backend import BackendContract
from sealstore.testing.contracts.keyring import KeyringStoreContract
from sealstore.testing.contracts.kms import KmsClientContract

__all__ = ["BackendContract", "KeyringStoreContract", "KmsClientContract"]
