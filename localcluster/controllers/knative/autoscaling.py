"""The KPA at work (pkg/reconciler/autoscaling/kpa and pkg/autoscaler): one PodAutoscaler per Revision.

A loop, not a watch: every second it records each revision's concurrency and request count from
the proxy's leases (the queue-proxy and activator stats), every two seconds each decider computes
a desired scale, and each pass runs the KPA reconciler's step: bounds, initial scale and the
scale-to-zero rules decide the replicas of the revision's Deployment. A request for a revision at
zero pokes its decider at once, as the activator's first stat does. The decisions themselves are
`localcluster.knative.autoscaler`'s, tested there with a controlled clock.

The Revision reconciler reads each PodAutoscaler's status (actual and desired scale, the Active
condition) from here; no PodAutoscaler kind is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from localcluster.api.cluster import Cluster
from localcluster.api.errors import ApiError
from localcluster.controllers.endpoints import is_pod_ready
from localcluster.controllers.knative._base import KnativeReconciler, Obj, condition
from localcluster.knative import autoscaler as kpa
from localcluster.knative.conditions import FALSE
from localcluster.knative.keys import (
    METRIC_AGGREGATION_ALGORITHM,
    REVISION_LABEL,
    ROUTING_STATE_LABEL,
    lookup,
)
from localcluster.knative.names import deployment_name, private_service_name

log = logging.getLogger("localcluster.knative.autoscaler")

#: How often the loop looks even when nothing pokes it (scale-to-zero timing is re-checked each pass).
PASS_INTERVAL = 0.5


@dataclass
class RevisionScaler:
    """One revision's autoscaling state: its PodAutoscaler, metric windows and decider."""

    pa: kpa.PodAutoscaler
    metrics: kpa.MetricCollection
    decider: kpa.Autoscaler | None = None
    desired: int = kpa.SCALE_UNKNOWN
    excess_burst_capacity: int = 0
    annotations: dict[str, str] = field(default_factory=dict)


def reachable(revision: Obj) -> bool:
    """The PA's reachability: a failing or unrouted (reserve) revision is unreachable."""
    for kind in ("ResourcesAvailable", "ContainerHealthy"):
        found = condition(revision, kind)
        if found is not None and found.get("status") == FALSE:
            return False
    return (revision["metadata"].get("labels") or {}).get(ROUTING_STATE_LABEL) != "reserve"


