"""What the browser tests do in JupyterLab as an attendee: open a lab, type into cells, run, read panels."""

from __future__ import annotations

import re

import nbformat
import pytest
from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from checkers import Status
from labkit import release
from tests.notebooks.course import grade_id

#: Milliseconds (playwright's unit) for the page to react, and for cells that talk to the cluster.
UI_TIMEOUT = 60_000
RUN_TIMEOUT = 180_000
#: How JupyterLab marks cell errors and anything written to stderr.
STDERR = "application/vnd.jupyter.stderr"


def css_colour(hex_colour: str) -> str:
    """#1b873f as a browser's computed style says it: rgb(27, 135, 63)."""
    red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


def cell_positions(lab: str) -> dict[str, int]:
    """Where each nbgrader cell sits in the released notebook, by grade_id."""
    notebook = nbformat.read(release.LABS / f"{lab}.ipynb", as_version=4)
    return {cell_id: index for index, cell in enumerate(notebook.cells) if (cell_id := grade_id(cell))}


def open_lab(page: Page, url: str, lab: str) -> None:
    page.goto(url)
    page.locator(".jp-DirListing-item", has_text=f"{lab}.ipynb").dblclick(timeout=UI_TIMEOUT)
    wait_until_idle(page)


def cell(page: Page, position: int) -> Locator:
    return page.locator(".jp-Notebook .jp-Cell").nth(position)


def type_into_cell(page: Page, position: int, code: str) -> None:
    """Replace a cell's code as the attendee would, and leave that cell selected."""
    cell(page, position).locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(code)
    page.keyboard.press("Escape")


def run_from_menu(page: Page, item: str) -> None:
    """Run ▸ `item`; the menu is opened again when a click right after typing did not open it."""
    entry = page.locator(".lm-Menu-itemLabel").get_by_text(item, exact=True)
    for _ in range(3):
        page.locator("#jp-menu-panel .lm-MenuBar-itemLabel").get_by_text("Run", exact=True).click()
        try:
            entry.wait_for(state="visible", timeout=5_000)
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            continue
        entry.click()
        expect(entry).to_be_hidden(timeout=UI_TIMEOUT)
        return
    pytest.fail(f"the Run menu did not offer {item!r}", pytrace=False)


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


def bring_into_sight(page: Page, element: Locator, attempts: int = 5) -> None:
    """Scroll `element` to the middle of the notebook until it is wholly in sight.

    JupyterLab draws long notebooks in windows and measures cells as their outputs arrive, so one
    scroll can land off by the height of outputs drawn meanwhile; no wait for a stable element either,
    for lines redrawn every second (a live wait's line) never are.
    """
    for _ in range(attempts):
        element.evaluate("node => node.scrollIntoView({block: 'center'})", timeout=5_000)
        try:
            expect(element).to_be_in_viewport(ratio=1, timeout=1_000)
            return
        except AssertionError:
            continue
    pytest.fail(f"{element} stays out of sight after {attempts} scrolls", pytrace=False)
