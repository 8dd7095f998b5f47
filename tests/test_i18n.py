"""Four languages: complete catalogs, a switcher that keeps the traveller's place and what
they typed, every email in the request's language, and dates written for the reader."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from babel.support import Translations

import operators
from tests.helpers import VALID, csrf_token, link, local_path, submit
from tracker import i18n

ROOT = Path(__file__).resolve().parent.parent
TRANSLATED = ("zh", "az", "ru")  # English is the source: its catalog may leave msgstr empty
# The keywords `make extract` adds to Babel's defaults (-k _l -k lazy_gettext).
KEYWORDS = dict(DEFAULT_KEYWORDS, _l=None, lazy_gettext=None)
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]")


def catalog(lang: str) -> Translations:
    """The compiled catalog the app reads for ``lang``."""
    return Translations.load(str(ROOT / "translations"), [lang])


# ---------------------------------------------------------------------------- catalogs

@cache
def source_messages() -> dict[str, list[str]]:
    """Every msgid marked in the source, as `make extract` finds them: {msgid: [where]}."""
    with (ROOT / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _, _ in extract_from_dir(
            ROOT, method_map, options_map, keywords=KEYWORDS):
        for msgid in (message if isinstance(message, tuple) else (message,)):
            if msgid:
                found.setdefault(msgid, []).append(f"{filename}:{lineno}")
    return found


@cache
def po_catalog(lang: str):
    with (ROOT / "translations" / lang / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=lang)


def translations(lang: str):
    """(msgid, msgstr) for every translated singular or plural form in a catalog."""
    for message in po_catalog(lang):
        if not message.id or not message.string:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for string in strings:
            yield ids[-1], string


def test_extraction_finds_strings_in_python_pages_and_emails():
    where = {place.split(":")[0] for places in source_messages().values() for place in places}
    assert {"tracker/forms.py", "tracker/emails.py", "tracker/i18n.py", "templates/form.html",
            "templates/emails/check.txt", "templates/emails/check.html"} <= where
    assert "Not a valid date value." in source_messages()  # WTForms' own, through i18n.py


@pytest.mark.parametrize("lang", ("en", *TRANSLATED))
def test_every_string_in_the_source_is_in_the_catalog(lang):
    missing = [f"{msgid!r} ({places[0]})" for msgid, places in source_messages().items()
               if po_catalog(lang).get(msgid) is None]
    assert not missing, f"run `make extract` and translate; {lang} lacks:\n" + "\n".join(missing)


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_string_in_the_source_has_a_finished_translation(lang):
    unfinished = []
    for msgid, places in source_messages().items():
        message = po_catalog(lang).get(msgid)
        strings = message and (message.string if isinstance(message.string, tuple)
                               else (message.string,))
        if not strings or not all(s.strip() for s in strings) or message.fuzzy:
            unfinished.append(f"{msgid!r} ({places[0]})")
    assert not unfinished, f"{lang} has no finished translation of:\n" + "\n".join(unfinished)


@pytest.mark.parametrize("lang", TRANSLATED)
def test_translations_keep_placeholders_numbers_and_addresses(lang):
    wrong = []
    for msgid, msgstr in translations(lang):
        if sorted(PLACEHOLDER.findall(msgid)) != sorted(PLACEHOLDER.findall(msgstr)):
            wrong.append(f"placeholders differ: {msgid!r} -> {msgstr!r}")
        # Jinja formats every translation with %: a lone % would break the page.
        if "%" in PLACEHOLDER.sub("", msgstr).replace("%%", ""):
            wrong.append(f"stray %: {msgstr!r}")
        for token in re.findall(r"\+?\d[\d ]*\d|\d|\S+@\S+\w|eSIM|SES", msgid):
            if token not in msgstr:
                wrong.append(f"{token!r} lost: {msgid!r} -> {msgstr!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("lang", ("en", *TRANSLATED))
def test_compiled_catalogs_match_their_po_files(lang):
    mo = ROOT / "translations" / lang / "LC_MESSAGES" / "messages.mo"
    assert mo.exists(), "run `make translations`"
    with mo.open("rb") as fh:
        compiled = {m.id: m.string for m in read_mo(fh) if m.id}
    stale = [m.id for m in po_catalog(lang) if m.id and m.string
             and compiled.get(m.id) != m.string]
    assert not stale, f"run `make translations`: {lang}.mo is older than its .po: {stale[:3]}"


# ------------------------------------------------------------------ choosing a language

def page_lang(page: str) -> str:
    return re.search(r'<html lang="([^"]+)"', page).group(1)


def h1(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", re.search(r"<h1>(.*?)</h1>", page, re.S)
                                .group(1))).strip()


@pytest.mark.parametrize(("header", "lang"), [
    ("zh-CN,zh;q=0.9,en;q=0.5", "zh"), ("az-AZ", "az"), ("ru-RU,ru;q=0.9", "ru"),
    ("de-DE,de;q=0.9", "en"), ("", "en")])
def test_accept_language_picks_the_page_language(client, header, lang):
    page = client.get("/", headers={"Accept-Language": header}).get_data(as_text=True)
    assert page_lang(page) == lang
    assert h1(page) == catalog(lang).gettext("Track your eSIM cancellation")


def test_lang_parameter_beats_accept_language(client):
    page = client.get("/?lang=az", headers={"Accept-Language": "ru"}).get_data(as_text=True)
    assert page_lang(page) == "az"
    assert h1(page) == "eSIM-inizin ləğvini izləyin"


def test_pages_about_a_request_speak_its_stored_language_unless_asked(client, outbox):
    data = dict(VALID, csrf_token=csrf_token(client, "/?lang=az"))
    assert client.post("/?lang=az", data=data).status_code == 303
    manage = urlsplit(local_path(link(outbox()[0], "/manage/")))  # ?lang=az, dropped below
    russian = {"Accept-Language": "ru"}
    page = client.get(manage.path, headers=russian).get_data(as_text=True)
    assert page_lang(page) == "az" and h1(page) == "Ləğv sorğunuz"
    page = client.get(f"{manage.path}?lang=zh", headers=russian).get_data(as_text=True)
    assert page_lang(page) == "zh" and h1(page) == "您的注销申请"


# ------------------------------------------------------------------ the form's switcher

TYPED = dict(VALID, email="traveller@example.com", operator="bakcell", phone="12345",
             channel="online", requested_on="2026-09-10")


def field_value(page: str, name: str) -> str | None:
    tag = re.search(rf'<input[^>]*\bname="{name}"[^>]*>', page)
    value = tag and re.search(r'\bvalue="([^"]*)"', tag.group(0))
    return html.unescape(value.group(1)) if value else None


def checked(page: str, name: str) -> list[str]:
    tags = re.findall(rf'<input[^>]*\bname="{name}"[^>]*>', page)
    return [re.search(r'value="([^"]*)"', t).group(1) for t in tags if " checked" in t]


def test_language_buttons_on_the_form_keep_what_was_typed_unchecked(client, table, outbox):
    data = dict(TYPED, csrf_token=csrf_token(client, "/?lang=en"), switch_lang="ru")
    response = client.post("/?lang=en", data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and page_lang(page) == "ru"
    assert h1(page) == "Отследите закрытие номера eSIM"
    assert field_value(page, "email") == "traveller@example.com"
    assert field_value(page, "phone") == "12345"  # kept, though not a valid number
    assert field_value(page, "requested_on") == "2026-09-10"
    assert checked(page, "operator") == ["bakcell"] and checked(page, "channel") == ["online"]
    assert checked(page, "consent") == ["y"]
    assert 'class="error"' not in page and "error-summary" not in page  # nothing checked
    assert table.scan()["Items"] == [] and outbox() == []  # nothing stored, nothing sent
    assert 'action="/?lang=ru"' in page

    # The form now speaks Russian: its errors, and the request once it is sent.
    data = dict(TYPED, csrf_token=csrf_token(client, "/?lang=ru"))
    page = client.post("/?lang=ru", data=data).get_data(as_text=True)
    assert catalog("ru").gettext("Enter an Azerbaijani mobile number, like +994 50 123 45 67 "
                                 "or 050 123 45 67.") in page
    assert client.post("/?lang=ru", data=dict(data, phone=VALID["phone"])).status_code == 303
    [item] = [item for item in table.scan()["Items"] if "lang" in item]  # not limit counters
    assert item["lang"] == "ru"
    assert outbox()[0]["subject"] == catalog("ru").gettext(
        "We are tracking your eSIM cancellation")


def test_an_unknown_language_button_keeps_the_page_and_stores_nothing(client, table):
    data = dict(TYPED, phone=VALID["phone"], csrf_token=csrf_token(client), switch_lang="de")
    response = client.post("/?lang=az", data=data)
    assert response.status_code == 200 and page_lang(response.get_data(as_text=True)) == "az"
    assert table.scan()["Items"] == []


def test_enter_in_a_field_sends_the_form_not_a_language_button(client):
    """Enter presses the form's first submit button in document order: not a language."""
    page = client.get("/").get_data(as_text=True)
    buttons = re.findall(r"<button[^>]*>", page)
    assert 'form="request-form"' in buttons[0] and 'type="submit"' in buttons[0]
    assert "switch_lang" not in buttons[0]
    switches = [b for b in buttons if 'name="switch_lang"' in b]
    assert len(switches) == 3 and all('form="request-form"' in b for b in switches)


