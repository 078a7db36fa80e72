"""The process-group records `lab down` and a restart after a crash rely on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil

from localcluster import processes


def test_a_recorded_group_is_swept_and_a_reaped_one_is_not_recorded(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    processes.record(tmp_path, sleeper.pid, "sleeper")
    assert processes.recorded(tmp_path) == [(sleeper.pid, "sleeper")]
    assert processes.sweep(tmp_path, grace=1) == 1
    sleeper.wait(5)  # settles the Popen object; sweep already reaped the process
    assert not psutil.pid_exists(sleeper.pid), "sweep stopped the recorded group"
    quick = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    quick.wait()
    processes.record(tmp_path, quick.pid, "gone")
    assert processes.recorded(tmp_path) == []
