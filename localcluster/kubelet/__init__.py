"""The kubelet of localcluster: pods as local process groups.

A pod's containers run as process groups in the project's Python environment (which images that
is: `localcluster.images`, which the Knative revision controller reads too), each pod on a loopback
address of its own (`_podnet`), with env, volumes (`_env`, `_volumes`), probes, restarts with crash
back-off, logs rotated by size (`_logs`) as upstream reports them, and the securityContext it can
honour, with a Warning event for what it cannot (`_security`). `Kubelet` is the whole of it; the
server wires `read_logs` and `routes` into the API app and starts it.
"""

from localcluster.kubelet._kubelet import NODE_NAME, SHUTDOWN_GRACE_SECONDS, Kubelet
from localcluster.kubelet._logs import LogLimits
from localcluster.kubelet._podnet import HOST_IP, POD_NETWORK, SHIM_DIR

__all__ = [
    "HOST_IP",
    "NODE_NAME",
    "POD_NETWORK",
    "SHIM_DIR",
    "SHUTDOWN_GRACE_SECONDS",
    "Kubelet",
    "LogLimits",
]
