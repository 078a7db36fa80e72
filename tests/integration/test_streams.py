"""exec, attach, cp and port-forward against a real localcluster, with kubectl 1.37 (WebSockets:
`v5.channel.k8s.io`, SPDY tunnelled for port-forward) and the official Python client
(`v5`/`v4.channel.k8s.io`)."""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import websocket
import yaml
from kubernetes.client import CoreV1Api
from kubernetes.stream import portforward, stream

from localcluster.settings import PROJECT_IMAGE
from tests.integration.conftest import LocalCluster, eventually

pytestmark = pytest.mark.integration

NAMESPACE = "bookstore"
HTTP_SERVER = str(Path(__file__).parent / "podprograms" / "http_server.py")
POD = "shell"


def _manifests() -> str:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "shell-data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": PROJECT_IMAGE,
                    "command": ["python", HTTP_SERVER],
                    "env": [{"name": "GREETING", "value": "hello from the pod"}],
                    "workingDir": "/data",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "shell-data"}}],
        },
    }
    return "\n---\n".join(json.dumps(document) for document in (claim, pod))


@pytest.fixture(scope="module")
def shell(cluster: LocalCluster) -> LocalCluster:
    cluster.kubectl("apply", "-f", "-", input=_manifests())
    cluster.kubectl("wait", "--for=condition=Ready", f"pod/{POD}", "--timeout=60s")
    return cluster


def release(client: websocket.WebSocket) -> None:
    """Close a finished session's socket: websocket-client skips that when the server closed the
    WebSocket first (as the apiserver does when a command ends)."""
    client.shutdown()


def test_exec_runs_in_the_pods_world_and_reports_the_exit_code(shell: LocalCluster) -> None:
    script = 'echo "$GREETING"; pwd; echo "$LOCALCLUSTER_POD_IP"; echo oops >&2; exit 3'
    result = shell.kubectl("exec", POD, "--", "sh", "-c", script, check=False)
    greeting, cwd, address = result.stdout.splitlines()
    assert greeting == "hello from the pod"
    assert cwd.endswith("/volumes/bookstore/shell-data")  # workingDir /data: the claim's volume
    pod = json.loads(shell.kubectl("get", "pod", POD, "-o", "json").stdout)
    assert address == pod["status"]["podIP"]
    assert result.returncode == 3
    assert "oops" in result.stderr
    assert "command terminated with exit code 3" in result.stderr


def test_exec_with_stdin(shell: LocalCluster) -> None:
    result = shell.kubectl("exec", "-i", POD, "--", "sh", "-c", "tr a-z A-Z; echo done", input="books\n")
    assert result.stdout == "BOOKS\ndone\n"


def test_exec_of_a_missing_program_says_so(shell: LocalCluster) -> None:
    result = shell.kubectl("exec", POD, "--", "no-such-program", check=False)
    assert result.returncode != 0
    assert 'exec: "no-such-program": executable file not found in $PATH' in result.stderr


TTY_CHECK = ["sh", "-c", "read go; test -t 0 && echo terminal; stty size"]


def interactive(connect: Any, pod: str, *, tty: bool, **command: Any) -> Any:
    """An exec or attach session of the official client with stdin (and stderr unless on a terminal)."""
    return stream(
        connect, pod, NAMESPACE, stdin=True, stdout=True, stderr=not tty, tty=tty, _preload_content=False, **command
    )


def test_exec_with_a_tty_through_the_python_client(shell: LocalCluster, core: CoreV1Api) -> None:
    session = interactive(core.connect_get_namespaced_pod_exec, POD, tty=True, command=TTY_CHECK)
    session.write_channel(4, json.dumps({"Width": 101, "Height": 33}))
    session.write_stdin("go\n")  # after the resize, so the command sees the new size
    session.run_forever(timeout=30)
    output = session.read_stdout()
    release(session.sock)
    assert session.returncode == 0
    assert "terminal" in output
    assert "33 101" in output


