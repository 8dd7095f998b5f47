"""Compose each email from its two templates, in the request's language."""

from __future__ import annotations

from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l

import operators
from tracker import i18n, policy, stats, tokens
from tracker.mail import Message
from tracker.model import Request

# Templates that stand in for the receipt: no request was made (not_yet), or there is
# nothing to ask an operator for (a reseller eSIM).
HOWTO, RESELLER = "howto", "reseller"

SUBJECTS = {
    policy.RECEIPT: _l("We are tracking your eSIM cancellation"),
    policy.CHECK: _l("Is your eSIM line really cancelled? Please check"),
    policy.REMINDER: _l("Reminder: please check your eSIM cancellation"),
    policy.ESCALATION: _l("Your eSIM line is still active: who to contact"),
    policy.RECHECK: _l("Please check your eSIM line again"),
    policy.ASK_AGAIN: _l("Is your eSIM number terminated now? Please check again"),
    policy.NUDGE: _l("Reminder: ask the operator to terminate your eSIM number"),
    policy.DELETE_PROFILE: _l("Your eSIM plan ends today: delete the profile"),
    HOWTO: _l("How to ask the operator to terminate your eSIM number"),
    RESELLER: _l("Your reseller eSIM: what to do"),
}


def external_url(endpoint: str, **values) -> str:
    """An absolute link under BASE_URL (stage included), whatever served this request."""
    path = current_app.url_map.bind("localhost").build(endpoint, values)
    return current_app.config["BASE_URL"].rstrip("/") + path


def links(request: Request, *, mailed: bool = False) -> dict[str, str]:
    """The signed links every email (``mailed``) and page about this request may carry."""
    secret = current_app.config["SECRET_KEY"]
    lang = request.lang

    def link(endpoint: str, purpose: str) -> str:
        token = tokens.make(secret, purpose, request.id, mailed=mailed)
        return external_url(endpoint, token=token, lang=lang)

    urls = {"check": link("web.check", "check"), "manage": link("web.manage", "manage"),
            "unsubscribe": link("web.unsubscribe", "unsubscribe")}
    operator = operators.for_request(request.operator)
    if operator.written:
        urls["write"] = external_url("web.write", code=operator.code, lang=lang)
    return urls


def next_step(operator, found: Request) -> tuple[bool, operators.Fact | None]:
    """Where the traveller seems to be (their browser's time zone) and the step to show
    first: what works from abroad, or in Azerbaijan; for a request already made by
    phone where a written route exists, that the call may only have closed the line."""
    abroad = found.timezone != "Asia/Baku"
    if found.progress.status == policy.NOT_ASKED:
        route = operator.route
        first = (route[0] if abroad and route else operator.in_country
                 or (route[0] if route else None))
        return abroad, first
    channel = operator.steps_for(found.channel)
    if found.channel == "call" and operator.written and channel and channel.steps[0].checked:
        return abroad, channel.steps[0]
    return abroad, None


def template_for(request: Request) -> str:
    """Which email the pending one is: the receipt becomes the steps or the reseller's."""
    kind = request.progress.next_kind
    if kind == policy.RECEIPT and request.progress.status == policy.NOT_ASKED:
        return HOWTO  # never "you asked": they have not
    if kind == policy.RECEIPT and request.progress.status == policy.GUIDED:
        return RESELLER
    return kind


def compose(request: Request) -> Message:
    """Render the request's pending email in its language."""
    template = template_for(request)
    operator = operators.for_request(request.operator)
    rules = current_app.extensions["tracker"].rules_for(request.operator, request.channel)
    first_check = policy.first_check_due(request.requested_on, rules,
                                         i18n.ZoneInfo(request.timezone))
    measured = (current_app.extensions["stats"].measured(
        request.operator, request.channel, request.created_at)
        if template == policy.RECEIPT else None)
    abroad, first_step = next_step(operator, request)
    return _render(template, request, SUBJECTS[template],
                   channel=operator.steps_for(request.channel),
                   abroad=abroad, first_step=first_step,
                   first_check=i18n.format_moment(first_check, request.timezone, request.lang),
                   plan_ends=(i18n.format_day(request.plan_ends_on, request.lang)
                              if request.plan_ends_on else None),
                   rechecks_left=rules.max_rechecks - request.progress.rechecks,
                   measured=measured, timed=stats.is_timed(request.operator, request.channel))


def _render(template: str, request: Request, subject, **extra) -> Message:
    """Both parts of ``emails/<template>`` in the request's language, and the headers
    every email carries (RFC 8058 one-click unsubscribe)."""
    urls = links(request, mailed=True)  # only these prove the mailbox (stats)
    with force_locale(request.lang):
        subject = str(subject)
        context = dict(request=request, operator=operators.for_request(request.operator),
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
