"""Pod addresses: each pod gets a loopback address of its own, 127.244.x.y.

Servers in a pod bind `0.0.0.0` or `localhost` as they would in a container and must land on the
pod's address, so many pods can serve :8080 at once. Two ways exist:

* a network namespace per pod (what a container runtime does) needs root, a veth pair and routes
  so the pod can still reach the service proxy and the API on the host's loopback; localcluster
  must run unprivileged on laptops, Binder and CI, so it does not use one anywhere;
* a bind/connect shim in the pod's Python runtime (`shim/sitecustomize.py`, put first on
  PYTHONPATH): wildcard and loopback binds go to the pod address, and connects to 127.0.0.1 or
  localhost reach the pod's own servers, except the host endpoints (API, proxy) listed in
  `LOCALCLUSTER_HOST_ENDPOINTS`. This is what localcluster uses, on Linux and macOS alike.

Linux routes all of 127.0.0.0/8 to `lo`; macOS configures only 127.0.0.1, so there each pod
address needs `sudo ifconfig lo0 alias 127.244.x.y` once (the bind error says so). Programs that are
not Python (a shell's `nc`, a compiled server) see the host's loopback unchanged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path

#: The pod network, as kind's 10.244.0.0/16 but on loopback.
POD_NETWORK = ipaddress.IPv4Network("127.244.0.0/16")
#: The node's address (pods' `status.hostIP`).
HOST_IP = "127.0.0.1"
#: The directory holding the shim's `sitecustomize.py`, prepended to each pod's PYTHONPATH.
SHIM_DIR = Path(__file__).resolve().parent / "shim"


class AddressesExhausted(Exception):
    """Every pod address is taken."""


def allocate_ip(taken: Iterable[str]) -> str:
    """The lowest free pod address (skipping .0 and .255 in each /24 so none looks like a network)."""
    used = set(taken)
    for address in POD_NETWORK.hosts():
        if address.packed[3] in (0, 255):
            continue
        text = str(address)
        if text not in used:
            return text
    raise AddressesExhausted(f"all {POD_NETWORK.num_addresses} pod addresses in {POD_NETWORK} are in use")


def is_pod_ip(address: object) -> bool:
    try:
        return isinstance(address, str) and ipaddress.IPv4Address(address) in POD_NETWORK
    except ValueError:
        return False
