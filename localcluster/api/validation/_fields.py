"""Field errors worded as upstream's `field.Error` renders them, and the name and label syntax rules as causes.

The rules and their messages are k8s.io/apimachinery/pkg/util/validation's (`IsDNS1123Label`,
`IsQualifiedName`, ..., kept in `localcluster.name_syntax`), so an attendee sees on localcluster the
words a real cluster would print.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from localcluster.api.errors import Cause
from localcluster.name_syntax import (
    CONFIG_KEY,
    CONFIG_KEY_ERROR,
    DNS1035_LABEL,
    DNS1035_LABEL_ERROR,
    DNS1123_LABEL,
    DNS1123_LABEL_ERROR,
    DNS1123_LABEL_MAX,
    DNS1123_SUBDOMAIN,
    DNS1123_SUBDOMAIN_ERROR,
    DNS1123_SUBDOMAIN_MAX,
    HAS_LETTER,
    IANA_SVC_NAME,
    LABEL_VALUE,
    LABEL_VALUE_ERROR,
    QUALIFIED_NAME_ERROR,
    QUALIFIED_NAME_PART,
)

PORT_RANGE_ERROR = "must be between 1 and 65535, inclusive"


def render(value: Any) -> str:
    """A value as upstream prints it in `Invalid value: ...`: strings quoted, numbers bare, the rest JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def index(path: str, position: int) -> str:
    return f"{path}[{position}]"


def key(path: str, map_key: str) -> str:
    return f"{path}[{map_key}]"


def required(field: str, detail: str = "") -> Cause:
    return Cause(field, f"Required value: {detail}" if detail else "Required value", "FieldValueRequired")


def invalid(field: str, value: Any, detail: str) -> Cause:
    return Cause(field, f"Invalid value: {render(value)}: {detail}", "FieldValueInvalid")


def type_invalid(field: str, value: Any, detail: str) -> Cause:
    return Cause(field, f"Invalid value: {render(value)}: {detail}", "FieldValueTypeInvalid")


def duplicate(field: str, value: Any) -> Cause:
    return Cause(field, f"Duplicate value: {render(value)}", "FieldValueDuplicate")


def not_supported(field: str, value: Any, supported: Iterable[str]) -> Cause:
    listed = ", ".join(render(choice) for choice in supported)
    return Cause(field, f"Unsupported value: {render(value)}: supported values: {listed}", "FieldValueNotSupported")


def not_found(field: str, value: Any) -> Cause:
    return Cause(field, f"Not found: {render(value)}", "FieldValueNotFound")


def forbidden(field: str, detail: str) -> Cause:
    return Cause(field, f"Forbidden: {detail}", "FieldValueForbidden")


def too_long(field: str, limit: int) -> Cause:
    return Cause(field, f"Too long: may not be more than {limit} bytes", "FieldValueTooLong")


def immutable(field: str, value: Any) -> Cause:
    return invalid(field, value, "field is immutable")


def dns1123_label(field: str, value: str) -> list[Cause]:
    return _pattern_name(field, value, DNS1123_LABEL, DNS1123_LABEL_ERROR, DNS1123_LABEL_MAX)


def dns1123_subdomain(field: str, value: str) -> list[Cause]:
    return _pattern_name(field, value, DNS1123_SUBDOMAIN, DNS1123_SUBDOMAIN_ERROR, DNS1123_SUBDOMAIN_MAX)


def dns1035_label(field: str, value: str) -> list[Cause]:
    return _pattern_name(field, value, DNS1035_LABEL, DNS1035_LABEL_ERROR, DNS1123_LABEL_MAX)


def path_segment_name(field: str, value: str) -> list[Cause]:
    """RBAC objects only need to be usable as one URL path segment."""
    if value in (".", ".."):
        return [invalid(field, value, f"may not be '{value}'")]
    return [invalid(field, value, f"may not contain '{bad}'") for bad in ("/", "%") if bad in value]


def _pattern_name(field: str, value: str, pattern: re.Pattern[str], error: str, limit: int) -> list[Cause]:
    causes = []
    if len(value) > limit:
        causes.append(invalid(field, value, f"must be no more than {limit} characters"))
    if not pattern.fullmatch(value):
        causes.append(invalid(field, value, error))
    return causes


def qualified_name(field: str, value: str) -> list[Cause]:
    """A label or annotation key: an optional DNS subdomain prefix and a name of at most 63 characters."""
    prefix, slash, name = value.rpartition("/")
    causes = []
    if slash and not prefix:
        causes.append(invalid(field, value, "prefix part must be non-empty"))
    elif prefix and (len(prefix) > DNS1123_SUBDOMAIN_MAX or not DNS1123_SUBDOMAIN.fullmatch(prefix)):
        causes.append(invalid(field, value, f"prefix part {DNS1123_SUBDOMAIN_ERROR}"))
    if not name:
        causes.append(invalid(field, value, "name part must be non-empty"))
    elif len(name) > DNS1123_LABEL_MAX:
        causes.append(invalid(field, value, f"name part must be no more than {DNS1123_LABEL_MAX} characters"))
    elif not QUALIFIED_NAME_PART.fullmatch(name):
        causes.append(invalid(field, value, QUALIFIED_NAME_ERROR))
    return causes


def label_value(field: str, value: str) -> list[Cause]:
    return _pattern_name(field, value, LABEL_VALUE, LABEL_VALUE_ERROR, DNS1123_LABEL_MAX)


def labels(field: str, value: Any) -> list[Cause]:
    """Every key a qualified name and every value a valid label value (upstream reports them at `field`)."""
    if not isinstance(value, dict):
        return []
    causes = []
    for label_key, text in value.items():
        causes += qualified_name(field, label_key)
        if isinstance(text, str):
            causes += label_value(field, text)
    return causes


def config_key(field: str, value: str) -> list[Cause]:
    causes = _pattern_name(field, value, CONFIG_KEY, CONFIG_KEY_ERROR, DNS1123_SUBDOMAIN_MAX)
    if CONFIG_KEY.fullmatch(value) and (value in (".", "..") or value.startswith("..")):
        causes.append(invalid(field, value, "must not be '.' or '..' or start with '..'"))
    return causes


def port_number(field: str, value: Any) -> list[Cause]:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        return [invalid(field, value, PORT_RANGE_ERROR)]
    return []


def port_name(field: str, value: str) -> list[Cause]:
    """An IANA service name, as container and target port names must be."""
    details = []
    if len(value) > 15:
        details.append("must be no more than 15 characters")
    if not IANA_SVC_NAME.fullmatch(value):
        details.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in value:
        details.append("must not contain consecutive hyphens")
    if not HAS_LETTER.search(value):
        details.append("must contain at least one letter (a-z)")
    if value.startswith("-") or value.endswith("-"):
        details.append("must not begin or end with a hyphen")
    return [invalid(field, value, detail) for detail in details]


def port_number_or_name(field: str, value: Any) -> list[Cause]:
    if isinstance(value, str):
        return port_name(field, value)
    return port_number(field, value)
