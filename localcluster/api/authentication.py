"""Who is asking: the kubeconfig's token, ServiceAccount tokens, and anonymous requests.

As the apiserver's authenticators in a kind cluster:

* the kubeconfig's bearer token is the cluster's administrator, `kubernetes-admin` in the group
  `system:masters` (which no authorizer can refuse, so it stays cluster-admin whatever RBAC says);
* ServiceAccount tokens are JWTs this cluster signs (`$LAB_HOME/pki/sa.key`, ES256) through the
  TokenRequest API (`serviceaccounts/<name>/token`) and the token the kubelet projects into pods. A
  token is valid while it is unexpired, meant for this API (its audience) and while the
  ServiceAccount, and the pod or Secret it is bound to, still exist with the uid it names;
* a request without credentials is `system:anonymous` (group `system:unauthenticated`), which RBAC
  lets read `/version` and the health endpoints only; a credential that is not valid is a 401.

The user of the request being served is in `current_user` (None in the server's own components:
controllers and the kubelet write as the system, which nothing refuses).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from localcluster.store import Store

#: The issuer and audience of ServiceAccount tokens, kind's defaults (`--service-account-issuer`).
ISSUER = "https://kubernetes.default.svc.cluster.local"
API_AUDIENCES = (ISSUER,)
ALL_AUTHENTICATED = "system:authenticated"
ALL_UNAUTHENTICATED = "system:unauthenticated"
PRIVILEGED_GROUP = "system:masters"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
#: What the kubelet asks for a projected token; the apiserver stretches such tokens to a year and adds
#: `warnafter` (upstream's `--service-account-extend-token-expiration`, on by default).
WARN_ONLY_EXPIRATION_SECONDS = 3607
EXTENDED_EXPIRATION_SECONDS = 365 * 24 * 3600
_POD_NAME = "authentication.kubernetes.io/pod-name"
_POD_UID = "authentication.kubernetes.io/pod-uid"
_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"


@dataclass(frozen=True)
class UserInfo:
    """An authenticated (or anonymous) user, as the apiserver's `user.Info`."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False, compare=False)

    @property
    def privileged(self) -> bool:
        return PRIVILEGED_GROUP in self.groups

    def to_dict(self) -> dict[str, Any]:
        """As `UserInfo` in TokenReview and SelfSubjectReview status (empty fields omitted)."""
        info: dict[str, Any] = {"username": self.name}
        if self.uid:
            info["uid"] = self.uid
        if self.groups:
            info["groups"] = list(self.groups)
        if self.extra:
            info["extra"] = {key: list(values) for key, values in self.extra.items()}
        return info


ADMIN = UserInfo("kubernetes-admin", groups=(PRIVILEGED_GROUP, ALL_AUTHENTICATED))
ANONYMOUS = UserInfo("system:anonymous", groups=(ALL_UNAUTHENTICATED,))

#: The user of the API request being served; None for the server's own components.
current_user: ContextVar[UserInfo | None] = ContextVar("current_user", default=None)


class InvalidCredentials(Exception):
    """A credential was presented and is not valid (the apiserver answers 401 Unauthorized)."""


