"""Knative Serving's admission webhook: SetDefaults, then Validate, of the four serving kinds.

Ported from pkg/apis/serving/v1/*_defaults.go and *_validation.go, pkg/apis/serving/k8s_validation.go
(the pod spec rules that matter to a Knative revision: one serving port, reserved ports, names and
environment variables, probes, disallowed pod fields behind feature flags) and
pkg/apis/autoscaling/annotation_validation.go. The apiserver wraps a refusal as

    admission webhook "validation.webhook.serving.knative.dev" denied the request: validation failed: <errors>

with `<errors>` as knative.dev/pkg renders FieldErrors (see fielderrors). The ConfigMaps the webhook
consults (config-defaults, config-autoscaler, config-features) come in a `WebhookConfig`.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from localcluster.knative import fielderrors as fe
from localcluster.knative import keys
from localcluster.knative._go import SECOND, format_duration, parse_duration, parse_int32
from localcluster.knative.config import (
    PANIC_WINDOW_PERCENTAGE_MAX,
    PANIC_WINDOW_PERCENTAGE_MIN,
    TARGET_MIN,
    WINDOW_MAX,
    WINDOW_MIN,
    AutoscalerConfig,
    DefaultsConfig,
)
from localcluster.name_syntax import (
    DNS1035_LABEL,
    DNS1035_LABEL_ERROR,
    DNS1123_LABEL_MAX,
    DNS1123_SUBDOMAIN,
    DNS1123_SUBDOMAIN_MAX,
    QUALIFIED_NAME_ERROR,
    QUALIFIED_NAME_PART,
)

Obj = dict[str, Any]
Errors = fe.Errors

VALIDATION_WEBHOOK = "validation.webhook.serving.knative.dev"
KINDS = ("Service", "Configuration", "Route", "Revision")

_RESERVED_PORTS = frozenset({8012, 8013, 8022, 9090, 9091, 8008})
_RESERVED_ENV = frozenset({"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"})
_RESERVED_CONTAINER_NAMES = frozenset({"queue-proxy"})
_RESERVED_PATHS = frozenset({"/", "/dev", "/dev/log"})
_PORT_NAMES = frozenset({"h2c", "http1", ""})
#: Pod spec fields always allowed, and those behind a config-features flag (fieldmask.PodSpecMask).
_POD_FIELDS = frozenset(
    {"serviceAccountName", "containers", "volumes", "imagePullSecrets", "enableServiceLinks"}
    | {"automountServiceAccountToken", "containerConcurrency", "timeoutSeconds"}
    | {"idleTimeoutSeconds", "responseStartTimeoutSeconds"}
)
_POD_FEATURE_FIELDS = {
    "affinity": "kubernetes.podspec-affinity",
    "topologySpreadConstraints": "kubernetes.podspec-topologyspreadconstraints",
    "hostAliases": "kubernetes.podspec-hostaliases",
    "nodeSelector": "kubernetes.podspec-nodeselector",
    "runtimeClassName": "kubernetes.podspec-runtimeclassname",
    "tolerations": "kubernetes.podspec-tolerations",
    "securityContext": "kubernetes.podspec-securitycontext",
    "shareProcessNamespace": "kubernetes.podspec-shareprocessnamespace",
    "priorityClassName": "kubernetes.podspec-priorityclassname",
    "schedulerName": "kubernetes.podspec-schedulername",
    "initContainers": "kubernetes.podspec-init-containers",
    "dnsPolicy": "kubernetes.podspec-dnspolicy",
    "dnsConfig": "kubernetes.podspec-dnsconfig",
    "hostIPC": "kubernetes.podspec-hostipc",
    "hostPID": "kubernetes.podspec-hostpid",
    "hostNetwork": "kubernetes.podspec-hostnetwork",
}
_VOLUME_FEATURES = {
    "emptyDir": ("kubernetes.podspec-volumes-emptydir", "EmptyDir"),
    "persistentVolumeClaim": ("kubernetes.podspec-persistent-volume-claim", "Persistent volume claim"),
    "hostPath": ("kubernetes.podspec-volumes-hostpath", "HostPath"),
    "csi": ("kubernetes.podspec-volumes-csi", "CSI"),
    "ephemeral": ("kubernetes.podspec-volumes-ephemeral", "Ephemeral"),
    "image": ("kubernetes.podspec-volumes-image", "Image"),
}
#: The defaults of config-features (pkg/apis/config/features.go) for the flags the webhook reads.
FEATURE_DEFAULTS = {
    "multi-container": "enabled",
    "kubernetes.podspec-volumes-emptydir": "enabled",
    **{flag: "disabled" for flag in _POD_FEATURE_FIELDS.values()},
    **{flag: "disabled" for flag, _label in _VOLUME_FEATURES.values() if flag != "kubernetes.podspec-volumes-emptydir"},
}


@dataclass(frozen=True)
class WebhookConfig:
    defaults: DefaultsConfig = field(default_factory=DefaultsConfig)
    autoscaler: AutoscalerConfig = field(default_factory=AutoscalerConfig)
    features: Mapping[str, str] = field(default_factory=lambda: dict(FEATURE_DEFAULTS))

    def enabled(self, flag: str) -> bool:
        """A feature is usable unless Disabled (Allowed counts, as the field masks do)."""
        return self.features.get(flag, FEATURE_DEFAULTS.get(flag, "disabled")).lower() != "disabled"


def features_from_data(data: Mapping[str, str] | None) -> dict[str, str]:
    """config-features: the flags given over the defaults (values are Enabled, Disabled or Allowed)."""
    merged = dict(FEATURE_DEFAULTS)
    merged.update({k: v for k, v in (data or {}).items() if k != "_example"})
    return merged


# -- defaulting -------------------------------------------------------------------------------------


def set_defaults(kind: str, obj: Obj, old: Obj | None, config: WebhookConfig) -> None:
    """SetDefaults of `kind`, in place (`old` is the stored object on an update)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    metadata = obj.get("metadata") or {}
    if kind in ("Service", "Configuration"):
        previous = ((old or {}).get("spec") or {}).get("template") if old else None
        _default_template(spec, metadata, previous, config)
    if kind == "Service":
        _default_traffic(spec, default_configuration=True)
    elif kind == "Route":
        _default_traffic(spec, default_configuration=False)
    elif kind == "Revision" and old is None:
        _default_revision_spec(spec, metadata, config)


