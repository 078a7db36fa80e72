"""An HTTPRoute's timeout, retries, fault, rewrite, redirect and header edits as the proxy's `Policy`.

Each follows pilot's translation to Envoy (pilot/pkg/networking/core/route): no `timeout` means none
(Envoy's route timeout is disabled by Istio); no `retries` means Istio's default policy (2 retries on
connect-failure, refused-stream, unavailable, cancelled and retriable-status-codes, with no status
code configured, so a 503 answer is *not* retried); `attempts: 0` turns retries off; numbers in
`retryOn` are status codes; a fault percentage left out means 0 %, a mirror percentage left out
100 %; `rewrite.uri` replaces the part of the path the route's match matched.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from localcluster.api.validation._custom import go_duration_seconds
from localcluster.network.mesh.matching import compile_re2
from localcluster.network.mesh.virtualservices import RequestFacts, RequestMatch
from localcluster.network.routing import DirectResponse, Fault, HeaderOperations, Retries

#: Istio's default retry policy (pilot's retry.DefaultPolicy): no retriable status codes.
DEFAULT_RETRY_ON = frozenset(
    {"connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes"}
)
DEFAULT_RETRIES = Retries(attempts=2, retry_on=DEFAULT_RETRY_ON, retriable_status_codes=frozenset())
_AUTHORITY_HEADERS = (":authority", "host")


def seconds(duration: str | None) -> float | None:
    """A Go duration as seconds; None for absent or zero (Istio: no timeout)."""
    if not duration:
        return None
    value = go_duration_seconds(str(duration))
    return value if value else None


def retries_of(spec: Mapping[str, Any] | None) -> Retries | None:
    """pilot's retry.ConvertPolicy."""
    if spec is None:
        return DEFAULT_RETRIES
    attempts = int(spec.get("attempts") or 0)
    if attempts <= 0:
        return None
    retry_on = DEFAULT_RETRY_ON
    codes: frozenset[int] = frozenset()
    if spec.get("retryOn"):
        tokens = [token.strip() for token in str(spec["retryOn"]).split(",") if token.strip()]
        codes = frozenset(int(token) for token in tokens if token.isdigit())
        retry_on = frozenset(token for token in tokens if not token.isdigit())
        if codes:
            retry_on |= {"retriable-status-codes"}
    return Retries(
        attempts=attempts,
        per_try_timeout=seconds(spec.get("perTryTimeout")),
        retry_on=retry_on,
        retriable_status_codes=codes,
    )


def _percent(spec: Mapping[str, Any], legacy: str | None = None) -> float:
    if "percentage" in spec:
        return float((spec["percentage"] or {}).get("value") or 0.0)
    return float(spec.get(legacy) or 0) if legacy else 0.0


def fault_of(spec: Mapping[str, Any] | None) -> Fault | None:
    """pilot's TranslateFault: fixed delays and HTTP aborts (gRPC and HTTP/2 errors have no HTTP/1.1 form)."""
    if not spec:
        return None
    delay = spec.get("delay") or {}
    abort = spec.get("abort") or {}
    delay_seconds = seconds(delay.get("fixedDelay")) or 0.0
    abort_status = abort.get("httpStatus")
    if not delay_seconds and abort_status is None:
        return None
    return Fault(
        delay=delay_seconds,
        delay_percent=_percent(delay, "percent") if delay_seconds else 0.0,
        abort_status=int(abort_status) if abort_status is not None else None,
        abort_percent=_percent(abort) if abort_status is not None else 0.0,
    )


def headers_of(spec: Mapping[str, Any] | None) -> tuple[HeaderOperations, HeaderOperations, str | None]:
    """Request and response header operations, and the authority a request `set`/`add` of Host gives."""
    request = (spec or {}).get("request") or {}
    response = (spec or {}).get("response") or {}
    authority = _authority(request.get("set")) or _authority(request.get("add"))
    return _operations(request), _operations(response), authority


def _authority(values: Mapping[str, str] | None) -> str | None:
    return next((str(v) for k, v in (values or {}).items() if k.lower() in _AUTHORITY_HEADERS), None)


def _operations(spec: Mapping[str, Any]) -> HeaderOperations:
    def pairs(values: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
        return tuple(
            (name.lower(), str(value))
            for name, value in (values or {}).items()
            if not name.startswith(":") and name.lower() != "host"
        )

    return HeaderOperations(
        set=pairs(spec.get("set")),
        add=pairs(spec.get("add")),
        remove=tuple(
            name.lower() for name in spec.get("remove") or [] if not name.startswith(":") and name.lower() != "host"
        ),
    )


def rewritten_path(rewrite: Mapping[str, Any], facts: RequestFacts, match: RequestMatch | None) -> str | None:
    """Envoy's prefix_rewrite (the matched prefix, or the whole path, swapped) or regex_rewrite."""
    query = facts.path[len(facts.path_only) :]
    regex = rewrite.get("uriRegexRewrite")
    if regex:
        pattern = compile_re2(regex.get("match", ""))
        return pattern.sub(regex.get("rewrite", ""), facts.path_only) + query
    uri = rewrite.get("uri")
    if not uri:
        return None
    matched = match.uri if match is not None else None
    if matched is not None and matched.kind == "prefix":
        return uri + facts.path[len(matched.value) :]
    if matched is not None:
        return uri + query  # an exact (or regex) match: the whole path is the matched part
    return uri + facts.path[1:]  # no uri match: Envoy's implicit prefix "/"


def direct_of(rule: Mapping[str, Any], facts: RequestFacts, match: RequestMatch | None) -> DirectResponse | None:
    """An HTTPRedirect (Location built as Envoy builds it) or an HTTPDirectResponse."""
    answer = rule.get("directResponse")
    if answer:
        body = answer.get("body") or {}
        data = base64.b64decode(body["bytes"]) if "bytes" in body else str(body.get("string", "")).encode()
        headers = (("content-type", "text/plain"),) if data else ()
        return DirectResponse(int(answer.get("status") or 200), data, headers)
    redirect = rule.get("redirect")
    if not redirect:
        return None
    scheme = redirect.get("scheme") or facts.scheme
    host = redirect.get("authority") or facts.authority.split(":")[0]
    port = redirect.get("port")
    if port is None and redirect.get("derivePort") == "FROM_REQUEST_PORT":
        port = facts.port
    authority = host if port in (None, 80 if scheme == "http" else 443) else f"{host}:{port}"
    path = facts.path
    if redirect.get("uri"):
        path = redirect["uri"]
    elif redirect.get("prefixRewrite") and match is not None and match.uri is not None:
        path = redirect["prefixRewrite"] + facts.path[len(match.uri.value) :]
    code = int(redirect.get("redirectCode") or 301)
    return DirectResponse(code, b"", (("location", f"{scheme}://{authority}{path}"),))
