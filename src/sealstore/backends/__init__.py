"""Storage backends: where encrypted objects live. Backends know nothing of cryptography.

A backend is any object with the handful of methods of :class:`Backend`. Four ship with
sealstore: :class:`MemoryBackend`, :class:`FileSystemBackend`, ``S3Backend`` (a boto3 S3
client, in :mod:`sealstore.backends.s3`) and ``FsspecBackend`` (any fsspec filesystem, in
:mod:`sealstore.backends.fsspec`). Errors are translated at the seam:
:class:`~sealstore.ObjectNotFoundError` for a missing object,
:class:`~sealstore.InvalidNameError` for a name a backend refuses, and
:class:`~sealstore.BackendError` for everything else the storage reports.
"""

from __future__ import annotations

from sealstore._io import Readable, ReadableStream
from sealstore.backends.base import Backend, ObjectInfo
from sealstore.backends.filesystem import FileSystemBackend
from sealstore.backends.fsspec import FsspecBackend
from sealstore.backends.memory import MemoryBackend
from sealstore.backends.s3 import S3Backend

__all__ = [
    "Backend",
    "FileSystemBackend",
    "FsspecBackend",
    "MemoryBackend",
    "ObjectInfo",
    "Readable",
    "ReadableStream",
    "S3Backend",
]
