"""`labkit.connect()`: the Kubernetes APIs of the notebook's cluster, and HTTP into its service network.

Where the cluster is, in order:

1. a kubeconfig context, when one is asked for (`connect(context=...)`, LAB_CONTEXT) or a kubeconfig
   is set (KUBECONFIG); without KUBECONFIG the context is looked up in `~/.kube/config` and in
   localcluster's kubeconfig;
2. the pod's service account, when the notebook runs in a pod of a real cluster;
3. the real cluster `lab up --target cluster` recorded in `$LAB_HOME`;
4. localcluster, the default: `$LAB_HOME/kubeconfig` and the service proxy of the running server.

Both 3 and 4 are read from the files `lab` leaves in `$LAB_HOME` (labkit._lab_home), never by
importing localcluster.

On localcluster `http` sends `http://` URLs through the service proxy, which resolves short names
(`http://stock/api/books`) in the connection's namespace; in a pod of a real cluster it goes direct
(cluster DNS resolves them) and honours the environment's proxy settings. From outside a real cluster
(`lab up --target cluster`), Service names go through the API server's service proxy and every other
host (Knative and Istio hosts, the ingress gateway's own name) to the ingress gateway, its Host kept.

A connection to localcluster survives `lab down && lab up`: its API client and its HTTP client find
the restarted cluster's new ports by themselves (labkit._following), so a notebook goes on without a
kernel restart. `connect()` also makes its connection the one labkit helpers use when given none,
and `kubectl()` reaches the same cluster (`kubectl_target`).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from labkit._lab_home import ClusterTarget, LabHomeError, localcluster_kubeconfig, recorded_target, running_localcluster
from labkit.settings import Settings

if TYPE_CHECKING:
    from kubernetes import client

    from checkers import Context

#: How long a service call may take before `http` gives up (a purchase crosses several services).
HTTP_TIMEOUT = 30.0
_DEFAULT_KUBECONFIG = Path("~/.kube/config")
#: Where the cluster came from.
LOCALCLUSTER, KUBECONFIG, IN_CLUSTER, TARGET = "localcluster", "kubeconfig", "in-cluster", "target"


#: The connection labkit helpers use when given none (labkit._default): the last `connect()`'s.
_last: Context | None = None
_last_lock = threading.Lock()


class ClusterUnavailable(ConnectionError):
    """No cluster to connect to (localcluster not running, no usable kubeconfig), said in one line."""


@dataclass(frozen=True)
class Connection:
    """The Kubernetes APIs, the namespace the labs work in, and HTTP routed like a pod's."""

    core: client.CoreV1Api
    apps: client.AppsV1Api
    custom: client.CustomObjectsApi
    namespace: str
    http: httpx.Client
    #: Where the cluster came from: "localcluster", "kubeconfig" or "in-cluster".
    source: str

    def close(self) -> None:
        """Close the HTTP client and the API client's connection pool (and stop being the default)."""
        forget_default(self)
        self.http.close()
        self.core.api_client.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def connect(context: str | None = None, *, namespace: str | None = None) -> Connection:
    """Connect to the notebook's cluster (see the module docstring for which one) and namespace.

    The connection becomes the one labkit helpers (`labkit.check`, `labkit.apply` ...) use when they
    are given none; in a notebook, cell errors are shown as one paragraph from then on (labkit._errors).
    Raises ClusterUnavailable with what to do when there is nothing to connect to.
    """
    from labkit._errors import install

    install()  # in a notebook: cell errors as one paragraph from now on
    settings = Settings.from_env()
    context = context or settings.context
    namespace = namespace or settings.namespace
    source = _source(settings, context)
    target = _recorded_target() if source == TARGET else None
    if source == IN_CLUSTER:
        connection = _in_cluster(namespace)
    elif target is not None:
        connection = _to_target(target, namespace)
    elif source == LOCALCLUSTER:
        connection = _localcluster(namespace)
    else:
        connection = _from_kubeconfig(settings.kubeconfig, context, namespace)
    make_default(connection)
    return connection


def make_default(connection: Context) -> None:
    """Make `connection` the one labkit helpers use when given none (`connect()` does this with each it makes)."""
    global _last
    with _last_lock:
        _last = connection


