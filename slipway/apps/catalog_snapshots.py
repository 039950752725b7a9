"""Snapshots of catalog sources under `<data dir>/catalogs/<name>/`, and what changed between two.

A refresh copies or unpacks a source into a staging directory, checks and scans it, and renames
it to `<version>-<hash>` (or `<hash>`) when it is good; the source's row is then pointed at it.
A failed refresh leaves the snapshot in use untouched. The row's `snapshot` is the one pointer; the
previous snapshot is kept for installs still copying from it, older ones are removed.
"""

from __future__ import annotations

import fcntl
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slipway.apps.catalog_fetch import copy_directory, display_location, fetch_archive
from slipway.apps.catalog_template import ScanResult, scan, scan_cached
from slipway.apps.models import CatalogSource, CatalogSourceKind
from slipway.core.config import Settings
from slipway.core.db import utcnow
from slipway.core.errors import InputError

LIBRARY_DIR = Path(__file__).resolve().parent / "library"


@dataclass
class RefreshResult:
    """What a refresh changed: apps added, removed and updated (their files differ)."""

    source: CatalogSource
    is_changed: bool
    version_before: str | None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    updated: list[dict[str, Any]] = field(default_factory=list)


def catalogs_dir(settings: Settings) -> Path:
    return settings.data_dir / "catalogs"


def source_root(settings: Settings, source: CatalogSource) -> Path | None:
    """The directory the source's apps are read from, or None before its first snapshot."""
    if source.kind == CatalogSourceKind.builtin:
        return LIBRARY_DIR
    if not source.snapshot:
        return None
    return catalogs_dir(settings) / source.name / source.snapshot


# --- snapshots -------------------------------------------------------------------------------


@contextmanager
def source_lock(settings: Settings, name: str) -> Iterator[None]:
    """One refresh of a source at a time, across the processes sharing the data dir."""
    locks = catalogs_dir(settings) / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def take_snapshot(
    settings: Settings, *, name: str, kind: str, location: str
) -> tuple[str, ScanResult]:
    """Bring the source's files into a new snapshot directory: its name, and the scan of it."""
    base = catalogs_dir(settings) / name
    base.mkdir(parents=True, exist_ok=True)
    staging = base / f".staging-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        if kind == CatalogSourceKind.dir:
            copy_directory(Path(location), staging)
        else:
            fetch_archive(location, staging)
        result = scan(staging)
        if not result.apps and not result.skipped:
            raise InputError(
                f"{display_location(location)} holds no app folder (a folder with a "
                "docker-compose.yml, .env and variables.json); check the location",
                code="empty_catalog",
                details={"field": "location"},
            )
        final = base / snapshot_name(result)
        if final.exists():
            shutil.rmtree(staging)
        else:
            staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not any(base.iterdir()):
            base.rmdir()  # a source that never had a snapshot leaves nothing behind
        raise
    return final.name, scan_cached(str(final))


def snapshot_name(result: ScanResult) -> str:
    if result.declared_version:
        return f"{result.declared_version}-{result.content_hash[:12]}"
    return result.content_hash[:16]


def prune_snapshots(settings: Settings, source: CatalogSource, previous: str | None) -> None:
    base = catalogs_dir(settings) / source.name
    keep = {source.snapshot, previous}
    for path in base.iterdir() if base.is_dir() else ():
        if path.name not in keep and not path.name.startswith(".staging-"):
            shutil.rmtree(path, ignore_errors=True)


def index_of(result: ScanResult) -> dict[str, Any]:
    return {
        key: {
            "hash": app.content_hash,
            "editions": {e.dist: e.versions for e in app.editions},
            "default_version": app.default_version,
        }
        for key, app in result.apps.items()
    }


def apply_scan(
    source: CatalogSource, result: ScanResult, snapshot: str | None, *, record: bool = True
) -> RefreshResult:
    """Point the row at the scanned snapshot and say what changed."""
    before = source.apps or {}
    after = index_of(result)
    change = RefreshResult(source=source, is_changed=False, version_before=source.version)
    change.added = sorted(set(after) - set(before))
    change.removed = sorted(set(before) - set(after))
    for key in sorted(set(before) & set(after)):
        old, new = before[key], after[key]
        if old.get("hash") != new["hash"]:
            old_versions = {v for vs in (old.get("editions") or {}).values() for v in vs}
            new_versions = {v for vs in new["editions"].values() for v in vs}
            change.updated.append(
                {
                    "key": key,
                    "default_version_before": old.get("default_version"),
                    "default_version": new["default_version"],
                    "versions_added": sorted(new_versions - old_versions),
                    "versions_removed": sorted(old_versions - new_versions),
                }
            )
    change.is_changed = source.content_hash != result.content_hash
    source.version = result.version
    source.content_hash = result.content_hash
    source.snapshot = snapshot
    source.apps = after
    source.skipped = dict(result.skipped)
    source.last_refresh_at = utcnow()
    source.last_refresh_error = None
    if change.is_changed and record:
        source.last_changes = {
            "added": change.added,
            "removed": change.removed,
            "updated": [item["key"] for item in change.updated],
        }
    return change
