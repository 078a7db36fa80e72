"""The bookstore's admin token: a Secret in your namespace, mounted into the monolith and the storefront.

The admin API (``/admin/modules``: install, activate and uninstall ranking modules) obeys only callers
that send the key ``token`` of the Secret ``bookstore-admin`` as a bearer token. The Deployments mount
that Secret as a file, so the Secret must exist before their pods can start::

    labkit.ensure_admin_secret()                         # once per namespace: a random token
    ctx.http.get("http://storefront/admin/modules", headers=labkit.admin_headers())

The token is never written in a manifest: ``ensure_admin_secret`` makes a random one, and whoever may
read Secrets in the namespace (you, through the Kubernetes API) may use it. Holding it means being
able to run Python inside the monolith and the storefront, since a ranking module is code.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import TYPE_CHECKING

from labkit._default import resolve

if TYPE_CHECKING:
    from checkers import Context

__all__ = ["ADMIN_SECRET", "TOKEN_KEY", "AdminTokenMissing", "admin_headers", "admin_token", "ensure_admin_secret"]

ADMIN_SECRET = "bookstore-admin"
TOKEN_KEY = "token"


class AdminTokenMissing(LookupError):
    """The namespace has no usable admin Secret; the message says how to make one."""


def ensure_admin_secret(connection: Context | None = None) -> bool:
    """Create the Secret ``bookstore-admin`` with a random token unless the namespace has it; True if created."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    ctx = resolve(connection)
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(name=ADMIN_SECRET, labels={"app.kubernetes.io/part-of": "bookstore"}),
        type="Opaque",
        string_data={TOKEN_KEY: secrets.token_urlsafe(32)},
    )
    try:
        ctx.core.create_namespaced_secret(ctx.namespace, secret)
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True


def admin_token(connection: Context | None = None) -> str:
    """The admin token, read from the Secret through the Kubernetes API (AdminTokenMissing if there is none)."""
    from kubernetes.client.exceptions import ApiException

    ctx = resolve(connection)
    try:
        secret = ctx.core.read_namespaced_secret(ADMIN_SECRET, ctx.namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
        raise AdminTokenMissing(
            f"there is no Secret {ADMIN_SECRET!r} in namespace {ctx.namespace!r}: create it with "
            "`labkit.ensure_admin_secret()`, then restart the pods that mount it"
        ) from None
    encoded = (secret.data or {}).get(TOKEN_KEY)
    try:
        token = base64.b64decode(encoded or "", validate=True).decode().strip()
    except (binascii.Error, UnicodeDecodeError):
        token = ""
    if not token:
        raise AdminTokenMissing(
            f"the Secret {ADMIN_SECRET!r} in namespace {ctx.namespace!r} has no key {TOKEN_KEY!r}: delete it "
            "(`kubectl delete secret bookstore-admin`) and run `labkit.ensure_admin_secret()` again"
        )
    return token


def admin_headers(connection: Context | None = None) -> dict[str, str]:
    """``{"Authorization": "Bearer <admin token>"}``, for calls to ``/admin/...``."""
    return {"Authorization": f"Bearer {admin_token(connection)}"}
