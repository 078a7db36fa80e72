"""Field errors worded as upstream's `field.Error` renders them, and the name and label syntax rules.

Messages follow k8s.io/apimachinery/pkg/util/validation (`IsDNS1123Label`, `IsQualifiedName`, ...), so
an attendee sees on localcluster the words a real cluster would print.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from localcluster.api.errors import Cause

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_IANA_SVC_NAME = re.compile(r"[-a-z0-9]+")
_HAS_LETTER = re.compile(r"[a-z]")

DNS1123_LABEL_ERROR = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1123_SUBDOMAIN_ERROR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
DNS1035_LABEL_ERROR = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
_QUALIFIED_NAME_ERROR = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_LABEL_VALUE_ERROR = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
_CONFIG_KEY_ERROR = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
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
    return _pattern_name(field, value, _DNS1123_LABEL, DNS1123_LABEL_ERROR, DNS1123_LABEL_MAX)


def dns1123_subdomain(field: str, value: str) -> list[Cause]:
    return _pattern_name(field, value, _DNS1123_SUBDOMAIN, DNS1123_SUBDOMAIN_ERROR, DNS1123_SUBDOMAIN_MAX)


def dns1035_label(field: str, value: str) -> list[Cause]:
    return _pattern_name(field, value, _DNS1035_LABEL, DNS1035_LABEL_ERROR, DNS1123_LABEL_MAX)


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
    elif prefix and (len(prefix) > DNS1123_SUBDOMAIN_MAX or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        causes.append(invalid(field, value, f"prefix part {DNS1123_SUBDOMAIN_ERROR}"))
    if not name:
        causes.append(invalid(field, value, "name part must be non-empty"))
    elif len(name) > DNS1123_LABEL_MAX:
        causes.append(invalid(field, value, f"name part must be no more than {DNS1123_LABEL_MAX} characters"))
    elif not _QUALIFIED_NAME_PART.fullmatch(name):
        causes.append(invalid(field, value, _QUALIFIED_NAME_ERROR))
    return causes


def label_value(field: str, value: str) -> list[Cause]:
    causes = []
    if len(value) > DNS1123_LABEL_MAX:
        causes.append(invalid(field, value, f"must be no more than {DNS1123_LABEL_MAX} characters"))
    if not _LABEL_VALUE.fullmatch(value):
        causes.append(invalid(field, value, _LABEL_VALUE_ERROR))
    return causes


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
    causes = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        causes.append(invalid(field, value, f"must be no more than {DNS1123_SUBDOMAIN_MAX} characters"))
    if not _CONFIG_KEY.fullmatch(value):
        causes.append(invalid(field, value, _CONFIG_KEY_ERROR))
    elif value in (".", "..") or value.startswith(".."):
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
    if not _IANA_SVC_NAME.fullmatch(value):
        details.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in value:
        details.append("must not contain consecutive hyphens")
    if not _HAS_LETTER.search(value):
        details.append("must contain at least one letter (a-z)")
    if value.startswith("-") or value.endswith("-"):
        details.append("must not begin or end with a hyphen")
    return [invalid(field, value, detail) for detail in details]


def port_number_or_name(field: str, value: Any) -> list[Cause]:
    if isinstance(value, str):
        return port_name(field, value)
    return port_number(field, value)
