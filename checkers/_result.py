"""What a check concludes: a frozen value, the same whether shown in a notebook, a terminal or CI."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any


class Status(enum.StrEnum):
    """PASSED and FAILED speak about the attendee's work; ERROR about the environment, never graded."""

    PASSED = "PASSED"
    FAILED = "FAILED"
    ERROR = "ERROR"


class CheckFailed(AssertionError):
    """The attendee's work is not there yet (an AssertionError, so nbgrader counts it as a failed test)."""


class CheckEnvironmentError(RuntimeError):
    """The check could not look (cluster unreachable, a crash): nothing the attendee did."""


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict: a message for the attendee, hints toward the fix, and what it saw.

    `hints` is a ladder: the first is shown with the verdict and says where to look; each next one
    says more, and the last, followed literally, fixes the problem. An attendee climbs it on request
    (`labkit.hint("02.6")`, the panel's button, `lab hint 02.6`), so the answer never comes first.
    """

    status: Status
    message: str
    hints: tuple[str, ...] = ()
    evidence: Mapping[str, Any] = field(default_factory=dict)
    check_id: str = ""
    title: str = ""
    duration: float = 0.0

    def __post_init__(self) -> None:
        # Frozen all the way down: evidence is shown, serialised and compared, never edited.
        object.__setattr__(self, "evidence", MappingProxyType(dict(self.evidence)))
        object.__setattr__(self, "hints", tuple(hint for hint in self.hints if hint))

    @classmethod
    def passed(cls, message: str, **evidence: Any) -> CheckResult:
        return cls(Status.PASSED, message, evidence=evidence)

    @classmethod
    def failed(cls, message: str, hint: str, *more_hints: str, **evidence: Any) -> CheckResult:
        """FAILED with a ladder of hints: where to look first, the literal fix last."""
        return cls(Status.FAILED, message, hints=(hint, *more_hints), evidence=evidence)

    @classmethod
    def error(cls, message: str, hint: str = "", **evidence: Any) -> CheckResult:
        return cls(Status.ERROR, message, hints=(hint,), evidence=evidence)

    @property
    def ok(self) -> bool:
        return self.status is Status.PASSED

    @property
    def hint(self) -> str:
        """The first hint, shown with the verdict ("" when there is none)."""
        return self.hints[0] if self.hints else ""

    def named(self, check_id: str, title: str, duration: float) -> CheckResult:
        """The same verdict, labelled with the check that produced it."""
        return replace(self, check_id=check_id, title=title, duration=duration)

    def raise_for_status(self) -> CheckResult:
        """Raise unless PASSED: how hidden test cells turn a verdict into a grade."""
        if self.status is Status.FAILED:
            raise CheckFailed(self.summary())
        if self.status is Status.ERROR:
            raise CheckEnvironmentError(self.summary())
        return self

    def summary(self) -> str:
        """One paragraph: id, status, message and hint."""
        head = f"[{self.check_id}] " if self.check_id else ""
        text = f"{head}{self.status}: {self.message}"
        return f"{text}\nHint: {self.hint}" if self.hint else text

    def evidence_text(self) -> str:
        """The evidence as readable text: one `key: value` per line, long text indented below its key."""
        lines: list[str] = []
        for key, value in self.evidence.items():
            shown = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
            if "\n" in shown:
                lines.append(f"{key}:")
                lines.extend(f"    {line}" for line in shown.rstrip("\n").splitlines())
            else:
                lines.append(f"{key}: {shown}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (evidence values that JSON cannot hold are shown as text)."""
        return {
            "id": self.check_id,
            "title": self.title,
            "status": str(self.status),
            "message": self.message,
            "hint": self.hint,
            "hints": list(self.hints),
            "evidence": json.loads(json.dumps(dict(self.evidence), default=str)),
            "duration": round(self.duration, 3),
        }


def exit_code(results: list[CheckResult]) -> int:
    """2 if any check could not look, else 1 if any failed, else 0."""
    statuses = {result.status for result in results}
    if Status.ERROR in statuses:
        return 2
    if Status.FAILED in statuses:
        return 1
    return 0
