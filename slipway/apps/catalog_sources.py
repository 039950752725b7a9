"""Catalog sources: the built-in catalog, SLIPWAY_CATALOG_DIRS and sources added through the API.

SLIPWAY_CATALOG_DIRS and the built-in catalog are first-start defaults: each is added once (the
`catalog.seeded` meta row remembers which), and what an admin does to them afterwards sticks.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from slipway.apps.catalog_fetch import display_location, is_url
from slipway.apps.catalog_snapshots import (
    LIBRARY_DIR,
    RefreshResult,
    apply_scan,
    catalogs_dir,
    prune_snapshots,
    source_lock,
    take_snapshot,
)
from slipway.apps.catalog_template import ScanResult, scan_cached
from slipway.apps.models import CatalogSource, CatalogSourceKind, CatalogSourceOrigin
from slipway.core.config import Settings
from slipway.core.db import hold_mutex, utcnow
from slipway.core.errors import ConflictError, InputError, NotFoundError, SlipwayError
from slipway.core.models import Meta

BUILTIN = "builtin"
SEEDED_KEY = "catalog.seeded"
SOURCE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")


def check_source_name(name: str) -> str:
    if not SOURCE_NAME.match(name):
        raise InputError(
            f"name {name[:80]!r} is not valid: use 1-64 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit",
            field="name",
        )
    return name


def check_location(kind: str, location: str) -> str:
    """A dir source needs an absolute directory path; an archive an http(s) URL or a file path."""
    if kind == CatalogSourceKind.archive and is_url(location):
        return location
    if "://" in location:
        raise InputError(
            f"location {display_location(location)!r}: use an http(s) URL or an absolute path",
            field="location",
        )
    if not Path(location).is_absolute():
        raise InputError(
            f"location {location!r} is relative: give an absolute path, as every slipway "
            "process must find the same files",
            field="location",
        )
    return location


# --- reading ---------------------------------------------------------------------------------


def list_sources(session: Session, settings: Settings) -> list[CatalogSource]:
    """Every source, the built-in one first, then in the order they were added."""
    ensure_seeded(session, settings)
    rows = session.scalars(select(CatalogSource).order_by(CatalogSource.id))
    return sorted(rows, key=lambda row: (row.kind != CatalogSourceKind.builtin, row.id))


def get_source(session: Session, name: str) -> CatalogSource | None:
    return session.scalar(select(CatalogSource).where(CatalogSource.name == name))


def get_source_or_raise(session: Session, name: str) -> CatalogSource:
    source = get_source(session, name)
    if source is None:
        raise NotFoundError(
            f"catalog source {name!r} does not exist; list them with GET /api/v1/catalog-sources",
            code="unknown_catalog_source",
        )
    return source


def _snapshot_of(settings: Settings, source: CatalogSource) -> tuple[str | None, ScanResult]:
    if source.kind == CatalogSourceKind.builtin:
        return None, scan_cached(str(LIBRARY_DIR))
    return take_snapshot(settings, name=source.name, kind=source.kind, location=source.location)


# --- changing --------------------------------------------------------------------------------


def create_source(
    session: Session,
    settings: Settings,
    *,
    name: str,
    kind: str,
    location: str,
    allow_privileged: bool = False,
) -> RefreshResult:
    """Add a source and take its first snapshot; nothing is saved when that fails."""
    check_source_name(name)
    if kind not in (CatalogSourceKind.dir, CatalogSourceKind.archive):
        raise InputError(f"kind {kind!r} is not valid: use dir or archive", field="kind")
    check_location(kind, location)
    ensure_seeded(session, settings)
    if get_source(session, name) is not None:
        raise _exists(name)
    source = CatalogSource(
        name=name,
        kind=kind,
        origin=CatalogSourceOrigin.api,
        location=location,
        allow_privileged=allow_privileged,
        apps={},
        skipped={},
    )
    with source_lock(settings, name):
        snapshot, result = _snapshot_of(settings, source)
    change = apply_scan(source, result, snapshot)
    session.add(source)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise _exists(name) from None
    return change


def _exists(name: str) -> ConflictError:
    return ConflictError(
        f"catalog source {name!r} already exists; pick another name or refresh that one",
        code="catalog_source_exists",
        details={"field": "name"},
    )


def update_source(
    session: Session,
    settings: Settings,
    *,
    name: str,
    location: str | None = None,
    allow_privileged: bool | None = None,
) -> CatalogSource:
    """Change where a source is or whether its apps may ask for privileges; a new location is
    fetched first, and nothing changes when that fails."""
    ensure_seeded(session, settings)
    source = get_source_or_raise(session, name)
    if location is not None and location != source.location:
        if source.kind == CatalogSourceKind.builtin:
            raise InputError("the built-in catalog has no location to change", field="location")
        check_location(source.kind, location)
        with source_lock(settings, name):
            snapshot, result = take_snapshot(
                settings, name=name, kind=source.kind, location=location
            )
            previous = source.snapshot
            source.location = location
            apply_scan(source, result, snapshot)
            prune_snapshots(settings, source, previous)
    if allow_privileged is not None:
        source.allow_privileged = allow_privileged
    source.updated_at = utcnow()
    session.flush()
    return source


def delete_source(session: Session, settings: Settings, *, name: str) -> None:
    """Remove a source and its snapshots; installed apps keep their own copy of their files."""
    ensure_seeded(session, settings)
    source = get_source_or_raise(session, name)
    session.delete(source)
    session.flush()
    if source.kind != CatalogSourceKind.builtin:
        shutil.rmtree(catalogs_dir(settings) / name, ignore_errors=True)


def refresh_source(session: Session, settings: Settings, *, name: str) -> RefreshResult:
    """Fetch the source again and switch to the new snapshot when it is good.

    A failure keeps the snapshot in use; it is recorded on the row (committed here, so the
    caller's rollback keeps it) and raised.
    """
    ensure_seeded(session, settings)
    source = get_source_or_raise(session, name)
    try:
        with source_lock(settings, name):
            snapshot, result = _snapshot_of(settings, source)
            previous = source.snapshot
            change = apply_scan(source, result, snapshot)
            session.flush()
            if source.kind != CatalogSourceKind.builtin:
                prune_snapshots(settings, source, previous)
    except SlipwayError as exc:
        session.rollback()
        failed = get_source(session, name)
        if failed is not None:
            failed.last_refresh_at = utcnow()
            failed.last_refresh_error = {"code": exc.code, "message": exc.message}
            session.commit()
        raise
    return change


# --- first-start defaults --------------------------------------------------------------------


def _wanted_seeds(settings: Settings) -> list[str]:
    return [BUILTIN, *(f"dir:{path}" for path in settings.catalog_dirs)]


def _seeded(session: Session) -> list[str]:
    row = session.get(Meta, SEEDED_KEY)
    return list(json.loads(row.value)) if row is not None else []


def ensure_seeded(session: Session, settings: Settings) -> None:
    """Add the built-in catalog and each SLIPWAY_CATALOG_DIRS directory the first time they are
    seen, and bring the built-in row up to date after slipway itself was upgraded."""
    missing = [seed for seed in _wanted_seeds(settings) if seed not in _seeded(session)]
    if missing:
        hold_mutex(session, "catalog-seed")
        session.expire_all()
        seeded = _seeded(session)
        for seed in missing:
            if seed not in seeded:
                _seed(session, settings, seed)
                seeded.append(seed)
        row = session.get(Meta, SEEDED_KEY)
        if row is None:
            session.add(Meta(key=SEEDED_KEY, value=json.dumps(seeded)))
        else:
            row.value = json.dumps(seeded)
        session.flush()
    builtin = session.scalar(
        select(CatalogSource).where(CatalogSource.kind == CatalogSourceKind.builtin)
    )
    if builtin is not None:
        current = scan_cached(str(LIBRARY_DIR))
        if builtin.content_hash != current.content_hash:
            apply_scan(builtin, current, None)
            session.flush()


def _seed(session: Session, settings: Settings, seed: str) -> None:
    taken = set(session.scalars(select(CatalogSource.name)))
    if seed == BUILTIN:
        if BUILTIN in taken:
            return
        source = CatalogSource(
            name=BUILTIN,
            kind=CatalogSourceKind.builtin,
            origin=CatalogSourceOrigin.builtin,
            location=str(LIBRARY_DIR),
            apps={},
            skipped={},
        )
        apply_scan(source, scan_cached(str(LIBRARY_DIR)), None, record=False)
        session.add(source)
        session.flush()
        return
    path = Path(seed.removeprefix("dir:"))
    source = CatalogSource(
        name=_free_name(path, taken),
        kind=CatalogSourceKind.dir,
        origin=CatalogSourceOrigin.env,
        location=str(path),
        apps={},
        skipped={},
    )
    try:
        with source_lock(settings, source.name):
            snapshot, result = take_snapshot(
                settings, name=source.name, kind=source.kind, location=source.location
            )
        apply_scan(source, result, snapshot, record=False)
    except SlipwayError as exc:
        source.last_refresh_at = utcnow()
        source.last_refresh_error = {"code": exc.code, "message": exc.message}
    session.add(source)
    session.flush()


def _free_name(path: Path, taken: set[str]) -> str:
    base = path.parent.name if path.name == "apps" and path.parent.name else path.name
    slug = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")[:56] or "catalog"
    name, number = slug, 2
    while name in taken:
        name, number = f"{slug}-{number}", number + 1
    return name
