"""``RotationPolicy``: when a managed keyring's current version is replaced."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Final, final

import attrs

__all__ = ["RotationPolicy"]

_MAX_WRAPS_LIMIT: Final = 1 << 32
"""Random 96-bit nonces: at most 2**32 wraps under one key keep collisions negligible."""
_MAX_BLOCK: Final = 1 << 20


def _positive(_instance: object, attribute: attrs.Attribute[timedelta], value: timedelta) -> None:
    if value <= timedelta(0):
        raise ValueError(f"RotationPolicy.{attribute.name} must be positive")


def _between(low: int, high: int) -> Callable[[object, attrs.Attribute[int], int], None]:
    def check(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if type(value) is not int or not low <= value <= high:
            raise ValueError(f"RotationPolicy.{attribute.name} must be an int in [{low}, {high}]")

    return check


@final
@attrs.frozen
class RotationPolicy:
    """When the current master key version is replaced, and how fresh the keyring is kept.

    >>> from datetime import timedelta
    >>> RotationPolicy(max_age=timedelta(days=30)).max_wraps == 2**28
    True

    ``max_age``: a version this old is rotated out before the next wrap.
    ``max_wraps``: a version is rotated out once this many wraps were reserved under it
    (default 2**28, far below the 2**32 that random 96-bit nonces allow under one key).
    ``reserve_block``: wraps reserved per write of the keyring; a crash forfeits at most one
    block per process. ``reload_after``: the keyring is re-read at least this often, so
    rotations, retirements and reactivations made by other processes take effect here.
    """

    max_age: timedelta = attrs.field(default=timedelta(days=90), validator=_positive)
    max_wraps: int = attrs.field(default=1 << 28, validator=_between(1, _MAX_WRAPS_LIMIT))
    reserve_block: int = attrs.field(default=4096, validator=_between(1, _MAX_BLOCK))
    reload_after: timedelta = attrs.field(default=timedelta(minutes=1), validator=_positive)