# ------------------------------------------------- switching on every other page

def switch_links(page: str) -> dict[str, str]:
    nav = re.search(r'<nav class="langs".*?</nav>', page, re.S).group(0)
    return {code: html.unescape(href) for code, href in
            re.findall(r'<a lang="([a-z]+)" hreflang="[a-z]+" href="([^"]+)"', nav)}


def assert_switches_in_place(client, path: str, status: int, *, method: str = "get",
                             data: dict | None = None, lands_on: str | None = None,
                             lands_status: int | None = None):
    """Every language link of a page leads to the same place, now in that language."""
    response = getattr(client, method)(path, data=data)
    assert response.status_code == status, path
    page = response.get_data(as_text=True)
    here = urlsplit(path)
    links = switch_links(page)
    assert sorted(links) == sorted(set(i18n.LANGUAGES) - {page_lang(page)}), path
    for code, href in links.items():
        target = urlsplit(href)
        assert target.path == (lands_on or here.path), (path, href)
        query = parse_qs(here.query)
        assert parse_qs(target.query) == dict(query, lang=[code]), (path, href)
        switched = client.get(href)
        assert switched.status_code == (lands_status or status), href
        text = switched.get_data(as_text=True)
        assert page_lang(text) == code, href
        assert h1(text) != h1(page), href


