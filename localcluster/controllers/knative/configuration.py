"""The Configuration reconciler (pkg/reconciler/configuration): one Revision per generation of the template.

The Revision is named `<configuration>-<generation, five digits>` unless the template names it; its
labels tie it to the Configuration (and Service) and the generation it came from. The Configuration's
status names the latest created Revision and the latest one that became Ready, and is Ready when they
are the same; a latest Revision that fails makes the Configuration fail with its message.
"""

from __future__ import annotations

import copy

from localcluster.api.cluster import Cluster, now
from localcluster.api.errors import AlreadyExists, ApiError
from localcluster.controllers.base import owner_reference
from localcluster.controllers.knative._base import (
    KnativeReconciler,
    Obj,
    condition,
    controlled_by,
    generation,
    same,
)
from localcluster.knative import conditions as cs
from localcluster.knative.conditions import READY, ConditionManager
from localcluster.knative.keys import (
    CONFIGURATION_GENERATION_LABEL,
    CONFIGURATION_LABEL,
    CONFIGURATION_UID_LABEL,
    ROUTES_ANNOTATION,
    ROUTING_STATE_LABEL,
    ROUTING_STATE_MODIFIED_ANNOTATION,
    SERVICE_LABEL,
    SERVICE_UID_LABEL,
)
from localcluster.knative.names import revision_name
from localcluster.knative.traffic import is_ready
from localcluster.store import WatchEvent


def make_revision(configuration: Obj) -> Obj:
    """MakeRevision: the template's metadata and spec, named, labelled and owned by the Configuration."""
    metadata = configuration["metadata"]
    template = copy.deepcopy(configuration["spec"].get("template") or {})
    template_metadata = template.get("metadata") or {}
    labels = dict(template_metadata.get("labels") or {})
    annotations = dict(template_metadata.get("annotations") or {})
    labels.update(
        {
            CONFIGURATION_LABEL: metadata["name"],
            CONFIGURATION_GENERATION_LABEL: str(generation(configuration)),
            CONFIGURATION_UID_LABEL: metadata["uid"],
        }
    )
    for key in (SERVICE_LABEL, SERVICE_UID_LABEL):
        value = (metadata.get("labels") or {}).get(key)
        if value:
            labels[key] = value
    routes = (metadata.get("annotations") or {}).get(ROUTES_ANNOTATION)
    # Pending tells the labeler the revision is new; a routed configuration's revision starts active.
    labels[ROUTING_STATE_LABEL] = "active" if routes else "pending"
    annotations[ROUTING_STATE_MODIFIED_ANNOTATION] = now()
    if routes:
        annotations[ROUTES_ANNOTATION] = routes
    return {
        "apiVersion": configuration["apiVersion"],
        "kind": "Revision",
        "metadata": {
            "name": template_metadata.get("name") or revision_name(metadata["name"], generation(configuration)),
            "namespace": metadata["namespace"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(configuration)],
        },
        "spec": template.get("spec") or {},
    }


