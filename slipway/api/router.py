"""Every domain's router, assembled in one place."""

from fastapi import APIRouter

from slipway.apps.catalog_routes import router as catalog_router
from slipway.apps.routes import router as apps_router
from slipway.audit.routes import router as audit_router
from slipway.auth.routes import router as auth_router
from slipway.builds.callback_routes import router as callbacks_router
from slipway.builds.fastbuild_routes import router as fastbuild_router
from slipway.builds.mirror_routes import router as mirrors_router
from slipway.builds.routes import router as builds_router
from slipway.jobs.routes import router as operations_router
from slipway.releases.deployment_routes import router as deployments_router
from slipway.releases.routes import profiles_router
from slipway.releases.routes import router as releases_router
from slipway.system.routes import metrics_router
from slipway.system.routes import router as system_router
from slipway.system.settings_routes import router as settings_router
from slipway.system.upgrade_routes import router as upgrade_router
from slipway.targets.host_routes import router as hosts_router
from slipway.targets.registry_routes import router as registries_router
from slipway.targets.routes import router as docker_endpoints_router

# Each router is included in the app itself (`api.app`), not through a router of routers: since
# FastAPI 0.137 an included router is matched level by level, and each level walked the whole
# tree below it on every request.
API_ROUTERS: list[APIRouter] = [
    operations_router,
    auth_router,
    audit_router,
    system_router,
    upgrade_router,
    catalog_router,
    docker_endpoints_router,
    apps_router,
    hosts_router,
    releases_router,
    deployments_router,
    profiles_router,
    registries_router,
    settings_router,
    mirrors_router,
    builds_router,
    callbacks_router,
]
# FastBuild's routes for its existing clients: outside /api/v1, in its {code, message, data} shape.
ROOT_ROUTERS: list[APIRouter] = [metrics_router, fastbuild_router]
