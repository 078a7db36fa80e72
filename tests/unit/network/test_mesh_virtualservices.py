"""VirtualService compilation: Envoy's match semantics, rule order, weights, as pilot configures them."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from localcluster.network.mesh.destinationrules import (
    Balancer,
    UnsupportedTrafficPolicy,
    compile_destination_rule,
)
from localcluster.network.mesh.hosts import host_matches, most_specific, qualify
from localcluster.network.mesh.matching import InvalidMatch, string_match, wildcard_match
from localcluster.network.mesh.virtualservices import (
    RequestFacts,
    Workload,
    compile_virtual_service,
)

SIDECAR = Workload("shop", {"app": "front", "version": "v1"})


def virtual_service(spec: dict[str, Any], namespace: str = "shop", name: str = "vs") -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name}, "spec": spec}


def facts(path: str = "/", method: str = "GET", headers: dict[str, str] | None = None, port: int = 80) -> RequestFacts:
    return RequestFacts.of(method, path, "reviews", port, (headers or {}).items())


def routed(spec: dict[str, Any], request: RequestFacts, workload: Workload = SIDECAR) -> str | None:
    """The name of the rule that routes the request (None: 404 route not found)."""
    found = compile_virtual_service(virtual_service(spec)).route(request, workload)
    return None if found is None else found[0].name


def test_short_hosts_resolve_in_the_objects_namespace() -> None:
    assert qualify("reviews", "shop") == "reviews.shop.svc.cluster.local"
    assert qualify("Reviews.Other.svc.cluster.local", "shop") == "reviews.other.svc.cluster.local"
    assert qualify("*.example.com", "shop") == "*.example.com"
    compiled = compile_virtual_service(
        virtual_service({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "ratings"}}]}]})
    )
    assert compiled.hosts == ("reviews.shop.svc.cluster.local",)
    assert compiled.http[0].destinations[0].host == "ratings.shop.svc.cluster.local"


def test_wildcard_hosts_match_by_suffix_and_the_exact_name_wins() -> None:
    assert host_matches("*", "anything")
    assert host_matches("*.example.com", "shop.example.com")
    assert not host_matches("*.example.com", "example.com")
    assert most_specific(["*", "*.example.com", "shop.example.com"], "shop.example.com") == "shop.example.com"
    assert most_specific(["*", "*.example.com"], "a.example.com") == "*.example.com"


def test_rules_apply_in_order_and_the_first_match_wins() -> None:
    spec = {
        "hosts": ["reviews"],
        "http": [
            {"name": "api", "match": [{"uri": {"prefix": "/api"}}], "route": [{"destination": {"host": "a"}}]},
            {"name": "books", "match": [{"uri": {"prefix": "/api/books"}}], "route": [{"destination": {"host": "b"}}]},
            {"name": "rest", "route": [{"destination": {"host": "c"}}]},
            {"name": "never", "route": [{"destination": {"host": "d"}}]},
        ],
    }
    assert routed(spec, facts("/api/books/1")) == "api"  # the more specific rule comes too late
    assert routed(spec, facts("/health")) == "rest"
    assert [rule.name for rule in compile_virtual_service(virtual_service(spec)).http] == ["api", "books", "rest"]


def test_no_matching_rule_means_no_route() -> None:
    spec = {"hosts": ["r"], "http": [{"match": [{"uri": {"exact": "/a"}}], "route": [{"destination": {"host": "a"}}]}]}
    assert routed(spec, facts("/b")) is None


@pytest.mark.parametrize(
    ("uri", "path", "expected"),
    [
        ({"exact": "/api"}, "/api", True),
        ({"exact": "/api"}, "/api?x=1", True),  # the query is not part of an exact path
        ({"exact": "/api"}, "/api/", False),
        ({"prefix": "/api"}, "/apix", True),  # Envoy prefixes are plain string prefixes
        ({"regex": "/api/books/[0-9]+"}, "/api/books/12", True),
        ({"regex": "/api/books/[0-9]+"}, "/api/books/12/x", False),  # RE2 full match
        ({"regex": "/api"}, "/api/books", False),
        ({"regex": "/api/.*"}, "/api/books?q=1", True),
    ],
)
def test_uri_match(uri: dict[str, str], path: str, expected: bool) -> None:
    spec = {
        "hosts": ["r"],
        "http": [{"name": "hit", "match": [{"uri": uri}], "route": [{"destination": {"host": "a"}}]}],
    }
    assert (routed(spec, facts(path)) == "hit") is expected


def test_ignore_uri_case_applies_to_exact_and_prefix() -> None:
    spec = {
        "hosts": ["r"],
        "http": [
            {
                "name": "hit",
                "match": [{"uri": {"prefix": "/API"}, "ignoreUriCase": True}],
                "route": [{"destination": {"host": "a"}}],
            }
        ],
    }
    assert routed(spec, facts("/api/books")) == "hit"


def test_headers_method_query_and_without_headers() -> None:
    spec = {
        "hosts": ["r"],
        "http": [
            {
                "name": "tester",
                "match": [
                    {
                        "headers": {"end-user": {"exact": "jason"}, "x-trace": {}},
                        "method": {"exact": "GET"},
                        "queryParams": {"v": {"regex": "[0-9]+"}},
                        "withoutHeaders": {"x-skip": {"exact": "yes"}},
                    }
                ],
                "route": [{"destination": {"host": "v2"}}],
            },
            {"name": "default", "route": [{"destination": {"host": "v1"}}]},
        ],
    }
    good = {"End-User": "jason", "x-trace": ""}
    assert routed(spec, facts("/p?v=12", headers=good)) == "tester"
    assert routed(spec, facts("/p?v=12", headers={**good, "x-skip": "no"})) == "tester"
    assert routed(spec, facts("/p?v=12", headers={**good, "x-skip": "yes"})) == "default"
    assert routed(spec, facts("/p?v=12", "POST", headers=good)) == "default"
    assert routed(spec, facts("/p?v=1x", headers=good)) == "default"
    assert routed(spec, facts("/p", headers=good)) == "default"
    assert routed(spec, facts("/p?v=12", headers={"end-user": "jason"})) == "default"  # x-trace must be present


def test_without_headers_presence_matches_only_absent_headers() -> None:
    spec = {
        "hosts": ["r"],
        "http": [
            {"name": "anon", "match": [{"withoutHeaders": {"cookie": {}}}], "route": [{"destination": {"host": "a"}}]},
            {"name": "other", "route": [{"destination": {"host": "b"}}]},
        ],
    }
    assert routed(spec, facts("/")) == "anon"
    assert routed(spec, facts("/", headers={"cookie": ""})) == "other"


def test_regex_star_is_a_presence_match_and_bad_regexes_are_refused() -> None:
    assert string_match({"regex": "*"}).kind == "present"
    with pytest.raises(InvalidMatch, match="RE2"):
        string_match({"regex": r"(a)\1"})


def test_source_labels_and_gateways_choose_the_workloads_a_rule_exists_for() -> None:
    spec = {
        "hosts": ["r"],
        "gateways": ["mesh", "edge"],
        "http": [
            {
                "name": "from-v2",
                "match": [{"sourceLabels": {"version": "v2"}}],
                "route": [{"destination": {"host": "a"}}],
            },
            {"name": "at-edge", "match": [{"gateways": ["edge"]}], "route": [{"destination": {"host": "b"}}]},
            {"name": "rest", "route": [{"destination": {"host": "c"}}]},
        ],
    }
    compiled = compile_virtual_service(virtual_service(spec))
    assert compiled.gateways == {"mesh", "shop/edge"}
    assert routed(spec, facts(), Workload("shop", {"version": "v2"})) == "from-v2"
    assert routed(spec, facts(), SIDECAR) == "rest"
    gateway = Workload("istio-system", {"istio": "ingressgateway"}, frozenset({"shop/edge"}))
    assert routed(spec, facts(), gateway) == "at-edge"


def test_export_to_limits_where_a_virtual_service_is_seen() -> None:
    everywhere = compile_virtual_service(virtual_service({"hosts": ["r"]}))
    local = compile_virtual_service(virtual_service({"hosts": ["r"], "exportTo": ["."]}))
    assert everywhere.visible_from("other")
    assert local.visible_from("shop") and not local.visible_from("other")


def test_weights_are_relative_and_zero_weights_are_dropped() -> None:
    spec = {
        "hosts": ["r"],
        "http": [
            {
                "route": [
                    {"destination": {"host": "r", "subset": "v1"}, "weight": 9},
                    {"destination": {"host": "r", "subset": "v2"}, "weight": 1},
                    {"destination": {"host": "r", "subset": "v3"}, "weight": 0},
                ]
            }
        ],
    }
    rule = compile_virtual_service(virtual_service(spec)).http[0]
    rng = random.Random(7)
    counts = Counter(rule.pick(rng).subset for _ in range(10_000))  # type: ignore[union-attr]
    assert set(counts) == {"v1", "v2"}
    assert 850 <= counts["v2"] <= 1150  # 10 % ± 3 σ (σ = 30)


def test_a_single_destination_takes_everything_whatever_its_weight() -> None:
    spec = {"hosts": ["r"], "http": [{"route": [{"destination": {"host": "r", "port": {"number": 9080}}}]}]}
    rule = compile_virtual_service(virtual_service(spec)).http[0]
    picked = rule.pick()
    assert picked is not None and picked.port == 9080


def test_authorization_style_wildcards() -> None:
    assert wildcard_match("*")("anything") and not wildcard_match("*")("")
    assert wildcard_match("/api/*")("/api/orders") and not wildcard_match("/api/*")("/health")
    assert wildcard_match("*/refund")("/api/payments/1/refund")
    assert wildcard_match("GET")("GET") and not wildcard_match("GET")("get")
    assert wildcard_match("Shop.Example.com", ignore_case=True)("shop.example.COM")


def test_destination_rule_subsets_and_load_balancers() -> None:
    rule = compile_destination_rule(
        {
            "metadata": {"namespace": "shop", "name": "reviews"},
            "spec": {
                "host": "reviews",
                "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}},
                "subsets": [
                    {"name": "v1", "labels": {"version": "v1"}},
                    {
                        "name": "v2",
                        "labels": {"version": "v2"},
                        "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}},
                    },
                ],
            },
        }
    )
    assert rule.host == "reviews.shop.svc.cluster.local"
    assert rule.subsets["v1"].load_balancer == "RANDOM"
    assert rule.subsets["v2"].load_balancer == "ROUND_ROBIN"
    assert rule.subsets["v2"].selects({"app": "reviews", "version": "v2"})
    assert not rule.subsets["v2"].selects({"app": "reviews", "version": "v1"})
    default = compile_destination_rule({"metadata": {"namespace": "shop", "name": "r"}, "spec": {"host": "r"}})
    assert default.load_balancer == "LEAST_REQUEST"
    with pytest.raises(UnsupportedTrafficPolicy, match="consistentHash"):
        compile_destination_rule(
            {
                "metadata": {"namespace": "shop", "name": "r"},
                "spec": {"host": "r", "trafficPolicy": {"loadBalancer": {"consistentHash": {"useSourceIp": True}}}},
            }
        )


def test_round_robin_takes_turns_and_least_request_avoids_the_busy_host() -> None:
    hosts = [("127.0.0.2", 80), ("127.0.0.3", 80), ("127.0.0.4", 80)]
    round_robin = Balancer("ROUND_ROBIN")
    assert [round_robin.choose(hosts) for _ in range(6)] == hosts * 2
    least = Balancer("LEAST_REQUEST")
    for _ in range(5):
        least.started(hosts[0])
    rng = random.Random(1)
    chosen = Counter(least.choose(hosts, rng) for _ in range(300))
    assert chosen[hosts[0]] == 0  # two draws always include a host with fewer requests in flight
    least.finished(hosts[0])
    assert least.active(hosts[0]) == 4
