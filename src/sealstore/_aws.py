"""What every AWS adapter needs to read botocore's errors, without importing botocore.

A service answer arrives as an exception carrying botocore's ``response`` mapping (a
``ClientError``); a failure before any answer (no connection, a timeout, a bad parameter)
is a ``BotoCoreError``. The adapters (:mod:`sealstore.backends.s3`, :mod:`sealstore.kms.aws`)
translate both into sealstore's errors at their seams with these readers.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["error_code", "error_message", "error_status", "is_botocore_error"]


def _response(error: BaseException) -> Mapping[str, object]:
    response = getattr(error, "response", None)
    return response if isinstance(response, Mapping) else {}


def _detail(error: BaseException, section: str, field: str) -> object:
    details = _response(error).get(section)
    return details.get(field) if isinstance(details, Mapping) else None


def error_code(error: BaseException) -> str | None:
    """The service's error code (``"NoSuchKey"``, ``"AccessDeniedException"``...), if any.

    >>> class ClientError(Exception):
    ...     response = {"Error": {"Code": "NoSuchKey"}}
    >>> error_code(ClientError()), error_code(ValueError())
    ('NoSuchKey', None)
    """
    code = _detail(error, "Error", "Code")
    return code if isinstance(code, str) and code else None


def error_message(error: BaseException) -> str:
    """The service's error message, ``""`` when it sent none."""
    message = _detail(error, "Error", "Message")
    return message if isinstance(message, str) else ""


def error_status(error: BaseException) -> int | None:
    """The HTTP status of the service's answer, if the error carries one."""
    status = _detail(error, "ResponseMetadata", "HTTPStatusCode")
    return status if isinstance(status, int) else None


def is_botocore_error(error: BaseException) -> bool:
    """Whether ``error`` is botocore's own (raised before or instead of a service answer)."""
    try:
        from botocore.exceptions import BotoCoreError  # noqa: PLC0415 - optional dependency
    except ImportError:  # pragma: no cover - a client without botocore raises none of its errors
        return False
    return isinstance(error, BotoCoreError)
