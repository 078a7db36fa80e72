"""What the notebooks import: connect, apply, wait, kubectl, checks and live views.

labkit reaches a cluster only through the Kubernetes API and the services over HTTP, and never
imports localcluster, so a notebook runs the same on a real cluster; it finds a running localcluster
by the kubeconfig and state file localcluster leaves in `$LAB_HOME` (labkit._lab_home).

Imports are lazy (PEP 562) so `import labkit` and `lab check` in a terminal stay fast: the
kubernetes client and ipywidgets load only when a helper that needs them is first used.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

# The kubernetes client imports jsonschema (through kubernetes_validate), which, when rfc3987_syntax is
# installed (JupyterLab brings it), builds a Lark grammar on import: 2-4 s of every `lab check` and of
# every notebook's first cell, only to check "iri" formats nothing here validates. Keep it out, as
# localcluster does (a no-op if something imported it already).
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

if TYPE_CHECKING:
    from labkit._apply import ApplyError, ManifestError, apply, load_manifests, manifest
    from labkit._challenge import challenge
    from labkit._cluster_view import ClusterView, cluster_view, snapshot
    from labkit._kubectl import KubectlError, KubectlRun, kubectl
    from labkit._panel import CheckPanel, check, hint
    from labkit._ready import NotReady, wait_until_ready
    from labkit._waiting import WaitTimeout, wait_for
    from labkit.admin import admin_headers, ensure_admin_secret
    from labkit.charts import LiveChart
    from labkit.connection import connect
    from labkit.settings import PROJECT_IMAGE, Settings

_EXPORTS = {
    "ApplyError": "labkit._apply",
    "CheckPanel": "labkit._panel",
    "ClusterView": "labkit._cluster_view",
    "KubectlError": "labkit._kubectl",
    "KubectlRun": "labkit._kubectl",
    "LiveChart": "labkit.charts",
    "ManifestError": "labkit._apply",
    "PROJECT_IMAGE": "labkit.settings",
    "Settings": "labkit.settings",
    "NotReady": "labkit._ready",
    "WaitTimeout": "labkit._waiting",
    "admin_headers": "labkit.admin",
    "apply": "labkit._apply",
    "challenge": "labkit._challenge",
    "check": "labkit._panel",
    "hint": "labkit._panel",
    "cluster_view": "labkit._cluster_view",
    "connect": "labkit.connection",
    "ensure_admin_secret": "labkit.admin",
    "kubectl": "labkit._kubectl",
    "load_manifests": "labkit._apply",
    "manifest": "labkit._apply",
    "snapshot": "labkit._cluster_view",
    "wait_for": "labkit._waiting",
    "wait_until_ready": "labkit._ready",
}

__all__ = [
    "PROJECT_IMAGE",
    "ApplyError",
    "CheckPanel",
    "ClusterView",
    "KubectlError",
    "KubectlRun",
    "LiveChart",
    "ManifestError",
    "NotReady",
    "Settings",
    "WaitTimeout",
    "admin_headers",
    "apply",
    "challenge",
    "check",
    "cluster_view",
    "connect",
    "ensure_admin_secret",
    "hint",
    "kubectl",
    "load_manifests",
    "manifest",
    "snapshot",
    "wait_for",
    "wait_until_ready",
]


#: Submodules a notebook may reach as attributes (`labkit.traces.start_trace()`) without importing them first.
_SUBMODULES = ("jupyter_proxy", "kustomize", "scaling_chart", "traces")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"labkit.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'labkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, *_SUBMODULES])
