"""FastBuild's own routes under `/api/fast-build/`, for its existing clients.

They answer in FastBuild's `{code, message, data}` shape — `code` 200 on success, else the HTTP
status, with slipway's error (code, field, request id) in `data` (the app's one error handler
shapes errors by path: `api/errors.shaped_for`) — and take a bearer token like every other
route. Each one is a thin shim over the same services the `/api/v1` routes use.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, File, Form, Query, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from slipway.api.deps import Admin, Operator, SessionDep, SettingsDep, Viewer
from slipway.builds import callback_headers, callbacks, fastbuild, images, service
from slipway.builds.schemas import BuildRead
from slipway.jobs.models import Trigger


def fastbuild_body(code: int, message: str, data: Any = None) -> dict[str, Any]:
    return {"code": code, "message": message, "data": data}


def ok(message: str, data: Any = None) -> JSONResponse:
    return JSONResponse(fastbuild_body(200, message, data))


router = APIRouter(prefix="/api/fast-build", tags=["fastbuild"])


# --- config --------------------------------------------------------------------------------------


async def _tls(upload: UploadFile | None, field: str) -> Any:
    if upload is None or not upload.filename:
        return None
    return fastbuild.read_fastbuild_tls(await upload.read(), field=field)


@router.get("/config/config-fastbuild")
def show_config(_: Viewer, session: SessionDep) -> JSONResponse:
    """What FastBuild is configured with (no secret)."""
    return ok("FastBuild configuration", fastbuild.current(session))


@router.post("/config/config-fastbuild")
async def config_fastbuild(
    principal: Admin,
    session: SessionDep,
    settings: SettingsDep,
    fastbuild_host: Annotated[str, Form(max_length=253)],
    harbor_username: Annotated[str, Form(max_length=255)],
    harbor_password: Annotated[str, Form(max_length=4096)],
    harbor_registry: Annotated[str, Form(max_length=255)],
    docker_host: Annotated[str, Form(max_length=253)],
    fastbuild_port: Annotated[int, Form(ge=1, le=65535)] = 48001,
    harbor_registry_dns: Annotated[str, Form(max_length=255)] = "",
    docker_port: Annotated[int, Form(ge=1, le=65535)] = 2375,
    docker_tls_tar_file: Annotated[UploadFile | None, File()] = None,
) -> JSONResponse:
    """FastBuild's one-shot form: its host, Harbor and the Docker server, each checked first."""
    tls = await _tls(docker_tls_tar_file, "docker_tls_tar_file")
    data = fastbuild.configure(
        session,
        settings,
        host=fastbuild_host,
        port=fastbuild_port,
        harbor=fastbuild.HarborForm(
            username=harbor_username,
            password=harbor_password,
            registry=harbor_registry,
            registry_dns=harbor_registry_dns,
        ),
        docker_host=docker_host,
        docker_port=docker_port,
        tls=tls,
        actor=principal.name,
    )
    session.commit()
    return ok("FastBuild is configured: host, Harbor and Docker server checked and saved", data)


@router.post("/config/update-docker-server")
async def update_docker_server(
    principal: Admin,
    session: SessionDep,
    settings: SettingsDep,
    host: Annotated[str, Form(max_length=253)],
    port: Annotated[int, Form(ge=1, le=65535)] = 2375,
    tls_tar_file: Annotated[UploadFile | None, File()] = None,
) -> JSONResponse:
    tls = await _tls(tls_tar_file, "tls_tar_file")
    name = fastbuild.save_docker_server(
        session, settings, host=host, port=port, tls=tls, actor=principal.name
    )
    session.commit()
    return ok(f"Docker server saved as endpoint {name}", fastbuild.current(session))


@router.post("/config/update-headers")
def update_headers(
    principal: Admin,
    session: SessionDep,
    settings: SettingsDep,
    headers: Annotated[dict[str, str], Body()],
) -> JSONResponse:
    """The headers every callback carries (a new revision; the newest wins)."""
    callback_headers.put_headers(session, settings, headers, actor=principal.name)
    session.commit()
    return ok("callback headers saved", jsonable_encoder(callback_headers.headers_view(session)))


@router.post("/config/test-callback")
def test_callback(principal: Operator, session: SessionDep, settings: SettingsDep) -> JSONResponse:
    """Send the latest callback again, with the headers configured now."""
    operation = callbacks.resend_latest(
        session, settings, actor=principal.name, trigger=Trigger.api
    )
    return ok("the latest callback is being sent again", {"operation_id": operation.id})


# --- images --------------------------------------------------------------------------------------


@router.post("/image/build-image")
def build_image(
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    body: Annotated[dict[str, Any], Body()],
) -> JSONResponse:
    """FastBuild's build request, as its clients send it."""
    done = service.submit(session, settings, body=body, actor=principal.name)
    build = BuildRead.of(done.build, done.operation)
    data = {
        "task_id": build.id,
        "task_name": build.task_name,
        "status": build.status,
        "operation_id": done.operation.id,
    }
    return ok("build task accepted", data)


@router.get("/image/tasks")
def list_tasks(
    _: Viewer,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    task_name: Annotated[str | None, Query(max_length=255)] = None,
) -> JSONResponse:
    """The build task list, newest first, with each task's id."""
    builds = service.list_(session, limit=limit, task_name=task_name)
    views = BuildRead.list_of(builds, service.operations_of(session, builds))
    return ok("build tasks", [view.model_dump(mode="json") for view in views])


@router.get("/image/tasks/{task_id}")
def get_task(_: Viewer, session: SessionDep, task_id: str) -> JSONResponse:
    build = service.get_or_raise(session, task_id)
    view = BuildRead.of(
        build, service.operations_of(session, [build]).get(build.operation_id or "")
    )
    return ok("build task", view.model_dump(mode="json"))


@router.post("/image/pull-image")
def pull_image(
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    image_name: Annotated[str, Query(max_length=512)],
) -> JSONResponse:
    """Pull an image onto the build engine, with the matching registry's credentials."""
    data = images.pull(session, settings, image_name, field="image_name")
    return ok(f"pulled {image_name}", data)


@router.post("/image/check-image")
def check_image(
    _: Operator,
    session: SessionDep,
    settings: SettingsDep,
    image_name: Annotated[str, Query(max_length=512)],
) -> JSONResponse:
    """Whether the registry holds the image (its digest and size when it does)."""
    data = images.check(session, settings, image_name, field="image_name")
    return ok("the image exists" if data["exists"] else "the image does not exist", data)
