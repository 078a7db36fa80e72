"""Knative Serving's controllers: Service, Configuration, Route (with the labeler), Revision and the KPA.

Each reconciler is a watch-driven loop of `controllers.base.reconcile_on_changes`; the autoscaler is
a timed loop of its own (`KPAController.run`), since its decisions change with time and traffic.
`install_reference_config` creates namespace knative-serving and Knative's ConfigMaps at bootstrap.
"""

from __future__ import annotations

from collections.abc import Callable

from localcluster.api.cluster import Cluster
from localcluster.controllers.knative._base import (
    CONFIGMAPS,
    CONFIGURATIONS,
    REVISIONS,
    ROUTES,
    SERVICES,
    install_reference_config,
)
from localcluster.controllers.knative.autoscaling import KPAController
from localcluster.controllers.knative.configuration import ConfigurationReconciler
from localcluster.controllers.knative.revision import RevisionReconciler
from localcluster.controllers.knative.route import RouteReconciler
from localcluster.controllers.knative.service import ServiceReconciler
from localcluster.store import WatchEvent

__all__ = ["KPAController", "install_reference_config", "knative_loops"]

Loop = tuple[str, Callable[[list[WatchEvent]], None], frozenset[str] | None, float | None]


def knative_loops(cluster: Cluster, autoscaler: KPAController) -> list[Loop]:
    """(name, reconcile, watched keys, resync) of each serving reconciler, for `reconcile_on_changes`."""
    serving = frozenset({SERVICES, CONFIGURATIONS, ROUTES, REVISIONS})
    return [
        ("service-controller", ServiceReconciler(cluster).reconcile, serving, None),
        ("configuration-controller", ConfigurationReconciler(cluster).reconcile, serving, None),
        ("route-controller", RouteReconciler(cluster).reconcile, serving | {"core/services", CONFIGMAPS}, None),
        # The PodAutoscaler's status changes with time (scale to zero): resync each second.
        (
            "revision-controller",
            RevisionReconciler(cluster, autoscaler).reconcile,
            frozenset({REVISIONS, "apps/deployments", "core/pods", "core/services", CONFIGMAPS}),
            1.0,
        ),
    ]
