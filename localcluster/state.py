"""What a running localcluster leaves in `$LAB_HOME`: its token, kubeconfig and state file.

The CLI and the server share these helpers so both agree on where things are and what they mean.
labkit reads the kubeconfig and the state file too, by their shape and without importing this
(labkit._lab_home; tests/unit/frame/test_lab_home.py holds the two to one shape).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import yaml

from localcluster.settings import CONTEXT_NAME, DEFAULT_NAMESPACE, Settings


class StateError(Exception):
    """An environment problem with `$LAB_HOME` (not writable, corrupt), said in one line."""


@dataclass(frozen=True)
class ServerState:
    """Written by the server once it listens; removed when it stops."""

    pid: int
    host: str
    port: int
    home: str
    started: float
    #: The service proxy's URL (HTTP_PROXY for pods and clients), "" if none runs.
    proxy: str = ""

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"


def ensure_home(settings: Settings) -> None:
    """Create `$LAB_HOME` (private to the user) or say clearly why it cannot be used."""
    try:
        settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        settings.log_dir.mkdir(exist_ok=True, mode=0o700)
        probe = settings.home / ".writable"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise StateError(f"the state directory {settings.home} is not writable ({exc.strerror or exc})") from None


def token(settings: Settings) -> str:
    """The bearer token of this `$LAB_HOME`, made once and kept (mode 0600)."""
    path = settings.home / "token"
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(value)
    return value


def write_kubeconfig(settings: Settings, url: str, bearer_token: str, ca_path: Path) -> Path:
    ca_data = base64.b64encode(ca_path.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT_NAME, "cluster": {"server": url, "certificate-authority-data": ca_data}}],
        "users": [{"name": CONTEXT_NAME, "user": {"token": bearer_token}}],
        "contexts": [
            {
                "name": CONTEXT_NAME,
                "context": {"cluster": CONTEXT_NAME, "user": CONTEXT_NAME, "namespace": DEFAULT_NAMESPACE},
            }
        ],
        "current-context": CONTEXT_NAME,
        "preferences": {},
    }
    path = settings.kubeconfig_path
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        yaml.safe_dump(config, stream, sort_keys=False)
    temporary.replace(path)
    return path


def write_state(settings: Settings, state: ServerState) -> None:
    temporary = settings.state_path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(state)))
    temporary.replace(settings.state_path)


def read_state(settings: Settings) -> ServerState | None:
    """The running server's state, or None if none runs (a stale file from a killed server is ignored)."""
    try:
        state = ServerState(**json.loads(settings.state_path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise StateError(f"{settings.state_path} is corrupt ({exc}); run `lab down` then `lab up`") from None
    return state if is_our_server(state.pid) else None


def is_our_server(pid: int) -> bool:
    """True if `pid` is a live localcluster server process (not a recycled pid)."""
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and "localcluster.server" in " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def clear_state(settings: Settings, pid: int) -> None:
    """Remove the state file if it still describes server `pid`."""
    try:
        if json.loads(settings.state_path.read_text()).get("pid") == pid:
            settings.state_path.unlink()
    except (FileNotFoundError, ValueError):
        pass


@dataclass(frozen=True)
class ClusterTarget:
    """A real cluster `lab up --target cluster` connected this `$LAB_HOME` to (labkit.connect() reads it)."""

    context: str
    #: The kubeconfig that holds the context ("" for the usual ~/.kube/config).
    kubeconfig: str = ""
    #: Where the cluster's ingress gateway answers from here (kind's host port), "" if not reachable.
    ingress: str = ""


def _target_path(settings: Settings) -> Path:
    return settings.home / "target.json"


def write_target(settings: Settings, target: ClusterTarget) -> None:
    path = _target_path(settings)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(target)))
    temporary.replace(path)


def forget_target(settings: Settings) -> bool:
    """Disconnect from the real cluster (the cluster itself stays); True if one was recorded."""
    try:
        _target_path(settings).unlink()
    except FileNotFoundError:
        return False
    return True
