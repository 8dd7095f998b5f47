"""Languages: which one a page speaks, how to switch it, and dates written for it."""

from __future__ import annotations

from datetime import date, datetime
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from flask import g, request
from flask_babel import lazy_gettext as _l
from flask_babel import refresh
from flask_wtf.i18n import translations as wtforms_bundle
from wtforms.validators import ValidationError

from tracker.csrf import RingCSRF

LANGUAGES = ("en", "zh", "az", "ru")
NAMES = {"en": "English", "zh": "中文", "az": "Azərbaycanca", "ru": "Русский"}
DEFAULT = "en"


def select_locale() -> str:
    """A language just switched to, ``?lang=``, the stored request's, then Accept-Language."""
    for chosen in (getattr(g, "switch_lang", None), request.args.get("lang", ""),
                   getattr(g, "request_lang", None)):
        if chosen in LANGUAGES:
            return chosen
    return request.accept_languages.best_match(LANGUAGES) or DEFAULT


def switch_to(lang: str) -> None:
    """Speak ``lang`` for the rest of this request (the form page's switcher)."""
    if lang in LANGUAGES:
        g.switch_lang = lang
        refresh()  # Flask-Babel caches the locale per request


def switch_url(lang: str, here: str | None = None) -> str:
    """This page in ``lang``: the same path and query, so the traveller stays where they are.

    A page answering a POST to an address that has no GET names its own address in
    ``here``; failing that, the address one level up is where the button was.
    """
    args = request.args.to_dict(flat=False)
    args["lang"] = [lang]
    query = urlencode(args, doseq=True)
    if here:
        return f"{here}?{query}"
    # One leading slash: "//host/x" would be a link to another site.
    path = "/" + request.path.lstrip("/")
    rule = request.url_rule
    if rule is not None and "GET" not in (rule.methods or ()):
        path = path.rsplit("/", 1)[0] or "/"  # …/manage/<token>/stop → …/manage/<token>
    return f"{request.script_root}{quote(path)}?{query}"


def babel_locale(lang: str) -> str:
    """Babel's name for one of our language codes."""
    return {"zh": "zh_Hans_CN"}.get(lang, lang)


_NO_REGION = frozenset({"UTC", "UCT", "GMT", "GMT0", "GMT+0", "GMT-0", "Greenwich",
                        "Universal", "Zulu"})


def format_moment(moment: datetime, tz: str, lang: str) -> str:
    """A date, weekday and local time with the zone's name, as a reader of ``lang`` writes them."""
    from babel import Locale
    from babel.dates import format_date, format_time, get_timezone_name

    zone, locale = ZoneInfo(tz), Locale.parse(babel_locale(lang))
    local = moment.astimezone(zone)
    # The locale's own way of joining a date and a time ("{1}, {0}", "{1} {0}" …).
    joined = locale.datetime_formats["full"].replace("'", "").format(
        format_time(local, "short", tzinfo=zone, locale=locale),
        format_date(local.date(), "full", locale=locale))
    zone_name = get_timezone_name(zone, locale=locale)
    if zone.key.removeprefix("Etc/") in _NO_REGION or zone.key.startswith("Etc/"):
        # Babel knows no place for these and says "Unknown Region (UTC) Time".
        offset = local.utcoffset()
        zone_name = "UTC" if not offset else "UTC" + local.strftime("%z")[:3]
    return f"{joined}（{zone_name}）" if lang == "zh" else f"{joined} ({zone_name})"


def format_day(day: date, lang: str) -> str:
    """A date with its weekday, in ``lang``."""
    from babel.dates import format_date

    return format_date(day, "full", locale=babel_locale(lang))


# WTForms' own messages that our form can show, in our catalog (WTForms has no Azerbaijani
# one). The English stays WTForms' own; the plural form serves, as our limits are large.
FORM_MESSAGES = {
    "Not a valid date value.": _l("Not a valid date value."),
    "Not a valid choice.": _l("Not a valid choice."),
    "Invalid Choice: could not coerce.": _l("Not a valid choice."),
    "This field is required.": _l("This field is required."),
    "Field cannot be longer than %(max)d character.": _l(
        "Field cannot be longer than %(max)d characters."),
}
# Flask-WTF's CSRF reasons are English-only and mean nothing to a traveller: one message.
CSRF_MESSAGE = _l("The form had expired, or your browser did not send its cookie. "
                  "Check your answers and send the form again.")


class FormTranslations:
    """WTForms' translations: our catalog's words where we have them, WTForms' own otherwise."""

    def gettext(self, string: str) -> str:
        ours = FORM_MESSAGES.get(string)
        return str(ours) if ours is not None else wtforms_bundle.gettext(string)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        ours = FORM_MESSAGES.get(singular)
        return str(ours) if ours is not None else wtforms_bundle.ngettext(singular, plural, n)


class TranslatedCSRF(RingCSRF):
    """The ring's CSRF check (Flask-WTF's reasons are English-only), with one translated
    message."""

    def validate_csrf_token(self, form, field):
        try:
            super().validate_csrf_token(form, field)
        except ValidationError as exc:
            raise ValidationError(str(CSRF_MESSAGE)) from exc


class FormMeta:
    """A FlaskForm's ``Meta``: its built-in messages in the page's language."""

    csrf_class = TranslatedCSRF

    def get_translations(self, form):
        return FormTranslations()
