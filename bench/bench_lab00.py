"""Lab 00 figures: the whole notebook under papermill, and one check when the state is already right.

Run: python -m bench.bench_lab00   (about 30 s; loopback only; the cluster in a temporary LAB_HOME)

The check's latency is what an attendee waits for after a step is done (target: at most 1 s): as
`labkit.check` runs it in a warm kernel (the check alone, p50 and p99), and as `lab check 00.4` in a
terminal (a new Python process: start-up, imports and connecting included).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench._stats import median, percentile, report
from localcluster.testing import LocalClusterRunner

NOTEBOOK = "00-setup.ipynb"
CHECK_ID = "00.4"
CHECK_RUNS = 50
CLI_RUNS = 3


@contextmanager
def pointing_at(cluster: LocalClusterRunner) -> Iterator[None]:
    """This process's environment (inherited by papermill's kernel) aimed at `cluster`, then restored."""
    saved = dict(os.environ)
    os.environ.update({"KUBECONFIG": str(cluster.kubeconfig), "LAB_HOME": str(cluster.home)})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def papermill_seconds(workdir: Path) -> float:
    """Wall time of solutions/00-setup.ipynb top to bottom, kernel start included."""
    import papermill

    from labkit.release import SOLUTIONS

    started = time.perf_counter()
    papermill.execute_notebook(
        SOLUTIONS / NOTEBOOK, workdir / NOTEBOOK, cwd=workdir, kernel_name="python3", progress_bar=False
    )
    return time.perf_counter() - started


def check_latencies() -> list[float]:
    """Seconds per run of one check on a connection that is already open, as in a warm kernel."""
    from checkers import run_check, select
    from labkit.connection import connect

    (one,) = select(CHECK_ID)
    samples = []
    with connect() as ctx:
        for _ in range(CHECK_RUNS):
            result = run_check(one, ctx)
            if not result.ok:
                raise RuntimeError(f"the state should already be right, but: {result.summary()}")
            samples.append(result.duration)
    return samples


def cli_seconds(cluster: LocalClusterRunner) -> list[float]:
    """Wall time of `lab check 00.4` as a new process, the way a terminal runs it."""
    env = cluster.env | {"KUBECONFIG": str(cluster.kubeconfig)}
    samples = []
    for _ in range(CLI_RUNS):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "localcluster.cli", "check", CHECK_ID], env=env, capture_output=True, check=True
        )
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-lab00-") as root:
        workdir = Path(root)
        with LocalClusterRunner(workdir / "home") as cluster, pointing_at(cluster):
            report("lab00 papermill", papermill_seconds(workdir), "s")
            latencies = check_latencies()
            for name, fraction in (("p50", 0.5), ("p99", 0.99)):
                report(f"lab00 check {CHECK_ID} in a kernel {name}", percentile(latencies, fraction) * 1000, "ms")
            report(f"lab00 `lab check {CHECK_ID}` process median", median(cli_seconds(cluster)), "s")


if __name__ == "__main__":
    main()
