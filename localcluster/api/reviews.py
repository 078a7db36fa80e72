"""The kinds that are answered, never stored: access reviews, TokenReview, SelfSubjectReview and TokenRequest.

    kubectl auth can-i list pods --as=system:serviceaccount:a:default   # SelfSubjectAccessReview
    kubectl auth can-i --list                                          # SelfSubjectRulesReview
    kubectl auth whoami                                                # SelfSubjectReview
    kubectl create token default                                       # serviceaccounts/default/token

Each takes the object a client POSTs and returns it with its `status` filled (201), as the apiserver's
REST handlers of authorization.k8s.io, authentication.k8s.io and `serviceaccounts/token` do: the
caller is `current_user` (after impersonation), access is decided by the same authorizer as every
request, tokens come from the same signer the kubelet uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from localcluster.api.authentication import (
    API_AUDIENCES,
    Authenticator,
    InvalidCredentials,
    UserInfo,
    current_user,
)
from localcluster.api.authorization import Attributes, RBACAuthorizer
from localcluster.api.cluster import Cluster, now
from localcluster.api.errors import BadRequest, Cause, Conflict, invalid, not_found
from localcluster.api.resources import ResourceType

JsonObject = dict[str, Any]
_MIN_EXPIRATION_SECONDS = 600
_MAX_EXPIRATION_SECONDS = 1 << 32
_DEFAULT_EXPIRATION_SECONDS = 3600
#: What a token may be bound to, and where such objects are stored.
_BINDABLE = {"Pod": "pods", "Secret": "secrets"}


@dataclass(frozen=True)
class Review:
    """One answerable kind: its upstream definition (for decoding) and the function that answers it."""

    kind: str
    definition: str
    answer: Callable[[JsonObject, str, str], JsonObject]  # (body, namespace, name) -> status or object


class Reviews:
    """Answers the POSTs of the create-only kinds; `answer()` is called by the resource handlers."""

    def __init__(self, cluster: Cluster, authenticator: Authenticator, authorizer: RBACAuthorizer) -> None:
        self.cluster = cluster
        self.authenticator = authenticator
        self.authorizer = authorizer
        authorization, authentication = "io.k8s.api.authorization.v1", "io.k8s.api.authentication.v1"
        self._reviews: dict[tuple[str, str, str], Review] = {
            ("authorization.k8s.io", "selfsubjectaccessreviews", ""): Review(
                "SelfSubjectAccessReview", f"{authorization}.SelfSubjectAccessReview", self._self_access
            ),
            ("authorization.k8s.io", "subjectaccessreviews", ""): Review(
                "SubjectAccessReview", f"{authorization}.SubjectAccessReview", self._subject_access
            ),
            ("authorization.k8s.io", "localsubjectaccessreviews", ""): Review(
                "LocalSubjectAccessReview", f"{authorization}.LocalSubjectAccessReview", self._local_subject_access
            ),
            ("authorization.k8s.io", "selfsubjectrulesreviews", ""): Review(
                "SelfSubjectRulesReview", f"{authorization}.SelfSubjectRulesReview", self._self_rules
            ),
            ("authentication.k8s.io", "selfsubjectreviews", ""): Review(
                "SelfSubjectReview", f"{authentication}.SelfSubjectReview", self._self_subject
            ),
            ("authentication.k8s.io", "tokenreviews", ""): Review(
                "TokenReview", f"{authentication}.TokenReview", self._token_review
            ),
            ("", "serviceaccounts", "token"): Review("TokenRequest", f"{authentication}.TokenRequest", self._token),
        }

    def handles(self, resource_type: ResourceType, subresource: str) -> bool:
        return (resource_type.group, resource_type.plural, subresource) in self._reviews

    def answer(self, resource_type: ResourceType, subresource: str, namespace: str, name: str, body: Any) -> JsonObject:
        """The reviewed object, status filled in; BadRequest or Invalid for a malformed one."""
        review = self._reviews[(resource_type.group, resource_type.plural, subresource)]
        if not isinstance(body, dict):
            raise BadRequest(f"the body of the request must be a {review.kind} object")
        group = "authentication.k8s.io" if review.kind in ("TokenRequest", "TokenReview", "SelfSubjectReview") else ""
        api_version = f"{group or resource_type.group}/v1"
        if body.get("kind") not in (None, review.kind) or body.get("apiVersion") not in (None, api_version):
            raise BadRequest(
                f"the kind in the data ({body.get('apiVersion')}, {body.get('kind')}) does not match the expected kind "
                f"({api_version}, {review.kind})"
            )
        self.cluster.validator.decode(review.definition, review.kind, body)
        body["apiVersion"], body["kind"] = api_version, review.kind
        if not isinstance(body.get("metadata"), dict):
            body["metadata"] = {}
        return review.answer(body, namespace, name)

    # -- authorization.k8s.io ------------------------------------------------------------------

    def _self_access(self, review: JsonObject, _namespace: str, _name: str) -> JsonObject:
        spec = review.setdefault("spec", {})
        attributes = _attributes(spec, _caller(), "SelfSubjectAccessReview")
        review["status"] = self._decide(attributes)
        return review

    def _subject_access(self, review: JsonObject, _namespace: str, _name: str) -> JsonObject:
        spec = review.setdefault("spec", {})
        attributes = _attributes(spec, _subject(spec, "SubjectAccessReview"), "SubjectAccessReview")
        review["status"] = self._decide(attributes)
        return review

    def _local_subject_access(self, review: JsonObject, namespace: str, _name: str) -> JsonObject:
        spec = review.setdefault("spec", {})
        resource = spec.get("resourceAttributes")
        if spec.get("nonResourceAttributes") is not None or resource is None:
            raise _invalid_spec(
                "LocalSubjectAccessReview",
                "spec.resourceAttributes",
                "disallowed on this kind of request" if resource is not None else "must be specified",
            )
        resource.setdefault("namespace", namespace)
        if resource["namespace"] != namespace:
            raise _invalid_spec(
                "LocalSubjectAccessReview",
                "spec.resourceAttributes.namespace",
                "must match metadata.namespace",
            )
        review["metadata"]["namespace"] = namespace
        attributes = _attributes(spec, _subject(spec, "LocalSubjectAccessReview"), "LocalSubjectAccessReview")
        review["status"] = self._decide(attributes)
        return review

    def _decide(self, attributes: Attributes) -> JsonObject:
        decision = self.authorizer.authorize(attributes)
        status: JsonObject = {"allowed": decision.allowed}
        if decision.reason:
            status["reason"] = decision.reason
        return status

    def _self_rules(self, review: JsonObject, _namespace: str, _name: str) -> JsonObject:
        namespace = str((review.setdefault("spec", {})).get("namespace") or "")
        user = _caller()
        resource_rules: list[JsonObject] = []
        non_resource_rules: list[JsonObject] = []
        if user.privileged:
            resource_rules.append({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
            non_resource_rules.append({"verbs": ["*"], "nonResourceURLs": ["*"]})
        rule_set = self.authorizer.rules_for(user, namespace)
        for rule in rule_set.rules:
            if rule.non_resource_urls:
                non_resource_rules.append({"verbs": list(rule.verbs), "nonResourceURLs": list(rule.non_resource_urls)})
            if rule.resources:
                entry: JsonObject = {"verbs": list(rule.verbs), "apiGroups": list(rule.api_groups)}
                entry["resources"] = list(rule.resources)
                if rule.resource_names:
                    entry["resourceNames"] = list(rule.resource_names)
                resource_rules.append(entry)
        status: JsonObject = {
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            "incomplete": bool(rule_set.errors),
        }
        if rule_set.errors:
            status["evaluationError"] = ", ".join(rule_set.errors)
        review["status"] = status
        return review

    # -- authentication.k8s.io -----------------------------------------------------------------

    def _self_subject(self, review: JsonObject, _namespace: str, _name: str) -> JsonObject:
        review["status"] = {"userInfo": _caller().to_dict()}
        return review

    def _token_review(self, review: JsonObject, _namespace: str, _name: str) -> JsonObject:
        spec = review.setdefault("spec", {})
        token = str(spec.get("token") or "")
        audiences = tuple(spec.get("audiences") or API_AUDIENCES)
        status: JsonObject = {}
        user: UserInfo | None = None
        try:
            if audiences != API_AUDIENCES:
                user = self.authenticator.tokens.authenticate(token, audiences)
            elif token:
                user = self.authenticator.authenticate(f"Bearer {token}".encode())
        except InvalidCredentials as exc:
            status["error"] = str(exc)
        if user is not None:
            status.update({"authenticated": True, "user": user.to_dict(), "audiences": list(audiences)})
        elif "error" not in status:
            status["error"] = "the token is not valid for this cluster"
        review["status"] = status
        return review

    # -- serviceaccounts/token -----------------------------------------------------------------

    def _token(self, request: JsonObject, namespace: str, name: str) -> JsonObject:
        """TokenRequest: a token for ServiceAccount `name`, optionally bound to a Pod or Secret."""
        metadata = request["metadata"]
        if metadata.get("name") and metadata["name"] != name:
            raise BadRequest(f"the name of the object ({metadata['name']}) does not match the name on the URL ({name})")
        spec = request.setdefault("spec", {})
        expiration = spec.setdefault("expirationSeconds", _DEFAULT_EXPIRATION_SECONDS)
        audiences = spec.get("audiences") or list(API_AUDIENCES)
        spec["audiences"] = audiences
        causes = []
        if expiration < _MIN_EXPIRATION_SECONDS:
            causes.append(
                Cause(
                    "spec.expirationSeconds",
                    f"Invalid value: {expiration}: may not specify a duration less than 10 minutes",
                )
            )
        elif expiration > _MAX_EXPIRATION_SECONDS:
            causes.append(
                Cause(
                    "spec.expirationSeconds",
                    f"Invalid value: {expiration}: may not specify a duration larger than 2^32 seconds",
                )
            )
        if causes:
            raise invalid("TokenRequest", "", name, causes)
        service_accounts = self.cluster.registry.get("", "serviceaccounts")
        account = self.cluster.get(service_accounts, namespace, name)
        if account["metadata"].get("deletionTimestamp"):
            raise BadRequest(f'serviceaccount "{name}" is being deleted and cannot be used to create a token')
        bound = self._bound_object(spec.get("boundObjectRef"), namespace)
        issued = self.authenticator.tokens.issue(
            account, audiences=audiences, expiration_seconds=expiration, bound=bound
        )
        metadata.update({"name": name, "namespace": namespace, "creationTimestamp": now()})
        request["status"] = {
            "token": issued.token,
            "expirationTimestamp": issued.expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return request

    def _bound_object(self, reference: JsonObject | None, namespace: str) -> JsonObject | None:
        if not reference:
            return None
        kind, name = reference.get("kind", ""), reference.get("name", "")
        if kind not in _BINDABLE:
            raise invalid(
                "TokenRequest",
                "",
                name,
                [Cause("spec.boundObjectRef.kind", f'Unsupported value: "{kind}": supported values: "Pod", "Secret"')],
            )
        bound = self.cluster.find(self.cluster.registry.get("", _BINDABLE[kind]), namespace, name)
        if bound is None:
            raise not_found(_BINDABLE[kind], "", name)
        uid = reference.get("uid")
        if uid and uid != bound["metadata"]["uid"]:
            raise Conflict(
                f"the UID in the bound object reference ({uid}) does not match the UID in record "
                f"({bound['metadata']['uid']}). The object might have been deleted and then recreated",
                kind=_BINDABLE[kind],
                name=name,
            )
        return bound


def _caller() -> UserInfo:
    user = current_user.get()
    if user is None:
        raise BadRequest("no user on the request")
    return user


def _subject(spec: JsonObject, kind: str) -> UserInfo:
    """The user a (Local)SubjectAccessReview asks about."""
    user, groups = spec.get("user") or "", spec.get("groups") or []
    if not user and not groups:
        raise _invalid_spec(kind, "spec.user", 'Invalid value: "": at least one of user or group must be specified')
    extra = {key: tuple(values) for key, values in (spec.get("extra") or {}).items()}
    return UserInfo(user, spec.get("uid") or "", tuple(groups), extra)


def _attributes(spec: JsonObject, user: UserInfo, kind: str) -> Attributes:
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if resource is not None and non_resource is not None:
        raise _invalid_spec(
            kind, "spec.nonResourceAttributes", "cannot be specified in combination with resourceAttributes"
        )
    if resource is None and non_resource is None:
        raise _invalid_spec(
            kind,
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )
    if non_resource is not None:
        return Attributes(user, non_resource.get("verb") or "", non_resource.get("path") or "")
    assert resource is not None
    return Attributes(
        user,
        resource.get("verb") or "",
        "",
        True,
        resource.get("namespace") or "",
        resource.get("group") or "",
        resource.get("version") or "",
        resource.get("resource") or "",
        resource.get("subresource") or "",
        resource.get("name") or "",
    )


def _invalid_spec(kind: str, path: str, message: str) -> Exception:
    return invalid(kind, "authorization.k8s.io", "", [Cause(path, message)])
