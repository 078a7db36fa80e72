"""A failing notebook cell as one clear paragraph, its traceback folded underneath.

A skipped step used to fill the next cell with a 145-line traceback from inside the kubernetes client
or httpx. Once `labkit.connect()` ran in a kernel, an exception a cell raises is shown as a paragraph
saying what went wrong in the attendee's terms (a variable from a cell that has not run, what the API
or a service answered, as text, not escaped JSON), with the full traceback in a fold below. The
error itself still reaches Jupyter as an error (one line), so papermill, nbgrader and JupyterLab see
the cell fail as before.
"""

from __future__ import annotations

import html
import json
import re
import traceback
from types import TracebackType
from typing import Any

from labkit._text import message_text, rich_text

_NAME = re.compile(r"name '([^']+)' is not defined")
_RED = "#c62828"


def explain(error: BaseException) -> str:
    """What went wrong, in one paragraph written for the attendee."""
    import httpx
    from kubernetes.client.exceptions import ApiException

    if isinstance(error, NameError):
        found = _NAME.search(str(error))
        name = f"`{found[1]}`" if found else "A name this cell uses"
        return (
            f"{name} is not defined yet: an earlier cell makes it, and that cell has not run (or it failed). "
            "Run the cells above this one first (Run ▸ Run All Above Selected Cell), then this one again."
        )
    if isinstance(error, ApiException):
        return f"The Kubernetes API answered {error.status} {error.reason or ''}: {_status_message(error)}".rstrip()
    if isinstance(error, httpx.HTTPStatusError):
        request, response = error.request, error.response
        return f"{request.method} {request.url} answered {response.status_code}: {_body_text(response.text)}"
    if isinstance(error, httpx.TransportError):
        where = _request_url(error)
        return (
            f"Could not reach {where}: {error}. If the cluster is down, start it again with `lab up` "
            "(in a terminal); this notebook goes on without a restart."
        )
    message = str(error).strip() or "(no message)"
    return f"{type(error).__name__}: {message}"


def install() -> None:
    """In a Jupyter kernel, show cell errors the labkit way from now on (once per kernel)."""
    from labkit._progress import in_kernel

    if not in_kernel():
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or Exception in (shell.custom_exceptions or ()):
        return
    shell.set_custom_exc((Exception,), _show)


def _show(
    shell: Any, kind: type[BaseException], error: BaseException, trace: TracebackType | None, tb_offset: Any = None
) -> list[str]:
    """IPython's custom exception handler: display the paragraph, then the error itself in one line.

    IPython does not report what a custom handler returns, so the error output (what JupyterLab shows
    red, what papermill and nbgrader count) is sent here, as ipykernel sends any traceback.
    """
    from IPython.display import display

    paragraph = explain(error)
    full = "".join(traceback.format_exception(kind, error, trace))
    display(
        {
            "text/plain": f"This cell stopped: {paragraph}",
            "text/html": (
                f'<div class="labkit-error" style="border-left:6px solid {_RED};padding:4px 10px">'
                f'<div style="color:{_RED};font-weight:bold">This cell stopped</div>'
                f"<div>{rich_text(paragraph)}</div>"
                f"<details><summary>Traceback</summary><pre>{html.escape(full)}</pre></details></div>"
            ),
        },
        raw=True,
    )
    short = [f"{kind.__name__}: {error}"]
    shell._showtraceback(kind, error, short)
    return short


def _status_message(error: Any) -> str:
    try:
        status = json.loads(error.body or "")
    except (TypeError, ValueError):
        return str(error.reason or "")
    return str(status.get("message") or error.reason) if isinstance(status, dict) else str(error.reason)


def _body_text(body: str) -> str:
    return message_text(body) or "(empty answer)"


def _request_url(error: Any) -> str:
    try:
        return str(error.request.url)
    except RuntimeError:  # httpx raises it when the error carries no request
        return "the service"
