"""Crash back-off timings (upstream's 10 s doubling to 300 s) and pod address allocation."""

from __future__ import annotations

import ipaddress

import pytest

from localcluster.kubelet._backoff import CrashBackOff
from localcluster.kubelet._podnet import (
    POD_NETWORK,
    AddressesExhausted,
    allocate_ip,
    claim_pod_network,
    is_pod_ip,
)


def test_first_death_restarts_at_once_then_10_s_doubling_to_300_s() -> None:
    backoff = CrashBackOff()
    delays, clock = [], 1000.0
    for _ in range(9):
        delay = backoff.delay_after(clock)
        delays.append(delay)
        clock += delay + 1  # each instance runs a second
    assert delays == [0, 10, 20, 40, 80, 160, 300, 300, 300]


def test_back_off_is_forgotten_after_ten_calm_minutes() -> None:
    backoff = CrashBackOff()
    assert backoff.delay_after(0) == 0
    assert backoff.delay_after(1) == 10
    assert backoff.delay_after(12) == 20
    # The restart after that happened at 32; a death 600 s later is still within the window.
    assert backoff.delay_after(32 + 600) == 40
    assert backoff.delay_after(32 + 600 + 40 + 601) == 0
    assert backoff.delay_after(32 + 600 + 40 + 602) == 10


def test_addresses_are_unique_in_the_pod_network_and_never_the_host() -> None:
    first = allocate_ip([])
    second = allocate_ip([first])
    assert first != second
    assert is_pod_ip(first) and is_pod_ip(second)
    assert "127.0.0.1" not in (first, second)
    assert allocate_ip([first, second, "127.244.0.3"]) == "127.244.0.4"


def test_addresses_skip_network_and_broadcast_looking_ones() -> None:
    taken = [f"127.244.0.{n}" for n in range(1, 255)]
    assert allocate_ip(taken) == "127.244.1.1"


def test_an_exhausted_pod_network_says_so() -> None:
    everything = [str(address) for address in POD_NETWORK.hosts()]
    with pytest.raises(AddressesExhausted, match=r"127\.244\.0\.0/16"):
        allocate_ip(everything)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.244.0.5", "not-an-ip", None])
def test_other_addresses_are_not_pod_addresses(address: object) -> None:
    assert not is_pod_ip(address)


def test_concurrent_clusters_claim_different_pod_networks_and_a_restart_keeps_its_own(tmp_path) -> None:
    first_home, second_home = tmp_path / "one", tmp_path / "two"
    first_home.mkdir()
    second_home.mkdir()
    first = claim_pod_network(first_home)
    second = claim_pod_network(second_home)
    try:
        assert first.network != second.network
        assert not first.network.overlaps(ipaddress.IPv4Network("127.0.0.0/24"))
    finally:
        second.release()
    again = claim_pod_network(second_home)
    try:
        assert again.network == second.network, "a restart claims the network it had"
        assert ipaddress.IPv4Address(allocate_ip([], again.network)) in again.network
    finally:
        again.release()
        first.release()
