"""The diagnosis's pure parts: reading kubectl's words, error bodies as text, the verdict's hint ladder."""

from __future__ import annotations

import json

import pytest

from checkers import Status
from checkers.diagnosis import Answer, Diagnosis, Outlook, Problem, answer_of, missing_object
from checkers.diagnosis._pods import proxy_reason


@pytest.mark.parametrize(
    ("message", "missing"),
    [
        (
            '0/1 nodes are available: persistentvolumeclaim "monolith-data" not found.',
            ("PersistentVolumeClaim", "monolith-data"),
        ),
        ('MountVolume.SetUp failed for volume "cfg" : configmap "settings" not found', ("ConfigMap", "settings")),
        ('secret "admin-token" not found', ("Secret", "admin-token")),
        ("couldn't find key RANKING in ConfigMap bookstore/monolith-settings", ("ConfigMap", "monolith-settings")),
        ("0/1 nodes are available: 1 Insufficient cpu.", None),
    ],
)
def test_the_missing_object_is_read_from_kubernetes_own_words(message: str, missing: tuple[str, str] | None) -> None:
    assert missing_object(message) == missing


def test_a_json_error_is_shown_as_its_message_not_as_escaped_json() -> None:
    body = json.dumps(
        {"code": 503, "reason": "NoReadyEndpoints", "message": 'Service "bookstore/balance" has no Ready endpoint'}
    )
    answer = answer_of(503, body)
    assert answer.text == 'Service "bookstore/balance" has no Ready endpoint'
    assert proxy_reason(answer) == "NoReadyEndpoints"
    # The app's own errors are not the proxy's, even with a 5xx.
    assert proxy_reason(answer_of(502, '{"error": "bad_gateway", "message": "balance answered 500"}')) is None
    assert answer_of(200, "not json").text == "not json"


def test_a_failed_verdict_names_the_cause_then_where_to_look_then_the_fix() -> None:
    found = Diagnosis(
        "Deployment monolith",
        Outlook.STUCK,
        Problem.CRASH_LOOP,
        "container monolith exited with code 2",
        look="`kubectl logs monolith-1 --previous`",
        fix="",
    )
    verdict = found.failed(fixes={Problem.CRASH_LOOP: "Set it: `kubectl set env deployment/monolith X=1`."})
    assert verdict.status is Status.FAILED
    assert verdict.message == "Container monolith exited with code 2."
    assert verdict.hints == (
        "Where to look: `kubectl logs monolith-1 --previous`",
        "Set it: `kubectl set env deployment/monolith X=1`.",
    )


def test_a_challenge_tells_the_symptom_and_keeps_the_cause_for_the_first_hint() -> None:
    found = Diagnosis(
        "Service balance",
        Outlook.STUCK,
        Problem.CONNECTION_REFUSED,
        "nothing listens on 9090",
        "`kubectl get endpoints balance`",
    )
    verdict = found.failed(symptom="The storefront cannot reach balance.")
    assert verdict.message == "The storefront cannot reach balance."
    assert verdict.hints[0] == "Nothing listens on 9090."
    assert verdict.hints[1].endswith("`kubectl get endpoints balance`")


def test_an_answer_knows_success() -> None:
    assert Answer(204, "").ok and not Answer(404, "no").ok
