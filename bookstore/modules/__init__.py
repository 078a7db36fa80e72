"""Ranking strategies loaded into a running storefront or monolith as dynamic modules.

See ``README.md`` in this directory for how a module is written, :mod:`bookstore.modules.admin` for
the admin API that installs and activates them, and :mod:`bookstore.modules.sandbox` for the process
their code runs in. Exports are lazy (PEP 562): the module worker imports this package and must stay
light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bookstore.modules.host import BUNDLED_MODULES, BUNDLED_VERSION, ModuleHost, RankingModule, load_module

__all__ = ["BUNDLED_MODULES", "BUNDLED_VERSION", "ModuleHost", "RankingModule", "load_module"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'bookstore.modules' has no attribute {name!r}")
    return getattr(importlib.import_module("bookstore.modules.host"), name)
