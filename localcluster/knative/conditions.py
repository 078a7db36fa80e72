"""knative.dev/pkg/apis.ConditionSet: a happy condition (Ready) that follows its dependent conditions.

Marking a dependent False makes Ready False with the same reason and message; Unknown makes Ready
Unknown unless another dependent is False; True makes Ready True once every dependent is True.
Conditions outside the set (a Revision's `Active`) have severity Info and never move Ready.
A condition keeps its lastTransitionTime unless something about it changes, and the list stays sorted
by type, as upstream writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Condition = dict[str, Any]

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"
READY = "Ready"


@dataclass(frozen=True)
class ConditionSet:
    happy: str
    dependents: tuple[str, ...]

    def manage(self, status: dict[str, Any], now: str | float) -> ConditionManager:
        """Operate on `status["conditions"]` (created when missing), stamping changes with `now`.

        `now` is an RFC 3339 time for objects; the autoscaler's in-memory PodAutoscaler uses seconds.
        """
        return ConditionManager(self, status, now)


class ConditionManager:
    def __init__(self, condition_set: ConditionSet, status: dict[str, Any], now: str | float) -> None:
        self._set = condition_set
        self._status = status
        self._now = now

    @property
    def conditions(self) -> list[Condition]:
        return self._status.setdefault("conditions", [])

    def get(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.get("type") == kind), None)

    def status_of(self, kind: str) -> str | None:
        condition = self.get(kind)
        return None if condition is None else condition.get("status")

    def is_true(self, kind: str | None = None) -> bool:
        return self.status_of(kind or self._set.happy) == TRUE

    def _terminal(self, kind: str) -> bool:
        return kind == self._set.happy or kind in self._set.dependents

    def set(self, kind: str, status: str, reason: str = "", message: str = "") -> None:
        condition: Condition = {"type": kind, "status": status}
        if not self._terminal(kind):
            condition["severity"] = "Info"
        if reason:
            condition["reason"] = reason
        if message:
            condition["message"] = message
        previous = self.get(kind)
        if previous is not None:
            unchanged = {k: v for k, v in previous.items() if k != "lastTransitionTime"}
            if unchanged == condition:
                return
        condition["lastTransitionTime"] = self._now
        others = [c for c in self.conditions if c.get("type") != kind]
        self._status["conditions"] = sorted([*others, condition], key=lambda c: c["type"])

    def initialize(self) -> None:
        """Ready Unknown when unset, and each unset dependent Unknown (True if Ready already is)."""
        happy = self.get(self._set.happy)
        if happy is None:
            self.set(self._set.happy, UNKNOWN)
        status = TRUE if self.is_true() else UNKNOWN
        for kind in self._set.dependents:
            if self.get(kind) is None:
                self.set(kind, status)

    def mark_true(self, kind: str, reason: str = "", message: str = "") -> None:
        self.set(kind, TRUE, reason, message)
        unhappy = self._unhappy_dependent()
        if unhappy is not None:
            self.set(
                self._set.happy, unhappy.get("status", UNKNOWN), unhappy.get("reason", ""), unhappy.get("message", "")
            )
        elif kind != self._set.happy:
            self.set(self._set.happy, TRUE)

    def mark_unknown(self, kind: str, reason: str, message: str = "") -> None:
        self.set(kind, UNKNOWN, reason, message)
        for dependent in self._set.dependents:
            if self.status_of(dependent) == FALSE:
                if self.status_of(self._set.happy) != FALSE:
                    self.mark_false(self._set.happy, reason, message)
                return
        if kind in self._set.dependents:
            self.set(self._set.happy, UNKNOWN, reason, message)

    def mark_false(self, kind: str, reason: str, message: str = "") -> None:
        self.set(kind, FALSE, reason, message)
        if kind in self._set.dependents:
            self.set(self._set.happy, FALSE, reason, message)

    def _unhappy_dependent(self) -> Condition | None:
        if not self._set.dependents:
            return None
        terminal = [c for c in self.conditions if c["type"] in self._set.dependents]
        newest_first = sorted(terminal, key=lambda c: c.get("lastTransitionTime", ""), reverse=True)
        for wanted in (FALSE, UNKNOWN):
            found = next((c for c in newest_first if c.get("status") == wanted), None)
            if found is not None:
                return found
        if len(self._set.dependents) > len(terminal):
            return {"status": UNKNOWN}
        return None


# The condition sets of the Knative kinds (pkg/apis/serving/v1/*_lifecycle.go).
SERVICE = ConditionSet(READY, ("ConfigurationsReady", "RoutesReady"))
CONFIGURATION = ConditionSet(READY, ())
ROUTE = ConditionSet(READY, ("AllTrafficAssigned", "IngressReady", "CertificateProvisioned"))
REVISION = ConditionSet(READY, ("ResourcesAvailable", "ContainerHealthy"))
#: The PodAutoscaler's, kept in memory by the autoscaler (no PodAutoscaler kind is served).
POD_AUTOSCALER = ConditionSet(READY, ("Active", "ScaleTargetInitialized", "SKSReady"))
