"""The pod subresources that stream: `exec`, `attach` and `portforward`, over WebSockets.

kubectl (1.37) and the official clients open these as WebSocket upgrades (`v5.channel.k8s.io` for
exec and attach; port-forward as SPDY tunnelled through a WebSocket, `SPDY/3.1+portforward.k8s.io`,
or the kubelet's channel protocol `v4.channel.k8s.io`). The apiserver would proxy them to the
kubelet; here the kubelet serves them itself, on the API's routes. A request that cannot be served
is refused before the upgrade with a `Status`, as the apiserver answers; a plain HTTP request
(kubectl's SPDY fallback) is told to upgrade to a WebSocket.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from localcluster.api.errors import ApiError, BadRequest, NotFound
from localcluster.api.http import status_response
from localcluster.kubelet._channels import REMOTE_COMMAND_PROTOCOLS, ChannelSocket, ProtocolError
from localcluster.kubelet._exec import StreamOptions, attach, exec_argv, run_command
from localcluster.kubelet._logs import choose_container
from localcluster.kubelet._portforward import serve_port_forward

if TYPE_CHECKING:
    from localcluster.api.cluster import Cluster
    from localcluster.api.resources import ResourceType
    from localcluster.kubelet._worker import ContainerRunner, PodWorker

_POD_PATH = "/api/v1/namespaces/{namespace}/pods/{name}"


@dataclass(frozen=True)
class Target:
    """The running container a request addresses."""

    pod: dict[str, Any]
    worker: PodWorker
    runner: ContainerRunner


class RunningPods(Protocol):
    """Where the streaming server finds a pod and the worker running it (the kubelet)."""

    @property
    def cluster(self) -> Cluster: ...
    @property
    def pods(self) -> ResourceType: ...
    @property
    def workers(self) -> dict[str, PodWorker]: ...


class StreamingServer:
    """Serves exec, attach and port-forward for the kubelet's pods."""

    def __init__(self, kubelet: RunningPods) -> None:
        self.kubelet = kubelet

    def routes(self) -> list[BaseRoute]:
        """Mount before the generic API routes."""
        handlers: dict[str, Callable[[WebSocket], Awaitable[None]]] = {
            "exec": self.exec,
            "attach": self.attach,
            "portforward": self.port_forward,
        }
        routes: list[BaseRoute] = []
        for action, handler in handlers.items():
            routes.append(WebSocketRoute(f"{_POD_PATH}/{action}", handler))
            routes.append(Route(f"{_POD_PATH}/{action}", self.not_upgraded, methods=["GET", "POST"]))
        return routes

    async def not_upgraded(self, request: Request) -> Response:
        action = request.url.path.rsplit("/", 1)[-1]
        return status_response(
            BadRequest(
                f"localcluster serves {action} over WebSockets only (v5.channel.k8s.io for exec and attach, "
                "SPDY/3.1+portforward.k8s.io or v4.channel.k8s.io for port-forward), not SPDY: "
                "use kubectl 1.31 or newer, or a client that speaks these protocols"
            )
        )

    async def exec(self, websocket: WebSocket) -> None:
        try:
            target = self._target(websocket)
            options = StreamOptions.parse(websocket.query_params, with_command=True)
            launch = target.runner.launched
            assert launch is not None
            argv = exec_argv(launch, options.command)
            channels = await ChannelSocket.accept(websocket, REMOTE_COMMAND_PROTOCOLS)
        except (ApiError, ProtocolError) as error:
            await refuse(websocket, error)
            return
        try:
            await run_command(channels, target.worker, launch, argv, options)
        finally:
            await channels.close()

    async def attach(self, websocket: WebSocket) -> None:
        try:
            target = self._target(websocket)
            options = StreamOptions.parse(websocket.query_params, with_command=False)
            channels = await ChannelSocket.accept(websocket, REMOTE_COMMAND_PROTOCOLS)
        except (ApiError, ProtocolError) as error:
            await refuse(websocket, error)
            return
        try:
            await attach(channels, target.runner, options)
        finally:
            await channels.close()

    async def port_forward(self, websocket: WebSocket) -> None:
        try:
            pod, worker = self._pod(websocket)
        except ApiError as error:
            await refuse(websocket, error)
            return
        await serve_port_forward(websocket, pod, worker)

    def _pod(self, websocket: WebSocket) -> tuple[dict[str, Any], PodWorker]:
        """The pod a request names and its worker on this node (refused as the apiserver would)."""
        kubelet = self.kubelet
        namespace, name = websocket.path_params["namespace"], websocket.path_params["name"]
        pod = kubelet.cluster.find(kubelet.pods, namespace, name)
        if pod is None:
            raise NotFound(f'pods "{name}" not found', kind="pods", name=name)
        if not (pod.get("spec") or {}).get("nodeName"):
            raise BadRequest(f"pod {name} does not have a host assigned")
        phase = (pod.get("status") or {}).get("phase")
        worker = kubelet.workers.get(pod["metadata"]["uid"])
        if phase in ("Succeeded", "Failed") or worker is None or worker.pod_ip is None:
            raise BadRequest(f"unable to upgrade connection: pod {name} is not running (phase {phase or 'Pending'})")
        return pod, worker

    def _target(self, websocket: WebSocket) -> Target:
        pod, worker = self._pod(websocket)
        container, _status = choose_container(pod, websocket.query_params.get("container") or None)
        runner = next((r for r in worker.runners if r.name == container), None)
        if runner is None or runner.instance is None or runner.launched is None:
            raise BadRequest(f'unable to upgrade connection: container not found ("{container}")')
        return Target(pod, worker, runner)


async def refuse(websocket: WebSocket, error: ApiError | ProtocolError) -> None:
    """Answer the upgrade request with a Status instead of a WebSocket."""
    if isinstance(error, ProtocolError):
        error = BadRequest(str(error))
    await websocket.send_denial_response(status_response(error))
