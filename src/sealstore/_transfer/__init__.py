"""The transfer engine: sealed bodies moved in concurrent parts (boto3's transfer manager,
encrypting and decrypting).

``upload.py`` seals a stream part by part in worker threads and uploads the parts
concurrently; ``download.py`` fetches ranges concurrently and releases authenticated
plaintext in order; ``base.py`` holds what the storage side must provide. The engine knows
nothing of S3 requests: the store's S3 backend and the S3 client drive it through
:class:`PartTarget` and a ranged ``fetch``.
"""

from sealstore._transfer.base import (
    DEFAULT_CONCURRENCY,
    MAX_CONCURRENCY,
    MAX_PARTS,
    Fetch,
    PartTarget,
    Progress,
    TransferBackend,
    check_concurrency,
    plaintext_part_size,
)
from sealstore._transfer.download import download_sealed
from sealstore._transfer.upload import upload_sealed

__all__ = [
    "DEFAULT_CONCURRENCY",
    "MAX_CONCURRENCY",
    "MAX_PARTS",
    "Fetch",
    "PartTarget",
    "Progress",
    "TransferBackend",
    "check_concurrency",
    "download_sealed",
    "plaintext_part_size",
    "upload_sealed",
]
