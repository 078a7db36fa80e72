"""labkit reads what localcluster writes in `$LAB_HOME` without importing it: both must keep to one shape.

The tests may import both sides; labkit may not (tests/unit/test_layers.py).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from labkit._lab_home import (
    ClusterTarget,
    LabHomeError,
    LocalclusterServer,
    localcluster_kubeconfig,
    localcluster_state_file,
    recorded_target,
    running_localcluster,
)
from labkit.settings import Settings
from localcluster import state
from localcluster.settings import Settings as ClusterSettings


@pytest.fixture
def stand_in_server() -> Iterator[subprocess.Popen[bytes]]:
    """A process whose command line is a localcluster server's (`python -m localcluster.server`), idle."""
    command = [sys.executable, "-c", "import sys; sys.stdin.read()", "-m", "localcluster.server"]
    with subprocess.Popen(command, stdin=subprocess.PIPE) as child:
        yield child
        child.kill()


@pytest.mark.parametrize("environ", [{}, {"LAB_HOME": "~/somewhere/else"}])
def test_labkit_looks_where_localcluster_keeps_its_state(environ: dict[str, str]) -> None:
    home = Settings.from_env(environ).lab_home
    assert home == ClusterSettings.from_env(environ).home
    assert localcluster_kubeconfig(home) == ClusterSettings(home=home).kubeconfig_path
    assert localcluster_state_file(home) == ClusterSettings(home=home).state_path


def test_labkit_reads_the_state_file_localcluster_writes(
    tmp_path: Path, stand_in_server: subprocess.Popen[bytes]
) -> None:
    settings = ClusterSettings(home=tmp_path)
    assert running_localcluster(tmp_path) is None
    written = state.ServerState(
        stand_in_server.pid, "127.0.0.1", 6443, str(tmp_path), time.time(), proxy="http://127.0.0.1:8080"
    )
    state.write_state(settings, written)
    assert state.read_state(settings) == written
    assert running_localcluster(tmp_path) == LocalclusterServer(written.pid, written.url, written.proxy)
    stand_in_server.kill()
    stand_in_server.wait()
    assert state.read_state(settings) is None
    assert running_localcluster(tmp_path) is None, "a state file left by a dead server means none runs"


def test_a_server_without_its_proxy_reads_as_an_empty_proxy(
    tmp_path: Path, stand_in_server: subprocess.Popen[bytes]
) -> None:
    written = state.ServerState(stand_in_server.pid, "127.0.0.2", 1, str(tmp_path), time.time())
    state.write_state(ClusterSettings(home=tmp_path), written)
    assert running_localcluster(tmp_path) == LocalclusterServer(written.pid, "https://127.0.0.2:1", "")


@pytest.mark.parametrize("content", ["{not json", "[]", '{"pid": 1}', '{"pid": "x", "host": "h", "port": 1}'])
def test_a_corrupt_state_file_says_what_to_do(tmp_path: Path, content: str) -> None:
    (tmp_path / "localcluster.json").write_text(content)
    with pytest.raises(LabHomeError, match=r"localcluster.json is corrupt \(.+\); run `lab down` then `lab up`"):
        running_localcluster(tmp_path)


def test_labkit_reads_the_target_lab_up_records(tmp_path: Path) -> None:
    settings = ClusterSettings(home=tmp_path)
    assert recorded_target(tmp_path) is None
    for written in (
        state.ClusterTarget("kind-bookstore"),
        state.ClusterTarget("kind", "/k/config", "http://127.0.0.1:8080"),
    ):
        state.write_target(settings, written)
        assert recorded_target(tmp_path) == ClusterTarget(**asdict(written))
    state.forget_target(settings)
    assert recorded_target(tmp_path) is None


@pytest.mark.parametrize("content", ["{not json", "[]", '{"kubeconfig": "/k/config"}'])
def test_a_corrupt_target_says_to_record_it_again(tmp_path: Path, content: str) -> None:
    (tmp_path / "target.json").write_text(content)
    with pytest.raises(LabHomeError, match=r"target.json is corrupt \(.+\); run `lab up --target cluster` again"):
        recorded_target(tmp_path)