class KPAController(KnativeReconciler):
    def __init__(self, cluster: Cluster, clock: Callable[[], float] | None = None) -> None:
        super().__init__(cluster, "autoscaler")
        self.load = kpa.load_for(cluster.store) if clock is None else kpa.load_for(cluster.store, clock)
        self.clock = self.load.clock
        self.scalers: dict[kpa.RevisionKey, RevisionScaler] = {}
        self._poked: set[kpa.RevisionKey] = set()
        self._wake = asyncio.Event()
        self.load.on_arrival(self._arrival)

    def pod_autoscaler(self, namespace: str, name: str) -> kpa.PodAutoscaler | None:
        scaler = self.scalers.get((namespace, name))
        return None if scaler is None else scaler.pa

    def _arrival(self, key: kpa.RevisionKey) -> None:
        """MultiScaler.Poke: a request for a revision the decider has at zero (or has not sized yet)."""
        scaler = self.scalers.get(key)
        if scaler is None or scaler.desired <= 0:
            self._poked.add(key)
            self._wake.set()

    async def run(self) -> None:
        now = self.clock()
        next_scrape, next_tick = now, now
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), PASS_INTERVAL)
            self._wake.clear()
            try:
                now = self.clock()
                self._sync()
                poked, self._poked = self._poked, set()
                scrape = now >= next_scrape
                tick = now >= next_tick
                for key, scaler in self.scalers.items():
                    if scrape or key in poked:
                        self._record(key, scaler, now)
                    if tick or key in poked:
                        self._tick(key, scaler, now)
                if scrape:
                    next_scrape = now + kpa.SCRAPE_INTERVAL
                if tick:
                    next_tick = now + kpa.TICK_INTERVAL
                self._reconcile_all(now)
            except Exception:
                log.exception("autoscaler: pass failed; trying again")

    # -- the scalers, one per live revision ----------------------------------------------------------

    def _sync(self) -> None:
        config = self.config().autoscaler
        live: set[kpa.RevisionKey] = set()
        for revision in self.objects(self.revisions):
            if revision["metadata"].get("deletionTimestamp"):
                continue
            key = (revision["metadata"]["namespace"], revision["metadata"]["name"])
            live.add(key)
            annotations = dict(revision["metadata"].get("annotations") or {})
            spec = revision.get("spec") or {}
            scaler = self.scalers.get(key)
            if scaler is None or scaler.annotations != annotations:
                stable, panic = kpa.metric_windows(annotations, config)
                weighted = (lookup(annotations, METRIC_AGGREGATION_ALGORITHM) or ("", ""))[1] in (
                    "weighted-exponential",
                    "weightedExponential",
                )
                metrics = kpa.MetricCollection(stable, panic, weighted=weighted)
                if scaler is None:
                    scaler = self.scalers[key] = RevisionScaler(
                        kpa.PodAutoscaler(annotations, int(spec.get("containerConcurrency") or 0)), metrics
                    )
                else:
                    scaler.metrics = metrics
                scaler.annotations = annotations
            pa = scaler.pa
            pa.annotations = annotations
            pa.container_concurrency = int(spec.get("containerConcurrency") or 0)
            pa.reachable = reachable(revision)
            pa.progress_deadline = kpa.progress_deadline(annotations)
            spec_now = kpa.decider_spec(annotations, pa.container_concurrency, config, reachable=pa.reachable)
            if scaler.decider is None:
                scaler.decider = kpa.Autoscaler(spec_now, self._ready_endpoints(*key), self.clock())
                scaler.excess_burst_capacity = kpa.initial_excess_burst_capacity(spec_now)
            else:
                scaler.decider.update(spec_now)
        for gone in set(self.scalers) - live:
            del self.scalers[gone]
            self.load.forget(gone)

    def _record(self, key: kpa.RevisionKey, scaler: RevisionScaler, now: float) -> None:
        concurrency, requests = self.load.report(key)
        scaler.metrics.record(now, concurrency, float(requests))

    def _tick(self, key: kpa.RevisionKey, scaler: RevisionScaler, now: float) -> None:
        assert scaler.decider is not None
        try:
            stable, panic = scaler.metrics.stable_and_panic(scaler.decider.spec.scaling_metric, now)
        except kpa.NoData:
            return
        result = scaler.decider.scale(now, self._ready_endpoints(*key), stable, panic)
        scaler.desired = result.desired_pod_count
        scaler.excess_burst_capacity = result.excess_burst_capacity

    # -- the KPA reconciler's step ------------------------------------------------------------------

    def _reconcile_all(self, now: float) -> None:
        config = self.config().autoscaler
        for (namespace, name), scaler in self.scalers.items():
            deployment = self.find(self.deployments, namespace, deployment_name(name))
            if deployment is None:
                continue
            pa = scaler.pa
            private = self.find(self.kube_services, namespace, private_service_name(name))
            pa.service_name = private["metadata"]["name"] if private else ""
            pa.mark_sks_ready(private is not None, now, "" if private else "K8s Service is not ready")
            current = int((deployment.get("spec") or {}).get("replicas", 1))
            step = pa.scale(scaler.desired, current, config, now)
            if step.apply:
                self._apply_scale(deployment, step.want)
            pa.set_proxy_mode(kpa.wants_activator(step.want, scaler.excess_burst_capacity, pa.is_inactive), now)
            pa.compute_status(self._pod_counts(namespace, name, step.want), config, now)

    def _apply_scale(self, deployment: Obj, replicas: int) -> None:
        """applyScale: a JSON patch of the Deployment's /spec/replicas, as the KPA sends to the scale subresource."""
        metadata = deployment["metadata"]
        body = f'[{{"op":"add","path":"/spec/replicas","value":{replicas}}}]'.encode()
        try:
            self.cluster.patch(
                self.deployments,
                "v1",
                metadata["namespace"],
                metadata["name"],
                "application/json-patch+json",
                body,
                user_agent=self.agent,
            )
        except ApiError as exc:
            log.info("autoscaler: scaling %s to %d failed: %s", metadata["name"], replicas, exc.message)
            return
        log.info("autoscaler: %s/%s scaled to %d", metadata["namespace"], metadata["name"], replicas)

    def _pod_counts(self, namespace: str, name: str, want: int) -> kpa.PodCounts:
        """PodCountsByState: ready, not ready, pending and terminating pods of the revision."""
        ready = not_ready = pending = terminating = 0
        for pod in self.objects(self.pods, namespace):
            if (pod["metadata"].get("labels") or {}).get(REVISION_LABEL) != name:
                continue
            phase = (pod.get("status") or {}).get("phase")
            if pod["metadata"].get("deletionTimestamp"):
                terminating += 1
            elif phase == "Pending":
                pending += 1
            elif is_pod_ready(pod):
                ready += 1
            else:
                not_ready += 1
        return kpa.PodCounts(want, ready, not_ready, pending, terminating)

    def _ready_endpoints(self, namespace: str, name: str) -> int:
        """podCounter.ReadyCount: the ready addresses behind the revision's private Service."""
        endpoints = self.find(self.endpoints, namespace, private_service_name(name)) or {}
        return sum(len(subset.get("addresses") or []) for subset in endpoints.get("subsets") or [])
