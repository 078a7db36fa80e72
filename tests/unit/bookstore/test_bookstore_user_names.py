"""User names are normalised (NFKC) before they are stored or compared: look-alike spellings are one account."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from bookstore import accounts, inventory
from bookstore.db import Database
from bookstore.errors import UserExists
from bookstore.models import NewUser, normalize_user_name

COMPOSED = "Jos\u00e9"  # é as one code point
DECOMPOSED = "Jose\u0301"  # e + COMBINING ACUTE ACCENT
FULL_WIDTH = "\uff41\uff44\uff41"  # ａｄａ
NOW = "2026-01-01T00:00:00.000+00:00"


def test_look_alikes_normalise_to_one_spelling() -> None:
    assert COMPOSED != DECOMPOSED
    assert normalize_user_name(DECOMPOSED) == normalize_user_name(COMPOSED) == COMPOSED
    assert normalize_user_name(FULL_WIDTH) == "ada"
    assert NewUser(name=DECOMPOSED).name == COMPOSED


def test_a_name_that_normalises_out_of_the_rules_is_refused() -> None:
    with pytest.raises(ValueError):
        NewUser(name="\uff01ada")  # a full-width '!' becomes '!', which no name may start with
    with pytest.raises(ValueError):
        NewUser(name="\ufdfa" * 4)  # one character that NFKC spells as 18, four times: past 64


def test_accounts_store_and_find_the_normalised_name(tmp_path: Path) -> None:
    database = Database(tmp_path / "shop.sqlite3", [inventory.create_schema, accounts.create_schema])
    database.open()
    try:
        with database.transaction() as connection:
            created = accounts.create_user(connection, DECOMPOSED, NOW)
            with pytest.raises(UserExists):
                accounts.create_user(connection, COMPOSED, NOW)
            found = accounts.get_account(connection, COMPOSED)
    finally:
        database.close()

    assert created.name == found.name == COMPOSED


@pytest.mark.anyio
async def test_look_alike_names_are_one_account_through_the_api(public: httpx.AsyncClient) -> None:
    created = await public.post("/api/users", json={"name": COMPOSED})
    again = await public.post("/api/users", json={"name": DECOMPOSED})
    wide = await public.post("/api/users", json={"name": FULL_WIDTH})
    narrow = await public.post("/api/users", json={"name": "ada"})
    bought = await public.post("/api/purchase", json={"user": DECOMPOSED, "book": "00002", "count": 1})
    fetched = await public.get(f"/api/users/{quote(DECOMPOSED)}")

    assert created.status_code == 201 and created.json()["name"] == COMPOSED
    assert (again.status_code, again.json()["error"]) == (409, "user_exists")
    assert wide.status_code == 201 and wide.json()["name"] == "ada"
    assert (narrow.status_code, narrow.json()["error"]) == (409, "user_exists")
    assert bought.status_code == 201 and bought.json()["user"] == COMPOSED
    assert fetched.status_code == 200
    assert fetched.json()["name"] == COMPOSED
    assert fetched.json()["books"] == [{"id": "00002", "title": "Cloud Native Go", "count": 1}]
