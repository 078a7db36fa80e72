"""Service-to-service HTTP: httpx's requests and responses, aiohttp's connection pool and C parser.

A purchase makes two to six calls between services (storefront to stock, balance and tc; tc to the
participants). With ``httpx.AsyncClient`` each cost about a millisecond of CPU: httpcore's
pure-Python HTTP/1.1 on anyio streams (the request head and body in two writes), and the client's
own per-request work (base URL merging, default headers, the cookie jar, auth and redirect flows)
that calls between services never use. :class:`ServiceHttp` sends straight through
:class:`AiohttpTransport` (aiohttp's llhttp parser, one write per small request), without building
an ``httpx.Request`` (its URL parsing alone costs a fifth of a call): about two fifths of that CPU.
The answers and errors stay httpx's, and tests still give any httpx transport
(``httpx.ASGITransport`` to call an app in the same process, ``httpx.MockTransport``).

``HTTP_PROXY`` and ``NO_PROXY`` are honoured as httpx honours them with ``trust_env``: looked up
once per origin (aiohttp would read them, and ``~/.netrc``, on every request).
"""

from __future__ import annotations

import json as jsonlib
import urllib.request
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx

__all__ = ["AiohttpTransport", "ServiceHttp"]


class ServiceHttp:
    """Calls to other services, through the cluster's proxy when the environment names one.

    ``url`` is ``base_url`` followed by what a call gives; every call may take ``timeout`` seconds to
    connect and as long again between reads. ``transport`` replaces the network.
    """

    def __init__(
        self, *, timeout: float, base_url: str = "", transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.base_url = base_url
        self._timeouts = httpx.Timeout(timeout).as_dict()
        self._transport = transport or AiohttpTransport()

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request and read its whole answer; httpx's exceptions if none came.

        The body is ``json`` encoded as httpx encodes it, or ``content`` as given (with its
        ``content-type`` in ``headers``): a pydantic model's own JSON encoder takes a fraction of the time.
        """
        if isinstance(self._transport, AiohttpTransport):
            fields = dict(headers or {})
            if json is not None:
                content = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
                fields["content-type"] = "application/json"
            return await self._transport.send(
                method, self.base_url + url, list(fields.items()), content, self._timeouts
            )
        request = httpx.Request(
            method,
            self.base_url + url,
            json=json,
            content=content,
            headers=headers,
            extensions={"timeout": self._timeouts},
        )
        response = await self._transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> ServiceHttp:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests with an aiohttp session (made on first use, on the loop that uses it).

    Failures become httpx's exceptions as httpcore raises them: a refused or unreachable connection
    is :class:`httpx.ConnectError`, a timeout :class:`httpx.ConnectTimeout` or
    :class:`httpx.ReadTimeout`, a connection lost or an answer that is not HTTP
    :class:`httpx.ReadError` or :class:`httpx.RemoteProtocolError`.
    """

    def __init__(self, *, trust_env: bool = True) -> None:
        self._trust_env = trust_env
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        content = await request.aread() or None
        timeouts = request.extensions.get("timeout", {})
        return await self.send(
            request.method, str(request.url), request.headers.multi_items(), content, timeouts, request=request
        )

    async def send(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        content: bytes | None,
        timeouts: Mapping[str, float | None],
        *,
        request: httpx.Request | None = None,
    ) -> httpx.Response:
        """One request, its whole answer read; errors and the answer name ``request`` if the caller has one."""
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)  # httpx decodes the body itself
        try:
            async with self._session.request(
                method,
                url,
                headers=headers,
                data=content or None,
                proxy=self._proxy_for(url),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeouts.get("pool"),
                    sock_connect=timeouts.get("connect"),
                    sock_read=timeouts.get("read"),
                ),
            ) as answer:
                body = await answer.read()
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "timed out connecting", request=request) from exc
        except TimeoutError as exc:  # aiohttp's ServerTimeoutError is one too
            raise httpx.ReadTimeout(str(exc) or "timed out waiting for the answer", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.ClientOSError as exc:
            raise httpx.ReadError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:  # disconnected, a broken body, something that is not HTTP
            raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
        return httpx.Response(
            answer.status,
            headers=list(answer.raw_headers),
            content=body,
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (answer.reason or "").encode()},
        )

    def _proxy_for(self, url: str) -> str | None:
        parts = urlsplit(url)
        origin = (parts.scheme, parts.netloc)
        if origin not in self._proxies:
            proxy = urllib.request.getproxies().get(parts.scheme) if self._trust_env else None
            bypassed = proxy is not None and urllib.request.proxy_bypass(parts.netloc)
            self._proxies[origin] = None if bypassed else proxy
        return self._proxies[origin]

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
