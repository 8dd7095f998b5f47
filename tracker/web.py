"""The blueprint: thin views over forms, tracking and the store."""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import HiddenField
from wtforms.validators import ValidationError

import operators
from tracker import config, csrf, i18n, limits, policy, stats, tokens, tracking
from tracker.emails import compose_fresh_links, links, next_step
from tracker.forms import RequestForm, WrittenRequestForm
from tracker.model import Request
from tracker.store import OverLimit, StoreError, Suppressed
from tracker.written import written_request

log = logging.getLogger(__name__)
bp = Blueprint("web", __name__)


def _now() -> datetime:
    return current_app.config.get("CLOCK", lambda: datetime.now(UTC))()


def _postman():
    return current_app.extensions["tracker"]


def _time_left():
    """The invocation's remaining time on Lambda (Zappa puts its context in the WSGI
    environ), which bounds an email's retried record; None off Lambda."""
    return getattr(request.environ.get("lambda.context"), "get_remaining_time_in_millis",
                   None)


def _lang() -> str:
    return i18n.select_locale()


RENEWABLE = frozenset({"check", "manage"})  # the links that expire


class AnswerForm(FlaskForm):
    """The verification page's two buttons."""

    Meta = csrf.RingMeta  # a page from a container that signs with another ring key
    answer = HiddenField()


class ActionForm(FlaskForm):
    """A button that changes something (stop emails, delete my data)."""

    Meta = csrf.RingMeta


class OneClickForm(FlaskForm):
    """RFC 8058 one-click unsubscribe: mail providers POST it with no cookie."""

    class Meta:
        csrf = False


def _load(token: str, purpose: str) -> Request:
    """The request a link points at; 404 for a bad link, 410 for an old one."""
    # Stopping email must work from any email ever sent, however old (RFC 8058 clients
    # POST it unattended); it only ever stops mail for the one request.
    days = None if purpose == "unsubscribe" else current_app.config["LINK_MAX_AGE_DAYS"]
    try:
        request_id, g.link_mailed = tokens.read_link(
            config.signing_keys(current_app.config), purpose, token,
            max_age_seconds=days * 86400 if days else 2**62)
    except tokens.ExpiredToken:
        abort(_expired_page(token, purpose))
    except tokens.BadToken:
        abort(404)
    found = _postman().store.get(request_id)
    if found is None:
        abort(404)
    g.request_lang = found.lang  # pages about a request speak its language
    return found


@bp.route("/", methods=["GET", "POST"])
def form():
    """Show the form; on a valid POST store the request and send the receipt."""
    now = _now()
    form = RequestForm(now=now)
    if "switch_lang" in request.form:
        i18n.switch_to(request.form["switch_lang"])
        return render_template("form.html", form=_switched(form, now))
    if not form.validate_on_submit():
        return render_template("form.html", form=form), 400 if request.method == "POST" else 200
    secret = current_app.config["SECRET_KEY"]
    new = Request(
        # Keyed by the ring key that signed the submission id, not the current one: the
        # same form sent across a key rotation is the same request.
        id=tracking.request_id_for(form.submission_secret, form.content_key()),
        email=form.normalised_email, operator=form.operator.data,
        phone_last4=form.national_number[-4:], channel=form.channel.data,
        requested_on=form.asked_on, timezone=form.zone, lang=_lang(), created_at=now,
        progress=policy.initial(form.channel.data, form.operator.data),
        plan_ends_on=form.plan_ends_on.data)
    quotas = limits.submission_quotas(
        current_app.config, client=limits.client_address(request.environ),
        address=new.email, now=now)
    try:
        created = tracking.submit(_postman(), new, now=now, quotas=quotas,
                                  time_left_millis=_time_left())
    except OverLimit as exc:
        return _over_limit(form, exc.quota, now)
    except Suppressed:
        return _suppressed(form, now)
    except StoreError as exc:
        # DynamoDB failed past botocore's retries. The form keeps its submission id, so
        # pressing again stores the request once even if this write did land.
        log.error("submission not stored: %s", type(exc).__name__, extra={"request": new.id})
        page = render_template("form.html", form=form, notice=NOT_STORED_MESSAGE)
        return page, 503, {"Retry-After": "5"}
    if not created:  # a re-post of a stored form: show its confirmation again
        log.info("duplicate submission", extra={"request": new.id})
    guess = operators.guess_operator(form.national_number)
    hint = guess.code if guess and guess.code != new.operator else None
    token = tokens.make(secret, "manage", new.id)
    return redirect(url_for(".done", token=token, lang=_lang(), hint=hint), 303)


