"""A Route's host names and URLs (pkg/reconciler/route/domains), from config-domain and config-network."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from localcluster.knative._go import TemplateError, execute_template
from localcluster.knative.config import CLUSTER_DOMAIN, DomainConfig, NetworkConfig
from localcluster.knative.keys import VISIBILITY_CLUSTER_LOCAL, VISIBILITY_LABEL

DEFAULT_DOMAIN_TEMPLATE = NetworkConfig.domain_template
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


class DomainNameError(ValueError):
    """The templates produce no valid host name for this route (the Route's `ErrorConfig` reason)."""


def hostname(route_name: str, tag: str, network: NetworkConfig) -> str:
    """HostnameFromTemplate: the route's name, or the tag template's `<tag>-<name>` for a tag."""
    if not tag:
        return route_name
    try:
        return execute_template(network.tag_template, {"Name": route_name, "Tag": tag})
    except TemplateError as exc:
        raise DomainNameError(f"domain name error: error executing the TagTemplate: {exc}") from None


def domain_name(route_metadata: Mapping[str, Any], name: str, domains: DomainConfig, network: NetworkConfig) -> str:
    """DomainNameFromTemplate: `name.namespace.domain`, or config-network's domain-template."""
    labels = dict(route_metadata.get("labels") or {})
    cluster_local = labels.get(VISIBILITY_LABEL) == VISIBILITY_CLUSTER_LOCAL
    template = DEFAULT_DOMAIN_TEMPLATE if cluster_local else network.domain_template
    values = {
        "Name": name,
        "Namespace": route_metadata.get("namespace", ""),
        "Domain": domains.lookup(labels),
        "Annotations": dict(route_metadata.get("annotations") or {}),
        "Labels": labels,
    }
    try:
        host = execute_template(template, values)
    except TemplateError as exc:
        raise DomainNameError(f"domain name error: error executing the DomainTemplate: {exc}") from None
    parts = host.split(".")
    if len(host) > 253 or len(parts) < 2 or not all(_DNS_LABEL.fullmatch(p) and len(p) <= 63 for p in parts):
        raise DomainNameError(f'domain name error: invalid domain name "{host}"')
    return host


def is_cluster_local(host: str) -> bool:
    return host.endswith(CLUSTER_DOMAIN)
