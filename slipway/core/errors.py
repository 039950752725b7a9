"""The one error tree. Every refusal and failure in slipway is one of these.

    SlipwayError(code, message, details)   500  base; raised bare only as `internal`
    ├── InputError                         422  a request or argument is malformed
    ├── AuthError                          401  missing, wrong or expired credentials
    │   └── PermissionDeniedError          403  the caller's role does not allow it
    ├── NotFoundError                      404  the named thing does not exist
    ├── ConflictError                      409  the name is taken, or the thing is in use
    │   └── InvalidStateError              409  not allowed in the current state
    ├── RateLimitedError                   429  too many attempts; has `retry_after`
    ├── ExternalServiceError               502  a service slipway uses answered badly
    │   └── RemoteCommandError             502  a command on a target failed; has `result`
    ├── UnavailableError                   503  a service slipway needs does not answer
    └── OperationError                     ---  raised in a job: its operation ends `failed`

Each error renders as `{"error": {"code", "message", "details", "request_id"}}`; the message
says what went wrong and what to do, and never holds a secret.
"""

from __future__ import annotations

from typing import Any


class SlipwayError(Exception):
    """Base of every slipway error; `code` is a stable snake_case string clients can match on."""

    status_code = 500
    default_code = "internal"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InputError(SlipwayError):
    """A request or argument is malformed or out of range."""

    status_code = 422
    default_code = "invalid_input"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        details: Any = None,
    ) -> None:
        if details is None and field is not None:
            details = {"field": field}
        super().__init__(message, code=code, details=details)


class TooLargeError(InputError):
    """An upload or body is over its size limit."""

    status_code = 413
    default_code = "too_large"


class AuthError(SlipwayError):
    """Missing, wrong or expired credentials."""

    status_code = 401
    default_code = "unauthenticated"


class PermissionDeniedError(AuthError):
    """The caller is known but its role does not allow the action."""

    status_code = 403
    default_code = "forbidden"


class NotFoundError(SlipwayError):
    """The named thing does not exist."""

    status_code = 404
    default_code = "not_found"


class ConflictError(SlipwayError):
    """The name is taken, or the thing is in use."""

    status_code = 409
    default_code = "conflict"


class InvalidStateError(ConflictError):
    """The action is not allowed in the thing's current state; details name the allowed actions."""

    default_code = "invalid_state"


class RateLimitedError(SlipwayError):
    """Too many attempts; retry after `retry_after` seconds."""

    status_code = 429
    default_code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, details: Any = None) -> None:
        super().__init__(message, details=details or {"retry_after": retry_after})
        self.retry_after = retry_after


class ExternalServiceError(SlipwayError):
    """A service slipway depends on (engine, registry, host, callback target) answered badly."""

    status_code = 502
    default_code = "external_service_error"


class RemoteCommandError(ExternalServiceError):
    """A command on a target exited non-zero; `result` is its CommandResult."""

    default_code = "remote_command_failed"

    def __init__(self, message: str, *, result: Any = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.result = result


class UnavailableError(SlipwayError):
    """A service slipway needs (database, Redis, workers) does not answer."""

    status_code = 503
    default_code = "unavailable"


class OperationError(SlipwayError):
    """Raised inside a job: ends the operation `failed` with this code and message, and with
    `result` as the operation's result when given."""

    default_code = "operation_failed"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.result = result
