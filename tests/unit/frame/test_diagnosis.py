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


def test_a_challenge_tells_the_symptom_and_keeps_the_cause_for_after_where_to_look() -> None:
    found = Diagnosis(
        "Service balance",
        Outlook.STUCK,
        Problem.CONNECTION_REFUSED,
        "nothing listens on 9090",
        "`kubectl get endpoints balance`",
    )
    verdict = found.failed(symptom="The storefront cannot reach balance.")
    assert verdict.message == "The storefront cannot reach balance."
    assert verdict.hints[0] == "Where to look: `kubectl get endpoints balance`"
    assert verdict.hints[1] == "What it shows: Nothing listens on 9090."


def test_an_answer_knows_success() -> None:
    assert Answer(204, "").ok and not Answer(404, "no").ok


class HealthServer:
    """A pod's app on loopback that answers its readiness probe with `status` (a real HTTP server)."""

    def __init__(self, status: int) -> None:
        import http.server
        import threading

        answer = status

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b'{"status": "ok"}'
                self.send_response(answer)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def slow_starter(port: int) -> tuple[object, object, list[object]]:
    """A pod whose container has run a minute, its readiness probe failing once while it started."""
    from datetime import UTC, datetime, timedelta

    from kubernetes import client

    started = datetime.now(UTC) - timedelta(seconds=60)
    probe = client.V1Probe(http_get=client.V1HTTPGetAction(path="/health", port=port), period_seconds=2)
    container = client.V1Container(name="web", image="workshop", readiness_probe=probe)
    status = client.V1ContainerStatus(
        name="web",
        image="workshop",
        image_id="",
        ready=False,
        restart_count=0,
        state=client.V1ContainerState(running=client.V1ContainerStateRunning(started_at=started)),
    )
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="web-1", namespace="bookstore"),
        spec=client.V1PodSpec(containers=[container]),
        status=client.V1PodStatus(pod_ip="127.0.0.1", container_statuses=[status]),
    )
    failed = client.CoreV1Event(
        metadata=client.V1ObjectMeta(name="web-1.probe"),
        involved_object=client.V1ObjectReference(kind="Pod", name="web-1"),
        reason="Unhealthy",
        message='Readiness probe failed: Get "http://127.0.0.1/health": connect: connection refused',
        last_timestamp=started + timedelta(seconds=1),
    )
    return pod, status, [failed]


@pytest.mark.parametrize(("answers", "outlook"), [(200, Outlook.PROGRESSING), (404, Outlook.STUCK)])
def test_a_probe_that_failed_while_starting_is_judged_by_what_the_app_answers_now(
    answers: int, outlook: Outlook
) -> None:
    """Under load a service can take longer to listen than its probe allows: if it answers now, it will be Ready."""
    from types import SimpleNamespace

    import httpx

    from checkers.diagnosis._pods import _not_ready_yet

    server = HealthServer(answers)
    try:
        pod, status, events = slow_starter(server.port)
        with httpx.Client(trust_env=False) as http:
            seen = _not_ready_yet(SimpleNamespace(http=http), pod, status, events, "web", {}, "look")  # type: ignore[arg-type]
    finally:
        server.close()
    assert seen.outlook is outlook, seen.summary
