"""SealedFile, the sealed-document codec and RootKey: sealed documents for key material."""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path

import pytest

import sealstore
from sealstore.sealed import RootKey, SealedFile, open_document, seal_document


@pytest.fixture
def root() -> RootKey:
    """A random raw root key."""
    return RootKey.from_bytes(os.urandom(32))


def test_update_and_read_round_trip(tmp_path: Path, root: RootKey) -> None:
    """A document written by update reads back, and the file holds no plaintext."""
    doc = SealedFile(tmp_path / "doc", root, b"test")
    assert doc.read() is None
    assert doc.update(lambda old: b"secret document") == b"secret document"
    assert doc.read() == b"secret document"
    assert b"secret" not in (tmp_path / "doc").read_bytes()


def test_change_returning_none_or_same_writes_nothing(tmp_path: Path, root: RootKey) -> None:
    """An update whose change keeps the document does not rewrite the file."""
    doc = SealedFile(tmp_path / "doc", root, b"test")
    doc.update(lambda old: b"v1")
    before = (tmp_path / "doc").stat().st_mtime_ns, (tmp_path / "doc").read_bytes()
    assert doc.update(lambda old: None) == b"v1"
    assert doc.update(lambda old: old) == b"v1"
    assert ((tmp_path / "doc").stat().st_mtime_ns, (tmp_path / "doc").read_bytes()) == before


def test_purposes_are_separated(tmp_path: Path, root: RootKey) -> None:
    """A file sealed for one purpose does not open for another, even under the same root key."""
    SealedFile(tmp_path / "doc", root, b"keyring").update(lambda old: b"x")
    with pytest.raises(sealstore.RootKeyError):
        SealedFile(tmp_path / "doc", root, b"kms").read()


def test_wrong_root_key_and_tampering_are_root_key_errors(tmp_path: Path, root: RootKey) -> None:
    """Another root key, or a flipped bit in the file, raises RootKeyError."""
    SealedFile(tmp_path / "doc", root, b"p").update(lambda old: b"x")
    with pytest.raises(sealstore.RootKeyError):
        SealedFile(tmp_path / "doc", RootKey.from_bytes(os.urandom(32)), b"p").read()
    data = bytearray((tmp_path / "doc").read_bytes())
    data[-1] ^= 1
    (tmp_path / "doc").write_bytes(bytes(data))
    with pytest.raises(sealstore.RootKeyError):
        SealedFile(tmp_path / "doc", root, b"p").read()


@pytest.mark.parametrize("content", [b"", b"not sealed at all", b"SLKS\x02" + bytes(40)])
def test_foreign_files_are_keystore_errors(tmp_path: Path, root: RootKey, content: bytes) -> None:
    """A file that is not a sealed document (or of a newer version) raises KeystoreError."""
    (tmp_path / "doc").write_bytes(content)
    with pytest.raises(sealstore.KeystoreError):
        SealedFile(tmp_path / "doc", root, b"p").read()


def test_passphrase_root_key_round_trip_and_kind_mismatch(tmp_path: Path) -> None:
    """A passphrase opens its file again; a raw key for a passphrase file is refused."""
    passphrase = RootKey.from_passphrase("correct horse battery staple", work_factor=10)
    SealedFile(tmp_path / "doc", passphrase, b"p").update(lambda old: b"x")
    again = RootKey.from_passphrase("correct horse battery staple", work_factor=10)
    assert SealedFile(tmp_path / "doc", again, b"p").read() == b"x"
    with pytest.raises(sealstore.RootKeyError):
        SealedFile(tmp_path / "doc", RootKey.from_passphrase("wrong", work_factor=10), b"p").read()
    with pytest.raises(sealstore.RootKeyError):
        SealedFile(tmp_path / "doc", RootKey.from_bytes(bytes(32)), b"p").read()


