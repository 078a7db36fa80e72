"""Server-side apply of manifests, given as a file, YAML text, a dict or a list of them."""

from __future__ import annotations

import html
import json
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from kubernetes.client.exceptions import ApiException

from labkit._default import resolve

if TYPE_CHECKING:
    from kubernetes.client import ApiClient
    from kubernetes.dynamic import DynamicClient

    from checkers import Context

#: Where the labs' manifests live, by lab id: manifests/00-setup/hello-pod.yaml.
MANIFESTS = Path(__file__).resolve().parent / "manifests"
FIELD_MANAGER = "labkit"

Manifest = dict[str, Any]
ManifestSource = Path | str | Mapping[str, Any] | Iterable[Mapping[str, Any]]


class ManifestError(ValueError):
    """A manifest that cannot be applied as written (not YAML, no kind, unknown kind, no name)."""


class ApplyError(RuntimeError):
    """The API server refused an object; the message is the server's own reason."""

    def __init__(self, obj: Manifest, status: int, reason: str) -> None:
        super().__init__(f"applying {_describe(obj)} was refused ({status}): {reason}")
        self.status = status
        self.reason = reason


def manifest(name: str) -> Manifest:
    """One of the labs' manifests by its path under labkit/manifests, e.g. "00-setup/hello-pod.yaml"."""
    path = MANIFESTS / name
    if not path.is_file():
        raise ManifestError(f"no manifest {name!r} under {MANIFESTS}")
    (only,) = load_manifests(path)
    return only


def load_manifests(source: ManifestSource) -> list[Manifest]:
    """Every object in `source`: a path, YAML text (several documents allowed), a dict or a list.

    `kind: List` objects are unpacked, as kubectl does.
    """
    if isinstance(source, Path) or (isinstance(source, str) and _looks_like_path(source)):
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ManifestError(f"cannot read manifest file {path}: {exc.strerror}") from exc
        return load_manifests(text)
    if isinstance(source, str):
        try:
            documents = [doc for doc in yaml.safe_load_all(source) if doc is not None]
        except yaml.YAMLError as exc:
            raise ManifestError(f"the manifest is not valid YAML: {exc}") from exc
        return load_manifests(documents)
    objects = [source] if isinstance(source, Mapping) else list(source)
    loaded: list[Manifest] = []
    for obj in objects:
        if not isinstance(obj, Mapping):
            raise ManifestError(f"a manifest must be a mapping with apiVersion and kind, not {type(obj).__name__}")
        if obj.get("kind") == "List":
            loaded.extend(load_manifests(obj.get("items") or []))
            continue
        _validate(obj)
        loaded.append(json.loads(json.dumps(obj)))
    return loaded


def _looks_like_path(text: str) -> bool:
    return "\n" not in text and text.strip().endswith((".yaml", ".yml", ".json"))


def _validate(obj: Mapping[str, Any]) -> None:
    missing = [key for key in ("apiVersion", "kind") if not obj.get(key)]
    if missing:
        raise ManifestError(f"the manifest {dict(obj)!r:.80} has no {' and no '.join(missing)}")
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping) or not metadata.get("name"):
        raise ManifestError(f"the {obj['kind']} manifest has no metadata.name")


def _describe(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


_dynamic_clients: weakref.WeakKeyDictionary[ApiClient, DynamicClient] = weakref.WeakKeyDictionary()


def _dynamic(api_client: ApiClient) -> DynamicClient:
    """A discovery-backed client per API client: it maps apiVersion and kind to a URL."""
    from kubernetes.dynamic import DynamicClient

    if api_client not in _dynamic_clients:
        _dynamic_clients[api_client] = DynamicClient(api_client)
    return _dynamic_clients[api_client]


class Applied(list[Manifest]):
    """The objects as the cluster stored them, shown as kubectl shows an apply: one line per object.

    `deployment.apps/stock created`, `... configured` or `... unchanged`, never the stored objects
    themselves (hundreds of lines of status and managedFields); they are the list's items.
    """

    def __init__(self, objects: Iterable[Manifest], lines: Iterable[str]) -> None:
        super().__init__(objects)
        self.lines = list(lines)

    def __str__(self) -> str:
        return "\n".join(self.lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        return f'<pre style="margin:0">{html.escape(str(self))}</pre>'


def _kubectl_name(obj: Mapping[str, Any]) -> str:
    """How kubectl names an object in its output: `deployment.apps/stock`, `service/stock`."""
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    kind = str(obj.get("kind", "")).lower()
    return f"{kind}.{group}/{obj['metadata']['name']}" if group else f"{kind}/{obj['metadata']['name']}"


def apply(source: ManifestSource, *, connection: Context | None = None) -> Applied:
    """Server-side apply every object in `source` (as `kubectl apply --server-side --force-conflicts`).

    Namespaced objects without a namespace go to the connection's namespace. Returns the objects as
    the server stored them, shown as one line per object saying what changed. Raises ManifestError
    for a malformed manifest or a kind the cluster does not serve, ApplyError when the server
    refuses an object.
    """
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    ctx = resolve(connection)
    objects = load_manifests(source)
    client = _dynamic(ctx.core.api_client)
    applied: list[Manifest] = []
    lines: list[str] = []
    for obj in objects:
        try:
            resource = client.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        except ResourceNotFoundError as exc:
            raise ManifestError(f"the cluster serves no kind {obj['kind']!r} in {obj['apiVersion']!r}") from exc
        namespace = (obj["metadata"].get("namespace") or ctx.namespace) if resource.namespaced else None
        before = _resource_version(resource, obj["metadata"]["name"], namespace)
        try:
            stored = client.server_side_apply(
                resource, body=obj, namespace=namespace, field_manager=FIELD_MANAGER, force_conflicts=True
            )
        except ApiException as exc:
            if exc.status and 400 <= exc.status < 500 and exc.status not in (401, 403):
                raise ApplyError(obj, exc.status, _status_message(exc)) from exc
            raise
        applied.append(stored.to_dict())
        after = applied[-1]["metadata"].get("resourceVersion")
        verb = "created" if before is None else "unchanged" if before == after else "configured"
        lines.append(f"{_kubectl_name(obj)} {verb}")
    return Applied(applied, lines)


def _resource_version(resource: Any, name: str, namespace: str | None) -> str | None:
    """The object's resourceVersion before the apply, None if it does not exist yet."""
    try:
        return str(resource.get(name=name, namespace=namespace).metadata.resourceVersion)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _status_message(exc: ApiException) -> str:
    """The `message` of the Status object the API server answered with, or its reason phrase."""
    try:
        status = json.loads(exc.body or "")
    except ValueError:
        return str(exc.reason)
    return str(status.get("message") or exc.reason) if isinstance(status, dict) else str(exc.reason)