def forget_default(connection: Context | None = None) -> None:
    """Drop the default (only if it is `connection`, when one is given): the next helper connects again."""
    global _last
    with _last_lock:
        if connection is None or _last is connection:
            _last = None


def last_connection() -> Context | None:
    """The default labkit helpers use: the last `connect()`'s connection (None before any, or once closed)."""
    return _last


def _source(settings: Settings, context: str | None) -> str:
    if context is None and settings.kubeconfig is None:
        if _in_a_pod():
            return IN_CLUSTER
        return TARGET if _recorded_target() is not None else LOCALCLUSTER
    return KUBECONFIG


def kubectl_target(settings: Settings | None = None) -> tuple[list[Path] | None, str | None]:
    """The kubeconfig files and context that lead kubectl to the cluster `connect()` finds.

    (None, None) in a pod: kubectl then uses the pod's service account, as `connect()` does. Run with
    these (KUBECONFIG and --context), kubectl talks to the very cluster the notebook's connection does,
    also when KUBECONFIG is unset and that cluster is localcluster or the one `lab up --target` recorded.
    """
    settings = settings or Settings.from_env()
    source = _source(settings, settings.context)
    if source == IN_CLUSTER:
        return None, None
    if source == LOCALCLUSTER:
        return [_localcluster_kubeconfig()], None
    if source == TARGET:
        target = _recorded_target()
        kubeconfig = Path(target.kubeconfig) if target is not None and target.kubeconfig else None
        return _kubeconfig_files(kubeconfig), target.context if target is not None else None
    return _kubeconfig_files(settings.kubeconfig), settings.context


def _kubeconfig_files(kubeconfig: Path | None) -> list[Path]:
    return [kubeconfig] if kubeconfig else [_DEFAULT_KUBECONFIG.expanduser(), _localcluster_kubeconfig()]


def _in_a_pod() -> bool:
    from kubernetes.config.incluster_config import SERVICE_HOST_ENV_NAME, SERVICE_TOKEN_FILENAME

    return bool(os.environ.get(SERVICE_HOST_ENV_NAME)) and Path(SERVICE_TOKEN_FILENAME).exists()


def _in_cluster(namespace: str) -> Connection:
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException as exc:
        raise ClusterUnavailable(f"cannot use this pod's service account: {exc}") from exc
    # In a pod, cluster DNS resolves service names; the pod's own proxy settings (if any) apply.
    http = httpx.Client(timeout=HTTP_TIMEOUT)
    return _connection(client.ApiClient(configuration), namespace, http, IN_CLUSTER)


def _localcluster(namespace: str) -> Connection:
    from kubernetes import config

    from labkit._following import FollowingApiClient, LocalclusterProxy, through_proxy

    home = Settings.from_env().lab_home
    try:
        server = running_localcluster(home)
    except LabHomeError as exc:
        raise ClusterUnavailable(str(exc)) from exc
    if server is None:
        raise ClusterUnavailable(f"localcluster is not running: start it with `lab up` (LAB_HOME={home})")
    if not server.proxy:
        raise ClusterUnavailable("localcluster runs without its service proxy: restart it with `lab down && lab up`")
    kubeconfig = localcluster_kubeconfig(home)
    try:
        api = FollowingApiClient([kubeconfig], None)
    except (OSError, config.ConfigException) as exc:
        raise ClusterUnavailable(
            f"localcluster's kubeconfig {kubeconfig} is unusable ({exc}): restart it with `lab down && lab up`"
        ) from exc
    return _connection(api, namespace, through_proxy(LocalclusterProxy(home), namespace), LOCALCLUSTER)


def _from_kubeconfig(kubeconfig: Path | None, context: str | None, namespace: str) -> Connection:
    """A kubeconfig's cluster; when that is localcluster (`make run` sets KUBECONFIG to its file), the
    connection follows it across restarts as a plain localcluster connection does."""
    from kubernetes import config

    from labkit._following import FollowingApiClient, LocalclusterProxy, through_proxy

    paths = _kubeconfig_files(kubeconfig)
    try:
        api = FollowingApiClient(paths, context)
    except (OSError, config.ConfigException) as exc:
        where = " or ".join(str(p) for p in paths)
        wanted = f"context {context!r}" if context else "its current context"
        raise ClusterUnavailable(f"cannot use {wanted} of {where}: {exc}") from exc
    proxy = LocalclusterProxy(Settings.from_env().lab_home)
    server = proxy.server()
    is_localcluster = kubeconfig == _localcluster_kubeconfig() or (
        server is not None and server.url == api.configuration.host.rstrip("/")
    )
    http = through_proxy(proxy, namespace) if is_localcluster else httpx.Client(timeout=HTTP_TIMEOUT)
    return _connection(api, namespace, http, KUBECONFIG)


