import pytest

import checkers
from checkers import CheckResult, Registry, UnknownCheck


def _verdict(_ctx: object) -> CheckResult:
    return CheckResult.passed("ok")


def test_checks_are_kept_in_step_order_not_text_order() -> None:
    registry = Registry()
    for check_id in ("07.10", "07.2", "07.1"):
        registry.check(check_id, title=check_id)(_verdict)
    assert [c.check_id for c in registry.of_lab("07")] == ["07.1", "07.2", "07.10"]
    assert registry.of_lab("08") == []


@pytest.mark.parametrize("bad_id", ["1.1", "01", "01.x", "01-1", "a1.1", "01.1 "])
def test_a_malformed_id_is_refused(bad_id: str) -> None:
    with pytest.raises(ValueError, match=r"NN\.k"):
        Registry().check(bad_id, title="t")


def test_an_id_registered_twice_or_a_non_positive_timeout_is_refused() -> None:
    registry = Registry()
    registry.check("07.1", title="first")(_verdict)
    with pytest.raises(ValueError, match="registered twice"):
        registry.check("07.1", title="again")(_verdict)
    with pytest.raises(ValueError, match="timeout"):
        registry.check("07.2", title="t", timeout=0)


def test_the_decorated_function_stays_callable_and_keeps_its_solution() -> None:
    registry = Registry()
    registered = registry.check("07.1", title="t", timeout=5)(_verdict)

    @registered.solution
    def make_it_so(_ctx: object) -> None:
        """A step."""

    assert registered(object()).status is checkers.Status.PASSED
    assert registered.solution_step is make_it_so
    assert registered.timeout == 5


def test_labs_are_found_by_module_name() -> None:
    lab = checkers.labs()["00"]
    assert lab.lab_id == "00-setup"
    assert lab.module.__name__ == "checkers.lab00_setup"
    assert callable(lab.module.reset)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [("00", ["00.1", "00.2", "00.3", "00.4"]), ("00-setup", ["00.1", "00.2", "00.3", "00.4"]), ("00.2", ["00.2"])],
)
def test_select_takes_a_lab_or_one_check(selector: str, expected: list[str]) -> None:
    assert [c.check_id for c in checkers.select(selector)] == expected


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("42", r"no lab '42'; the labs are: 00 \(00-setup\)"),
        ("00.9", "lab 00-setup has: 00.1"),
        ("00-wrong", "no lab"),
    ],
)
def test_an_unknown_selector_says_what_exists(selector: str, message: str) -> None:
    with pytest.raises(UnknownCheck, match=message):
        checkers.select(selector)


def test_lab_00_solves_the_attendee_steps_and_leaves_the_environment_alone() -> None:
    steps = {c.check_id: c.solution_step for c in checkers.select("00")}
    assert steps["00.1"] is None and steps["00.2"] is None
    assert steps["00.3"] and steps["00.4"]