def _switched(posted: RequestForm, now: datetime) -> RequestForm:
    """The form in the new language: what was typed in the visible fields, unchecked.

    Only from our own page (its CSRF token), or another site could fill a traveller's
    form; and never the hidden fields, so the submission id is always this server's.
    """
    try:
        csrf.validate_csrf(request.form.get("csrf_token"))
    except ValidationError:
        return RequestForm(formdata=None, now=now)
    names = posted.visible_field_names()
    kept = MultiDict([(k, v) for k, v in request.form.items(multi=True) if k in names])
    return RequestForm(formdata=kept, now=now)


@bp.get("/done/<token>")
def done(token: str):
    """The confirmation page: the operator's steps, what to check, when we write."""
    found = _load(token, "manage")
    hint = request.args.get("hint")
    return render_template("done.html", **_page_context(found, token),
                           hint=operators.OPERATORS.get(hint), form=ActionForm())


@bp.route("/check/<token>", methods=["GET", "POST"])
def check(token: str):
    """The verification page; GET only shows, the POST records the answer."""
    found = _load(token, "check")
    answer_form = AnswerForm()
    if request.method == "POST":
        reply = request.form.get("answer")
        if not answer_form.validate_on_submit() or reply not in policy.ANSWERS:
            return render_template("check.html", **_page_context(found, token),
                                   form=answer_form, invalid=True), 400
        try:
            # The page asks for proof (its hidden proof_asked); a client that posts
            # only CONTRACT.md's fields keeps the contract's "cancelled verifies".
            _answer(found, reply, request.form.getlist("evidence"),
                    proof_asked=bool(request.form.get("proof_asked")))
        except tracking.TooEarly:
            log.info("answer before the first check refused", extra={"request": found.id})
            return render_template("check.html", **_page_context(found, token),
                                   form=answer_form, too_early=True), 400
        return redirect(url_for(".check", token=token, lang=_lang()), 303)
    return render_template("check.html", **_page_context(found, token), form=answer_form)


@bp.post("/asked/<token>")
def asked(token: str):
    """A not_yet traveller has asked the operator now: start the check timer."""
    found = _load(token, "check")
    if not ActionForm().validate_on_submit():
        return render_template("check.html", **_page_context(found, token),
                               form=AnswerForm(), invalid=True), 400
    for _ in range(2):
        if found is None or found.progress.status != policy.NOT_ASKED:
            break  # asked already (a double click): the page shows when we write
        try:
            tracking.asked(_postman(), found, now=_now())
            break
        except tracking.Conflict:
            found = _postman().store.get(found.id)
    else:
        abort(409)
    return redirect(url_for(".check", token=token, lang=_lang()), 303)


@bp.route("/write/<code>", methods=["GET", "POST"])
def write(code: str):
    """Draft a written termination request; nothing typed here is stored or logged."""
    operator = operators.OPERATORS.get(code)
    if operator is None or not operator.written:
        abort(404)
    form = WrittenRequestForm()
    draft = None
    if request.method == "POST":
        if not form.validate_on_submit():
            return render_template("write.html", operator=operator, form=form), 400
        draft = written_request(operator, form.national_number, form.full_name.data.strip(),
                                today=_now().astimezone(policy.BAKU).date())
        # The answer holds the full number and the name: no cache may keep a copy.
        return render_template("write.html", operator=operator, form=form, draft=draft), 200, {
            "Cache-Control": "no-store"}
    return render_template("write.html", operator=operator, form=form, draft=draft)