def _recorded_target() -> ClusterTarget | None:
    try:
        return recorded_target(Settings.from_env().lab_home)
    except LabHomeError as exc:
        raise ClusterUnavailable(str(exc)) from exc


def _to_target(target: ClusterTarget, namespace: str) -> Connection:
    connection = _from_kubeconfig(Path(target.kubeconfig) if target.kubeconfig else None, target.context, namespace)
    connection.http.close()
    http = httpx.Client(transport=ClusterTransport(connection.core.api_client, target.ingress), timeout=HTTP_TIMEOUT)
    return _connection(connection.core.api_client, namespace, http, "kubeconfig")


class ClusterTransport(httpx.BaseTransport):
    """HTTP into a real cluster from outside it: Services through the API server's service proxy
    (`/api/v1/namespaces/<ns>/services/<name>:<port>/proxy/<path>`, with the kubeconfig's credentials),
    every other host to the ingress gateway (kind maps it to a host port), its Host header kept so
    Knative and Istio route by it."""

    def __init__(self, api: client.ApiClient, ingress: str) -> None:
        configuration = api.configuration
        self.api_host = configuration.host.rstrip("/")
        self.ingress = ingress.rstrip("/")
        authorization = configuration.get_api_key_with_prefix("authorization")
        self.headers = {"authorization": authorization} if authorization else {}
        verify: Any = configuration.ssl_ca_cert or configuration.verify_ssl
        cert = (configuration.cert_file, configuration.key_file) if configuration.cert_file else None
        self.inner = httpx.HTTPTransport(verify=verify, cert=cert, trust_env=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        service = _service_of(host)
        if service is not None:
            name, namespace = service
            port = request.url.port or 80
            path = request.url.raw_path.decode()
            url = f"{self.api_host}/api/v1/namespaces/{namespace}/services/{name}:{port}/proxy{path}"
            headers = {**dict(request.headers), **self.headers}
            headers.pop("host", None)
            forwarded = httpx.Request(request.method, url, headers=headers, content=request.content)
        else:
            if not self.ingress:
                raise httpx.ConnectError(
                    f"{host} is not a Service and no ingress gateway is reachable from here: "
                    "`lab up --target cluster --ingress URL` (infra/cluster/bootstrap.py prints it)"
                )
            url = f"{self.ingress}{request.url.raw_path.decode()}"
            forwarded = httpx.Request(request.method, url, headers=dict(request.headers), content=request.content)
        return self.inner.handle_request(forwarded)

    def close(self) -> None:
        self.inner.close()


def _service_of(host: str) -> tuple[str, str] | None:
    """(name, namespace) of a cluster Service host (`stock.bookstore`, `stock.bookstore.svc.cluster.local`).

    Short names (`stock`) are resolved in the connection's namespace by the caller's Settings; the
    ingress gateway's own Service counts as ingress, so requests to it keep their Host."""
    parts = host.split(".")
    if host.endswith(".svc.cluster.local"):
        parts = parts[:-3]
    elif host.endswith(".svc"):
        parts = parts[:-1]
    if len(parts) == 1:
        from labkit.settings import Settings

        parts.append(Settings.from_env().namespace)
    if len(parts) != 2 or parts[0] == "istio-ingressgateway":
        return None
    return parts[0], parts[1]


def _localcluster_kubeconfig() -> Path:
    return localcluster_kubeconfig(Settings.from_env().lab_home)


def _connection(api: client.ApiClient, namespace: str, http: httpx.Client, source: str) -> Connection:
    from kubernetes import client

    return Connection(
        core=client.CoreV1Api(api),
        apps=client.AppsV1Api(api),
        custom=client.CustomObjectsApi(api),
        namespace=namespace,
        http=http,
        source=source,
    )
