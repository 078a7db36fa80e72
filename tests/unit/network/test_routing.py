"""Which hosts name a Service, and in which namespace, as cluster DNS's search path resolves them."""

from __future__ import annotations

import pytest

from localcluster.network import service_of_host


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("stock", ("bookstore", "stock")),
        ("Stock", ("bookstore", "stock")),
        ("stock.shop", ("shop", "stock")),
        ("stock.shop.svc", ("shop", "stock")),
        ("stock.shop.svc.cluster.local", ("shop", "stock")),
        ("stock.shop.svc.cluster.local.", ("shop", "stock")),
        ("stock.shop.pod.cluster.local", None),
        ("a.b.c", None),
        ("stock.shop.example.com", None),
        ("under_score", None),
        ("-leading", None),
    ],
)
def test_service_of_host(host: str, expected: tuple[str, str] | None) -> None:
    assert service_of_host(host, "bookstore") == expected
