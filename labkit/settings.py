"""One settings object for what notebooks and checkers need to know, read from the environment.

labkit never imports localcluster (labs only speak Kubernetes), so the few names both sides agree on
are repeated here as constants rather than imported (tests/unit/test_layers.py keeps it so).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

#: The image every manifest of the project uses; localcluster runs it in the project's Python.
PROJECT_IMAGE = "ghcr.io/cloud-native-bookstore/workshop:latest"

#: The namespace the labs work in, unless LAB_NAMESPACE says otherwise.
DEFAULT_NAMESPACE = "bookstore"

#: Names a file each check run appends its verdict to, as a JSON line (`lab grade` sets it).
EVIDENCE_FILE_VARIABLE = "LAB_EVIDENCE_FILE"

#: The repository root, where solutions/ and labs/ live.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: The per-user state directory localcluster uses when LAB_HOME is unset is named for this application.
STATE_DIRECTORY_APP = "cloud-native-bookstore"


def default_lab_home() -> Path:
    """localcluster's state directory when LAB_HOME is unset (the same default as localcluster's)."""
    return Path(platformdirs.user_state_dir(STATE_DIRECTORY_APP, appauthor=False))


@dataclass(frozen=True)
class Settings:
    """Where the notebook's cluster is and which namespace it works in.

    kubeconfig and context are None when the environment leaves them to the usual defaults
    (``~/.kube/config``, its current context, or the in-cluster service account).
    """

    namespace: str = DEFAULT_NAMESPACE
    kubeconfig: Path | None = None
    context: str | None = None
    #: Where check verdicts are recorded as evidence (while grading), or None.
    evidence_file: Path | None = None
    #: localcluster's state directory, where a running localcluster leaves its kubeconfig (labkit._lab_home).
    lab_home: Path = field(default_factory=default_lab_home)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read LAB_NAMESPACE, KUBECONFIG, LAB_CONTEXT, LAB_EVIDENCE_FILE and LAB_HOME, as a terminal beside a
        notebook would.

        In a pod without a kubeconfig (a JupyterHub attendee's), the namespace defaults to the pod's
        own, as kubectl and client-go default to it in a pod.
        """
        env = os.environ if environ is None else environ
        kubeconfig = env.get("KUBECONFIG")
        pod_namespace = None if kubeconfig else _pod_namespace(env)
        return cls(
            namespace=env.get("LAB_NAMESPACE") or pod_namespace or DEFAULT_NAMESPACE,
            kubeconfig=Path(kubeconfig).expanduser() if kubeconfig else None,
            context=env.get("LAB_CONTEXT") or None,
            evidence_file=Path(env[EVIDENCE_FILE_VARIABLE]) if env.get(EVIDENCE_FILE_VARIABLE) else None,
            lab_home=Path(env["LAB_HOME"]).expanduser() if env.get("LAB_HOME") else default_lab_home(),
        )


def _pod_namespace(env: Mapping[str, str]) -> str | None:
    """The namespace of this pod's ServiceAccount (its token volume's `namespace` file), None outside a pod."""
    if not env.get("KUBERNETES_SERVICE_HOST"):
        return None
    from kubernetes.config.incluster_config import SERVICE_TOKEN_FILENAME

    try:
        return Path(SERVICE_TOKEN_FILENAME).with_name("namespace").read_text().strip() or None
    except OSError:
        return None
