from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import PlainTextResponse, StreamingResponse

from slipway.api.deps import Operator, SessionDep, SettingsDep, Viewer
from slipway.apps import install as app_install
from slipway.apps import logs as app_logs
from slipway.apps import service
from slipway.apps.schemas import (
    AppAdopt,
    AppEnv,
    AppEnvRead,
    AppInstall,
    AppInstalled,
    AppList,
    AppRead,
    AppUpgrade,
)
from slipway.apps.status import AppAction
from slipway.jobs.routes import accepted
from slipway.jobs.schemas import OperationEnvelope, OperationRead

router = APIRouter(prefix="/apps", tags=["apps"])
EndpointQuery = Annotated[str | None, Query(max_length=63, description="the app's endpoint")]


@router.post("", response_model=AppInstalled, status_code=status.HTTP_202_ACCEPTED)
def install_app(
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    body: AppInstall,
    request: Request,
    response: Response,
) -> AppInstalled:
    """Install an app from the catalog as an `app.install` operation."""
    app, operation, generated = app_install.install(
        session,
        settings,
        request=app_install.InstallRequest(
            app=body.app,
            name=body.name,
            edition=body.edition,
            version=body.version,
            endpoint=body.endpoint,
            settings={k: str(v) for k, v in body.settings.items()},
        ),
        actor=principal.name,
    )
    envelope = accepted(response, request, OperationRead.of(operation))
    view = service.views(session, settings, [app])[0]
    return AppInstalled(
        operation=envelope.operation, app=AppRead.of(view), generated_secrets=generated
    )


@router.get("", response_model=AppList)
def list_apps(
    _: Viewer, session: SessionDep, settings: SettingsDep, endpoint: EndpointQuery = None
) -> AppList:
    return AppList(
        items=[AppRead.of(v) for v in service.list_views(session, settings, endpoint=endpoint)]
    )


@router.get("/{name}", response_model=AppRead)
def get_app(
    _: Viewer, session: SessionDep, settings: SettingsDep, name: str, endpoint: EndpointQuery = None
) -> AppRead:
    return AppRead.of(service.view(session, settings, name, endpoint=endpoint))


def _action(action: AppAction):  # type: ignore[no-untyped-def]
    def run(
        principal: Operator,
        session: SessionDep,
        settings: SettingsDep,
        name: str,
        request: Request,
        response: Response,
        endpoint: EndpointQuery = None,
    ) -> OperationEnvelope:
        operation = service.act(
            session, settings, name=name, endpoint=endpoint, action=action, actor=principal.name
        )
        return accepted(response, request, OperationRead.of(operation))

    run.__name__ = f"{action.value}_app"
    run.__doc__ = f"{action.value.capitalize()} the app (an `app.{action.value}` operation)."
    return run


for _verb in (AppAction.start, AppAction.stop, AppAction.restart, AppAction.redeploy):
    router.add_api_route(
        f"/{{name}}/{_verb.value}",
        _action(_verb),
        methods=["POST"],
        response_model=OperationEnvelope,
        status_code=status.HTTP_202_ACCEPTED,
    )


@router.post(
    "/{name}/upgrade", response_model=OperationEnvelope, status_code=status.HTTP_202_ACCEPTED
)
def upgrade_app(
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    name: str,
    body: AppUpgrade,
    request: Request,
    response: Response,
    endpoint: EndpointQuery = None,
) -> OperationEnvelope:
    """Move the app to another version, keeping its volumes; a failure rolls back."""
    operation = service.act(
        session,
        settings,
        name=name,
        endpoint=endpoint,
        action=AppAction.upgrade,
        actor=principal.name,
        params={"version": body.version},
    )
    return accepted(response, request, OperationRead.of(operation))


@router.post("/{name}/adopt", response_model=AppRead, status_code=status.HTTP_201_CREATED)
def adopt_app(
    principal: Operator, session: SessionDep, settings: SettingsDep, name: str, body: AppAdopt
) -> AppRead:
    """Manage a compose project already running on the endpoint."""
    app = service.adopt(session, settings, name=name, endpoint=body.endpoint, actor=principal.name)
    return AppRead.of(service.views(session, settings, [app])[0])


@router.delete("/{name}", response_model=OperationEnvelope, status_code=status.HTTP_202_ACCEPTED)
def uninstall_app(
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    name: str,
    request: Request,
    response: Response,
    endpoint: EndpointQuery = None,
    purge: Annotated[bool, Query(description="also remove the app's volumes")] = False,
) -> OperationEnvelope:
    """Uninstall (an install in progress is canceled first); volumes are kept unless purge."""
    operation = service.uninstall(
        session, settings, name=name, endpoint=endpoint, purge=purge, actor=principal.name
    )
    return accepted(response, request, OperationRead.of(operation))


@router.get("/{name}/env", response_model=AppEnvRead)
def read_env(
    _: Viewer, session: SessionDep, name: str, endpoint: EndpointQuery = None
) -> AppEnvRead:
    """The app's settings, secrets masked."""
    app = service.get_or_raise(session, name, endpoint=endpoint)
    return AppEnvRead(
        settings=service.read_env(session, app), is_redeploy_pending=app.is_redeploy_pending
    )


@router.put("/{name}/env", response_model=AppEnvRead)
def update_env(
    _: Operator,
    session: SessionDep,
    settings: SettingsDep,
    name: str,
    body: AppEnv,
    endpoint: EndpointQuery = None,
) -> AppEnvRead:
    """Change settings; they apply at the next `POST /apps/{name}/redeploy`."""
    app = service.get_or_raise(session, name, endpoint=endpoint)
    app = service.update_env(session, settings, app=app, values=dict(body.settings))
    return AppEnvRead(
        settings=service.read_env(session, app), is_redeploy_pending=app.is_redeploy_pending
    )


@router.get("/{name}/logs", response_class=PlainTextResponse)
def app_container_logs(
    _: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    name: str,
    endpoint: EndpointQuery = None,
    service_: Annotated[str | None, Query(alias="service", max_length=128)] = None,
    tail: Annotated[int, Query(ge=0, le=100_000)] = 200,
    since: Annotated[int | None, Query(ge=0, description="unix time")] = None,
    follow: bool = False,
    accept: Annotated[str | None, Header()] = None,
) -> object:
    """The app's container logs, `service | line`; `follow=true` streams them as SSE."""
    target = app_logs.resolve(session, settings, name, endpoint=endpoint, only=service_)
    if follow:
        session.close()
        return StreamingResponse(
            app_logs.follow(target, tail=tail, since=since),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return PlainTextResponse(app_logs.read(target, tail=tail, since=since))
