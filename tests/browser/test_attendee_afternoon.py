"""An attendee's afternoon in JupyterLab: live waiting, a hint that climbs, a challenge solved, a restart survived.

Lab 01 is run as an attendee who leaves two steps for later: the waits show, live, what they wait
for and until when; the check of a skipped step is red and its button gives the next hint, the
literal answer; the fix-it challenge is red with its symptom until the attendee types the repair,
then green. Lab 00 is run to green, localcluster restarts under the open notebook (on a new port),
and the next check is green again, from the same kernel. Screenshots of each moment are kept under
test-artifacts/browser/.
"""

from __future__ import annotations

import contextlib
import re

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from labkit import release
from tests.browser.conftest import SCREENSHOTS, JupyterLab
from tests.browser.jupyterlab_ui import (
    RUN_TIMEOUT,
    await_panel,
    bring_into_sight,
    cell,
    cell_positions,
    open_lab,
    run_from_menu,
    type_into_cell,
    wait_until_idle,
)
from tests.integration.conftest import LocalCluster, free_port
from tests.notebooks.course import attendee_solutions

pytestmark = pytest.mark.browser

#: The steps the attendee of lab 01 leaves for later.
LATER = ("bad-purchases-monolith", "fix-challenge-01")


def test_live_waiting_an_escalated_hint_and_a_challenge_solved(jupyterlab: JupyterLab, browser_page: Page) -> None:
    page, lab = browser_page, "01-monolith"
    solution = attendee_solutions(release.SOLUTIONS / f"{lab}.ipynb")
    positions = cell_positions(lab)
    open_lab(page, jupyterlab.login_url(), lab)
    # Attendees see no nbgrader authoring menu or sidebar.
    expect(page.locator("#jp-menu-panel .lm-MenuBar-itemLabel", has_text="Nbgrader")).to_have_count(0)
    expect(page.locator("#nbgrader-create_assignemnt")).to_have_count(0)  # nbgrader's panel id, misspelt upstream
    expect(page.locator(".jp-SideBar .lm-TabBar-tab", has_text="Create Assignment")).to_have_count(0)
    for cell_id, code in solution.items():
        type_into_cell(page, positions[cell_id], "# I will do this later\n" if cell_id in LATER else code)
    run_from_menu(page, "Run All Cells")

    # While the monolith starts, the waiting cell says what it waits for, for how long and until when.
    waiting = page.locator(".labkit-waiting", has_text="until").first
    expect(waiting).to_be_visible(timeout=RUN_TIMEOUT)
    # Run All Cells has scrolled to the last cell: bring the line into sight while it is there.
    expect(waiting).to_contain_text(re.compile(r"waiting for .+ \d+ s of at most \d+ s \(until \d\d:\d\d:\d\d\)"))
    bring_into_sight(page, waiting)
    page.screenshot(path=SCREENSHOTS / "lab01-live-waiting.png")
    with contextlib.suppress(PlaywrightError):  # the line may be gone already: the wait lasts as long as a pod's start
        waiting.screenshot(path=SCREENSHOTS / "lab01-live-waiting-line.png", timeout=2_000)

    # The skipped step: red, the first hint says where to look; the button gives the answer.
    refusals = await_panel(page, "01.4")
    expect(refusals).to_contain_text("01.4 FAILED", timeout=RUN_TIMEOUT)
    panel = refusals.locator("xpath=..")
    expect(panel).to_contain_text("Hint 1 of 2")
    expect(panel).not_to_contain_text("ctx.http.post(")
    next_hint = cell(page, positions["check-01-4"]).locator(".labkit-next-hint button, button.labkit-next-hint")
    next_hint.first.click()
    # The kernel hears the click once the cells queued before it have run (the challenge's among them).
    expect(panel).to_contain_text("Hint 2 of 2: In the notebook: ctx.http.post(", timeout=RUN_TIMEOUT)
    expect(next_hint.first).to_be_hidden()
    panel.scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "lab01-escalated-hint.png")

    # The challenge: the symptom, never the cause; then the attendee's repair turns it green.
    wait_until_idle(page)
    challenge = await_panel(page, "01.5")
    expect(challenge).to_contain_text("01.5 FAILED")
    expect(challenge.locator("xpath=..")).to_contain_text("The shop is still down")
    expect(challenge.locator("xpath=..")).not_to_contain_text("RANKING")
    challenge.scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "lab01-challenge-symptom.png")
    type_into_cell(page, positions["fix-challenge-01"], solution["fix-challenge-01"])
    run_from_menu(page, "Run Selected Cell and All Below")
    expect(await_panel(page, "01.5")).to_contain_text("01.5 PASSED", timeout=RUN_TIMEOUT)
    wait_until_idle(page)
    await_panel(page, "01.5").scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "lab01-challenge-solved.png")


def test_a_restarted_cluster_under_an_open_notebook_needs_no_kernel_restart(
    lab_cluster: LocalCluster, jupyterlab: JupyterLab, browser_page: Page
) -> None:
    page, lab = browser_page, "00-setup"
    solution = attendee_solutions(release.SOLUTIONS / f"{lab}.ipynb")
    positions = cell_positions(lab)
    open_lab(page, jupyterlab.login_url(), lab)
    for cell_id, code in solution.items():
        type_into_cell(page, positions[cell_id], code)
    run_from_menu(page, "Run All Cells")
    expect(await_panel(page, "00.4")).to_contain_text("00.4 PASSED", timeout=RUN_TIMEOUT)
    wait_until_idle(page)

    old_port = int(re.search(r":(\d+)$", lab_cluster.api_client().configuration.host)[1])  # type: ignore[index]
    lab_cluster.lab("down")
    new_port = free_port(other_than=old_port)
    lab_cluster.lab("up", "--timeout", "60", "--port", str(new_port))

    # The same kernel, no new connect(): the check finds the API on its new port.
    cell(page, positions["check-00-1"]).locator(".jp-InputArea").click()
    run_from_menu(page, "Run Selected Cell")
    api = await_panel(page, "00.1")
    expect(api).to_contain_text("00.1 PASSED", timeout=RUN_TIMEOUT)
    expect(api.locator("xpath=..")).to_contain_text(f"127.0.0.1:{new_port}")
    api.scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "lab00-after-restart.png")
