"""An attendee does lab 00 in JupyterLab: the check panels turn red, then green.

The test opens labs/00-setup.ipynb (the student version) from JupyterLab's file browser, types the
code of the cells the attendee completes (taken from solutions/), and runs the notebook from the Run
menu against localcluster. First step 4 is left undone: its check panel is red with a hint. Then the
attendee completes it and runs from there on: every panel is green. Screenshots of both moments are
kept under test-artifacts/browser/.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from checkers import Status, find_lab
from labkit import release
from labkit._panel import COLOURS
from tests.browser.conftest import SCREENSHOTS, JupyterLab
from tests.browser.jupyterlab_ui import (
    RUN_TIMEOUT,
    STDERR,
    await_panel,
    cell_positions,
    css_colour,
    open_lab,
    panel_header,
    run_from_menu,
    type_into_cell,
    wait_until_idle,
)
from tests.notebooks.course import attendee_solutions

pytestmark = pytest.mark.browser

LAB = "00-setup"


def test_an_attendee_sees_a_skipped_step_red_with_a_hint_then_every_check_green(
    jupyterlab: JupyterLab, browser_page: Page
) -> None:
    page = browser_page
    solution = attendee_solutions(release.SOLUTIONS / f"{LAB}.ipynb")
    positions = cell_positions(LAB)
    check_ids = [one.check_id for one in find_lab(LAB).checks]

    open_lab(page, jupyterlab.login_url(), LAB)

    # Step 3 done, step 4 not yet: its check is red and says what to do.
    type_into_cell(page, positions["apply-hello-pod"], solution["apply-hello-pod"])
    type_into_cell(page, positions["replace-hello-pod"], "# I will do this later\n")
    run_from_menu(page, "Run All Cells")
    skipped = await_panel(page, "00.4")
    expect(skipped).to_contain_text("00.4 FAILED")
    expect(skipped).to_have_css("color", css_colour(COLOURS[Status.FAILED]))
    expect(skipped.locator("xpath=..")).to_contain_text("Hint 1 of 2: Pods cannot be changed in place")
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
