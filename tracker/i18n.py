"""Languages: which one a page speaks, and dates and times written for it."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import g, request

LANGUAGES = ("en", "zh", "az", "ru")
NAMES = {"en": "English", "zh": "中文", "az": "Azərbaycanca", "ru": "Русский"}
DEFAULT = "en"


def select_locale() -> str:
    """``?lang=``, then the stored request's language, then Accept-Language."""
    asked = request.args.get("lang", "")
    if asked in LANGUAGES:
        return asked
    stored = getattr(g, "request_lang", None)
    if stored in LANGUAGES:
        return stored
    return request.accept_languages.best_match(LANGUAGES) or DEFAULT


def babel_locale(lang: str) -> str:
    """Babel's name for one of our language codes."""
    return {"zh": "zh_Hans_CN"}.get(lang, lang)


def format_moment(moment: datetime, tz: str, lang: str) -> str:
    """A date and local time, as a reader of ``lang`` in ``tz`` writes them."""
    from babel.dates import format_date, format_time, get_timezone_name

    zone, locale = ZoneInfo(tz), babel_locale(lang)
    local = moment.astimezone(zone)
    return "{}, {} ({})".format(
        format_date(local.date(), "full", locale=locale),
        format_time(local, "short", tzinfo=zone, locale=locale),
        get_timezone_name(zone, locale=locale))


def format_day(day: date, lang: str) -> str:
    """A date with its weekday, in ``lang``."""
    from babel.dates import format_date

    return format_date(day, "full", locale=babel_locale(lang))