@pytest.fixture
def scene(app, client, clock, outbox):
    """Requests in each state a page shows, made through the form, the job and the emails'
    own links; return (client, {page: path}), every page in English."""
    from tracker import followups, tokens

    def answer(path: str, reply: str) -> None:
        token = csrf_token(client, path)
        evidence = ["written"] if reply == "cancelled" else []  # proof: a closed request
        assert client.post(path, data={"csrf_token": token, "answer": reply,
                                       "evidence": evidence}).status_code == 303

    done = {}
    for state in ("open", "still", "verified"):
        response = submit(client, email=f"{state}@example.com")
        done[state] = local_path(response.headers["Location"], base="")
    with app.app_context():
        assert followups.run(app.extensions["tracker"], now=datetime(2026, 9, 18, 6, tzinfo=UTC))[
            "sent"] == 3
    checks = {m["to"].split("@")[0]: m for m in outbox() if "/check/" in m["text"]}
    check = {state: local_path(link(m, "/check/")) for state, m in checks.items()}
    clock.now = datetime(2026, 9, 18, 6, 30, tzinfo=UTC)
    answer(check["still"], "still_active")
    answer(check["verified"], "cancelled")
    manage = local_path(link(checks["open"], "/manage/"))
    request_id = tokens.read(app.config["SECRET_KEY"], "manage",
                             urlsplit(manage).path.split("/")[-1], max_age_seconds=86400)
    expired = tokens.make(app.config["SECRET_KEY"], "manage", request_id, now=1_000_000_000)
    return client, {
        "confirmation": done["open"], "check": check["open"], "still-active": check["still"],
        "verified": check["verified"], "manage": manage,
        "unsubscribe": local_path(link(checks["open"], "/unsubscribe/")),
        "deleted": "/deleted?lang=en", "renewed": "/renewed?lang=en",
        "not-found": "/manage/no-such-link?lang=en", "expired": f"/manage/{expired}?lang=en",
    }


def test_switching_language_on_any_page_keeps_the_traveller_where_they_were(scene):
    client, pages = scene  # the form's buttons are tested above
    for name, path in pages.items():
        status = {"not-found": 404, "expired": 410}.get(name, 200)
        assert_switches_in_place(client, path, status)
    manage = urlsplit(pages["manage"])
    assert_switches_in_place(client, f"{manage.path}/stop?{manage.query}", 405)
    assert_switches_in_place(client, "/no/such/page", 404)


