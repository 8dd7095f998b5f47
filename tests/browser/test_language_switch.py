"""The form's language switcher in Chromium: what was typed stays, Enter still sends."""

from __future__ import annotations

import pytest

from tests.browser.tour import catalog

pytestmark = pytest.mark.browser


def test_switching_language_on_a_phone_keeps_what_was_typed_and_enter_still_sends(
        live, phone):
    page = phone("en")
    page.goto(live.url + "/")
    page.fill("#email", "traveller@example.com")
    page.check("#operator-1")
    page.fill("#phone", "12345")
    page.check("#channel-2")

    page.get_by_role("button", name="Azərbaycanca").click()
    page.wait_for_function("document.documentElement.lang === 'az'")
    t = catalog("az").gettext
    assert page.locator("h1").inner_text() == t("Track your eSIM cancellation")
    assert page.input_value("#email") == "traveller@example.com"
    assert page.input_value("#phone") == "12345"
    assert page.is_checked("#operator-1") and page.is_checked("#channel-2")
    assert page.locator(".error").count() == 0  # switching checks nothing

    # Enter in a field sends the form (and shows its errors), in the new language.
    page.press("#phone", "Enter")
    page.wait_for_selector("#error-summary")
    assert page.get_attribute("html", "lang") == "az"
    assert page.locator("#phone-error").inner_text() == t(
        "Enter an Azerbaijani mobile number, like +994 50 123 45 67 or 050 123 45 67.")
    assert page.input_value("#email") == "traveller@example.com"
