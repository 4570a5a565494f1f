"""Paginated lists: bounded page sizes and opaque page tokens."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from runtime.errors import FieldViolation, InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_size(requested: int, *, maximum: int = MAX_PAGE_SIZE) -> int:
    """0 means the default; negative or above ``maximum`` is the caller's mistake."""
    if requested < 0 or requested > maximum:
        raise InvalidArgument(FieldViolation("page_size", f"0 to {maximum}"))
    return requested or min(DEFAULT_PAGE_SIZE, maximum)


def encode_token(position: dict[str, Any]) -> str:
    """The position after a page's last item, opaque to clients."""
    raw = json.dumps(position, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_token(token: str) -> dict[str, Any] | None:
    """None for the first page; INVALID_ARGUMENT for a token this server did not issue."""
    if not token:
        return None
    try:
        position = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise InvalidArgument(FieldViolation("page_token", "not a token from this list")) from error
    if not isinstance(position, dict):
        raise InvalidArgument(FieldViolation("page_token", "not a token from this list"))
    return position
