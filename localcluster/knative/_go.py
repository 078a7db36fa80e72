"""Go's spelling of values, so messages read as upstream's: durations, floats, and the strconv parsers.

Knative's ConfigMaps and annotations are parsed with Go's `time.ParseDuration` and `strconv`; their
error messages and the values printed back (`stable-window = 1m0s`) use Go's formatting.
"""

from __future__ import annotations

import re
from decimal import Decimal

NANOSECOND = 1
MICROSECOND = 1_000
MILLISECOND = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS = {"ns": NANOSECOND, "us": MICROSECOND, "µs": MICROSECOND, "μs": MICROSECOND, "ms": MILLISECOND}
_UNITS.update({"s": SECOND, "m": MINUTE, "h": HOUR})
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_INT32 = (-(2**31), 2**31 - 1)


def parse_duration(text: str) -> int:
    """Nanoseconds in a Go duration (`1m30s`, `1.5s`, `-2h`); ValueError worded as time.ParseDuration's."""
    quoted = '"' + text + '"'
    body = text[1:] if text[:1] in "+-" else text
    sign = -1 if text[:1] == "-" else 1
    if body == "0":
        return 0
    if not body:
        raise ValueError(f"time: invalid duration {quoted}")
    total = Decimal(0)
    position = 0
    while position < len(body):
        match = _DURATION_PART.match(body, position)
        number, unit = (match.group(1), match.group(2)) if match else ("", "")
        if match is None or number in ("", "."):
            raise ValueError(f"time: invalid duration {quoted}")
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration {quoted}')
        total += Decimal(number) * _UNITS[unit]
        position = match.end()
    return sign * int(total)


def format_duration(nanoseconds: int) -> str:
    """time.Duration.String(): `1h0m0s`, `1m30s`, `1.5s`, `100ms`, `0s`."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    value = abs(nanoseconds)
    if value < SECOND:
        for unit, size in (("ms", MILLISECOND), ("µs", MICROSECOND), ("ns", NANOSECOND)):
            if value >= size:
                return sign + _fraction(value, size) + unit
    hours, rest = divmod(value, HOUR)
    minutes, rest = divmod(rest, MINUTE)
    text = _fraction(rest, SECOND) + "s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def _fraction(value: int, unit: int) -> str:
    whole, part = divmod(value, unit)
    if not part:
        return str(whole)
    digits = str(part).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def format_float(value: float) -> str:
    """fmt's %v of a float64: the shortest digits, in exponent form from 1e+06 and below 1e-04."""
    if value != value or value in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(value)]
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + int(exponent)
    power = point - 1
    prefix = "-" if sign else ""
    if power < -4 or power >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


def format_value(value: object) -> str:
    """fmt's %v for the values Knative prints in messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_float(value)
    return str(value)


def parse_bool(text: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def parse_int32(text: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    value = int(text)
    if not _INT32[0] <= value <= _INT32[1]:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": value out of range')
    return value


def parse_float(text: str) -> float:
    try:
        if text.strip() != text or "_" in text:
            raise ValueError
        return float(text)
    except ValueError:
        raise ValueError(f'strconv.ParseFloat: parsing "{text}": invalid syntax') from None


_ACTION = re.compile(r"\{\{(-\s)?\s*(.*?)\s*(\s-)?\}\}", re.DOTALL)
_FIELD = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)")
_INDEX = re.compile(r'index\s+\.([A-Za-z_][A-Za-z0-9_]*)\s+"((?:[^"\\]|\\.)*)"')


class TemplateError(ValueError):
    """A Go template this evaluator cannot run, or one that fails on the values given."""


def execute_template(template: str, values: dict[str, object]) -> str:
    """Run a Go text/template of the kind Knative's ConfigMaps hold, on `values`.

    The actions Knative's documentation shows are evaluated: `{{.Name}}` and `{{index .Labels "key"}}`
    (with `{{-`/`-}}` trimming). Any other action is refused with a message, rather than guessed at.
    """
    output: list[str] = []
    position = 0
    for match in _ACTION.finditer(template):
        text = template[position : match.start()]
        output.append(text.rstrip() if match.group(1) else text)
        output.append(_evaluate(match.group(2), values, template))
        position = match.end()
        if match.group(3):
            rest = template[position:]
            position += len(rest) - len(rest.lstrip())
    tail = template[position:]
    if "{{" in tail or "}}" in tail:
        raise TemplateError(f"template: {template!r}: unclosed action")
    output.append(tail)
    return "".join(output)


def _evaluate(action: str, values: dict[str, object], template: str) -> str:
    field = _FIELD.fullmatch(action)
    if field:
        name = field.group(1)
        if name not in values:
            raise TemplateError(f"template: {template!r}: can't evaluate field {name}")
        return format_value(values[name])
    index = _INDEX.fullmatch(action)
    if index:
        mapping = values.get(index.group(1))
        if not isinstance(mapping, dict):
            raise TemplateError(f"template: {template!r}: can't index field {index.group(1)}")
        key = index.group(2).encode().decode("unicode_escape")
        return str(mapping.get(key, ""))
    raise TemplateError(
        f"template: {template!r}: localcluster evaluates the actions {{{{.Field}}}} and "
        f'{{{{index .Labels "key"}}}} only, not {{{{{action}}}}}'
    )
