import socket
import threading
from collections.abc import Callable

import httpx
import pytest
import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from checkers import Check, CheckResult, Context, EnvironmentUnavailable, Status, observe, open_context, run_check


def make_check(function: Callable[[Context], CheckResult], timeout: float = 5.0) -> Check:
    return Check("07.1", "A test check", timeout, function)


def raising(exc: BaseException) -> Callable[[Context], CheckResult]:
    def check(_ctx: Context) -> CheckResult:
        raise exc

    return check


def closed_port() -> int:
    """A loopback port nothing listens on: asked from the OS, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def refused() -> urllib3.exceptions.MaxRetryError:
    """The error the kubernetes client really raises when nothing listens at the API's address."""
    with urllib3.HTTPConnectionPool("127.0.0.1", closed_port(), retries=urllib3.Retry(0)) as pool:
        try:
            pool.request("GET", "/api/v1")
        except urllib3.exceptions.MaxRetryError as exc:
            return exc
    raise AssertionError("something answered on a closed port")


def test_a_verdict_is_labelled_with_its_check() -> None:
    result = run_check(make_check(lambda _ctx: CheckResult.failed("no pod", "apply it")), ctx=object())
    assert (result.check_id, result.title, result.status) == ("07.1", "A test check", Status.FAILED)
    assert result.duration >= 0


@pytest.mark.parametrize(
    ("exc", "says"),
    [
        (ApiException(status=0, reason="connection reset"), "answered nothing connection reset"),
        (ApiException(status=503, reason="Service Unavailable"), "answered 503 Service Unavailable"),
        (ApiException(status=403, reason="Forbidden"), "refused our credentials"),
        (refused(), "cannot reach the Kubernetes API at 127.0.0.1:"),
        (urllib3.exceptions.ProtocolError("Connection aborted."), "connection to the Kubernetes API broke"),
        (httpx.ConnectError("refused", request=httpx.Request("GET", "http://stock/health")), "http://stock/health"),
        (ConfigException("Invalid kube-config file."), "no usable Kubernetes configuration"),
    ],
)
def test_the_environment_failing_is_an_error_never_a_failure(exc: BaseException, says: str) -> None:
    result = run_check(make_check(raising(exc)), ctx=object())
    assert result.status is Status.ERROR
    assert says in result.message
    assert "not about your work" in result.hint
    assert "Traceback" in result.evidence["traceback"]


def test_a_crashing_check_is_an_error_that_keeps_its_traceback_out_of_the_message() -> None:
    result = run_check(make_check(raising(ApiException(status=404, reason="Not Found"))), ctx=object())
    assert result.status is Status.ERROR
    assert result.message == "The check itself crashed (ApiException). This is not about your work."
    assert "Traceback" not in result.message
    assert "raise exc" in result.evidence["traceback"]


def test_a_check_that_returns_no_verdict_is_an_error() -> None:
    result = run_check(make_check(lambda _ctx: None), ctx=object())  # type: ignore[arg-type,return-value]
    assert result.status is Status.ERROR
    assert "returned NoneType" in result.message


def test_a_check_stuck_past_its_budget_is_an_error_and_the_run_goes_on() -> None:
    release = threading.Event()

    def stuck(_ctx: Context) -> CheckResult:
        release.wait(10)
        return CheckResult.passed("too late")

    try:
        result = run_check(make_check(stuck, timeout=0.05), ctx=object(), grace=0.05)
    finally:
        release.set()
    assert result.status is Status.ERROR
    assert "did not finish within 0.1s" in result.message


def test_observe_spends_the_running_checks_budget_and_reports_what_it_saw() -> None:
    looks: list[str] = []

    def watch(_ctx: Context) -> CheckResult:
        seen = observe(lambda: looks.append("Pending") or "Pending", lambda phase: phase == "Succeeded")
        return CheckResult.failed(f"still {seen.value}", "wait", reached=seen.reached)

    result = run_check(make_check(watch, timeout=0.3), ctx=object())
    assert result.message == "still Pending"
    assert result.evidence["reached"] is False
    assert len(looks) > 1
    assert result.duration < 3


class Unreachable:
    class core:
        @staticmethod
        def get_api_resources(**_: object) -> None:
            raise refused()


def test_open_context_says_in_one_line_that_the_cluster_is_down() -> None:
    with pytest.raises(EnvironmentUnavailable) as raised:
        open_context(Unreachable)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("Cannot reach the cluster: cannot reach the Kubernetes API at 127.0.0.1:")
    assert "(Failed to establish a new connection: [Errno 111] Connection refused)" in message
    assert message.endswith("Try `lab up`.")


def test_open_context_turns_a_failing_connect_into_the_same_line() -> None:
    def connect() -> Context:
        raise ConfigException("Service host/port is not set.")

    with pytest.raises(EnvironmentUnavailable, match="no usable Kubernetes configuration"):
        open_context(connect)
