"""The cursors of the targets' list pages: by name for lists, by revision for revisions.

A cursor is what `next_cursor` gave (api/pagination.py encodes it); one that decodes to the
wrong kind of value is refused like one that does not decode.
"""

from __future__ import annotations

from typing import Any

from slipway.api.pagination import decode_cursor, encode_cursor
from slipway.core.errors import InputError


def _bad_cursor() -> InputError:
    return InputError("cursor is not valid; pass next_cursor unchanged", field="cursor")


def after_name(cursor: str | None) -> str | None:
    """The name a list page starts after."""
    after = decode_cursor(cursor)
    if after is not None and not isinstance(after, str):
        raise _bad_cursor()
    return after


def before_revision(cursor: str | None) -> int | None:
    """The revision a revisions page starts below."""
    before = decode_cursor(cursor)
    if before is not None and (not isinstance(before, int) or isinstance(before, bool)):
        raise _bad_cursor()
    return before


def next_cursor(items: list[Any], limit: int, key: str) -> str | None:
    """The cursor of the page after `items[:limit]`, when `items` (limit + 1 asked) has more."""
    return encode_cursor(getattr(items[limit - 1], key)) if len(items) > limit else None
