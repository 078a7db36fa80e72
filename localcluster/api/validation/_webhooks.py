"""Admission webhooks of the systems a real cluster would have installed, run in the admission chain.

Knative Serving installs three, and localcluster runs their rules (from `localcluster.knative`):

- `webhook.serving.knative.dev` and `validation.webhook.serving.knative.dev` default and validate
  Services, Configurations, Routes and Revisions, reading config-defaults, config-autoscaler and
  config-features from namespace knative-serving as the real webhook does;
- `config.webhook.serving.knative.dev` refuses a Knative ConfigMap the controllers could not load.

A refusal is what the apiserver answers for a denying webhook: 400 BadRequest, the message
`admission webhook "<name>" denied the request: <reason>`, and here also one `details.causes` entry
per field path, so a checker can point at the field.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from localcluster.api.errors import BadRequest, Cause
from localcluster.api.resources import ResourceType
from localcluster.knative import config as knative_config
from localcluster.knative import fielderrors, webhook
from localcluster.knative.keys import GROUP
from localcluster.store import Store

JsonObject = dict[str, Any]
CONFIG_WEBHOOK = "config.webhook.serving.knative.dev"
_EXAMPLE_CHECKSUM_ANNOTATION = "knative.dev/example-checksum"
_CONFIGMAPS = "core/configmaps"


class AdmissionChain(Protocol):
    """Where a cluster keeps its admission steps (Cluster.mutating_admission and validating_admission)."""

    mutating_admission: list[Callable[[ResourceType, JsonObject, JsonObject | None], None]]
    validating_admission: list[Callable[[ResourceType, JsonObject, JsonObject | None], None]]


class KnativeAdmission:
    """Knative Serving's three webhooks, installed into a cluster's admission chain by `register`."""

    def __init__(self, store: Store) -> None:
        self.serving = ServingWebhook(store)
        self.configmaps = ConfigMapWebhook()

    def register(self, cluster: AdmissionChain) -> None:
        cluster.mutating_admission.append(self.serving.mutate)
        cluster.validating_admission.extend([self.serving.validate, self.configmaps.validate])


def _data(store: Store, name: str) -> tuple[str, Mapping[str, str] | None]:
    entry = store.get(_CONFIGMAPS, knative_config.SYSTEM_NAMESPACE, name)
    if entry is None:
        return "", None
    return entry.obj["metadata"]["resourceVersion"], entry.obj.get("data") or {}


class ServingWebhook:
    """SetDefaults and Validate of the serving kinds, with the configuration read from knative-serving."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cached: tuple[tuple[str, ...], webhook.WebhookConfig] | None = None

    @staticmethod
    def admits(resource_type: ResourceType) -> bool:
        return resource_type.group == GROUP and resource_type.kind in webhook.KINDS

    def config(self) -> webhook.WebhookConfig:
        """The webhook's view of config-defaults, config-autoscaler and config-features (a bad one: defaults)."""
        loaded = [_data(self._store, name) for name in (knative_config.DEFAULTS, knative_config.AUTOSCALER)]
        features = _data(self._store, knative_config.FEATURES)
        versions = tuple(version for version, _data_ in [*loaded, features])
        if self._cached is None or self._cached[0] != versions:
            self._cached = (
                versions,
                webhook.WebhookConfig(
                    defaults=_or_default(
                        knative_config.DefaultsConfig.from_data, loaded[0][1], knative_config.DefaultsConfig
                    ),
                    autoscaler=_or_default(
                        knative_config.AutoscalerConfig.from_data, loaded[1][1], knative_config.AutoscalerConfig
                    ),
                    features=webhook.features_from_data(features[1]),
                ),
            )
        return self._cached[1]

    def mutate(self, resource_type: ResourceType, obj: JsonObject, old: JsonObject | None) -> None:
        if not self.admits(resource_type):
            return
        try:
            webhook.set_defaults(resource_type.kind, obj, old, self.config())
        except (TypeError, AttributeError):
            # Values of the wrong type: schema validation, next in the chain, reports them with their path.
            return

    def validate(self, resource_type: ResourceType, obj: JsonObject, old: JsonObject | None) -> None:
        if not self.admits(resource_type):
            return
        errors = webhook.validate(resource_type.kind, obj, old, self.config())
        if errors:
            causes = [
                Cause(path, error.message + (f": {error.details}" if error.details else ""))
                for error in fielderrors.merged(errors)
                for path in error.paths
            ]
            raise BadRequest(webhook.denial(errors), kind=resource_type.plural, group=GROUP, causes=causes)


def _or_default(
    parse: Callable[[Mapping[str, str] | None], Any], data: Mapping[str, str] | None, fallback: type
) -> Any:
    """A ConfigMap the config webhook would have refused cannot be stored; one from before it was: defaults."""
    try:
        return parse(data)
    except knative_config.ConfigError:
        return fallback()


def example_checksum(example: str) -> str:
    """configmap.Checksum: crc32 of the trimmed text, each run of newlines written as a literal `\\n`."""
    normalized = re.sub(r"(?:\r?\n)+", r"\\n", example.strip())
    return f"{zlib.crc32(normalized.encode()):08x}"


class ConfigMapWebhook:
    """config.webhook.serving.knative.dev: Knative's ConfigMaps must load, and `_example` stays untouched."""

    _PARSERS: Mapping[str, Callable[[Mapping[str, str] | None], Any]] = {
        knative_config.AUTOSCALER: knative_config.AutoscalerConfig.from_data,
        knative_config.DEFAULTS: knative_config.DefaultsConfig.from_data,
        knative_config.DOMAIN: knative_config.DomainConfig.from_data,
        "config-network": knative_config.NetworkConfig.from_data,
    }

    def validate(self, resource_type: ResourceType, obj: JsonObject, old: JsonObject | None) -> None:
        if resource_type.group != "" or resource_type.kind != "ConfigMap":
            return
        metadata = obj.get("metadata") or {}
        parse = self._PARSERS.get(metadata.get("name", ""))
        if metadata.get("namespace") != knative_config.SYSTEM_NAMESPACE or parse is None:
            return
        data = obj.get("data") or {}
        example = data.get(knative_config.EXAMPLE_KEY)
        checksum = (metadata.get("annotations") or {}).get(_EXAMPLE_CHECKSUM_ANNOTATION)
        if isinstance(example, str) and checksum and checksum != example_checksum(example):
            self._deny(
                f'the update modifies a key in "{knative_config.EXAMPLE_KEY}" which is probably not what you want. '
                'Instead, copy the respective setting to the top-level of the ConfigMap, directly below "data"'
            )
        try:
            parse(data)
        except knative_config.ConfigError as exc:
            self._deny(str(exc))

    @staticmethod
    def _deny(reason: str) -> None:
        raise BadRequest(
            f'admission webhook "{CONFIG_WEBHOOK}" denied the request: validation failed: {reason}',
            kind="configmaps",
            causes=[Cause("data", reason)],
        )
