"""Every page, in every language, in Chromium: accessible, local-only, readable at 320 px."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.browser.conftest import PHONE
from tests.browser.tour import LANGUAGES, catalog, set_the_scene

pytestmark = pytest.mark.browser

# What each page answers; the unsubscribe confirmation and the form's errors are reached
# by pressing its button, as a traveller does.
STATUS = {
    "form": 200, "form-with-errors": 400, "confirmation": 200, "check": 200,
    "still-active": 200, "verified": 200, "manage": 200, "unsubscribe": 200,
    "unsubscribed": 200, "deleted": 200, "not-found": 404, "expired": 410, "outbox": 200,
    "outbox-message": 200, "not-sure": 200, "not-asked": 200, "check-early": 200,
        "reseller": 200, "written-request": 200,
}
AXE = Axe()
NARROW = {"width": 320, "height": 640}


def every_page(page, live, paths: dict[str, str], t):
    """Open every page in turn; yield (name, HTTP status) once each has loaded."""
    for name, path in paths.items():
        if name == "unsubscribe":
            continue  # last: pressing its button stops the open request's emails
        yield name, page.goto(live.url + path).status
        if name == "form":
            with page.expect_navigation() as sent:
                page.get_by_role("button", name=t("Start tracking")).click()
            yield "form-with-errors", sent.value.status
    yield "unsubscribe", page.goto(live.url + paths["unsubscribe"]).status
    with page.expect_navigation() as sent:
        page.get_by_role("button", name=t("Stop emails")).click()
    yield "unsubscribed", sent.value.status


@pytest.fixture
def scene(live, clock, outbox):
    """Requests in every state, and the path of every page about them, per language."""
    return lambda lang: set_the_scene(live.app, clock, lang, outbox)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_page_passes_axe_and_reads_320_px_wide_without_sideways_scrolling(
        live, phone, scene, artifacts, lang):
    page = phone(lang)
    t = catalog(lang).gettext
    found, too_wide = {}, {}
    for name, status in every_page(page, live, scene(lang), t):
        assert status == STATUS[name], name
        assert page.get_attribute("html", "lang") == lang, name
        violations = AXE.run(page).response["violations"]
        found[name] = [f"{v['id']}: {v['help']} ({len(v['nodes'])}× e.g. "
                       f"{v['nodes'][0]['html'][:120]})" for v in violations]
        page.screenshot(path=artifacts / f"{lang}-{name}.png", full_page=True)
        if name == "outbox-message":
            page.locator("#email-html").screenshot(path=artifacts / f"{lang}-check-email.png")
        page.set_viewport_size(NARROW)
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > NARROW["width"]:
            too_wide[name] = width
        page.set_viewport_size(PHONE)
    assert set(found) == set(STATUS)
    assert {name: v for name, v in found.items() if v} == {}
    assert too_wide == {}


def test_pages_fetch_only_from_the_app_itself(live, phone, scene, artifacts):
    page = phone("en")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    counts, off_site = {}, {}
    pages = every_page(page, live, scene("en"), catalog("en").gettext)
    while True:
        requested.clear()
        try:
            name, _ = next(pages)
        except StopIteration:
            break
        page.wait_for_load_state("load")
        counts[name] = len(requested)
        off_site[name] = [u for u in requested if urlsplit(u).hostname != "127.0.0.1"]
    assert {name: urls for name, urls in off_site.items() if urls} == {}
    # The page itself, and on the form its one script; no favicon, fonts or styles.
    assert counts["form"] == counts["form-with-errors"] == 2
    assert {name for name, n in counts.items() if n != 1} == {"form", "form-with-errors"}
    (artifacts / "page-requests.json").write_text(json.dumps(counts, indent=2) + "\n")


def test_focus_is_visible_on_every_control_of_the_form(live, phone):
    page = phone("en")
    page.goto(live.url + "/")
    seen = []
    for _ in range(60):  # a date input takes a Tab per part
        page.keyboard.press("Tab")
        focused = page.evaluate("""() => {
            const el = document.activeElement, style = getComputedStyle(el);
            return {id: el.id || el.textContent.trim(), tag: el.tagName,
                    outline: style.outlineStyle, width: parseFloat(style.outlineWidth)};
        }""")
        if focused["tag"] == "BODY" or (seen and focused == seen[0]):
            break
        if focused not in seen:
            seen.append(focused)
    controls = {f["id"] for f in seen}
    assert {"email", "operator-0", "phone", "channel-0", "requested_on", "consent"} <= controls
    assert [f for f in seen if f["outline"] != "solid" or f["width"] < 2] == []
