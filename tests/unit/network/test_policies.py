"""Route policies carried out by the proxy: retries, timeouts, faults, rewrites, mirrors, leases, telemetry.

A resolver in front of the Service resolver answers one host with a `Route` over real backends (pods
in the store, uvicorn servers on their addresses), as the Knative and Istio resolvers do.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest

from localcluster.api.cluster import Cluster
from localcluster.network import (
    NO_POLICY,
    Destination,
    DirectResponse,
    Exchange,
    Fault,
    HeaderOperations,
    Policy,
    ProxyError,
    Retries,
    Route,
    RouteRequest,
    ServiceProxy,
)

from .backends import Backend, serving, wait_until
from .conftest import create_pod

pytestmark = pytest.mark.anyio

HOST = "policy-test"


class Leases:
    """Counts what `Destination.done` is for: attempts begun and ended, as a Knative resolver would."""

    def __init__(self) -> None:
        self.begun = 0
        self.ended = 0

    def done(self) -> None:
        self.ended += 1


class OneHost:
    """Answers `HOST` with a route over `backends` in turn; every other host goes to the next resolver."""

    def __init__(self, backends: list[Backend], policy: Policy, leases: Leases) -> None:
        self.route = route_over(backends, policy, leases)

    async def resolve(self, request: RouteRequest) -> Route | None:
        return self.route if request.host == HOST else None


def route_over(backends: list[Backend], policy: Policy = NO_POLICY, leases: Leases | None = None) -> Route:
    turns = itertools.count()

    async def choose() -> Destination:
        backend = backends[next(turns) % len(backends)]
        if leases is not None:
            leases.begun += 1
        return Destination(
            backend.host,
            backend.port,
            via=f"bookstore/{HOST}",
            labels={"destination_version": backend.name},
            done=leases.done if leases is not None else None,
        )

    return Route(choose, policy, labels={"destination_service": f"{HOST}.bookstore.svc.cluster.local"})


class Harness:
    """A proxy with one policy route, its backends as pods, its telemetry and its leases."""

    def __init__(self, proxy: ServiceProxy, backends: list[Backend], leases: Leases) -> None:
        self.proxy = proxy
        self.backends = backends
        self.leases = leases
        self.exchanges: list[Exchange] = []
        proxy.observe(self.exchanges.append)

    async def get(self, path: str, **kwargs: object) -> httpx.Response:
        async with httpx.AsyncClient(proxy=self.proxy.url, trust_env=False, timeout=10) as client:
            return await client.request(kwargs.pop("method", "GET"), f"http://{HOST}{path}", **kwargs)  # type: ignore[arg-type]

    async def last_exchange(self) -> Exchange:
        await wait_until(lambda: self.exchanges, "the exchange to be reported")
        return self.exchanges[-1]


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as running:
        yield running


async def harness(
    cluster: Cluster, stack: AsyncExitStack, policy: Policy, *names: str, proxy: ServiceProxy | None = None
) -> Harness:
    backends = []
    for index, name in enumerate(names or ("v1",)):
        backend = await stack.enter_async_context(serving(Backend(name, f"127.0.4.{index + 1}")))
        create_pod(cluster, f"{HOST}-{name}", labels={"app": HOST}, ip=backend.host)
        backends.append(backend)
    leases = Leases()
    if proxy is None:
        proxy = await stack.enter_async_context(ServiceProxy.for_store(cluster.store))
    proxy.routes.add(OneHost(backends, policy, leases), first=True)
    return Harness(proxy, backends, leases)


async def test_retries_until_a_backend_answers(cluster: Cluster, stack: AsyncExitStack) -> None:
    test = await harness(cluster, stack, Policy(retries=Retries(attempts=3, retry_on=frozenset({"5xx"}))))
    test.backends[0].failures_left = 2
    answer = await test.get("/flaky", method="POST", content=b"a body sent three times")
    assert (answer.status_code, answer.content) == (200, b"a body sent three times")
    exchange = await test.last_exchange()
    assert (exchange.status, exchange.attempts, exchange.flags) == (200, 3, frozenset())
    assert (test.leases.begun, test.leases.ended) == (3, 3)


async def test_exhausted_retries_relay_the_last_answer(cluster: Cluster, stack: AsyncExitStack) -> None:
    test = await harness(cluster, stack, Policy(retries=Retries(attempts=2, retry_on=frozenset({"gateway-error"}))))
    test.backends[0].failures_left = 10
    answer = await test.get("/flaky")
    assert (answer.status_code, answer.text) == (503, "busy")
    exchange = await test.last_exchange()
    assert (exchange.attempts, "URX" in exchange.flags) == (3, True)
    assert len(test.backends[0].seen) == 3


async def test_status_not_in_retry_on_is_not_retried(cluster: Cluster, stack: AsyncExitStack) -> None:
    test = await harness(cluster, stack, Policy(retries=Retries(attempts=2, retry_on=frozenset({"connect-failure"}))))
    test.backends[0].failures_left = 1
    assert (await test.get("/flaky")).status_code == 503
    assert len(test.backends[0].seen) == 1


async def test_retriable_status_codes_need_their_condition(cluster: Cluster, stack: AsyncExitStack) -> None:
    retries = Retries(
        attempts=1, retry_on=frozenset({"retriable-status-codes"}), retriable_status_codes=frozenset({503})
    )
    test = await harness(cluster, stack, Policy(retries=retries))
    test.backends[0].failures_left = 1
    assert (await test.get("/flaky")).status_code == 200


async def test_per_try_timeout_moves_on_to_the_next_backend(cluster: Cluster, stack: AsyncExitStack) -> None:
    retries = Retries(attempts=1, per_try_timeout=0.3, retry_on=frozenset({"5xx"}))
    test = await harness(cluster, stack, Policy(retries=retries), "stuck", "quick")
    # Both backends get `seconds=5`; the route alternates, so the retry lands on the other one,
    # which is just as slow: the answer is the timeout, after two tries of 0.3 s each.
    started = time.monotonic()
    answer = await test.get("/slow?seconds=5")
    assert answer.status_code == 504
    assert time.monotonic() - started < 4
    assert [len(b.seen) for b in test.backends] == [1, 1]
    assert (await test.last_exchange()).flags >= {"UT"}


async def test_route_timeout_answers_504_as_envoy_on_mesh_routes(cluster: Cluster, stack: AsyncExitStack) -> None:
    test = await harness(cluster, stack, Policy(timeout=0.3, envoy_answers=True))
    answer = await test.get("/slow?seconds=5")
    assert (answer.status_code, answer.text) == (504, "upstream request timeout")
    assert answer.headers["content-type"] == "text/plain"
    assert (test.leases.begun, test.leases.ended) == (1, 1)


async def test_fault_abort_answers_without_calling_the_backend(cluster: Cluster, stack: AsyncExitStack) -> None:
    test = await harness(cluster, stack, Policy(fault=Fault(abort_status=418, abort_percent=100)))
    answer = await test.get("/whoami")
    assert (answer.status_code, answer.text) == (418, "fault filter abort")
    assert test.backends[0].seen == []
    exchange = await test.last_exchange()
    assert (exchange.attempts, exchange.flags) == (0, frozenset({"FI"}))


async def test_fault_delay_holds_the_request(cluster: Cluster, stack: AsyncExitStack) -> None:
    test = await harness(cluster, stack, Policy(fault=Fault(delay=0.3, delay_percent=100)))
    started = time.monotonic()
    assert (await test.get("/whoami")).status_code == 200
    assert time.monotonic() - started >= 0.3
    assert "DI" in (await test.last_exchange()).flags


async def test_fault_percentages_apply_to_that_share(cluster: Cluster, stack: AsyncExitStack) -> None:
    test = await harness(cluster, stack, Policy(fault=Fault(abort_status=500, abort_percent=50)))
    statuses = [(await test.get("/whoami")).status_code for _ in range(200)]
    aborted = statuses.count(500)
    assert 60 <= aborted <= 140, aborted  # binomial(200, 0.5): outside this range once in ~10^8 runs


async def test_direct_response_is_the_proxy_s_own(cluster: Cluster, stack: AsyncExitStack) -> None:
    moved = DirectResponse(301, headers=(("location", "http://elsewhere/"),))
    test = await harness(cluster, stack, Policy(direct=moved))
    async with httpx.AsyncClient(proxy=test.proxy.url, trust_env=False) as client:
        answer = await client.get(f"http://{HOST}/old")
    assert (answer.status_code, answer.headers["location"]) == (301, "http://elsewhere/")
    assert test.backends[0].seen == []


async def test_rewrites_and_header_operations(cluster: Cluster, stack: AsyncExitStack) -> None:
    policy = Policy(
        path="/whoami?rewritten=1",
        authority="storefront.bookstore",
        request_headers=HeaderOperations(set=(("x-user", "canary"),), add=(("x-added", "yes"),), remove=("x-drop",)),
        response_headers=HeaderOperations(set=(("x-served-by", "mesh"),)),
    )
    test = await harness(cluster, stack, policy)
    answer = await test.get("/anything", headers={"x-user": "someone", "x-drop": "gone"})
    seen = answer.json()
    headers = dict(seen["headers"])
    assert (seen["path"], seen["query"], headers["host"]) == ("/whoami", "rewritten=1", "storefront.bookstore")
    assert (headers["x-user"], headers["x-added"], "x-drop" in headers) == ("canary", "yes", False)
    assert answer.headers["x-served-by"] == "mesh"


async def test_mirror_sends_a_copy_whose_answer_is_dropped(cluster: Cluster, stack: AsyncExitStack) -> None:
    shadow = await stack.enter_async_context(serving(Backend("shadow", "127.0.4.9")))
    create_pod(cluster, "shadow", labels={"app": "shadow"}, ip=shadow.host)
    test = await harness(cluster, stack, Policy(mirror=route_over([shadow]), mirror_percent=100))
    answer = await test.get("/whoami")
    assert answer.json()["server"] == "v1"
    await wait_until(lambda: shadow.seen, "the mirrored copy to arrive")
    assert shadow.seen == [("GET", "/whoami", f"{HOST}-shadow")]


async def test_connect_failure_on_a_mesh_route_is_envoy_s_503(cluster: Cluster, stack: AsyncExitStack) -> None:
    test = await harness(cluster, stack, Policy(envoy_answers=True))
    await stack.aclose()  # the backend stops; its pod stays in the store
    async with ServiceProxy.for_store(cluster.store) as proxy:
        proxy.routes.add(OneHost(test.backends, Policy(envoy_answers=True), test.leases), first=True)
        async with httpx.AsyncClient(proxy=proxy.url, trust_env=False) as client:
            answer = await client.get(f"http://{HOST}/whoami")
    assert answer.status_code == 503
    assert answer.text.endswith("reset reason: connection failure")


async def test_exchanges_carry_route_and_destination_labels(cluster: Cluster, stack: AsyncExitStack) -> None:
    test = await harness(cluster, stack, Policy())
    await test.get("/whoami")
    exchange = await test.last_exchange()
    assert exchange.labels == {
        "destination_service": f"{HOST}.bookstore.svc.cluster.local",
        "destination_version": "v1",
    }
    assert (exchange.status, exchange.attempts, exchange.request.host) == (200, 1, HOST)
    assert exchange.response_bytes > 0 and exchange.duration > 0


async def test_each_attempt_is_a_try_of_the_exchange(cluster: Cluster, stack: AsyncExitStack) -> None:
    test = await harness(cluster, stack, Policy(retries=Retries(attempts=3, retry_on=frozenset({"5xx"}))), "a", "b")
    test.backends[0].failures_left = 1
    test.backends[1].failures_left = 1
    assert (await test.get("/flaky")).status_code == 200
    tries = (await test.last_exchange()).tries
    assert [(t.destination.labels["destination_version"], t.status) for t in tries] == [
        ("a", 503),
        ("b", 503),
        ("a", 200),
    ]


async def test_istio_default_retries_leave_503_alone(cluster: Cluster, stack: AsyncExitStack) -> None:
    test = await harness(cluster, stack, Policy(retries=Retries(attempts=2)))
    test.backends[0].failures_left = 1
    assert (await test.get("/flaky")).status_code == 503
    assert len(test.backends[0].seen) == 1


async def test_inbound_steps_guard_every_kind_of_route(cluster: Cluster, stack: AsyncExitStack) -> None:
    """A destination's own rule (a sidecar's authorization) holds for plain Service routing too."""

    def deny_post(request: RouteRequest, destination: Destination) -> None:
        if request.method == "POST":
            raise ProxyError("Forbidden", "denied", status=403, text="RBAC: access denied", flag="RBAC")

    test = await harness(cluster, stack, Policy())
    test.proxy.routes.add_inbound(deny_post)
    async with httpx.AsyncClient(proxy=test.proxy.url, trust_env=False) as client:
        refused = await client.post(f"http://{HOST}/flaky", content=b"x")
        allowed = await client.get(f"http://{HOST}/whoami")
    assert (refused.status_code, refused.text) == (403, "RBAC: access denied")
    assert allowed.status_code == 200
    assert [path for _, path, _ in test.backends[0].seen] == ["/whoami"]
    await wait_until(lambda: len(test.exchanges) == 2, "both exchanges to be reported")
    refusal = test.exchanges[0]
    assert refusal.flags == {"RBAC"} and [(t.status, t.flags) for t in refusal.tries] == [(403, {"RBAC"})]


async def test_the_mirror_gets_the_request_as_rewritten(cluster: Cluster, stack: AsyncExitStack) -> None:
    shadow = await stack.enter_async_context(serving(Backend("shadow", "127.0.4.9")))
    create_pod(cluster, "shadow", labels={"app": "shadow"}, ip=shadow.host)
    policy = Policy(path="/whoami", authority="reviews", mirror=route_over([shadow]), mirror_percent=100)
    test = await harness(cluster, stack, policy)
    assert (await test.get("/old-path")).json()["path"] == "/whoami"
    await wait_until(lambda: shadow.seen, "the mirrored copy to arrive")
    assert shadow.seen == [("GET", "/whoami", "reviews-shadow")]
