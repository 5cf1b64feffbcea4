"""``S3KeyringStore``: the managed keyring as one sealed object in an S3-compatible bucket.

Hosts that share a bucket share their master keys through it. There is no lock to take in
S3, so every change is a compare-and-swap: read the object and its etag, compute the change,
and write it back only if the object is still the one read (``If-Match: <etag>``), or only
if there is still none (``If-None-Match: *``) for the first write. A host that loses the
race (the server answers 412, or 409 for a concurrent conditional write) reads the object
again and computes its change anew on the other host's keyring, so one host's rotation is
never written over by another's.

The object holds exactly what :func:`~sealstore.sealed.seal_document` returns, as a
:class:`~sealstore.FileKeyringStore`'s file does: a keyring file copied into the bucket is a
valid keyring object, and the other way round.

boto3 is not imported here, and botocore only to recognise its errors: any object with
``get_object`` and ``put_object`` (a boto3 S3 client) will do.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Protocol, final

from sealstore._aws import error_code, error_status, is_botocore_error
from sealstore.errors import KeystoreError
from sealstore.sealed import MAX_DOCUMENT_SIZE, RootKey, open_document, seal_document

__all__ = ["DEFAULT_ATTEMPTS", "S3KeyringStore", "S3ObjectApi"]

_PURPOSE: Final = b"managed keyring"
"""The same purpose as the file store's: the sealed bytes are interchangeable."""

DEFAULT_ATTEMPTS: Final = 32
"""Conditional writes one update tries before giving up while other hosts keep winning."""

_FIRST_PAUSE: Final = 0.01
_MAX_PAUSE: Final = 1.0
_NOT_FOUND: Final = frozenset({"NoSuchKey", "404", "NotFound"})
_LOST_RACE: Final = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_LOST_RACE_STATUS: Final = frozenset({409, 412})


class S3ObjectApi(Protocol):
    """The two methods of a boto3 S3 client that :class:`S3KeyringStore` calls."""

    def get_object(self, *args: Any, **kwargs: Any) -> Any: ...
    def put_object(self, *args: Any, **kwargs: Any) -> Any: ...


class _LostRace(Exception):
    """Another writer changed the object between this handle's read and its write."""


