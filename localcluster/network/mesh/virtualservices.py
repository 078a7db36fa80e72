"""VirtualServices compiled into ordered HTTP routes, as pilot builds Envoy's route configuration.

One `CompiledVirtualService` per object change: every match's strings and regexes are compiled then,
so a request only walks the routes of the one VirtualService its host selects (the index in
`config.py`) and evaluates prepared predicates, first match wins. What pilot decides per proxy when
it generates configuration (the VirtualService's `gateways`, a match's `gateways`, `sourceLabels`
and `sourceNamespace`) is decided here per request against the `Workload` applying the routes: the
calling pod's sidecar, or the ingress gateway.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from localcluster.network.mesh.hosts import qualify
from localcluster.network.mesh.matching import PRESENT, StringMatcher, string_match

#: The reserved gateway name meaning "every sidecar in the mesh".
MESH_GATEWAY = "mesh"
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Workload:
    """The proxy applying routes: a sidecar (gateways {"mesh"}) or a gateway (its Gateways' names)."""

    namespace: str
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    gateways: frozenset[str] = frozenset({MESH_GATEWAY})

    @property
    def is_sidecar(self) -> bool:
        return MESH_GATEWAY in self.gateways


@dataclass(frozen=True)
class RequestFacts:
    """What route matching reads from one request, parsed once per request."""

    method: str
    #: Path with query, as sent.
    path: str
    authority: str
    port: int
    #: Lower-case header names; repeated headers joined with "," as Envoy's matchers see them.
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    scheme: str = "http"
    path_only: str = field(init=False)
    query: Mapping[str, str] = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.path)
        object.__setattr__(self, "path_only", parts.path or "/")
        query: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            query.setdefault(name, value)  # Envoy matches a parameter's first value
        object.__setattr__(self, "query", query)

    @classmethod
    def of(cls, method: str, path: str, authority: str, port: int, headers: Iterable[tuple[str, str]]) -> RequestFacts:
        joined: dict[str, str] = {}
        for name, value in headers:
            name = name.lower()
            joined[name] = f"{joined[name]},{value}" if name in joined else value
        return cls(method=method, path=path, authority=authority, port=port, headers=joined)


@dataclass(frozen=True)
class HeaderCondition:
    """One `headers` (or, inverted, `withoutHeaders`) entry of a match."""

    name: str
    matcher: StringMatcher
    invert: bool = False

    def __call__(self, headers: Mapping[str, str]) -> bool:
        value = headers.get(self.name)
        if self.invert and value is None and self.matcher is not PRESENT:
            value = ""  # Envoy's treat_missing_header_as_empty, set by pilot for withoutHeaders
        return self.matcher(value) != self.invert


@dataclass(frozen=True)
class RequestMatch:
    """One HTTPMatchRequest: all its conditions must hold (the `match` list ORs them)."""

    name: str = ""
    uri: StringMatcher | None = None
    ignore_uri_case: bool = False
    method: StringMatcher | None = None
    authority: StringMatcher | None = None
    scheme: StringMatcher | None = None
    headers: tuple[HeaderCondition, ...] = ()
    query: tuple[tuple[str, StringMatcher], ...] = ()
    port: int | None = None
    source_labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    source_namespace: str = ""
    gateways: frozenset[str] = frozenset()

    def applies_to(self, workload: Workload) -> bool:
        """pilot's sourceMatchHTTP: a match naming gateways ignores sourceLabels; else labels and namespace."""
        if self.gateways:
            return bool(self.gateways & workload.gateways)
        if any(workload.labels.get(key) != value for key, value in self.source_labels.items()):
            return False
        return not self.source_namespace or self.source_namespace == workload.namespace

    def __call__(self, facts: RequestFacts) -> bool:
        if self.port is not None and self.port != facts.port:
            return False
        if self.uri is not None and not self._uri_matches(facts):
            return False
        if self.method is not None and not self.method(facts.method):
            return False
        if self.authority is not None and not self.authority(facts.authority):
            return False
        if self.scheme is not None and not self.scheme(facts.scheme):
            return False
        if not all(condition(facts.headers) for condition in self.headers):
            return False
        return all(matcher(facts.query.get(name)) for name, matcher in self.query)

    def _uri_matches(self, facts: RequestFacts) -> bool:
        assert self.uri is not None
        # Envoy: exact and regex paths are matched without the query string, a prefix against :path.
        path = facts.path if self.uri.kind == "prefix" else facts.path_only
        if self.ignore_uri_case and self.uri.kind != "regex":
            path = path.lower()
        return self.uri(path)


