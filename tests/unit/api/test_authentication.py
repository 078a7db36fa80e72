"""ServiceAccount tokens in-process: what a token says, and every way it stops being valid."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from localcluster.api.authentication import (
    ADMIN,
    ANONYMOUS,
    API_AUDIENCES,
    Authenticator,
    InvalidCredentials,
    ServiceAccountTokens,
)
from localcluster.api.cluster import Cluster


@pytest.fixture
def tokens(tmp_path: Path, cluster: Cluster) -> ServiceAccountTokens:
    return ServiceAccountTokens(tmp_path / "pki" / "sa.key", cluster.store)


def service_account(cluster: Cluster, name: str = "jupyter", namespace: str = "bookstore") -> dict:
    return cluster.create(
        cluster.registry.get("", "serviceaccounts"), "v1", namespace, {"metadata": {"name": name}}
    ).obj


def test_a_token_names_its_service_account_and_groups(cluster: Cluster, tokens: ServiceAccountTokens) -> None:
    account = service_account(cluster)
    issued = tokens.issue(account, audiences=list(API_AUDIENCES), expiration_seconds=3600)
    user = tokens.authenticate(issued.token)
    assert user is not None
    assert user.name == "system:serviceaccount:bookstore:jupyter"
    assert user.uid == account["metadata"]["uid"]
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:bookstore", "system:authenticated")
    assert user.extra["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")
    assert abs(issued.expiration.timestamp() - (time.time() + 3600)) < 5


def test_a_kubelet_token_lives_a_year_but_says_when_to_refresh(cluster: Cluster, tokens: ServiceAccountTokens) -> None:
    account = service_account(cluster)
    pod = cluster.create(
        cluster.registry.get("", "pods"),
        "v1",
        "bookstore",
        {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
    ).obj
    issued = tokens.issue(account, audiences=list(API_AUDIENCES), expiration_seconds=3607, bound=pod)
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 365 * 24 * 3600
    assert claims["kubernetes.io"]["warnafter"] - claims["iat"] == 3607
    assert claims["kubernetes.io"]["pod"] == {"name": "web", "uid": pod["metadata"]["uid"]}
    user = tokens.authenticate(issued.token)
    assert user is not None and user.extra["authentication.kubernetes.io/pod-name"] == ("web",)
    cluster.delete(cluster.registry.get("", "pods"), "bookstore", "web", grace_period=0)
    with pytest.raises(InvalidCredentials, match="bound to is gone"):
        tokens.authenticate(issued.token)


def test_a_token_dies_with_its_service_account_even_if_one_of_that_name_returns(
    cluster: Cluster, tokens: ServiceAccountTokens
) -> None:
    token = tokens.issue(service_account(cluster), audiences=list(API_AUDIENCES), expiration_seconds=3600).token
    assert tokens.authenticate(token) is not None
    cluster.delete(cluster.registry.get("", "serviceaccounts"), "bookstore", "jupyter")
    with pytest.raises(InvalidCredentials, match="no longer exists"):
        tokens.authenticate(token)
    service_account(cluster)  # same name, new uid
    with pytest.raises(InvalidCredentials, match="no longer exists"):
        tokens.authenticate(token)


def test_expired_foreign_and_misaddressed_tokens_are_refused(
    tmp_path: Path, cluster: Cluster, tokens: ServiceAccountTokens
) -> None:
    account = service_account(cluster)
    expired = tokens.issue(account, audiences=list(API_AUDIENCES), expiration_seconds=-60).token
    with pytest.raises(InvalidCredentials, match="expired"):
        tokens.authenticate(expired)
    elsewhere = ServiceAccountTokens(tmp_path / "other" / "sa.key", cluster.store)
    foreign = elsewhere.issue(account, audiences=list(API_AUDIENCES), expiration_seconds=3600).token
    assert tokens.authenticate(foreign) is None  # not signed by this cluster's key
    vault = tokens.issue(account, audiences=["vault"], expiration_seconds=3600).token
    with pytest.raises(InvalidCredentials, match=r"(?i)audience"):
        tokens.authenticate(vault)
    assert tokens.authenticate(vault, ("vault",)) is not None
    header, payload, signature = tokens.issue(
        account, audiences=list(API_AUDIENCES), expiration_seconds=600
    ).token.split(".")
    with pytest.raises(InvalidCredentials):
        tokens.authenticate(f"{header}.{payload}.{signature[:-4]}AAAA")


def test_the_signing_key_is_private_and_kept(tmp_path: Path, cluster: Cluster, tokens: ServiceAccountTokens) -> None:
    key = tmp_path / "pki" / "sa.key"
    assert key.stat().st_mode & 0o777 == 0o600
    token = tokens.issue(service_account(cluster), audiences=list(API_AUDIENCES), expiration_seconds=600).token
    assert ServiceAccountTokens(key, cluster.store).authenticate(token) is not None  # after a restart


def test_the_authenticator_knows_the_admin_anonymous_and_refuses_the_rest(tokens: ServiceAccountTokens) -> None:
    authenticator = Authenticator("s3cret", tokens)
    assert authenticator.authenticate(b"Bearer s3cret") is ADMIN and ADMIN.privileged
    assert authenticator.authenticate(None) is ANONYMOUS
    for header in (b"Bearer nope", b"Basic dXNlcjpwYXNz", b"Bearer "):
        with pytest.raises(InvalidCredentials):
            authenticator.authenticate(header)
