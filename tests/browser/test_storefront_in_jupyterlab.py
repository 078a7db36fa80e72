"""The bookstore's storefront page, opened through JupyterLab's own server as the notebook links it,
a purchase made by clicking, as an attendee would (lab 02's services on localcluster), and one the
shop refuses, told in yuan as the page shows prices (the API counts fen)."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import SCREENSHOTS, JupyterLab
from tests.integration.conftest import LocalCluster

PAGE_TIMEOUT_MS = 30_000


def test_the_storefront_page_sells_a_book(lab_cluster: LocalCluster, jupyterlab: JupyterLab, browser_page) -> None:
    lab_cluster.lab("solve", "02.2", timeout=240)
    page: Page = browser_page
    page.goto(f"{jupyterlab.url}bookstore/storefront/?token={jupyterlab.token}")
    expect(page.locator("#service")).to_have_text("storefront", timeout=PAGE_TIMEOUT_MS)
    expect(page.locator("#books tr")).to_have_count(5, timeout=PAGE_TIMEOUT_MS)

    page.fill("#user", "browser-reader")
    page.click("#login button[type=submit]")
    expect(page.locator("#balance")).to_have_text("browser-reader: balance ¥1,000,000.00", timeout=PAGE_TIMEOUT_MS)

    first_book = page.locator("#books tr").first
    title = first_book.locator("td").nth(1).inner_text()
    first_book.locator("button").click()
    expect(page.locator("#message")).to_have_text(
        re.compile(rf"Bought 1 × {re.escape(title)} for ¥"), timeout=PAGE_TIMEOUT_MS
    )
    expect(page.locator("#balance")).not_to_have_text(re.compile(r"1,000,000\.00"), timeout=PAGE_TIMEOUT_MS)
    owned = page.locator("#books tr", has_text=title).locator("td").nth(5)
    expect(owned).to_have_text("1", timeout=PAGE_TIMEOUT_MS)
    page.screenshot(path=SCREENSHOTS / "storefront-after-purchase.png")

    too_many = page.locator("#books tr", has_text="云原生Java")
    too_many.locator("input[aria-label=count]").fill("9000")
    too_many.locator("button").click()
    refusal = page.locator("#message.error")
    expect(refusal).to_have_text(
        re.compile(r"^browser-reader has ¥[\d,]+\.\d\d, but this costs ¥1,152,000\.00\.$"), timeout=PAGE_TIMEOUT_MS
    )
    page.screenshot(path=SCREENSHOTS / "storefront-refusal.png")
