"""Request and response helpers of the HTTP layer: bodies, content negotiation, Status answers."""

from __future__ import annotations

import json
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import Response

from localcluster.api import protobuf
from localcluster.api.errors import ApiError, BadRequest, NotAcceptable, RequestTooLarge, UnsupportedMediaType

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
TABLE_CONTENT_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"
DISCOVERY_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


def json_response(
    body: Any, status_code: int = 200, *, media_type: str = JSON, headers: dict | None = None
) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        status_code=status_code,
        media_type=media_type,
        headers=headers,
    )


def status_response(error: ApiError) -> Response:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return json_response(error.status(), error.code, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("invalid Content-Length header")
        if int(declared) > limit:
            raise RequestTooLarge(f"the request body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def decode_object(body: bytes, content_type: str) -> Any:
    """A JSON, YAML or Kubernetes protobuf request body (what kubectl and the clients send) as a Python value."""
    if not body.strip():
        raise BadRequest("the request body is empty: an object was expected")
    if content_type in ("", JSON, "*/*"):
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if content_type in (YAML, "application/x-yaml", "text/yaml"):
        return decode_yaml(body)
    if content_type == PROTOBUF:
        try:
            return protobuf.decode_object(body)
        except protobuf.UnsupportedKind as exc:
            raise UnsupportedMediaType(str(exc)) from None
        except protobuf.ProtobufError as exc:
            raise BadRequest(f"the protobuf body could not be decoded: {exc}") from None
    raise UnsupportedMediaType(
        f"the body of the request was in an unknown format - accepted media types include: {JSON}, {YAML}, "
        f"{PROTOBUF} (got {content_type!r})"
    )


def decode_yaml(body: bytes) -> Any:
    try:
        return yaml.load(body, Loader=yaml.CSafeLoader)
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise BadRequest(f"the request body is not valid YAML: {str(exc).splitlines()[0]}") from None


#: What `as=` of meta.k8s.io an Accept clause may ask an object or list to be converted to.
CONVERSIONS = ("Table", "PartialObjectMetadata", "PartialObjectMetadataList")
_SERVED_MEDIA_TYPES = (JSON, YAML, PROTOBUF)


def representation(request: Request) -> str:
    """What the Accept header asks for: "" (the object itself) or one of CONVERSIONS.

    Clauses are taken by quality, then in order, as the apiserver's negotiation does; a clause this
    server cannot answer (an unknown `as=`, another group, a media type it does not serve) is passed
    over, and NotAcceptable (406) is raised when none is left. Protobuf clauses are answered in JSON:
    every client that asks for protobuf also accepts JSON, and reads the Content-Type.
    """
    accept = request.headers.get("accept", "") or "*/*"
    clauses = []
    for position, clause in enumerate(accept.split(",")):
        media_type, *parameters = (part.strip() for part in clause.split(";"))
        options = dict(p.replace(" ", "").partition("=")[::2] for p in parameters if "=" in p)
        try:
            quality = float(options.pop("q", "1"))
        except ValueError:
            continue
        if quality > 0:
            clauses.append((-quality, position, media_type.lower(), options))
    for _, _, media_type, options in sorted(clauses):
        if media_type not in (*_SERVED_MEDIA_TYPES, "*/*", "application/*"):
            continue
        converted = options.get("as")
        if converted is None:
            return ""
        if (
            converted in CONVERSIONS
            and options.get("g") == "meta.k8s.io"
            and options.get("v") in ("v1", "v1beta1")
            and (converted != "Table" or media_type != PROTOBUF)
        ):
            return converted
    raise NotAcceptable(f"only the following media types are accepted: {', '.join(_SERVED_MEDIA_TYPES)}")


def converted_content_type(kind: str) -> str:
    """The Content-Type of an answer converted to a meta.k8s.io kind, as the negotiated clause names it."""
    return f"application/json;as={kind};g=meta.k8s.io;v=v1"


def partial_object_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def wants_aggregated_discovery(request: Request) -> bool:
    return "as=APIGroupDiscoveryList" in request.headers.get("accept", "")


def flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1", "yes")


def integer(value: str | None, name: str, *, minimum: int = 0) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"invalid value for {name}: {value[:64]!r} is not an integer") from None
    if number < minimum:
        raise BadRequest(f"invalid value for {name}: must be at least {minimum}")
    return number
