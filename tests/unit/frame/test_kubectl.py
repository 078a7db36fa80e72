import pytest

from labkit import KubectlError, kubectl
from labkit.settings import Settings

from .test_runner import closed_port


@pytest.fixture
def dead_cluster_settings(tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    """A kubeconfig whose only cluster is a loopback port where nothing listens."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"""
apiVersion: v1
kind: Config
clusters: [{{name: dead, cluster: {{server: "http://127.0.0.1:{closed_port()}"}}}}]
users: [{{name: me, user: {{token: t}}}}]
contexts: [{{name: dead-context, context: {{cluster: dead, user: me}}}}]
current-context: dead-context
"""
    )
    return Settings(namespace="attendee-7", kubeconfig=kubeconfig, context="dead-context")


def test_the_command_is_shown_beside_its_output(dead_cluster_settings: Settings) -> None:
    run = kubectl("version --client", settings=dead_cluster_settings)
    assert run.command == "kubectl --context dead-context --namespace attendee-7 version --client"
    assert "Client Version: v1.37.1" in run.stdout
    assert str(run).startswith("$ kubectl --context dead-context --namespace attendee-7 version --client\nClient")
    assert "<b>$ kubectl --context dead-context" in run._repr_html_()


def test_separate_words_and_a_leading_kubectl_are_both_fine(dead_cluster_settings: Settings) -> None:
    run = kubectl("kubectl", "version", "--client", settings=dead_cluster_settings, namespace="other")
    assert run.args == ("--context", "dead-context", "--namespace", "other", "version", "--client")


def test_a_failing_command_raises_with_what_kubectl_said(dead_cluster_settings: Settings) -> None:
    command = "kubectl --context dead-context --namespace attendee-7 get pods --request-timeout=5s"
    with pytest.raises(KubectlError, match=f"`{command}` failed"):
        kubectl("get", "pods", "--request-timeout=5s", settings=dead_cluster_settings)


def test_check_false_returns_the_failure_to_show(dead_cluster_settings: Settings) -> None:
    run = kubectl("get pods --request-timeout=5s", settings=dead_cluster_settings, check=False)
    assert run.returncode != 0
    assert "refused" in run.stderr
    assert "refused" in str(run)
