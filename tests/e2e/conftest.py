"""The opt-in tier against a real cluster: LAB_E2E_KUBECONFIG (and optionally LAB_E2E_CONTEXT) name one
prepared by infra/cluster/bootstrap.py (Knative Serving, Istio, the workshop image loaded). Without it
every test here is skipped, and the reason is printed in pytest's summary (`-ra` is on by default).

The notebooks then run exactly as an attendee's would, with KUBECONFIG and LAB_CONTEXT pointing at the
cluster and LAB_NAMESPACE a fresh namespace of the run's own (deleted afterwards).
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from labkit._kubectl import kubectl_binary

KUBECONFIG_VARIABLE = "LAB_E2E_KUBECONFIG"


@dataclass(frozen=True)
class RealCluster:
    kubeconfig: Path
    context: str | None
    namespace: str

    @property
    def env(self) -> dict[str, str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "LAB_NAMESPACE": self.namespace}
        if self.context:
            env["LAB_CONTEXT"] = self.context
        return env

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        context = ["--context", self.context] if self.context else []
        command = [str(kubectl_binary()), "--kubeconfig", str(self.kubeconfig), *context, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=check)


@pytest.fixture(scope="session")
def real_cluster() -> Iterator[RealCluster]:
    kubeconfig = os.environ.get(KUBECONFIG_VARIABLE)
    if not kubeconfig:
        pytest.skip(
            f"the e2e tier needs a real cluster: set {KUBECONFIG_VARIABLE} (and LAB_E2E_CONTEXT) to one prepared "
            "with `python infra/cluster/bootstrap.py up`"
        )
    cluster = RealCluster(Path(kubeconfig), os.environ.get("LAB_E2E_CONTEXT"), f"bookstore-e2e-{secrets.token_hex(3)}")
    cluster.kubectl("create", "namespace", cluster.namespace)
    try:
        yield cluster
    finally:
        cluster.kubectl("delete", "namespace", cluster.namespace, "--wait=false", check=False)
