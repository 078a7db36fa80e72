"""Validation of objects on create and update, as the apiserver validates them.

    validate(resource_type, version, obj, old, *, field_validation="Strict") -> warnings

runs in three steps, each mirroring a stage of the real apiserver:

1. **Decoding** (`_structure`): unknown fields are pruned from `obj` in every mode (kept under
   `x-kubernetes-preserve-unknown-fields` and inside maps). `fieldValidation=Strict` turns them into
   `BadRequest` (400) `strict decoding error: unknown field "spec.foo"`, `Warn` into returned warnings,
   `Ignore` into nothing. A value of the wrong JSON type is a 422 with its field path; upstream returns
   400 for decode errors of built-in kinds, but our rule is "422 with the field path", so a lab's
   checker can point at the field.
2. **Custom kinds** (`_custom`): `spec` against the CRD's openAPIV3Schema with `jsonschema`, plus the
   simple CEL rules of the official CRDs (see its docstring).
3. **Built-in kinds** (`_builtin`): the hand-written rules of pkg/apis/core/validation and
   apps/validation that labs can hit, and the immutable fields checked on update.

Around these, `Cluster` runs the admission steps of installed systems, mutating before and validating
after; `KnativeAdmission` (`_webhooks`) provides Knative's defaulting, resource and ConfigMap validation.

Failures raise `errors.Invalid` (422) carrying one `Cause` per problem, `field` the path as upstream
writes it (`spec.template.spec.containers[1].name`).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from localcluster.api.errors import BadRequest, Cause, invalid
from localcluster.api.resources import ResourceRegistry, ResourceType
from localcluster.api.schemas import SchemaIndex
from localcluster.api.validation import _builtin
from localcluster.api.validation._custom import SpecValidator
from localcluster.api.validation._structure import StructureWalker
from localcluster.api.validation._webhooks import KnativeAdmission

__all__ = ["FIELD_VALIDATION_MODES", "KnativeAdmission", "Validator", "validate"]

FIELD_VALIDATION_MODES = ("Ignore", "Strict", "Warn")
#: A CRD's schema says only `metadata: {type: object}`; the apiserver checks it as ObjectMeta.
_OBJECT_META_REF = {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}

JsonObject = dict[str, Any]


class Validator:
    """Validates objects against one `SchemaIndex`; compiled CRD validators are cached per kind and version."""

    def __init__(self, index: SchemaIndex) -> None:
        self.index = index
        self._spec_validators: dict[tuple[str, str, str], SpecValidator] = {}

    def validate(
        self,
        resource_type: ResourceType,
        version: str,
        obj: JsonObject,
        old: JsonObject | None,
        *,
        field_validation: str = "Strict",
    ) -> list[str]:
        """Prune and check `obj` (in place); return the warnings, raise BadRequest or Invalid on failure."""
        if field_validation not in FIELD_VALIDATION_MODES:
            supported = ", ".join(f'"{mode}"' for mode in FIELD_VALIDATION_MODES)
            raise BadRequest(f'fieldValidation: Unsupported value: "{field_validation}": supported values: {supported}')
        if not isinstance(obj, dict):
            raise BadRequest("the request body must be a JSON object")
        name = _name_of(obj)
        custom = resource_type.is_custom
        walker = StructureWalker(self.index, _OBJECT_META_REF if custom else None, check_required=not custom)
        report = walker.walk_root(self.index.for_type(resource_type, version), obj)
        warnings: list[str] = []
        if report.unknown_fields:
            messages = [f'unknown field "{path}"' for path in report.unknown_fields]
            if field_validation == "Strict":
                raise BadRequest(f"strict decoding error: {', '.join(messages)}", kind=resource_type.kind, name=name)
            if field_validation == "Warn":
                warnings = messages
        if report.causes:
            raise self._invalid(resource_type, name, report.causes)
        causes = report.missing + _builtin.metadata(resource_type, obj)
        if resource_type.is_custom:
            causes += self._spec_validator(resource_type, version).causes(obj.get("spec"))
        else:
            rule = _builtin.RULES.get((resource_type.group, resource_type.kind))
            if rule is not None:
                causes += rule(obj, old)
        if causes:
            raise self._invalid(resource_type, name, list(dict.fromkeys(causes)))
        return warnings

    def decode(self, definition: str, kind: str, obj: JsonObject, *, field_validation: str = "Strict") -> list[str]:
        """Only the decoding step, against upstream definition `definition`, for kinds that are answered and never
        stored (access reviews, TokenRequest): unknown fields pruned (400 when Strict), wrong types and missing
        required fields a 422. Returns the warnings."""
        walker = StructureWalker(self.index, None, check_required=True)
        report = walker.walk_root(self.index.definitions[definition], obj)
        if report.unknown_fields and field_validation == "Strict":
            fields = ", ".join(f'unknown field "{path}"' for path in report.unknown_fields)
            raise BadRequest(f"strict decoding error: {fields}", kind=kind)
        if report.causes or report.missing:
            raise invalid(kind, "", _name_of(obj), report.causes + report.missing)
        return [f'unknown field "{path}"' for path in report.unknown_fields] if field_validation == "Warn" else []

    def _spec_validator(self, resource_type: ResourceType, version: str) -> SpecValidator:
        key = (resource_type.group, resource_type.kind, version)
        validator = self._spec_validators.get(key)
        if validator is None:
            validator = self._spec_validators[key] = SpecValidator(self.index.for_type(resource_type, version))
        return validator

    @staticmethod
    def _invalid(resource_type: ResourceType, name: str, causes: list[Cause]) -> Exception:
        return invalid(resource_type.kind, resource_type.group, name, causes)


@cache
def _default_validator() -> Validator:
    return Validator(SchemaIndex(ResourceRegistry(())))


def validate(
    resource_type: ResourceType,
    version: str,
    obj: JsonObject,
    old: JsonObject | None,
    *,
    field_validation: str = "Strict",
) -> list[str]:
    """`Validator.validate` with a shared validator over the upstream definitions (built on first use).

    The API server should build one `Validator` over its own `SchemaIndex` instead, so the definitions
    are loaded once per process.
    """
    return _default_validator().validate(resource_type, version, obj, old, field_validation=field_validation)


def _name_of(obj: JsonObject) -> str:
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else ""