def _default_template(spec: Obj, parent: Obj, previous: Obj | None, config: WebhookConfig) -> None:
    template = spec.get("template")
    if not isinstance(template, dict):
        return
    name = (template.get("metadata") or {}).get("name")
    if previous is not None and name and name == (previous.get("metadata") or {}).get("name"):
        return  # BYO revision name unchanged: defaulting would suggest changes that conflict with it
    if isinstance(template.get("spec"), dict):
        _default_revision_spec(template["spec"], parent, config)


def _default_traffic(spec: Obj, *, default_configuration: bool) -> None:
    traffic = spec.get("traffic")
    if not traffic and default_configuration:
        spec["traffic"] = traffic = [{"percent": 100, "latestRevision": True}]
    for target in traffic or []:
        if isinstance(target, dict):
            target.setdefault("latestRevision", not target.get("revisionName"))
            target.setdefault("percent", 0)


def _default_revision_spec(spec: Obj, parent: Obj, config: WebhookConfig) -> None:
    defaults = config.defaults
    if not spec.get("timeoutSeconds"):
        spec["timeoutSeconds"] = defaults.revision_timeout_seconds
    timeout = spec["timeoutSeconds"]
    for key, default in (
        ("idleTimeoutSeconds", defaults.revision_idle_timeout_seconds),
        ("responseStartTimeoutSeconds", defaults.revision_response_start_timeout_seconds),
    ):
        if key not in spec and default != 0 and default < timeout:
            spec[key] = default
    spec.setdefault("containerConcurrency", defaults.container_concurrency)
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    taken = {c.get("name") for c in containers} | {c.get("name") for c in spec.get("initContainers") or []}
    default_name = defaults.user_container_name(parent)
    suffix = 0
    for container in containers:
        if container.get("name"):
            continue
        name = default_name
        if len(containers) > 1 or name in taken:
            while True:
                name = f"{default_name}-{suffix}"
                suffix += 1
                if name not in taken:
                    break
        container["name"] = name
    for container in containers:
        _default_container(spec, container, serving=len(containers) == 1 or bool(container.get("ports")), config=config)
    if "enableServiceLinks" not in spec and defaults.enable_service_links is not None:
        spec["enableServiceLinks"] = defaults.enable_service_links


