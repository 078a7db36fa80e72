"""istiod's validating webhook (`validation.istio.io`), the rules of it a lab can hit.

A real cluster refuses, before storing them, mesh objects that the CRD schema lets through but
istiod cannot use (pkg/config/validation): a VirtualService without hosts, a rule with neither a
route nor a redirect, weights that add up to nothing, a regex RE2 cannot compile, a CUSTOM policy
without a provider. The refusal is the apiserver's for a denying webhook: 400 BadRequest,
`admission webhook "validation.istio.io" denied the request: configuration is invalid: <reasons>`,
with one `details.causes` entry per field path. Objects localcluster cannot apply faithfully
(consistent-hash load balancing) are refused here too, saying so.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from localcluster.api.errors import BadRequest, Cause
from localcluster.api.resources import ResourceType
from localcluster.network.mesh.authorization import compile_policy
from localcluster.network.mesh.destinationrules import UnsupportedTrafficPolicy, load_balancer_of
from localcluster.network.mesh.matching import InvalidMatch, compile_re2

WEBHOOK = "validation.istio.io"
_STRING_MATCH_FIELDS = ("uri", "method", "authority", "scheme")
_STRING_MATCH_MAPS = ("headers", "withoutHeaders", "queryParams")

Problem = tuple[str, str]  # (field path, reason)


def validate(resource_type: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """The validating admission step: BadRequest listing every problem, or nothing."""
    check = _CHECKS.get((resource_type.group, resource_type.kind))
    if check is None:
        return
    problems = list(check(obj.get("spec") or {}))
    if not problems:
        return
    reasons = [reason for _, reason in problems]
    summary = reasons[0] if len(reasons) == 1 else f"{len(reasons)} errors occurred: " + "; ".join(reasons)
    raise BadRequest(
        f'admission webhook "{WEBHOOK}" denied the request: configuration is invalid: {summary}',
        causes=[Cause(path, reason, "FieldValueInvalid") for path, reason in problems],
    )


def _virtual_service(spec: Mapping[str, Any]) -> Iterator[Problem]:
    hosts = spec.get("hosts") or []
    if not hosts:
        yield "spec.hosts", "virtual service must have at least one host"
    gateways = spec.get("gateways") or ["mesh"]
    if "*" in hosts and "mesh" in gateways:
        yield "spec.hosts", "wildcard host * is not allowed for virtual services bound to the mesh gateway"
    for index, rule in enumerate(spec.get("http") or []):
        yield from _http_route(f"spec.http[{index}]", rule)


def _http_route(path: str, rule: Mapping[str, Any]) -> Iterator[Problem]:
    has = {key: bool(rule.get(key)) for key in ("route", "redirect", "directResponse", "delegate", "fault", "rewrite")}
    if has["route"] and has["redirect"]:
        yield path, "HTTP route cannot contain both route and redirect"
    if has["route"] and has["directResponse"]:
        yield path, "HTTP route cannot contain both route and direct_response"
    if has["redirect"] and has["directResponse"]:
        yield path, "HTTP route rule cannot contain both redirect and direct_response"
    for other in ("fault", "rewrite"):
        for answer, name in (("redirect", "redirect"), ("directResponse", "direct_response")):
            if has[other] and has[answer]:
                yield path, f"HTTP route cannot contain both {other} and {name}"
    if not (has["route"] or has["redirect"] or has["directResponse"] or has["delegate"]):
        yield path, "HTTP route, redirect or direct_response is required"
    if rule.get("mirror") and rule.get("mirrors"):
        yield path, "HTTP route cannot contain both mirror and mirrors"
    for index, match in enumerate(rule.get("match") or []):
        yield from _match(f"{path}.match[{index}]", match)
    routes = rule.get("route") or []
    total = 0
    for index, destination in enumerate(routes):
        where = f"{path}.route[{index}]"
        weight = int(destination.get("weight") or 0)
        total += weight
        if not destination.get("destination"):
            yield where, "destination is required"
        elif not destination["destination"].get("host"):
            yield f"{where}.destination.host", "invalid destination host "
        if weight < 0:
            yield f"{where}.weight", f"weight {weight} < 0"
    if len(routes) > 1 and total == 0:
        yield f"{path}.route", "total destination weight = 0"
    yield from _fault(f"{path}.fault", rule.get("fault"))
    retries = rule.get("retries") or {}
    if int(retries.get("attempts") or 0) < 0:
        yield f"{path}.retries.attempts", "attempts cannot be negative"
    mirror_percentage = (rule.get("mirrorPercentage") or {}).get("value")
    if mirror_percentage is not None and not 0 <= float(mirror_percentage) <= 100:
        yield f"{path}.mirrorPercentage", f"mirror_percentage must have a max value of 100 (it has {mirror_percentage})"
    regex_rewrite = (rule.get("rewrite") or {}).get("uriRegexRewrite")
    if regex_rewrite:
        yield from _regex(f"{path}.rewrite.uriRegexRewrite.match", regex_rewrite.get("match", ""))


def _match(path: str, match: Mapping[str, Any]) -> Iterator[Problem]:
    for name in _STRING_MATCH_FIELDS:
        if isinstance(match.get(name), Mapping) and "regex" in match[name]:
            yield from _regex(f"{path}.{name}.regex", match[name]["regex"])
    for name in _STRING_MATCH_MAPS:
        for key, value in (match.get(name) or {}).items():
            if value is None:
                yield f"{path}.{name}[{key}]", f"header match {key} cannot be null"
            elif "regex" in value and value["regex"] != "*":
                yield from _regex(f"{path}.{name}[{key}].regex", value["regex"])


def _regex(path: str, pattern: str) -> Iterator[Problem]:
    if pattern == "":
        yield path, f"{path!r}: regex string match should not be empty"
        return
    if len(pattern) > 1024:
        yield path, f"{path!r}: regex is too large, max length allowed is 1024"
        return
    try:
        compile_re2(pattern)
    except InvalidMatch as exc:
        yield (
            path,
            f"{path!r}: {exc}; Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)",
        )


def _fault(path: str, fault: Mapping[str, Any] | None) -> Iterator[Problem]:
    if fault is None:
        return
    if not fault.get("abort") and not fault.get("delay"):
        yield path, "HTTP fault injection must have an abort and/or a delay"
    abort = fault.get("abort") or {}
    status = abort.get("httpStatus")
    if status is not None and not 200 <= int(status) <= 599:
        yield f"{path}.abort.httpStatus", f"HTTP status {status} is not in range 200-599"
    if abort.get("http2Error"):
        yield f"{path}.abort.http2Error", "HTTP/2 abort fault injection not supported yet"
    if (fault.get("delay") or {}).get("exponentialDelay"):
        yield f"{path}.delay.exponentialDelay", "exponentialDelay not supported yet"
    for part in ("abort", "delay"):
        value = ((fault.get(part) or {}).get("percentage") or {}).get("value")
        if value is not None and not 0 <= float(value) <= 100:
            yield f"{path}.{part}.percentage", f"percentage {value} is not in range 0..100"


def _destination_rule(spec: Mapping[str, Any]) -> Iterator[Problem]:
    if not spec.get("host"):
        yield "spec.host", "invalid destination host "
    seen: set[str] = set()
    policies = [("spec.trafficPolicy", spec.get("trafficPolicy"))]
    for index, subset in enumerate(spec.get("subsets") or []):
        name = subset.get("name") or ""
        if not name:
            yield f"spec.subsets[{index}].name", "subset name cannot be empty"
        elif name in seen:
            yield f"spec.subsets[{index}].name", f"duplicate subset names: {name}"
        seen.add(name)
        policies.append((f"spec.subsets[{index}].trafficPolicy", subset.get("trafficPolicy")))
    for path, policy in policies:
        try:
            load_balancer_of(policy)
        except UnsupportedTrafficPolicy as exc:
            yield f"{path}.loadBalancer", f"localcluster cannot apply this: {exc}"


def _gateway(spec: Mapping[str, Any]) -> Iterator[Problem]:
    servers = spec.get("servers") or []
    if not servers:
        yield "spec.servers", "gateway must have at least one server"
    for index, server in enumerate(servers):
        if not server.get("hosts"):
            yield f"spec.servers[{index}].hosts", "server config must contain at least one host"


def _authorization_policy(spec: Mapping[str, Any]) -> Iterator[Problem]:
    action = spec.get("action") or "ALLOW"
    if action == "CUSTOM" and not (spec.get("provider") or {}).get("name"):
        yield "spec.provider.name", "`provider.name` must not be empty"
    if action != "CUSTOM" and spec.get("provider"):
        yield "spec.provider", f"`provider` must not be with non CUSTOM action, found {action}"
    for index, rule in enumerate(spec.get("rules") or []):
        for position, condition in enumerate(rule.get("when") or []):
            if not condition.get("values") and not condition.get("notValues"):
                key = condition.get("key", "")
                yield (
                    f"spec.rules[{index}].when[{position}]",
                    f"at least one of `values` or `notValues` must be set for key {key}",
                )
    compiled = compile_policy({"metadata": {"namespace": "", "name": ""}, "spec": spec})
    for skipped in compiled.skipped:
        yield f"spec.{skipped.split(':', 1)[0]}", skipped.split(": ", 1)[1]


_CHECKS = {
    ("networking.istio.io", "VirtualService"): _virtual_service,
    ("networking.istio.io", "DestinationRule"): _destination_rule,
    ("networking.istio.io", "Gateway"): _gateway,
    ("security.istio.io", "AuthorizationPolicy"): _authorization_policy,
}
