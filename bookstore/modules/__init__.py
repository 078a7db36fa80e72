"""Ranking strategies loaded into a running storefront or monolith as dynamic modules.

See ``README.md`` in this directory for how a module is written, and
:mod:`bookstore.modules.admin` for the admin API that installs and activates them.
"""

from bookstore.modules.host import BUNDLED_MODULES, BUNDLED_VERSION, ModuleHost, RankingModule, load_module

__all__ = ["BUNDLED_MODULES", "BUNDLED_VERSION", "ModuleHost", "RankingModule", "load_module"]
