"""Process groups localcluster starts, recorded under `$LAB_HOME/run/` so none outlives it.

The server and the kubelet record every process group they start; `lab down` and the next start
after a crash (or `kill -9`) of the server stop whatever is still recorded.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil


def run_dir(home: Path) -> Path:
    path = home / "run"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def record(home: Path, pgid: int, name: str) -> None:
    """Remember a process group (its leader's pid and start time, to survive pid reuse).

    A leader that already exited and was reaped (a container that fails at once) has nothing left to
    stop, so there is nothing to record.
    """
    try:
        started = psutil.Process(pgid).create_time()
    except psutil.NoSuchProcess:
        return
    (run_dir(home) / f"{pgid}.pgid").write_text(f"{started}\n{name}\n")


def forget(home: Path, pgid: int) -> None:
    (run_dir(home) / f"{pgid}.pgid").unlink(missing_ok=True)


def recorded(home: Path) -> list[tuple[int, str]]:
    """Recorded groups whose leader is still the process we started: (pgid, name)."""
    alive = []
    for path in sorted(run_dir(home).glob("*.pgid")):
        pgid = int(path.stem)
        started, _, name = path.read_text().partition("\n")
        try:
            if abs(psutil.Process(pgid).create_time() - float(started)) < 0.01:
                alive.append((pgid, name.strip()))
                continue
        except (psutil.NoSuchProcess, ValueError):
            pass
        # The leader is gone; members of its group may remain.
        if _group_members(pgid):
            alive.append((pgid, name.strip()))
        else:
            path.unlink(missing_ok=True)
    return alive


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(process.pid) == pgid:
                members.append(process)
        except (ProcessLookupError, PermissionError):
            continue
    return members


def stop_group(pgid: int, grace: float) -> None:
    """SIGTERM a process group, then SIGKILL whatever is left after `grace` seconds."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    _gone, alive = psutil.wait_procs(_group_members(pgid), timeout=grace)
    if alive:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        psutil.wait_procs(alive, timeout=5)


def sweep(home: Path, grace: float = 2.0) -> int:
    """Stop every recorded process group; returns how many were still running."""
    groups = recorded(home)
    for pgid, _name in groups:
        stop_group(pgid, grace)
        forget(home, pgid)
    return len(groups)
