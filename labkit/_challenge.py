"""`labkit.challenge("01.5")`: start a lab's fix-it challenge and show its story (the symptom, never the cause)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING

from labkit._default import resolve
from labkit._text import rich_text

if TYPE_CHECKING:
    from checkers import Context

_AMBER = "#b26a00"


@dataclass(frozen=True)
class ChallengeCard:
    """What the attendee is told: the story, and how the outcome is judged."""

    check_id: str
    title: str
    story: str

    def __str__(self) -> str:
        return (
            f"🔧 {self.title}\n{self.story}\n"
            f"Find out why with kubectl and this notebook; when you think it is fixed, run the check "
            f"(labkit.check({self.check_id!r})). Stuck? labkit.hint({self.check_id!r})."
        )

    def _repr_pretty_(self, printer: object, cycle: bool) -> None:
        printer.text(str(self))  # type: ignore[attr-defined]

    def _repr_html_(self) -> str:
        return (
            f'<div class="labkit-challenge" style="border-left:6px solid {_AMBER};padding:4px 10px">'
            f'<div style="color:{_AMBER};font-weight:bold">🔧 {html.escape(self.title)}</div>'
            f"<div>{rich_text(self.story)}</div>"
            f"<div><i>Find out why with kubectl and this notebook; when you think it is fixed, run the check "
            f"below. Stuck? <code>labkit.hint({self.check_id!r})</code> climbs from where to look to the fix."
            "</i></div></div>"
        )


def challenge(check_id: str, *, connection: Context | None = None) -> ChallengeCard:
    """Start the fix-it challenge `check_id`: the lab breaks something, and its story says what is seen."""
    from checkers import find_lab
    from checkers.challenges import CHALLENGES

    find_lab(check_id.split(".")[0])  # imports the lab's module, which registers its challenge
    found = CHALLENGES.get(check_id)
    if found is None:
        known = ", ".join(sorted(CHALLENGES)) or "none"
        raise ValueError(f"there is no challenge {check_id!r} (challenges: {known})")
    found.begin(resolve(connection))
    return ChallengeCard(check_id, found.title, found.story)