def _default_container(spec: Obj, container: Obj, *, serving: bool, config: WebhookConfig) -> None:
    resources = container.setdefault("resources", {})
    for kind, quantities in config.defaults.resources.items():
        current = resources.setdefault(kind, {})
        for name, quantity in quantities.items():
            current.setdefault(name, quantity)
    if serving:
        probe = container.get("readinessProbe")
        if not isinstance(probe, dict):
            probe = container["readinessProbe"] = {}
        if not any(probe.get(handler) is not None for handler in ("tcpSocket", "httpGet", "exec", "grpc")):
            probe["tcpSocket"] = {}
    probe = container.get("readinessProbe")
    if isinstance(probe, dict):
        if not probe.get("successThreshold"):
            probe["successThreshold"] = 1
        if probe.get("periodSeconds"):
            probe.setdefault("failureThreshold", 3)
            probe.setdefault("timeoutSeconds", 1)
    writable = {
        v.get("name")
        for v in spec.get("volumes") or []
        if isinstance(v, dict) and any(k in v for k in ("emptyDir", "persistentVolumeClaim", "ephemeral"))
    }
    for mount in container.get("volumeMounts") or []:
        if isinstance(mount, dict) and mount.get("name") not in writable:
            mount["readOnly"] = True


# -- validation -------------------------------------------------------------------------------------


def validate(kind: str, obj: Obj, old: Obj | None, config: WebhookConfig) -> Errors:
    """Validate of `kind` (create when `old` is None, else update); an empty list means admitted."""
    metadata = obj.get("metadata") or {}
    raw_spec = obj.get("spec")
    spec: Obj = raw_spec if isinstance(raw_spec, dict) else {}
    annotations = metadata.get("annotations") or {}
    if kind == "Revision":
        errors = fe.via(_autoscaling_annotations(annotations, config.autoscaler), "annotations")
        errors += fe.via(_owner_label(metadata, keys.CONFIGURATION_LABEL, "Configuration"), "labels")
        errors = fe.via(errors, "metadata")
        if old is not None:
            if old.get("spec") != obj.get("spec"):
                return [fe.FieldError("Immutable fields changed (-old +new)", ("spec",), _diff(old["spec"], spec))]
            return errors
        return errors + fe.via(_revision_spec(spec, config), "spec")

    errors = fe.via(_no_autoscaling_annotations(annotations), "annotations")
    if kind in ("Service", "Route"):
        errors += fe.via(
            _whole_seconds(annotations, keys.ROLLOUT_DURATION_ANNOTATIONS, "rollout-duration"), "annotations"
        )
    if kind in ("Configuration", "Route"):
        errors += fe.via(_owner_label(metadata, keys.SERVICE_LABEL, "Service"), "labels")
    errors = fe.via(errors, "metadata")
    if kind in ("Service", "Configuration"):
        errors += fe.via(_template(spec.get("template"), metadata, config), "spec", "template")
    if kind in ("Service", "Route"):
        traffic = fe.via(_traffic_list(spec.get("traffic") or [], default_configuration=kind == "Service"), "traffic")
        errors += fe.via(traffic, "spec")
    if old is not None and kind in ("Service", "Configuration"):
        errors += fe.via(
            _name_change(spec.get("template"), (old.get("spec") or {}).get("template")), "spec", "template"
        )
    return errors


def denial(errors: Errors) -> str:
    """The message the apiserver returns for a refused request (status 400, reason BadRequest)."""
    return f'admission webhook "{VALIDATION_WEBHOOK}" denied the request: validation failed: {fe.render(errors)}'


def _diff(old: Any, new: Any) -> str:
    """A short -old +new rendering of a changed spec, as kmp.ShortDiff's spirit."""
    before = json.dumps(old, indent=1, sort_keys=True).splitlines()
    after = json.dumps(new, indent=1, sort_keys=True).splitlines()
    changed = [line for line in difflib.unified_diff(before, after, lineterm="", n=0) if line[:1] in "+-"]
    return "\n".join(line for line in changed if not line.startswith(("+++", "---")))


def _owner_label(metadata: Obj, label: str, owner_kind: str) -> Errors:
    value = (metadata.get("labels") or {}).get(label)
    if value is None:
        return []
    owners = metadata.get("ownerReferences") or []
    if any(ref.get("kind") == owner_kind and ref.get("name") == value for ref in owners if isinstance(ref, dict)):
        return []
    return fe.missing_field(label)


