"""A fleet of four hosts (separate processes, separate directories) sharing one SeaweedFS
bucket and one S3KeyringStore: puts, reads, rotations and rewraps at once, then every
acknowledged object is decrypted on every host and the audit trails are compared.

The short run here lasts ``SEALSTORE_FLEET_SECONDS`` (default 3) plus start-up; the long one
is ``nox -s fleet``. The checks are in ``tests/fleet.py`` (``check_trails`` says what
"agree" means); the counts are printed (``pytest -s`` or ``-rP`` shows them).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import sealstore
from tests.fleet import MIN_OPERATIONS, run_fleet, shared_transit_key


def test_a_fleet_of_four_hosts_loses_nothing_and_its_trails_agree(
    tmp_path: Path, seaweedfs_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No version lost, every object written by any host decrypts on every host, one winner
    per keyring revision, and the hosts' audit trails agree on every saved rotation."""
    monkeypatch.setenv("SEALSTORE_ROOT_KEY", sealstore.RootKey.generate())
    seconds = float(os.environ.get("SEALSTORE_FLEET_SECONDS") or 3)
    report = run_fleet(tmp_path, seaweedfs_server, hosts=4, seconds=seconds)
    print("\n".join(report.lines()))
    assert report.problems == []
    counts = report.counts
    assert counts["operations"] >= 4 * MIN_OPERATIONS
    assert counts["put"] >= 4
    assert counts["rotate"] >= 4
    assert counts["rewrap_all"] >= 4
    assert counts["objects verified (each object, on each host)"] == 4 * counts["put"]
    assert counts["rotations saved"] == counts["key versions in the final keyring"] > 4


def test_a_fleet_sharing_one_openbao_transit_key_agrees_too(
    tmp_path: Path,
    seaweedfs_server: str,
    openbao_server: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """KMS mode: four hosts with KmsKeys over one OpenBao Transit key, rotating it and
    rewrapping on the server: every object decrypts on every host, each host's trail has one
    data key per object it wrote, and the rotations recorded are the key's versions."""
    monkeypatch.setenv("SEALSTORE_ROOT_KEY", sealstore.RootKey.generate())
    seconds = float(os.environ.get("SEALSTORE_FLEET_SECONDS") or 3)
    kms = shared_transit_key(*openbao_server)
    report = run_fleet(tmp_path, seaweedfs_server, hosts=4, seconds=seconds, kms=kms)
    print("\n".join(report.lines()))
    assert report.problems == []
    counts = report.counts
    assert counts["rotate"] >= 4
    assert counts["rotations saved"] == counts["rotate"] == counts["key versions in the KMS"] - 1
    assert counts["KMS data keys generated"] == counts["put"] >= 4
    assert counts["KMS server-side rewraps"] > 0
    assert counts["objects verified (each object, on each host)"] == 4 * counts["put"]
