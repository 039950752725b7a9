"""Settings changed at run time through the API, each an append-only history of revisions.

A setting is a JSON value under a dotted key (`outbound.allow`, `callbacks.headers`). The newest
revision wins; until the first one is saved the caller's default applies (typically a first-start
value from the environment). A secret setting keeps its full value in the vault and only a masked
view, given by the caller, in the table and its revisions, so listing never decrypts anything.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.core.config import Settings
from slipway.core.db import hold_mutex, utcnow
from slipway.core.models import RuntimeSetting, RuntimeSettingRevision
from slipway.core.secrets import open_vault

_MISSING = object()


def current(session: Session, key: str) -> RuntimeSetting | None:
    """The setting's row (its newest revision), or None before the first save."""
    return session.scalar(select(RuntimeSetting).where(RuntimeSetting.key == key))


def get(session: Session, key: str, default: Any = None) -> Any:
    """The setting's shown value (masked when secret), or `default` when never saved."""
    row = current(session, key)
    return default if row is None else row.value


def reveal(session: Session, settings: Settings, key: str, default: Any = None) -> Any:
    """The setting's full value, decrypted when secret, or `default` when never saved."""
    row = current(session, key)
    if row is None:
        return default
    if row.secret_id is None:
        return row.value
    return json.loads(open_vault(session, settings).reveal(session, row.secret_id))


def describe_changes(before: Any, after: Any) -> list[str]:
    """What changed between two values, naming keys or list entries only (never a dict value,
    which may be a secret)."""
    if before is _MISSING:
        return ["created"]
    if isinstance(before, dict) and isinstance(after, dict):
        changes = [f"added {name}" for name in after if name not in before]
        changes += [f"removed {name}" for name in before if name not in after]
        changes += [
            f"changed {name}" for name in after if name in before and before[name] != after[name]
        ]
        return changes
    if isinstance(before, list) and isinstance(after, list):
        changes = [f"added {item}" for item in after if item not in before]
        changes += [f"removed {item}" for item in before if item not in after]
        return changes or (["reordered"] if before != after else [])
    return ["changed"] if before != after else []


def put(
    session: Session,
    settings: Settings,
    key: str,
    value: Any,
    actor: str | None,
    *,
    is_secret: bool = False,
    shown: Any = None,
) -> RuntimeSettingRevision:
    """Save `value` as the setting's newest revision (flushed, not committed) and return it.

    For a secret setting `shown` is the masked view kept in the table and the revision. Saving
    the same value again still records a revision (with no changes): the history says who
    confirmed it when.
    """
    # Two admins saving at once would both take the next revision number; the second waits here.
    hold_mutex(session, f"setting:{key}"[:64])
    row = session.scalar(
        select(RuntimeSetting)
        .where(RuntimeSetting.key == key)
        .execution_options(populate_existing=True)
    )
    before = _MISSING if row is None else reveal(session, settings, key)
    now = utcnow()
    public = shown if is_secret else value
    if row is None:
        row = RuntimeSetting(key=key, value=public, revision=1, created_at=now)
        session.add(row)
    else:
        row.revision += 1
        row.value = public
    if is_secret:
        row.secret_id = open_vault(session, settings).store(
            session, owner=f"setting:{key}", value=json.dumps(value), secret_id=row.secret_id
        )
    elif row.secret_id is not None:
        # A setting that stopped being secret: its old secret must not linger in the vault.
        open_vault(session, settings).forget(session, row.secret_id)
        row.secret_id = None
    row.updated_by = actor
    row.updated_at = now
    session.flush()
    revision = RuntimeSettingRevision(
        setting_id=row.id,
        revision=row.revision,
        value=public,
        is_secret=is_secret,
        changes=describe_changes(before, value),
        actor=actor,
        created_at=now,
    )
    session.add(revision)
    session.flush()
    return revision


def revisions(
    session: Session, key: str, *, limit: int = 100, before: int | None = None
) -> list[RuntimeSettingRevision]:
    """The setting's revisions, newest first; a page of `limit` older than revision `before`."""
    query = (
        select(RuntimeSettingRevision)
        .join(RuntimeSetting, RuntimeSetting.id == RuntimeSettingRevision.setting_id)
        .where(RuntimeSetting.key == key)
        .order_by(RuntimeSettingRevision.revision.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(RuntimeSettingRevision.revision < before)
    return list(session.scalars(query))
