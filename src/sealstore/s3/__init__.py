"""``sealstore.s3``: :class:`EncryptingS3Client`, a boto3 S3 client that encrypts client-side.

Needs boto3 (the ``s3`` extra). See "The S3 client" in the docs.
"""

from __future__ import annotations

from sealstore.s3._bucket import BUCKET_ENCRYPTION_KEY, RESERVED_PREFIX
from sealstore.s3.client import EncryptingS3Client
from sealstore.s3.multipart import UPLOADS_PREFIX

__all__ = ["BUCKET_ENCRYPTION_KEY", "RESERVED_PREFIX", "UPLOADS_PREFIX", "EncryptingS3Client"]
