"""Compose each email from its two templates, in the request's language."""

from __future__ import annotations

from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l

import operators
from tracker import i18n, policy, stats, tokens
from tracker.mail import Message
from tracker.model import Request

SUBJECTS = {
    policy.RECEIPT: _l("We are tracking your eSIM cancellation"),
    policy.CHECK: _l("Is your eSIM line really cancelled? Please check"),
    policy.REMINDER: _l("Reminder: please check your eSIM cancellation"),
    policy.ESCALATION: _l("Your eSIM line is still active: who to contact"),
    policy.RECHECK: _l("Please check your eSIM line again"),
}


def external_url(endpoint: str, **values) -> str:
    """An absolute link under BASE_URL (stage included), whatever served this request."""
    path = current_app.url_map.bind("localhost").build(endpoint, values)
    return current_app.config["BASE_URL"].rstrip("/") + path


def links(request: Request) -> dict[str, str]:
    """The signed links every email and page about this request may carry."""
    secret = current_app.config["SECRET_KEY"]
    lang = request.lang

    def link(endpoint: str, purpose: str) -> str:
        return external_url(endpoint, token=tokens.make(secret, purpose, request.id), lang=lang)

    return {"check": link("web.check", "check"), "manage": link("web.manage", "manage"),
            "unsubscribe": link("web.unsubscribe", "unsubscribe")}


def compose(request: Request) -> Message:
    """Render the request's pending email in its language."""
    kind = request.progress.next_kind
    operator = operators.get(request.operator)
    rules = current_app.extensions["tracker"].rules_for(request.operator, request.channel)
    first_check = policy.first_check_due(request.requested_on, rules,
                                         i18n.ZoneInfo(request.timezone))
    measured = current_app.extensions["stats"].measured(
        request.operator, request.channel, request.created_at) if kind == policy.RECEIPT else None
    return _render(kind, request, SUBJECTS[kind], channel=operator.steps_for(request.channel),
                   first_check=i18n.format_moment(first_check, request.timezone, request.lang),
                   rechecks_left=rules.max_rechecks - request.progress.rechecks,
                   measured=measured, timed=stats.is_timed(request.operator, request.channel))


def _render(template: str, request: Request, subject, **extra) -> Message:
    """Both parts of ``emails/<template>`` in the request's language, and the headers
    every email carries (RFC 8058 one-click unsubscribe)."""
    urls = links(request)
    with force_locale(request.lang):
        subject = str(subject)
        context = dict(request=request, operator=operators.get(request.operator),
                       lang=request.lang, links=urls, subject=subject, **extra)
        text = render_template(f"emails/{template}.txt", **context)
        html = render_template(f"emails/{template}.html", **context)
    headers = (("List-Unsubscribe", f"<{urls['unsubscribe']}>"),
               ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    return Message(subject=subject, text=text, html=html, headers=headers)


FRESH_LINKS_SUBJECT = _l("New links for your eSIM cancellation")


def compose_fresh_links(request: Request) -> Message:
    """The email sent when a traveller asks again after a link expired: new links only."""
    return _render("links", request, FRESH_LINKS_SUBJECT)
