"""Knative Serving's ConfigMaps in namespace knative-serving, parsed and validated as upstream does.

    config-autoscaler  pkg/autoscaler/config/config.go        AutoscalerConfig
    config-defaults    pkg/apis/config/defaults.go            DefaultsConfig
    config-domain      pkg/reconciler/route/config/domain.go  DomainConfig
    config-network     knative.dev/networking/pkg/config      NetworkConfig

Each `from_data` takes a ConfigMap's `data` (None: the ConfigMap does not exist) and returns the
configuration with upstream's defaults for missing keys, or raises ConfigError with upstream's
message. The defaults are those of the reference ConfigMaps in shared/reference, which localcluster
installs at bootstrap: their `data` holds only the documented `_example`, so the code's defaults apply.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from localcluster.knative import _go
from localcluster.knative._go import SECOND, TemplateError, execute_template, format_duration

SYSTEM_NAMESPACE = "knative-serving"
AUTOSCALER = "config-autoscaler"
DEFAULTS = "config-defaults"
DOMAIN = "config-domain"
NETWORK = "config-network"
FEATURES = "config-features"
#: The ConfigMaps localcluster installs from shared/reference at bootstrap.
REFERENCE_FILES = {
    AUTOSCALER: "knative-config-autoscaler.yaml",
    DEFAULTS: "knative-config-defaults.yaml",
    DOMAIN: "knative-config-domain.yaml",
    FEATURES: "knative-config-features.yaml",
}
EXAMPLE_KEY = "_example"
CLUSTER_DOMAIN = "cluster.local"

#: Bounds from pkg/apis/autoscaling/register.go.
TARGET_MIN = 0.01
WINDOW_MIN = 6 * SECOND
WINDOW_MAX = 3600 * SECOND
PANIC_WINDOW_PERCENTAGE_MIN = 1.0
PANIC_WINDOW_PERCENTAGE_MAX = 100.0
#: Granularity of the metric buckets and the autoscaler's metric period (pkg/autoscaler/config).
BUCKET_SIZE = 1 * SECOND

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")


class ConfigError(ValueError):
    """A ConfigMap value upstream would refuse; the message is upstream's."""


Parser = Callable[[str], Any]


def _parse(data: Mapping[str, str], target: dict[str, Any], keys: Mapping[str, tuple[str, Parser]]) -> None:
    """cm.Parse: each present key parsed into its field, the first failure reported as upstream words it."""
    for key, (name, parse) in keys.items():
        if key in data:
            try:
                target[name] = parse(data[key])
            except ValueError as exc:
                raise ConfigError(f'failed to parse data: failed to parse "{key}": {exc}') from None


