"""PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge patch.

Strategic merge patch follows k8s.io/apimachinery/pkg/util/strategicpatch as the apiserver applies
it: lists are merged by the `x-kubernetes-patch-merge-key` of the schema when their
`x-kubernetes-patch-strategy` says `merge`, and replaced otherwise; the directives `$patch`
(replace, delete), `$retainKeys`, `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>`
behave as upstream, including upstream's refusal of `$patch: merge`. Custom kinds have no Go struct
tags upstream, so strategic merge patch is refused for them with 415, as a real apiserver does.

Every failure is an `ApiError`: undecodable or malformed patches are 400 BadRequest, patches that
decode but cannot be applied (a failing `test`, a missing path) are 422 Invalid, as upstream.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonpatch
import jsonpointer

from localcluster.api.errors import BadRequest, Invalid, UnsupportedMediaType
from localcluster.api.resources import ResourceType
from localcluster.api.schemas import SchemaIndex

__all__ = [
    "APPLY_PATCH",
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "accepted_patch_types",
    "apply_patch",
    "media_type",
    "strategic_merge",
]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
_SET_ELEMENT_ORDER = "$setElementOrder"
_JSON_PATCH_OPERATIONS = frozenset({"add", "remove", "replace", "move", "copy", "test"})


def media_type(content_type: str) -> str:
    """The bare media type of a Content-Type header (`; charset=utf-8` dropped), as the apiserver reads it."""
    return content_type.split(";", 1)[0].strip().lower()


def accepted_patch_types(resource_type: ResourceType) -> tuple[str, ...]:
    """The patch media types the apiserver accepts for a kind, in the order its 415 message lists them."""
    if resource_type.is_custom:
        return (JSON_PATCH, MERGE_PATCH, APPLY_PATCH)
    return (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)


def apply_patch(
    content_type: str,
    current: dict[str, Any],
    patch: bytes,
    *,
    index: SchemaIndex,
    resource_type: ResourceType,
    version: str,
) -> dict[str, Any]:
    """Apply a PATCH body of `content_type` to `current` and return the patched object.

    `current` is never mutated. Server-side apply (`application/apply-patch+yaml`) is not a patch
    flavour here: route it to `apply.server_side_apply`, which needs the field manager.
    """
    kind = media_type(content_type)
    accepted = accepted_patch_types(resource_type)
    if kind not in accepted or kind == APPLY_PATCH:
        raise UnsupportedMediaType(
            "the body of the request was in an unknown format - accepted media types include: " + ", ".join(accepted)
        )
    decoded = _decode_json(patch)
    if kind == JSON_PATCH:
        return _json_patch(current, decoded)
    if not isinstance(decoded, dict):
        raise BadRequest(f"invalid patch: a {_FLAVOUR[kind]} must be a JSON object, not {_json_type(decoded)}")
    if kind == MERGE_PATCH:
        return _merge_patch(copy.deepcopy(current), decoded)
    return strategic_merge(current, decoded, schema=index.for_type(resource_type, version), index=index)


_FLAVOUR = {MERGE_PATCH: "JSON merge patch", STRATEGIC_MERGE_PATCH: "strategic merge patch"}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _decode_json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise BadRequest(f"error decoding patch: {exc}") from exc


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


# --- RFC 6902 -------------------------------------------------------------------------------------


def _json_patch(current: dict[str, Any], operations: Any) -> dict[str, Any]:
    if not isinstance(operations, list):
        raise BadRequest(f"invalid JSON patch: expected an array of operations, got {_json_type(operations)}")
    for position, operation in enumerate(operations):
        _check_operation(position, operation)
    try:
        patched = jsonpatch.JsonPatch(operations).apply(current, in_place=False)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise Invalid(f"the test operation of the JSON patch failed: {exc}") from exc
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise Invalid(f"the JSON patch could not be applied: {exc}") from exc
    if not isinstance(patched, dict):
        raise Invalid(f"the JSON patch made the object {_json_type(patched)}; it must stay a JSON object")
    return patched


def _check_operation(position: int, operation: Any) -> None:
    """Reject malformed operations with a message naming them, before the library trips over them."""
    where = f"operation {position} of the JSON patch"
    if not isinstance(operation, dict):
        raise BadRequest(f"invalid JSON patch: {where} is {_json_type(operation)}, not an object")
    name = operation.get("op")
    if name not in _JSON_PATCH_OPERATIONS:
        raise Invalid(
            f'{where} has an unknown "op" {json.dumps(name)}; expected one of '
            + ", ".join(sorted(_JSON_PATCH_OPERATIONS))
        )
    required = {"path": str}
    if name in ("move", "copy"):
        required["from"] = str
    for key, expected in required.items():
        if not isinstance(operation.get(key), expected):
            raise Invalid(f'{where} ({name}) needs a string "{key}"')
    if name in ("add", "replace", "test") and "value" not in operation:
        raise Invalid(f'{where} ({name}) needs a "value"')


# --- RFC 7386 -------------------------------------------------------------------------------------


def _merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386: null removes a member, objects merge recursively, anything else replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            existing = target.get(key)
            target[key] = _merge_patch(existing if isinstance(existing, dict) else {}, value)
        else:
            target[key] = value
    return target


# --- strategic merge patch ------------------------------------------------------------------------


class _StrategicPatchError(Exception):
    """A patch that upstream's strategicpatch refuses; `invalid` marks the ones the apiserver answers 422."""

    def __init__(self, message: str, *, invalid: bool = False) -> None:
        super().__init__(message)
        self.invalid = invalid


