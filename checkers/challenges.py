"""Fix-it challenges: the lab breaks something, the attendee finds out what and repairs it.

Each lab ends with one, in Kubeasy's style: the story states the symptom as a user would report it,
never the cause, and its title does not name the fix; the check judges the outcome (the shop works
again, nothing lost), whatever the repair. Its FAILED verdict says the symptom too, and its hints
climb from where to look, through the cause `kubectl describe` shows, to the literal fix.

A lab adds its challenge like this (labs 01 and 02 do)::

    @challenge("01.5", title="The shop is down since the settings moved", story="...", timeout=60)
    def shop_is_back(ctx: Context) -> CheckResult:
        ...                                      # judge the outcome; `diagnosis.failed(symptom=...)` helps

    @shop_is_back.breaks
    def move_the_settings(ctx: Context) -> None:
        ...                                      # what the lab breaks: `labkit.challenge("01.5")` runs it

    @shop_is_back.solution
    def put_the_setting_back(ctx: Context) -> None:
        ...                                      # one repair, for `lab solve` and CI

and in its notebook: a cell `labkit.challenge("01.5")` (shows the story and breaks the lab), a
solution cell where the attendee repairs it, and the graded check cell `labkit.check("01.5")`.

Until the challenge is started its check is FAILED ("start the challenge first"), so CI's proof
(FAILED before the step, PASSED after) holds: the step is "start it, then repair it". Which
challenges were started is kept in the namespace, in the ConfigMap `lab-challenges`, so a check
run from a terminal or by nbgrader knows too; the lab's reset calls `forget`. A lab whose challenge
cell calls a function of its own (lab 05's `start_challenge`) records the start with `mark_started`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from checkers._context import Context
from checkers._notes import NamespaceNotes
from checkers._registry import DEFAULT_TIMEOUT, REGISTRY, Check, CheckFunction, SolutionStep
from checkers._result import CheckResult

__all__ = ["CHALLENGES", "MARKER", "Challenge", "challenge", "forget", "mark_started", "started"]

#: The ConfigMap that records which challenges were started (check id → when), in the lab's namespace.
MARKER = "lab-challenges"
_MARKS = NamespaceNotes(MARKER)


@dataclass
class Challenge:
    """A registered challenge: its check, its story, and what breaks the lab."""

    check: Check
    story: str
    breaker: SolutionStep | None = None
    repair: SolutionStep | None = field(default=None)

    @property
    def check_id(self) -> str:
        return self.check.check_id

    @property
    def title(self) -> str:
        return self.check.title

    def breaks(self, step: SolutionStep) -> SolutionStep:
        """Register what the lab breaks (decorator)."""
        self.breaker = step
        return step

    def solution(self, step: SolutionStep) -> SolutionStep:
        """Register one repair (decorator): CI and `lab solve` start the challenge, then run it."""
        self.repair = step

        def start_then_repair(ctx: Context) -> None:
            if not started(ctx, self.check_id):
                self.begin(ctx)
            step(ctx)

        self.check.solution(start_then_repair)
        return step

    def begin(self, ctx: Context) -> None:
        """Break the lab as the story says, and record that the challenge started."""
        if self.breaker is None:
            raise RuntimeError(f"challenge {self.check_id} has no @breaks step")
        self.breaker(ctx)
        mark_started(ctx, self.check_id)


#: Every registered challenge by check id.
CHALLENGES: dict[str, Challenge] = {}


def challenge(
    check_id: str, *, title: str, story: str, timeout: float = DEFAULT_TIMEOUT
) -> Callable[[CheckFunction], Challenge]:
    """Register a challenge's check under `check_id`; `story` tells the symptom, never the cause."""

    def register(judge: CheckFunction) -> Challenge:
        def judged(ctx: Context) -> CheckResult:
            if not started(ctx, check_id):
                return CheckResult.failed(
                    f"The challenge {check_id} has not started yet.",
                    "It is the lab's last section: its first cell breaks something and tells what is seen.",
                    f'Start it from the notebook: `labkit.challenge("{check_id}")`, then repair what it shows.',
                )
            return judge(ctx)

        registered = Challenge(REGISTRY.check(check_id, title=title, timeout=timeout)(judged), story)
        CHALLENGES[check_id] = registered
        return registered

    return register


def started(ctx: Context, check_id: str) -> bool:
    """Whether the challenge was started in this namespace (and not forgotten by a reset since)."""
    return check_id in _MARKS.read(ctx)


def forget(ctx: Context, lab_number: str) -> None:
    """Forget the lab's started challenges (its reset calls this)."""
    _MARKS.forget(ctx, lab_number)


def mark_started(ctx: Context, check_id: str) -> None:
    """Record that the challenge `check_id` was started in this namespace (now)."""
    _MARKS.put(ctx, check_id, datetime.now(UTC).isoformat(timespec="seconds"))
