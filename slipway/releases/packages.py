"""Packages: uploaded or fetched by URL, checked by name and contents, kept as artifacts."""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from slipway.core import outbound
from slipway.core.config import Settings
from slipway.core.db import new_id
from slipway.core.errors import (
    ConflictError,
    ExternalServiceError,
    InputError,
    NotFoundError,
    TooLargeError,
)
from slipway.core.outbound_allow import AllowList, allow_list
from slipway.releases import archive, variables
from slipway.releases.models import Deployment, DeploymentStatus, HostRelease, Package, Project
from slipway.releases.package_names import PackageName, parse_package_name

CHUNK = 1024 * 1024
FETCH_TIMEOUT = httpx.Timeout(30.0, read=120.0)


def version_sort_key(version: str) -> str:
    return ".".join(f"{int(part):06d}" for part in version.split("."))


def project_dir(settings: Settings, project: Project) -> Path:
    return settings.artifacts_path / "packages" / str(project.id)


def file_of(settings: Settings, package: Package) -> Path:
    return settings.artifacts_path / package.path


def remove_file(settings: Settings, package: Package) -> None:
    file_of(settings, package).unlink(missing_ok=True)


def list_packages(
    session: Session, project: Project, *, is_db: bool | None = None
) -> list[Package]:
    query = select(Package).where(Package.project_id == project.id)
    if is_db is not None:
        query = query.where(Package.is_db == is_db)
    return list(session.scalars(query.order_by(Package.is_db, Package.version_sort.desc())))


def get_package_or_raise(
    session: Session, project: Project, ref: str, *, is_db: bool | None = None
) -> Package:
    """A package by version (`1.0.1`, app first), filename or id."""
    query = select(Package).where(Package.project_id == project.id)
    if is_db is not None:
        query = query.where(Package.is_db == is_db)
    conditions = [Package.version == ref, Package.filename == ref]
    if ref.isdigit():
        conditions.append(Package.id == int(ref))
    package = session.scalars(query.where(or_(*conditions)).order_by(Package.is_db)).first()
    if package is None:
        what = {True: "DB package", False: "package", None: "package"}[is_db]
        raise NotFoundError(
            f"{what} {ref!r} does not exist in project {project.name}; upload it with "
            f"POST /api/v1/projects/{project.name}/packages",
            code="package_not_found",
        )
    return package


def _parse_name(filename: str) -> PackageName:
    return parse_package_name(filename)


def _refuse_duplicate(session: Session, project: Project, name: PackageName) -> None:
    existing = session.scalar(
        select(Package).where(
            Package.project_id == project.id,
            Package.is_db == name.is_db,
            Package.version == name.version,
        )
    )
    if existing is not None:
        raise ConflictError(
            f"project {project.name} already has {'DB ' if name.is_db else ''}package version "
            f"{name.version} ({existing.filename}); delete it first to replace it",
            code="exists",
            details={"field": "file", "package": existing.filename},
        )


def _temp_path(settings: Settings, project: Project) -> Path:
    directory = project_dir(settings, project)
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f".upload-{new_id()}.part"


