"""The API server's ASGI application: routing, access control (`access`), and one handler per verb.

Every answer that is not a success is a `Status` object; a bug becomes a 500 `Status` naming the
server log, where its traceback goes (never to the client), and the connection stays open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from localcluster.api import discovery, tables
from localcluster.api import patch as patching
from localcluster.api.access import AccessControl, AccessMiddleware
from localcluster.api.cluster import APPLY_PATCH, Cluster, ListPage, WriteOptions
from localcluster.api.errors import (
    ApiError,
    BadRequest,
    Cause,
    InternalError,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    Timeout,
    UnsupportedMediaType,
    invalid,
)
from localcluster.api.http import (
    DISCOVERY_CONTENT_TYPE,
    PATCH_TYPES,
    TABLE_CONTENT_TYPE,
    converted_content_type,
    decode_object,
    flag,
    integer,
    json_response,
    media_type,
    partial_object_metadata,
    read_body,
    representation,
    status_response,
    wants_aggregated_discovery,
)
from localcluster.api.resources import ResourceType
from localcluster.api.selectors import parse_field_selector, parse_label_selector
from localcluster.store import WatchEvent

log = logging.getLogger("localcluster.api")

#: How long a request for a resourceVersion the store has not reached waits for it (upstream's blockTimeout).
_FRESHNESS_WAIT_SECONDS = 3.0
KUBERNETES_VERSION = {"major": "1", "minor": "37", "gitVersion": "v1.37.0-localcluster"}


@dataclass(frozen=True)
class ApiConfig:
    server_address: str
    max_body_bytes: int
    home: str
    #: Where the server's log (and so the traceback of any 500) is written.
    log_path: str = ""
    bookmark_interval: float = 10.0


LogReader = Callable[[dict[str, Any], dict[str, str]], Awaitable[Response]]


@dataclass
class Target:
    """What a resource URL addresses."""

    resource_type: ResourceType
    version: str
    namespace: str | None  # None: across all namespaces (or cluster-scoped)
    name: str | None
    subresource: str
    watch_path: bool = False
    #: What the Accept header asks the answer to be: "" (the object) or one of http.CONVERSIONS.
    representation: str = ""


class InternalErrorMiddleware:
    """A bug answers a 500 `Status` naming the log file, and the connection stays usable.

    Starlette's catch-all answers and then raises the error again, so uvicorn closes the connection
    and a client's next request on it (kubectl reuses connections) fails with EOF. Here the error is
    logged once and not raised again, unless the response had already started (a watch stream): then
    only closing the connection can tell the client the response is incomplete.
    """

    def __init__(self, app: ASGIApp, log_path: str) -> None:
        self.app = app
        where = f"the localcluster log ({log_path})" if log_path else "the localcluster log"
        self.message = f"an internal error occurred; the traceback is in {where}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            log.exception("unexpected error answering %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            await status_response(InternalError(self.message))(scope, receive, send)


def create_app(
    cluster: Cluster,
    config: ApiConfig,
    access: AccessControl,
    *,
    extra_routes: list[BaseRoute] | None = None,
    read_logs: LogReader | None = None,
) -> Starlette:
    """The ASGI app of the API server. `read_logs` serves pods/log once a kubelet runs pods."""
    handlers = ResourceHandlers(cluster, config, access, read_logs)
    registry = cluster.registry

    async def version(_: Request) -> Response:
        return json_response(
            {
                **KUBERNETES_VERSION,
                "gitCommit": "",
                "gitTreeState": "clean",
                "buildDate": "",
                "goVersion": "",
                "compiler": "cpython",
                "platform": "linux/amd64",
            }
        )

    async def healthy(_: Request) -> Response:
        return Response("ok", media_type="text/plain")

    async def info(_: Request) -> Response:
        return json_response({"home": config.home, "server": config.server_address})

    async def api(request: Request) -> Response:
        if wants_aggregated_discovery(request):
            return json_response(discovery.aggregated(registry, legacy=True), media_type=DISCOVERY_CONTENT_TYPE)
        return json_response(discovery.api_versions(config.server_address))

    async def apis(request: Request) -> Response:
        if wants_aggregated_discovery(request):
            return json_response(discovery.aggregated(registry, legacy=False), media_type=DISCOVERY_CONTENT_TYPE)
        return json_response(discovery.api_group_list(registry))

    routes: list[BaseRoute] = [
        Route("/version", version),
        Route("/healthz", healthy),
        Route("/livez", healthy),
        Route("/readyz", healthy),
        Route("/localcluster", info),
        Route("/api", api),
        Route("/apis", apis),
        *(extra_routes or []),
        Route("/api/{rest:path}", handlers.dispatch, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/apis/{rest:path}", handlers.dispatch, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            return status_response(MethodNotAllowed("the server does not allow this method on the requested resource"))
        return status_response(NotFound("the server could not find the requested resource"))

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.add_middleware(AccessMiddleware, authenticator=access.authenticator, authorizer=access.authorizer)
    app.add_middleware(InternalErrorMiddleware, log_path=config.log_path)  # outermost: catches access bugs too
    return app


class ResourceHandlers:
    def __init__(self, cluster: Cluster, config: ApiConfig, access: AccessControl, read_logs: LogReader | None) -> None:
        self.cluster = cluster
        self.config = config
        self.reviews = access.reviews
        self.read_logs = read_logs

    async def dispatch(self, request: Request) -> Response:
        try:
            return await self._dispatch(request)
        except ApiError as error:
            return status_response(error)
        except (RecursionError, UnicodeError) as exc:
            return status_response(BadRequest(f"the request could not be decoded: {type(exc).__name__}"))

    async def _dispatch(self, request: Request) -> Response:
        if request.url.path.startswith("/apis/"):
            target_or_doc = self._parse_apis(request.path_params["rest"])
        else:
            target_or_doc = self._parse_api(request.path_params["rest"])
        if isinstance(target_or_doc, dict):
            if request.method != "GET":
                raise MethodNotAllowed("the server does not allow this method on the requested resource")
            return json_response(target_or_doc)
        target = target_or_doc
        method = request.method
        # Negotiated before anything is written, as the apiserver does: a 406 changes nothing.
        target.representation = representation(request)
        if target.representation == "PartialObjectMetadataList" and target.name is not None:
            raise NotAcceptable("you requested PartialObjectMetadataList, but the requested object is not a list")
        if method != "GET" and target.resource_type.read_only:
            raise MethodNotAllowed(
                f"{target.resource_type.qualified()} can be read, not written: {target.resource_type.read_only}"
            )
        if self.reviews.handles(target.resource_type, target.subresource):
            return await self.review(request, target)
        if target.name is None:
            if target.subresource:
                raise NotFound("the server could not find the requested resource")
            if method == "GET":
                watching = target.watch_path or flag(request.query_params.get("watch"))
                return await (self.watch(request, target) if watching else self.list(request, target))
            if method == "POST":
                return await self.create(request, target)
            if method == "DELETE":
                return await self.delete_collection(request, target)
            raise MethodNotAllowed(f"{method} is not supported on a collection")
        if target.watch_path:
            return await self.watch(request, target)
        if target.subresource == "log":
            return await self.logs(request, target)
        if target.subresource == "scale":
            return await self.scale(request, target)
        if method == "GET":
            return self.get(request, target)
        if method == "PUT":
            return await self.replace(request, target)
        if method == "PATCH":
            return await self.patch(request, target)
        if method == "DELETE":
            if target.subresource:
                raise MethodNotAllowed(f"DELETE is not supported on {target.subresource}")
            return await self.delete(request, target)
        raise MethodNotAllowed(f"{method} is not supported here")

    # -- URL parsing ---------------------------------------------------------------------------

    def _parse_api(self, rest: str) -> Target | dict[str, Any]:
        parts = [p for p in rest.split("/") if p]
        if not parts or parts[0] != "v1":
            raise NotFound("the server could not find the requested resource")
        if len(parts) == 1:
            return discovery.resource_list(self.cluster.registry, "", "v1") or {}
        return self._target("", "v1", parts[1:])

    def _parse_apis(self, rest: str) -> Target | dict[str, Any]:
        parts = [p for p in rest.split("/") if p]
        registry = self.cluster.registry
        if len(parts) == 1:
            group = discovery.api_group(registry, parts[0])
            if group is None:
                raise NotFound("the server could not find the requested resource")
            return group
        if len(parts) == 2:
            listed = discovery.resource_list(registry, parts[0], parts[1])
            if listed is None:
                raise NotFound("the server could not find the requested resource")
            return listed
        if len(parts) < 3:
            raise NotFound("the server could not find the requested resource")
        return self._target(parts[0], parts[1], parts[2:])

    def _target(self, group: str, version: str, parts: list[str]) -> Target:
        registry = self.cluster.registry
        watch_path = parts[0] == "watch"
        if watch_path:
            parts = parts[1:]
        if not parts or len(parts) > 5 or any(p in (".", "..") or len(p) > 253 for p in parts):
            raise NotFound("the server could not find the requested resource")
        namespace: str | None = None
        if (
            parts[0] == "namespaces"
            and len(parts) >= 3
            and not (group == "" and len(parts) == 3 and parts[2] in ("status", "finalize"))
        ):
            namespace, parts = parts[1], parts[2:]
        plural, name, subresource = parts[0], None, ""
        if len(parts) >= 2:
            name = parts[1]
        if len(parts) == 3:
            subresource = parts[2]
        if len(parts) > 3:
            raise NotFound("the server could not find the requested resource")
        resource_type = registry.by_path(group, version, plural)
        if subresource == "finalize" and resource_type.kind == "Namespace":
            subresource = "status"  # finalize writes spec.finalizers; treated as a status-like write
        if subresource and subresource not in resource_type.subresources:
            raise NotFound(f"the server could not find the requested resource ({plural}/{subresource})")
        if resource_type.namespaced and name is not None and namespace is None:
            raise NotFound("the server could not find the requested resource")
        if not resource_type.namespaced and namespace is not None:
            raise NotFound("the server could not find the requested resource")
        return Target(resource_type, version, namespace, name, subresource, watch_path)

    # -- reads ---------------------------------------------------------------------------------

    def _render(
        self,
        request: Request,
        target: Target,
        obj: dict[str, Any],
        status_code: int = 200,
        warnings: list[str] | None = None,
    ) -> Response:
        served = self.cluster.served(target.resource_type, target.version, obj)
        if target.representation == "Table":
            table = tables.to_table(
                target.resource_type, [served], include_object=request.query_params.get("includeObject", "Metadata")
            )
            response = json_response(table, status_code, media_type=TABLE_CONTENT_TYPE)
        elif target.representation == "PartialObjectMetadata":
            response = json_response(
                partial_object_metadata(served), status_code, media_type=converted_content_type("PartialObjectMetadata")
            )
        else:
            response = json_response(served, status_code)
        for warning in warnings or []:
            # RFC 7234 warn-text is a quoted-string: client-go drops a warning whose quotes are not escaped.
            text = warning.replace("\\", "\\\\").replace('"', '\\"')
            response.headers.append("Warning", f'299 - "{text}"')
        return response

    def get(self, request: Request, target: Target) -> Response:
        obj = self.cluster.get(target.resource_type, target.namespace or "", target.name or "")
        return self._render(request, target, obj)

    async def list(self, request: Request, target: Target) -> Response:
        params = request.query_params
        requested = params.get("resourceVersion") or ""
        if requested not in ("", "0") and not params.get("continue"):
            if not requested.isdigit():
                raise BadRequest(f"invalid resourceVersion {requested[:32]!r}")
            await self._wait_for_version(int(requested))
        page = self.cluster.list(
            target.resource_type,
            target.namespace,
            parse_label_selector(params.get("labelSelector")),
            parse_field_selector(params.get("fieldSelector"), target.resource_type.key),
            limit=integer(params.get("limit"), "limit") or 0,
            continue_token=params.get("continue") or None,
        )
        metadata: dict[str, Any] = {"resourceVersion": str(page.resource_version)}
        if page.continue_token:
            metadata["continue"] = page.continue_token
            metadata["remainingItemCount"] = page.remaining
        if target.representation == "Table":
            objects = [self.cluster.served(target.resource_type, target.version, e.obj) for e in page.entries]
            table = tables.to_table(
                target.resource_type,
                objects,
                list_metadata=metadata,
                include_object=params.get("includeObject", "Metadata"),
            )
            return json_response(table, media_type=TABLE_CONTENT_TYPE)
        if target.representation == "PartialObjectMetadataList":
            partial = {
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": metadata,
                "items": [partial_object_metadata(e.obj) for e in page.entries],
            }
            return json_response(partial, media_type=converted_content_type("PartialObjectMetadataList"))
        if target.representation == "PartialObjectMetadata":
            raise NotAcceptable("you requested PartialObjectMetadata, but the requested object is a list")
        return Response(self._encode_list(target, page, metadata), media_type="application/json")

    def _encode_list(self, target: Target, page: ListPage, metadata: dict[str, Any]) -> bytes:
        """Join the stored encodings instead of re-encoding every object (LIST is the hot path)."""
        resource_type = target.resource_type
        if target.version == resource_type.storage_version:
            items = b",".join(entry.raw for entry in page.entries)
        else:
            items = b",".join(
                json.dumps(
                    self.cluster.served(resource_type, target.version, e.obj), separators=(",", ":"), ensure_ascii=False
                ).encode()
                for e in page.entries
            )
        head = json.dumps(
            {
                "kind": resource_type.list_kind,
                "apiVersion": resource_type.api_version(target.version),
                "metadata": metadata,
            },
            separators=(",", ":"),
        )
        return head[:-1].encode() + b',"items":[' + items + b"]}"

    # -- writes --------------------------------------------------------------------------------

    def _options(self, request: Request) -> WriteOptions:
        params = request.query_params
        dry_run = params.getlist("dryRun")
        if any(value != "All" for value in dry_run):
            raise BadRequest(f"invalid dryRun value {dry_run!r}: only All is supported")
        field_validation = params.get("fieldValidation") or "Strict"
        if field_validation not in ("Strict", "Warn", "Ignore"):
            raise BadRequest(f"invalid fieldValidation {field_validation!r}: Ignore, Warn or Strict")
        field_manager = params.get("fieldManager")
        if field_manager is not None and not (0 < len(field_manager) <= 128 and field_manager.isprintable()):
            raise BadRequest("fieldManager must be a printable string of at most 128 characters")
        return WriteOptions(bool(dry_run), field_manager, field_validation, flag(params.get("force")))

    async def _object_body(self, request: Request) -> dict[str, Any]:
        body = await read_body(request, self.config.max_body_bytes)
        decoded = decode_object(body, media_type(request))
        if not isinstance(decoded, dict):
            raise BadRequest("the body of the request must be an object")
        return decoded

    async def create(self, request: Request, target: Target) -> Response:
        if target.resource_type.namespaced and target.namespace is None:
            raise MethodNotAllowed("create needs a namespace in the URL for a namespaced resource")
        body = await self._object_body(request)
        written = self.cluster.create(
            target.resource_type,
            target.version,
            target.namespace or "",
            body,
            self._options(request),
            user_agent=request.headers.get("user-agent"),
        )
        return self._render(request, target, written.obj, 201, written.warnings)

    async def replace(self, request: Request, target: Target) -> Response:
        body = await self._object_body(request)
        written = self.cluster.replace(
            target.resource_type,
            target.version,
            target.namespace or "",
            target.name or "",
            body,
            self._options(request),
            subresource=target.subresource,
            user_agent=request.headers.get("user-agent"),
        )
        return self._render(request, target, written.obj, 200, written.warnings)

    async def patch(self, request: Request, target: Target) -> Response:
        patch_type = media_type(request)
        if patch_type not in PATCH_TYPES:
            raise UnsupportedMediaType(
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{', '.join(PATCH_TYPES)}"
            )
        options = self._options(request)
        if options.force and patch_type != APPLY_PATCH:
            raise BadRequest("force is only allowed for apply patches (application/apply-patch+yaml)")
        body = await read_body(request, self.config.max_body_bytes)
        existed = (
            patch_type != APPLY_PATCH
            or self.cluster.find(target.resource_type, target.namespace or "", target.name or "") is not None
        )
        written = self.cluster.patch(
            target.resource_type,
            target.version,
            target.namespace or "",
            target.name or "",
            patch_type,
            body,
            options,
            subresource=target.subresource,
            user_agent=request.headers.get("user-agent"),
        )
        return self._render(request, target, written.obj, 200 if existed else 201, written.warnings)

    async def _delete_options(self, request: Request) -> tuple[dict[str, Any], bool | None]:
        """Cluster.delete's keyword arguments, and orphanDependents as asked (None: not asked)."""
        body = await read_body(request, self.config.max_body_bytes)
        options: dict[str, Any] = {}
        if body.strip():
            decoded = decode_object(body, media_type(request) or "application/json")
            if not isinstance(decoded, dict):
                raise BadRequest("the body of a delete must be a DeleteOptions object")
            options = decoded
        params = request.query_params
        propagation = params.get("propagationPolicy") or options.get("propagationPolicy")
        orphan = params.get("orphanDependents") or options.get("orphanDependents")
        orphan_dependents = None if orphan is None else flag(str(orphan))
        if propagation is None and orphan_dependents is not None:
            propagation = "Orphan" if orphan_dependents else "Background"
        grace = integer(params.get("gracePeriodSeconds"), "gracePeriodSeconds")
        if grace is None and options.get("gracePeriodSeconds") is not None:
            grace = integer(str(options["gracePeriodSeconds"]), "gracePeriodSeconds")
        preconditions = options.get("preconditions") or {}
        if not isinstance(preconditions, dict):
            raise BadRequest("preconditions must be an object")
        dry_run = params.getlist("dryRun") or options.get("dryRun") or []
        return {
            "propagation": propagation,
            "grace_period": grace,
            "preconditions": {k: str(v) for k, v in preconditions.items() if k in ("uid", "resourceVersion")},
            "dry_run": bool(dry_run),
        }, orphan_dependents

    async def delete(self, request: Request, target: Target) -> Response:
        """The object, or for kinds whose upstream registry says so, a Success Status once it is gone.

        Upstream answers 202 only when the object is not gone yet and orphanDependents=false was asked.
        """
        options, orphan_dependents = await self._delete_options(request)
        obj, gone = self.cluster.delete(target.resource_type, target.namespace or "", target.name or "", **options)
        code = 202 if not gone and orphan_dependents is False else 200
        resource_type = target.resource_type
        if not gone or resource_type.returns_deleted_object:
            return self._render(request, target, obj, code)
        details = {"name": obj["metadata"]["name"], "group": resource_type.group, "kind": resource_type.plural}
        details["uid"] = obj["metadata"].get("uid", "")
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
        if not resource_type.group:
            del details["group"]
        return json_response(status, code)

    async def delete_collection(self, request: Request, target: Target) -> Response:
        options, _ = await self._delete_options(request)
        params = request.query_params
        page = self.cluster.list(
            target.resource_type,
            target.namespace,
            parse_label_selector(params.get("labelSelector")),
            parse_field_selector(params.get("fieldSelector"), target.resource_type.key),
        )
        deleted = []
        for entry in page.entries:
            metadata = entry.obj["metadata"]
            obj, _gone = self.cluster.delete(
                target.resource_type, metadata.get("namespace", ""), metadata["name"], **options
            )
            deleted.append(self.cluster.served(target.resource_type, target.version, obj))
        resource_type = target.resource_type
        return json_response(
            {
                "kind": resource_type.list_kind,
                "apiVersion": resource_type.api_version(target.version),
                "metadata": {"resourceVersion": str(self.cluster.store.resource_version)},
                "items": deleted,
            }
        )

    async def review(self, request: Request, target: Target) -> Response:
        """POST of a kind that is answered, never stored: access reviews, TokenReview, TokenRequest."""
        if request.method != "POST" or target.watch_path or (target.name is not None and not target.subresource):
            raise MethodNotAllowed("the server does not allow this method on the requested resource")
        body = await self._object_body(request)
        answered = self.reviews.answer(
            target.resource_type, target.subresource, target.namespace or "", target.name or "", body
        )
        return json_response(answered, 201)

    # -- subresources --------------------------------------------------------------------------

    async def scale(self, request: Request, target: Target) -> Response:
        """autoscaling/v1 Scale over a workload's spec.replicas."""
        resource_type, namespace, name = target.resource_type, target.namespace or "", target.name or ""
        if request.method in ("PUT", "PATCH"):
            current = _scale_of(self.cluster.get(resource_type, namespace, name))
            if request.method == "PUT":
                body = await self._object_body(request)
            else:
                raw = await read_body(request, self.config.max_body_bytes)
                patch_type = media_type(request)
                if patch_type == APPLY_PATCH or patch_type not in PATCH_TYPES:
                    raise UnsupportedMediaType(f"patch type {patch_type!r} is not supported on scale")
                if patch_type == "application/strategic-merge-patch+json":
                    patch_type = "application/merge-patch+json"  # Scale has no lists: the two agree
                body = patching.apply_patch(
                    patch_type,
                    current,
                    raw,
                    index=self.cluster.schemas,
                    resource_type=resource_type,
                    version=resource_type.storage_version,
                )
            replicas = (body.get("spec") or {}).get("replicas") if isinstance(body, dict) else None
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise invalid(
                    "Scale",
                    "autoscaling",
                    name,
                    [Cause("spec.replicas", f"Invalid value: {replicas!r}: must be greater than or equal to 0")],
                )
            obj = self.cluster.get(resource_type, namespace, name)
            obj["spec"]["replicas"] = replicas
            self.cluster.replace(
                resource_type,
                resource_type.storage_version,
                namespace,
                name,
                obj,
                self._options(request),
                user_agent=request.headers.get("user-agent"),
            )
        elif request.method != "GET":
            raise MethodNotAllowed(f"{request.method} is not supported on scale")
        return json_response(_scale_of(self.cluster.get(resource_type, namespace, name)))

    async def logs(self, request: Request, target: Target) -> Response:
        if request.method != "GET":
            raise MethodNotAllowed("only GET is supported on pods/log")
        pod = self.cluster.get(target.resource_type, target.namespace or "", target.name or "")
        if self.read_logs is None:
            raise BadRequest(f'pod "{target.name}" has no logs: no kubelet runs pods in this server')
        return await self.read_logs(pod, dict(request.query_params))

    # -- watch ---------------------------------------------------------------------------------

    async def watch(self, request: Request, target: Target) -> Response:
        params = request.query_params
        resource_type = target.resource_type
        labels = parse_label_selector(params.get("labelSelector"))
        fields = parse_field_selector(params.get("fieldSelector"), resource_type.key)
        if target.name is not None:
            fields = parse_field_selector(
                ",".join(filter(None, [params.get("fieldSelector"), f"metadata.name={target.name}"])), resource_type.key
            )
        timeout = integer(params.get("timeoutSeconds"), "timeoutSeconds")
        bookmarks = flag(params.get("allowWatchBookmarks"))
        send_initial = flag(params.get("sendInitialEvents"))
        requested = params.get("resourceVersion") or ""
        if send_initial and not bookmarks:
            raise BadRequest("sendInitialEvents requires allowWatchBookmarks=true")
        since_text = requested if requested not in ("", "0") and not send_initial else ""
        if since_text and not since_text.isdigit():
            raise BadRequest(f"invalid resourceVersion {since_text[:32]!r}")
        if target.representation == "PartialObjectMetadataList":
            raise NotAcceptable("you requested PartialObjectMetadataList, but a watch sends objects, not lists")
        store = self.cluster.store
        initial: list[dict[str, Any]] = []
        if since_text:
            since = int(since_text)
            await self._wait_for_version(since)
        else:
            since = store.resource_version
            page = self.cluster.list(resource_type, target.namespace, labels, fields)
            initial = [e.obj for e in page.entries]
        subscription = self.cluster.watch(resource_type, target.namespace, since)
        table = target.representation == "Table"
        include_object = params.get("includeObject", "Metadata")

        def encode(event_type: str, obj: dict[str, Any]) -> bytes:
            served = self.cluster.served(resource_type, target.version, obj)
            if table and event_type != "BOOKMARK":
                served = tables.to_table(resource_type, [served], include_object=include_object)
            elif target.representation == "PartialObjectMetadata":
                served = partial_object_metadata(served)
            return (
                json.dumps({"type": event_type, "object": served}, separators=(",", ":"), ensure_ascii=False).encode()
                + b"\n"
            )

        def bookmark(resource_version: int, initial_end: bool = False) -> bytes:
            metadata: dict[str, Any] = {"resourceVersion": str(resource_version)}
            if initial_end:
                metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
            return encode(
                "BOOKMARK",
                {"kind": resource_type.kind, "apiVersion": resource_type.api_version(), "metadata": metadata},
            )

        def visible(entry_obj: dict[str, Any] | None) -> bool:
            return (
                entry_obj is not None
                and labels.matches(entry_obj["metadata"].get("labels"))
                and fields.matches(entry_obj)
            )

        def translate(event: WatchEvent) -> bytes | None:
            """An event as this watcher sees it: objects entering or leaving its selection."""
            now_visible = event.type != "DELETED" and visible(event.entry.obj)
            was_visible = event.previous is not None and visible(event.previous.obj)
            if event.type == "DELETED":
                return encode("DELETED", event.entry.obj) if was_visible else None
            if now_visible:
                return encode("MODIFIED" if was_visible else "ADDED", event.entry.obj)
            if was_visible:
                return encode("DELETED", event.entry.obj)
            return None

        async def stream() -> AsyncIterator[bytes]:
            deadline = time.monotonic() + timeout if timeout else None
            last_version = since
            try:
                for obj in initial:
                    yield encode("ADDED", obj)
                if send_initial:
                    yield bookmark(since, initial_end=True)
                next_bookmark = time.monotonic() + self.config.bookmark_interval
                while True:
                    now = time.monotonic()
                    wait = next_bookmark - now if bookmarks else None
                    if deadline is not None:
                        remaining = deadline - now
                        if remaining <= 0:
                            return
                        wait = remaining if wait is None else min(wait, remaining)
                    try:
                        event = await asyncio.wait_for(subscription.queue.get(), wait)
                    except TimeoutError:
                        if bookmarks and time.monotonic() >= next_bookmark:
                            next_bookmark = time.monotonic() + self.config.bookmark_interval
                            yield bookmark(max(last_version, store.resource_version))
                        continue
                    last_version = event.resource_version
                    line = translate(event)
                    if line is not None:
                        yield line
            finally:
                store.stop_watch(subscription)

        media = TABLE_CONTENT_TYPE if table else "application/json"
        if target.representation == "PartialObjectMetadata":
            media = converted_content_type("PartialObjectMetadata")
        return StreamingResponse(stream(), media_type=media)

    async def _wait_for_version(self, requested: int) -> None:
        """Wait a little for a resourceVersion the store has not reached, then refuse it, as the watch cache does.

        Upstream waits up to 3 s for the cache to catch up, then answers 504 "Too large resource version":
        a client must never be told it is watching from a point no event has reached.
        """
        store = self.cluster.store
        deadline = time.monotonic() + _FRESHNESS_WAIT_SECONDS
        delay = 0.01
        while store.resource_version < requested:
            if time.monotonic() >= deadline:
                raise Timeout(
                    f"Too large resource version: {requested}, current: {store.resource_version}",
                    causes=[Cause("", "Too large resource version", "ResourceVersionTooLarge")],
                    retry_after=1,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)


def _scale_of(workload: dict[str, Any]) -> dict[str, Any]:
    metadata = workload["metadata"]
    selector = (workload.get("spec") or {}).get("selector") or {}
    selector_text = ",".join(f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items()))
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: metadata[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in metadata
        },
        "spec": {"replicas": (workload.get("spec") or {}).get("replicas", 0)},
        "status": {"replicas": (workload.get("status") or {}).get("replicas", 0), "selector": selector_text},
    }