def test_switching_language_after_a_button_leads_back_to_its_page(scene):
    client, pages = scene
    manage = urlsplit(pages["manage"])
    # A stale button (no CSRF token) on the manage page: the page again, saying so.
    assert_switches_in_place(client, f"{manage.path}/stop?{manage.query}", 400, method="post",
                             data={}, lands_on=manage.path, lands_status=200)
    check = urlsplit(pages["check"])
    assert_switches_in_place(client, pages["check"], 400, method="post", data={},
                             lands_on=check.path, lands_status=200)
    # The expired link's "email me new links" button, stale: back to the expired link.
    expired = urlsplit(pages["expired"])
    purpose, token = expired.path.strip("/").split("/")
    assert_switches_in_place(client, f"/renew/{purpose}/{token}?lang=en", 400, method="post",
                             data={}, lands_on=expired.path, lands_status=410)
    # Unsubscribed by the button: in another language, still "emails stopped".
    unsubscribe = urlsplit(pages["unsubscribe"])
    assert_switches_in_place(client, pages["unsubscribe"], 200, method="post", data={})
    for code in TRANSLATED:
        page = client.get(f"{unsubscribe.path}?lang={code}").get_data(as_text=True)
        assert h1(page) == catalog(code).gettext("Emails stopped")


def test_language_links_never_lead_to_another_site(client):
    page = client.get("/x?lang=en", environ_overrides={"PATH_INFO": "//evil.example/x"})
    page = page.get_data(as_text=True)
    assert sorted(switch_links(page).values()) == [
        "/evil.example/x?lang=az", "/evil.example/x?lang=ru", "/evil.example/x?lang=zh"]


