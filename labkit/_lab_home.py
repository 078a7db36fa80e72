"""What `lab up` leaves in `$LAB_HOME`, read as a client reads it.

labkit never imports localcluster (the same notebooks run on a real cluster), so it finds the
cluster `lab up` started or chose as kubectl does: by the files it publishes (localcluster/state.py
writes them):

- `kubeconfig`, localcluster's, its context `bookstore-local`;
- `localcluster.json`, the running server's pid, API address and service proxy, written once it
  listens and removed when it stops (a server killed without `lab down` leaves it behind);
- `target.json`, the real cluster `lab up --target cluster` connected to (`lab down` forgets it).

tests/unit/frame/test_lab_home.py reads what localcluster writes with these helpers, so both keep
to one shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

#: What the running server's command line names (`python -m localcluster.server`).
SERVER_MODULE = "localcluster.server"


class LabHomeError(Exception):
    """What localcluster left in `$LAB_HOME` cannot be read (a corrupt state file), said in one line."""


@dataclass(frozen=True)
class ClusterTarget:
    """The real cluster `lab up --target cluster` recorded: a kubeconfig context and its ingress gateway."""

    context: str
    #: The kubeconfig that holds the context ("" for the usual ~/.kube/config).
    kubeconfig: str = ""
    #: Where the cluster's ingress gateway answers from here (kind's host port), "" if not reachable.
    ingress: str = ""


@dataclass(frozen=True)
class LocalclusterServer:
    """The running localcluster: its API (`https://host:port`) and service proxy ("" if none runs)."""

    pid: int
    url: str
    proxy: str


def localcluster_kubeconfig(home: Path) -> Path:
    """The kubeconfig localcluster writes in `home` (there once it has run)."""
    return home / "kubeconfig"


def localcluster_state_file(home: Path) -> Path:
    """The running localcluster's state file in `home` (there while it runs)."""
    return home / "localcluster.json"


def running_localcluster(home: Path) -> LocalclusterServer | None:
    """The localcluster serving `home`, or None if none runs (a state file left by a dead server is ignored)."""
    path = localcluster_state_file(home)
    try:
        state = json.loads(path.read_text())
        server = LocalclusterServer(
            pid=int(state["pid"]),
            url=f"https://{state['host']}:{int(state['port'])}",
            proxy=str(state.get("proxy") or ""),
        )
    except FileNotFoundError:
        return None
    except (KeyError, TypeError, ValueError) as exc:
        raise _corrupt(path, exc, "run `lab down` then `lab up`") from None
    return server if _is_localcluster_server(server.pid) else None


def recorded_target(home: Path) -> ClusterTarget | None:
    """The real cluster `lab up --target cluster` connected `home` to, or None."""
    path = home / "target.json"
    try:
        target = json.loads(path.read_text())
        return ClusterTarget(
            context=str(target["context"]),
            kubeconfig=str(target.get("kubeconfig") or ""),
            ingress=str(target.get("ingress") or ""),
        )
    except FileNotFoundError:
        return None
    except (KeyError, TypeError, ValueError) as exc:
        raise _corrupt(path, exc, "run `lab up --target cluster` again") from None


def _corrupt(path: Path, problem: Exception, remedy: str) -> LabHomeError:
    reason = f"it has no {problem}" if isinstance(problem, KeyError) else str(problem)
    return LabHomeError(f"{path} is corrupt ({reason}); {remedy}")


def _is_localcluster_server(pid: int) -> bool:
    """True if `pid` is a live localcluster server (not a pid the system gave to another program since)."""
    import psutil

    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and SERVER_MODULE in " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
