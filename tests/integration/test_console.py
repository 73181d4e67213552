"""The ops console in a real browser (Debian's Chromium, headless, driven by Selenium) on
the real broker and databases: the overview shows each group's lag and dead letters, a
permit made to differ on purpose in one agency's view is marked as such on its page (after
a purpose, recorded as a look), and an operator created by `hub console add-operator` logs
in and redrives a dead letter through the page, which the card then applies.

Screenshots are kept under the test's base temp (`console-screenshots/`, printed); with
HUB_UPDATE_CONSOLE_PNG=1 the permit page is also written to docs/console.png (the README's).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub import bootstrap
from hub.kafka import REDRIVE_COUNT
from hub.ops.console import console_app
from hub.ops.console.server import serving
from hub.ops.lag import caught_up
from hub.ops.replay import run_replay
from hub.ops.views import drifts
from hub.registry import installed
from hub.settings import Settings
from producers.work_permit import authority
from schemas.permits import Category
from tests.factories import employer, holder
from tests.integration.hub_fixtures import eventually, permit_topic, read_topic
from tests.integration.test_ops_cli import invoke

pytestmark = pytest.mark.integration

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
MISSING = ("Chromium or chromium-driver is missing: `make setup` installs them as root"
           " (apt-get install chromium chromium-driver)")
DOCS_PNG = Path(__file__).resolve().parents[2] / "docs" / "console.png"
BLOCK = ("ALTER TABLE card_permits ADD CONSTRAINT console_test_block"
         " CHECK (holder_name NOT LIKE 'Blocked%')")
UNBLOCK = "ALTER TABLE card_permits DROP CONSTRAINT console_test_block"
HOSTILE_PURPOSE = "T-77 <script>alert(1)</script> & <b>bold</b>"


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium through chromium-driver; missing, the test fails under CI, else is
    skipped (as kcat)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(MISSING, pytrace=False)
        pytest.skip(MISSING)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    # A page after a click may still be loading on a busy machine: a lookup waits for its
    # element (an expected absence is checked by script, so it does not wait).
    driver.implicitly_wait(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go (kept as the test's artifacts)."""
    directory = tmp_path_factory.getbasetemp() / "console-screenshots"
    directory.mkdir(exist_ok=True)
    print(f"console screenshots in {directory}")
    return directory


async def _sql(settings: Settings, agency: str, statement: str, *args: Any,
               owner: bool = False) -> Any:
    async with bootstrap.pool(settings, agency, max_size=1,
                              role="owner" if owner else "app") as p:
        return await p.fetch(statement, *args)


async def _permits(settings: Settings) -> tuple[str, str]:
    """Two permits issued, and a third applied for by a holder the card's view refuses."""
    start = date.today() - timedelta(days=30)
    async with authority(settings) as auth:
        nos = []
        for n in range(2):
            rec = await auth.apply(holder=holder(), employer=employer(), category=Category.B,
                                   position=f"Engineer {n}", approved_months=12, today=start)
            await auth.issue(rec.permit_no, valid_from=start + timedelta(days=5),
                             today=start + timedelta(days=5))
            nos.append(rec.permit_no)
        blocked = await auth.apply(holder=holder(name="Blocked Person"), employer=employer(),
                                   category=Category.B, position="Welder", approved_months=12,
                                   today=start)
    return nos[0], blocked.permit_no


