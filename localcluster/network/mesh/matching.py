"""Envoy's string matchers as Istio configures them, compiled once per object change.

Istio's `StringMatch` (exact / prefix / regex) becomes an Envoy StringMatcher: regexes are RE2 and
must match the whole value (Envoy's `safe_regex`), a `StringMatch` with no field or the regex `*`
becomes a presence match (pilot's `canBeConvertedToPresentMatch`). AuthorizationPolicy values use
another shorthand (`*`, `prefix*`, `*suffix`, exact), compiled here too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import re2

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is reported to the writer, not logged by RE2 in C++


class InvalidMatch(ValueError):
    """A match that Istio's validation would refuse (an unknown field, a pattern RE2 cannot compile)."""


def compile_re2(pattern: str) -> Any:
    """An RE2 pattern, or InvalidMatch saying why RE2 refuses it (backreferences, lookarounds...)."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise InvalidMatch(f"{pattern!r} is not a valid RE2 regex: {reason}") from None


@dataclass(frozen=True)
class StringMatcher:
    """One compiled matcher: `kind` is exact, prefix, suffix, regex or present."""

    kind: str
    value: str = ""
    ignore_case: bool = False
    pattern: Any = None

    def __call__(self, text: str | None) -> bool:
        if text is None:
            return False
        if self.kind == "present":
            return True
        if self.kind == "regex":
            return self.pattern.fullmatch(text) is not None
        if self.ignore_case:
            text = text.lower()
        if self.kind == "exact":
            return text == self.value
        if self.kind == "prefix":
            return text.startswith(self.value)
        return text.endswith(self.value)

    def describe(self) -> str:
        return "present" if self.kind == "present" else f"{self.kind} {self.value!r}"


PRESENT = StringMatcher("present")


def string_match(spec: Mapping[str, Any] | None, *, ignore_case: bool = False) -> StringMatcher:
    """Istio's StringMatch: `{exact: v}`, `{prefix: v}`, `{regex: v}`; `{}` and `{regex: "*"}` mean present."""
    if not spec:
        return PRESENT
    if "exact" in spec:
        value = str(spec["exact"])
        return StringMatcher("exact", value.lower() if ignore_case else value, ignore_case)
    if "prefix" in spec:
        value = str(spec["prefix"])
        return StringMatcher("prefix", value.lower() if ignore_case else value, ignore_case)
    if "regex" in spec:
        regex = str(spec["regex"])
        if regex == "*":  # not RE2 (a bare quantifier): Istio reads it as "present" (istio/istio#20629)
            return PRESENT
        return StringMatcher("regex", regex, pattern=compile_re2(regex))
    return PRESENT


def wildcard_match(value: str, *, prefix: str = "", ignore_case: bool = False) -> StringMatcher:
    """AuthorizationPolicy's value syntax: `*` any non-empty value, `p*` prefix, `*s` suffix, else exact.

    `prefix` is prepended to the pattern (principals are matched as `spiffe://` + value).
    """
    fold: Callable[[str], str] = str.lower if ignore_case else str
    if value == "*":
        return StringMatcher("regex", ".+", pattern=compile_re2(".+"))
    if value.startswith("*"):
        if prefix:
            pattern = re2.escape(prefix) + ".*" + re2.escape(value[1:])
            return StringMatcher("regex", pattern, pattern=compile_re2(pattern))
        return StringMatcher("suffix", fold(value[1:]), ignore_case)
    if value.endswith("*"):
        return StringMatcher("prefix", fold(prefix + value[:-1]), ignore_case)
    return StringMatcher("exact", fold(prefix + value), ignore_case)
