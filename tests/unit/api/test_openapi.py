"""The OpenAPI documents kubectl reads, and how they are served (hash URLs, ETags, Accept)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from localcluster.api.openapi import OpenAPIDocuments, crd_definition_name, group_version_path, openapi_routes
from localcluster.api.protobuf._wire import fields
from localcluster.api.schemas import SchemaIndex

PROTOBUF_V3 = "application/com.github.proto-openapi.spec.v3@v1.0+protobuf"


@pytest.fixture(scope="module")
def documents(index: SchemaIndex) -> OpenAPIDocuments:
    return OpenAPIDocuments(index)


class Client:
    """Requests to the routes in process, over httpx's ASGI transport (no sockets, no server to stop)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def get(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        async def fetch() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://localcluster") as client:
                return await client.get(url, headers=headers)

        return asyncio.run(fetch())


@pytest.fixture(scope="module")
def client(index: SchemaIndex) -> Client:
    return Client(Starlette(routes=openapi_routes(index)))


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def resolve(schemas: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a property's `$ref` or single `allOf` ref, as kubectl's patch code does."""
    if node.get("allOf"):
        node = node["allOf"][0]
    ref = node.get("$ref")
    return schemas[ref.removeprefix("#/components/schemas/")] if ref else node


def test_the_v3_root_lists_every_group_version(documents: OpenAPIDocuments, index: SchemaIndex) -> None:
    root = documents.root_v3()
    expected = {group_version_path(t.group, version) for t in index.registry for version in t.versions}
    assert set(root["paths"]) == expected
    assert {"api/v1", "apis/apps/v1", "apis/serving.knative.dev/v1", "apis/networking.istio.io/v1beta1"} <= expected
    for path, entry in root["paths"].items():
        assert entry["serverRelativeURL"] == f"/openapi/v3/{path}?hash={documents.group_version(path)[1]}"


def test_every_served_kind_has_a_schema_with_its_gvk(documents: OpenAPIDocuments, index: SchemaIndex) -> None:
    for resource_type in index.registry:
        for version in resource_type.versions:
            document = documents.group_version_document(group_version_path(resource_type.group, version))
            gvk = {"group": resource_type.group, "version": version, "kind": resource_type.kind}
            carriers = [
                name
                for name, schema in document["components"]["schemas"].items()
                if gvk in schema.get("x-kubernetes-group-version-kind", ())
            ]
            assert carriers, gvk
            # Reviews are only created: their POST carries what PATCH carries for the others.
            operation = "patch" if "patch" in resource_type.verbs else "post"
            patches = [
                item[operation]
                for item in document["paths"].values()
                if item.get(operation, {}).get("x-kubernetes-group-version-kind") == gvk
            ]
            assert patches, gvk
            # kubectl --validate=strict only trusts the server when PATCH declares fieldValidation.
            assert any(p["name"] == "fieldValidation" and p["in"] == "query" for p in patches[0]["parameters"])


def test_crd_schemas_are_named_as_the_apiserver_names_them(documents: OpenAPIDocuments) -> None:
    assert crd_definition_name("serving.knative.dev", "v1", "Service") == "dev.knative.serving.v1.Service"
    schemas = documents.group_version_document("apis/networking.istio.io/v1beta1")["components"]["schemas"]
    virtual_service = schemas["io.istio.networking.v1beta1.VirtualService"]
    assert virtual_service["x-kubernetes-group-version-kind"] == [
        {"group": "networking.istio.io", "kind": "VirtualService", "version": "v1beta1"}
    ]
    metadata = virtual_service["properties"]["metadata"]
    assert metadata["allOf"] == [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]
    assert "io.istio.networking.v1beta1.VirtualServiceList" in schemas


def test_refs_all_resolve_in_every_document(documents: OpenAPIDocuments, index: SchemaIndex) -> None:
    for path in documents.root_v3()["paths"]:
        document = documents.group_version_document(path)
        schemas = document["components"]["schemas"]
        for ref in refs(document):
            assert ref.startswith("#/components/schemas/"), ref
            assert ref.removeprefix("#/components/schemas/") in schemas, (path, ref)


def test_types_are_openapi_types_not_json_schema_unions(documents: OpenAPIDocuments) -> None:
    schemas = documents.group_version_document("apis/apps/v1")["components"]["schemas"]
    deployment = schemas["io.k8s.api.apps.v1.Deployment"]
    assert deployment["type"] == "object"
    assert deployment["properties"]["kind"] == {
        "description": deployment["properties"]["kind"]["description"],
        "type": "string",
    }
    assert schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["replicas"]["type"] == "integer"
    int_or_string = schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert int_or_string == {"format": "int-or-string", "oneOf": [{"type": "integer"}, {"type": "string"}]}
    for ref in refs(schemas):
        assert "$defs" not in ref


def test_deployment_containers_carry_the_patch_merge_key(documents: OpenAPIDocuments) -> None:
    schemas = documents.group_version_document("apis/apps/v1")["components"]["schemas"]
    node = schemas["io.k8s.api.apps.v1.Deployment"]
    for field in ("spec", "template", "spec"):
        node = resolve(schemas, node["properties"][field])
    containers = node["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]


def test_patch_content_types_tell_kubectl_which_patch_to_build(documents: OpenAPIDocuments) -> None:
    apps = documents.group_version_document("apis/apps/v1")["paths"]
    deployment = apps["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in deployment["requestBody"]["content"]
    assert deployment["x-kubernetes-action"] == "patch"
    assert deployment["operationId"] == "patchAppsV1NamespacedDeployment"
    knative = documents.group_version_document("apis/serving.knative.dev/v1")["paths"]
    service = knative["/apis/serving.knative.dev/v1/namespaces/{namespace}/services/{name}"]["patch"]
    assert set(service["requestBody"]["content"]) == {
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
    }


def test_paths_and_actions_follow_scope_and_subresources(documents: OpenAPIDocuments) -> None:
    core = documents.group_version_document("api/v1")["paths"]
    assert core["/api/v1/namespaces/{namespace}/pods"]["get"]["x-kubernetes-action"] == "list"
    assert core["/api/v1/namespaces/{namespace}/pods"]["post"]["x-kubernetes-action"] == "post"
    assert core["/api/v1/namespaces/{namespace}/pods"]["delete"]["x-kubernetes-action"] == "deletecollection"
    assert core["/api/v1/pods"]["get"]["operationId"] == "listCoreV1PodForAllNamespaces"
    assert "/api/v1/namespaces/{namespace}/pods/{name}/log" in core
    assert core["/api/v1/namespaces/{name}"]["get"]["operationId"] == "readCoreV1Namespace"
    apps = documents.group_version_document("apis/apps/v1")["paths"]
    scale = apps["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["put"]
    assert scale["x-kubernetes-group-version-kind"] == {"group": "autoscaling", "kind": "Scale", "version": "v1"}


def test_v2_is_swagger_with_definitions(documents: OpenAPIDocuments) -> None:
    body, etag = documents.v2
    document = json.loads(body)
    assert document["swagger"] == "2.0"
    definitions = document["definitions"]
    assert "dev.knative.serving.v1.Service" in definitions
    assert "io.k8s.api.apps.v1.Deployment" in definitions
    for ref in refs(document):
        assert ref.startswith("#/definitions/") and ref.removeprefix("#/definitions/") in definitions, ref
    int_or_string = definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert int_or_string == {"format": "int-or-string", "type": "string"}
    patch = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in patch["consumes"]
    assert any(parameter["in"] == "body" for parameter in patch["parameters"])
    assert len(etag) == 128


# Serving.


def test_root_is_json_with_an_etag(client: Client) -> None:
    response = client.get("/openapi/v3", headers={"Accept": "application/json, */*"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["etag"].startswith('"')
    assert "apis/apps/v1" in response.json()["paths"]


def test_hashed_document_is_immutable_and_revalidates(client: Client) -> None:
    url = client.get("/openapi/v3").json()["paths"]["apis/apps/v1"]["serverRelativeURL"]
    response = client.get(url, headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, immutable"
    assert response.headers["vary"] == "Accept"
    assert response.json()["openapi"] == "3.0.0"
    again = client.get(url, headers={"Accept": "application/json", "If-None-Match": response.headers["etag"]})
    assert again.status_code == 304


def test_a_stale_hash_redirects_to_the_current_one(client: Client) -> None:
    response = client.get("/openapi/v3/apis/apps/v1?hash=STALE")
    assert response.status_code == 301
    current = client.get("/openapi/v3").json()["paths"]["apis/apps/v1"]["serverRelativeURL"]
    assert response.headers["location"] == current


def test_v3_protobuf_with_json_gets_json_and_protobuf_alone_gets_406(client: Client) -> None:
    both = client.get("/openapi/v3/api/v1", headers={"Accept": f"{PROTOBUF_V3}, application/json;q=0.9"})
    assert both.status_code == 200
    assert both.headers["content-type"] == "application/json"
    only = client.get("/openapi/v3/api/v1", headers={"Accept": PROTOBUF_V3})
    assert only.status_code == 406
    assert only.json()["kind"] == "Status"
    assert only.json()["code"] == 406


def test_v2_protobuf_is_served_as_kube_openapi_serves_it(client: Client) -> None:
    v2 = client.get("/openapi/v2", headers={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
    assert v2.status_code == 200
    assert v2.headers["content-type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    document = {number: value for number, _, value in fields(v2.content)}
    assert document[1] == b"2.0"  # gnostic Document.swagger = 1; the content is tested in test_protobuf.py


def test_unknown_group_version_is_a_404_status(client: Client) -> None:
    response = client.get("/openapi/v3/apis/autoscaling/v2")
    assert response.status_code == 404
    assert response.json()["reason"] == "NotFound"


def test_v2_is_served_as_json(client: Client) -> None:
    response = client.get("/openapi/v2", headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.json()["swagger"] == "2.0"
