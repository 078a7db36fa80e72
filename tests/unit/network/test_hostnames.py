"""Pod hostnames under a headless Service, as cluster DNS names them."""

from __future__ import annotations

import pytest

from localcluster.network.hostnames import pod_hostname_of_host


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("web-0.nginx", ("shop", "nginx", "web-0")),
        ("web-0.nginx.other", ("other", "nginx", "web-0")),
        ("web-0.nginx.other.svc", ("other", "nginx", "web-0")),
        ("Web-0.Nginx.other.svc.cluster.local.", ("other", "nginx", "web-0")),
        ("nginx", None),  # a Service's short name
        ("nginx.other.svc", None),  # a Service in another namespace
        ("nginx.other.svc.cluster.local", None),
        ("web-0.nginx.other.cluster.local", None),  # not under svc
        ("a.b.c.d.e", None),
        ("web_0.nginx", None),
    ],
)
def test_names_that_may_be_pod_hostnames(host: str, expected: tuple[str, str, str] | None) -> None:
    assert pod_hostname_of_host(host, "shop") == expected
