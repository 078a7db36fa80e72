"""Cell errors explained in one paragraph: what went wrong in the attendee's terms, JSON shown as text."""

from __future__ import annotations

import json

import httpx
from kubernetes.client.exceptions import ApiException

from labkit._errors import explain


def test_a_name_from_a_cell_that_did_not_run() -> None:
    said = explain(NameError("name 'order' is not defined"))
    assert said.startswith("`order` is not defined yet: an earlier cell makes it")
    assert "Run All Above Selected Cell" in said


def test_an_http_error_shows_the_body_as_text() -> None:
    request = httpx.Request("POST", "http://storefront/admin/modules")
    body = json.dumps({"error": "module_exists", "message": 'by-price@1.0.0 is "already" installed'})
    response = httpx.Response(409, text=body, request=request)
    said = explain(httpx.HTTPStatusError("409", request=request, response=response))
    assert said == 'POST http://storefront/admin/modules answered 409: by-price@1.0.0 is "already" installed'


def test_the_kubernetes_api_says_why_in_its_status_message() -> None:
    refused = ApiException(status=422, reason="Unprocessable Entity")
    refused.body = json.dumps({"kind": "Status", "message": 'Pod "hello" is invalid: spec: Forbidden'})
    assert (
        explain(refused)
        == 'The Kubernetes API answered 422 Unprocessable Entity: Pod "hello" is invalid: spec: Forbidden'
    )


def test_anything_else_is_its_type_and_message() -> None:
    assert explain(ValueError("bad count")) == "ValueError: bad count"
