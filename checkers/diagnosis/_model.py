"""What a diagnosis concludes: ready, still progressing, or stuck, with the cause and the way out."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from checkers._result import CheckResult, Status


class Outlook(enum.StrEnum):
    """Whether waiting can help: READY needs nothing, PROGRESSING may get there alone, STUCK never will."""

    READY = "ready"
    PROGRESSING = "progressing"
    STUCK = "stuck"


class Problem(enum.StrEnum):
    """Why something is not ready, one word per cause, so a lab can give its own fix for one (`fixes=`)."""

    NONE = "None"
    # A workload and its pods.
    NOT_FOUND = "NotFound"
    SCALED_TO_ZERO = "ScaledToZero"
    FAILED_CREATE = "FailedCreate"
    MISSING_OBJECT = "MissingObject"
    UNSCHEDULABLE = "Unschedulable"
    FAILED_MOUNT = "FailedMount"
    IMAGE_PULL = "ImagePull"
    CONTAINER_CONFIG = "ContainerConfig"
    CRASH_LOOP = "CrashLoop"
    PROBE_FAILING = "ProbeFailing"
    STARTING = "Starting"
    # A Service.
    PORT_NOT_EXPOSED = "PortNotExposed"
    NO_SELECTOR = "NoSelector"
    SELECTOR_MATCHES_NOTHING = "SelectorMatchesNothing"
    TARGET_PORT_UNKNOWN = "TargetPortUnknown"
    CONNECTION_REFUSED = "ConnectionRefused"
    NO_ANSWER = "NoAnswer"
    ENDPOINTS_PENDING = "EndpointsPending"


@dataclass(frozen=True)
class Answer:
    """What an HTTP request through a Service answered, error bodies turned into their text."""

    status: int
    text: str
    document: Any = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class Diagnosis:
    """One look at a workload or a Service: its outlook, the cause in `kubectl describe`'s words, the way out.

    `look` says where the attendee sees the cause themselves (a kubectl command); `fix` is the literal
    instruction that repairs it, when one is known ("" otherwise: the lab gives it with `fixes=`).
    """

    subject: str
    outlook: Outlook
    problem: Problem
    summary: str
    look: str = ""
    fix: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)
    #: (kind, name) of an object the subject needs and that does not exist, when that is the cause.
    missing: tuple[str, str] | None = None
    answer: Answer | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "evidence", MappingProxyType(dict(self.evidence)))

    @property
    def ready(self) -> bool:
        return self.outlook is Outlook.READY

    @property
    def waiting_helps(self) -> bool:
        return self.outlook is Outlook.PROGRESSING

    def about(self, subject: str, summary: str) -> Diagnosis:
        """The same diagnosis told about another subject (a Service whose pods are the cause)."""
        return replace(self, subject=subject, summary=summary)

    def failed(
        self,
        *,
        fixes: Mapping[Problem, str] | None = None,
        symptom: str | None = None,
    ) -> CheckResult:
        """The FAILED verdict: the cause as the message, then where to look, then the fix.

        `fixes` gives the lab's own instruction for problems only it knows how to repair. `symptom`
        replaces the cause in the message (a fix-it challenge says what is seen, never why): the
        cause then comes as the hint after where to look, before the fix.
        """
        fix = (fixes or {}).get(self.problem) or self.fix
        message = _sentence(self.summary)
        hints = [f"Where to look: {self.look}" if self.look else "", fix]
        if symptom is not None:
            hints.insert(1, f"What it shows: {message}")
            message = symptom
        return CheckResult(Status.FAILED, message, hints=tuple(hints), evidence=self.evidence)


def _sentence(text: str) -> str:
    """The summary as a sentence: capitalised, ending with a full stop (kubectl's words often do not)."""
    text = text.strip()
    if not text:
        return text
    if not text.startswith(("http://", "https://")):
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?", ")", "\n")) or "\n" in text else f"{text}."