async def test_console_in_a_browser(
    hub_settings: Settings, browser: Any, shots: Path
) -> None:
    """Overview, a permit's difference marked, a look recorded with an escaped purpose, an
    operator's login and a dead letter redriven through the page and then applied."""
    from selenium.webdriver.common.by import By

    settings = hub_settings
    views = {a.name: str(installed().view(a.name).table.name) for a in installed().with_views()}
    await _sql(settings, "card", BLOCK, owner=True)
    agencies = [a.name for a in installed()]
    async with (bootstrap.running_agency(settings, agencies[0]),
                bootstrap.running_agency(settings, agencies[1]),
                bootstrap.running_agency(settings, agencies[2]),
                bootstrap.running_agency(settings, agencies[3])):
        permit_no, blocked = await _permits(settings)

        async def settled() -> bool:
            return all([await caught_up(settings, a) for a in ("card", "public_security",
                                                               "social_insurance")]) and [
                (d.agency, d.permit_no, d.field) for d in await drifts(settings)] == [
                ("card", blocked, "missing")]
        await eventually(settled, timeout=120, what="the views to settle, card's dead letter")
        replayed = await run_replay(settings, "social_insurance")  # for the overview to show
        # The difference made on purpose: public security's view moves a validity by a day.
        await _sql(settings, "public_security", f"UPDATE {views['public_security']}"
                   " SET valid_until = valid_until + 1 WHERE permit_no = $1", permit_no,
                   owner=True)
        created = await invoke(settings, "add-operator", "alice", app=console_app)
        assert created.exit_code == 0, created.output
        password = re.search(r"password (\S+)", created.stdout)
        assert password
        assert password.group(1) not in (settings.home / "secrets" / "console" /
                                         "operators.json").read_text()

        async with serving(settings, "127.0.0.1", 0) as url:
            def overview() -> float:
                started = time.monotonic()
                browser.get(url)
                took = time.monotonic() - started
                browser.save_screenshot(str(shots / "1-overview.png"))
                card = browser.find_element(By.CSS_SELECTOR, 'tr[data-group="card"]')
                assert card.find_element(By.CLASS_NAME, "dead-letters").text == "1"
                assert card.find_element(By.CLASS_NAME, "lag").text == "0"
                [replay] = browser.find_elements(By.CSS_SELECTOR, "#replays tr[data-replay]")
                assert replay.get_attribute("data-replay") == f"social_insurance/{replayed.id}"
                assert replay.find_element(By.CLASS_NAME, "status").text == "switched"
                return took
            overview_s = await asyncio.to_thread(overview)

            def permit_page() -> float:
                browser.find_element(By.ID, "permit-no").send_keys(permit_no)
                browser.find_element(By.CSS_SELECTOR, "header form button").click()
                browser.find_element(By.ID, "purpose").send_keys(HOSTILE_PURPOSE)
                started = time.monotonic()
                browser.find_element(By.ID, "show").click()
                browser.find_element(By.ID, "side-by-side")
                took = time.monotonic() - started
                marked = {(td.get_attribute("data-agency"), td.get_attribute("data-field"))
                          for td in browser.find_elements(By.CSS_SELECTOR, "td.differs")}
                assert marked == {("public_security", "valid_until")}
                # The purpose is shown as text, never run: no script element came of it.
                assert browser.find_element(By.ID, "look-purpose").text == HOSTILE_PURPOSE
                assert browser.execute_script(
                    "return document.querySelectorAll('main script, main b').length") == 0
                name = browser.find_element(
                    By.CSS_SELECTOR, 'td[data-agency="card"][data-field="holder_name"]').text
                assert "•" in name  # masked: no one logged in asked to reveal
                browser.save_screenshot(str(shots / "2-permit.png"))
                if os.environ.get("HUB_UPDATE_CONSOLE_PNG") == "1":
                    browser.save_screenshot(str(DOCS_PNG))
                return took
            permit_s = await asyncio.to_thread(permit_page)

            def log_in() -> None:
                browser.get(url + "login")
                browser.find_element(By.ID, "operator-name").send_keys("alice")
                browser.find_element(By.ID, "password").send_keys(password.group(1))
                browser.find_element(By.ID, "login-button").click()
                assert browser.find_element(By.ID, "operator").text == "alice"
                cookie = browser.get_cookie("hub_console")
                assert cookie["httpOnly"]
                assert cookie["sameSite"] == "Strict"
            await asyncio.to_thread(log_in)

            def reveal() -> None:
                browser.get(url + f"permit/{permit_no}")
                browser.find_element(By.ID, "purpose").send_keys("T-78 identity check")
                browser.find_element(By.ID, "reveal").click()
                browser.find_element(By.ID, "show").click()
                name = browser.find_element(
                    By.CSS_SELECTOR, 'td[data-agency="card"][data-field="holder_name"]').text
                assert name.startswith("Person ")
                assert "•" not in name
            await asyncio.to_thread(reveal)

            def open_dead_letter() -> None:
                browser.get(url + "dlq/card")
                browser.save_screenshot(str(shots / "3-dead-letters.png"))
                [row] = browser.find_elements(By.CSS_SELECTOR, "#dead-letters tr[data-ref]")
                assert row.find_element(By.CLASS_NAME, "reason").text == "handler_error"
                row.find_element(By.TAG_NAME, "a").click()
                browser.find_element(By.ID, "purpose").send_keys("INC-9 blocked holder")
                browser.find_element(By.ID, "show").click()
                assert "Blocked" not in browser.find_element(By.ID, "value").text
                browser.save_screenshot(str(shots / "4-dead-letter.png"))
            await asyncio.to_thread(open_dead_letter)

            await _sql(settings, "card", UNBLOCK, owner=True)  # the fix, then the redrive

            def redrive() -> str:
                browser.find_element(By.ID, "redrive-purpose").send_keys("INC-9 after fix")
                browser.find_element(By.ID, "redrive-button").click()
                result = str(browser.find_element(By.ID, "result").text)
                browser.save_screenshot(str(shots / "5-redriven.png"))
                return result
            assert await asyncio.to_thread(redrive) == "sent"

        async def applied() -> bool:
            return bool(await _sql(settings, "card", f"SELECT 1 FROM {views['card']}"
                                   " WHERE permit_no = $1", blocked))
        await eventually(applied, what="the redriven permit in the card's view")

    origin = [r for r in await read_topic(settings, permit_topic(settings, "card"))
              if r.key == blocked.encode()]
    assert [dict(r.headers).get(REDRIVE_COUNT) for r in origin] == [None, b"1"]
    [sent] = await _sql(settings, "card", "SELECT redriven_by, result FROM hub_redrives")
    assert sent["result"] == "sent"
    assert sent["redriven_by"].endswith("(console: alice)")
    looks = [(r["command"], r["operator"], r["purpose"], r["permit_no"], r["revealed"])
             for r in await _sql(settings, "card", "SELECT command, operator, purpose,"
                                 " permit_no, revealed FROM hub_looks ORDER BY id")]
    assert looks == [("console permit", None, HOSTILE_PURPOSE, permit_no, False),
                     ("console permit", "alice", "T-78 identity check", permit_no, True),
                     ("console dlq show", "alice", "INC-9 blocked holder", blocked, False),
                     ("console dlq redrive", "alice", "INC-9 after fix", blocked, False)]
    for agency in ("workpermit", "public_security", "social_insurance"):
        found = await _sql(settings, agency, "SELECT command, purpose, fields, revealed"
                           " FROM hub_looks ORDER BY id")
        assert [(r["command"], r["purpose"], r["revealed"]) for r in found] == [
            ("console permit", HOSTILE_PURPOSE, False),
            ("console permit", "T-78 identity check", True)]
        assert "holder_name" in found[0]["fields"]
    print(f"console page loads: overview {overview_s:.2f}s, permit page {permit_s:.2f}s")
