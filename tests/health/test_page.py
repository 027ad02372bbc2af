"""The wall-screen page in a real headless Chromium (Debian's ``chromium``), driven by
playwright: it signs in, shows the day's figures with charts, refreshes itself, and loads
nothing from anywhere but this server."""

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import PASSWORD
from tests.health.conftest import visit

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI"),
    reason="needs Debian's chromium (apt-get install chromium; .ci/run installs it)",
)


@pytest.fixture
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    opened = context.new_page()
    requested: list[str] = []
    opened.on("request", lambda request: requested.append(request.url))
    opened.requested = requested
    yield opened
    context.close()


def _sign_in(page, email):
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


@needs_chromium
def test_the_wall_screen_signs_in_shows_the_days_figures_and_refreshes_itself(
    page, live_server, member, make_account, hospital, commission, tmp_path
):
    visit(hospital, member())
    visit(hospital, make_account("citizen"))  # not a member: pays at the desk
    page.goto(f"{live_server}/dashboard/health?refresh=2")
    page.wait_for_selector("#signin-form", state="visible")
    _sign_in(page, commission.user.email)
    page.wait_for_selector("#board", state="visible")
    assert page.is_hidden("#signin")
    assert page.inner_text("#pay-later-patients") == "1"
    assert page.inner_text("#usage-ratio") == "50.0%"
    assert page.inner_text("#usage-detail") == "1 of 2 visits"
    assert "Seoul General" in page.inner_text("#hospitals")
    assert page.evaluate("document.querySelector('#series-chart').width") > 300
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("HEALTH_SCREENSHOT"):
        shutil.copy(shot, os.environ["HEALTH_SCREENSHOT"])
    visit(hospital, member())  # a new patient: the screen shows it on its next refresh
    expect(page.locator("#pay-later-patients")).to_have_text("2", timeout=10_000)
    foreign = [url for url in page.requested if not url.startswith(live_server)]
    assert foreign == []


@needs_chromium
def test_an_account_without_the_role_is_told_and_stays_signed_out(page, live_server, admin):
    page.goto(f"{live_server}/dashboard/health")
    _sign_in(page, admin.user.email)
    expect(page.locator("#signin-error")).to_contain_text("may not see")
    assert page.is_hidden("#board")


def test_the_page_and_its_assets_are_served_without_a_cdn(client):
    response = client.request("GET", "/dashboard/health", 200)
    html = response.get_data(as_text=True)
    assert "http" not in html.replace("http-equiv", "")
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    for asset in ("dashboard.js", "dashboard.css", "vendor/chartjs/chart.umd.min.js"):
        assert f"/dashboard/health/assets/{asset}" in html
        client.request("GET", f"/dashboard/health/assets/{asset}", 200)
    client.request("GET", "/dashboard/health/assets/../routes.py", 404)
