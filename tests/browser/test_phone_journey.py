"""A traveller's whole journey on a phone, in Chinese and in Azerbaijani, in Chromium."""

from __future__ import annotations

import pytest

from tests.browser.tour import ANSWERED, CHECK_DUE, catalog

pytestmark = pytest.mark.browser

PHONE_ERROR = ("Enter an Azerbaijani mobile number, like +994 50 123 45 67 or "
               "050 123 45 67.")


def value(page, selector: str):
    return page.eval_on_selector(selector, "el => el.value")


@pytest.mark.parametrize("lang,zone", [("zh", "Asia/Shanghai"), ("az", "Asia/Baku")])
def test_traveller_fixes_a_bad_number_then_confirms_the_line_is_cancelled(
        live, phone, artifacts, clock, lang, zone):
    from tracker import followups

    t = catalog(lang).gettext
    page = phone(lang, zone)

    # The browser's Accept-Language picks the page language.
    page.goto(live.url + "/")
    assert page.get_attribute("html", "lang") == lang
    # Every control's label is on screen, not only in the accessibility tree.
    for control in ("email", "phone", "requested_on", "consent"):
        assert page.locator(f"label[for={control}]").is_visible(), control
    page.fill("#email", "traveller@example.com")
    page.check("#operator-0")
    page.fill("#phone", "12345")
    page.check("#channel-0")
    page.check("#consent")
    page.get_by_role("button", name=t("Start tracking")).click()

    # The message sits next to the number, the summary links to it, the rest is kept.
    page.wait_for_selector("#error-summary")
    assert page.evaluate("document.activeElement.id") == "error-summary"
    error = page.locator("#phone-error")
    assert error.inner_text() == t(PHONE_ERROR)
    assert page.get_attribute("#phone", "aria-invalid") == "true"
    assert "phone-error" in page.get_attribute("#phone", "aria-describedby").split()
    assert page.eval_on_selector("#phone-error", "e => e.parentElement.contains("
                                 "document.getElementById('phone'))")
    gap = page.locator("#phone").bounding_box()["y"] - error.bounding_box()["y"]
    assert 0 < gap < 100  # just above the field, on screen together
    assert value(page, "#email") == "traveller@example.com"
    assert value(page, "#phone") == "12345"
    assert value(page, "#timezone") == zone  # static/timezone.js filled it
    assert page.is_checked("#operator-0") and page.is_checked("#channel-0")
    assert page.is_checked("#consent")
    assert page.locator("#error-summary a").all_inner_texts() == [t(PHONE_ERROR)]
    page.screenshot(path=artifacts / f"{lang}-form-error.png", full_page=True)

    page.locator("#error-summary a").click()
    assert page.evaluate("document.activeElement.id") == "phone"
    page.fill("#phone", "050 123 45 67")
    page.get_by_role("button", name=t("Start tracking")).click()
    page.wait_for_url("**/done/**")
    assert page.get_attribute("html", "lang") == lang
    assert page.locator("h1").inner_text() == t("We are tracking your cancellation")
    page.screenshot(path=artifacts / f"{lang}-confirmation.png", full_page=True)

    # The operator's window has passed: the job sends the check email in their daytime.
    with live.app.app_context():
        assert followups.run(live.app.extensions["tracker"], now=CHECK_DUE)["sent"] == 1
    clock.now = ANSWERED

    page.goto(live.url + "/outbox")
    page.get_by_role("link", name=t("Is your eSIM line really cancelled? Please check")).click()
    email = page.locator("#email-html")
    assert email.get_attribute("lang") == lang
    email.screenshot(path=artifacts / f"{lang}-check-email.png")
    email.get_by_role("link", name=t("Check and answer")).click()

    page.wait_for_url("**/check/**")
    assert page.get_attribute("html", "lang") == lang
    # One tap per piece of evidence, then the answer.
    page.locator('input[name="evidence"][value="written"]').check()
    page.get_by_role("button", name=t("Yes, it is terminated")).click()
    page.wait_for_url("**/check/**")
    assert page.locator("h1").inner_text() == t("Thanks: you told us the number is terminated")
    guidance = page.locator("#remove-profile")
    assert guidance.get_by_role("heading").inner_text() == t("Now remove the right eSIM profile")
    assert t('Never use "Erase downloaded SIMs", "Reset eSIM" or "Erase All Content and '
             'Settings": each deletes every eSIM on the phone, not just this one.'
             ) in guidance.inner_text()
    page.screenshot(path=artifacts / f"{lang}-verified.png", full_page=True)
