"""An attendee does lab 00 in JupyterLab: the check panels turn red, then green.

The test opens labs/00-setup.ipynb (the student version) from JupyterLab's file browser, types the
code of the cells the attendee completes (taken from solutions/), and runs the notebook from the Run
menu against localcluster. First step 4 is left undone: its check panel is red with a hint. Then the
attendee completes it and runs from there on: every panel is green. Screenshots of both moments are
kept under test-artifacts/browser/.
"""

from __future__ import annotations

import re

import nbformat
import pytest
from playwright.sync_api import Locator, Page, expect

from checkers import Status, find_lab
from labkit import release
from labkit._panel import COLOURS
from tests.browser.conftest import SCREENSHOTS, JupyterLab
from tests.notebooks.course import attendee_solutions, grade_id

pytestmark = pytest.mark.browser

LAB = "00-setup"
#: Milliseconds (playwright's unit) for the page to react, and for cells that talk to the cluster.
UI_TIMEOUT = 60_000
RUN_TIMEOUT = 180_000
#: How JupyterLab marks cell errors and anything written to stderr.
STDERR = "application/vnd.jupyter.stderr"


def css_colour(hex_colour: str) -> str:
    """#1b873f as a browser's computed style says it: rgb(27, 135, 63)."""
    red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


def cell_positions() -> dict[str, int]:
    """Where each cell the attendee completes sits in the released notebook, by nbgrader grade_id."""
    notebook = nbformat.read(release.LABS / f"{LAB}.ipynb", as_version=4)
    return {cell_id: index for index, cell in enumerate(notebook.cells) if (cell_id := grade_id(cell))}


def type_into_cell(page: Page, position: int, code: str) -> None:
    """Replace a cell's code as the attendee would, and leave that cell selected."""
    page.locator(".jp-Notebook .jp-Cell").nth(position).locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(code)
    page.keyboard.press("Escape")


def run_from_menu(page: Page, item: str) -> None:
    page.locator("#jp-menu-panel .lm-MenuBar-itemLabel").get_by_text("Run", exact=True).click()
    page.locator(".lm-Menu-itemLabel").get_by_text(item, exact=True).click()


def panel_header(page: Page, check_id: str) -> Locator:
    """The coloured first line of a check's panel, rendered as a widget."""
    header = re.compile(rf"^\S {re.escape(check_id)} ({'|'.join(Status)}): ")
    return page.locator(".jp-OutputArea-output .widget-html-content > div > div").filter(has_text=header)


def await_panel(page: Page, check_id: str) -> Locator:
    """The check's panel header once shown; a cell error on the way fails at once, with its text."""
    header = panel_header(page, check_id)
    errors = page.locator(f".jp-OutputArea-output[data-mime-type='{STDERR}']")
    expect(header.or_(errors).first).to_be_visible(timeout=RUN_TIMEOUT)
    if errors.count():
        pytest.fail(f"a cell failed before check {check_id} was shown:\n{errors.first.inner_text()}", pytrace=False)
    return header


def wait_until_idle(page: Page) -> None:
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1, timeout=RUN_TIMEOUT)


def test_an_attendee_sees_a_skipped_step_red_with_a_hint_then_every_check_green(
    jupyterlab: JupyterLab, browser_page: Page
) -> None:
    page = browser_page
    solution = attendee_solutions(release.SOLUTIONS / f"{LAB}.ipynb")
    positions = cell_positions()
    check_ids = [one.check_id for one in find_lab(LAB).checks]

    page.goto(jupyterlab.login_url())
    page.locator(".jp-DirListing-item", has_text=f"{LAB}.ipynb").dblclick(timeout=UI_TIMEOUT)
    wait_until_idle(page)

    # Step 3 done, step 4 not yet: its check is red and says what to do.
    type_into_cell(page, positions["apply-hello-pod"], solution["apply-hello-pod"])
    type_into_cell(page, positions["replace-hello-pod"], "# I will do this later\n")
    run_from_menu(page, "Run All Cells")
    skipped = await_panel(page, "00.4")
    expect(skipped).to_contain_text("00.4 FAILED")
    expect(skipped).to_have_css("color", css_colour(COLOURS[Status.FAILED]))
    expect(skipped.locator("xpath=..")).to_contain_text("Hint: Pods cannot be changed in place")
    wait_until_idle(page)
    skipped.scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "lab00-step-skipped.png")

    # The attendee completes step 4 and runs on from there.
    type_into_cell(page, positions["replace-hello-pod"], solution["replace-hello-pod"])
    run_from_menu(page, "Run Selected Cell and All Below")
    for check_id in check_ids:
        header = await_panel(page, check_id)
        expect(header).to_contain_text(f"{check_id} PASSED", timeout=RUN_TIMEOUT)
        expect(header).to_have_css("color", css_colour(COLOURS[Status.PASSED]))
    wait_until_idle(page)
    expect(page.locator(".jp-OutputArea-output", has_text=re.compile(r"\d\d\.\d+ (FAILED|ERROR):"))).to_have_count(0)
    expect(page.locator(f".jp-OutputArea-output[data-mime-type='{STDERR}']")).to_have_count(0)
    panel_header(page, check_ids[-1]).scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "lab00-all-green.png")