@final
class S3KeyringStore:
    """A keyring sealed under a root key in one object of a bucket, changed only by
    conditional writes, so hosts sharing the bucket never lose each other's changes.

    ``client`` is a boto3 S3 client (credentials, endpoint, retries and timeouts are its
    business); ``key`` is the object's full key in ``bucket``. The object must exist unless
    ``create=True``: then the first change creates it. Without it, a mistyped key is a
    :class:`~sealstore.KeystoreError` at first use, never a second, empty keyring.

    An update whose write loses to another host's (412, or 409) is computed again on the
    keyring that host wrote, at most ``attempts`` times, pausing a random, growing moment in
    between (at most a second); :attr:`conflicts` counts the retries. A keyring put back in
    place from an older copy is refused by :class:`~sealstore.ManagedKeys`, which checks the
    keyring's revision (see its ``min_revision``).

    The bucket must give strong read-after-write consistency and honour ``If-Match`` and
    ``If-None-Match`` on ``PutObject`` atomically (Amazon S3, MinIO and SeaweedFS do).
    Turn versioning on to keep the keyring's history: every change is a new object version.

    Every failure is a :class:`~sealstore.KeystoreError` naming ``s3://bucket/key``
    (a :class:`~sealstore.RootKeyError` for a root key that does not open the object).
    """

    def __init__(
        self,
        client: S3ObjectApi,
        bucket: str,
        key: str,
        root_key: RootKey,
        *,
        create: bool = False,
        attempts: int = DEFAULT_ATTEMPTS,
    ) -> None:
        if not isinstance(bucket, str) or not bucket or "/" in bucket:
            raise ValueError(
                f"bucket must be an S3 bucket name such as 'my-bucket', not {bucket!r}"
            )
        if not isinstance(key, str) or not key or key.startswith("/"):
            raise ValueError(f"key must be an object key such as 'keys/keyring', not {key!r}")
        if type(attempts) is not int or attempts < 1:
            raise ValueError("attempts must be an int >= 1")
        self._client = client
        self.bucket = bucket
        self.key = key
        self._root_key = root_key
        self._create = create
        self._attempts = attempts
        self._conflicts = 0
        self._count_lock = threading.Lock()

    @property
    def location(self) -> str:
        """Where the keyring is: ``s3://bucket/key``."""
        return f"s3://{self.bucket}/{self.key}"

    @property
    def conflicts(self) -> int:
        """Conditional writes of this handle that lost to another writer and were retried."""
        return self._conflicts

    def load(self) -> bytes | None:
        """The unsealed document, or ``None`` if the object does not exist (``create=True``).

        Raises :class:`~sealstore.RootKeyError` for a wrong root key (or an altered object)
        and :class:`~sealstore.KeystoreError` for an object that cannot be read, is not a
        keyring, or does not exist (without ``create=True``).
        """
        sealed, _etag = self._get()
        if sealed is None:
            self._missing()
            return None
        return self._open(sealed)[1]

    def update(self, change: Callable[[bytes | None], bytes | None]) -> bytes | None:
        """Write ``change(current)`` if the object is still the one ``current`` came from.

        After a lost race, ``change`` is called again on the newer document; its last
        result is what is stored. ``change`` returning ``None`` (or the same document)
        writes nothing. Returns the document as it stands afterwards.
        """
        pause = _FIRST_PAUSE
        for attempt in range(1, self._attempts + 1):
            sealed, etag = self._get()
            salt: bytes | None = None
            current: bytes | None = None
            if sealed is None:
                self._missing()
            else:
                salt, current = self._open(sealed)
            new = change(current)
            if new is None or new == current:
                return current
            try:
                self._put(seal_document(self._root_key, _PURPOSE, new, salt), etag)
            except _LostRace:
                with self._count_lock:
                    self._conflicts += 1
                if attempt < self._attempts:
                    time.sleep(random.uniform(0, pause))  # noqa: S311 - jitter, not a secret
                    pause = min(pause * 2, _MAX_PAUSE)
                continue
            return new
        raise KeystoreError(
            f"cannot change the keyring {self.location}: other writers changed it first "
            f"{self._attempts} times in a row; try again (or raise attempts)"
        )

    # Internals.

    def _missing(self) -> None:
        if not self._create:
            raise KeystoreError(
                f"there is no keyring at {self.location}: pass create=True to S3KeyringStore "
                "to create one there (check the bucket and key first)"
            )

    def _open(self, sealed: bytes) -> tuple[bytes, bytes]:
        return open_document(self._root_key, _PURPOSE, sealed, self.location)

    def _get(self) -> tuple[bytes | None, str | None]:
        """The sealed object and its etag, or ``(None, None)`` if there is none."""
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=self.key)
        except Exception as error:
            if error_code(error) in _NOT_FOUND:
                return None, None
            raise self._translated(error, "read") from None
        body = answer["Body"]
        try:
            sealed = body.read(MAX_DOCUMENT_SIZE + 1)
        except Exception as error:
            raise self._translated(error, "read") from None
        finally:
            body.close()
        etag = answer.get("ETag")
        if not isinstance(sealed, bytes) or not isinstance(etag, str) or not etag:
            raise KeystoreError(f"cannot read the keyring {self.location}: no etag came with it")
        return sealed, etag

    def _put(self, sealed: bytes, etag: str | None) -> None:
        """Write ``sealed`` only over the object of ``etag`` (only where none is, if ``None``)."""
        condition = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        try:
            self._client.put_object(Bucket=self.bucket, Key=self.key, Body=sealed, **condition)
        except Exception as error:
            code, status = error_code(error), error_status(error)
            # A key deleted since it was read: some servers answer 404 under If-Match (moto),
            # others 412 (SeaweedFS). Either way the next read decides what to do.
            if (
                code in _LOST_RACE
                or status in _LOST_RACE_STATUS
                or (etag is not None and code in _NOT_FOUND)
            ):
                raise _LostRace from None
            raise self._translated(error, "write") from None

    def _translated(self, error: Exception, doing: str) -> Exception:
        """A :class:`KeystoreError` for a failed S3 call; ``error`` itself if not from S3."""
        failed = f"cannot {doing} the keyring {self.location}"
        code = error_code(error)
        if code is None:
            if not (is_botocore_error(error) or isinstance(error, OSError)):
                return error
            # The class name, not str(error): botocore's parameter errors quote values.
            return KeystoreError(
                f"{failed}: {type(error).__name__}; check the client's endpoint and the "
                "network, and that the service is running"
            )
        if code == "NoSuchBucket":
            return KeystoreError(f"{failed}: the bucket {self.bucket!r} does not exist")
        return KeystoreError(f"{failed}: S3 answered {code}; {_advice(code, error_status(error))}")

    def __repr__(self) -> str:
        return f"S3KeyringStore({self.location!r})"


def _advice(code: str, status: int | None) -> str:
    if status == 403 or code in {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
        return (
            "check the client's credentials, and that they may get and put this object "
            "(s3:GetObject and s3:PutObject)"
        )
    if status is not None and status >= 500:
        return "the service is failing or overloaded; try again later"
    return "see the S3 documentation for this error code"
