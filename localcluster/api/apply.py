"""Server-side apply and `metadata.managedFields`, after sigs.k8s.io/structured-merge-diff.

Every write records which field manager owns which fields. An apply merges the applied
configuration into the live object by the schema (`x-kubernetes-list-type: map` lists by their
`x-kubernetes-list-map-keys`, `set` lists as sets, `atomic` lists and maps whole), removes the
fields its manager applied before and applies no more unless someone else owns them, and refuses
to change a field another manager owns (409, one cause per field) unless forced.

Field sets are sets of paths; a path is a tuple of FieldsV1 path elements: `f:<field>`,
`k:{"name":"web"}` (an item of a map list), `v:"x"` (an item of a set list), `i:0` (by index).
The FieldsV1 trie is only the wire format of such a set.

Known differences from upstream: no manager cap ("ancient-changes"), no version conversion of
field sets, and an Update never owns a struct field itself (upstream owns pointer structs, which the
JSON schema cannot tell from value structs) — only maps, list items and leaves.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from localcluster.api.errors import BadRequest, Cause, Conflict
from localcluster.api.resources import ResourceType
from localcluster.api.schemas import SchemaIndex

__all__ = ["FieldSet", "decode_apply_body", "fields_v1", "record_update", "server_side_apply"]

Path = tuple[str, ...]
FieldSet = frozenset[Path]
Schema = dict[str, Any]

_MEMBER = "."
_APPLY, _UPDATE = "Apply", "Update"
#: The manager that owns everything of an object that had no managedFields when first applied to.
BEFORE_FIRST_APPLY = "before-first-apply"
#: Fields no manager owns: identity and bookkeeping the server sets (upstream's stripMetaManager).
_STRIPPED: FieldSet = frozenset(
    {("f:apiVersion",), ("f:kind",), ("f:metadata",)}
    | {
        ("f:metadata", f"f:{name}")
        for name in (
            "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName",
            "generation", "managedFields", "resourceVersion",
        )
    }
)  # fmt: skip
#: Defaults the upstream OpenAPI gives list-map key fields that manifests usually leave out.
_KEY_DEFAULTS = {"protocol": "TCP"}


class _ApplyError(Exception):
    """An object or configuration that cannot be walked by its schema (answered 400)."""


# --- public entry points --------------------------------------------------------------------------


def decode_apply_body(body: bytes) -> dict[str, Any]:
    """The applied configuration of an `application/apply-patch+yaml` body (YAML or JSON)."""
    try:
        decoded = yaml.load(body, Loader=yaml.CSafeLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BadRequest(f"error decoding YAML: {exc}") from exc
    if not isinstance(decoded, dict):
        raise BadRequest("error decoding YAML: the applied configuration must be an object")
    return decoded


def server_side_apply(
    current: dict[str, Any] | None,
    applied: dict[str, Any],
    *,
    manager: str,
    force: bool,
    index: SchemaIndex,
    resource_type: ResourceType,
    version: str,
    now: str,
    subresource: str = "",
) -> dict[str, Any]:
    """Apply `applied` for `manager` onto `current` (None: create) and return the new object.

    Neither argument is mutated. The result carries the updated `metadata.managedFields`; when the
    apply changes nothing, it equals `current` (the applier's entry keeps its time, as upstream).
    Raises Conflict (409) when the apply would change fields other managers own and not `force`.
    """
    if not manager:
        raise BadRequest("PATCH, application/apply-patch+yaml requests must provide a fieldManager")
    _check_applied(applied, current, resource_type, version)
    walker = _Walker(index)
    schema = index.for_type(resource_type, version)
    group_version = resource_type.api_version(version)
    config = _reset_fields(applied, resource_type, subresource)
    live = _without_managed_fields(current) if current is not None else {}
    managers = _decode_managers(current)
    ignored = _ignored_prefixes(resource_type, subresource)
    try:
        if current is not None and not managers:
            # Whatever was there before the first apply belongs to someone the applier can conflict with.
            existing = _owned(walker.field_set(live, schema), _ignored_prefixes(resource_type, ""))
            managers[_key(BEFORE_FIRST_APPLY, _UPDATE, group_version, "")] = _Entry(
                BEFORE_FIRST_APPLY, _UPDATE, group_version, "", existing, now
            )
        merged = walker.merge(live, config, schema)
        applied_set = _owned(walker.field_set(config, schema), ignored)
    except _ApplyError as exc:
        raise BadRequest(f"failed to create typed patch object: {exc}") from exc
    apply_key = _key(manager, _APPLY, group_version, subresource)
    previous = managers.get(apply_key)
    managers[apply_key] = _Entry(
        manager, _APPLY, group_version, subresource, applied_set, previous.time if previous else None
    )
    if previous is not None:
        owned = frozenset().union(*(entry.fields for entry in managers.values()))
        removable = _with_named_ancestors(previous.fields) - _with_named_ancestors(owned) - _STRIPPED
        merged = walker.remove(merged, removable, schema)
    changes = walker.compare(live, merged, schema)
    _settle_ownership(managers, apply_key, changes, force)
    # An applier that owns nothing (a bare Namespace, ConfigMap, ServiceAccount) has no entry: upstream's
    # Updater drops empty managers, and the time it sets afterwards is for an entry that is not encoded.
    if apply_key in managers and not _same_json(merged, live):
        managers[apply_key].time = now
    return _with_managed_fields(merged, managers)


def record_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    *,
    manager: str,
    operation: str = _UPDATE,
    subresource: str = "",
    index: SchemaIndex,
    resource_type: ResourceType,
    version: str,
    now: str,
) -> None:
    """Record in `new.metadata.managedFields` that `manager` wrote what changed from `old` (None: create).

    For create, update and patch: the manager takes the fields it added or changed from whoever
    owned them, and nobody keeps fields that are gone. Managed fields sent in the request replace the
    stored ones (an empty list resets them), except on subresources, as upstream.
    """
    walker = _Walker(index)
    schema = index.for_type(resource_type, version)
    group_version = resource_type.api_version(version)
    managers = _managers_for_update(old, new, subresource)
    before = _without_managed_fields(old) if old is not None else {}
    after = _without_managed_fields(new)
    changes = walker.compare(before, after, schema, own_structs=False)
    taken = _owned(frozenset(changes.added | changes.modified), _ignored_prefixes(resource_type, subresource))
    for entry_key, entry in list(managers.items()):
        entry.fields = entry.fields - taken - changes.removed
        if not entry.fields:
            del managers[entry_key]
    key = _key(manager, operation, group_version, subresource)
    if taken:
        previous = managers.get(key)
        fields = (previous.fields if previous else frozenset()) | taken
        managers[key] = _Entry(manager, operation, group_version, subresource, fields, now)
    new.setdefault("metadata", {})
    new["metadata"].pop("managedFields", None)
    encoded = _encode_managers(managers)
    if encoded:
        new["metadata"]["managedFields"] = encoded


def fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """The FieldsV1 trie of a field set: `{"f:spec": {"f:replicas": {}}}`, `".": {}` marking members with children."""
    return _encode_trie(_trie_of(paths))


# --- managers -------------------------------------------------------------------------------------


@dataclass
class _Entry:
    """One managedFields entry, with its fields as a set of paths."""

    manager: str
    operation: str
    api_version: str
    subresource: str
    fields: FieldSet
    time: str | None = field(default=None)

    def describe(self) -> str:
        """How upstream names a manager in conflict messages (printManager)."""
        described = json.dumps(self.manager)
        if self.subresource:
            described += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == _UPDATE:
            described += f" using {self.api_version}"
        return described


def _key(manager: str, operation: str, api_version: str, subresource: str) -> tuple[str, str, str, str]:
    """Upstream's manager identifier: appliers are one manager whatever version they apply in."""
    return (manager, operation, "" if operation == _APPLY else api_version, subresource)


def _decode_managers(obj: dict[str, Any] | None) -> dict[Any, _Entry]:
    entries = ((obj or {}).get("metadata") or {}).get("managedFields")
    managers = _decode_entries(entries)
    return managers if managers is not None else {}


def _decode_entries(entries: Any) -> dict[Any, _Entry] | None:
    """Managed fields as stored or sent; None when they do not decode (upstream then ignores them)."""
    if not isinstance(entries, list):
        return None
    managers: dict[Any, _Entry] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            return None
        manager, operation = entry.get("manager", ""), entry.get("operation")
        fields = entry.get("fieldsV1", {})
        if (
            not isinstance(manager, str)
            or operation not in (_APPLY, _UPDATE)
            or entry.get("fieldsType", "FieldsV1") != "FieldsV1"
            or not isinstance(fields, dict)
        ):
            return None
        try:
            paths = _paths_of_trie(fields)
        except (ValueError, TypeError):
            return None
        api_version, subresource = str(entry.get("apiVersion", "")), str(entry.get("subresource", ""))
        time = entry.get("time")
        managers[_key(manager, operation, api_version, subresource)] = _Entry(
            manager, operation, api_version, subresource, paths, time if isinstance(time, str) else None
        )
    return managers


def _managers_for_update(old: dict[str, Any] | None, new: dict[str, Any], subresource: str) -> dict[Any, _Entry]:
    """upstream's decodeLiveOrNew: the request's managed fields if it sent valid ones, else the live ones."""
    if subresource:
        return _decode_managers(old)
    sent = (new.get("metadata") or {}).get("managedFields")
    if sent == [] or sent == [{}]:
        return {}
    managers = _decode_entries(sent)
    if managers:
        return managers
    return _decode_managers(old)


def _settle_ownership(managers: dict[Any, _Entry], applier: Any, changes: _Changes, force: bool) -> None:
    """Upstream's Updater.update: conflicts for fields others own that changed, removals for fields gone."""
    changed = changes.modified | changes.added
    conflicts = {key: entry.fields & changed for key, entry in managers.items() if key != applier}
    conflicts = {key: paths for key, paths in conflicts.items() if paths}
    if conflicts and not force:
        raise _conflict_error([(managers[key], paths) for key, paths in conflicts.items()])
    for key, entry in managers.items():
        if key != applier:
            entry.fields = entry.fields - conflicts.get(key, frozenset()) - changes.removed
    for key in [key for key, entry in managers.items() if not entry.fields]:
        del managers[key]


def _conflict_error(conflicts: list[tuple[_Entry, FieldSet]]) -> Conflict:
    ordered = sorted(conflicts, key=lambda conflict: conflict[0].describe())
    causes = [
        Cause(field=_path_string(path), message=f"conflict with {entry.describe()}", reason="FieldManagerConflict")
        for entry, paths in ordered
        for path in sorted(paths, key=_path_sort_key)
    ]
    if len(causes) == 1:
        message = f"Apply failed with 1 conflict: {causes[0].message}: {causes[0].field}"
    else:
        lines = []
        for entry, paths in ordered:
            lines.append(f"conflicts with {entry.describe()}:")
            lines.extend(f"- {_path_string(path)}" for path in sorted(paths, key=_path_sort_key))
        message = f"Apply failed with {len(causes)} conflicts: " + "\n".join(lines)
    return Conflict(message, causes=causes)


def _encode_managers(managers: dict[Any, _Entry]) -> list[dict[str, Any]]:
    """managedFields entries in upstream's order: operation, time, manager, apiVersion, subresource."""
    ordered = sorted(
        managers.values(),
        key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource),
    )
    encoded = []
    for entry in ordered:
        item: dict[str, Any] = {"manager": entry.manager, "operation": entry.operation, "apiVersion": entry.api_version}
        if entry.time is not None:
            item["time"] = entry.time
        item["fieldsType"] = "FieldsV1"
        item["fieldsV1"] = fields_v1(entry.fields)
        if entry.subresource:
            item["subresource"] = entry.subresource
        encoded.append(item)
    return encoded


