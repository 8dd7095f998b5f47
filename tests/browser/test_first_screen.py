"""One action first: a confirmation page's first phone screen shows the next step (issue 18)."""

from __future__ import annotations

import pytest

from tests.browser.conftest import PHONE
from tests.browser.tour import _submit, catalog, path_of

pytestmark = pytest.mark.browser

PHONES = {"azercell": "050 123 45 67", "bakcell": "055 123 45 67", "nar": "070 123 45 67"}


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("code", list(PHONES))
@pytest.mark.parametrize("channel,zone", [("not_yet", "Asia/Shanghai"),
                                          ("call", "Asia/Baku")])
def test_the_first_phone_screen_shows_the_next_step_for_this_operator_and_place(
        live, phone, artifacts, code, lang, channel, zone):
    import operators

    operator = operators.get(code)
    client = live.app.test_client()
    done = _submit(client, lang, f"{code}-{channel}@example.com", operator=code,
                   phone=PHONES[code], channel=channel, timezone=zone)
    page = phone(lang, zone)
    page.goto(live.url + path_of(done))
    t = catalog(lang).gettext
    box = page.locator("#next-action").bounding_box()
    assert box is not None and box["y"] + box["height"] <= PHONE["height"], box
    shown = page.locator("#next-action").inner_text()
    assert t("Your next step") in shown
    if channel == "not_yet":  # where the traveller is, and the first sourced step from there
        assert t("Your phone's time zone says you are outside Azerbaijan. From there:") in shown
        assert operator.route[0].t(lang) in shown
    elif code == "azercell":  # asked by phone: the call only closed the line for a while
        assert operator.steps_for("call").steps[0].t(lang) in shown
    if operator.written:
        assert page.locator("#next-action a.button").is_visible()
    page.screenshot(path=artifacts / f"{lang}-first-screen-{code}-{channel}.png")
