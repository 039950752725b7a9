"""Callback headers: the runtime setting every callback is sent with, checked and masked.

The headers are stored encrypted, with revisions; until one is saved, FastBuild's
`{"Content-Type": "application/json"}`. Values whose header name looks secret (Authorization,
Cookie, X-Api-Key, …) are only ever shown masked, and a value sent back as the mask keeps the
current one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from slipway.core import runtime_settings
from slipway.core.config import Settings
from slipway.core.errors import InputError
from slipway.core.models import RuntimeSettingRevision

HEADERS_SETTING = "callbacks.headers"
DEFAULT_HEADERS = {"Content-Type": "application/json"}
MASK = "********"
MAX_HEADERS = 50
MAX_HEADER_VALUE = 8192

# RFC 7230 `token`: the characters a header name may have.
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Visible ASCII, spaces and tabs, and obs-text; never CR, LF or NUL (header injection).
_VALUE = re.compile(r"^[\t\x20-\x7e\x80-\xff]*$")
_SECRET_WORDS = ("auth", "cookie", "token", "secret", "key", "password", "passwd", "session")
# Headers the HTTP client sets itself; a configured one would corrupt the request.
_MANAGED = {"host", "content-length", "transfer-encoding", "connection"}


def is_secret_header(name: str) -> bool:
    """Whether the header's value is shown masked (Authorization, Cookie, X-Api-Key, …)."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: MASK if is_secret_header(name) else value for name, value in headers.items()}


def _bad_header(name: str, problem: str) -> InputError:
    field = f"headers.{name[:100]}"
    return InputError(f"{field}: {problem}", field=field, code="invalid_header")


def check_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    """The headers if each name is an RFC 7230 token and each value a single-line string."""
    if len(headers) > MAX_HEADERS:
        raise InputError(
            f"headers: {len(headers)} given, at most {MAX_HEADERS} are allowed",
            field="headers",
        )
    checked: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in headers.items():
        if not _TOKEN.match(name):
            raise _bad_header(
                name,
                "a header name may only have letters, digits and !#$%&'*+-.^_`|~ (no spaces, "
                "colons or line breaks)",
            )
        if name.lower() in _MANAGED:
            raise _bad_header(name, "is set by slipway for each request; remove it")
        if name.lower() in seen:
            raise _bad_header(name, "is given twice (header names ignore case); keep one")
        if not isinstance(value, str):
            raise _bad_header(name, "the value must be a string")
        if len(value) > MAX_HEADER_VALUE or not _VALUE.match(value):
            raise _bad_header(
                name,
                f"the value must be one line of at most {MAX_HEADER_VALUE} characters, without "
                "CR, LF or other control characters",
            )
        seen.add(name.lower())
        checked[name] = value
    return checked


def get_headers(session: Session, settings: Settings) -> dict[str, str]:
    """The headers every callback is sent with, unmasked: for the job only."""
    return dict(runtime_settings.reveal(session, settings, HEADERS_SETTING, DEFAULT_HEADERS))


def headers_view(session: Session) -> dict[str, Any]:
    """The headers as anyone may see them (secret-looking values masked), and their revision."""
    row = runtime_settings.current(session, HEADERS_SETTING)
    if row is None:
        return {
            "headers": mask_headers(DEFAULT_HEADERS),
            "source": "default",
            "revision": None,
            "updated_by": None,
            "updated_at": None,
        }
    return {
        "headers": row.value,
        "source": "api",
        "revision": row.revision,
        "updated_by": row.updated_by,
        "updated_at": row.updated_at,
    }


def put_headers(
    session: Session, settings: Settings, headers: Mapping[str, Any], *, actor: str | None
) -> RuntimeSettingRevision:
    """Replace the headers (all values stored encrypted); a new revision, flushed.

    A value sent back as the mask keeps the header's current value, so what GET shows can be
    edited and PUT again without knowing the secrets in it.
    """
    checked = check_headers(headers)
    current = get_headers(session, settings)
    kept = {name.lower(): value for name, value in current.items()}
    for name, value in checked.items():
        if value == MASK:
            if name.lower() not in kept:
                raise _bad_header(name, f"{MASK} keeps a current value, but there is none")
            checked[name] = kept[name.lower()]
    return runtime_settings.put(
        session,
        settings,
        HEADERS_SETTING,
        checked,
        actor,
        is_secret=True,
        shown=mask_headers(checked),
    )


def header_revisions(
    session: Session, *, limit: int = 100, before: int | None = None
) -> list[RuntimeSettingRevision]:
    return runtime_settings.revisions(session, HEADERS_SETTING, limit=limit, before=before)
