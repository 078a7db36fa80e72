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
├── NotAcceptable        406  an Accept header with nothing this server can answer in
├── RequestTooLarge      413
├── UnsupportedMediaType 415  a content type the verb does not accept
├── Invalid              422  validation failed; `causes` carry field paths
├── InternalError        500  a bug; logged, never a traceback to the client
└── Timeout              504  a resourceVersion the store did not reach in time

As the apiserver's constructors do, errors about an object (404, 405, 403, 409, 422) always carry
`details`, empty or not, and `details.group` is left out for the core group.
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
        """As the apiserver writes a cause: the message without the field, which has its own key (if any)."""
        cause = {"reason": self.reason, "message": self.message}
        if self.field:
            cause["field"] = self.field
        return cause


class ApiError(Exception):
    code = 500
    reason = "InternalError"
    #: Whether the Status always has `details` (upstream's NewNotFound, NewConflict, ... set it even empty).
    always_details = False

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
        """The `Status` object as the real apiserver writes it (in metav1.Status's field order)."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        details: dict[str, Any] = {}
        if self.name is not None:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind is not None:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [cause.to_dict() for cause in self.causes]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        if details or self.always_details:
            body["details"] = details
        body["code"] = self.code
        return body


class BadRequest(ApiError):
    code, reason = 400, "BadRequest"


class Unauthorized(ApiError):
    code, reason = 401, "Unauthorized"


class Forbidden(ApiError):
    code, reason, always_details = 403, "Forbidden", True


class NotFound(ApiError):
    code, reason, always_details = 404, "NotFound", True


class MethodNotAllowed(ApiError):
    code, reason, always_details = 405, "MethodNotAllowed", True


class NotAcceptable(ApiError):
    code, reason = 406, "NotAcceptable"


class AlreadyExists(ApiError):
    code, reason, always_details = 409, "AlreadyExists", True


class Conflict(ApiError):
    code, reason, always_details = 409, "Conflict", True


class Gone(ApiError):
    code, reason = 410, "Expired"


class RequestTooLarge(ApiError):
    code, reason = 413, "RequestEntityTooLarge"


class UnsupportedMediaType(ApiError):
    code, reason = 415, "UnsupportedMediaType"


class Invalid(ApiError):
    code, reason, always_details = 422, "Invalid", True


class InternalError(ApiError):
    code, reason = 500, "InternalError"


class Timeout(ApiError):
    code, reason = 504, "Timeout"


def not_found(resource: str, group: str, name: str) -> NotFound:
    """The apiserver's wording: `pods "web" not found`."""
    qualified = f"{resource}.{group}" if group else resource
    return NotFound(f'{qualified} "{name}" not found', kind=resource, name=name, group=group)


def invalid(kind: str, group: str, name: str, causes: list[Cause]) -> Invalid:
    """The apiserver's wording: `Deployment.apps "web" is invalid: spec.replicas: Invalid value: ...`."""
    qualified = f"{kind}.{group}" if group else kind
    listed = ", ".join(f"{cause.field}: {cause.message}" if cause.field else cause.message for cause in causes)
    return Invalid(f'{qualified} "{name}" is invalid: {listed}', kind=kind, name=name, group=group, causes=causes)
