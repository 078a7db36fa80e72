"""The `lab` command: start, stop and inspect localcluster (and, through the course frame, the labs).

This is where the stack is composed, and the one module of localcluster that imports the course
frame: the `lab` group attaches labkit.cli's commands (check, solve, reset LAB, release, collect,
grade, progress). Nothing else in localcluster imports labkit, and labkit never imports localcluster
(tests/unit/test_layers.py holds both to it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import click
import httpx
import psutil
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential

from labkit.cli import COMMANDS as COURSE_FRAME_COMMANDS
from labkit.cli import reset_command as reset_lab_command
from localcluster import processes, state
from localcluster.settings import CONTEXT_NAME, DEFAULT_NAMESPACE, Settings


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    envvar="LAB_HOME",
    type=click.Path(file_okay=False, path_type=Path),
    help="State directory (kubeconfig, object store, logs). Default: $LAB_HOME or a per-user state directory.",
)
@click.pass_context
def main(ctx: click.Context, home: Path | None) -> None:
    """Run the Cloud Native Bookstore workshop.

    \b
    lab up          start localcluster, the embedded Kubernetes-compatible cluster
    lab status      what runs, where, and the pods
    lab kubeconfig  the kubeconfig path, for kubectl and the kubernetes client
    lab check 00    check a lab's steps against the live cluster (exit 0/1/2)
    lab hint 00.3   the next hint of a check, up to the literal fix
    lab solve 00    do what a lab's solution does; lab reset 00 undoes it
    lab jupyter     JupyterLab as `make run` opens it
    lab down        stop localcluster and everything it started
    lab reset       stop and forget all state

    \b
    For instructors:
    lab release --course DIR   release every lab into an nbgrader course
    lab collect HOMES          collect submissions; lab grade grades them
    lab progress               which checks pass now, per attendee
    """
    settings = Settings.from_env()
    if home is not None:
        settings = Settings(**{**settings.__dict__, "home": home.expanduser().resolve()})
    ctx.obj = settings


def _client(settings: Settings, server: state.ServerState, timeout: float = 5.0) -> httpx.Client:
    return httpx.Client(
        base_url=server.url,
        verify=ssl.create_default_context(cafile=str(settings.home / "pki" / "ca.crt")),
        headers={"Authorization": f"Bearer {state.token(settings)}"},
        timeout=timeout,
        trust_env=False,
    )


def _ready(settings: Settings, server: state.ServerState) -> bool:
    try:
        with _client(settings, server, timeout=2.0) as client:
            return client.get("/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def _port_owner(host: str, port: int) -> str:
    """Who holds host:port: another localcluster (and its LAB_HOME) or some other program."""
    try:
        answer = httpx.get(f"https://{host}:{port}/localcluster", verify=False, timeout=1.0, trust_env=False)
        home = answer.json().get("home")
        if home:
            return f"localcluster is already running there with another LAB_HOME ({home})"
    except (httpx.HTTPError, ValueError, AttributeError):
        pass
    return "another program is listening there"


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@main.command()
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="API port (default: a free one).")
@click.option("--host", default=None, help="Loopback address to listen on (default 127.0.0.1).")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait for the API.")
@click.option(
    "--target",
    type=click.Choice(["local", "cluster"]),
    default="local",
    show_default=True,
    help="local: start localcluster; cluster: connect the CLI and labkit to a real cluster instead.",
)
@click.option("--context", default=None, help="With --target cluster: the kubeconfig context (default: current).")
@click.option("--kubeconfig", "kubeconfig_path", default=None, help="With --target cluster: the kubeconfig file.")
@click.option("--ingress", default="", help="With --target cluster: the ingress gateway's URL from here (kind's).")
@click.pass_context
def up(
    ctx: click.Context,
    port: int | None,
    host: str | None,
    timeout: float,
    target: str,
    context: str | None,
    kubeconfig_path: str | None,
    ingress: str,
) -> None:
    """Start localcluster in the background and wait until its API answers (running it twice is harmless),
    or, with --target cluster, connect to a real cluster that infra/cluster/bootstrap.py prepared."""
    settings = _settings(ctx)
    if target == "cluster":
        _connect_cluster(settings, context, kubeconfig_path, ingress)
        return
    host = host or settings.host
    if not host.startswith("127."):
        raise click.ClickException(f"localcluster listens on loopback addresses only (127.0.0.0/8), not {host}")
    try:
        state.ensure_home(settings)
        running = state.read_state(settings)
    except state.StateError as exc:
        raise click.ClickException(str(exc)) from None
    if running is not None and _ready(settings, running):
        click.echo(f"localcluster is already running (pid {running.pid}).")
        _describe(settings, running)
        return
    # A server killed without `lab down` may have left pods behind: stop them before starting anew.
    processes.sweep(settings.home)
    if port and not _port_free(host, port):
        raise click.ClickException(f"port {port} on {host} is in use: {_port_owner(host, port)}")
    env = {
        **os.environ,
        "LAB_HOME": str(settings.home),
        "LOCALCLUSTER_HOST": host,
        "LOCALCLUSTER_PORT": str(port or settings.port),
        "LAB_SHARED_DIR": str(settings.shared_dir),
    }
    started = time.monotonic()
    with settings.server_log_path.open("ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "localcluster.server"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    click.echo(f"Starting localcluster (LAB_HOME={settings.home}) ...", err=True)

    def check() -> state.ServerState | None:
        if child.poll() is not None:
            raise click.ClickException(f"localcluster failed to start: {_last_log_line(settings)}")
        server = state.read_state(settings)
        return server if server is not None and server.pid == child.pid and _ready(settings, server) else None

    waiting = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_exponential(multiplier=0.01, max=0.25),
        retry=retry_if_result(lambda server: server is None),
    )
    try:
        server = waiting(check)
    except RetryError:
        _stop(settings, child.pid)
        raise click.ClickException(
            f"localcluster did not answer within {timeout:g} s; see {settings.server_log_path}"
        ) from None
    click.echo(f"localcluster is up in {time.monotonic() - started:.1f} s (pid {server.pid}).")
    _describe(settings, server)


#: What the labs need on a real cluster, and what installs it.
_REQUIRED_CRDS = ("services.serving.knative.dev", "virtualservices.networking.istio.io")


def _connect_cluster(settings: Settings, context: str | None, kubeconfig_path: str | None, ingress: str) -> None:
    """Check the cluster answers and has Knative and Istio, make the workshop's namespace, record the target."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    try:
        api = config.new_client_from_config(config_file=kubeconfig_path, context=context, persist_config=False)
    except (OSError, config.ConfigException) as exc:
        raise click.ClickException(f"cannot use kubeconfig context {context or '(current)'}: {exc}") from None
    name = context or config.list_kube_config_contexts(config_file=kubeconfig_path)[1]["name"]
    try:
        version = client.VersionApi(api).get_code()
        extensions = client.ApiextensionsV1Api(api)
        for crd in _REQUIRED_CRDS:
            try:
                extensions.read_custom_resource_definition(crd)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                raise click.ClickException(
                    f"{crd} is not served on context {name}: install Knative Serving and Istio with "
                    f"`python infra/cluster/bootstrap.py up --context {name}`"
                ) from None
        core = client.CoreV1Api(api)
        try:
            core.read_namespace(DEFAULT_NAMESPACE)
        except ApiException as exc:
            if exc.status != 404:
                raise
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=DEFAULT_NAMESPACE)))
    except ApiException as exc:
        raise click.ClickException(f"the cluster of context {name} refused: {exc.status} {exc.reason}") from None
    except OSError as exc:
        raise click.ClickException(f"the cluster of context {name} does not answer: {exc}") from None
    finally:
        api.close()
    state.ensure_home(settings)
    state.write_target(
        settings, state.ClusterTarget(name, str(Path(kubeconfig_path).resolve()) if kubeconfig_path else "", ingress)
    )
    click.echo(f"Connected to context {name} (Kubernetes {version.git_version}); labkit and `lab check` use it.")
    click.echo(f"namespace:  {DEFAULT_NAMESPACE}")
    click.echo(f"ingress:    {ingress or 'not reachable from here (in-cluster hosts only)'}")
    click.echo("`lab down` disconnects (the cluster stays; infra/cluster/bootstrap.py down removes it).")


