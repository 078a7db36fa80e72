import pytest

from labkit import WaitTimeout, wait_for
from labkit._waiting import poll


def test_wait_for_returns_the_first_truthy_value() -> None:
    answers = iter([None, "", "Running", "ignored"])
    assert wait_for(lambda: next(answers), what="the pod to run", timeout=5) == "Running"


def test_wait_for_names_what_it_waited_for_and_what_it_last_saw() -> None:
    with pytest.raises(WaitTimeout, match=r"0.2s waiting for ready pods \(last seen: \[\]\)") as raised:
        wait_for(list, what="ready pods", timeout=0.2)
    assert isinstance(raised.value, TimeoutError)
    assert raised.value.what == "ready pods"
    assert raised.value.last == []


def test_poll_reports_the_last_value_when_time_runs_out() -> None:
    looks = iter(range(1000))
    seen = poll(lambda: next(looks), lambda n: n < 0, timeout=0.2)
    assert not seen.reached
    assert seen.value >= 1  # it looked more than once, with back-off in between


def test_an_exception_is_not_retried_so_a_dead_api_shows_at_once() -> None:
    calls = []

    def probe() -> None:
        calls.append(1)
        raise ConnectionRefusedError("refused")

    with pytest.raises(ConnectionRefusedError):
        poll(probe, bool, timeout=30)
    assert len(calls) == 1
