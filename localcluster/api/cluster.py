"""The request pipeline between the HTTP handlers (and in-process controllers) and the store.

It does what the apiserver's generic registry does for every kind: metadata it owns (uid,
creationTimestamp, generation, resourceVersion, generateName), defaults and validation, status and
spec kept apart by the `/status` subresource, optimistic concurrency, patches and server-side
apply with managedFields, finalizers and graceful deletion with a propagation policy.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from localcluster.api import apply as server_side
from localcluster.api import defaults, patch, service_network
from localcluster.api.errors import (
    AlreadyExists,
    BadRequest,
    Cause,
    Conflict,
    Forbidden,
    Gone,
    invalid,
    not_found,
)
from localcluster.api.resources import ResourceRegistry, ResourceType
from localcluster.api.schemas import SchemaIndex
from localcluster.api.selectors import FieldSelector, LabelSelector
from localcluster.api.validation import Validator
from localcluster.store import Compacted, Entry, ObjectExists, ObjectMissing, Store, VersionConflict, Watch

APPLY_PATCH = "application/apply-patch+yaml"
_GENERATE_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # upstream's: no vowels, no confusable digits
#: Kinds whose spec changes bump metadata.generation (custom kinds always do).
_GENERATION_KINDS = {"Deployment", "ReplicaSet", "StatefulSet", "Job", "Pod", "PersistentVolumeClaim"}
#: Labels the system writes with a reserved meaning.
#: Namespaces that exist from the start; the first three may not be deleted, as upstream.
#: istio-system is there because localcluster plays Istio: its root namespace holds mesh-wide policies.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "bookstore", "istio-system")
_UNDELETABLE_NAMESPACES = SYSTEM_NAMESPACES[:3]


def now() -> str:
    """RFC 3339 with second precision, as metav1.Time serialises."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def later(seconds: int) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


#: A mutating admission step (a webhook's part, such as Istio's sidecar injector): it may change the
#: object being created (old is None) or updated, after defaulting and before validation.
MutatingAdmission = Callable[[ResourceType, dict[str, Any], "dict[str, Any] | None"], None]
#: A validating admission step (a webhook's part, such as Knative's resource validation): it raises an
#: ApiError to deny the create or update, after the object passed validation.
ValidatingAdmission = Callable[[ResourceType, dict[str, Any], "dict[str, Any] | None"], None]


@dataclass
class WriteOptions:
    """Query parameters every write accepts."""

    dry_run: bool = False
    field_manager: str | None = None
    field_validation: str = "Strict"
    force: bool = False


@dataclass
class Written:
    """The object a write produced, with warnings for `Warning` headers and whether it was created."""

    obj: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    created: bool = False


@dataclass
class ListPage:
    entries: list[Entry]
    resource_version: int
    continue_token: str | None = None
    remaining: int | None = None


