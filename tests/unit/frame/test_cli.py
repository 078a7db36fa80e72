import json
import time

import pytest
from click.testing import CliRunner
from kubernetes import client

from labkit import cli

from .fake_cluster import FakeConnection
from .test_runner import closed_port


@pytest.fixture
def connected(cluster: FakeConnection, monkeypatch: pytest.MonkeyPatch) -> FakeConnection:
    """`lab check` connects to the fake cluster instead of labkit.connect()."""
    monkeypatch.setattr(cli, "connect_to_cluster", lambda: cluster)
    return cluster


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli.frame, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_all_passing_exits_0_with_a_table(connected: FakeConnection) -> None:
    connected.add_pod("Succeeded", logs="hello from the bookstore, Ada!\n", reader="Ada")
    code, out, _ = invoke("check", "00")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("00.1  PASSED  The Kubernetes API answers")
    assert [line[:12] for line in lines if line[:2] == "00"] == [
        "00.1  PASSED",
        "00.2  PASSED",
        "00.3  PASSED",
        "00.4  PASSED",
    ]
    assert lines[-1].startswith("4 checks: 4 passed (")


def test_a_failure_exits_1_and_shows_the_hint(connected: FakeConnection) -> None:
    code, out, _ = invoke("check", "00.3")
    assert code == 1
    assert "00.3  FAILED  Your first pod ran and greeted you" in out
    assert "hint: Run the cell that applies 00-setup/hello-pod.yaml" in out
    assert out.splitlines()[-1].startswith("1 check: 1 failed")


def test_lab_hint_climbs_one_step_past_what_lab_check_shows(connected: FakeConnection) -> None:
    _, out, _ = invoke("check", "00.3")
    assert "stuck? `lab hint 00.3` gives the next hint" in out
    code, out, _ = invoke("hint", "00.3")
    assert code == 0
    assert "hint 2 of 2 (the last one): Or apply the manifest from anywhere: `kubectl apply --server-side -f" in out
    assert "00-setup/hello-pod.yaml`" in out
    code, out, _ = invoke("hint", "00.3", "1")
    assert "hint 1 of 2 (next: `lab hint 00.3 2`): Run the cell that applies" in out


def test_json_is_for_machines(connected: FakeConnection) -> None:
    code, out, _ = invoke("check", "00-setup", "--json")
    report = json.loads(out)
    assert code == report["exit_code"] == 1
    assert [(r["id"], r["status"]) for r in report["results"]] == [
        ("00.1", "PASSED"),
        ("00.2", "PASSED"),
        ("00.3", "FAILED"),
        ("00.4", "FAILED"),
    ]


def test_an_environment_error_exits_2_even_beside_failures(
    connected: FakeConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise client.exceptions.ApiException(status=500, reason="Internal Server Error")

    monkeypatch.setattr(connected.core, "read_namespace", broken)
    code, out, _ = invoke("check", "00")
    assert code == 2
    assert "00.2  ERROR   Your namespace exists and is selected" in out
    assert "answered 500 Internal Server Error" in out


def real_client_for_a_dead_cluster() -> FakeConnection:
    """A real CoreV1Api aimed at a loopback port where nothing listens."""
    configuration = client.Configuration(host=f"http://127.0.0.1:{closed_port()}")
    return FakeConnection(core=client.CoreV1Api(client.ApiClient(configuration)))  # type: ignore[arg-type]


def test_with_the_cluster_down_check_exits_2_quickly_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "connect_to_cluster", real_client_for_a_dead_cluster)
    started = time.monotonic()
    code, out, err = invoke("check", "00")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("Cannot reach the cluster: cannot reach the Kubernetes API at 127.0.0.1:")
    assert time.monotonic() - started < 10


def test_with_the_cluster_down_json_still_lists_every_check_as_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "connect_to_cluster", real_client_for_a_dead_cluster)
    code, out, _ = invoke("check", "00", "--json")
    assert code == 2
    assert {r["status"] for r in json.loads(out)["results"]} == {"ERROR"}


def test_an_unknown_lab_is_a_usage_error_that_lists_the_labs(connected: FakeConnection) -> None:
    code, _, err = invoke("check", "42")
    assert code == 2
    assert "no lab '42'; the labs are: 00 (00-setup)" in err
    assert "Traceback" not in err


def test_reset_deletes_the_lab_objects(connected: FakeConnection) -> None:
    connected.add_pod("Succeeded")
    code, out, _ = invoke("reset", "00")
    assert (code, out) == (0, "lab 00 reset\n")
    assert connected.core.pods == {}


def test_solve_with_the_cluster_down_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "connect_to_cluster", real_client_for_a_dead_cluster)
    code, _, err = invoke("solve", "00")
    assert code == 2
    assert err.startswith("Cannot reach the cluster")


def test_the_commands_to_attach_are_exported() -> None:
    assert [command.name for command in cli.COMMANDS] == [
        "check",
        "hint",
        "solve",
        "reset",
        "release",
        "jupyter",
        "collect",
        "grade",
        "progress",
    ]


def test_the_lab_command_attaches_them_with_its_own_reset() -> None:
    from localcluster.cli import main, reset

    assert all(main.commands[command.name] is command for command in cli.COMMANDS if command is not cli.reset_command)
    assert main.commands["reset"] is reset
