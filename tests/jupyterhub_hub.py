"""infra/jupyterhub as the unit and integration tests read it: its directory, and the hub's hook module.

`bookstore_hub.py` is JupyterHub configuration (the chart mounts it into jupyterhub_config.d), not a
module of a package, so the tests load it from its file, as `bookstore_hub`.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from localcluster.settings import PROJECT_ROOT

HUB = PROJECT_ROOT / "infra" / "jupyterhub"


def hub_module() -> ModuleType:
    """bookstore_hub.py, loaded from infra/jupyterhub."""
    spec = importlib.util.spec_from_file_location("bookstore_hub", HUB / "bookstore_hub.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