def _no_autoscaling_annotations(annotations: Mapping[str, str]) -> Errors:
    errors: Errors = []
    for key in sorted(annotations):
        if key.startswith(keys.AUTOSCALING_GROUP):
            errors += fe.invalid_key_name(
                key,
                fe.CURRENT,
                'autoscaling annotations must be put under "spec.template.metadata.annotations" to work',
            )
    return errors


def _whole_seconds(annotations: Mapping[str, str], key_priority: keys.KeyPriority, label: str) -> Errors:
    """A duration annotation (rollout-duration, progress-deadline): parseable, whole seconds, not negative."""
    found = keys.lookup(annotations, key_priority)
    if not found or not found[1]:
        return []
    key, value = found
    try:
        duration = parse_duration(value)
    except ValueError:
        return fe.invalid_value(value, key)
    if duration % SECOND:
        return fe.generic(f"{label}={value} is not at second precision", key)
    if duration < 0:
        return fe.generic(f"{label}={value} must be positive", key)
    return []


def _template(template: Any, parent: Obj, config: WebhookConfig) -> Errors:
    if not isinstance(template, dict):
        return []
    metadata = template.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    errors = fe.via(_revision_spec(template.get("spec") or {}, config), "spec")
    errors += fe.via(_autoscaling_annotations(annotations, config.autoscaler), "metadata.annotations")
    errors += _revision_name(metadata.get("name") or "", metadata.get("generateName") or "", parent)
    errors += fe.via(
        _whole_seconds(annotations, (keys.PROGRESS_DEADLINE_ANNOTATION,), "progress-deadline"), "metadata.annotations"
    )
    return errors


def _name_change(template: Any, previous: Any) -> Errors:
    """VerifyNameChange: a template that names its revision must change that name when it changes."""
    if not isinstance(template, dict) or not isinstance(previous, dict):
        return []
    name = (template.get("metadata") or {}).get("name")
    if not name or name != (previous.get("metadata") or {}).get("name") or template == previous:
        return []
    return [
        fe.FieldError(
            "Saw the following changes without a name change (-old +new)", ("metadata.name",), _diff(previous, template)
        )
    ]


def _revision_name(name: str, generate_name: str, parent: Obj) -> Errors:
    if generate_name and not _is_dns1035_label(generate_name, prefix=True):
        return fe.invalid_value(f"not a DNS 1035 label prefix: [{DNS1035_LABEL_ERROR}]", "metadata.generateName")
    if not name:
        return []
    if not _is_dns1035_label(name, prefix=False):
        return fe.invalid_value(f"not a DNS 1035 label: [{DNS1035_LABEL_ERROR}]", "metadata.name")
    parent_name = parent.get("name") or ""
    if not parent_name and parent.get("generateName"):
        return fe.disallowed_fields("metadata.name")
    prefix = parent_name + "-"
    if not name.startswith(prefix):
        return fe.invalid_value(f'"{name}" must have prefix "{prefix}"', "metadata.name")
    return []


def _is_dns1035_label(value: str, *, prefix: bool) -> bool:
    if prefix:
        value = value[:-1] if value.endswith("-") else value
    return len(value) <= DNS1123_LABEL_MAX and bool(DNS1035_LABEL.fullmatch(value))


def _traffic_list(traffic: list[Any], *, default_configuration: bool) -> Errors:
    """validateTrafficList: each target, the tags, and percents that sum to 100."""
    errors: Errors = []
    tags: dict[str, int] = {}
    total = 0
    for index, target in enumerate(traffic):
        if not isinstance(target, dict):
            continue
        errors += fe.via_index(_traffic_target(target, default_configuration=default_configuration), index)
        percent = target.get("percent")
        if isinstance(percent, int):
            total += percent
        tag = target.get("tag") or ""
        if not tag:
            continue
        if not _is_dns1035_label(tag, prefix=False):
            errors += fe.invalid_array_value(f"not a DNS 1035 label: [{DNS1035_LABEL_ERROR}]", "tag", index)
        if tag in tags:
            errors.append(fe.FieldError(f'Multiple definitions for "{tag}"', (f"[{index}].tag", f"[{tags[tag]}].tag")))
        else:
            tags[tag] = index
    if total != 100:
        errors += fe.generic(f"Traffic targets sum to {total}, want 100", fe.CURRENT)
    return errors