@dataclass(frozen=True)
class RouteDestination:
    """One `route[]` entry: a Service (fully qualified), an optional subset and port, a weight."""

    host: str
    subset: str = ""
    port: int | None = None
    weight: int = 0
    #: `headers` of this destination as written (request/response set, add, remove).
    headers: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True)
class HttpRoute:
    """One `http[]` rule: its matches (none: catch-all), destinations, and the rule as written."""

    virtual_service: str
    index: int
    name: str
    matches: tuple[RequestMatch, ...]
    destinations: tuple[RouteDestination, ...]
    #: The HTTPRoute as written: policies.py reads timeout, retries, fault, rewrite, headers.
    spec: Mapping[str, Any]
    #: Where a copy of each request goes (`mirror`, or the first of `mirrors`), for `mirror_percent` %.
    mirror: RouteDestination | None = None
    mirror_percent: float = 0.0
    #: The weighted destinations (pilot drops weight 0 when there are several), cumulative weights.
    _weighted: tuple[tuple[int, RouteDestination], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        weighted: tuple[tuple[int, RouteDestination], ...]
        if len(self.destinations) == 1:
            weighted = ((1, self.destinations[0]),)
        else:
            total = 0
            cumulative = []
            for destination in self.destinations:
                if destination.weight > 0:
                    total += destination.weight
                    cumulative.append((total, destination))
            weighted = tuple(cumulative)
        object.__setattr__(self, "_weighted", weighted)

    @property
    def label(self) -> str:
        return f"{self.virtual_service} http[{self.index}]" + (f" ({self.name})" if self.name else "")

    def pick(self, rng: random.Random | None = None) -> RouteDestination | None:
        """A destination drawn by relative weight, as Envoy's weighted clusters draw (None: no route)."""
        if not self._weighted:
            return None
        total = self._weighted[-1][0]
        draw = (rng or random).randrange(total)
        return next(destination for bound, destination in self._weighted if draw < bound)


@dataclass(frozen=True)
class CompiledVirtualService:
    """A VirtualService ready to route: hosts qualified, gateways resolved, rules compiled."""

    namespace: str
    name: str
    created: str
    hosts: tuple[str, ...]
    gateways: frozenset[str]
    export_to: frozenset[str]
    http: tuple[HttpRoute, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def visible_from(self, namespace: str) -> bool:
        """exportTo: `*` (the default) everywhere, `.` its own namespace, or the namespaces listed."""
        return "*" in self.export_to or namespace in self.export_to

    def bound_to(self, workload: Workload) -> bool:
        return bool(self.gateways & workload.gateways)

    def route(self, facts: RequestFacts, workload: Workload) -> tuple[HttpRoute, RequestMatch | None] | None:
        """The first rule whose match holds, in order, with that match (None for a catch-all rule);
        None when no rule matches (Envoy's 404, route not found)."""
        return first_route(self.http, facts, workload)


def first_route(
    rules: Iterable[HttpRoute], facts: RequestFacts, workload: Workload
) -> tuple[HttpRoute, RequestMatch | None] | None:
    """The first of `rules` that selects the request, and the match that did (None: catch-all)."""
    for rule in rules:
        if not rule.matches:
            return rule, None
        for match in rule.matches:
            if match.applies_to(workload) and match(facts):
                return rule, match
    return None


def gateway_name(name: str, namespace: str) -> str:
    """A gateway reference as pilot resolves it: `mesh`, `ns/name`, or `name` in the referrer's namespace."""
    if name == MESH_GATEWAY or "/" in name:
        return name
    return f"{namespace}/{name}"


def compile_virtual_service(obj: Mapping[str, Any]) -> CompiledVirtualService:
    """Compile a stored VirtualService (InvalidMatch if a pattern cannot compile)."""
    metadata = obj["metadata"]
    namespace = metadata["namespace"]
    spec = obj.get("spec") or {}
    gateways = frozenset(gateway_name(g, namespace) for g in spec.get("gateways") or [MESH_GATEWAY])
    export_to = frozenset(namespace if e == "." else e for e in spec.get("exportTo") or ["*"])
    rules = []
    for index, rule in enumerate(spec.get("http") or []):
        rules.append(_compile_http_route(f"{namespace}/{metadata['name']}", index, rule, namespace))
        if not rule.get("match"):
            break  # pilot stops at a catch-all: later rules can never be reached
    return CompiledVirtualService(
        namespace=namespace,
        name=metadata["name"],
        created=metadata.get("creationTimestamp", ""),
        hosts=tuple(qualify(host, namespace) for host in spec.get("hosts") or []),
        gateways=gateways,
        export_to=export_to,
        http=tuple(rules),
    )


def _compile_http_route(owner: str, index: int, rule: Mapping[str, Any], namespace: str) -> HttpRoute:
    mirror, mirror_percent = _compile_mirror(rule, namespace)
    return HttpRoute(
        virtual_service=owner,
        index=index,
        name=rule.get("name") or "",
        matches=tuple(_compile_match(match, namespace) for match in rule.get("match") or []),
        destinations=tuple(
            RouteDestination(
                host=qualify(entry["destination"]["host"], namespace),
                subset=entry["destination"].get("subset") or "",
                port=(entry["destination"].get("port") or {}).get("number"),
                weight=int(entry.get("weight") or 0),
                headers=entry.get("headers") or _EMPTY,
            )
            for entry in rule.get("route") or []
            if entry.get("destination", {}).get("host")
        ),
        spec=rule,
        mirror=mirror,
        mirror_percent=mirror_percent,
    )


def _compile_mirror(rule: Mapping[str, Any], namespace: str) -> tuple[RouteDestination | None, float]:
    """pilot's MirrorPercent: `mirrorPercentage`, else the deprecated `mirrorPercent`, else 100 (0: none)."""
    target = rule.get("mirror")
    if target:
        if "mirrorPercentage" in rule:
            percent = float((rule["mirrorPercentage"] or {}).get("value") or 0.0)
        elif "mirrorPercent" in rule or "mirror_percent" in rule:
            percent = float(rule.get("mirrorPercent", rule.get("mirror_percent")) or 0)
        else:
            percent = 100.0
    elif rule.get("mirrors"):
        first = rule["mirrors"][0]
        target = first.get("destination")
        percent = float((first.get("percentage") or {}).get("value") or 0.0) if "percentage" in first else 100.0
    if not target or not target.get("host") or percent <= 0:
        return None, 0.0
    destination = RouteDestination(
        host=qualify(target["host"], namespace),
        subset=target.get("subset") or "",
        port=(target.get("port") or {}).get("number"),
    )
    return destination, percent


def _compile_match(match: Mapping[str, Any], namespace: str) -> RequestMatch:
    ignore_case = bool(match.get("ignoreUriCase"))
    headers = [HeaderCondition(name.lower(), string_match(spec)) for name, spec in (match.get("headers") or {}).items()]
    headers += [
        HeaderCondition(name.lower(), string_match(spec), invert=True)
        for name, spec in (match.get("withoutHeaders") or {}).items()
    ]
    headers.sort(key=lambda condition: condition.name)  # pilot sorts them; order never changes the outcome
    return RequestMatch(
        name=match.get("name") or "",
        uri=string_match(match["uri"], ignore_case=ignore_case) if "uri" in match else None,
        ignore_uri_case=ignore_case,
        method=string_match(match["method"]) if "method" in match else None,
        authority=string_match(match["authority"]) if "authority" in match else None,
        scheme=string_match(match["scheme"]) if "scheme" in match else None,
        headers=tuple(headers),
        query=tuple((name, string_match(spec)) for name, spec in (match.get("queryParams") or {}).items()),
        port=match.get("port") or None,
        source_labels=MappingProxyType(dict(match.get("sourceLabels") or {})),
        source_namespace=match.get("sourceNamespace") or "",
        gateways=frozenset(gateway_name(g, namespace) for g in match.get("gateways") or []),
    )
