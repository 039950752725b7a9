"""Opaque cursors for list endpoints: `next_cursor` makes the one a page answers with,
`decode_cursor` reads it back and refuses anything else, in one error for every list."""

from __future__ import annotations

import base64
import json
from typing import Any

from slipway.core.errors import InputError


def invalid_cursor() -> InputError:
    return InputError(
        "cursor is not valid; pass the next_cursor of the previous page unchanged", field="cursor"
    )


def encode_cursor(value: Any) -> str | None:
    if value is None:
        return None
    return base64.urlsafe_b64encode(json.dumps(value, default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: type | None = None) -> Any:
    """The value `encode_cursor` was given (None without a cursor); with `kind`, refused unless it
    is exactly of that type (a cursor never holds a bool where a number belongs)."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except ValueError:
        raise invalid_cursor() from None
    if kind is not None and type(value) is not kind:
        raise invalid_cursor()
    return value


def next_cursor(items: list[Any], limit: int, key: str) -> str | None:
    """The cursor of the page after `items[:limit]`, when `items` (limit + 1 asked for) has more."""
    return encode_cursor(getattr(items[limit - 1], key)) if len(items) > limit else None