def _traffic_target(target: Obj, *, default_configuration: bool) -> Errors:
    errors: Errors = []
    revision = target.get("revisionName") or ""
    configuration = target.get("configurationName") or ""
    latest = target.get("latestRevision")
    if latest is not None and bool(revision) == latest:
        errors += fe.generic(
            f'may not set revisionName "{revision}" when latestRevision is {"true" if latest else "false"}',
            "latestRevision",
        )
    if default_configuration and configuration:
        errors += fe.disallowed_fields("configurationName")
    elif revision and configuration:
        errors += fe.multiple_one_of("revisionName", "configurationName")
    elif revision:
        if len(revision) > DNS1123_LABEL_MAX or not QUALIFIED_NAME_PART.fullmatch(revision):
            errors += fe.invalid_key_name(revision, "revisionName", QUALIFIED_NAME_ERROR)
    elif configuration:
        if len(configuration) > DNS1123_LABEL_MAX or not QUALIFIED_NAME_PART.fullmatch(configuration):
            errors += fe.invalid_key_name(configuration, "configurationName", QUALIFIED_NAME_ERROR)
    elif not default_configuration:
        errors += fe.missing_one_of("revisionName", "configurationName")
    percent = target.get("percent")
    if isinstance(percent, int) and not 0 <= percent <= 100:
        errors += fe.out_of_bounds(percent, 0, 100, "percent")
    if target.get("url"):
        errors += fe.disallowed_fields("url")
    return errors


# -- the revision spec --------------------------------------------------------------------------------


def _revision_spec(spec: Obj, config: WebhookConfig) -> Errors:
    errors = _pod_spec(spec, config)
    timeout = spec.get("timeoutSeconds")
    if isinstance(timeout, int) and timeout != 0:
        maximum = config.defaults.max_revision_timeout_seconds
        if not 0 <= timeout <= maximum:
            errors += fe.out_of_bounds(timeout, 0, maximum, "timeoutSeconds")
    concurrency = spec.get("containerConcurrency")
    if isinstance(concurrency, int):
        lowest = 0 if config.defaults.allow_container_concurrency_zero else 1
        highest = config.defaults.container_concurrency_max_limit
        if not lowest <= concurrency <= highest:
            errors += fe.out_of_bounds(concurrency, lowest, highest, "containerConcurrency")
    return errors


def _pod_spec(spec: Obj, config: WebhookConfig) -> Errors:
    errors: Errors = []
    disallowed = []
    for key, value in spec.items():
        if key in _POD_FIELDS or value in (None, False, "", [], {}):
            continue
        flag = _POD_FEATURE_FIELDS.get(key)
        if flag is None or not config.enabled(flag):
            disallowed.append(key)
    if spec.get("automountServiceAccountToken") is True:
        disallowed.append("automountServiceAccountToken")
    if disallowed:
        errors += fe.disallowed_fields(*sorted(disallowed))
    volumes: dict[str, Obj] = {str(v.get("name")): v for v in spec.get("volumes") or [] if isinstance(v, dict)}
    errors += fe.via(_volumes(spec.get("volumes") or [], spec, config), "volumes")
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    port_count = sum(len(c.get("ports") or []) for c in containers)
    serving_port: Obj = next((c["ports"][0] for c in containers if c.get("ports")), {})
    if port_count == 0 and len(containers) > 1:
        errors += fe.via(fe.missing_field("ports"), "containers[*]")
    elif port_count > 1:
        more = fe.FieldError(
            "more than one container port is set", ("ports",), "Only a single port is allowed across all containers"
        )
        errors += fe.via([more], "containers[*]")
    if not containers:
        errors += fe.missing_field("containers")
    if len(containers) > 1 and not config.enabled("multi-container"):
        errors += fe.generic("multi-container is off, but found 2 containers", "containers")
    names: set[str] = set()
    for index, container in enumerate(containers):
        serving = len(containers) == 1 or bool(container.get("ports"))
        found = _container(container, volumes, serving_port.get("name") or "http", serving=serving)
        name = str(container.get("name") or "")
        if name in names:
            found += fe.generic(f'duplicate container name "{name}"', "name")
        names.add(name)
        errors += fe.via(fe.via_index(found, index), "containers")
    account = spec.get("serviceAccountName")
    if account and not (len(account) <= DNS1123_SUBDOMAIN_MAX and DNS1123_SUBDOMAIN.fullmatch(account)):
        errors += fe.invalid_value(account, "serviceAccountName")
    return errors