@dataclass(frozen=True)
class _PatchMeta:
    """What the schema says about merging one field (upstream's struct tags patchStrategy, patchMergeKey)."""

    strategy: str = ""
    merge_key: str = ""


def strategic_merge(
    current: dict[str, Any], patch: dict[str, Any], *, schema: dict[str, Any] | None, index: SchemaIndex
) -> dict[str, Any]:
    """Apply a decoded strategic merge patch to `current` (not mutated) under the object `schema`."""
    merger = _StrategicMerger(index)
    try:
        return merger.merge_map(copy.deepcopy(current), copy.deepcopy(patch), schema)
    except _StrategicPatchError as exc:
        if exc.invalid:
            raise Invalid(str(exc)) from exc
        raise BadRequest(str(exc)) from exc


class _StrategicMerger:
    """Merges in place; callers hand it copies."""

    def __init__(self, index: SchemaIndex) -> None:
        self.index = index

    def field(self, schema: dict[str, Any] | None, key: str) -> tuple[dict[str, Any] | None, _PatchMeta]:
        """The schema of `key` under an object schema, and its patch metadata.

        The extensions sit on the property itself (next to `$ref`), so they are read before resolving.
        """
        resolved = self.index.resolve(schema)
        if resolved is None:
            return None, _PatchMeta()
        prop = (resolved.get("properties") or {}).get(key)
        if prop is None:
            additional = resolved.get("additionalProperties")
            prop = additional if isinstance(additional, dict) else None
        if prop is None:
            return None, _PatchMeta()
        strategies = [s.strip() for s in str(prop.get("x-kubernetes-patch-strategy", "")).split(",") if s.strip()]
        # retainKeys is honoured through the $retainKeys directive; the other strategy decides merging.
        others = [s for s in strategies if s != "retainKeys"]
        if len(others) > 1:
            raise _StrategicPatchError(f"unexpected patch strategy: {strategies}")
        return self.index.resolve(prop), _PatchMeta(
            others[0] if others else "", str(prop.get("x-kubernetes-patch-merge-key", ""))
        )

    def merge_map(
        self, original: dict[str, Any] | None, patch: dict[str, Any], schema: dict[str, Any] | None
    ) -> dict[str, Any]:
        if _DIRECTIVE in patch:
            return _map_directive(patch)
        if original is None:
            original = {}
        _apply_retain_keys(original, patch)
        self._merge_ordered_lists(original, patch, schema)
        for key, patch_value in patch.items():
            is_delete_list = key.startswith(_DELETE_FROM_PRIMITIVE_LIST + "/")
            if is_delete_list:
                key = _directive_field(key, _DELETE_FROM_PRIMITIVE_LIST)
            if patch_value is None:
                original.pop(key, None)
                continue
            existing = original.get(key)
            if key not in original or _container_kind(existing) != _container_kind(patch_value):
                if not is_delete_list:
                    _set_cleaned(original, key, patch_value)
                continue
            sub_schema, meta = self.field(schema, key)
            if isinstance(patch_value, dict):
                original[key] = (
                    patch_value if meta.strategy == "replace" else self.merge_map(existing, patch_value, sub_schema)
                )
            elif isinstance(patch_value, list):
                original[key] = self.merge_list_field(existing, patch_value, sub_schema, meta, is_delete_list)
            else:
                original[key] = patch_value
        return original

    def merge_list_field(
        self, original: Any, patch: Any, schema: dict[str, Any] | None, meta: _PatchMeta, is_delete_list: bool
    ) -> list[Any]:
        if not isinstance(original, list) or not isinstance(patch, list):
            raise _StrategicPatchError(f"expected a list, but received {_json_type(patch)}")
        if meta.strategy == "merge" or is_delete_list:
            return self.merge_list(original, patch, self.index.items(schema), meta.merge_key, is_delete_list)
        return patch

    def merge_list(
        self,
        original: list[Any],
        patch: list[Any],
        item_schema: dict[str, Any] | None,
        merge_key: str,
        is_delete_list: bool,
    ) -> list[Any]:
        if not original and not patch:
            return original
        of_maps = _element_kind(original, patch) == "map"
        if not of_maps:
            if is_delete_list:
                return [item for item in original if not any(_same(item, gone) for gone in patch)]
            merged = _deduplicate([*original, *patch])
            patch_items, server_only = _partition(merged, patch, lambda item: item)
            return _normalize_order(patch_items, server_only, patch, original, lambda item: item)
        if not merge_key:
            raise _StrategicPatchError("cannot merge lists without merge key")
        original, patch = _apply_list_directives(original, patch, merge_key)
        for item in patch:
            key_value = _merge_key_value(item, merge_key)
            position = _find_by_key(original, merge_key, key_value)
            if position is None:
                cleaned, _ = _remove_directives(_discard_nulls(item))
                original.append(cleaned)
            else:
                original[position] = self.merge_map(original[position], item, item_schema)
        by_key = _key_getter(merge_key)
        patch_items, server_only = _partition(original, patch, by_key)
        return _normalize_order(patch_items, server_only, patch, original, by_key)

    def _merge_ordered_lists(
        self, original: dict[str, Any], patch: dict[str, Any], schema: dict[str, Any] | None
    ) -> None:
        """Merge every list that has a `$setElementOrder/<field>` and put it in that order."""
        for directive_key in [k for k in patch if k.startswith(_SET_ELEMENT_ORDER + "/")]:
            order = patch.pop(directive_key)
            if not isinstance(order, list):
                raise _StrategicPatchError("invalid patch format of setElementOrder list")
            key = _directive_field(directive_key, _SET_ELEMENT_ORDER)
            in_original, in_patch = key in original, key in patch
            original_list, patch_list = original.get(key), patch.get(key)
            for found, value in ((in_original, original_list), (in_patch, patch_list)):
                if found and not isinstance(value, list):
                    raise _StrategicPatchError(f"expected a list for {key}, but received {_json_type(value)}")
            if not in_original and not in_patch:
                continue
            sub_schema, meta = self.field(schema, key)
            _check_order_matches_patch(patch_list or [], order, meta.merge_key)
            merged: list[Any]
            if not in_patch:
                merged = original_list or []
            elif not in_original:
                merged, _ = _remove_directives(patch_list)
            else:
                merged = self.merge_list_field(original_list, patch_list, sub_schema, meta, False)
            kind = _element_kind(original_list or [], patch_list or [])
            getter = _key_getter(meta.merge_key) if kind == "map" else (lambda item: item)
            patch_items, server_only = _partition(merged, order, getter)
            original[key] = _normalize_order(patch_items, server_only, order, original_list or [], getter)
            patch.pop(key, None)


