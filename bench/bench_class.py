"""What one attendee costs: memory (PSS) and CPU of the course's bookstore, lab after lab, on localcluster.

Run: python -m bench.bench_class   (a few minutes; loopback only; a temporary LAB_HOME)

One localcluster runs `lab solve NN` for every lab the course has (00, 01, ... as they land), as an
attendee who follows the whole course would leave it. After each lab it measures, over every process
of that LAB_HOME, the proportional set size (psutil's memory_full_info().pss: shared pages counted
once across processes, so sums are honest), and the CPU the processes use while idle over a window.
`pods` is what an attendee's namespace runs on a real cluster (their bookstore); `server` is
localcluster's own API, controllers and proxy, which a real cluster shares across the class.
JupyterLab is not counted (its pod has its own guarantee in infra/jupyterhub/values.yaml).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import psutil

from bench._stats import report
from checkers import labs
from localcluster.testing import LocalClusterRunner

IDLE_WINDOW = 10.0


def split_processes(cluster: LocalClusterRunner) -> tuple[list[psutil.Process], list[psutil.Process]]:
    """(server, pods): the localcluster server process, and every pod process (the kubelet's children)."""
    server = psutil.Process(cluster.server_pid())
    return [server], server.children(recursive=True)


def pss_mib(processes: list[psutil.Process]) -> float:
    total = 0
    for process in processes:
        try:
            total += process.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / 2**20


def cpu_by_process(processes: list[psutil.Process]) -> dict[tuple[int, float], float]:
    """CPU seconds used so far by each process, keyed by (pid, create time) so a reused pid is another process."""
    used = {}
    for process in processes:
        try:
            with process.oneshot():
                times = process.cpu_times()
                used[(process.pid, process.create_time())] = times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return used


def cpu_since(before: dict[tuple[int, float], float], processes: list[psutil.Process]) -> float:
    """CPU seconds the processes alive now used since `before` (a new process counts whole).

    A process that exited in between (a Knative revision scaled to zero) drops out rather than
    making the sum negative: its last seconds are not counted.
    """
    return sum(used - before.get(key, 0.0) for key, used in cpu_by_process(processes).items())


def idle_cores(cluster: LocalClusterRunner) -> tuple[float, float]:
    """Average cores used by (server, pods) over IDLE_WINDOW seconds with nothing asked of them."""
    server, pods = split_processes(cluster)
    before = cpu_by_process(server + pods)
    time.sleep(IDLE_WINDOW)  # a measurement window, not a wait for state
    server, pods = split_processes(cluster)
    return cpu_since(before, server) / IDLE_WINDOW, cpu_since(before, pods) / IDLE_WINDOW


def main() -> None:
    lab_ids = sorted(lab.lab_id for lab in labs().values())
    with tempfile.TemporaryDirectory(prefix="bench-class-") as root, LocalClusterRunner(Path(root) / "home") as cluster:
        report("labs measured", len(lab_ids), "labs")
        for lab_id in lab_ids:
            started = time.perf_counter()
            server, pods = split_processes(cluster)
            cpu_before = cpu_by_process(server + pods)
            solved = cluster.lab("solve", lab_id.split("-")[0], check=False, timeout=900)
            elapsed = time.perf_counter() - started
            if solved.returncode != 0:
                print(f"lab {lab_id}: solve failed ({solved.returncode}): {solved.stderr.strip()[-300:]}", flush=True)
                break
            server, pods = split_processes(cluster)
            report(f"after {lab_id}: solve time", elapsed, "s")
            report(f"after {lab_id}: solve CPU (server + pods)", cpu_since(cpu_before, server + pods), "s")
            report(f"after {lab_id}: pods", len(pods), "processes")
            report(f"after {lab_id}: PSS pods", pss_mib(pods), "MiB")
            report(f"after {lab_id}: PSS server", pss_mib(server), "MiB")
            server_cores, pod_cores = idle_cores(cluster)
            report(f"after {lab_id}: idle CPU pods", pod_cores * 1000, "millicores")
            report(f"after {lab_id}: idle CPU server", server_cores * 1000, "millicores")


if __name__ == "__main__":
    main()
