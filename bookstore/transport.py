"""Service-to-service HTTP: httpx's interface over aiohttp's connection pool and C parser.

A purchase makes two to six calls between services (storefront to stock, balance and tc; tc to the
participants). httpx's own transport (httpcore: pure-Python HTTP/1.1 on anyio streams, the request
head and body in two writes) spends about a millisecond of CPU on each; aiohttp's, with its llhttp
parser and one write per small request, about a third of that. So the clients keep httpx's API,
its errors and its test transports (``httpx.ASGITransport`` in the unit tests), and only the
transport underneath changes.

``HTTP_PROXY`` and ``NO_PROXY`` are honoured as httpx honours them with ``trust_env``: looked up
once per origin (aiohttp would read them, and ``~/.netrc``, on every request).
"""

from __future__ import annotations

import urllib.request

import aiohttp
import httpx

__all__ = ["AiohttpTransport", "service_http_client"]


def service_http_client(
    *, timeout: float, base_url: str = "", transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """A client for calls between services: through the cluster's proxy when the environment names one.

    ``transport`` replaces the network (e.g. ``httpx.ASGITransport`` to call an app in the same process).
    """
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=timeout,
        # The transport reads the proxy settings itself: httpx would mount its own transport for them.
        trust_env=False,
        transport=transport or AiohttpTransport(),
        follow_redirects=False,
    )


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
        self._proxies: dict[tuple[str, str, int | None], str | None] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)  # httpx decodes the body itself
        timeouts = request.extensions.get("timeout", {})
        try:
            async with self._session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=await request.aread() or None,
                proxy=self._proxy_for(request.url),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeouts.get("pool"),
                    sock_connect=timeouts.get("connect"),
                    sock_read=timeouts.get("read"),
                ),
            ) as answer:
                content = await answer.read()
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
            content=content,
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (answer.reason or "").encode()},
        )

    def _proxy_for(self, url: httpx.URL) -> str | None:
        origin = (url.scheme, url.host, url.port)
        if origin not in self._proxies:
            proxy = urllib.request.getproxies().get(url.scheme) if self._trust_env else None
            bypassed = proxy is not None and urllib.request.proxy_bypass(url.netloc.decode("ascii"))
            self._proxies[origin] = None if bypassed else proxy
        return self._proxies[origin]

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
