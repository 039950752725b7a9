"""Opaque cursors for list endpoints."""

from __future__ import annotations

import base64
import json
from typing import Any

from slipway.core.errors import InputError


def encode_cursor(value: Any) -> str | None:
    if value is None:
        return None
    return base64.urlsafe_b64encode(json.dumps(value, default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Any:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode()))
    except ValueError:
        raise InputError(
            "cursor is not valid; pass the next_cursor of the previous page unchanged",
            field="cursor",
        ) from None
