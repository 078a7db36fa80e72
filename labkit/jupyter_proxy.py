"""The bookstore's page inside JupyterLab: `<base_url>/bookstore/<service>/` on Jupyter's own server.

A Jupyter server extension. Enable it for one run::

    jupyter lab --ServerApp.jpserver_extensions="{'labkit.jupyter_proxy': True}"

or for every run (Binder's postBuild, a JupyterHub image) with a config file
``<sys.prefix>/etc/jupyter/jupyter_server_config.d/labkit-jupyter-proxy.json``::

    {"ServerApp": {"jpserver_extensions": {"labkit.jupyter_proxy": true}}}

Because the page is served by the notebook server itself, the link works wherever JupyterLab does:
on a laptop, on Binder and behind JupyterHub (whose prefix is part of ``base_url``), with Jupyter's
own login. Requests go to ``http://<service>.<namespace>.svc.cluster.local`` through
``labkit.connect()``'s HTTP client: on localcluster that is the service proxy, which resolves the
Service name; in a cluster it is cluster DNS. The browser's cookies and Authorization header are
not passed on, so the bookstore never sees the Jupyter login.

In a notebook, ``page_link("storefront")`` shows the link.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

    from checkers import Context

__all__ = ["ROUTE", "PageLink", "ServicePageHandler", "page_link", "page_path"]

#: The path under Jupyter's base_url: /bookstore/<service>/<path>.
ROUTE = "bookstore"
_SERVICE_NAME = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
#: Headers about one connection (RFC 9110 §7.6.1), and what the service must not see or re-send.
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "cookie",
        "authorization",
    }
)
#: httpx hands back the decoded body, so its original framing and encoding no longer apply.
_NOT_RETURNED = frozenset({*_NOT_FORWARDED, "content-length", "content-encoding", "set-cookie"})


def service_url(service: str, namespace: str, path: str, query: str) -> str:
    """Where a request for `service` goes: its cluster DNS name, which the service proxy resolves too."""
    url = f"http://{service}.{namespace}.svc.cluster.local/{path.lstrip('/')}"
    return f"{url}?{query}" if query else url


class ServicePageHandler(JupyterHandler):
    """Forwards `/bookstore/<service>/<path>` to the Service, for signed-in Jupyter users only."""

    _connection: Context | None = None

    def check_xsrf_cookie(self) -> None:
        """The bookstore page posts to its own API without Jupyter's XSRF token (as jupyter-server-proxy allows)."""

    @classmethod
    def connection(cls) -> Context:
        """labkit.connect(), once per server; a failed attempt is tried again on the next request."""
        if cls._connection is None:
            from labkit.connection import connect

            cls._connection = connect()
        return cls._connection

    @web.authenticated
    async def get(self, service: str, path: str | None) -> None:
        if path is None:
            # The page's links are relative: without the slash they would leave /bookstore/<service>/.
            query = f"?{self.request.query}" if self.request.query else ""
            self.redirect(url_path_join(self.base_url, ROUTE, service) + "/" + query, permanent=True)
            return
        await self._forward(service, path)

    @web.authenticated
    async def post(self, service: str, path: str) -> None:
        await self._forward(service, path)

    @web.authenticated
    async def put(self, service: str, path: str) -> None:
        await self._forward(service, path)

    @web.authenticated
    async def patch(self, service: str, path: str) -> None:
        await self._forward(service, path)

    @web.authenticated
    async def delete(self, service: str, path: str) -> None:
        await self._forward(service, path)

    @web.authenticated
    async def head(self, service: str, path: str) -> None:
        await self._forward(service, path)

    async def _forward(self, service: str, path: str) -> None:
        try:
            ctx = self.connection()
        except ConnectionError as exc:
            self._plain(503, f"The cluster cannot be reached: {exc}")
            return
        url = service_url(service, ctx.namespace, path, self.request.query)
        headers = [(k, v) for k, v in self.request.headers.get_all() if k.lower() not in _NOT_FORWARDED]
        body = self.request.body or None
        try:
            # The connection's client is synchronous; a thread keeps Jupyter's event loop free meanwhile.
            answer = await asyncio.to_thread(ctx.http.request, self.request.method, url, headers=headers, content=body)
        except httpx.HTTPError as exc:
            self._plain(502, f"Service {service!r} in namespace {ctx.namespace!r} did not answer: {exc}")
            return
        self.set_status(answer.status_code, answer.reason_phrase or None)
        self.clear_header("Content-Type")
        for name, value in answer.headers.multi_items():
            if name.lower() not in _NOT_RETURNED:
                self.add_header(name, value)
        if self.request.method != "HEAD":
            self.write(answer.content)

    def _plain(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.write(message + "\n")


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "labkit.jupyter_proxy"}]


def _load_jupyter_server_extension(serverapp: ServerApp) -> None:
    web_app = serverapp.web_app
    # The path group is None for /bookstore/<service> (no slash), which `get` redirects.
    pattern = url_path_join(web_app.settings["base_url"], ROUTE, rf"({_SERVICE_NAME})(?:/(.*))?")
    web_app.add_handlers(".*$", [(pattern, ServicePageHandler)])
    serverapp.log.info("bookstore pages served under %s", url_path_join(web_app.settings["base_url"], ROUTE, ""))


@dataclass(frozen=True)
class PageLink:
    """A link to a service's page through JupyterLab's own server, for a notebook cell to show."""

    service: str
    href: str

    def __str__(self) -> str:
        return f"{self.service}: {self.href}"

    def _repr_html_(self) -> str:
        return f'<a href="{html.escape(self.href)}" target="_blank">Open the {html.escape(self.service)} page</a>'


def page_path(service: str, base_url: str | None = None) -> str:
    """The page's path on the notebook server: base_url (JupyterHub's prefix, else "/") + bookstore/<service>/."""
    if not re.fullmatch(_SERVICE_NAME, service):
        raise ValueError(f"{service!r} is not a Service name (lower-case letters, digits and '-')")
    prefix = base_url if base_url is not None else os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    return url_path_join(prefix, ROUTE, service) + "/"


def page_link(service: str, base_url: str | None = None) -> PageLink:
    """A link that opens `service`'s page (e.g. "storefront") in a new browser tab, through JupyterLab."""
    return PageLink(service, page_path(service, base_url))
