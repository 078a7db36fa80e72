"""A container's environment, as the kubelet's `makeEnvironmentVariables` builds it.

Precedence, lowest first: the image's variables and localcluster's proxy settings, the service
links (`<SVC>_SERVICE_HOST` ...) and `KUBERNETES_SERVICE_*`, `envFrom`, then `env` with `$(VAR)`
expansion. Absolute paths under a volume's `mountPath` are rewritten to the volume's place in the
pod root (see `_volumes`), since a pod has no filesystem namespace of its own.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from localcluster.images import PROJECT_BIN
from localcluster.kubelet._podnet import HOST_IP, SHIM_DIR

#: The variables the workshop image's Dockerfile sets (ENV); HOME and HOSTNAME are per pod.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IMAGE_ENV = {"PATH": f"{PROJECT_BIN}:{SYSTEM_PATH}", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}

Lookup = Callable[[str, str, str], dict[str, Any] | None]
_REFERENCE = re.compile(r"\$\$|\$\(([^)]*)\)")


class ContainerConfigError(Exception):
    """The container cannot be configured yet (`CreateContainerConfigError`), e.g. a missing ConfigMap."""


@dataclass(frozen=True)
class HostEndpoints:
    """What pods reach on the host: the API server and, once the network runs, the service proxy.

    `service_rules` is the file of Service routes the pods' shim follows (`localcluster.network.kubeproxy`).
    """

    api_host: str
    api_port: int
    proxy_url: str | None = None
    service_rules: str | None = None

    @property
    def proxy_endpoint(self) -> str | None:
        if not self.proxy_url:
            return None
        return self.proxy_url.split("://", 1)[-1].split("/", 1)[0]

    def shim_exemptions(self) -> str:
        return " ".join(filter(None, [f"{self.api_host}:{self.api_port}", self.proxy_endpoint]))


def expand(text: str, variables: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined names are replaced, `$$` escapes, the rest stays."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return variables.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, text)


def field_value(pod: dict[str, Any], path: str, pod_ip: str) -> str:
    """A downward-API `fieldRef.fieldPath` of the pod."""
    metadata, spec = pod["metadata"], pod.get("spec") or {}
    simple = {
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", ""),
        "metadata.uid": metadata.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": HOST_IP,
        "status.hostIPs": HOST_IP,
    }
    if path in simple:
        return str(simple[path])
    subscript = re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path)
    if subscript:
        return str((metadata.get(subscript.group(1)) or {}).get(subscript.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = sorted((metadata.get(path.split(".")[1]) or {}).items())
        return "\n".join(f'{key}="{value}"' for key, value in items)
    raise ContainerConfigError(f"unsupported fieldPath {path!r} in a downward API reference")


def decoded(kind: str, obj: dict[str, Any], key: str) -> str | None:
    """A ConfigMap's or Secret's value for `key` as text (Secrets are base64 on the wire)."""
    if kind == "configmaps":
        if key in (obj.get("data") or {}):
            return str(obj["data"][key])
        binary = (obj.get("binaryData") or {}).get(key)
        return None if binary is None else _b64(binary, kind, obj)
    value = (obj.get("data") or {}).get(key)
    return None if value is None else _b64(value, kind, obj)


def keys_of(kind: str, obj: dict[str, Any]) -> list[str]:
    names = list(obj.get("data") or {})
    if kind == "configmaps":
        names += list(obj.get("binaryData") or {})
    return names


def _b64(value: str, kind: str, obj: dict[str, Any]) -> str:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        raise ContainerConfigError(f"{kind} {obj['metadata']['name']!r} holds a value that is not base64") from None


def _source(lookup: Lookup, kind: str, namespace: str, name: str, optional: bool) -> dict[str, Any] | None:
    obj = lookup(kind, namespace, name)
    if obj is None and not optional:
        raise ContainerConfigError(f'{kind.rstrip("s")} "{name}" not found')
    return obj


def service_links(services: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Docker-link style variables for each Service with a cluster IP, as upstream's `envvars` package."""
    env: dict[str, str] = {}
    for service in sorted(services, key=lambda s: s["metadata"]["name"]):
        if (service["metadata"].get("namespace"), service["metadata"]["name"]) == ("default", "kubernetes"):
            continue  # KUBERNETES_SERVICE_* name the API's real address (`kubernetes_service`)
        spec = service.get("spec") or {}
        ip, ports = spec.get("clusterIP"), spec.get("ports") or []
        if not ip or ip == "None" or not ports:
            continue
        prefix = service["metadata"]["name"].upper().replace("-", "_")
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0].get("port"))
        for port in ports:
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port.get("port"))
        env.update(_docker_link(prefix, ip, ports))
    return env


