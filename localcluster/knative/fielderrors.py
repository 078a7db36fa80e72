"""knative.dev/pkg/apis.FieldError: the webhook's messages, field paths and their rendering.

Upstream builds a tree of errors and flattens it when printed; here a list of leaf errors is the same
thing already flat. `render` prints them as FieldError.Error() does: errors with the same message and
details merged (paths sorted), sorted by message, one `message: path, path` line each, details on the
next line. An empty list means valid.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from localcluster.knative._go import format_value

#: The path of the field being validated itself (apis.CurrentField).
CURRENT = ""


@dataclass(frozen=True)
class FieldError:
    message: str
    paths: tuple[str, ...]
    details: str = ""


Errors = list[FieldError]


def _flatten(parts: Iterable[str]) -> str:
    path: list[str] = []
    for part in parts:
        for piece in part.split("."):
            if piece == CURRENT:
                continue
            if path and piece.startswith("[") and piece.endswith("]"):
                path[-1] += piece
            else:
                path.append(piece)
    return ".".join(path)


def via(errors: Errors, *prefix: str) -> Errors:
    """ViaField: every path under `prefix` (`spec`, `template`)."""
    return [FieldError(e.message, tuple(_flatten([*prefix, p]) for p in e.paths), e.details) for e in errors]


def via_index(errors: Errors, index: int) -> Errors:
    return via(errors, f"[{index}]")


def via_key(errors: Errors, key: str) -> Errors:
    return via(errors, f"[{key}]")


def merged(errors: Errors) -> Errors:
    """WrappedErrors(): one error per message and details, with their paths merged and sorted."""
    by_key: dict[tuple[str, str], list[str]] = {}
    for error in errors:
        paths = by_key.setdefault((error.message, error.details), [])
        paths.extend(p for p in error.paths if p not in paths)
    return [
        FieldError(message, tuple(sorted(paths)), details)
        for (message, details), paths in sorted(by_key.items(), key=lambda item: (item[0][0], item[0][1]))
    ]


def render(errors: Errors) -> str:
    lines = []
    for error in merged(errors):
        line = f"{error.message}: {', '.join(error.paths)}"
        lines.append(f"{line}\n{error.details}" if error.details else line)
    return "\n".join(lines)


# The constructors of knative.dev/pkg/apis, with their exact messages.


def missing_field(*paths: str) -> Errors:
    return [FieldError("missing field(s)", paths)]


def disallowed_fields(*paths: str) -> Errors:
    return [FieldError("must not set the field(s)", paths)]


def invalid_value(value: object, path: str, *details: str) -> Errors:
    return [FieldError(f"invalid value: {format_value(value)}", (path,), ", ".join(details))]


def invalid_array_value(value: object, field: str, index: int) -> Errors:
    return via(via_index(invalid_value(value, CURRENT), index), field)


def generic(message: str, *paths: str) -> Errors:
    return [FieldError(message, paths)]


def missing_one_of(*paths: str) -> Errors:
    return [FieldError("expected exactly one, got neither", paths)]


def multiple_one_of(*paths: str) -> Errors:
    return [FieldError("expected exactly one, got both", paths)]


def invalid_key_name(key: str, path: str, *details: str) -> Errors:
    return [FieldError(f'invalid key name "{key}"', (path,), ", ".join(details))]


def out_of_bounds(value: object, lower: object, upper: object, path: str) -> Errors:
    shown = [format_value(v) for v in (lower, value, upper)]
    return [FieldError(f"expected {shown[0]} <= {shown[1]} <= {shown[2]}", (path,))]
