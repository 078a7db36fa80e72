"""The instructor's progress dashboard in JupyterLab: it refreshes by itself when an attendee's check passes.

The dashboard notebook (infra/instructor/progress-dashboard.ipynb) runs against localcluster, where the
one attendee is the lab namespace; lab 00 is then solved from a terminal (`lab solve 00`), as the
attendee would in their notebook, and the table turns green without the instructor touching it.
Screenshots of both moments are kept under test-artifacts/browser/.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from playwright.sync_api import Page, expect

from labkit.settings import PROJECT_ROOT
from tests.browser.conftest import SCREENSHOTS, JupyterLab
from tests.browser.jupyterlab_ui import RUN_TIMEOUT, UI_TIMEOUT, run_from_menu, type_into_cell
from tests.integration.conftest import LocalCluster

pytestmark = pytest.mark.browser

DASHBOARD = PROJECT_ROOT / "infra" / "instructor" / "progress-dashboard.ipynb"


def test_the_dashboard_turns_green_when_the_attendee_solves_the_lab(
    jupyterlab: JupyterLab, lab_cluster: LocalCluster, browser_page: Page
) -> None:
    page = browser_page
    shutil.copyfile(DASHBOARD, jupyterlab.root / DASHBOARD.name)
    page.goto(jupyterlab.login_url())
    page.locator(".jp-DirListing-item", has_text=DASHBOARD.name).dblclick(timeout=UI_TIMEOUT)
    # Lab 00 only, refreshed every 2 s: the class-wide defaults would make the test wait.
    type_into_cell(page, 1, 'import labkit.progress\n\nview = labkit.progress.dashboard(["00"], every=2)\nview')
    page.locator(".jp-Notebook .jp-Cell").nth(1).click()
    run_from_menu(page, "Run Selected Cell")

    table = page.locator("table.lab-progress")
    expect(table).to_be_visible(timeout=RUN_TIMEOUT)
    row = table.locator("tbody tr", has_text="bookstore")
    expect(row.locator("td").last).to_have_text("2/4", timeout=RUN_TIMEOUT)
    expect(row.locator("td").nth(3)).to_have_text("✘")
    table.scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "progress-before.png")

    solved = subprocess.run(
        [sys.executable, "-m", "localcluster.cli", "solve", "00"],
        env=lab_cluster.env | {"KUBECONFIG": str(lab_cluster.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert solved.returncode == 0, solved.stderr
    expect(row.locator("td").last).to_have_text("4/4", timeout=RUN_TIMEOUT)
    expect(row.locator("td", has_text="✘")).to_have_count(0)
    page.screenshot(path=SCREENSHOTS / "progress-after.png")
