"""The API's error tree: every failure leaves the server as a Kubernetes `Status` object.

ApiError                 any error with an HTTP code and a Status reason
├── BadRequest           400  malformed input (bad JSON, bad selector, bad patch)
├── Unauthorized         401  missing or wrong bearer token
├── Forbidden            403
├── NotFound             404  unknown path, resource or object
├── MethodNotAllowed     405  a verb the resource does not support
├── AlreadyExists        409  create of an existing name
├── Conflict             409  stale resourceVersion, field-manager conflicts
├── Gone                 410  watch/list from a compacted resourceVersion
├── RequestTooLarge      413
├── UnsupportedMediaType 415  a content type the verb does not accept
├── Invalid              422  validation failed; `causes` carry field paths
└── InternalError        500  a bug; logged, never a traceback to the client
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One `details.causes[]` entry: what is wrong and at which field path."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"

    def to_dict(self) -> dict[str, str]:
        """As the apiserver writes a cause: the message without the field, which has its own key."""
        return {"reason": self.reason, "message": self.message, "field": self.field}


class ApiError(Exception):
    code = 500
    reason = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        name: str | None = None,
        group: str | None = None,
        causes: list[Cause] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.name = name
        self.group = group
        self.causes = causes or []
        self.retry_after = retry_after

    def status(self) -> dict[str, Any]:
        """The `Status` object as the real apiserver writes it."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        details: dict[str, Any] = {}
        if self.name is not None:
            details["name"] = self.name
        if self.group is not None:
            details["group"] = self.group
        if self.kind is not None:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [cause.to_dict() for cause in self.causes]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        if details:
            body["details"] = details
        return body


class BadRequest(ApiError):
    code, reason = 400, "BadRequest"


class Unauthorized(ApiError):
    code, reason = 401, "Unauthorized"


class Forbidden(ApiError):
    code, reason = 403, "Forbidden"


class NotFound(ApiError):
    code, reason = 404, "NotFound"


class MethodNotAllowed(ApiError):
    code, reason = 405, "MethodNotAllowed"


class AlreadyExists(ApiError):
    code, reason = 409, "AlreadyExists"


class Conflict(ApiError):
    code, reason = 409, "Conflict"


class Gone(ApiError):
    code, reason = 410, "Expired"


class RequestTooLarge(ApiError):
    code, reason = 413, "RequestEntityTooLarge"


class UnsupportedMediaType(ApiError):
    code, reason = 415, "UnsupportedMediaType"


class Invalid(ApiError):
    code, reason = 422, "Invalid"


class InternalError(ApiError):
    code, reason = 500, "InternalError"


def not_found(resource: str, group: str, name: str) -> NotFound:
    """The apiserver's wording: `pods "web" not found`."""
    qualified = f"{resource}.{group}" if group else resource
    return NotFound(f'{qualified} "{name}" not found', kind=resource, name=name, group=group)


def invalid(kind: str, group: str, name: str, causes: list[Cause]) -> Invalid:
    """The apiserver's wording: `Deployment.apps "web" is invalid: spec.replicas: Invalid value: ...`."""
    qualified = f"{kind}.{group}" if group else kind
    listed = ", ".join(f"{cause.field}: {cause.message}" if cause.field else cause.message for cause in causes)
    return Invalid(f'{qualified} "{name}" is invalid: {listed}', kind=kind, name=name, group=group, causes=causes)