def test_exec_through_the_python_client_with_stdin_closed(shell: LocalCluster, core: CoreV1Api) -> None:
    session = interactive(core.connect_get_namespaced_pod_exec, POD, tty=False, command=["sh", "-c", "wc -c; exit 4"])
    session.write_stdin("twelve bytes")
    session.close_channel(0)  # v5: stdin's end
    session.run_forever(timeout=30)
    release(session.sock)
    assert session.read_stdout().strip() == "12"
    assert session.returncode == 4


def test_cp_both_ways_through_a_volume(shell: LocalCluster, tmp_path: Path) -> None:
    source = tmp_path / "catalogue"
    (source / "fiction").mkdir(parents=True)
    (source / "fiction" / "00001.txt").write_text("未来架构\n")
    (tmp_path / "note.txt").write_text("a note\n")
    shell.kubectl("cp", str(source), f"{POD}:/data/catalogue")
    shell.kubectl("cp", str(tmp_path / "note.txt"), f"{POD}:/data/note.txt")
    listed = shell.kubectl("exec", POD, "--", "cat", "/data/catalogue/fiction/00001.txt", "/data/note.txt").stdout
    assert listed == "未来架构\na note\n"
    back = tmp_path / "back"
    shell.kubectl("cp", f"{POD}:/data", str(back))
    assert (back / "catalogue" / "fiction" / "00001.txt").read_text() == "未来架构\n"
    assert (back / "note.txt").read_text() == "a note\n"
    shell.kubectl("cp", f"{POD}:/data/note.txt", str(tmp_path / "single.txt"))
    assert (tmp_path / "single.txt").read_text() == "a note\n"


def kubectl_port_forward(cluster: LocalCluster, port: int) -> subprocess.Popen[str]:
    return cluster.kubectl_streaming("port-forward", f"pod/{POD}", f":{port}")


def local_port(forward: subprocess.Popen[str], remote: int) -> int:
    """The local port kubectl chose, from its first line ("Forwarding from 127.0.0.1:N -> remote")."""
    assert forward.stdout is not None
    line = forward.stdout.readline()
    match = re.search(rf"127\.0\.0\.1:(\d+) -> {remote}", line)
    assert match, f"kubectl port-forward said {line!r}"
    return int(match.group(1))


def test_kubectl_port_forward_relays_http(shell: LocalCluster) -> None:
    with kubectl_port_forward(shell, 8080) as forward:
        try:
            port = local_port(forward, 8080)
            with httpx.Client(trust_env=False, timeout=10) as client:
                for _ in range(3):  # one SPDY stream pair per connection, over one tunnel
                    response = client.get(f"http://127.0.0.1:{port}/env/GREETING", headers={"Connection": "close"})
                    assert response.status_code == 200
                    assert response.text == "hello from the pod"
        finally:
            forward.terminate()


def test_kubectl_port_forward_to_a_closed_port_reports_the_error(shell: LocalCluster) -> None:
    with kubectl_port_forward(shell, 9) as forward:
        try:
            with socket.create_connection(("127.0.0.1", local_port(forward, 9)), timeout=10) as connection:
                connection.settimeout(10)
                assert connection.recv(1) == b""
            _, errors = forward.communicate(timeout=20)
        finally:
            forward.kill()
    assert "error forwarding port 9" in errors
    assert "connection refused" in errors


def test_python_client_port_forward(shell: LocalCluster, core: CoreV1Api) -> None:
    forward = portforward(core.connect_get_namespaced_pod_portforward, POD, NAMESPACE, ports="8080")
    connection = forward.socket(8080)
    connection.setblocking(True)
    connection.sendall(b"GET /env/GREETING HTTP/1.0\r\nHost: pod\r\n\r\n")
    received = b""
    while chunk := connection.recv(4096):
        received += chunk
    connection.close()
    eventually(lambda: not forward.connected, "the server to end the port-forward WebSocket")
    release(forward.websocket)
    assert received.startswith(b"HTTP/1.0 200")
    assert received.endswith(b"hello from the pod")
    assert forward.error(8080) is None


