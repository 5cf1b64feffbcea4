"""Where the command's objects live: a local directory or ``s3://bucket/prefix``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from sealstore.backends import Backend, FileSystemBackend, S3Backend
from sealstore.errors import BackendError


@attrs.frozen
class S3Options:
    """The standard AWS configuration, overridable on the command line."""

    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None


def open_backend(target: str, s3: S3Options) -> Backend:
    """A backend for ``target``: ``s3://bucket[/prefix]`` or a local directory (created)."""
    if target.startswith("s3://"):
        return _s3_backend(target, s3)
    if "://" in target:
        scheme = target.split("://", 1)[0]
        raise BackendError(
            f"unsupported target scheme {scheme}://: use a local directory or s3://bucket/prefix"
        )
    return FileSystemBackend(Path(target))


def _s3_backend(target: str, options: S3Options) -> Backend:
    bucket, _, prefix = target[len("s3://") :].partition("/")
    if not bucket:
        raise BackendError(f"{target} names no bucket: write s3://bucket or s3://bucket/prefix")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return S3Backend(s3_client(options), bucket, prefix=prefix)


def s3_client(options: S3Options) -> Any:
    """A boto3 S3 client configured by ``options`` and the standard AWS settings."""
    try:
        import boto3  # noqa: PLC0415 - optional dependency (extra s3)
        import botocore.exceptions  # noqa: PLC0415
    except ModuleNotFoundError:
        raise BackendError("s3:// targets need boto3: pip install 'sealstore[cli,s3]'") from None
    try:
        session = boto3.session.Session(profile_name=options.profile, region_name=options.region)
        return session.client("s3", endpoint_url=options.endpoint_url)
    except botocore.exceptions.BotoCoreError as error:
        raise BackendError(f"cannot configure the S3 client: {error}") from None
