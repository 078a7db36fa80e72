import dataclasses
import json

import pytest

from checkers import CheckEnvironmentError, CheckFailed, CheckResult, Status, exit_code


def test_a_result_cannot_be_changed_after_the_fact() -> None:
    evidence = {"phase": "Pending"}
    result = CheckResult.failed("not yet", "wait", **evidence)
    evidence["phase"] = "Running"
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.status = Status.PASSED  # type: ignore[misc]
    with pytest.raises(TypeError):
        result.evidence["phase"] = "Running"  # type: ignore[index]
    assert result.evidence["phase"] == "Pending"


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], 0),
        ([Status.PASSED, Status.PASSED], 0),
        ([Status.PASSED, Status.FAILED], 1),
        ([Status.FAILED, Status.ERROR, Status.PASSED], 2),
        ([Status.ERROR], 2),
    ],
)
def test_exit_code_puts_the_environment_before_the_attendee(statuses: list[Status], expected: int) -> None:
    assert exit_code([CheckResult(status, "m") for status in statuses]) == expected


def test_raise_for_status_tells_a_failure_from_an_environment_error() -> None:
    passed = CheckResult.passed("fine")
    assert passed.raise_for_status() is passed
    with pytest.raises(CheckFailed, match="Hint: apply it"):
        CheckResult.failed("no pod", "apply it").named("00.3", "pod", 0.1).raise_for_status()
    with pytest.raises(CheckEnvironmentError, match=r"\[00.1\] ERROR: unreachable"):
        CheckResult.error("unreachable").named("00.1", "api", 0.1).raise_for_status()
    assert issubclass(CheckFailed, AssertionError)


def test_to_dict_is_json_even_for_evidence_json_cannot_hold() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque thing"

    result = CheckResult.passed("ok", seen=Opaque(), count=3).named("00.1", "API", 0.12345)
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload == {
        "id": "00.1",
        "title": "API",
        "status": "PASSED",
        "message": "ok",
        "hint": "",
        "hints": [],
        "evidence": {"seen": "opaque thing", "count": 3},
        "duration": 0.123,
    }


def test_evidence_text_indents_long_text_under_its_key() -> None:
    result = CheckResult.error("crashed", traceback="line one\nline two\n", exception="ValueError: x")
    assert result.evidence_text() == "traceback:\n    line one\n    line two\nexception: ValueError: x"


def test_hints_climb_from_where_to_look_to_the_fix() -> None:
    result = CheckResult.failed("no claim", "look at the pod's events", "apply the claim")
    assert result.hint == "look at the pod's events"
    assert result.hints == ("look at the pod's events", "apply the claim")
    assert result.to_dict()["hints"] == ["look at the pod's events", "apply the claim"]
    assert CheckResult.passed("fine").hints == ()