def _volumes(volumes: list[Any], spec: Obj, config: WebhookConfig) -> Errors:
    mounted = {
        m.get("name")
        for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
        if isinstance(c, dict)
        for m in c.get("volumeMounts") or []
        if isinstance(m, dict)
    }
    errors: Errors = []
    seen: set[str] = set()
    for index, volume in enumerate(volumes):
        if not isinstance(volume, dict):
            continue
        name = volume.get("name") or ""
        found: Errors = []
        if name in seen:
            found += fe.generic(f'duplicate volume name "{name}"', "name")
        elif name not in mounted:
            found += fe.generic(f'volume with name "{name}" not mounted', "name")
        seen.add(name)
        for source, (flag, label) in _VOLUME_FEATURES.items():
            if source in volume and not config.enabled(flag):
                found += fe.generic(f"{label} volume support is disabled, but found {label} volume {name}", fe.CURRENT)
        errors += fe.via_index(found, index)
    return errors


def _container(container: Obj, volumes: Mapping[str, Obj], port_name: str, *, serving: bool) -> Errors:
    errors: Errors = []
    name = container.get("name")
    if name in _RESERVED_CONTAINER_NAMES:
        errors += fe.generic(f'"{name}" is a reserved container name', "name")
    env_errors: Errors = []
    reserved = _RESERVED_ENV if serving else _RESERVED_ENV - {"PORT"}
    for index, variable in enumerate(container.get("env") or []):
        if isinstance(variable, dict) and variable.get("name") in reserved:
            env_errors += fe.via_index(
                fe.generic(f'"{variable["name"]}" is a reserved environment variable', "name"), index
            )
    errors += fe.via(env_errors, "env")
    if not container.get("image"):
        errors += fe.missing_field("image")
    ports = container.get("ports") or []
    if ports and isinstance(ports[0], dict):
        port = ports[0]
        number = port.get("containerPort")
        port_errors: Errors = []
        if number in _RESERVED_PORTS:
            port_errors += fe.invalid_value(
                f"{number} is a reserved port",
                "containerPort",
                f"{number} is a reserved port, please use a different value",
            )
        if port.get("protocol") not in (None, "", "TCP"):
            port_errors += fe.invalid_value(port["protocol"], "protocol")
        if (port.get("name") or "") not in _PORT_NAMES:
            port_errors.append(
                fe.FieldError(
                    f"Port name {port['name']} is not allowed",
                    (fe.CURRENT,),
                    "Name must be empty, or one of: 'h2c', 'http1'",
                )
            )
        errors += fe.via(port_errors, "ports")
    if serving:
        for probe_kind in ("livenessProbe", "readinessProbe", "startupProbe"):
            errors += fe.via(
                _probe(container.get(probe_kind), port_name, readiness=probe_kind == "readinessProbe"), probe_kind
            )
    policy = container.get("terminationMessagePolicy")
    if policy not in (None, "", "File", "FallbackToLogsOnError"):
        errors += fe.invalid_value(policy, "terminationMessagePolicy")
    mount_errors: Errors = []
    for index, mount in enumerate(container.get("volumeMounts") or []):
        if not isinstance(mount, dict):
            continue
        found: Errors = []
        volume = volumes.get(str(mount.get("name")))
        if volume is None:
            found += fe.generic("volumeMount has no matching volume", "name")
        path = mount.get("mountPath") or ""
        if not path:
            found += fe.missing_field("mountPath")
        elif _clean(path) in _RESERVED_PATHS:
            found += fe.generic(f'mountPath "{_clean(path)}" is a reserved path', "mountPath")
        elif not path.startswith("/"):
            found += fe.invalid_value(path, "mountPath")
        writable = volume is not None and any(k in volume for k in ("emptyDir", "persistentVolumeClaim", "ephemeral"))
        if volume is not None and not writable and not mount.get("readOnly"):
            found += fe.generic("volume mount should be readOnly for this type of volume", "readOnly")
        mount_errors += fe.via_index(found, index)
    errors += fe.via(mount_errors, "volumeMounts")
    return errors


