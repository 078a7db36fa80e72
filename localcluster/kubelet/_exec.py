"""`kubectl exec`, `attach` and `port-forward`: answered with a Status saying localcluster cannot."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from localcluster.api.errors import BadRequest
from localcluster.api.http import status_response

_STREAMING_SUBRESOURCES = ("exec", "attach", "portforward")


async def _unsupported(request: Request) -> Response:
    name, action = request.path_params["name"], request.url.path.rsplit("/", 1)[-1]
    return status_response(
        BadRequest(
            f'localcluster cannot {action} into pod "{name}": its containers are local processes without a container '
            "runtime, so kubectl exec, attach and port-forward are not supported; use kubectl logs, or run the "
            "command in a terminal of the workshop environment"
        )
    )


def streaming_routes() -> list[BaseRoute]:
    """Routes for the pod subresources that need a container runtime (mount before the generic API routes)."""
    return [
        Route(f"/api/v1/namespaces/{{namespace}}/pods/{{name}}/{action}", _unsupported, methods=["GET", "POST"])
        for action in _STREAMING_SUBRESOURCES
    ]
