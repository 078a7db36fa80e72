"""The admin API through which modules are installed, activated and uninstalled at run time.

========  ==========================================  ============================================
method    path                                        does
========  ==========================================  ============================================
GET       ``/admin/modules``                          installed modules, the active one, bundled
POST      ``/admin/modules``                          install ``{name, version, source|bundled}``
POST      ``/admin/modules/{name}/{version}/activate`` make it the active ranking
DELETE    ``/admin/modules/{name}/{version}``          uninstall (not the active one)
========  ==========================================  ============================================
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, ConfigDict, Field

from bookstore.modules.host import (
    BUNDLED_MODULES,
    MODULE_NAME_PATTERN,
    MODULE_VERSION_PATTERN,
    ModuleHost,
    RankingModule,
)

__all__ = ["MAX_SOURCE_CHARS", "InstallModule", "ModuleInfo", "ModuleList", "create_admin_router"]

MAX_SOURCE_CHARS = 64 * 1024

ModuleName = Annotated[str, Field(pattern=MODULE_NAME_PATTERN, examples=["by-price"])]
ModuleVersion = Annotated[str, Field(pattern=MODULE_VERSION_PATTERN, examples=["1.0.0"])]
NameInPath = Annotated[str, Path(pattern=MODULE_NAME_PATTERN)]
VersionInPath = Annotated[str, Path(pattern=MODULE_VERSION_PATTERN)]


class InstallModule(BaseModel):
    """Install ``name@version`` from Python ``source`` or from a ``bundled`` module; optionally activate it."""

    model_config = ConfigDict(strict=True, extra="forbid")

    name: ModuleName
    version: ModuleVersion
    source: Annotated[str | None, Field(min_length=1, max_length=MAX_SOURCE_CHARS)] = None
    bundled: Annotated[str | None, Field(max_length=64, examples=["by-price"])] = None
    activate: bool = False


class ModuleInfo(BaseModel):
    name: str
    version: str
    reference: str
    origin: str
    description: str
    installed_at: float
    active: bool


class ModuleList(BaseModel):
    active: str | None
    modules: list[ModuleInfo]
    bundled: list[str]


def create_admin_router(host: ModuleHost) -> APIRouter:
    """Routes under ``/admin/modules`` managing ``host``'s ranking modules."""
    router = APIRouter(prefix="/admin/modules", tags=["modules"])

    def describe(module: RankingModule) -> ModuleInfo:
        return ModuleInfo(
            name=module.name,
            version=module.version,
            reference=module.reference,
            origin=module.origin,
            description=module.description,
            installed_at=module.installed_at,
            active=module is host.active,
        )

    @router.get("")
    async def list_modules() -> ModuleList:
        """Installed modules, the active one (``name@version``) and the bundled ones that can be installed."""
        active = host.active
        return ModuleList(
            active=active.reference if active else None,
            modules=[describe(module) for module in host.modules()],
            bundled=list(BUNDLED_MODULES),
        )

    @router.post("", status_code=status.HTTP_201_CREATED)
    async def install(request: InstallModule) -> ModuleInfo:
        """Load and try out a module; a module that fails is refused (422) and changes nothing."""
        module = host.install(request.name, request.version, source=request.source, bundled=request.bundled)
        if request.activate:
            host.activate(module.name, module.version)
        return describe(module)

    @router.post("/{name}/{version}/activate")
    async def activate(name: NameInPath, version: VersionInPath) -> ModuleInfo:
        """Switch every following request to this module, atomically."""
        return describe(host.activate(name, version))

    @router.delete("/{name}/{version}")
    async def uninstall(name: NameInPath, version: VersionInPath) -> ModuleInfo:
        """Remove a module that is not active."""
        return describe(host.uninstall(name, version))

    return router
