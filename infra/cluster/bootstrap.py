"""A real cluster for the workshop: kind (or the current kubeconfig context), pinned Knative Serving with
its Istio networking layer (net-istio) and the Istio release net-istio ships, the workshop image, and a
readiness check; `down` takes it all away again.

    python infra/cluster/bootstrap.py up                      # kind cluster "bookstore", context kind-bookstore
    python infra/cluster/bootstrap.py up --context my-gke     # an existing cluster: install on it
    python infra/cluster/bootstrap.py up --dry-run            # print every command, run none
    python infra/cluster/bootstrap.py down [--context ...]    # delete the kind cluster, or uninstall

Then `lab up --target cluster --context kind-bookstore --ingress http://127.0.0.1:8080` points the
`lab` CLI and labkit at it. The steps follow Knative's "Installing Knative Serving using YAML files"
(serving-crds, serving-core, then net-istio's istio.yaml with its CRDs first, then net-istio.yaml) and
kind's "Ingress" guide (the ingress gateway on a node port the kind node maps to a host port). Every
version is pinned here, in one place: `VERSIONS`.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass

import click

#: Everything the bootstrap installs, pinned. Knative Serving and net-istio are released together: one version.
VERSIONS = {
    "kind-node": "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5",
    "knative": "1.19.0",
}
KNATIVE_RELEASE = f"https://github.com/knative/serving/releases/download/knative-v{VERSIONS['knative']}"
NET_ISTIO_RELEASE = f"https://github.com/knative/net-istio/releases/download/knative-v{VERSIONS['knative']}"
MANIFESTS = {
    "serving-crds": f"{KNATIVE_RELEASE}/serving-crds.yaml",
    "serving-core": f"{KNATIVE_RELEASE}/serving-core.yaml",
    "istio": f"{NET_ISTIO_RELEASE}/istio.yaml",
    "net-istio": f"{NET_ISTIO_RELEASE}/net-istio.yaml",
}
DEFAULT_IMAGE = "ghcr.io/cloud-native-bookstore/workshop:latest"
DEFAULT_CLUSTER = "bookstore"
#: The ingress gateway's node port on the kind node; kind maps it to `--http-port` on the host.
INGRESS_NODE_PORT = 31080
READY_TIMEOUT = "600s"


@dataclass(frozen=True)
class Step:
    """One command of the plan: what it is for, the command, and what it reads on stdin."""

    what: str
    argv: tuple[str, ...]
    stdin: str | None = None

    def shell(self) -> str:
        command = shlex.join(self.argv)
        return f"{command} <<'EOF'\n{self.stdin}EOF" if self.stdin is not None else command


@dataclass(frozen=True)
class Target:
    """Where to install: a kind cluster this script owns (context None) or an existing context."""

    context: str | None = None
    cluster_name: str = DEFAULT_CLUSTER
    image: str = DEFAULT_IMAGE
    http_port: int = 8080

    @property
    def uses_kind(self) -> bool:
        return self.context is None

    @property
    def kube_context(self) -> str:
        return self.context or f"kind-{self.cluster_name}"

    def kubectl(self, *args: str) -> tuple[str, ...]:
        return ("kubectl", "--context", self.kube_context, *args)


def kind_config(target: Target) -> str:
    """kind's cluster configuration: one node whose ingress node port is reachable on the host."""
    return (
        "apiVersion: kind.x-k8s.io/v1alpha4\n"
        "kind: Cluster\n"
        "nodes:\n"
        "  - role: control-plane\n"
        f"    image: {VERSIONS['kind-node']}\n"
        "    extraPortMappings:\n"
        f"      - containerPort: {INGRESS_NODE_PORT}\n"
        f"        hostPort: {target.http_port}\n"
        "        listenAddress: 127.0.0.1\n"
        "        protocol: TCP\n"
    )


