"""Settings come from the environment through one object, and bad values are named clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from bookstore.settings import Settings, SettingsError


def test_defaults_suit_a_pod() -> None:
    settings = Settings.from_env("stock", {})

    assert (settings.port, settings.bind, settings.version) == (8080, "0.0.0.0", "v1")
    assert (settings.stock_url, settings.balance_url) == ("http://stock", "http://balance")
    assert settings.ranking == "by-sales"
    assert settings.database_path.name == "stock.sqlite3"


def test_every_variable_is_read(tmp_path: Path) -> None:
    settings = Settings.from_env(
        "storefront",
        {
            "PORT": "0",
            "BIND": "127.0.0.1",
            "BOOKSTORE_DATA_DIR": str(tmp_path),
            "BOOKSTORE_VERSION": "v2",
            "BOOKSTORE_STOCK_URL": "http://stock.shop.svc.cluster.local:8080",
            "BOOKSTORE_BALANCE_URL": "http://127.0.0.1:9999",
            "BOOKSTORE_HTTP_TIMEOUT": "0.5",
            "BOOKSTORE_RANKING": "by-price",
            "BOOKSTORE_SPAN_LIMIT": "10",
            "BOOKSTORE_LOG_LEVEL": "WARNING",
        },
    )

    assert settings.port == 0 and settings.bind == "127.0.0.1"
    assert settings.database_path == tmp_path / "storefront.sqlite3"
    assert settings.version == "v2"
    assert settings.stock_url == "http://stock.shop.svc.cluster.local:8080"
    assert settings.http_timeout == 0.5
    assert (settings.ranking, settings.span_limit, settings.log_level) == ("by-price", 10, "warning")


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("PORT", "http", "PORT"),
        ("PORT", "70000", "PORT"),
        ("BOOKSTORE_VERSION", "v 2", "BOOKSTORE_VERSION"),
        ("BOOKSTORE_STOCK_URL", "stock:8080", "BOOKSTORE_STOCK_URL"),
        ("BOOKSTORE_HTTP_TIMEOUT", "-1", "BOOKSTORE_HTTP_TIMEOUT"),
        ("BOOKSTORE_HTTP_TIMEOUT", "soon", "BOOKSTORE_HTTP_TIMEOUT"),
        ("BOOKSTORE_SPAN_LIMIT", "0", "BOOKSTORE_SPAN_LIMIT"),
        ("BOOKSTORE_LOG_LEVEL", "loud", "BOOKSTORE_LOG_LEVEL"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, complaint: str) -> None:
    with pytest.raises(SettingsError, match=complaint):
        Settings.from_env("stock", {variable: value})


def test_an_unknown_service_is_refused() -> None:
    with pytest.raises(SettingsError, match="unknown service"):
        Settings.from_env("warehouse", {})