def _quantity(text: str) -> str:
    if not _QUANTITY.match(text):
        raise ValueError("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    return text


# -- config-autoscaler --------------------------------------------------------------------------


@dataclass(frozen=True)
class AutoscalerConfig:
    """Durations are in nanoseconds, as Go's time.Duration, so precision rules check exactly."""

    enable_scale_to_zero: bool = True
    container_concurrency_target_fraction: float = 0.7
    container_concurrency_target_default: float = 100.0
    target_utilization: float = 0.7
    rps_target_default: float = 200.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    target_burst_capacity: float = 211.0
    panic_window_percentage: float = 10.0
    activator_capacity: float = 100.0
    panic_threshold_percentage: float = 200.0
    stable_window: int = 60 * SECOND
    scale_to_zero_grace_period: int = 30 * SECOND
    scale_to_zero_pod_retention_period: int = 0
    scale_down_delay: int = 0
    pod_autoscaler_class: str = "kpa.autoscaling.knative.dev"
    allow_zero_initial_scale: bool = False
    initial_scale: int = 1
    min_scale: int = 0
    max_scale: int = 0
    max_scale_limit: int = 0

    @classmethod
    def from_data(cls, data: Mapping[str, str] | None) -> AutoscalerConfig:
        """NewConfigFromMap: defaults, the ConfigMap's keys over them, then validate()."""
        values: dict[str, Any] = {}
        _parse(
            data or {},
            values,
            {
                "pod-autoscaler-class": ("pod_autoscaler_class", str.strip),
                "enable-scale-to-zero": ("enable_scale_to_zero", _go.parse_bool),
                "allow-zero-initial-scale": ("allow_zero_initial_scale", _go.parse_bool),
                "max-scale-up-rate": ("max_scale_up_rate", _go.parse_float),
                "max-scale-down-rate": ("max_scale_down_rate", _go.parse_float),
                "container-concurrency-target-percentage": ("container_concurrency_target_fraction", _go.parse_float),
                "container-concurrency-target-default": ("container_concurrency_target_default", _go.parse_float),
                "requests-per-second-target-default": ("rps_target_default", _go.parse_float),
                "target-burst-capacity": ("target_burst_capacity", _go.parse_float),
                "panic-window-percentage": ("panic_window_percentage", _go.parse_float),
                "activator-capacity": ("activator_capacity", _go.parse_float),
                "panic-threshold-percentage": ("panic_threshold_percentage", _go.parse_float),
                "initial-scale": ("initial_scale", _go.parse_int32),
                "min-scale": ("min_scale", _go.parse_int32),
                "max-scale": ("max_scale", _go.parse_int32),
                "max-scale-limit": ("max_scale_limit", _go.parse_int32),
                "stable-window": ("stable_window", _go.parse_duration),
                "scale-down-delay": ("scale_down_delay", _go.parse_duration),
                "scale-to-zero-grace-period": ("scale_to_zero_grace_period", _go.parse_duration),
                "scale-to-zero-pod-retention-period": ("scale_to_zero_pod_retention_period", _go.parse_duration),
            },
        )
        config = replace(cls(), **values)
        # Percentages above 1 are percents; (0, 1] are fractions, for legacy reasons.
        if config.container_concurrency_target_fraction > 1.0:
            config = replace(
                config, container_concurrency_target_fraction=config.container_concurrency_target_fraction / 100.0
            )
        config.validate()
        return config

    def validate(self) -> None:
        """pkg/autoscaler/config.validate, check by check."""
        problems: list[str] = []
        if self.scale_to_zero_grace_period <= 0:
            problems.append(
                f"scale-to-zero-grace-period must be positive, was: {format_duration(self.scale_to_zero_grace_period)}"
            )
        elif self.scale_down_delay < 0:
            problems.append(f"scale-down-delay cannot be negative, was: {format_duration(self.scale_down_delay)}")
        elif self.scale_down_delay % SECOND:
            problems.append(
                f"scale-down-delay = {format_duration(self.scale_down_delay)}, must be specified with at most "
                "second precision"
            )
        elif self.scale_to_zero_pod_retention_period < 0:
            problems.append(
                "scale-to-zero-pod-retention-period cannot be negative, was: "
                f"{format_duration(self.scale_to_zero_pod_retention_period)}"
            )
        elif self.target_burst_capacity < 0 and self.target_burst_capacity != -1:
            problems.append(
                "target-burst-capacity must be either non-negative or -1 (for unlimited), was: "
                f"{self.target_burst_capacity:f}"
            )
        elif not 0 < self.container_concurrency_target_fraction <= 1:
            problems.append(
                f"container-concurrency-target-percentage = {self.container_concurrency_target_fraction:f} is "
                "outside of valid range of (0, 100]"
            )
        elif self.container_concurrency_target_fraction * self.container_concurrency_target_default < TARGET_MIN:
            target = self.container_concurrency_target_fraction * self.container_concurrency_target_default
            problems.append(
                "container-concurrency-target-percentage and container-concurrency-target-default yield target "
                f"concurrency of {_go.format_float(target)}, can't be less than {_go.format_float(TARGET_MIN)}"
            )
        elif self.rps_target_default < TARGET_MIN:
            problems.append(
                f"requests-per-second-target-default must be at least {_go.format_float(TARGET_MIN)}, was: "
                f"{_go.format_float(self.rps_target_default)}"
            )
        elif self.activator_capacity < 1:
            problems.append(f"activator-capacity = {_go.format_float(self.activator_capacity)}, must be at least 1")
        elif self.max_scale_up_rate <= 1.0:
            problems.append(f"max-scale-up-rate = {_go.format_float(self.max_scale_up_rate)}, must be greater than 1.0")
        elif self.max_scale_down_rate <= 1.0:
            problems.append(
                f"max-scale-down-rate = {_go.format_float(self.max_scale_down_rate)}, must be greater than 1.0"
            )
        elif not WINDOW_MIN <= self.stable_window <= WINDOW_MAX:
            problems.append(
                f"stable-window = {format_duration(self.stable_window)}, must be in "
                f"[{format_duration(WINDOW_MIN)}; {format_duration(WINDOW_MAX)}] range"
            )
        elif self.stable_window % SECOND:
            problems.append(
                f"stable-window = {format_duration(self.stable_window)}, must be specified with at most second "
                "precision"
            )
        elif not PANIC_WINDOW_PERCENTAGE_MIN <= self.panic_window_percentage <= PANIC_WINDOW_PERCENTAGE_MAX:
            problems.append(
                f"panic-window-percentage = {_go.format_float(self.panic_window_percentage)}, must be in [1, 100] "
                "interval"
            )
        elif self.initial_scale < 0 or (self.initial_scale == 0 and not self.allow_zero_initial_scale):
            problems.append(
                f"initial-scale = {self.initial_scale}, must be at least 0 (or at least 1 when "
                "allow-zero-initial-scale is false)"
            )
        elif self.min_scale < 0:
            problems.append(f"min-scale = {self.min_scale}, must be at least 0")
        else:
            lowest_max = 1 if self.max_scale_limit > 0 else 0
            if self.max_scale < lowest_max or (self.max_scale_limit > 0 and self.max_scale > self.max_scale_limit):
                problems.append(
                    f"max-scale = {self.max_scale}, must be in [{lowest_max}, max-scale-limit({self.max_scale_limit})] "
                    "range"
                )
            elif self.max_scale_limit < 0:
                problems.append(f"max-scale-limit = {self.max_scale_limit}, must be at least 0")
            elif self.min_scale > self.max_scale > 0:
                problems.append(f"min-scale ({self.min_scale}) must be less than max-scale ({self.max_scale})")
        if problems:
            raise ConfigError(problems[0])


# -- config-defaults ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DefaultsConfig:
    revision_timeout_seconds: int = 300
    max_revision_timeout_seconds: int = 600
    revision_response_start_timeout_seconds: int = 300
    revision_idle_timeout_seconds: int = 0
    container_name_template: str = "user-container"
    init_container_name_template: str = "init-container"
    container_concurrency: int = 0
    container_concurrency_max_limit: int = 1000
    allow_container_concurrency_zero: bool = True
    enable_service_links: bool | None = False
    #: revision-cpu-request and the like, applied to containers that set none.
    resources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def from_data(cls, data: Mapping[str, str] | None) -> DefaultsConfig:
        data = data or {}
        values: dict[str, Any] = {}
        integers = {
            "revision-timeout-seconds": "revision_timeout_seconds",
            "max-revision-timeout-seconds": "max_revision_timeout_seconds",
            "revision-idle-timeout-seconds": "revision_idle_timeout_seconds",
            "container-concurrency": "container_concurrency",
            "container-concurrency-max-limit": "container_concurrency_max_limit",
        }
        _parse(
            data,
            values,
            {
                "container-name-template": ("container_name_template", str),
                "init-container-name-template": ("init_container_name_template", str),
                "allow-container-concurrency-zero": ("allow_container_concurrency_zero", _go.parse_bool),
                **{key: (name, _parse_int64) for key, name in integers.items()},
            },
        )
        if "enable-service-links" in data:
            raw = data["enable-service-links"].lower()
            values["enable_service_links"] = True if raw == "true" else False if raw == "false" else None
        resources: dict[str, dict[str, str]] = {}
        quantities: dict[str, Any] = {}
        for kind in ("request", "limit"):
            for resource in ("cpu", "memory", "ephemeral-storage"):
                key = f"revision-{resource}-{kind}"
                _parse(data, quantities, {key: (key, _quantity)})
                if key in quantities:
                    resources.setdefault(f"{kind}s", {})[resource] = quantities[key]
        values["revision_response_start_timeout_seconds"] = values.get(
            "revision_timeout_seconds", cls.revision_timeout_seconds
        )
        _parse(
            data,
            values,
            {"revision-response-start-timeout-seconds": ("revision_response_start_timeout_seconds", _parse_int64)},
        )
        config = replace(cls(), resources=resources, **values)
        config.validate()
        return config

    def validate(self) -> None:
        if self.revision_timeout_seconds > self.max_revision_timeout_seconds:
            raise ConfigError(
                f"revision-timeout-seconds ({self.revision_timeout_seconds}) cannot be greater than "
                f"max-revision-timeout-seconds ({self.max_revision_timeout_seconds})"
            )
        for key, value in (
            ("revision-response-start-timeout-seconds", self.revision_response_start_timeout_seconds),
            ("revision-idle-timeout-seconds", self.revision_idle_timeout_seconds),
        ):
            if 0 < self.revision_timeout_seconds < value:
                raise ConfigError(
                    f"{key} ({value}) cannot be greater than revision-timeout-seconds ({self.revision_timeout_seconds})"
                )
        if self.container_concurrency_max_limit < 1:
            raise ConfigError(
                f"expected 1 <= {self.container_concurrency_max_limit} <= 2147483647: container-concurrency-max-limit"
            )
        if not 0 <= self.container_concurrency <= self.container_concurrency_max_limit:
            raise ConfigError(
                f"expected 0 <= {self.container_concurrency} <= {self.container_concurrency_max_limit}: "
                "container-concurrency"
            )
        for template in (self.container_name_template, self.init_container_name_template):
            try:
                execute_template(template, _object_meta_values({}))
            except TemplateError as exc:
                raise ConfigError(f"error executing template: {exc}") from None

    def user_container_name(self, parent_metadata: Mapping[str, Any]) -> str:
        """The default name of a revision's only container (template over the parent's metadata)."""
        return execute_template(self.container_name_template, _object_meta_values(parent_metadata))


def _parse_int64(text: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    return int(text)


def _object_meta_values(metadata: Mapping[str, Any]) -> dict[str, object]:
    """The fields of metav1.ObjectMeta a container-name template can name."""
    return {
        "Name": metadata.get("name", ""),
        "GenerateName": metadata.get("generateName", ""),
        "Namespace": metadata.get("namespace", ""),
        "UID": metadata.get("uid", ""),
        "Labels": dict(metadata.get("labels") or {}),
        "Annotations": dict(metadata.get("annotations") or {}),
    }


# -- config-domain ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DomainRule:
    selector: Mapping[str, str]


@dataclass(frozen=True)
class DomainConfig:
    domains: Mapping[str, DomainRule]

    @classmethod
    def from_data(cls, data: Mapping[str, str] | None) -> DomainConfig:
        """NewDomainFromConfigMap: each key a domain with an optional label selector; a default when none."""
        domains: dict[str, DomainRule] = {}
        has_default = False
        for key, value in (data or {}).items():
            if key == EXAMPLE_KEY:
                continue
            try:
                parsed = yaml.safe_load(value) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"error unmarshaling JSON: {exc}") from None
            if not isinstance(parsed, dict):
                raise ConfigError(f"error unmarshaling JSON: {key}: the value must be an object with a selector")
            selector = parsed.get("selector") or {}
            if not isinstance(selector, dict):
                raise ConfigError(f"error unmarshaling JSON: {key}: selector must be a map of labels")
            if not selector:
                has_default = True
            domains[key] = DomainRule({str(k): str(v) for k, v in selector.items()})
        if not has_default:
            domains[f"svc.{CLUSTER_DOMAIN}"] = DomainRule({})
        return cls(domains)

    def lookup(self, labels: Mapping[str, str] | None) -> str:
        """LookupDomainForLabels: the most specific matching selector's domain (ties: the smallest name)."""
        labels = labels or {}
        if labels.get("networking.knative.dev/visibility") == "cluster-local":
            return f"svc.{CLUSTER_DOMAIN}"
        chosen, specificity = "", -1
        for domain, rule in self.domains.items():
            if any(labels.get(k) != v for k, v in rule.selector.items()) or len(rule.selector) < specificity:
                continue
            if len(rule.selector) > specificity or domain < chosen:
                chosen, specificity = domain, len(rule.selector)
        return chosen


# -- config-network -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkConfig:
    domain_template: str = "{{.Name}}.{{.Namespace}}.{{.Domain}}"
    tag_template: str = "{{.Tag}}-{{.Name}}"
    default_external_scheme: str = "http"

    @classmethod
    def from_data(cls, data: Mapping[str, str] | None) -> NetworkConfig:
        values: dict[str, Any] = {}
        names = {"domain_template": "domain-template", "tag_template": "tag-template"}
        names["default_external_scheme"] = "default-external-scheme"
        legacy = {"domain_template": "domainTemplate", "tag_template": "tagTemplate"}
        legacy["default_external_scheme"] = "defaultExternalScheme"
        for spelling in (legacy, names):
            _parse(data or {}, values, {key: (name, str.strip) for name, key in spelling.items()})
        config = replace(cls(), **values)
        config.validate()
        return config

    def validate(self) -> None:
        try:
            host = execute_template(
                self.domain_template,
                {"Name": "foo", "Namespace": "bar", "Domain": "baz.com", "Annotations": {}, "Labels": {}},
            )
            execute_template(self.tag_template, {"Name": "foo", "Tag": "v2"})
        except TemplateError as exc:
            raise ConfigError(str(exc)) from None
        if not host or "/" in host:
            raise ConfigError(f"domain template has url path: /{host.partition('/')[2]}" if host else "empty hostname")
