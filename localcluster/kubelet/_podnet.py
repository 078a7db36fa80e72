"""Pod addresses: each pod gets a loopback address of its own, 127.N.x.y.

Every localcluster on the machine claims a pod network of its own (a 127.N.0.0/16: the one its
LAB_HOME had before, else a free one searched from a place its LAB_HOME picks) with a lock file in
the machine's temporary directory (shared by all users, as /tmp is), held for the server's life (the
kernel drops it when the process dies, even on kill -9), so clusters that run at the same time —
tests in parallel, two attendees on one machine — never hand out the same pod address.

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

import fcntl
import ipaddress
import os
import tempfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: The first pod network, as kind's 10.244.0.0/16 but on loopback; others follow it.
POD_NETWORK = ipaddress.IPv4Network("127.244.0.0/16")
#: The second octets pod networks may use, the preferred one first.
_NETWORK_OCTETS = (*range(244, 255), *range(200, 244))
_LOCK_DIR = Path(tempfile.gettempdir()) / "localcluster-pod-networks"
#: The node's address (pods' `status.hostIP`).
HOST_IP = "127.0.0.1"
#: The directory holding the shim's `sitecustomize.py`, prepended to each pod's PYTHONPATH.
SHIM_DIR = Path(__file__).resolve().parent / "shim"


class AddressesExhausted(Exception):
    """Every pod address is taken."""


class NoPodNetwork(Exception):
    """Every pod network is claimed by another running localcluster."""


@dataclass
class PodNetworkLease:
    """A pod network this process holds; `release()` (or the process ending) gives it back."""

    network: ipaddress.IPv4Network
    descriptor: int

    def release(self) -> None:
        os.close(self.descriptor)


def claim_pod_network(home: Path) -> PodNetworkLease:
    """Claim the network this LAB_HOME used last (so pods keep their addresses), else the first free one."""
    remembered = home / "pod-network"
    try:
        preferred = [ipaddress.IPv4Network(remembered.read_text().strip())]
    except (OSError, ValueError):
        preferred = []
    # A new LAB_HOME starts its search at a place of its own (not always at the first network), so it
    # rarely takes the network another LAB_HOME had and is about to claim again after a restart.
    start = zlib.crc32(str(home.resolve()).encode()) % len(_NETWORK_OCTETS)
    octets = _NETWORK_OCTETS[start:] + _NETWORK_OCTETS[:start]
    candidates = preferred + [ipaddress.IPv4Network(f"127.{octet}.0.0/16") for octet in octets]
    _lock_dir()
    for network in candidates:
        # Read-only: flock needs no more, and a lock file another user made (0644 after their umask) opens so too.
        descriptor = os.open(_LOCK_DIR / f"{network.network_address}.lock", os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            continue
        remembered.write_text(f"{network}\n")
        return PodNetworkLease(network, descriptor)
    raise NoPodNetwork(f"all {len(candidates)} pod networks are in use by other running localclusters")


def _lock_dir() -> None:
    """The machine's lock directory, shared by every user's localcluster (sticky and world-writable, as /tmp)."""
    _LOCK_DIR.mkdir(mode=0o1777, exist_ok=True)
    if _LOCK_DIR.stat().st_uid == os.geteuid():
        _LOCK_DIR.chmod(0o1777)  # mkdir's mode went through the umask


def allocate_ip(taken: Iterable[str], network: ipaddress.IPv4Network = POD_NETWORK) -> str:
    """The lowest free pod address (skipping .0 and .255 in each /24 so none looks like a network)."""
    used = set(taken)
    for address in network.hosts():
        if address.packed[3] in (0, 255):
            continue
        text = str(address)
        if text not in used:
            return text
    raise AddressesExhausted(f"all {network.num_addresses} pod addresses in {network} are in use")


def is_pod_ip(address: object, network: ipaddress.IPv4Network = POD_NETWORK) -> bool:
    try:
        return isinstance(address, str) and ipaddress.IPv4Address(address) in network
    except ValueError:
        return False
