"""A small in-memory stand-in for the Kubernetes API, shaped like `labkit.connect()`'s connection.

localcluster is not ours to start in unit tests; the checks only need reads, so the fake keeps
real kubernetes model objects and raises the client's real ApiException for what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

from kubernetes import client
from kubernetes.client.exceptions import ApiException


def not_found(kind: str, name: str) -> ApiException:
    return ApiException(status=404, reason=f"{kind} {name!r} not found")


@dataclass
class FakeCore:
    """The CoreV1Api calls the lab 00 checks and the cluster view make."""

    namespaces: dict[str, str] = field(default_factory=dict)  # name -> phase
    pods: dict[str, client.V1Pod] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    services: list[client.V1Service] = field(default_factory=list)
    events: list[client.CoreV1Event] = field(default_factory=list)
    api_client: SimpleNamespace = field(
        default_factory=lambda: SimpleNamespace(configuration=SimpleNamespace(host="https://127.0.0.1:6443"))
    )

    def get_api_resources(self, **_: object) -> client.V1APIResourceList:
        names = ["pods", "pods/log", "services", "namespaces", "configmaps"]
        resources = [
            client.V1APIResource(name=n, kind=n.title(), namespaced=True, singular_name="", verbs=["get"])
            for n in names
        ]
        return client.V1APIResourceList(group_version="v1", resources=resources)

    def read_namespace(self, name: str) -> client.V1Namespace:
        if name not in self.namespaces:
            raise not_found("namespace", name)
        return client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name), status=client.V1NamespaceStatus(phase=self.namespaces[name])
        )

    def read_namespaced_pod(self, name: str, namespace: str) -> client.V1Pod:
        if name not in self.pods:
            raise not_found("pod", name)
        return self.pods[name]

    def read_namespaced_pod_log(self, name: str, namespace: str, **_: object) -> str:
        if name not in self.pods:
            raise not_found("pod", name)
        return self.logs.get(name, "")

    def delete_namespaced_pod(self, name: str, namespace: str, **_: object) -> None:
        if self.pods.pop(name, None) is None:
            raise not_found("pod", name)

    def list_namespaced_pod(self, namespace: str) -> client.V1PodList:
        return client.V1PodList(items=list(self.pods.values()))

    def list_namespaced_service(self, namespace: str) -> client.V1ServiceList:
        return client.V1ServiceList(items=self.services)

    def list_namespaced_event(self, namespace: str) -> client.CoreV1EventList:
        return client.CoreV1EventList(items=self.events)


@dataclass
class FakeApps:
    deployments: list[client.V1Deployment] = field(default_factory=list)

    def list_namespaced_deployment(self, namespace: str) -> client.V1DeploymentList:
        return client.V1DeploymentList(items=self.deployments)


@dataclass
class FakeConnection:
    """What a check is given: the attributes `labkit.connect()` promises."""

    core: FakeCore = field(default_factory=FakeCore)
    apps: FakeApps = field(default_factory=FakeApps)
    custom: object = None
    namespace: str = "bookstore"
    #: No lab 00 check calls a service; later labs' tests give an httpx.Client with a MockTransport.
    http: object = None

    def add_pod(self, phase: str, logs: str = "", reader: str | None = None, waiting: str | None = None) -> None:
        env = [client.V1EnvVar(name="READER", value=reader)] if reader else None
        state = client.V1ContainerState(waiting=client.V1ContainerStateWaiting(reason=waiting)) if waiting else None
        self.core.pods["hello"] = client.V1Pod(
            metadata=client.V1ObjectMeta(name="hello", namespace=self.namespace),
            spec=client.V1PodSpec(containers=[client.V1Container(name="hello", image="x", env=env)]),
            status=client.V1PodStatus(
                phase=phase,
                container_statuses=[
                    client.V1ContainerStatus(
                        name="hello", ready=False, restart_count=0, image="x", image_id="", state=state
                    )
                ],
            ),
        )
        self.core.logs["hello"] = logs