class ConfigurationReconciler(KnativeReconciler):
    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster, "configuration-controller")

    def reconcile(self, _events: list[WatchEvent]) -> None:
        self.each(self.configurations, cs.CONFIGURATION, self._reconcile_kind)

    def _reconcile_kind(self, configuration: Obj, status: Obj, manager: ConditionManager) -> None:
        try:
            latest, named = self._latest_created(configuration)
        except AlreadyExists as exc:
            manager.mark_false(READY, "RevisionFailed", f"Revision creation failed with message: {exc.message}.")
            return
        if latest is None:
            try:
                latest = self.create(
                    self.revisions, configuration["metadata"]["namespace"], make_revision(configuration)
                )
            except ApiError as exc:
                self.event(configuration, "CreationFailed", f"Failed to create Revision: {exc.message}", warning=True)
                manager.mark_false(READY, "RevisionFailed", f"Revision creation failed with message: {exc.message}.")
                return
            self.event(configuration, "Created", f'Created Revision "{latest["metadata"]["name"]}"')
        name = latest["metadata"]["name"]
        status["latestCreatedRevisionName"] = name
        if status.get("latestReadyRevisionName") != name:
            manager.mark_unknown(READY, "", "")
        ready = condition(latest)
        if ready is not None and ready.get("status") == cs.TRUE and not status.get("latestReadyRevisionName"):
            self.event(configuration, "ConfigurationReady", "Configuration becomes ready")
        elif ready is not None and ready.get("status") == cs.FALSE:
            before = manager.get(READY)
            message = f'Revision "{name}" failed with message: {ready.get("message", "")}.'
            manager.mark_false(READY, "RevisionFailed", message)
            if before != manager.get(READY):
                if name == status.get("latestReadyRevisionName"):
                    self.event(
                        configuration, "LatestReadyFailed", f'Latest ready revision "{name}" has failed', warning=True
                    )
                else:
                    self.event(
                        configuration,
                        "LatestCreatedFailed",
                        f'Latest created revision "{name}" has failed',
                        warning=True,
                    )
        self._set_latest_ready(configuration, latest, named, status, manager)

    def _latest_created(self, configuration: Obj) -> tuple[Obj | None, bool]:
        """The revision of this generation (by its name, or by the generation label); AlreadyExists if taken."""
        metadata = configuration["metadata"]
        name = ((configuration["spec"].get("template") or {}).get("metadata") or {}).get("name")
        if name:
            revision = self.find(self.revisions, metadata["namespace"], name)
            if revision is not None:
                labels = revision["metadata"].get("labels") or {}
                template_spec = (configuration["spec"].get("template") or {}).get("spec")
                mine = controlled_by(revision, configuration) and (
                    labels.get(CONFIGURATION_GENERATION_LABEL) == str(generation(configuration))
                    or same(revision.get("spec"), template_spec)
                )
                if not mine:
                    raise AlreadyExists(f'revisions.serving.knative.dev "{name}" already exists')
                return revision, True
        for revision in self.objects(self.revisions, metadata["namespace"]):
            labels = revision["metadata"].get("labels") or {}
            if labels.get(CONFIGURATION_LABEL) == metadata["name"] and labels.get(
                CONFIGURATION_GENERATION_LABEL
            ) == str(generation(configuration)):
                return revision, False
        return None, False

    def _set_latest_ready(
        self, configuration: Obj, latest: Obj, named: bool, status: Obj, manager: ConditionManager
    ) -> None:
        """findAndSetLatestReadyRevision: the newest ready revision from the last ready one's generation on."""
        metadata = configuration["metadata"]
        mine = [
            revision
            for revision in self.objects(self.revisions, metadata["namespace"])
            if (revision["metadata"].get("labels") or {}).get(CONFIGURATION_LABEL) == metadata["name"]
        ]
        start = 0
        previous = status.get("latestReadyRevisionName")
        if previous:
            found = next((r for r in mine if r["metadata"]["name"] == previous), None)
            start = _configuration_generation(found) if found else generation(configuration)
        wanted = set(range(start, generation(configuration) + 1))
        if named:
            wanted.add(_configuration_generation(latest))
        template_name = ((configuration["spec"].get("template") or {}).get("metadata") or {}).get("name")
        candidates = [r for r in mine if not previous or _configuration_generation(r) in wanted]
        candidates.sort(
            key=lambda r: (r["metadata"]["name"] == template_name, _configuration_generation(r)), reverse=True
        )
        for revision in candidates:
            if is_ready(revision):
                name = revision["metadata"]["name"]
                status["latestReadyRevisionName"] = name
                if name == status.get("latestCreatedRevisionName"):
                    manager.mark_true(READY)
                if name != previous:
                    self.event(configuration, "LatestReadyUpdate", f'LatestReadyRevisionName updated to "{name}"')
                return


def _configuration_generation(revision: Obj) -> int:
    try:
        return int((revision["metadata"].get("labels") or {}).get(CONFIGURATION_GENERATION_LABEL, ""))
    except ValueError:
        return 0