def _with_managed_fields(obj: dict[str, Any], managers: dict[Any, _Entry]) -> dict[str, Any]:
    metadata = dict(obj.get("metadata") or {})
    metadata.pop("managedFields", None)
    encoded = _encode_managers(managers)
    if encoded:
        metadata["managedFields"] = encoded
    return {**obj, "metadata": metadata}


def _without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or "managedFields" not in metadata:
        return obj
    return {**obj, "metadata": {k: v for k, v in metadata.items() if k != "managedFields"}}


# --- the applied configuration --------------------------------------------------------------------


def _check_applied(
    applied: dict[str, Any], current: dict[str, Any] | None, resource_type: ResourceType, version: str
) -> None:
    if not isinstance(applied, dict):
        raise BadRequest("the applied configuration must be an object")
    expected = resource_type.api_version(version)
    if applied.get("apiVersion") != expected:
        raise BadRequest(
            "Incorrect version specified in apply patch. "
            f"Specified patch version: {applied.get('apiVersion') or '(none)'}, expected: {expected}"
        )
    if applied.get("kind") != resource_type.kind:
        raise BadRequest(
            f"the applied configuration has kind {applied.get('kind') or '(none)'}, expected {resource_type.kind}"
        )
    metadata = applied.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        raise BadRequest("the applied configuration must set metadata.name")
    if "managedFields" in metadata:
        raise BadRequest("metadata.managedFields must be nil")
    live_name = ((current or {}).get("metadata") or {}).get("name")
    if live_name is not None and metadata["name"] != live_name:
        raise BadRequest(
            f"the name of the object ({metadata['name']}) does not match the name on the URL ({live_name})"
        )