def plan_up(target: Target) -> list[Step]:
    """Every command `up` runs, in order."""
    steps: list[Step] = []
    if target.uses_kind:
        steps += [
            Step(
                f"create the kind cluster {target.cluster_name!r} (Kubernetes node image pinned)",
                ("kind", "create", "cluster", "--name", target.cluster_name, "--config", "-", "--wait", "120s"),
                kind_config(target),
            ),
            Step(
                "load the workshop image into the node (build it first: see infra/Dockerfile)",
                ("kind", "load", "docker-image", target.image, "--name", target.cluster_name),
            ),
        ]
    steps += [
        Step("Knative Serving: its CRDs", target.kubectl("apply", "-f", MANIFESTS["serving-crds"])),
        Step(
            "wait until the CRDs are served",
            target.kubectl(
                "wait", "--for=condition=Established", "crd", "-l", "knative.dev/crd-install=true", "--timeout=120s"
            ),
        ),
        Step("Knative Serving: its core", target.kubectl("apply", "-f", MANIFESTS["serving-core"])),
        Step(
            "Istio (the release net-istio ships): its CRDs first",
            target.kubectl("apply", "-l", "knative.dev/crd-install=true", "-f", MANIFESTS["istio"]),
        ),
        Step("Istio itself", target.kubectl("apply", "-f", MANIFESTS["istio"])),
        Step("Knative's Istio networking layer", target.kubectl("apply", "-f", MANIFESTS["net-istio"])),
    ]
    if target.uses_kind:
        # A strategic merge patch: ports merge by `port`, so the gateway's other ports stay as they are.
        patch = f'{{"spec":{{"type":"NodePort","ports":[{{"port":80,"nodePort":{INGRESS_NODE_PORT}}}]}}}}'

        steps.append(
            Step(
                f"expose the ingress gateway on the node port kind maps to 127.0.0.1:{target.http_port}",
                target.kubectl("-n", "istio-system", "patch", "service", "istio-ingressgateway", "-p", patch),
            )
        )
    for namespace in ("istio-system", "knative-serving"):
        steps.append(
            Step(
                f"wait until every Deployment in {namespace} is Available",
                target.kubectl(
                    "-n",
                    namespace,
                    "wait",
                    "--for=condition=Available",
                    "deployment",
                    "--all",
                    f"--timeout={READY_TIMEOUT}",
                ),
            )
        )
    steps += [
        Step(
            "check the kinds the labs use are served",
            target.kubectl(
                "get",
                "crd",
                "services.serving.knative.dev",
                "virtualservices.networking.istio.io",
                "authorizationpolicies.security.istio.io",
            ),
        ),
        Step(
            "the workshop's namespace",
            target.kubectl("apply", "-f", "-"),
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bookstore\n",
        ),
    ]
    return steps


def plan_down(target: Target) -> list[Step]:
    """Every command `down` runs: delete the kind cluster, or uninstall from a context in reverse order."""
    if target.uses_kind:
        return [
            Step(
                f"delete the kind cluster {target.cluster_name!r}",
                ("kind", "delete", "cluster", "--name", target.cluster_name),
            )
        ]
    return [
        Step(f"remove {name}", target.kubectl("delete", "--ignore-not-found", "-f", MANIFESTS[name]))
        for name in ("net-istio", "istio", "serving-core", "serving-crds")
    ]


def tools_of(steps: list[Step]) -> list[str]:
    return sorted({step.argv[0] for step in steps})


def execute(steps: list[Step], *, dry_run: bool) -> None:
    """Print each step; run it unless `dry_run`. Stops at the first failure with what failed."""
    if not dry_run:
        missing = [tool for tool in tools_of(steps) if shutil.which(tool) is None]
        if missing:
            raise click.ClickException(f"needs {', '.join(missing)} on PATH (kind: https://kind.sigs.k8s.io)")
    for number, step in enumerate(steps, 1):
        click.echo(f"# {number}/{len(steps)} {step.what}")
        click.echo(step.shell())
        if dry_run:
            continue
        result = subprocess.run(step.argv, input=step.stdin, text=True, check=False)
        if result.returncode != 0:
            raise click.ClickException(f"step {number} ({step.what}) failed with exit code {result.returncode}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Bootstrap (or tear down) a real cluster for the Cloud Native Bookstore workshop."""


@main.command()
@click.option("--context", default=None, help="Install on this kubeconfig context instead of creating a kind cluster.")
@click.option("--name", "cluster_name", default=DEFAULT_CLUSTER, show_default=True, help="The kind cluster's name.")
@click.option("--image", default=DEFAULT_IMAGE, show_default=True, help="The workshop image to load into kind.")
@click.option(
    "--http-port",
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    help="Host port of the ingress gateway (kind).",
)
@click.option("--dry-run", is_flag=True, help="Print the commands, run none.")
def up(context: str | None, cluster_name: str, image: str, http_port: int, dry_run: bool) -> None:
    """Create (or use) the cluster, install Knative Serving and Istio, load the image, wait until ready."""
    target = Target(context, cluster_name, image, http_port)
    execute(plan_up(target), dry_run=dry_run)
    click.echo(
        f"# then: lab up --target cluster --context {target.kube_context}"
        + (f" --ingress http://127.0.0.1:{http_port}" if target.uses_kind else "")
    )


@main.command()
@click.option("--context", default=None, help="Uninstall from this context instead of deleting the kind cluster.")
@click.option("--name", "cluster_name", default=DEFAULT_CLUSTER, show_default=True, help="The kind cluster's name.")
@click.option("--dry-run", is_flag=True, help="Print the commands, run none.")
def down(context: str | None, cluster_name: str, dry_run: bool) -> None:
    """Delete the kind cluster (or remove what `up` installed on a context)."""
    execute(plan_down(Target(context, cluster_name)), dry_run=dry_run)


if __name__ == "__main__":
    sys.exit(main())