def test_delete_leads_to_the_deleted_page_in_the_same_language(scene):
    client, pages = scene
    manage = urlsplit(pages["manage"])
    token = csrf_token(client, f"{manage.path}?lang=az")
    response = client.post(f"{manage.path}/delete?lang=az", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"].endswith("lang=az")
    assert_switches_in_place(client, "/deleted?lang=az", 200)


# ---------------------------------------------------- built-in messages of WTForms, CSRF

@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_wtforms_own_messages_come_out_in_the_page_language(client, lang):
    t = catalog(lang).gettext
    cases = [("requested_on", "2026-13-45", t("Not a valid date value.")),
             ("operator", "naxtel", t("Not a valid choice.")),
             ("email", "a" * 250 + "@example.com",
              t("Field cannot be longer than %(max)d characters.") % {"max": 254})]
    for field, value, message in cases:
        data = dict(VALID, csrf_token=csrf_token(client, f"/?lang={lang}"), **{field: value})
        page = client.post(f"/?lang={lang}", data=data).get_data(as_text=True)
        assert html.escape(message, quote=False) in page, (lang, field)
    if lang != "en":
        assert t("Not a valid date value.") != "Not a valid date value."


@pytest.mark.parametrize("lang", TRANSLATED)
def test_a_form_without_its_csrf_token_says_so_in_the_page_language_and_keeps_the_rest(
        client, lang):
    response = client.post(f"/?lang={lang}", data=dict(TYPED))
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert html.escape(catalog(lang).gettext(str(i18n.CSRF_MESSAGE)), quote=False) in page
    assert "CSRF" not in page and field_value(page, "email") == TYPED["email"]


# ----------------------------------------------------------------- emails and dates

BODY = {  # a sentence each kind of email must carry, translated
    "receipt": "Until then, do not remove the eSIM profile from your phone.",
    "check": "By the usual processing time, the operator should have handled your request "
             "by now. Please check that the line is really cancelled:",
    "reminder": "We have not heard from you yet. Please check that the line is really "
                "cancelled:",
    "escalation": "We will ask you to check again in two working days.",
    "recheck": "You told us the line was still active. Please check it again:",
    "links": "You asked for new links because an old one had expired. These work again "
             "for a while.",
}


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
@pytest.mark.parametrize("kind", list(BODY))
def test_every_email_kind_speaks_the_requests_language(app, kind, lang):
    from tracker import emails, policy
    from tracker.model import Request

    request = Request(
        id="r1", email="traveller@example.com", operator="azercell", phone_last4="4567",
        channel="call", requested_on=date(2026, 9, 14), timezone="Asia/Baku", lang=lang,
        created_at=datetime(2026, 9, 14, 8, tzinfo=UTC),
        progress=policy.Progress(next_kind=None if kind == "links" else kind))
    with app.test_request_context("/?lang=en"):
        message = (emails.compose_fresh_links(request) if kind == "links"
                   else emails.compose(request))
        subject = str(emails.FRESH_LINKS_SUBJECT if kind == "links" else emails.SUBJECTS[kind])
    t = catalog(lang).gettext
    assert message.subject == t(subject)
    sentence = t(BODY[kind])
    assert sentence in message.text and html.escape(sentence, quote=False) in message.html
    assert f'<html lang="{lang}">' in message.html
    footer = t("Line ending in %(digits)s, %(operator)s.") % {"digits": "4567",
                                                              "operator": "Azercell"}
    assert footer in message.text
    if lang != "en":
        assert BODY[kind] not in message.text and subject not in message.text
    if kind == "receipt":  # the first check: Friday 18 September 2026, 09:00 in Baku
        when = i18n.format_moment(datetime(2026, 9, 18, 5, tzinfo=UTC), "Asia/Baku", lang)
        assert when in message.text and html.escape(when, quote=False) in message.html


MOMENT = datetime(2026, 9, 18, 5, 0, tzinfo=UTC)
# Babel (CLDR) puts a narrow no-break space (U+202F) before "AM" and the Russian "г.".


@pytest.mark.parametrize(("lang", "tz", "written"), [
    ("en", "Asia/Baku", "Friday, September 18, 2026, 9:00\u202fAM (Azerbaijan Time)"),
    ("zh", "Asia/Baku", "2026年9月18日星期五 09:00（阿塞拜疆时间）"),
    ("zh", "Asia/Shanghai", "2026年9月18日星期五 13:00（中国时间）"),
    ("az", "Asia/Baku", "18 sentyabr 2026, cümə 09:00 (Azərbaycan Vaxtı)"),
    ("ru", "Asia/Baku", "пятница, 18 сентября 2026\u202fг., 09:00 (Азербайджан)"),
    ("ru", "Europe/Moscow", "пятница, 18 сентября 2026\u202fг., 08:00 (Москва)"),
])
def test_moments_are_written_as_the_reader_writes_them(lang, tz, written):
    assert i18n.format_moment(MOMENT, tz, lang) == written


@pytest.mark.parametrize(("lang", "written"), [
    ("en", "Thursday, March 19, 2026"), ("zh", "2026年3月19日星期四"),
    ("az", "19 mart 2026, cümə axşamı"), ("ru", "четверг, 19 марта 2026\u202fг.")])
def test_days_are_written_with_their_weekday(lang, written):
    assert i18n.format_day(date(2026, 3, 19), lang) == written


@pytest.mark.parametrize("lang", TRANSLATED)
def test_confirmation_page_dates_are_in_the_page_language(client, lang):
    data = dict(VALID, csrf_token=csrf_token(client, f"/?lang={lang}"))
    done = client.post(f"/?lang={lang}", data=data).headers["Location"]
    page = client.get(done).get_data(as_text=True)
    when = i18n.format_moment(MOMENT, "Asia/Baku", lang)
    assert html.escape(when, quote=False) in page


# ------------------------------------------------------ operator facts and their sources

def sources_on(page: str) -> list[tuple[str, str]]:
    """Every (source address, day read) a page cites, in order: each section ends with
    "Sources, read on <day>: <links>"."""
    found = []
    for line in re.findall(r'<p class="source">(.*?)</p>', page):
        day = re.search(r"\d{4}-\d{2}-\d{2}", line).group(0)
        found += [(url, day) for url in re.findall(r'<a href="(https://[^"]+)"', line)]
    return found


@pytest.mark.parametrize("code", operators.codes())
def test_operator_facts_keep_their_sources_in_every_language(client, code):
    operator = operators.get(code)
    shown = {}
    for lang in i18n.LANGUAGES:
        response = submit(client, operator=code, channel="not_yet", email=f"{lang}@example.com")
        page = client.get(response.headers["Location"].replace("lang=en", f"lang={lang}"))
        text = html.unescape(page.get_data(as_text=True))
        assert page_lang(text) == lang
        for fact in operator.caveats + operator.documents:
            assert fact.t(lang) in text, (code, lang)
        # What no source confirms is listed once, under one heading, and never marked.
        heading = catalog(lang).gettext("What we could not confirm: ask the operator")
        assert text.count(heading) == 1 and "†" not in text, (code, lang)
        shown[lang] = sources_on(text)
    assert shown["en"], "the page cites no source at all"
    assert all(found == shown["en"] for found in shown.values()), shown