def _reset_fields(applied: dict[str, Any], resource_type: ResourceType, subresource: str) -> dict[str, Any]:
    """What an apply may set: not the status through the main resource; through /status, not spec or labels."""
    if "status" not in resource_type.subresources:
        return applied
    if subresource != "status":
        return {k: v for k, v in applied.items() if k != "status"}
    kept = {k: v for k, v in applied.items() if k != "spec"}
    if isinstance(kept.get("metadata"), dict):
        kept["metadata"] = {k: v for k, v in kept["metadata"].items() if k != "labels"}
    return kept


def _ignored_prefixes(resource_type: ResourceType, subresource: str) -> tuple[Path, ...]:
    """Upstream's reset fields: what the strategy of the endpoint copies back from the live object."""
    if "status" not in resource_type.subresources:
        return ()
    if subresource == "status":
        return (("f:spec",), ("f:metadata", "f:labels"))
    return (("f:status",),)


def _owned(paths: FieldSet, ignored: tuple[Path, ...]) -> FieldSet:
    """The paths a manager can own: not server bookkeeping, not fields the endpoint resets."""
    return frozenset(p for p in paths if p not in _STRIPPED and not any(p[: len(i)] == i for i in ignored))


# --- paths ----------------------------------------------------------------------------------------


def _with_named_ancestors(paths: FieldSet) -> FieldSet:
    """Make every field a path goes through a member too (upstream's EnsureNamedFieldsAreMembers)."""
    expanded = set(paths)
    for path in paths:
        for end in range(1, len(path)):
            if path[end - 1].startswith("f:"):
                expanded.add(path[:end])
    return frozenset(expanded)


