"""One settings object per process, read from environment variables with defaults.

==============================  =========================  ==========================================
variable                        default                    meaning
==============================  =========================  ==========================================
``PORT``                        ``8080``                   TCP port to listen on (0: any free one)
``BIND``                        ``0.0.0.0``                address to listen on
``BOOKSTORE_DATA_DIR``          the user's data directory  where the SQLite database file lives
``BOOKSTORE_VERSION``           ``v1``                     sent as ``x-bookstore-version``
``BOOKSTORE_STOCK_URL``         ``http://stock``           base URL of the stock service
``BOOKSTORE_BALANCE_URL``       ``http://balance``         base URL of the balance service
``BOOKSTORE_HTTP_TIMEOUT``      ``5``                      seconds a call to another service may take
``BOOKSTORE_TC_URL``            (none)                     the coordinator: purchases become global
                                                           transactions (TCC) when it is set (lab 03)
``BOOKSTORE_TXN_TIMEOUT``       ``60``                     seconds a global transaction may stay
                                                           undecided before it rolls back
``BOOKSTORE_LAB_MODE``          ``false``                  honour ``x-bookstore-fault`` headers
``BOOKSTORE_RANKING``           ``by-sales``               bundled module active at a first start
``BOOKSTORE_SPAN_LIMIT``        ``2048``                   trace spans kept in memory
``BOOKSTORE_LOG_LEVEL``         ``info``                   uvicorn log level; ``debug`` (or
                                                           ``trace``) also logs every request
``BOOKSTORE_ADMIN_TOKEN_FILE``  none (admin API closed)    file holding the admin API's bearer token
==============================  =========================  ==========================================
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

__all__ = ["LOG_LEVELS", "SERVICE_NAMES", "Settings", "SettingsError"]

SERVICE_NAMES = frozenset({"monolith", "storefront", "stock", "balance", "tc"})
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
# Header values must be visible ASCII; keep versions short enough to read in a table.
_VERSION_PATTERN = re.compile(r"^[\x21-\x7e]{1,64}$")
_URL_PATTERN = re.compile(r"^https?://[^\s/]+(/\S*)?$")

_T = TypeVar("_T")


class SettingsError(ValueError):
    """An environment variable holds a value the bookstore cannot use."""


def _default_data_dir() -> Path:
    import platformdirs  # only needed when BOOKSTORE_DATA_DIR is unset

    return platformdirs.user_data_path("cloud-native-bookstore")


def _boolean(raw: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off), as Kubernetes manifests write flags."""
    value = raw.lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError("expected true or false")


@dataclass(frozen=True)
class Settings:
    """Everything a bookstore process is configured with."""

    service: str
    port: int = 8080
    bind: str = "0.0.0.0"
    data_dir: Path | None = None
    version: str = "v1"
    stock_url: str = "http://stock"
    balance_url: str = "http://balance"
    http_timeout: float = 5.0
    tc_url: str | None = None
    txn_timeout: float = 60.0
    lab_mode: bool = False
    ranking: str = "by-sales"
    span_limit: int = 2048
    log_level: str = "info"
    #: Read at every admin call (a mounted Secret may be rotated); without it the admin API refuses everything.
    admin_token_file: Path | None = None

    def __post_init__(self) -> None:
        if self.service not in SERVICE_NAMES:
            raise SettingsError(f"unknown service {self.service!r}; expected one of {sorted(SERVICE_NAMES)}")
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"PORT must be between 0 and 65535, not {self.port}")
        if not _VERSION_PATTERN.match(self.version):
            raise SettingsError("BOOKSTORE_VERSION must be 1-64 visible ASCII characters")
        for variable, url in (
            ("BOOKSTORE_STOCK_URL", self.stock_url),
            ("BOOKSTORE_BALANCE_URL", self.balance_url),
            ("BOOKSTORE_TC_URL", self.tc_url),
        ):
            if url is not None and not _URL_PATTERN.match(url):
                raise SettingsError(f"{variable} must be an http:// or https:// URL, not {url!r}")
        if not self.http_timeout > 0:
            raise SettingsError(f"BOOKSTORE_HTTP_TIMEOUT must be a positive number of seconds, not {self.http_timeout}")
        if not 0 < self.txn_timeout <= 3600:
            raise SettingsError(
                f"BOOKSTORE_TXN_TIMEOUT must be more than 0 and at most 3600 seconds, not {self.txn_timeout}"
            )
        if self.span_limit < 1:
            raise SettingsError(f"BOOKSTORE_SPAN_LIMIT must be at least 1, not {self.span_limit}")
        if self.log_level not in LOG_LEVELS:
            raise SettingsError(f"BOOKSTORE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")

    @classmethod
    def from_env(cls, service: str, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings of ``service`` from ``environ`` (default: the process environment)."""
        env = os.environ if environ is None else environ

        def read(variable: str, convert: Callable[[str], _T], default: _T) -> _T:
            raw = env.get(variable, "").strip()
            if not raw:
                return default
            try:
                return convert(raw)
            except ValueError as exc:
                raise SettingsError(f"{variable}={raw!r} is not valid: {exc}") from exc

        data_dir = read("BOOKSTORE_DATA_DIR", Path, None)
        return cls(
            service=service,
            port=read("PORT", int, cls.port),
            bind=read("BIND", str, cls.bind),
            data_dir=data_dir,
            version=read("BOOKSTORE_VERSION", str, cls.version),
            stock_url=read("BOOKSTORE_STOCK_URL", str, cls.stock_url),
            balance_url=read("BOOKSTORE_BALANCE_URL", str, cls.balance_url),
            http_timeout=read("BOOKSTORE_HTTP_TIMEOUT", float, cls.http_timeout),
            tc_url=read("BOOKSTORE_TC_URL", str, None),
            txn_timeout=read("BOOKSTORE_TXN_TIMEOUT", float, cls.txn_timeout),
            lab_mode=read("BOOKSTORE_LAB_MODE", _boolean, cls.lab_mode),
            ranking=read("BOOKSTORE_RANKING", str, cls.ranking),
            span_limit=read("BOOKSTORE_SPAN_LIMIT", int, cls.span_limit),
            log_level=read("BOOKSTORE_LOG_LEVEL", str.lower, cls.log_level),
            admin_token_file=read("BOOKSTORE_ADMIN_TOKEN_FILE", Path, None),
        )

    @property
    def database_path(self) -> Path:
        """This service's SQLite file: one database per deployable, named after it."""
        return (self.data_dir or _default_data_dir()) / f"{self.service}.sqlite3"

    @property
    def modules_path(self) -> Path:
        """Which ranking modules this service has installed and which is active, beside its data."""
        return (self.data_dir or _default_data_dir()) / f"{self.service}-modules.json"
