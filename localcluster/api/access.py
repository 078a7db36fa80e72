"""The API's front door: authentication, impersonation and authorization of every request.

In upstream's filter order: the caller is authenticated (a bad credential is a 401), `Impersonate-*`
headers are honoured when the caller may `impersonate` the user, groups, uid and extras they name
(`kubectl --as`, `--as-group`), and the request's attributes must be allowed by the authorizer (else
a 403 `Status` in upstream's words). The user then stays in `authentication.current_user` while the
request is served, for the review APIs and the RBAC escalation check.

WebSocket upgrades (exec, attach, port-forward) pass the same door. Only `/localcluster`, the
server's own description (used to tell which `LAB_HOME` holds a port), is open without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from localcluster.api.authentication import (
    ALL_AUTHENTICATED,
    ALL_UNAUTHENTICATED,
    ANONYMOUS,
    Authenticator,
    InvalidCredentials,
    ServiceAccountTokens,
    UserInfo,
    current_user,
    service_account_groups,
    split_service_account,
)
from localcluster.api.authorization import (
    Attributes,
    EscalationCheck,
    RBACAuthorizer,
    forbidden,
    request_attributes,
)
from localcluster.api.cluster import Cluster
from localcluster.api.errors import ApiError, BadRequest, Unauthorized
from localcluster.api.http import status_response
from localcluster.api.reviews import Reviews
from localcluster.api.serviceaccounts import ServiceAccountAdmission

#: localcluster's own, not a Kubernetes path: answered to anyone.
OPEN_PATHS = frozenset({"/localcluster"})
_EXTRA_PREFIX = b"impersonate-extra-"


class AccessMiddleware:
    """ASGI middleware: authenticate, impersonate, authorize (see the module docstring)."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator, authorizer: RBACAuthorizer) -> None:
        self.app = app
        self.authenticator = authenticator
        self.authorizer = authorizer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            user = self.admit(scope)
        except ApiError as error:
            await _refuse(scope, receive, send, error)
            return
        token = current_user.set(user)
        try:
            await self.app(scope, receive, send)
        finally:
            current_user.reset(token)

    def admit(self, scope: Scope) -> UserInfo:
        """The user the request acts as, once allowed; ApiError (401, 400 or 403) otherwise."""
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        authorization = next((value for name, value in headers if name == b"authorization"), None)
        try:
            user = self.authenticator.authenticate(authorization)
        except InvalidCredentials:
            raise Unauthorized("Unauthorized") from None
        if any(name.startswith(b"impersonate-") for name, _value in headers):
            user = self.impersonate(user, headers)
        if user.privileged:  # the privileged-group authorizer allows anything, before RBAC is asked
            return user
        websocket = scope["type"] == "websocket"
        attributes = request_attributes(
            user, "GET" if websocket else scope["method"], scope["path"], scope["query_string"], websocket=websocket
        )
        decision = self.authorizer.authorize(attributes)
        if not decision.allowed:
            raise forbidden(attributes, decision.reason)
        return user

    def impersonate(self, user: UserInfo, headers: list[tuple[bytes, bytes]]) -> UserInfo:
        """The user named by `Impersonate-*` headers, if `user` may impersonate every part of it."""
        name = next((value.decode() for key, value in headers if key == b"impersonate-user"), "")
        groups = [value.decode() for key, value in headers if key == b"impersonate-group"]
        uid = next((value.decode() for key, value in headers if key == b"impersonate-uid"), "")
        extra: dict[str, list[str]] = {}
        for header, value in headers:
            if header.startswith(_EXTRA_PREFIX):
                extra.setdefault(unquote(header[len(_EXTRA_PREFIX) :].decode()), []).append(value.decode())
        if not name:
            raise BadRequest("requested impersonation of groups, uid or extras without impersonating a user")
        account = split_service_account(name)
        wanted: list[Attributes] = []
        if account is not None:
            wanted.append(_impersonating(user, "serviceaccounts", account[1], namespace=account[0]))
        else:
            wanted.append(_impersonating(user, "users", name))
        wanted += [_impersonating(user, "groups", group) for group in groups]
        for key, values in extra.items():
            wanted += [
                _impersonating(user, "userextras", value, group="authentication.k8s.io", subresource=key)
                for value in values
            ]
        if uid:
            wanted.append(_impersonating(user, "uids", uid, group="authentication.k8s.io"))
        for attributes in wanted:
            decision = self.authorizer.authorize(attributes)
            if not decision.allowed:
                raise forbidden(attributes, decision.reason)
        if account is not None and not groups:
            groups = list(service_account_groups(account[0]))
        if name == ANONYMOUS.name:
            if ALL_UNAUTHENTICATED not in groups:
                groups.append(ALL_UNAUTHENTICATED)
        elif ALL_AUTHENTICATED not in groups and ALL_UNAUTHENTICATED not in groups:
            groups.append(ALL_AUTHENTICATED)
        return UserInfo(name, uid, tuple(groups), {key: tuple(values) for key, values in extra.items()})


def _impersonating(
    user: UserInfo, resource: str, name: str, *, namespace: str = "", group: str = "", subresource: str = ""
) -> Attributes:
    return Attributes(user, "impersonate", "", True, namespace, group, "", resource, subresource, name)


async def _refuse(scope: Scope, receive: Receive, send: Send, error: ApiError) -> None:
    """Answer with the error's Status; a WebSocket (exec, attach, port-forward) is refused before the upgrade."""
    response = status_response(error)
    if scope["type"] == "websocket":
        await WebSocket(scope, receive, send).send_denial_response(response)
    else:
        await response(scope, receive, send)


@dataclass(frozen=True)
class AccessControl:
    """Everything that decides who may do what, built once per server over its cluster."""

    authenticator: Authenticator
    authorizer: RBACAuthorizer
    reviews: Reviews

    @property
    def tokens(self) -> ServiceAccountTokens:
        """The ServiceAccount token signer (the kubelet asks it for the tokens it projects)."""
        return self.authenticator.tokens

    @classmethod
    def for_cluster(cls, cluster: Cluster, admin_token: str, signing_key: Path) -> AccessControl:
        """Authentication by `admin_token` and signed ServiceAccount tokens, RBAC over `cluster`'s store, and
        the admission steps (ServiceAccount token volumes, RBAC escalation) added to its pipeline."""
        authenticator = Authenticator(admin_token, ServiceAccountTokens(signing_key, cluster.store))
        authorizer = RBACAuthorizer(cluster.store)
        # The ServiceAccount plugin runs before webhooks (the sidecar injector), as upstream's plugin order has it.
        cluster.mutating_admission.insert(0, ServiceAccountAdmission(cluster))
        cluster.validating_admission.append(EscalationCheck(authorizer))
        return cls(authenticator, authorizer, Reviews(cluster, authenticator, authorizer))