def _path_string(path: Path) -> str:
    """`.spec.template.spec.containers[name="web"].image`, as upstream prints paths."""
    parts = []
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            parts.append("." + rest)
        elif kind == "k":
            keys = json.loads(rest)
            parts.append("[" + ",".join(f"{name}={json.dumps(value)}" for name, value in keys.items()) + "]")
        elif kind == "v":
            parts.append(f"[={rest}]")
        else:
            parts.append(f"[{rest}]")
    return "".join(parts)


_ELEMENT_RANK = {"f": 0, "k": 1, "v": 2, "i": 3}


def _element_sort_key(element: str) -> tuple[int, str]:
    return (_ELEMENT_RANK.get(element[:1], 4), element)


def _path_sort_key(path: Path) -> tuple[tuple[int, str], ...]:
    return tuple(_element_sort_key(element) for element in path)


def _encode_trie(node: dict[str, Any]) -> dict[str, Any]:
    """FieldsV1 of a trie: members with children get `".": {}`, members without are `{}` themselves."""
    children = sorted((k for k in node if k != _MEMBER), key=_element_sort_key)
    encoded: dict[str, Any] = {_MEMBER: {}} if _MEMBER in node and children else {}
    for key in children:
        encoded[key] = _encode_trie(node[key])
    return encoded


