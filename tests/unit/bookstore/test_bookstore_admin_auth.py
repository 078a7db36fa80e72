"""The admin API obeys only the holder of the admin token: 401 without it, 403 with another, and nothing runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from bookstore.monolith import create_app as create_monolith
from tests.unit.bookstore.conftest import ADMIN, settings_for

pytestmark = pytest.mark.anyio
ServeApp = Callable[[FastAPI], Awaitable[httpx.AsyncClient]]


def module_that_writes(marker: Path) -> str:
    """A ranking module that leaves a file behind when it is loaded: proof that code ran."""
    return f"import pathlib\n\npathlib.Path({str(marker)!r}).write_text('ran')\n\ndef rank(books):\n    return books\n"


def admin_calls(marker: Path) -> list[tuple[str, str, dict[str, object] | None]]:
    install = {"name": "intruder", "version": "1", "source": module_that_writes(marker), "activate": True}
    return [
        ("GET", "/admin/modules", None),
        ("POST", "/admin/modules", install),
        ("POST", "/admin/modules/by-sales/1.0.0/activate", None),
        ("DELETE", "/admin/modules/by-sales/1.0.0", None),
    ]


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Basic YWRtaW46YWRtaW4="}, 401, "unauthorized"),
        ({"Authorization": "Bearer "}, 401, "unauthorized"),
        ({"Authorization": "Bearer not-the-token"}, 403, "forbidden"),
        ({"Authorization": f"{ADMIN['Authorization']}x"}, 403, "forbidden"),
    ],
)
async def test_admin_calls_without_the_token_are_refused_and_run_nothing(
    public: httpx.AsyncClient, tmp_path: Path, headers: dict[str, str], status: int, error: str
) -> None:
    marker = tmp_path / "module-ran"
    for method, path, body in admin_calls(marker):
        answer = await public.request(method, path, json=body, headers=headers)

        assert (answer.status_code, answer.json()["error"]) == (status, error), (method, path)
        assert answer.headers["x-bookstore-service"] in {"monolith", "storefront"}
        if status == 401:
            assert answer.headers["www-authenticate"].startswith("Bearer")
    assert not marker.exists()
    listed = (await public.get("/admin/modules", headers=ADMIN)).json()
    assert (listed["active"], [module["reference"] for module in listed["modules"]]) == (
        "by-sales@1.0.0",
        ["by-sales@1.0.0"],
    )


async def test_the_token_holder_can_run_code_in_the_service(public: httpx.AsyncClient, tmp_path: Path) -> None:
    """What holding the token means: a module is code, and it runs in the service's process."""
    marker = tmp_path / "module-ran"
    install = {"name": "intruder", "version": "1", "source": module_that_writes(marker)}

    answer = await public.post("/admin/modules", json=install, headers=ADMIN)

    assert answer.status_code == 201
    assert marker.read_text() == "ran"


async def test_a_service_without_a_token_file_refuses_every_admin_call(serve_app: ServeApp, tmp_path: Path) -> None:
    settings = replace(settings_for("monolith", tmp_path), admin_token_file=None)
    client = await serve_app(create_monolith(settings))

    answer = await client.get("/admin/modules", headers=ADMIN)

    assert (answer.status_code, answer.json()["error"]) == (403, "forbidden")
    assert "no admin token" in answer.json()["message"]


async def test_a_rotated_token_takes_effect_without_a_restart(serve_app: ServeApp, tmp_path: Path) -> None:
    settings = settings_for("monolith", tmp_path)
    client = await serve_app(create_monolith(settings))
    assert settings.admin_token_file is not None
    settings.admin_token_file.write_text("rotated-token")

    old = await client.get("/admin/modules", headers=ADMIN)
    new = await client.get("/admin/modules", headers={"Authorization": "Bearer rotated-token"})

    assert (old.status_code, new.status_code) == (403, 200)


async def test_public_routes_need_no_token(public: httpx.AsyncClient) -> None:
    assert (await public.get("/api/books")).status_code == 200
    assert (await public.get("/health")).status_code == 200
