"""Clients that follow localcluster across restarts, so a kernel's connection outlives `lab down && lab up`.

A restarted localcluster listens on new ports (the API's and the service proxy's) and rewrites its
kubeconfig and state file. A connection made before would keep knocking on the old ports. These
clients look again, cheaply, before each request: one `stat` of the file that would have changed,
and a reload only when it did.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client, config
from kubernetes.client import rest

from labkit._lab_home import LabHomeError, LocalclusterServer, localcluster_state_file, running_localcluster

#: How long a service call may take before `http` gives up (a purchase crosses several services).
HTTP_TIMEOUT = 30.0

Stamp = tuple[tuple[str, int, int], ...]


def _stamp(paths: Sequence[Path]) -> Stamp:
    """What changes when a file is rewritten: its modification time and size (absent files left out)."""
    stamps = []
    for path in paths:
        try:
            seen = path.stat()
        except OSError:
            continue
        stamps.append((str(path), seen.st_mtime_ns, seen.st_size))
    return tuple(stamps)


def load_configuration(paths: Sequence[Path], context: str | None) -> client.Configuration:
    """The client configuration of `context` (or the current one) in the kubeconfig files `paths`, merged."""
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=os.pathsep.join(str(path) for path in paths),
        context=context,
        client_configuration=configuration,
        persist_config=False,
    )
    return configuration


class FollowingApiClient(client.ApiClient):
    """An ApiClient that reloads its kubeconfig when the file changes (a new port, CA or token).

    Every request of the generated APIs and of the dynamic client passes `param_serialize`, where
    the URL is made from the configuration: the reload happens there, before it is read.
    """

    def __init__(self, paths: Sequence[Path], context: str | None) -> None:
        self._paths = list(paths)
        self._context = context
        self._seen = _stamp(self._paths)
        self._reload_lock = threading.Lock()
        super().__init__(load_configuration(self._paths, context))

    def follow(self) -> None:
        """Reload the configuration if a kubeconfig file changed since it was read."""
        now = _stamp(self._paths)
        if now == self._seen:
            return
        with self._reload_lock:
            if now == self._seen:
                return
            try:
                configuration = load_configuration(self._paths, self._context)
            except (OSError, config.ConfigException):
                return  # being rewritten, or gone with its cluster: the request says what is wrong
            self.configuration = configuration
            self.rest_client = rest.RESTClientObject(configuration)
            self._seen = now

    def param_serialize(self, *args: Any, **kwargs: Any) -> Any:
        self.follow()
        return super().param_serialize(*args, **kwargs)


class LocalclusterProxy:
    """Where the running localcluster's service proxy is now (None when it is not running)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._seen: Stamp | None = None
        self._server: LocalclusterServer | None = None

    def server(self) -> LocalclusterServer | None:
        """The running server as its state file says (re-read only when the file changed)."""
        now = _stamp([localcluster_state_file(self.home)])
        if now != self._seen:
            try:
                self._server = running_localcluster(self.home)
            except LabHomeError:
                self._server = None
            self._seen = now
        return self._server

    def url(self) -> str | None:
        server = self.server()
        return server.proxy if server is not None and server.proxy else None


class ServiceProxyTransport(httpx.BaseTransport):
    """`http://` requests through localcluster's service proxy, wherever it listens now.

    The namespace travels as the proxy URL's user name (Proxy-Authorization, which only the proxy
    sees), so short names resolve in the connection's namespace.
    """

    def __init__(self, proxy: LocalclusterProxy, namespace: str) -> None:
        self._proxy = proxy
        self._namespace = namespace
        self._current: str | None = None
        self._inner: httpx.HTTPTransport | None = None
        self._lock = threading.Lock()

    def _transport(self, request: httpx.Request) -> httpx.HTTPTransport:
        url = self._proxy.url()
        if url is None:
            raise httpx.ConnectError(
                f"localcluster is not running (LAB_HOME={self._proxy.home}): start it with `lab up`", request=request
            )
        with self._lock:
            if url != self._current or self._inner is None:
                if self._inner is not None:
                    self._inner.close()
                authority = url.split("://", 1)[-1]
                self._inner = httpx.HTTPTransport(proxy=f"http://{self._namespace}@{authority}")
                self._current = url
            return self._inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._transport(request).handle_request(request)

    def close(self) -> None:
        with self._lock:
            if self._inner is not None:
                self._inner.close()
                self._inner = None


def through_proxy(proxy: LocalclusterProxy, namespace: str) -> httpx.Client:
    """An HTTP client whose `http://` URLs go through the service proxy (`https://` ones go direct)."""
    return httpx.Client(
        mounts={"http://": ServiceProxyTransport(proxy, namespace)}, trust_env=False, timeout=HTTP_TIMEOUT
    )
