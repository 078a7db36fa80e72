"""The admin API through which modules are installed, activated and uninstalled at run time.

Every admin call needs the admin token as ``Authorization: Bearer <token>``: 401 without one, 403
with another. The service reads the token from ``BOOKSTORE_ADMIN_TOKEN_FILE`` (in a pod, the key
``token`` of the Secret ``bookstore-admin``, mounted as a file) at every call, so a rotated Secret
takes effect without a restart; without that file the admin API refuses every call. Whoever holds the
token can run Python in the service's process (a module is code), with the pod's files and network.

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

import hmac
import logging
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from bookstore.errors import Forbidden, Unauthorized
from bookstore.modules.host import (
    BUNDLED_MODULES,
    MODULE_NAME_PATTERN,
    MODULE_VERSION_PATTERN,
    ModuleHost,
    RankingModule,
)

__all__ = ["MAX_SOURCE_CHARS", "AdminToken", "InstallModule", "ModuleInfo", "ModuleList", "create_admin_router"]

MAX_SOURCE_CHARS = 64 * 1024

_log = logging.getLogger("bookstore.admin")
_BEARER = HTTPBearer(auto_error=False, description="the key `token` of the Secret `bookstore-admin`")

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


class AdminToken:
    """The admin API's bearer token, read from its file at every call (a FastAPI dependency).

    Refuses before the route runs: :class:`Unauthorized` without a bearer token, :class:`Forbidden`
    with a token that does not match (compared in constant time) or when this service has none.
    """

    def __init__(self, token_file: FilePath | None) -> None:
        self.token_file = token_file
        if token_file is None:
            _log.warning("BOOKSTORE_ADMIN_TOKEN_FILE is not set: the admin API refuses every call")

    def expected(self) -> str | None:
        """The token callers must send, or None if this service has none (missing or empty file)."""
        if self.token_file is None:
            return None
        try:
            token = self.token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            _log.warning("cannot read the admin token from %s: %s", self.token_file, exc)
            return None
        return token or None

    async def __call__(self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]) -> None:
        if credentials is None or not credentials.credentials:
            raise Unauthorized(
                "admin calls need the admin token: send `Authorization: Bearer <token>` with the key `token` "
                "of the Secret bookstore-admin"
            )
        expected = self.expected()
        if expected is None:
            raise Forbidden(
                "this service has no admin token (BOOKSTORE_ADMIN_TOKEN_FILE is unset, missing or empty), "
                "so its admin API refuses every call"
            )
        if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
            raise Forbidden("the token sent is not this service's admin token")


def create_admin_router(host: ModuleHost, token: AdminToken) -> APIRouter:
    """Routes under ``/admin/modules`` managing ``host``'s ranking modules, for holders of ``token`` only."""
    router = APIRouter(prefix="/admin/modules", tags=["modules"], dependencies=[Depends(token)])

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
    async def install(request: InstallModule, response: Response) -> ModuleInfo:
        """Load and try out a module; a module that fails is refused (422) and changes nothing.

        The same code posted again is no conflict (200, the module as installed); other code under an
        installed name@version is (409).
        """
        if host.installed(request.name, request.version) is not None:
            response.status_code = status.HTTP_200_OK
        module = await host.install(request.name, request.version, source=request.source, bundled=request.bundled)
        if request.activate:
            await host.activate(module.name, module.version)
        return describe(module)

    @router.post("/{name}/{version}/activate")
    async def activate(name: NameInPath, version: VersionInPath) -> ModuleInfo:
        """Switch every following request to this module, atomically."""
        return describe(await host.activate(name, version))

    @router.delete("/{name}/{version}")
    async def uninstall(name: NameInPath, version: VersionInPath) -> ModuleInfo:
        """Remove a module that is not active."""
        return describe(await host.uninstall(name, version))

    return router