def _answer(found: Request, reply: str, evidence: list[str] = (), *,
            proof_asked: bool = True) -> None:
    """Record the answer; if the job (or another tap) wrote meanwhile, read again and
    retry: a repeat of the answer just recorded is then recognised and changes nothing."""
    for _ in range(3):
        if found is None or found.progress.status not in policy.ANSWERABLE:
            return
        try:
            tracking.answer(_postman(), found, reply, now=_now(), evidence=evidence,
                            proof_asked=proof_asked, mailed=g.link_mailed,
                            time_left_millis=_time_left())
            return
        except tracking.Conflict:
            found = _postman().store.get(found.id)
    abort(409)


@bp.get("/manage/<token>")
def manage(token: str):
    """Status, timeline, and the buttons to stop emails or delete everything."""
    found = _load(token, "manage")
    return render_template("manage.html", **_page_context(found, token), form=ActionForm())


@bp.post("/manage/<token>/stop")
def stop(token: str):
    """Stop every further email for this request."""
    found = _load(token, "manage")
    if not ActionForm().validate_on_submit():
        return _manage_again(found, token)
    _stop(found, "stopped:manage")
    return redirect(url_for(".manage", token=token, lang=_lang()), 303)


@bp.post("/manage/<token>/delete")
def delete(token: str):
    """Delete the request and all it holds, at once."""
    found = _load(token, "manage")
    if not ActionForm().validate_on_submit():
        return _manage_again(found, token)
    _postman().store.delete(found.id)
    log.info("request deleted", extra={"request": found.id})
    return redirect(url_for(".deleted", lang=_lang()), 303)


@bp.get("/deleted")
def deleted():
    return render_template("deleted.html")


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe(token: str):
    """One-click unsubscribe; a GET (link scanners follow them) only offers the button."""
    found = _load(token, "unsubscribe")
    if request.method == "POST":
        _stop(found, "stopped:unsubscribe")
        return render_template("unsubscribed.html", request_=found)
    if found.progress.closed:  # nothing left to stop (and a language switch lands here)
        return render_template("unsubscribed.html", request_=found)
    return render_template("unsubscribe.html", request_=found, form=OneClickForm())


@bp.post("/renew/<purpose>/<token>")
def renew(purpose: str, token: str):
    """Email fresh links for an expired one, to the address stored on its request."""
    # Only the links that expire can be renewed: an unsubscribe link never does, and a
    # link still valid needs no new one.
    request_id = None
    if purpose in RENEWABLE:
        try:
            tokens.read(config.signing_keys(current_app.config), purpose, token,
                        max_age_seconds=current_app.config["LINK_MAX_AGE_DAYS"] * 86400)
        except tokens.ExpiredToken as expired:
            request_id = expired.request_id
        except tokens.BadToken:
            pass
    if request_id is None:
        abort(404)
    if not ActionForm().validate_on_submit():
        return _expired_page(token, purpose, invalid=True, status=400)
    client, now = limits.client_address(request.environ), _now()

    def quotas(found: Request) -> tuple[limits.Quota, ...]:
        return limits.fresh_link_quotas(current_app.config, client=client,
                                        request_id=found.id, address=found.email, now=now)

    outcome = tracking.send_fresh_links(_postman(), request_id, quotas=quotas,
                                        compose=compose_fresh_links)
    log.info("fresh links asked for", extra={"request": request_id, "outcome": outcome})
    return redirect(url_for(".renewed", lang=_lang()), 303)


@bp.get("/renewed")
def renewed():
    """The same neutral answer whatever happened: it must not reveal whether it worked."""
    return render_template("renewed.html")


@bp.get("/stats")
def stats_page():
    """Measured processing times per operator and channel; small cells show nothing."""
    measurements = current_app.extensions["stats"]
    summaries = measurements.summaries(_now())
    return render_template("stats.html", summaries=summaries, stats=stats,
                           operators=operators.OPERATORS,
                           min_requests=measurements.min_requests,
                           months=stats.WINDOW_MONTHS, max_days=stats.MAX_DAYS,
                           percent=functools.partial(_percent, i18n.babel_locale(_lang())))


def _percent(locale: str, share: float) -> str:
    from babel.numbers import format_percent

    return format_percent(share, locale=locale)


