"""The registry of operation kinds: what each runs, on which queue, and how it may be retried."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slipway.core.config import Settings
from slipway.core.errors import InputError

if TYPE_CHECKING:
    from slipway.jobs.context import OperationContext

Handler = Callable[["OperationContext"], "dict[str, Any] | None"]

# Modules whose import registers slipway's own kinds; settings.plugins adds more.
BUILTIN_KIND_MODULES = (
    "slipway.system.jobs",
    "slipway.apps.jobs",
    "slipway.releases.jobs",
    "slipway.builds.jobs",
)


@dataclass(frozen=True)
class KindSpec:
    name: str
    handler: Handler
    queue: str = "default"
    timeout: int = 3600
    max_attempts: int = 1
    retry_backoff: float = 10.0
    # A resumable kind records finished steps and is re-queued, not failed, when its worker stops.
    is_resumable: bool = False
    # May be started with POST /api/v1/operations {"kind": ...}; others have their own routes.
    is_public: bool = False


_KINDS: dict[str, KindSpec] = {}


def operation_kind(
    name: str,
    *,
    queue: str = "default",
    timeout: int = 3600,
    max_attempts: int = 1,
    retry_backoff: float = 10.0,
    is_resumable: bool = False,
    is_public: bool = False,
) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of operations of kind `name`."""

    def register(handler: Handler) -> Handler:
        _KINDS[name] = KindSpec(
            name=name,
            handler=handler,
            queue=queue,
            timeout=timeout,
            max_attempts=max_attempts,
            retry_backoff=retry_backoff,
            is_resumable=is_resumable,
            is_public=is_public,
        )
        return handler

    return register


def load_kinds(settings: Settings) -> None:
    for module in (*BUILTIN_KIND_MODULES, *settings.plugins):
        importlib.import_module(module)


def get_kind(name: str) -> KindSpec:
    try:
        return _KINDS[name]
    except KeyError:
        raise InputError(
            f"unknown operation kind {name!r}; known kinds: {', '.join(sorted(_KINDS))}",
            field="kind",
            code="unknown_kind",
        ) from None


def all_kinds() -> list[KindSpec]:
    return sorted(_KINDS.values(), key=lambda spec: spec.name)
