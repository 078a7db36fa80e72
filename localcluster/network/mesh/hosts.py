"""Host names as Istio reads them: short names resolve in the namespace of the object that says them.

A VirtualService or DestinationRule in namespace `shop` that says `stock` means
`stock.shop.svc.cluster.local`; a name with a dot is taken as written (a fully qualified name, or a
name outside the cluster). `*` and `*.example.com` are wildcards, matched by suffix as Envoy matches
virtual host domains.
"""

from __future__ import annotations

from collections.abc import Iterable

from localcluster.network.services import CLUSTER_DOMAIN

SERVICE_SUFFIX = f".svc.{CLUSTER_DOMAIN}"


def qualify(host: str, namespace: str) -> str:
    """The fully qualified form of a host an object in `namespace` names (pilot's ResolveShortnameToFQDN)."""
    host = host.lower().rstrip(".")
    if host == "*" or "." in host:
        return host
    return f"{host}.{namespace}{SERVICE_SUFFIX}"


def service_fqdn(namespace: str, name: str) -> str:
    return f"{name}.{namespace}{SERVICE_SUFFIX}"


def service_of_fqdn(host: str) -> tuple[str, str] | None:
    """(namespace, name) of a Service's fully qualified name, or None for any other host."""
    if not host.endswith(SERVICE_SUFFIX):
        return None
    parts = host[: -len(SERVICE_SUFFIX)].split(".")
    return (parts[1], parts[0]) if len(parts) == 2 else None


def host_matches(pattern: str, host: str) -> bool:
    """Envoy's domain match: exact, `*` for any host, `*.suffix` for any host ending so."""
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return host.endswith(pattern[1:])
    return pattern == host


def most_specific(patterns: Iterable[str], host: str) -> str | None:
    """The pattern Envoy would pick for `host`: an exact name before the longest matching wildcard."""
    best: str | None = None
    for pattern in patterns:
        if not host_matches(pattern, host):
            continue
        if pattern == host:
            return pattern
        if best is None or len(pattern) > len(best):
            best = pattern
    return best