class Cluster:
    """Every read and write of API objects goes through here, so all writers share one set of rules."""

    def __init__(self, store: Store, registry: ResourceRegistry, schemas: SchemaIndex) -> None:
        self.store = store
        self.registry = registry
        self.schemas = schemas
        self.validator = Validator(schemas)
        #: Run in order on every create and update, as the apiserver calls mutating webhooks.
        self.mutating_admission: list[MutatingAdmission] = []
        #: Run in order after validation, as the apiserver calls validating webhooks; they raise to deny.
        self.validating_admission: list[ValidatingAdmission] = []

    # -- helpers -------------------------------------------------------------------------------

    def type_of(self, group: str, plural: str) -> ResourceType:
        return self.registry.get(group, plural)

    def served(self, resource_type: ResourceType, version: str, obj: dict[str, Any]) -> dict[str, Any]:
        """The object as a client of `version` sees it (multi-version kinds share one schema)."""
        api_version = resource_type.api_version(version)
        if obj.get("apiVersion") == api_version:
            return obj
        return {**obj, "apiVersion": api_version}

    def _entry(self, resource_type: ResourceType, namespace: str, name: str) -> Entry:
        entry = self.store.get(resource_type.key, namespace if resource_type.namespaced else "", name)
        if entry is None:
            raise not_found(resource_type.plural, resource_type.group, name)
        return entry

    def get(self, resource_type: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        """A private copy of the stored object (callers may change it)."""
        return json.loads(self._entry(resource_type, namespace, name).raw)

    def find(self, resource_type: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
        entry = self.store.get(resource_type.key, namespace if resource_type.namespaced else "", name)
        return None if entry is None else json.loads(entry.raw)

    def _check_namespace(self, resource_type: ResourceType, namespace: str, creating: bool) -> None:
        if not resource_type.namespaced:
            return
        if not namespace:
            raise BadRequest("the server could not find the requested resource: a namespace is required")
        entry = self.store.get("core/namespaces", "", namespace)
        if entry is None:
            raise not_found("namespaces", "", namespace)
        if creating and entry.obj["metadata"].get("deletionTimestamp"):
            raise Forbidden(
                f'{resource_type.plural} "{namespace}" is forbidden: unable to create new content in namespace '
                f"{namespace} because it is being terminated",
                kind=resource_type.plural,
                group=resource_type.group,
            )

    def _check_identity(
        self, resource_type: ResourceType, version: str, namespace: str, name: str | None, body: dict[str, Any]
    ) -> None:
        """The body must be the kind, version, namespace (and name) the URL addresses."""
        if not isinstance(body, dict):
            raise BadRequest("the body of the request must be a JSON object")
        expected = resource_type.api_version(version)
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if api_version and api_version not in {resource_type.api_version(v) for v in resource_type.versions}:
            raise BadRequest(
                f"the API version in the data ({api_version}) does not match the expected API version ({expected})"
            )
        if kind and kind != resource_type.kind:
            raise BadRequest(f"the kind in the data ({kind}) does not match the expected kind ({resource_type.kind})")
        metadata = body.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise invalid(resource_type.kind, resource_type.group, "", [Cause("metadata", "must be an object")])
        if resource_type.namespaced:
            if metadata.get("namespace") and metadata["namespace"] != namespace:
                raise BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        if name is not None and metadata.get("name", name) != name:
            raise BadRequest(
                f"the name of the object ({metadata.get('name')}) does not match the name on the URL ({name})"
            )
        body["apiVersion"] = resource_type.api_version(resource_type.storage_version)
        body["kind"] = resource_type.kind

    def _admit(
        self,
        resource_type: ResourceType,
        version: str,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        options: WriteOptions,
    ) -> list[str]:
        """Defaults, mutating admission, validation (which prunes unknown fields), validating admission.

        The order of the apiserver's admission chain; returns warnings.
        """
        defaults.apply_defaults(resource_type, obj)
        for mutate in self.mutating_admission:
            mutate(resource_type, obj, old)
        warnings = self.validator.validate(resource_type, version, obj, old, field_validation=options.field_validation)
        for validate in self.validating_admission:
            validate(resource_type, obj, old)
        return warnings

    def _allocate(self, resource_type: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        """A Service's cluster IPs and node ports, as the Service registry allocates them on create and update."""
        if resource_type.key == "core/services":
            services = [entry.obj for entry in self.store.list(resource_type.key, None)[0]]
            service_network.allocate(services, obj, old)

    def _manager(self, options: WriteOptions, user_agent: str | None) -> str:
        if options.field_manager:
            return options.field_manager
        # The apiserver names an unnamed writer after its user agent's first token.
        return (user_agent or "unknown").split("/", 1)[0][:128] or "unknown"

    # -- create --------------------------------------------------------------------------------

    def create(
        self,
        resource_type: ResourceType,
        version: str,
        namespace: str,
        body: dict[str, Any],
        options: WriteOptions | None = None,
        *,
        user_agent: str | None = None,
        applied_by: str | None = None,
    ) -> Written:
        """POST. `applied_by` marks a create through server-side apply, whose managedFields are already set."""
        options = options or WriteOptions()
        self._check_identity(resource_type, version, namespace, None, body)
        self._check_namespace(resource_type, namespace, creating=True)
        metadata = body["metadata"]
        if metadata.get("resourceVersion"):
            raise BadRequest("resourceVersion should not be set on objects to be created")
        if not metadata.get("name"):
            if not metadata.get("generateName"):
                raise invalid(
                    resource_type.kind,
                    resource_type.group,
                    "",
                    [Cause("metadata.name", "Required value: name or generateName is required", "FieldValueRequired")],
                )
            metadata["name"] = self._generated_name(resource_type, namespace, str(metadata["generateName"]))
        for owned in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            metadata.pop(owned, None)
        if "status" in resource_type.subresources:
            body.pop("status", None)
        # The uid comes first, as the apiserver fills system fields before the strategy's
        # PrepareForCreate (a Job's generated selector names it).
        metadata["uid"] = str(uuid.uuid4())
        warnings = self._admit(resource_type, version, body, None, options)
        self._allocate(resource_type, body, None)
        metadata["creationTimestamp"] = now()
        if resource_type.is_custom or resource_type.kind in _GENERATION_KINDS:
            metadata["generation"] = 1
        if resource_type.kind == "Pod":
            body["status"] = {"phase": "Pending", "qosClass": _qos_class(body)}
        if applied_by is None:
            metadata.pop("managedFields", None)
            server_side.record_update(
                None,
                body,
                manager=self._manager(options, user_agent),
                index=self.schemas,
                resource_type=resource_type,
                version=version,
                now=now(),
            )
        if options.dry_run:
            return Written(body, warnings, created=True)
        try:
            entry = self.store.create(resource_type.key, body)
        except ObjectExists:
            raise AlreadyExists(
                f'{resource_type.qualified()} "{metadata["name"]}" already exists',
                kind=resource_type.plural,
                group=resource_type.group,
                name=metadata["name"],
            ) from None
        return Written(entry.obj, warnings, created=True)

    def _generated_name(self, resource_type: ResourceType, namespace: str, prefix: str) -> str:
        # The apiserver would answer 409 on a clash and let the client retry; with our store the
        # clash is visible up front, so pick again.
        for _ in range(16):
            name = prefix[:58] + "".join(secrets.choice(_GENERATE_NAME_ALPHABET) for _ in range(5))
            if self.store.get(resource_type.key, namespace, name) is None:
                return name
        raise AlreadyExists(f"could not generate a free name with prefix {prefix!r}")

    # -- update, patch, apply -----------------------------------------------------------------

    def replace(
        self,
        resource_type: ResourceType,
        version: str,
        namespace: str,
        name: str,
        body: dict[str, Any],
        options: WriteOptions | None = None,
        *,
        subresource: str = "",
        user_agent: str | None = None,
    ) -> Written:
        """PUT: replace the object (or, on `/status`, only its status)."""
        options = options or WriteOptions()
        self._check_identity(resource_type, version, namespace, name, body)
        old = self.get(resource_type, namespace, name)
        return self._write_over(resource_type, version, old, body, options, subresource, user_agent)

    def patch(
        self,
        resource_type: ResourceType,
        version: str,
        namespace: str,
        name: str,
        patch_type: str,
        body: bytes,
        options: WriteOptions | None = None,
        *,
        subresource: str = "",
        user_agent: str | None = None,
    ) -> Written:
        """PATCH in any of the four flavours; an apply patch of a missing object creates it."""
        options = options or WriteOptions()
        old = self.find(resource_type, namespace, name)
        if patch_type == APPLY_PATCH:
            return self._apply(resource_type, version, namespace, name, old, body, options, subresource)
        if old is None:
            raise not_found(resource_type.plural, resource_type.group, name)
        patched = patch.apply_patch(
            patch_type, old, body, index=self.schemas, resource_type=resource_type, version=version
        )
        self._check_identity(resource_type, version, namespace, name, patched)
        return self._write_over(resource_type, version, old, patched, options, subresource, user_agent)

    def _write_over(
        self,
        resource_type: ResourceType,
        version: str,
        old: dict[str, Any],
        new: dict[str, Any],
        options: WriteOptions,
        subresource: str,
        user_agent: str | None,
    ) -> Written:
        """An update or patch: honour the body's resourceVersion precondition, then write."""
        expected = new["metadata"].get("resourceVersion")
        if expected and expected != old["metadata"]["resourceVersion"]:
            raise self._conflict(resource_type, new["metadata"]["name"])
        manager = self._manager(options, user_agent)
        return self._update(resource_type, version, old, new, options, subresource, manager, operation="Update")

    def _apply(
        self,
        resource_type: ResourceType,
        version: str,
        namespace: str,
        name: str,
        old: dict[str, Any] | None,
        body: bytes,
        options: WriteOptions,
        subresource: str,
    ) -> Written:
        if not options.field_manager:
            raise BadRequest("PATCH with application/apply-patch+yaml requires a fieldManager query parameter")
        applied = server_side.decode_apply_body(body)
        self._check_identity(resource_type, version, namespace, name, applied)
        merged = server_side.server_side_apply(
            old,
            applied,
            manager=options.field_manager,
            force=options.force,
            index=self.schemas,
            resource_type=resource_type,
            version=version,
            now=now(),
            subresource=subresource,
        )
        if old is None:
            return self.create(resource_type, version, namespace, merged, options, applied_by=options.field_manager)
        return self._update(
            resource_type, version, old, merged, options, subresource, options.field_manager, operation="Apply"
        )

    def _update(
        self,
        resource_type: ResourceType,
        version: str,
        old: dict[str, Any],
        new: dict[str, Any],
        options: WriteOptions,
        subresource: str,
        manager: str,
        *,
        operation: str,
    ) -> Written:
        old_meta, metadata = old["metadata"], new["metadata"]
        if subresource == "status":
            # /status writes only status; everything else stays as it was.
            status = new.get("status")
            new = json.loads(json.dumps(old))
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
            metadata = new["metadata"]
        elif "status" in resource_type.subresources:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        for owned in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if owned in old_meta:
                metadata[owned] = old_meta[owned]
            else:
                metadata.pop(owned, None)
        metadata["resourceVersion"] = old_meta["resourceVersion"]
        if subresource == "status":
            # A status write is decoded, so defaulted, like any other (a Service keeps `loadBalancer: {}`).
            defaults.apply_defaults(resource_type, new)
            warnings: list[str] = []
        else:
            warnings = self._admit(resource_type, version, new, old, options)
            self._allocate(resource_type, new, old)
        if "generation" in old_meta and _spec_of(new) != _spec_of(old):
            metadata["generation"] = old_meta["generation"] + 1
        if operation == "Update":
            server_side.record_update(
                old,
                new,
                manager=manager,
                subresource=subresource,
                index=self.schemas,
                resource_type=resource_type,
                version=version,
                now=now(),
            )
        if _same_except_bookkeeping(old, new):
            return Written(old, warnings)  # a no-op write changes nothing, not even resourceVersion
        if options.dry_run:
            return Written(new, warnings)
        if old_meta.get("deletionTimestamp") and not metadata.get("finalizers"):
            return Written(self._remove(resource_type, new), warnings)
        try:
            entry = self.store.update(resource_type.key, new, expected_version=old_meta["resourceVersion"])
        except (ObjectMissing, VersionConflict):
            raise self._conflict(resource_type, metadata["name"]) from None
        return Written(entry.obj, warnings)

    def _conflict(self, resource_type: ResourceType, name: str) -> Conflict:
        return Conflict(
            f'Operation cannot be fulfilled on {resource_type.qualified()} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again",
            kind=resource_type.plural,
            group=resource_type.group,
            name=name,
        )

    def bind_pod(self, namespace: str, name: str, node: str) -> dict[str, Any]:
        """Set a pending pod's spec.nodeName, as the apiserver's `pods/binding` subresource does.

        Binding is not an update: update validation forbids changing spec.nodeName, and upstream's
        BindingREST writes the field in storage without bumping metadata.generation.
        """
        pods = self.registry.get("", "pods")
        pod = self.get(pods, namespace, name)
        bound = pod["spec"].get("nodeName")
        if bound:
            raise Conflict(f'pod {name} is already assigned to node "{bound}"', kind="pods", name=name)
        if pod["metadata"].get("deletionTimestamp"):
            raise Conflict(f"pod {name} is being deleted, cannot be assigned to a host", kind="pods", name=name)
        pod["spec"]["nodeName"] = node
        try:
            entry = self.store.update(pods.key, pod, expected_version=pod["metadata"]["resourceVersion"])
        except (ObjectMissing, VersionConflict):
            raise self._conflict(pods, name) from None
        return json.loads(entry.raw)

    # -- delete --------------------------------------------------------------------------------

    def delete(
        self,
        resource_type: ResourceType,
        namespace: str,
        name: str,
        *,
        propagation: str | None = None,
        preconditions: dict[str, str] | None = None,
        grace_period: int | None = None,
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Delete, or begin a graceful/finalized deletion. Returns the object and whether it is gone now."""
        obj = self.get(resource_type, namespace, name)
        metadata = obj["metadata"]
        for key, value in (preconditions or {}).items():
            if value and metadata.get(key) != value:
                raise Conflict(
                    f"Precondition failed: {key.capitalize()} in precondition: {value}, "
                    f"{key.capitalize()} in object meta: {metadata.get(key)}",
                    kind=resource_type.plural,
                    group=resource_type.group,
                    name=name,
                )
        if propagation not in (None, "Background", "Foreground", "Orphan"):
            raise BadRequest(f"unsupported propagationPolicy {propagation!r}: Background, Foreground or Orphan")
        finalizers = list(metadata.get("finalizers") or [])
        if propagation == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if propagation == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        if resource_type.kind == "Namespace":
            if name in _UNDELETABLE_NAMESPACES:
                raise Forbidden(
                    f'namespaces "{name}" is forbidden: this namespace may not be deleted', kind="namespaces", name=name
                )
            obj.setdefault("status", {})["phase"] = "Terminating"
        grace = self._grace_period(resource_type, obj, grace_period)
        if dry_run:
            return obj, not finalizers and not grace
        if metadata.get("deletionTimestamp"):
            if finalizers != list(metadata.get("finalizers") or []):
                metadata["finalizers"] = finalizers
                obj = self.store.update(resource_type.key, obj).obj
            return obj, False
        if finalizers or grace or resource_type.kind == "Namespace":
            metadata["deletionTimestamp"] = later(grace) if grace else now()
            metadata["deletionGracePeriodSeconds"] = grace
            if finalizers:
                metadata["finalizers"] = finalizers
            return self.store.update(resource_type.key, obj).obj, False
        return self._remove(resource_type, obj), True

    def _grace_period(self, resource_type: ResourceType, obj: dict[str, Any], requested: int | None) -> int:
        """Pods on a node stop gracefully (the kubelet finishes the deletion); other objects go at once."""
        if resource_type.kind != "Pod" or not obj.get("spec", {}).get("nodeName"):
            return 0
        if obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return max(requested, 0)
        return int(obj["spec"].get("terminationGracePeriodSeconds", 30))

    def _remove(self, resource_type: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        metadata = obj["metadata"]
        try:
            return self.store.delete(resource_type.key, metadata.get("namespace", ""), metadata["name"]).obj
        except ObjectMissing:
            raise not_found(resource_type.plural, resource_type.group, metadata["name"]) from None

    def finish_deletion(self, resource_type: ResourceType, namespace: str, name: str) -> None:
        """Remove an object whose graceful deletion is complete (the kubelet's final delete)."""
        entry = self.store.get(resource_type.key, namespace, name)
        if entry is not None:
            self.store.delete(resource_type.key, namespace, name)

    # -- list and watch ------------------------------------------------------------------------

    def list(
        self,
        resource_type: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        *,
        limit: int = 0,
        continue_token: str | None = None,
    ) -> ListPage:
        namespace = namespace if resource_type.namespaced else None
        entries, resource_version = self.store.list(resource_type.key, namespace)
        start_after: tuple[str, str] | None = None
        if continue_token:
            token_version, start_after = _decode_continue(continue_token)
            if token_version < self.store._compacted:
                raise Gone(
                    "The provided continue parameter is too old to display a consistent list result. "
                    "You can start a new list without the continue parameter."
                )
            resource_version = token_version
        selected = [
            entry
            for entry in entries
            if (start_after is None or _identity(entry) > start_after)
            and labels.matches(entry.obj["metadata"].get("labels"))
            and fields.matches(entry.obj)
        ]
        if limit and len(selected) > limit:
            page = selected[:limit]
            token = _encode_continue(resource_version, _identity(page[-1]))
            return ListPage(page, resource_version, token, len(selected) - limit)
        return ListPage(selected, resource_version)

    def watch(self, resource_type: ResourceType, namespace: str | None, since: int) -> Watch:
        try:
            return self.store.watch(resource_type.key, namespace if resource_type.namespaced else None, since)
        except Compacted as exc:
            raise Gone(f"too old resource version: {exc.requested} ({exc.oldest})") from None

    # -- events --------------------------------------------------------------------------------

    def record_event(
        self,
        involved: dict[str, Any],
        reason: str,
        message: str,
        *,
        event_type: str = "Normal",
        component: str = "localcluster",
    ) -> None:
        """Record a core/v1 Event about an object, folding repeats into a count as upstream does."""
        metadata = involved["metadata"]
        namespace = metadata.get("namespace") or "default"
        events = self.registry.get("", "events")
        digest = zlib.crc32(f"{metadata.get('uid')}/{reason}/{message}".encode())
        name = f"{metadata['name']}.{digest:08x}"
        timestamp = now()
        existing = self.find(events, namespace, name)
        if existing is not None:
            existing["count"] = existing.get("count", 1) + 1
            existing["lastTimestamp"] = timestamp
            self.store.update(events.key, existing)
            return
        if self.store.get("core/namespaces", "", namespace) is None:
            return
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": timestamp,
            },
            "involvedObject": {
                "kind": involved.get("kind"),
                "apiVersion": involved.get("apiVersion"),
                "namespace": metadata.get("namespace"),
                "name": metadata["name"],
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "type": event_type,
            "count": 1,
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": "",
            "firstTimestamp": timestamp,
            "lastTimestamp": timestamp,
        }
        self.store.create(events.key, event)


def _identity(entry: Entry) -> tuple[str, str]:
    metadata = entry.obj["metadata"]
    return metadata.get("namespace", ""), metadata["name"]


def _encode_continue(resource_version: int, after: tuple[str, str]) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": resource_version, "start": list(after)})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return int(data["rv"]), (str(data["start"][0]), str(data["start"][1]))
    except (binascii.Error, ValueError, KeyError, IndexError, TypeError):
        raise BadRequest(f"continue key is not valid: {token[:64]!r}") from None


def _spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    """Everything that counts as the object's desired state (for metadata.generation)."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _same_except_bookkeeping(old: dict[str, Any], new: dict[str, Any]) -> bool:
    def stripped(obj: dict[str, Any]) -> dict[str, Any]:
        metadata = {k: v for k, v in obj["metadata"].items() if k not in ("resourceVersion", "managedFields")}
        fields = [
            {k: v for k, v in entry.items() if k != "time"} for entry in obj["metadata"].get("managedFields") or []
        ]
        return {**obj, "metadata": {**metadata, "managedFields": fields}}

    return stripped(old) == stripped(new)


def _qos_class(pod: dict[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    resources = [c.get("resources") or {} for c in containers if isinstance(c, dict)]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(kind)
        and (r.get("requests") or r.get("limits") or {}).get(kind) == (r.get("limits") or {}).get(kind)
        for r in resources
        for kind in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"