def _last_log_line(settings: Settings) -> str:
    try:
        lines = [line for line in settings.server_log_path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log was written"
    return lines[-1] if lines else "no log was written"


def _describe(settings: Settings, server: state.ServerState) -> None:
    click.echo(f"API:        {server.url}")
    click.echo(f"proxy:      {server.proxy or 'not running'}  (HTTP_PROXY for http://SERVICE/ URLs)")
    click.echo(f"context:    {CONTEXT_NAME}")
    click.echo(f"namespace:  {DEFAULT_NAMESPACE}")
    click.echo(f"kubeconfig: {settings.kubeconfig_path}")
    click.echo(f"Use it with: export KUBECONFIG={settings.kubeconfig_path}")


def _stop(settings: Settings, pid: int, grace: float = 20.0) -> None:
    """Ask the server to stop (it stops its pods), then make sure its whole group is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
        psutil.Process(pid).wait(timeout=grace)
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass
    except psutil.TimeoutExpired:
        processes.stop_group(os.getpgid(pid), grace=0)
    state.clear_state(settings, pid)


@main.command()
@click.pass_context
def down(ctx: click.Context) -> None:
    """Stop localcluster and every process it started (pods included)."""
    settings = _settings(ctx)
    if state.forget_target(settings):
        click.echo("Disconnected from the real cluster (it keeps running).")
    server = state.read_state(settings)
    if server is not None:
        click.echo(f"Stopping localcluster (pid {server.pid}) ...", err=True)
        _stop(settings, server.pid)
    left = processes.sweep(settings.home)
    if server is None and not left:
        click.echo(f"localcluster is not running (LAB_HOME={settings.home}).")
        return
    click.echo("localcluster stopped." + (f" Stopped {left} leftover process group(s)." if left else ""))


@main.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show localcluster's components, its URLs and the pods. Exit 1 if it is not running."""
    settings = _settings(ctx)
    server = state.read_state(settings)
    if server is None:
        click.echo(f"localcluster: stopped (LAB_HOME={settings.home}). Start it with `lab up`.")
        ctx.exit(1)
    uptime = time.time() - server.started
    healthy = "ready" if _ready(settings, server) else "NOT ANSWERING"
    click.echo(f"localcluster  {healthy}  {server.url}  pid {server.pid}  up {int(uptime)} s")
    click.echo(f"kubeconfig    {settings.kubeconfig_path}  (context {CONTEXT_NAME}, namespace {DEFAULT_NAMESPACE})")
    click.echo(f"proxy         {server.proxy or 'not running'}")
    if healthy != "ready":
        ctx.exit(1)
    with _client(settings, server) as client:
        table = client.get("/api/v1/pods", headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).json()
    rows = table.get("rows", [])
    if not rows:
        click.echo("pods          none")
        return
    click.echo("pods:")
    names = [c["name"] for c in table["columnDefinitions"] if c.get("priority", 0) == 0]
    cells = [["NAMESPACE", *(n.upper() for n in names)]]
    for row in rows:
        namespace = row["object"]["metadata"].get("namespace", "")
        cells.append([namespace, *(str(c) for c in row["cells"][: len(names)])])
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    for row_cells in cells:
        click.echo("  " + "   ".join(c.ljust(w) for c, w in zip(row_cells, widths, strict=True)).rstrip())


@main.command()
@click.pass_context
def kubeconfig(ctx: click.Context) -> None:
    """Print the kubeconfig's path (last line), e.g. `export KUBECONFIG=$(lab kubeconfig)`."""
    settings = _settings(ctx)
    if not settings.kubeconfig_path.exists():
        raise click.ClickException(f"no kubeconfig yet in {settings.home}: run `lab up` first")
    click.echo(str(settings.kubeconfig_path))


@main.command()
@click.argument("lab", required=False, metavar="[LAB]")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (when clearing all state).")
@click.pass_context
def reset(ctx: click.Context, lab: str | None, yes: bool) -> None:
    """Reset one lab to its starting state (`lab reset 01`), or, without LAB, stop localcluster and
    delete all its state: every object, log and credential."""
    if lab is not None:
        ctx.invoke(reset_lab_command, selector=lab)
        return
    settings = _settings(ctx)
    if not yes:
        click.confirm(f"Delete every object and log in {settings.home}?", abort=True)
    ctx.invoke(down)
    for name in ("store.sqlite", "store.sqlite-wal", "store.sqlite-shm", "kubeconfig", "token", "localcluster.json"):
        (settings.home / name).unlink(missing_ok=True)
    for directory in ("logs", "pki", "run", "pods", "volumes"):
        shutil.rmtree(settings.home / directory, ignore_errors=True)
    click.echo(f"State cleared in {settings.home}.")


# The course frame's commands; its `reset LAB` is reached through localcluster's own `reset` above.
for _command in COURSE_FRAME_COMMANDS:
    if _command is not reset_lab_command:
        main.add_command(_command)

if __name__ == "__main__":
    main()
