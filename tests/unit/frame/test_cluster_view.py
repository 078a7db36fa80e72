from kubernetes import client

from labkit import cluster_view, snapshot, wait_for

from .fake_cluster import FakeConnection
from .test_cli import real_client_for_a_dead_cluster


def test_the_snapshot_lists_deployments_pods_and_services(cluster: FakeConnection) -> None:
    cluster.add_pod("Running")
    cluster.apps.deployments.append(
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="stock"),
            spec=client.V1DeploymentSpec(
                replicas=2, selector=client.V1LabelSelector(), template=client.V1PodTemplateSpec()
            ),
            status=client.V1DeploymentStatus(ready_replicas=1, updated_replicas=2, available_replicas=1),
        )
    )
    cluster.core.services.append(
        client.V1Service(
            metadata=client.V1ObjectMeta(name="stock"),
            spec=client.V1ServiceSpec(cluster_ip="10.96.0.7", ports=[client.V1ServicePort(port=80)]),
        )
    )
    text = snapshot(cluster).text()
    assert text.splitlines() == [
        "namespace bookstore",
        "Deployments:",
        "  NAME   READY  UP-TO-DATE  AVAILABLE",
        "  stock  1/2    2           1",
        "Pods:",
        "  NAME   READY  PHASE    RESTARTS",
        "  hello  0/1    Running  0",
        "Services:",
        "  NAME   TYPE       CLUSTER-IP  PORTS",
        "  stock  ClusterIP  10.96.0.7   80/TCP",
    ]
    assert "<td>10.96.0.7</td>" in snapshot(cluster).html()


def test_an_empty_namespace_says_none(cluster: FakeConnection) -> None:
    assert "Pods: none" in str(cluster_view(connection=cluster))


def test_the_view_says_when_the_cluster_is_away() -> None:
    view = cluster_view(connection=real_client_for_a_dead_cluster())
    assert str(view).startswith("cannot read the cluster: cannot reach the Kubernetes API at 127.0.0.1:")


def test_the_widget_refreshes_until_stopped(cluster: FakeConnection) -> None:
    view = cluster_view(connection=cluster, interval=0.01)
    widget = view.widget()
    try:
        assert "hello" not in widget.value
        cluster.add_pod("Running")
        wait_for(lambda: "hello" in widget.value, what="the view to show the new pod", timeout=5)
    finally:
        view.stop()
        widget.close()