def _docker_link(prefix: str, ip: str, ports: list[dict[str, Any]]) -> dict[str, str]:
    first = ports[0]
    env = {f"{prefix}_PORT": f"{str(first.get('protocol', 'TCP')).lower()}://{ip}:{first.get('port')}"}
    for port in ports:
        protocol, number = str(port.get("protocol", "TCP")), port.get("port")
        name = f"{prefix}_PORT_{number}_{protocol.upper()}"
        env[name] = f"{protocol.lower()}://{ip}:{number}"
        env[f"{name}_PROTO"] = protocol.lower()
        env[f"{name}_PORT"] = str(number)
        env[f"{name}_ADDR"] = ip
    return env


def kubernetes_service(host: HostEndpoints) -> dict[str, str]:
    """`KUBERNETES_SERVICE_*`: the API as pods reach it (the real address: it is TLS, not proxied)."""
    env = {
        "KUBERNETES_SERVICE_HOST": host.api_host,
        "KUBERNETES_SERVICE_PORT": str(host.api_port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(host.api_port),
    }
    env.update(_docker_link("KUBERNETES", host.api_host, [{"port": host.api_port, "protocol": "TCP"}]))
    return env


def _proxy_env(host: HostEndpoints, pod_ip: str) -> dict[str, str]:
    if not host.proxy_url:
        return {}
    no_proxy = ",".join(["localhost", "127.0.0.1", pod_ip, host.api_host])
    return {"HTTP_PROXY": host.proxy_url, "http_proxy": host.proxy_url, "NO_PROXY": no_proxy, "no_proxy": no_proxy}


def declared_env(
    pod: dict[str, Any],
    container: dict[str, Any],
    *,
    pod_ip: str,
    lookup: Lookup,
    services: Iterable[dict[str, Any]],
    host: HostEndpoints,
) -> dict[str, str]:
    """Service links, `envFrom` and `env` of a container (what `kubectl exec env` would show, minus the image)."""
    namespace = pod["metadata"].get("namespace", "default")
    env: dict[str, str] = {}
    if (pod.get("spec") or {}).get("enableServiceLinks", True):
        env.update(service_links(services))
    env.update(kubernetes_service(host))
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        for kind, ref_key in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
            ref = source.get(ref_key)
            if ref is None:
                continue
            obj = _source(lookup, kind, namespace, ref.get("name", ""), bool(ref.get("optional")))
            for key in keys_of(kind, obj) if obj else []:
                if "=" not in key:
                    env[prefix + key] = decoded(kind, obj, key) or ""  # type: ignore[arg-type]
    for variable in container.get("env") or []:
        env[variable["name"]] = _value(pod, variable, namespace, pod_ip, lookup, env)
    return env


def _value(
    pod: dict[str, Any], variable: dict[str, Any], namespace: str, pod_ip: str, lookup: Lookup, env: dict[str, str]
) -> str:
    if "valueFrom" not in variable:
        return expand(str(variable.get("value", "")), env)
    source = variable["valueFrom"] or {}
    if "fieldRef" in source:
        return field_value(pod, source["fieldRef"].get("fieldPath", ""), pod_ip)
    for kind, ref_key, label in (("configmaps", "configMapKeyRef", "ConfigMap"), ("secrets", "secretKeyRef", "Secret")):
        ref = source.get(ref_key)
        if ref is None:
            continue
        optional = bool(ref.get("optional"))
        obj = _source(lookup, kind, namespace, ref.get("name", ""), optional)
        value = None if obj is None else decoded(kind, obj, ref.get("key", ""))
        if value is None and not optional:
            raise ContainerConfigError(f"couldn't find key {ref.get('key')} in {label} {namespace}/{ref.get('name')}")
        return value or ""
    raise ContainerConfigError(
        f"env {variable['name']}: localcluster supports valueFrom fieldRef, configMapKeyRef and secretKeyRef only"
    )


def process_env(
    declared: dict[str, str], *, pod_name: str, namespace: str, pod_ip: str, home: str, host: HostEndpoints
) -> dict[str, str]:
    """The whole environment of the process: image, proxy, declared variables and the network shim.

    The shim follows the Service rules unless the manifest names a proxy of its own (which then
    carries all of the process's HTTP, as it would in a container).
    """
    env = {**IMAGE_ENV, "HOSTNAME": pod_name, "HOME": home, **_proxy_env(host, pod_ip), **declared}
    env["PYTHONPATH"] = ":".join(filter(None, [str(SHIM_DIR), declared.get("PYTHONPATH", "")]))
    env["LOCALCLUSTER_POD_IP"] = pod_ip
    env["LOCALCLUSTER_POD_NAMESPACE"] = namespace
    env["LOCALCLUSTER_POD_ROOT"] = home
    env["LOCALCLUSTER_HOST_ENDPOINTS"] = host.shim_exemptions()
    if host.proxy_url and host.service_rules and not {"HTTP_PROXY", "http_proxy"} & set(declared):
        env["LOCALCLUSTER_SERVICE_RULES"] = host.service_rules
    return env