def service_account_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def split_service_account(username: str) -> tuple[str, str] | None:
    """(namespace, name) of a `system:serviceaccount:<ns>:<name>` user name, else None."""
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    namespace, _, name = username[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
    return (namespace, name) if namespace and name and ":" not in name else None


def service_account_groups(namespace: str) -> tuple[str, ...]:
    return ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", ALL_AUTHENTICATED)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    #: When the requester should consider it expired (a kubelet's token lives longer, see above).
    expiration: datetime


@dataclass(frozen=True)
class _Verified:
    user: UserInfo
    expires: float
    service_account: tuple[str, str, str]  # namespace, name, uid
    bound: tuple[str, str, str] | None  # key ("core/pods"), name, uid


class ServiceAccountTokens:
    """Signs and verifies ServiceAccount JWTs with the cluster's key (made once per `$LAB_HOME`)."""

    def __init__(self, key_path: Path, store: Store) -> None:
        self.store = store
        self._key = _load_or_create_key(key_path)
        public = self._key.public_key()
        self._public_key = public
        der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self._key_id = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
        self._verified: dict[str, _Verified] = {}

    def issue(
        self,
        service_account: dict[str, Any],
        *,
        audiences: list[str],
        expiration_seconds: int,
        bound: dict[str, Any] | None = None,
    ) -> IssuedToken:
        """A token for `service_account`, optionally bound to a Pod or Secret (valid while it exists)."""
        metadata = service_account["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        now = int(time.time())
        lifetime = expiration_seconds
        private: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": {"name": name, "uid": metadata["uid"]},
        }
        if bound is not None:
            bound_meta = bound["metadata"]
            private[bound["kind"].lower()] = {"name": bound_meta["name"], "uid": bound_meta["uid"]}
            if bound["kind"] == "Pod" and expiration_seconds == WARN_ONLY_EXPIRATION_SECONDS:
                lifetime = EXTENDED_EXPIRATION_SECONDS
                private["warnafter"] = now + expiration_seconds
        claims = {
            "aud": audiences,
            "exp": now + lifetime,
            "iat": now,
            "nbf": now,
            "iss": ISSUER,
            "jti": str(uuid.uuid4()),
            "sub": service_account_username(namespace, name),
            "kubernetes.io": private,
        }
        token = jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self._key_id})
        return IssuedToken(token, datetime.fromtimestamp(now + expiration_seconds, UTC))

    def authenticate(self, token: str, audiences: tuple[str, ...] = API_AUDIENCES) -> UserInfo | None:
        """The user of a ServiceAccount token; None if it is not one of ours; InvalidCredentials if not valid."""
        cached = self._verified.get(token) if audiences == API_AUDIENCES else None
        if cached is None:
            cached = self._verify(token, audiences)
            if cached is None:
                return None
            if audiences == API_AUDIENCES:
                if len(self._verified) > 10_000:
                    self._verified.clear()
                self._verified[token] = cached
        if cached.expires <= time.time():
            self._verified.pop(token, None)
            raise InvalidCredentials("the token has expired")
        self._check_alive(cached)
        return cached.user

    def _verify(self, token: str, audiences: tuple[str, ...]) -> _Verified | None:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            return None
        if header.get("kid") != self._key_id:
            return None
        try:
            claims = jwt.decode(
                token,
                self._public_key,
                algorithms=["ES256"],
                audience=list(audiences),
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "aud"]},
            )
        except jwt.InvalidTokenError as exc:
            raise InvalidCredentials(f"invalid bearer token: {exc}") from None
        private = claims.get("kubernetes.io") or {}
        account = private.get("serviceaccount") or {}
        namespace, name, uid = private.get("namespace", ""), account.get("name", ""), account.get("uid", "")
        if claims["sub"] != service_account_username(namespace, name):
            raise InvalidCredentials("invalid bearer token: the subject does not name its service account")
        extra: dict[str, tuple[str, ...]] = {_CREDENTIAL_ID: (f"JTI={claims.get('jti', '')}",)}
        bound: tuple[str, str, str] | None = None
        for kind, key in (("pod", "core/pods"), ("secret", "core/secrets")):
            reference = private.get(kind)
            if reference:
                bound = (key, reference.get("name", ""), reference.get("uid", ""))
                if kind == "pod":
                    extra[_POD_NAME] = (bound[1],)
                    extra[_POD_UID] = (bound[2],)
        user = UserInfo(claims["sub"], uid, service_account_groups(namespace), extra)
        return _Verified(user, float(claims["exp"]), (namespace, name, uid), bound)

    def _check_alive(self, verified: _Verified) -> None:
        """Upstream's legacy lookups: a token dies with its ServiceAccount and with the object it is bound to."""
        namespace, name, uid = verified.service_account
        account = self.store.get("core/serviceaccounts", namespace, name)
        if account is None or account.obj["metadata"].get("uid") != uid:
            raise InvalidCredentials(f'service account "{namespace}/{name}" no longer exists')
        if account.obj["metadata"].get("deletionTimestamp"):
            raise InvalidCredentials(f'service account "{namespace}/{name}" is being deleted')
        if verified.bound is not None:
            key, bound_name, bound_uid = verified.bound
            entry = self.store.get(key, namespace, bound_name)
            if entry is None or entry.obj["metadata"].get("uid") != bound_uid:
                raise InvalidCredentials(f'the {key.split("/")[1][:-1]} "{bound_name}" the token is bound to is gone')


class Authenticator:
    """The authenticators of the API, in upstream's order: bearer tokens, then anonymous."""

    def __init__(self, admin_token: str, tokens: ServiceAccountTokens) -> None:
        self._admin = admin_token.encode()
        self.tokens = tokens

    def authenticate(self, authorization: bytes | None) -> UserInfo:
        """The user of a request's `Authorization` header; InvalidCredentials for a bad credential."""
        if not authorization:
            return ANONYMOUS
        scheme, _, credential = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not credential.strip():
            raise InvalidCredentials("only bearer tokens are accepted")
        credential = credential.strip()
        if hmac.compare_digest(credential, self._admin):
            return ADMIN
        try:
            text = credential.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidCredentials("invalid bearer token") from None
        user = self.tokens.authenticate(text)
        if user is None:
            raise InvalidCredentials("invalid bearer token")
        return user


def _load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The ServiceAccount signing key (`sa.key`, as kubeadm names it), created on first use, mode 0600."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path} is not an EC private key")
        return key
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(pem)
    temporary.replace(path)
    return key