# Over-limit answers, by limit; what was typed stays in the form under the message.
LIMIT_MESSAGES = {
    limits.IP_HOUR: _l("Many forms were sent from your network in the last hour, so we "
                       "paused it. Nothing was saved. What you typed is kept below: send "
                       "it again in an hour."),
    limits.ADDRESS_DAY: _l("This email address has had several requests today, so we paused "
                           "it. Nothing was saved. What you typed is kept below: send it "
                           "again tomorrow, or use another address."),
}
NOT_STORED_MESSAGE = _l("We could not save your request just now. What you typed is kept "
                        "below: please send it again. It will not be recorded twice.")
SUPPRESSED_MESSAGE = _l("We cannot email this address: mail to it bounced, or was reported "
                        "as unwanted. Enter another address.")


def _over_limit(form: RequestForm, quota: limits.Quota, now: datetime):
    """429, the form re-shown as typed under a message saying which limit and when."""
    log.info("over limit", extra={"limit": quota.name})
    page = render_template("form.html", form=form, notice=LIMIT_MESSAGES[quota.name])
    response = make_response(page, 429)
    response.headers["Retry-After"] = str(quota.retry_after(now))
    return response


def _suppressed(form: RequestForm, now: datetime):
    """400, the address refused on its field; the refusal counts against the client.

    Saying so lets a traveller whose mail bounced give another address instead of
    waiting for emails that never come. It also tells anyone whether an address is on
    the list, so each such answer counts against the network's hourly limit: nobody
    tests addresses by the thousand.
    """
    try:
        _postman().store.spend(limits.network_quotas(
            current_app.config, client=limits.client_address(request.environ), now=now))
    except OverLimit as exc:
        return _over_limit(form, exc.quota, now)
    form.email.errors.append(SUPPRESSED_MESSAGE)
    return render_template("form.html", form=form), 400


def _expired_page(token: str, purpose: str, *, invalid: bool = False, status: int = 410):
    """410, with a button that emails fresh links to the request's own address."""
    page = render_template("expired.html", token=token, purpose=purpose, form=ActionForm(),
                           invalid=invalid)
    return make_response(page, status)


def _manage_again(found: Request, token: str):
    """A button whose CSRF check failed: the same page again, saying so, nothing done."""
    return render_template("manage.html", **_page_context(found, token), form=ActionForm(),
                           invalid=True), 400


def _stop(found: Request, why: str) -> None:
    tracking.stop_emails(_postman(), found, now=_now(), why=why)


def _page_context(found: Request, token: str) -> dict:
    """What every page about one request shows."""
    postman = _postman()
    operator = operators.for_request(found.operator)
    rules = postman.rules_for(found.operator, found.channel)
    tz = i18n.ZoneInfo(found.timezone)
    lang = _lang()
    first_check = policy.first_check_due(found.requested_on, rules, tz)
    history_whats = [e.what for e in found.history]
    early = policy.before_first_check(found.progress, history_whats)
    check_due = found.progress.due_at if found.progress.next_kind == policy.CHECK else None
    abroad, first_step = next_step(operator, found)
    return dict(
        abroad=abroad, first_step=first_step,
        check_token=tokens.make(current_app.config["SECRET_KEY"], "check", found.id),
        last_answer=next((w for w in reversed(history_whats) if w.startswith("answer:")),
                         None),
        found=found, token=token, operator=operator, lang=lang,
        channel=operator.steps_for(found.channel), links=links(found),
        first_check=i18n.format_moment(first_check, found.timezone, lang),
        next_email=(i18n.format_moment(found.progress.due_at, found.timezone, lang)
                    if found.progress.due_at else None),
        requested_on=i18n.format_day(found.requested_on, lang),
        plan_ends=(i18n.format_day(found.plan_ends_on, lang) if found.plan_ends_on else None),
        history=[(i18n.format_moment(e.at, found.timezone, lang), e.what)
                 for e in found.history],
        # Before the first check email only "cancelled" is offered; we ask anyway then.
        early=early,
        first_ask=(i18n.format_moment(check_due or first_check, found.timezone, lang)
                   if early else None),
        answered_still_active=any(e.what == "answer:still_active" for e in found.history),
        measured=current_app.extensions["stats"].measured(found.operator, found.channel,
                                                          _now()))
