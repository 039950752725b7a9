"""HTTP routes of releases: deploy profiles, projects, environments and packages (deployments:
`deployment_routes`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from slipway.api.deps import Admin, Operator, SessionDep, SettingsDep, Viewer
from slipway.core.secrets import open_vault
from slipway.releases import deployment_views, packages, profiles, service
from slipway.releases.models import Environment, Project
from slipway.releases.schemas import (
    EnvironmentCreate,
    EnvironmentCreated,
    EnvironmentList,
    EnvironmentRead,
    EnvironmentUpdate,
    PackageFromUrl,
    PackageList,
    PackageRead,
    ProjectCreate,
    ProjectList,
    ProjectRead,
    ProjectUpdate,
)
from slipway.releases.upload import file_from_request
from slipway.targets.models import HostGroup

router = APIRouter(prefix="/projects", tags=["releases"])
profiles_router = APIRouter(tags=["releases"])
ENV = "/{project}/environments/{environment}"


def _project_view(session: Any, project: Project) -> ProjectRead:
    return ProjectRead(
        id=project.id,
        name=project.name,
        kind=project.kind,
        description=project.description,
        config_globs=project.config_globs,
        literal_placeholders=project.literal_placeholders or [],
        environments=[e.name for e in service.list_environments(session, project)],
        created_at=project.created_at,
        updated_at=project.updated_at,
    )


def _environment_view(session: Any, project: Project, environment: Environment) -> dict[str, Any]:
    group = session.get(HostGroup, environment.host_group_id)
    database = None
    if environment.database:
        database = {
            "url": environment.database["url"],
            "credential": environment.database.get("credential"),
            "has_password": environment.database_secret_id is not None,
        }
    return {
        "id": environment.id,
        "project": project.name,
        "name": environment.name,
        "host_group": group.name if group else "",
        "deploy_root": environment.deploy_root,
        "layout": environment.layout,
        "variables": environment.variables,
        "secret_variables": sorted(environment.secret_variables or {}),
        "host_variables": environment.host_variables,
        "strategy": environment.strategy,
        "keep_releases": environment.keep_releases,
        "database": database,
        "health_check": environment.health_check,
        "requires_approval": environment.requires_approval,
        "public_key": environment.public_key_pem,
        "hosts": [
            deployment_views.host_release_view(row)
            for row in service.host_releases(session, environment)
        ],
        "created_at": environment.created_at,
        "updated_at": environment.updated_at,
    }


# --- projects ----------------------------------------------------------------------------------


@profiles_router.get("/release-profiles")
def list_profiles(_: Viewer, settings: SettingsDep) -> dict[str, Any]:
    """Project kinds: `wecube` and every deploy profile, with the scripts each supplies."""
    found = profiles.load_profiles(settings)
    return {
        "items": [{"name": profiles.PACKAGE_KIND, "description": "the package brings its scripts",
                   "scripts": [], "source": "built-in"}]
        + [
            {"name": p.name, "description": p.description, "scripts": sorted(p.scripts),
             "source": p.source}
            for p in found.values()
        ]
    }  # fmt: skip


@router.get("", response_model=ProjectList)
def list_projects(_: Viewer, session: SessionDep) -> ProjectList:
    return ProjectList(items=[_project_view(session, p) for p in service.list_projects(session)])


@router.post("", response_model=ProjectRead, status_code=status.HTTP_201_CREATED)
def create_project(
    _: Admin, session: SessionDep, settings: SettingsDep, body: ProjectCreate
) -> ProjectRead:
    project = service.create_project(
        session,
        settings,
        name=body.name,
        kind=body.kind,
        description=body.description,
        config_globs=body.config_globs,
        literal_placeholders=body.literal_placeholders,
    )
    return _project_view(session, project)


@router.get("/{project}", response_model=ProjectRead)
def get_project(_: Viewer, session: SessionDep, project: str) -> ProjectRead:
    return _project_view(session, service.get_project_or_raise(session, project))


@router.patch("/{project}", response_model=ProjectRead)
def update_project(_: Admin, session: SessionDep, project: str, body: ProjectUpdate) -> ProjectRead:
    row = service.get_project_or_raise(session, project)
    service.update_project(
        session,
        row,
        description=body.description,
        config_globs=body.config_globs,
        literal_placeholders=body.literal_placeholders,
    )
    return _project_view(session, row)


@router.delete("/{project}", status_code=status.HTTP_204_NO_CONTENT)
def delete_project(_: Admin, session: SessionDep, settings: SettingsDep, project: str) -> Response:
    service.delete_project(session, settings, service.get_project_or_raise(session, project))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- environments ------------------------------------------------------------------------------


@router.get("/{project}/environments", response_model=EnvironmentList)
def list_environments(_: Viewer, session: SessionDep, project: str) -> EnvironmentList:
    row = service.get_project_or_raise(session, project)
    return EnvironmentList(
        items=[_environment_view(session, row, e) for e in service.list_environments(session, row)]
    )


@router.post(
    "/{project}/environments",
    response_model=EnvironmentCreated,
    status_code=status.HTTP_201_CREATED,
)
def create_environment(
    _: Admin, session: SessionDep, settings: SettingsDep, project: str, body: EnvironmentCreate
) -> dict[str, Any]:
    row = service.get_project_or_raise(session, project)
    saved = service.create_environment(session, settings, open_vault(session, settings), row, body)
    return {
        **_environment_view(session, row, saved.environment),
        "generated_private_key": saved.generated_private_key,
    }


@router.get(ENV, response_model=EnvironmentRead)
def get_environment(_: Viewer, session: SessionDep, project: str, environment: str) -> Any:
    row = service.get_project_or_raise(session, project)
    return _environment_view(
        session, row, service.get_environment_or_raise(session, row, environment)
    )


@router.patch(ENV, response_model=EnvironmentCreated)
def update_environment(
    _: Admin,
    session: SessionDep,
    settings: SettingsDep,
    project: str,
    environment: str,
    body: EnvironmentUpdate,
) -> dict[str, Any]:
    row = service.get_project_or_raise(session, project)
    env = service.get_environment_or_raise(session, row, environment)
    saved = service.update_environment(session, open_vault(session, settings), env, body)
    return {
        **_environment_view(session, row, env),
        "generated_private_key": saved.generated_private_key,
    }


@router.delete(ENV, status_code=status.HTTP_204_NO_CONTENT)
def delete_environment(
    _: Admin, session: SessionDep, settings: SettingsDep, project: str, environment: str
) -> Response:
    row = service.get_project_or_raise(session, project)
    env = service.get_environment_or_raise(session, row, environment)
    service.delete_environment(session, open_vault(session, settings), env)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- packages ----------------------------------------------------------------------------------


@router.get("/{project}/packages", response_model=PackageList)
def list_packages(
    _: Viewer,
    session: SessionDep,
    project: str,
    kind: Annotated[str | None, Query(pattern="^(app|db)$")] = None,
) -> PackageList:
    row = service.get_project_or_raise(session, project)
    is_db = None if kind is None else kind == "db"
    return PackageList(
        items=[packages.view(p, row) for p in packages.list_packages(session, row, is_db=is_db)]
    )


@router.post(
    "/{project}/packages",
    response_model=PackageRead,
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            }
        }
    },
)
async def upload_package(
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    project: str,
    request: Request,
    filename: Annotated[str | None, Query(max_length=255)] = None,
) -> dict[str, Any]:
    """Upload a package (multipart field `file`, or the raw body with `?filename=`)."""
    row = service.get_project_or_raise(session, project)
    name, chunks = await file_from_request(request, filename)
    package = await packages.upload(
        session, settings, row, filename=name, chunks=chunks, actor=principal.name
    )
    return packages.view(package, row)


@router.post(
    "/{project}/packages/from-url", response_model=PackageRead, status_code=status.HTTP_201_CREATED
)
def register_package_url(
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    project: str,
    body: PackageFromUrl,
) -> dict[str, Any]:
    """Fetch a package from an http(s) URL and keep it like an upload."""
    row = service.get_project_or_raise(session, project)
    package = packages.register_url(
        session, settings, row, url=body.url, sha256=body.sha256, actor=principal.name
    )
    return packages.view(package, row)


@router.get("/{project}/packages/{package}", response_model=PackageRead)
def get_package(_: Viewer, session: SessionDep, project: str, package: str) -> dict[str, Any]:
    row = service.get_project_or_raise(session, project)
    return packages.view(packages.get_package_or_raise(session, row, package), row)


@router.get("/{project}/packages/{package}/download", response_class=StreamingResponse)
def download_package(
    _: Viewer, session: SessionDep, settings: SettingsDep, project: str, package: str
) -> StreamingResponse:
    row = service.get_project_or_raise(session, project)
    found = packages.get_package_or_raise(session, row, package)
    return StreamingResponse(
        packages.read_file_chunks(settings, found),
        media_type="application/gzip",
        headers={
            "Content-Disposition": f'attachment; filename="{found.filename}"',
            "Content-Length": str(found.size),
            "Digest": f"sha-256={found.sha256}",
        },
    )


@router.delete("/{project}/packages/{package}", status_code=status.HTTP_204_NO_CONTENT)
def delete_package(
    _: Operator, session: SessionDep, settings: SettingsDep, project: str, package: str
) -> Response:
    row = service.get_project_or_raise(session, project)
    packages.delete(session, settings, packages.get_package_or_raise(session, row, package))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