def _map_directive(patch: dict[str, Any]) -> dict[str, Any]:
    directive = patch[_DIRECTIVE]
    if directive == "replace":
        cleaned, _ = _remove_directives({k: v for k, v in patch.items() if k != _DIRECTIVE})
        return cleaned
    if directive == "delete":
        return {}
    raise _StrategicPatchError(f"unknown patch type: {json.dumps(directive)} in map: {json.dumps(patch)}")


def _apply_list_directives(original: list[Any], patch: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    """Handle `{"$patch": "delete", <key>: ...}` and `{"$patch": "replace"}` items of a merging list."""
    plain = []
    replace = False
    for item in patch:
        if not isinstance(item, dict):
            raise _StrategicPatchError(f"expected a map in the list, but received {_json_type(item)}")
        if _DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == "delete":
            key_value = _merge_key_value(item, merge_key)
            original = [kept for kept in original if not _has_key(kept, merge_key, key_value)]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _StrategicPatchError("merging lists cannot yet be specified in the patch")
        else:
            raise _StrategicPatchError(f"unknown patch type: {json.dumps(directive)} in map: {json.dumps(item)}")
    if replace:
        return [_remove_directives(_discard_nulls(item))[0] for item in plain], []
    return original, plain


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if _RETAIN_KEYS not in patch:
        return
    retained = patch.pop(_RETAIN_KEYS)
    if not isinstance(retained, list):
        raise _StrategicPatchError("invalid patch format of retainKeys")
    for key, value in patch.items():
        if value is None or key.startswith((_DELETE_FROM_PRIMITIVE_LIST + "/", _SET_ELEMENT_ORDER + "/")):
            continue
        if key not in retained:
            raise _StrategicPatchError(
                f"invalid patch format of retainKeys: {json.dumps(key)} is in the patch but not in $retainKeys"
            )
    for key in [k for k in original if k not in retained]:
        del original[key]


def _check_order_matches_patch(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    """Items of the patch list must appear in $setElementOrder, in the same relative order."""
    if not patch_list or not order:
        return
    items = [item for item in patch_list if not (isinstance(item, dict) and _DIRECTIVE in item)]
    get = _key_getter(merge_key) if merge_key else (lambda item: item)
    position = 0
    for item in items:
        wanted = get(item)
        while position < len(order) and not _same(get(order[position]), wanted):
            position += 1
        if position == len(order):
            raise _StrategicPatchError(
                f"the order in patch list {json.dumps(patch_list)} doesn't match "
                f"$setElementOrder list {json.dumps(order)}"
            )
        position += 1


def _normalize_order(
    patch_items: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    get: Callable[[Any], Any],
) -> list[Any]:
    """Patch items in patch order, server-only items in live order, interleaved by live position."""
    patch_items = _sorted_by(patch_items, patch_order, get)
    server_only = _sorted_by(server_only, server_order, get)
    merged: list[Any] = []
    left, right = 0, 0
    while left < len(server_only) or right < len(patch_items):
        if right >= len(patch_items):
            merged.append(server_only[left])
            left += 1
        elif left >= len(server_only):
            merged.append(patch_items[right])
            right += 1
        else:
            left_at = _position(server_order, server_only[left], get)
            right_at = _position(server_order, patch_items[right], get)
            if left_at >= 0 and right_at >= 0 and left_at < right_at:
                merged.append(server_only[left])
                left += 1
            else:
                merged.append(patch_items[right])
                right += 1
    return merged


def _sorted_by(items: list[Any], order: list[Any], get: Callable[[Any], Any]) -> list[Any]:
    positions = [_position(order, item, get) for item in items]
    ranked = sorted(range(len(items)), key=lambda i: positions[i] if positions[i] >= 0 else len(order))
    return [items[i] for i in ranked]


def _position(items: list[Any], item: Any, get: Callable[[Any], Any]) -> int:
    wanted = get(item)
    for at, candidate in enumerate(items):
        if _same(get(candidate), wanted):
            return at
    return -1


def _partition(merged: list[Any], patch: list[Any], get: Callable[[Any], Any]) -> tuple[list[Any], list[Any]]:
    patch_keys = [get(item) for item in patch]
    in_patch: list[Any] = []
    server_only: list[Any] = []
    for item in merged:
        key = get(item)
        (in_patch if any(_same(key, k) for k in patch_keys) else server_only).append(item)
    return in_patch, server_only


def _key_getter(merge_key: str) -> Callable[[Any], Any]:
    def get(item: Any) -> Any:
        return _merge_key_value(item, merge_key)

    return get


def _merge_key_value(item: Any, merge_key: str) -> Any:
    if not isinstance(item, dict):
        raise _StrategicPatchError(f"expected a map in the list, but received {_json_type(item)}")
    if merge_key not in item:
        raise _StrategicPatchError(f"map: {json.dumps(item)} does not contain declared merge key: {merge_key}")
    return item[merge_key]


def _has_key(item: Any, merge_key: str, value: Any) -> bool:
    return isinstance(item, dict) and merge_key in item and _same(item[merge_key], value)


def _find_by_key(items: list[Any], merge_key: str, value: Any) -> int | None:
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise _StrategicPatchError(f"value at index {position} is not a map")
        if _has_key(item, merge_key, value):
            return position
    return None


def _same(left: Any, right: Any) -> bool:
    """JSON equality: unlike Python, true is not 1."""
    return isinstance(left, bool) == isinstance(right, bool) and left == right


def _deduplicate(items: list[Any]) -> list[Any]:
    unique: list[Any] = []
    for item in items:
        if not any(_same(item, seen) for seen in unique):
            unique.append(item)
    return unique


def _container_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "map"
    return "list" if isinstance(value, list) else "scalar"


def _element_kind(*lists: list[Any]) -> str:
    """The kind shared by every element of the lists; upstream refuses mixed lists and lists of lists."""
    kinds = {_scalar_kind(item) for items in lists for item in items}
    if "list" in kinds:
        raise _StrategicPatchError("lists of lists are not supported", invalid=True)
    if len(kinds) > 1:
        raise _StrategicPatchError("list element types are not identical")
    if not kinds:
        raise _StrategicPatchError("no elements in any of the given slices")
    return kinds.pop()


def _scalar_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "null" if value is None else _container_kind(value)


def _directive_field(key: str, prefix: str) -> str:
    head, _, field = key.partition("/")
    if head != prefix or not field:
        raise _StrategicPatchError(f"invalid patch format of {prefix.removeprefix('$')} list")
    return field


def _set_cleaned(original: dict[str, Any], key: str, value: Any) -> None:
    """Take a patch value as is (no live counterpart): without nulls and directives, as decoding would."""
    cleaned, keep = _remove_directives(_discard_nulls(value))
    if keep:
        original[key] = cleaned
    else:
        original.pop(key, None)


def _discard_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _discard_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_discard_nulls(item) for item in value]
    return value


def _is_directive_key(key: str) -> bool:
    return key == _RETAIN_KEYS or key.startswith((_DELETE_FROM_PRIMITIVE_LIST + "/", _SET_ELEMENT_ORDER + "/"))


def _remove_directives(value: Any) -> tuple[Any, bool]:
    """Drop `$patch` maps and directive keys from a value taken whole; False if the value itself goes."""
    if isinstance(value, dict):
        if _DIRECTIVE in value:
            return None, False
        cleaned = {}
        for key, item in value.items():
            if _is_directive_key(key):
                continue
            item, keep = _remove_directives(item)
            if keep:
                cleaned[key] = item
        return cleaned, True
    if isinstance(value, list):
        kept = [_remove_directives(item) for item in value]
        return [item for item, keep in kept if keep], True
    return value, True