def _clean(path: str) -> str:
    parts = [p for p in path.split("/") if p and p != "."]
    return "/" + "/".join(parts)


def _probe(probe: Any, port_name: str, *, readiness: bool) -> Errors:
    if not isinstance(probe, dict):
        return []
    errors: Errors = []
    handlers = [name for name in ("httpGet", "tcpSocket", "exec", "grpc") if probe.get(name) is not None]
    for handler in ("httpGet", "tcpSocket"):
        action = probe.get(handler)
        port = action.get("port") if isinstance(action, dict) else None
        if isinstance(port, str) and port != port_name:
            errors += fe.invalid_value(port, f"{handler}.port", "Probe port must match container port")
    if not handlers:
        errors += fe.missing_one_of("httpGet", "tcpSocket", "exec", "grpc")
    elif len(handlers) > 1:
        errors += fe.multiple_one_of(*[h if h != "grpc" else "gRPC" for h in handlers])
    if readiness:
        period = probe.get("periodSeconds") or 0
        for key, lowest, value in (
            ("periodSeconds", 0, period),
            ("initialDelaySeconds", 0, probe.get("initialDelaySeconds") or 0),
            ("successThreshold", 1, probe.get("successThreshold", 1)),
        ):
            if value < lowest:
                errors += fe.out_of_bounds(value, lowest, 2147483647, key)
        if period == 0:
            for key in ("failureThreshold", "timeoutSeconds"):
                if probe.get(key):
                    errors += fe.generic(f"{key} is disallowed when periodSeconds is zero", key)
        else:
            for key in ("timeoutSeconds", "failureThreshold"):
                if (probe.get(key) or 0) < 1:
                    errors += fe.out_of_bounds(probe.get(key) or 0, 1, 2147483647, key)
    return errors


# -- autoscaling annotations --------------------------------------------------------------------------


def _autoscaling_annotations(annotations: Mapping[str, str], config: AutoscalerConfig) -> Errors:
    """autoscaling.ValidateAnnotations: class, min/max/activation/initial scale, floats, windows, metric."""
    errors: Errors = []
    found = keys.lookup(annotations, keys.CLASS)
    autoscaler_class = found[1] if found else None
    if found and found[1].endswith(".knative.dev") and found[1] not in (keys.KPA_CLASS, keys.HPA_CLASS):
        errors += fe.invalid_value(found[1], found[0])
    errors += _scale_annotations(annotations, config)
    errors += _float_annotations(annotations)
    for key_priority, lowest in ((keys.WINDOW, WINDOW_MIN), (keys.SCALE_DOWN_DELAY, 0)):
        errors += _duration_annotation(annotations, key_priority, lowest)
    retention = keys.lookup(annotations, keys.SCALE_TO_ZERO_POD_RETENTION_PERIOD)
    if retention:
        try:
            duration = parse_duration(retention[1])
            if not 0 <= duration <= WINDOW_MAX:
                errors += fe.out_of_bounds(retention[1], "0s", format_duration(WINDOW_MAX), retention[0])
        except ValueError:
            errors += fe.invalid_value(retention[1], retention[0])
    metric = keys.lookup(annotations, keys.METRIC)
    if metric:
        effective = autoscaler_class or config.pod_autoscaler_class
        if (effective == keys.KPA_CLASS and metric[1] not in (keys.CONCURRENCY, keys.RPS)) or (
            effective == keys.HPA_CLASS and metric[1] == ""
        ):
            errors += fe.invalid_value(metric[1], keys.METRIC[0])
    algorithm = keys.lookup(annotations, keys.METRIC_AGGREGATION_ALGORITHM)
    known_algorithms = ("linear", "weighted-exponential", "weightedExponential")
    if autoscaler_class == keys.KPA_CLASS and algorithm and algorithm[1] and algorithm[1] not in known_algorithms:
        errors += fe.invalid_value(algorithm[1], algorithm[0])
    initial = keys.lookup(annotations, keys.INITIAL_SCALE)
    if initial:
        key, value = initial
        if not re.fullmatch(r"[+-]?[0-9]+", value):
            errors += fe.invalid_value(value, key)
        elif int(value) < 0:
            errors += fe.invalid_value(value, key + " must be greater than 0")
        elif int(value) == 0 and not config.allow_zero_initial_scale:
            errors += fe.invalid_value(value, key + "=0 not allowed by cluster")
    return errors


