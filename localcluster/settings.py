"""One settings object for localcluster, read from the environment with defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

#: The repository root: localcluster is run from a checkout (or an image built from one).
PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: The image name every manifest of the project uses; localcluster runs it in the project's Python.
PROJECT_IMAGE = "ghcr.io/cloud-native-bookstore/workshop:latest"

#: The kubeconfig context, user and cluster name localcluster writes.
CONTEXT_NAME = "bookstore-local"
DEFAULT_NAMESPACE = "bookstore"


def _default_home() -> Path:
    return Path(platformdirs.user_state_dir("cloud-native-bookstore", appauthor=False))


def _default_shared_dir() -> Path:
    return PROJECT_ROOT.parent / "shared"


@dataclass(frozen=True)
class Settings:
    """Where localcluster keeps its state and how it listens.

    Every field can be set from the environment (see `from_env`), so tests and CI run a private
    localcluster in a temporary `LAB_HOME` on ephemeral ports.
    """

    home: Path = field(default_factory=_default_home)
    host: str = "127.0.0.1"
    #: 0 asks the OS for a free port.
    port: int = 0
    #: Where the official CRD schemas (knative-serving/, istio-networking/) and reference ConfigMaps live.
    shared_dir: Path = field(default_factory=_default_shared_dir)
    #: Largest request body accepted, as the real apiserver's 3 MiB limit.
    max_body_bytes: int = 3 * 1024 * 1024
    #: How many watch events are kept for resuming; older resourceVersions get 410 Gone.
    watch_history: int = 10_000
    #: Seconds the service proxy gives a request head to arrive once it has begun (then 408).
    proxy_header_timeout: float = 10.0
    #: Seconds a kept-alive connection to the service proxy may idle between requests.
    proxy_idle_timeout: float = 120.0
    #: Connections one client address may hold open to the service proxy.
    proxy_max_connections_per_client: int = 256
    #: A log file (the server's, or a container's) is rotated past this size, as the kubelet's containerLogMaxSize.
    log_max_bytes: int = 10 * 1024 * 1024
    #: Files kept per log, the current one included, as the kubelet's containerLogMaxFiles.
    log_max_files: int = 5

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            home=Path(env["LAB_HOME"]).expanduser() if env.get("LAB_HOME") else defaults.home,
            host=env.get("LOCALCLUSTER_HOST", defaults.host),
            port=int(env.get("LOCALCLUSTER_PORT", defaults.port)),
            shared_dir=Path(env["LAB_SHARED_DIR"]) if env.get("LAB_SHARED_DIR") else defaults.shared_dir,
            watch_history=int(env.get("LOCALCLUSTER_WATCH_HISTORY", defaults.watch_history)),
            proxy_header_timeout=float(env.get("LOCALCLUSTER_PROXY_HEADER_TIMEOUT", defaults.proxy_header_timeout)),
            proxy_idle_timeout=float(env.get("LOCALCLUSTER_PROXY_IDLE_TIMEOUT", defaults.proxy_idle_timeout)),
            proxy_max_connections_per_client=int(
                env.get("LOCALCLUSTER_PROXY_MAX_CONNECTIONS", defaults.proxy_max_connections_per_client)
            ),
            log_max_bytes=int(env.get("LOCALCLUSTER_LOG_MAX_BYTES", defaults.log_max_bytes)),
            log_max_files=max(2, int(env.get("LOCALCLUSTER_LOG_MAX_FILES", defaults.log_max_files))),
        )

    @property
    def kubeconfig_path(self) -> Path:
        return self.home / "kubeconfig"

    @property
    def database_path(self) -> Path:
        return self.home / "store.sqlite"

    @property
    def state_path(self) -> Path:
        """The running server's address, port, pid and token (written once it listens)."""
        return self.home / "localcluster.json"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def server_log_path(self) -> Path:
        return self.log_dir / "localcluster.log"

    @property
    def service_rules_path(self) -> Path:
        """The Service routes pods follow (cluster DNS and kube-proxy's part: `localcluster.network.kubeproxy`)."""
        return self.home / "network" / "service-rules.json"

    @property
    def pki_dir(self) -> Path:
        """The CA, the API's serving certificate and the ServiceAccount signing key."""
        return self.home / "pki"

    @property
    def service_account_key_path(self) -> Path:
        return self.pki_dir / "sa.key"

    @property
    def schemas_dir(self) -> Path:
        return self.shared_dir / "schemas"
