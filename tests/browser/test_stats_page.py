"""The stats page in Chromium: accessible, readable 320 px wide, its histogram drawn."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.browser.conftest import PHONE
from tests.browser.tour import LANGUAGES
from tracker import stats
from tracker.store import counter_update

pytestmark = pytest.mark.browser
NARROW = {"width": 320, "height": 640}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_stats_page_passes_axe_and_reads_320_px_wide(live, phone, artifacts, lang):
    store = live.app.extensions["tracker"].store
    add = {"f_cancelled": 30, "f_still_active": 10, "e_n": 32,
           "e_written": 12, "e_bill": 20, "t_days_2": 12,
           "t_days_3": 14, "t_days_6": 4, "t_days_15": 2}
    store._transact_items([counter_update(store.table.name, stats.Counts(
        "azercell", "call", "2026-09", add))])
    page = phone(lang)
    assert page.goto(f"{live.url}/stats?lang={lang}").status == 200
    violations = Axe().run(page).response["violations"]
    assert [f"{v['id']}: {v['nodes'][0]['html'][:120]}" for v in violations] == []
    assert page.locator("svg rect").count() == stats.MAX_DAYS + 1
    assert page.get_by_role("table").count() == 2  # the histogram's, and the channels'
    page.screenshot(path=artifacts / f"{lang}-stats.png", full_page=True)
    page.set_viewport_size(NARROW)
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
    page.set_viewport_size(PHONE)