class _Sink:
    """Writes a stream to a temp file, counting and hashing, refusing past the size limit."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.size = 0
        self.digest = hashlib.sha256()
        self._file = path.open("wb")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise TooLargeError(
                f"the package is larger than the limit of {self.limit} bytes "
                "(SLIPWAY_RELEASE_MAX_PACKAGE_BYTES)",
                field="file",
            )
        self.digest.update(chunk)
        self._file.write(chunk)

    def close(self) -> None:
        self._file.close()

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


def _store(
    session: Session,
    settings: Settings,
    project: Project,
    name: PackageName,
    sink: _Sink,
    *,
    actor: str | None,
    source_url: str | None = None,
    expected_sha256: str | None = None,
) -> Package:
    """Inspect the received file and, if it is sound, keep it and record it."""
    sha256 = sink.digest.hexdigest()
    if expected_sha256 and sha256 != expected_sha256.lower():
        raise InputError(
            f"the package's sha256 is {sha256}, not the {expected_sha256} given",
            field="sha256",
            code="checksum_mismatch",
        )
    if sink.size == 0:
        raise InputError("the package is empty", field="file", code="bad_archive")
    report = archive.inspect_archive(
        sink.path, is_db=name.is_db, config_globs=project.config_globs or ["conf/**"]
    )
    inspection = report.to_dict()
    if not name.is_db and report.config_files:
        root = report.content_root
        members = [f"{root}/{path}" if root else path for path in report.config_files]
        contents = archive.read_members(sink.path, members)
        inspection["variables"] = variables.used_variables(
            contents, literal=project.literal_placeholders or []
        )
    _refuse_duplicate(session, project, name)
    final = project_dir(settings, project) / name.filename
    os.replace(sink.path, final)
    package = Package(
        project_id=project.id,
        name=name.name,
        version=name.version,
        version_sort=version_sort_key(name.version),
        build=name.build,
        is_db=name.is_db,
        filename=name.filename,
        size=sink.size,
        sha256=sha256,
        path=str(final.relative_to(settings.artifacts_path)),
        source_url=source_url,
        inspection=inspection,
        uploaded_by=actor,
    )
    session.add(package)
    try:
        session.commit()
    except Exception:
        final.unlink(missing_ok=True)
        raise
    return package


async def upload(
    session: Session,
    settings: Settings,
    project: Project,
    *,
    filename: str,
    chunks: AsyncIterator[bytes],
    actor: str | None,
) -> Package:
    """Stream an upload to the artifact directory, then inspect and record it."""
    name = _parse_name(filename)
    _refuse_duplicate(session, project, name)
    sink = _Sink(_temp_path(settings, project), settings.release_max_package_bytes)
    try:
        async for chunk in chunks:
            sink.write(chunk)
        sink.close()
        return _store(session, settings, project, name, sink, actor=actor)
    finally:
        sink.discard()


def _filename_of(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InputError(
            f"url {url[:200]!r} must be an http:// or https:// address of the package",
            field="url",
        )
    return urllib.parse.unquote(parsed.path.rsplit("/", 1)[-1])


def _download(url: str, sink: _Sink, allow: AllowList) -> None:
    try:
        with outbound.stream("GET", url, allow=allow, field="url", timeout=FETCH_TIMEOUT) as answer:
            if answer.status_code != 200:
                raise ExternalServiceError(
                    f"fetching {url} answered HTTP {answer.status_code}; check the address",
                    code="fetch_failed",
                )
            for chunk in answer.iter_bytes(CHUNK):
                sink.write(chunk)
    except httpx.HTTPError as exc:
        raise ExternalServiceError(
            f"fetching {url} failed: {type(exc).__name__}: {exc}", code="fetch_failed"
        ) from exc


def register_url(
    session: Session,
    settings: Settings,
    project: Project,
    *,
    url: str,
    sha256: str | None,
    actor: str | None,
) -> Package:
    """Fetch a package by URL (the file must be named by the naming rule) and record it."""
    name = _parse_name(_filename_of(url))
    _refuse_duplicate(session, project, name)
    allow = allow_list(session, settings)
    sink = _Sink(_temp_path(settings, project), settings.release_max_package_bytes)
    try:
        _download(url, sink, allow)
        sink.close()
        return _store(
            session,
            settings,
            project,
            name,
            sink,
            actor=actor,
            source_url=url,
            expected_sha256=sha256,
        )
    finally:
        sink.discard()


def deployed_on(session: Session, package: Package) -> list[str]:
    """Where the package is in use: hosts running it, deployments not finished."""
    from slipway.releases.models import Environment

    users: list[str] = []
    if not package.is_db:
        rows = session.execute(
            select(HostRelease.host_name, Environment.name)
            .join(Environment, Environment.id == HostRelease.environment_id)
            .where(
                Environment.project_id == package.project_id,
                HostRelease.current_version == package.version,
            )
        )
        users += [f"host {host} ({environment})" for host, environment in rows]
    active = session.scalars(
        select(Deployment.id).where(
            or_(Deployment.package_id == package.id, Deployment.db_package_id == package.id),
            Deployment.status.not_in([s.value for s in DeploymentStatus if s.is_final]),
        )
    )
    users += [f"deployment {deployment_id}" for deployment_id in active]
    return users


def delete(session: Session, settings: Settings, package: Package) -> None:
    users = deployed_on(session, package)
    if users:
        raise ConflictError(
            f"package {package.filename} is deployed ({', '.join(users)}); deploy another "
            "version first",
            code="in_use",
            details={"used_by": users},
        )
    session.execute(
        Deployment.__table__.update()
        .where(Deployment.package_id == package.id)
        .values(package_id=None)
    )
    session.execute(
        Deployment.__table__.update()
        .where(Deployment.db_package_id == package.id)
        .values(db_package_id=None)
    )
    session.delete(package)
    session.commit()
    remove_file(settings, package)


def read_file_chunks(settings: Settings, package: Package) -> Iterator[bytes]:
    with file_of(settings, package).open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def view(package: Package, project: Project) -> dict[str, Any]:
    inspection = package.inspection or {}
    return {
        "id": package.id,
        "project": project.name,
        "name": package.name,
        "version": package.version,
        "build": package.build,
        "kind": "db" if package.is_db else "app",
        "filename": package.filename,
        "size": package.size,
        "sha256": package.sha256,
        "source_url": package.source_url,
        "layout": inspection.get("layout"),
        "scripts": inspection.get("scripts") or {},
        "config_files": inspection.get("config_files") or [],
        "variables": inspection.get("variables") or {},
        "db_versions": inspection.get("db_versions") or [],
        "uploaded_by": package.uploaded_by,
        "created_at": package.created_at,
    }
