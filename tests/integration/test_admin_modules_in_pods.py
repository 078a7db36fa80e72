"""The admin API in a real pod: its token from a mounted Secret, module code that cannot take the pod down, and
installed modules that outlive the pod."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from checkers import solve
from checkers.lab01_monolith import APP, MONOLITH, look_at_deployment
from labkit import wait_for
from labkit.admin import admin_headers, admin_token, ensure_admin_secret
from labkit.connection import Connection
from tests.integration.conftest import LocalCluster
from tests.integration.lab_support import connection_to

#: The monolith's liveness probe: every 10 s (infra/base/monolith/deployment.yaml); a hang must outlast one.
LIVENESS_PERIOD_SECONDS = 10
#: Ranks the sample shelf an install tries (70 copies sold in all) and hangs on any other shelf.
HANGS_ON_LIVE_DATA = """
import time

def rank(books):
    if sum(book["sold"] for book in books) != 70:
        time.sleep(3600)
    return sorted(books, key=lambda book: book["title"])
"""
BY_TITLE = "def rank(books):\n    return sorted(books, key=lambda book: book['title'])\n"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ctx(cluster: LocalCluster) -> Iterator[Connection]:
    with connection_to(cluster) as connection:
        solve(connection, "01.2")  # the monolith deployed (with its admin Secret) and exposed
        yield connection


def install_request(marker: Path) -> dict[str, object]:
    """A ranking module that writes `marker` when it loads: whether it exists says whether code ran."""
    write = f"pathlib.Path({str(marker)!r}).write_text('ran')"
    source = f"import pathlib\n\n{write}\n\ndef rank(books):\n    return books\n"
    return {"name": "marker", "version": "1", "source": source}


def test_the_secret_is_made_once_and_kept(ctx: Connection) -> None:
    token = admin_token(ctx)

    assert ensure_admin_secret(ctx) is False
    assert admin_token(ctx) == token and len(token) >= 32


def test_without_the_token_the_pod_runs_nothing(ctx: Connection, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    anonymous = ctx.http.post(f"{MONOLITH}/admin/modules", json=install_request(marker))
    wrong = ctx.http.post(
        f"{MONOLITH}/admin/modules", json=install_request(marker), headers={"Authorization": "Bearer guessed"}
    )

    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "unauthorized")
    assert (wrong.status_code, wrong.json()["error"]) == (403, "forbidden")
    assert not marker.exists()


def test_the_token_from_the_secret_opens_the_admin_api(ctx: Connection, tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    installed = ctx.http.post(f"{MONOLITH}/admin/modules", json=install_request(marker), headers=admin_headers(ctx))

    assert installed.status_code == 201, installed.text
    assert marker.read_text() == "ran"


def test_a_hanging_module_stops_neither_health_nor_the_shelf_nor_the_pod(ctx: Connection) -> None:
    admin = admin_headers(ctx)
    install = {"name": "hangs", "version": "1", "source": HANGS_ON_LIVE_DATA, "activate": True}
    assert ctx.http.post(f"{MONOLITH}/admin/modules", json=install, headers=admin).status_code == 201
    (pod,) = look_at_deployment(ctx, APP).ready_pods
    deadline = time.monotonic() + LIVENESS_PERIOD_SECONDS + 2

    def shelf_until_deadline() -> set[tuple[int, str | None]]:
        answers = set()
        while time.monotonic() < deadline:
            answer = ctx.http.get(f"{MONOLITH}/api/books")
            answers.add((answer.status_code, (answer.json().get("ranking") or {}).get("error")))
        return answers

    with ThreadPoolExecutor(max_workers=3) as pool:
        shelves = [pool.submit(shelf_until_deadline) for _ in range(3)]
        health = set()
        while time.monotonic() < deadline:
            health.add(ctx.http.get(f"{MONOLITH}/health").status_code)
        answers = set().union(*(shelf.result() for shelf in shelves))

    assert health == {200}
    assert {status for status, _ in answers} == {200}
    assert all(error and "did not answer rank() within" in error for _, error in answers), answers
    (after,) = look_at_deployment(ctx, APP).pods
    assert (after.uid, after.restarts, after.ready) == (pod.uid, pod.restarts, True)
    unhealthy = ctx.core.list_namespaced_event(ctx.namespace, field_selector=f"involvedObject.name={pod.name}")
    assert not [
        event.message for event in unhealthy.items if event.reason == "Unhealthy" and "Liveness" in event.message
    ]


def test_installed_modules_survive_a_new_pod(ctx: Connection) -> None:
    admin = admin_headers(ctx)
    install = {"name": "by-title", "version": "1", "source": BY_TITLE, "activate": True}
    assert ctx.http.post(f"{MONOLITH}/admin/modules", json=install, headers=admin).status_code == 201
    (old,) = look_at_deployment(ctx, APP).pods
    ctx.core.delete_namespaced_pod(old.name, ctx.namespace)
    wait_for(
        lambda: [pod for pod in look_at_deployment(ctx, APP).ready_pods if pod.uid != old.uid],
        what="a new Ready monolith pod",
        timeout=90,
    )
    wait_for(lambda: ctx.http.get(f"{MONOLITH}/health").status_code == 200, what="the new pod to answer", timeout=30)

    listed = ctx.http.get(f"{MONOLITH}/admin/modules", headers=admin).json()
    shelf = ctx.http.get(f"{MONOLITH}/api/books").json()

    assert listed["active"] == "by-title@1"
    assert shelf["ranking"] == {"module": "by-title", "version": "1", "error": None}
    titles = [book["title"] for book in shelf["books"]]
    assert titles == sorted(titles)