def _paths_of_trie(trie: dict[str, Any], prefix: Path = ()) -> FieldSet:
    paths: set[Path] = set()
    for element, child in trie.items():
        if element == _MEMBER:
            if prefix:
                paths.add(prefix)
            continue
        if not isinstance(child, dict):
            raise TypeError(f"fieldsV1 entry {element} is not an object")
        path = (*prefix, _canonical_element(element))
        if child:
            paths |= _paths_of_trie(child, path)
        else:
            paths.add(path)
    return frozenset(paths)


def _canonical_element(element: str) -> str:
    kind, colon, rest = element.partition(":")
    if not colon or kind not in _ELEMENT_RANK:
        raise ValueError(f"unknown fieldsV1 path element {element!r}")
    if kind == "k":
        keys = json.loads(rest)
        if not isinstance(keys, dict):
            raise ValueError(f"fieldsV1 key element {element!r} is not an object")
        return "k:" + _compact(dict(sorted(keys.items())))
    if kind == "v":
        return "v:" + _compact(json.loads(rest))
    if kind == "i":
        return f"i:{int(rest)}"
    return element


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _trie_of(paths: Iterable[Path]) -> dict[str, Any]:
    """Paths as nested dicts; a None value under `.` marks a path that is in the set itself."""
    root: dict[str, Any] = {}
    for path in paths:
        node = root
        for element in path:
            node = node.setdefault(element, {})
        node[_MEMBER] = None
    return root


# --- typed walks ----------------------------------------------------------------------------------


@dataclass
class _Changes:
    """What a write did, as upstream's typed.Comparison."""

    added: set[Path] = field(default_factory=set)
    modified: set[Path] = field(default_factory=set)
    removed: set[Path] = field(default_factory=set)


_LEAF, _STRUCT, _MAP, _LIST_MAP, _LIST_SET = "leaf", "struct", "map", "list-map", "list-set"