def test_attach_streams_output_and_feeds_stdin(shell: LocalCluster) -> None:
    program = "import sys\nfor line in sys.stdin: print('got', line.strip(), flush=True)\nprint('bye')"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "reader"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": PROJECT_IMAGE,
                    "command": ["python", "-u", "-c", program],
                    "stdin": True,
                    "stdinOnce": True,
                }
            ],
        },
    }
    shell.kubectl("apply", "-f", "-", input=json.dumps(pod))
    shell.kubectl("wait", "--for=condition=Ready", "pod/reader", "--timeout=60s")
    result = shell.kubectl("attach", "-i", "reader", input="one\ntwo\n")
    assert "got one\ngot two\nbye\n" in result.stdout
    # stdinOnce: the session's end closed the container's stdin, so it finished.
    eventually(
        lambda: "Completed" in shell.kubectl("get", "pod", "reader", "--no-headers").stdout, "reader to complete"
    )
    assert shell.kubectl("logs", "reader").stdout == "got one\ngot two\nbye\n"


def test_streams_are_refused_with_a_status(shell: LocalCluster) -> None:
    missing = shell.kubectl("exec", "nobody", "--", "true", check=False)
    assert 'pods "nobody" not found' in missing.stderr
    wrong = shell.kubectl("exec", POD, "-c", "sidecar", "--", "true", check=False)
    assert "container sidecar is not valid for pod shell" in wrong.stderr
    with shell.http() as client:  # no WebSocket upgrade: kubectl's SPDY fallback
        response = client.post(f"/api/v1/namespaces/{NAMESPACE}/pods/{POD}/exec?command=true")
    assert response.status_code == 400
    assert "WebSockets" in response.json()["message"]


def test_a_stream_needs_the_token(shell: LocalCluster) -> None:
    server = yaml.safe_load(shell.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    url = server.replace("https://", "wss://") + f"/api/v1/namespaces/{NAMESPACE}/pods/{POD}/exec?command=true"
    options = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(shell.home / "pki" / "ca.crt")}
    # Without a token the caller is system:anonymous, whom RBAC refuses; a wrong token is not a caller at all.
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, sslopt=options, subprotocols=["v5.channel.k8s.io"], timeout=10)
    assert refused.value.status_code == 403
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(
            url, sslopt=options, subprotocols=["v5.channel.k8s.io"], header=["Authorization: Bearer wrong"], timeout=10
        )
    assert refused.value.status_code == 401


def test_kubectl_run_interactive_and_removed(shell: LocalCluster) -> None:
    program = "import sys; print('read', sys.stdin.read().strip()); sys.exit(3)"
    result = shell.kubectl(
        *("run", "reader-once", "-i", "--rm", "--restart=Never", f"--image={PROJECT_IMAGE}"),
        *("--", "python", "-c", program),
        input="books\n",
        check=False,
    )
    assert "read books" in result.stdout
    assert result.returncode == 3  # the container's exit code, as kubectl run reports it
    assert 'pod "reader-once" deleted' in result.stdout
    gone = shell.kubectl("get", "pod", "reader-once", check=False)
    assert "NotFound" in gone.stderr or "not found" in gone.stderr


def test_attach_to_a_container_with_a_terminal(shell: LocalCluster, core: CoreV1Api) -> None:
    program = (
        "import os, sys; line = sys.stdin.readline().strip(); cols, rows = os.get_terminal_size(0); "
        "print(f'tty={os.isatty(1)} size={cols}x{rows} line={line}')"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "terminal"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": PROJECT_IMAGE,
                    "command": ["python", "-c", program],
                    "stdin": True,
                    "tty": True,
                }
            ],
        },
    }
    shell.kubectl("apply", "-f", "-", input=json.dumps(pod))
    shell.kubectl("wait", "--for=condition=Ready", "pod/terminal", "--timeout=60s")
    session = interactive(core.connect_get_namespaced_pod_attach, "terminal", tty=True)
    session.write_channel(4, json.dumps({"Width": 77, "Height": 22}))
    session.write_stdin("ahoy\n")
    session.run_forever(timeout=30)
    output = session.read_stdout()
    release(session.sock)
    assert "tty=True size=77x22 line=ahoy" in output.replace("\r", "")