def test_stale_temporaries_are_removed_by_the_next_update(tmp_path: Path, root: RootKey) -> None:
    """Temporary files left by a killed writer are removed by the next update."""
    doc = SealedFile(tmp_path / "doc", root, b"p")
    doc.update(lambda old: b"v1")
    (tmp_path / ".doc.tmp-abc123").write_bytes(b"left by a crash")
    (tmp_path / ".doc.new.tmp-xyz").write_bytes(b"another document's write in progress")
    doc.update(lambda old: b"v2")
    assert not (tmp_path / ".doc.tmp-abc123").exists()
    assert (tmp_path / ".doc.new.tmp-xyz").exists()
    assert doc.read() == b"v2"


def test_concurrent_updates_serialize(tmp_path: Path, root: RootKey) -> None:
    """Updates from many threads each see the previous one: none is lost."""
    doc = SealedFile(tmp_path / "doc", root, b"p")
    doc.update(lambda old: b"0")

    def bump() -> None:
        for _ in range(20):
            doc.update(lambda old: str(int(old or b"0") + 1).encode())

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert doc.read() == b"80"


def test_codec_round_trip_without_a_file(tmp_path: Path, root: RootKey) -> None:
    """The codec seals and opens bytes alone, in the very layout SealedFile writes."""
    sealed = seal_document(root, b"p", b"document")
    assert sealed[:5] == b"SLKS\x01"
    assert b"document" not in sealed
    salt, document = open_document(root, b"p", sealed, "the object")
    assert (salt, document) == (sealed[8:24], b"document")
    assert seal_document(root, b"p", b"again", salt)[8:24] == salt
    (tmp_path / "doc").write_bytes(sealed)
    assert SealedFile(tmp_path / "doc", root, b"p").read() == b"document"
    written = SealedFile(tmp_path / "other", root, b"p")
    written.update(lambda old: b"from a file")
    assert open_document(root, b"p", written.path.read_bytes(), "x")[1] == b"from a file"


def test_codec_errors_name_where_the_document_is(root: RootKey) -> None:
    """The codec's errors are the file's errors, naming the place the caller gave."""
    with pytest.raises(sealstore.KeystoreError, match=r"^s3://b/keyring is not a sealed"):
        open_document(root, b"p", b"not sealed at all", "s3://b/keyring")
    with pytest.raises(sealstore.KeystoreError, match="has sealed-file version 2"):
        open_document(root, b"p", b"SLKS\x02" + bytes(40), "s3://b/keyring")
    sealed = seal_document(root, b"p", b"x")
    with pytest.raises(sealstore.RootKeyError, match="does not open s3://b/keyring"):
        open_document(RootKey.from_bytes(os.urandom(32)), b"p", sealed, "s3://b/keyring")
    with pytest.raises(ValueError, match="salt"):
        seal_document(root, b"p", b"x", b"short")


def test_root_key_constructors_and_repr(tmp_path: Path) -> None:
    """Root keys come from bytes, base64, env and files, and never show in a repr."""
    raw = os.urandom(32)
    text = base64.b64encode(raw).decode()
    (tmp_path / "raw").write_bytes(raw)
    (tmp_path / "b64").write_text(text + "\n")
    keys = [
        RootKey.from_bytes(raw),
        RootKey.from_base64(text),
        RootKey.from_env(environ={"SEALSTORE_ROOT_KEY": text}),
        RootKey.from_file(tmp_path / "raw"),
        RootKey.from_file(tmp_path / "b64"),
    ]
    SealedFile(tmp_path / "doc", keys[0], b"p").update(lambda old: b"x")
    for key in keys:
        assert SealedFile(tmp_path / "doc", key, b"p").read() == b"x"
        assert text not in repr(key)
        assert raw.hex() not in repr(key)
    with pytest.raises(sealstore.RootKeyError):
        RootKey.from_env(environ={})
    with pytest.raises(sealstore.InvalidKeyError):
        RootKey.from_base64("c2hvcnQ=")
    with pytest.raises(sealstore.RootKeyError):
        RootKey.from_file(tmp_path / "missing")
    assert len(base64.b64decode(RootKey.generate())) == 32