class _Walker:
    """Walks values by their schema; what kind of node a value is comes from both."""

    def __init__(self, index: SchemaIndex) -> None:
        self.index = index
        # Schema views by id() of the property node; the nodes live as long as the index.
        self._views: dict[int, tuple[Schema, Schema | None]] = {}

    def _view(self, prop: Schema | None) -> Schema | None:
        """The resolved schema of a property, with the property's own x-kubernetes-* extensions on top."""
        if prop is None:
            return None
        cached = self._views.get(id(prop))
        if cached is not None and cached[0] is prop:
            return cached[1]
        resolved = self.index.resolve(prop)
        extensions = {k: v for k, v in prop.items() if k.startswith("x-kubernetes-")}
        view = {**resolved, **extensions} if resolved is not None and extensions else resolved
        self._views[id(prop)] = (prop, view)
        return view

    def child(self, schema: Schema | None, key: str) -> Schema | None:
        if schema is None:
            return None
        properties = schema.get("properties") or {}
        if key in properties:
            return self._view(properties[key])
        additional = schema.get("additionalProperties")
        return self._view(additional) if isinstance(additional, dict) else None

    def items(self, schema: Schema | None) -> Schema | None:
        items = schema.get("items") if schema is not None else None
        return self._view(items) if isinstance(items, dict) else None

    @staticmethod
    def kind(schema: Schema | None, value: Any) -> str:
        if isinstance(value, dict):
            if schema is None:
                return _MAP
            if schema.get("x-kubernetes-map-type") == "atomic":
                return _LEAF
            return _STRUCT if schema.get("properties") else _MAP
        if isinstance(value, list) and schema is not None:
            list_type = schema.get("x-kubernetes-list-type")
            if list_type == "map" and schema.get("x-kubernetes-list-map-keys"):
                return _LIST_MAP
            if list_type == "set":
                return _LIST_SET
        return _LEAF

    @staticmethod
    def is_declared(schema: Schema | None, key: str) -> bool:
        return schema is not None and key in (schema.get("properties") or {})

    @staticmethod
    def element(schema: Schema, kind: str, item: Any, position: int) -> str:
        """The path element naming a list item: its key fields, or its value for sets."""
        if kind == _LIST_SET:
            if isinstance(item, dict | list):
                raise _ApplyError(f"element {position}: set lists hold scalars only")
            return "v:" + _compact(item)
        if not isinstance(item, dict):
            raise _ApplyError(f"element {position}: associative list items must be objects")
        keys = {}
        for name in sorted(schema["x-kubernetes-list-map-keys"]):
            if name in item:
                keys[name] = item[name]
            elif name in _KEY_DEFAULTS:
                keys[name] = _KEY_DEFAULTS[name]
            else:
                raise _ApplyError(
                    f'element {position}: associative list with keys has an element that omits key field "{name}" '
                    "(and doesn't have default value)"
                )
        return "k:" + _compact(keys)

    def keyed(self, schema: Schema, kind: str, items: list[Any], *, unique: bool) -> list[tuple[str, Any]]:
        keyed = [(self.element(schema, kind, item, i), item) for i, item in enumerate(items)]
        if unique:
            seen: set[str] = set()
            for element, _ in keyed:
                if element in seen:
                    raise _ApplyError(f"duplicate entries for key {_path_string((element,))}")
                seen.add(element)
        return keyed

    # ToFieldSet
    def field_set(self, value: Any, schema: Schema | None) -> FieldSet:
        paths: set[Path] = set()
        self._collect(value, schema, (), paths)
        return frozenset(paths)

    def _collect(self, value: Any, schema: Schema | None, path: Path, paths: set[Path]) -> None:
        kind = self.kind(schema, value)
        if kind == _LEAF:
            if path:
                paths.add(path)
        elif kind in (_LIST_MAP, _LIST_SET):
            assert schema is not None
            item_schema = self.items(schema)
            for element, item in self.keyed(schema, kind, value, unique=True):
                item_path = (*path, element)
                self._collect(item, item_schema, item_path, paths)
                paths.add(item_path)
        else:
            for key, item in value.items():
                item_path = (*path, f"f:{key}")
                self._collect(item, self.child(schema, key), item_path, paths)
                if item is None or item == {} or not self.is_declared(schema, key):
                    paths.add(item_path)

    # Merge: the configuration wins at leaves; maps and associative lists merge.
    def merge(self, live: Any, config: Any, schema: Schema | None) -> Any:
        kind = self.kind(schema, config)
        if kind == _LEAF or self.kind(schema, live) != kind:
            return config
        if kind in (_LIST_MAP, _LIST_SET):
            assert schema is not None
            return self._merge_list(live, config, schema, kind)
        merged = dict(live)
        for key, item in config.items():
            if item is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = self.merge(merged[key], item, self.child(schema, key))
            else:
                merged[key] = _without_nulls(item)
        return merged

    def _merge_list(self, live: list[Any], config: list[Any], schema: Schema, kind: str) -> list[Any]:
        """Upstream's ordering: shared items in configuration order, live-only items where they were."""
        item_schema = self.items(schema)
        lhs = self.keyed(schema, kind, live, unique=False)
        rhs = self.keyed(schema, kind, config, unique=True)
        lhs_items: dict[str, Any] = {}
        for element, item in lhs:
            lhs_items.setdefault(element, item)
        rhs_items = dict(rhs)
        shared = [element for element, _ in rhs if element in lhs_items]
        next_shared = 0
        done: set[str] = set()
        out: list[Any] = []
        left = right = 0
        while left < len(lhs) or right < len(rhs):
            if left < len(lhs) and right < len(rhs):
                element = lhs[left][0]
                if element == rhs[right][0]:
                    out.append(self.merge(lhs_items[element], rhs_items[element], item_schema))
                    done.add(element)
                    left += 1
                    right += 1
                    next_shared += 1
                    continue
                if element in rhs_items and next_shared < len(shared) and shared[next_shared] != element:
                    left += 1
                    continue
            if left < len(lhs):
                element, item = lhs[left]
                if element not in rhs_items:
                    out.append(item)
                    left += 1
                    continue
                if element in done:
                    left += 1
            if right < len(rhs):
                element, item = rhs[right]
                done.add(element)
                out.append(self.merge(lhs_items[element], item, item_schema) if element in lhs_items else item)
                right += 1
                if next_shared < len(shared) and shared[next_shared] == element:
                    next_shared += 1
        return out

    # Compare
    def compare(self, old: Any, new: Any, schema: Schema | None, *, own_structs: bool = True) -> _Changes:
        changes = _Changes()
        self._compare(old, new, schema, (), changes, own_structs)
        return changes

    def _compare(
        self, old: Any, new: Any, schema: Schema | None, path: Path, changes: _Changes, own_structs: bool
    ) -> None:
        reference = new if new is not None else old
        kind = self.kind(schema, reference)
        if kind == _LEAF or (old is not None and new is not None and self.kind(schema, old) != kind):
            if old is None:
                changes.added.add(path)
            elif new is None:
                changes.removed.add(path)
            elif not _same_json(old, new):
                changes.modified.add(path)
            return
        if kind in (_LIST_MAP, _LIST_SET):
            assert schema is not None
            item_schema = self.items(schema)
            old_items = dict(self.keyed(schema, kind, old or [], unique=False)[::-1])
            new_items = dict(self.keyed(schema, kind, new or [], unique=False)[::-1])
            children = [(e, old_items.get(e), new_items.get(e), item_schema) for e in {**old_items, **new_items}]
        else:
            old_map, new_map = old or {}, new or {}
            children = [
                (f"f:{key}", old_map.get(key), new_map.get(key), self.child(schema, key))
                for key in {**old_map, **new_map}
            ]
        for element, old_item, new_item, item_schema in children:
            item_path = (*path, element)
            self._compare(old_item, new_item, item_schema, item_path, changes, own_structs)
            if (
                not own_structs
                and kind == _STRUCT
                and self.kind(item_schema, _present(old_item, new_item))
                in (
                    _STRUCT,
                    _LIST_MAP,
                    _LIST_SET,
                )
            ):
                # Updates do not own struct and list fields themselves (see the module docstring).
                continue
            if old_item is None and new_item is not None:
                changes.added.add(item_path)
            elif new_item is None and old_item is not None:
                changes.removed.add(item_path)

    # RemoveItems
    def remove(self, value: Any, paths: FieldSet, schema: Schema | None) -> Any:
        return self._remove(value, _trie_of(paths), schema) if paths else value

    def _remove(self, value: Any, trie: dict[str, Any], schema: Schema | None) -> Any:
        kind = self.kind(schema, value)
        if kind in (_LIST_MAP, _LIST_SET):
            assert schema is not None
            item_schema = self.items(schema)
            kept = []
            for element, item in self.keyed(schema, kind, value, unique=False):
                below = trie.get(element)
                if below is None:
                    kept.append(item)
                elif _MEMBER not in below:
                    kept.append(self._remove(item, below, item_schema))
            return kept
        if kind == _LEAF:
            return value
        result = {}
        for key, item in value.items():
            below = trie.get(f"f:{key}")
            if below is None:
                result[key] = item
            elif _MEMBER not in below:
                result[key] = self._remove(item, below, self.child(schema, key))
        return result


def _present(old: Any, new: Any) -> Any:
    return new if new is not None else old


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def _same_json(left: Any, right: Any) -> bool:
    """JSON equality, where true is not 1 (Python's == says it is)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_same_json(v, right[k]) for k, v in left.items())
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_same_json(a, b) for a, b in zip(left, right, strict=True))
    return left == right
