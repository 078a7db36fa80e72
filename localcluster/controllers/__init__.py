"""In-process controllers: each a watch-driven reconcile loop writing through the API pipeline."""

from __future__ import annotations

import asyncio

from localcluster.api.cluster import Cluster
from localcluster.controllers.base import reconcile_on_changes
from localcluster.controllers.endpoints import ENDPOINTS_KEYS, EndpointsController
from localcluster.controllers.garbage_collector import GarbageCollector
from localcluster.controllers.jobs import JOB_KEYS, JobController
from localcluster.controllers.knative import KPAController, knative_loops
from localcluster.controllers.namespaces import NamespaceController
from localcluster.controllers.rbac import CLUSTER_ROLES_KEY, ClusterRoleAggregation
from localcluster.controllers.root_ca import ROOT_CA_KEYS, RootCAPublisher
from localcluster.controllers.statefulsets import STATEFULSET_KEYS, StatefulSetController
from localcluster.controllers.workloads import WORKLOAD_KEYS, DeploymentController, ReplicaSetController


def start_controllers(cluster: Cluster, *, root_ca: str | None = None) -> list[asyncio.Task[None]]:
    """Start every controller on the running loop; cancel the tasks to stop them.

    `root_ca` is the API's CA bundle, published in every namespace as `kube-root-ca.crt`.
    """
    loops = [
        ("garbage-collector", GarbageCollector(cluster).reconcile, None, None),
        ("namespace-controller", NamespaceController(cluster).reconcile, None, None),
        ("endpoints-controller", EndpointsController(cluster).reconcile, ENDPOINTS_KEYS, None),
        # Availability (minReadySeconds) and progress deadlines change with time: resync each second.
        ("replicaset-controller", ReplicaSetController(cluster).reconcile, WORKLOAD_KEYS, 1.0),
        ("deployment-controller", DeploymentController(cluster).reconcile, WORKLOAD_KEYS, 1.0),
        ("statefulset-controller", StatefulSetController(cluster).reconcile, STATEFULSET_KEYS, 1.0),
        # Failure back-off, activeDeadlineSeconds and ttlSecondsAfterFinished are times too.
        ("job-controller", JobController(cluster).reconcile, JOB_KEYS, 1.0),
        ("clusterrole-aggregation-controller", ClusterRoleAggregation(cluster).reconcile, {CLUSTER_ROLES_KEY}, None),
    ]
    if root_ca is not None:
        loops.append(("root-ca-cert-publisher", RootCAPublisher(cluster, root_ca).reconcile, ROOT_CA_KEYS, None))
    autoscaler = KPAController(cluster)
    loops += knative_loops(cluster, autoscaler)
    return [
        *(
            asyncio.create_task(reconcile_on_changes(cluster, name, reconcile, keys=keys, resync=resync), name=name)
            for name, reconcile, keys, resync in loops
        ),
        asyncio.create_task(autoscaler.run(), name="autoscaler"),
    ]
