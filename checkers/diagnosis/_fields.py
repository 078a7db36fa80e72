"""Typed access to the fields every object read from the API has, though the client types them Optional."""

from __future__ import annotations

from typing import Any

from kubernetes.client import V1ObjectMeta, V1PodSpec, V1ServiceSpec


def meta(obj: Any) -> V1ObjectMeta:
    metadata = obj.metadata
    if metadata is None:
        raise ValueError(f"a {type(obj).__name__} without metadata")
    return metadata


def name_of(obj: Any) -> str:
    return str(meta(obj).name)


def uid_of(obj: Any) -> str:
    return str(meta(obj).uid)


def pod_spec(pod: Any) -> V1PodSpec:
    spec = pod.spec
    if spec is None:
        raise ValueError(f"pod {name_of(pod)} without spec")
    return spec


def service_spec(service: Any) -> V1ServiceSpec:
    spec = service.spec
    if spec is None:
        raise ValueError(f"Service {name_of(service)} without spec")
    return spec