def _int_at_least_zero(annotations: Mapping[str, str], key_priority: keys.KeyPriority) -> tuple[int, Errors]:
    found = keys.lookup(annotations, key_priority)
    if not found:
        return 0, []
    key, value = found
    try:
        number = parse_int32(value)
    except ValueError as exc:
        if "out of range" in str(exc):
            return 0, fe.out_of_bounds(value, 0, 2147483647, key)
        return 0, fe.invalid_value(value, key)
    if number < 0:
        return 0, fe.out_of_bounds(value, 0, 2147483647, key)
    return number, []


def _scale_annotations(annotations: Mapping[str, str], config: AutoscalerConfig) -> Errors:
    low, errors = _int_at_least_zero(annotations, keys.MIN_SCALE)
    high, high_errors = _int_at_least_zero(annotations, keys.MAX_SCALE)
    errors += high_errors
    if high != 0 and high < low:
        errors.append(
            fe.FieldError(f"max-scale={high} is less than min-scale={low}", (keys.MAX_SCALE[0], keys.MIN_SCALE[0]))
        )
    found_max = keys.lookup(annotations, keys.MAX_SCALE)
    if found_max and config.max_scale_limit > 0:
        if high > config.max_scale_limit:
            errors += fe.out_of_bounds(high, 1, config.max_scale_limit, found_max[0])
        if high == 0:
            errors += fe.generic(f"max-scale=0 (unlimited), must be less than {config.max_scale_limit}", found_max[0])
    activation = keys.lookup(annotations, keys.ACTIVATION_SCALE)
    if activation:
        key, value = activation
        try:
            floor = parse_int32(value)
        except ValueError:
            return [*errors, *fe.invalid_value(value, key)]
        if low > floor:
            errors += fe.generic(f"min-scale={low} is greater than activation-scale={floor}", key)
        elif high < floor and high != 0:
            errors += fe.generic(f"max-scale={high} is less than activation-scale={floor}", key)
        elif floor < 2:
            errors += fe.generic(f"activation-scale={floor} must be greater than 1", key)
    return errors


def _float_annotations(annotations: Mapping[str, str]) -> Errors:
    errors: Errors = []
    bounded = (
        (keys.PANIC_WINDOW_PERCENTAGE, PANIC_WINDOW_PERCENTAGE_MIN, PANIC_WINDOW_PERCENTAGE_MAX),
        (keys.PANIC_THRESHOLD_PERCENTAGE, 110.0, 1000.0),
        (keys.TARGET_UTILIZATION_PERCENTAGE, 1.0, 100.0),
    )
    for key_priority, lowest, highest in bounded:
        found = keys.lookup(annotations, key_priority)
        if not found:
            continue
        number = _float_or_none(found[1])
        if number is None:
            errors += fe.invalid_value(found[1], found[0])
        elif not lowest <= number <= highest:
            errors += fe.out_of_bounds(found[1], lowest, highest, found[0])
    target = keys.lookup(annotations, keys.TARGET)
    if target:
        number = _float_or_none(target[1])
        if number is None:
            errors += fe.invalid_value(target[1], target[0])
        elif number < TARGET_MIN:
            errors += fe.generic(f"target {target[1]} should be at least {TARGET_MIN:g}", target[0])
    burst = keys.lookup(annotations, keys.TARGET_BURST_CAPACITY)
    if burst:
        number = _float_or_none(burst[1])
        if number is None or (number < 0 and number != -1):
            errors += fe.invalid_value(burst[1], burst[0])
    return errors


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _duration_annotation(annotations: Mapping[str, str], key_priority: keys.KeyPriority, lowest: int) -> Errors:
    found = keys.lookup(annotations, key_priority)
    if not found:
        return []
    key, value = found
    # The window annotation is reported under its canonical key, the delay under the spelling found.
    path = key_priority[0] if key_priority == keys.WINDOW else key
    try:
        duration = parse_duration(value)
    except ValueError:
        return fe.invalid_value(value, path)
    if not lowest <= duration <= WINDOW_MAX:
        return fe.out_of_bounds(value, format_duration(lowest), format_duration(WINDOW_MAX), path)
    if duration % SECOND:
        return fe.generic("must be specified with at most second precision", path)
    return []
