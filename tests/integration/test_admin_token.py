"""The admin token on a real localcluster: a Secret mounted into the monolith's pod, read by the notebook's labkit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from checkers import solve
from checkers.lab01_monolith import MONOLITH
from labkit.admin import admin_headers, admin_token, ensure_admin_secret
from labkit.connection import Connection
from tests.integration.conftest import LocalCluster
from tests.integration.lab_support import connection_to

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
