"""What a check is given to look at the cluster: the shape `labkit.connect()` returns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import httpx
    from kubernetes import client


class Context(Protocol):
    """Kubernetes APIs, the namespace the labs work in, and HTTP routed through the service network."""

    @property
    def core(self) -> client.CoreV1Api: ...

    @property
    def apps(self) -> client.AppsV1Api: ...

    @property
    def custom(self) -> client.CustomObjectsApi: ...

    @property
    def namespace(self) -> str: ...

    @property
    def http(self) -> httpx.Client: ...
