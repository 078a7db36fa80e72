"""A released lab run by an attendee who did nothing: every check answers FAILED with a hint, none crashes.

Each labs/ notebook (the attendee's version) runs on a fresh localcluster the way an attendee who
only runs the checks would: its setup cells (everything before the first cell the attendee writes)
and then each graded check cell. Every check must show a verdict panel, FAILED with a hint for
what the attendee has not done (or PASSED for what the environment provides), and no check cell may
raise: an empty namespace is the most ordinary state a grader meets.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from labkit import release
from tests.notebooks.conftest import LocalCluster
from tests.notebooks.test_solutions import PANEL_LINE

pytestmark = pytest.mark.notebooks

RELEASED = sorted(release.LABS.glob(release.LAB_NOTEBOOKS))
CELL_TIMEOUT = 240
CHECK_CALL = re.compile(r'^labkit\.check\("\d\d\.\d+"\)\s*$')
#: A panel's first hint: "Hint:" alone, or "Hint 1 of 3:" when the hints climb a ladder.
FIRST_HINT = re.compile(r"^\s*Hint( 1 of \d+)?: \S", re.MULTILINE)


def only_setup_and_checks(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook as an attendee who did nothing runs it: setup cells, then the check cells."""
    kept, seen_work = [], False
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        nbgrader = cell.metadata.get("nbgrader", {})
        seen_work = seen_work or bool(nbgrader.get("solution"))
        if not seen_work or CHECK_CALL.match(cell.source.strip()):
            kept.append(cell)
    notebook.cells = kept
    return notebook


@pytest.mark.parametrize("released", RELEASED, ids=lambda path: path.stem)
def test_every_check_of_an_untouched_lab_is_a_verdict_with_a_hint(
    released: Path, lab_cluster: LocalCluster, tmp_path: Path
) -> None:
    notebook = only_setup_and_checks(nbformat.read(released, as_version=4))
    NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": tmp_path}},
    ).execute()
    for cell in notebook.cells:
        errors = [f"{o.ename}: {o.evalue}" for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{released.name}: {cell.source!r} raised {errors}"
        if not CHECK_CALL.match(cell.source.strip()):
            continue
        text = "".join(output.get("data", {}).get("text/plain", "") for output in cell.outputs)
        verdict = PANEL_LINE.search(text)
        assert verdict is not None, f"{released.name}: {cell.source!r} showed no verdict: {text!r}"
        assert verdict["status"] in ("FAILED", "PASSED"), f"{released.name}: {text}"
        if verdict["status"] == "FAILED":
            assert FIRST_HINT.search(text), f"{released.name}: {verdict['check_id']} FAILED without a hint: {text}"
