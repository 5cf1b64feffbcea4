"""Shared fixtures."""

from __future__ import annotations

import os

import pytest

import sealstore


@pytest.fixture
def keys() -> sealstore.CustomerKeys:
    """A fresh customer key provider."""
    return sealstore.CustomerKeys(os.urandom(32))
