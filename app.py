"""The app factory and the module-level WSGI app Zappa serves (``app.app``)."""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from flask import Flask, has_request_context, render_template, request
from flask_babel import Babel
from jinja2 import ChoiceLoader, ModuleLoader

import operators
from tracker import (
    aws,
    config,
    i18n,
    limits,
    logs,
    mail,
    metrics,
    policy,
    security,
    stats,
    suppression,
)
from tracker.emails import compose
from tracker.followups import Postman
from tracker.store import Store, StoreError

ROOT = Path(__file__).resolve().parent
# The templates compiled to Python by deploy/prebuild.py (only in the Lambda package):
# the first request imports their bytecode instead of lexing, parsing and compiling.
COMPILED_TEMPLATES = ROOT / "templates_compiled"
ERRORS = (400, 403, 404, 405, 409, 410, 413, 429, 500)


class _Flask(Flask):
    """Flask, except that an unhandled error is logged by ``_error_page``, not here."""

    def log_exception(self, exc_info) -> None:
        # Flask's own line names the request's path, and a path may hold a link token.
        pass


def create_app(overrides: dict | None = None) -> Flask:
    """Build the app: defaults, then the environment, then ``overrides``."""
    app = _Flask(__name__, template_folder=str(ROOT / "templates"),
                static_folder=str(ROOT / "static"))
    app.config.update(config.from_environment())
    app.config.update(overrides or {})
    logs.configure()
    if not config.on_lambda():  # on Lambda, once its secrets are in (load_stored_secrets)
        config.check(app.config)

    Babel(app, locale_selector=i18n.select_locale, default_translation_directories=str(
        ROOT / "translations"))
    app.extensions["tracker"] = _postman(app)

    from tracker import web

    app.register_blueprint(web.bp)
    if app.config["LOCAL_MODE"]:
        from tracker import outbox

        app.register_blueprint(outbox.bp)
    for code in ERRORS:
        app.register_error_handler(code, _error_page)
    app.register_error_handler(StoreError, _store_unavailable)
    app.jinja_env.globals.update(languages=i18n.NAMES, switch_url=i18n.switch_url)
    if COMPILED_TEMPLATES.is_dir():
        app.jinja_env.loader = ChoiceLoader([ModuleLoader(str(COMPILED_TEMPLATES)),
                                             app.jinja_env.loader])
    app.context_processor(_page_language)
    app.after_request(_count_form_posts)
    security.init_app(app)

    from tracker import cli

    cli.register(app)
    return app


def load_stored_secrets(app: Flask) -> None:
    """Put the stage's stored secrets in the app's config, once, then check it.

    On Lambda the entry handler calls this at every invocation (only the first one
    reads): AWS's Parameters and Secrets extension answers in the INVOKE phase only.
    Elsewhere ``create_app`` has read them already.
    """
    if app.extensions.get("stored_secrets_loaded"):
        return
    app.config.update(config.secret_settings(config.with_stored_secrets()))
    config.check(app.config)
    app.extensions["stored_secrets_loaded"] = True


def _postman(app: Flask) -> Postman:
    """Wire the store, SES and the rules; boto3 clients are built on first use."""
    cfg = app.config
    defaults = policy.Rules()
    store = Store(_LazyTable(cfg["TABLE_NAME"]), lease_seconds=cfg["LEASE_SECONDS"],
                  # The peppers are read when a key is made: on Lambda they arrive after
                  # this, at the first invocation (handlers/entry.py).
                  address_key=lambda address: suppression.address_key(
                      config.address_pepper(cfg), address),
                  older_address_keys=lambda address: [
                      suppression.address_key(p, address)
                      for p in config.address_peppers(cfg)[1:]],
                  stats_place=lambda address, operator, month: limits.stats_place(
                      config.address_pepper(cfg), address, operator, month))
    measurements = app.extensions["stats"] = stats.Measurements(
        store.stats_rows, ttl=cfg["STATS_CACHE_SECONDS"], clock=time.monotonic,
        # Any failure to read them (botocore's connection errors are no StoreError) falls
        # back to the defaults: a figure must never stop a receipt from being recorded.
        min_requests=cfg["STATS_MIN_REQUESTS"], unavailable=(Exception,))
    clock = cfg.get("CLOCK") or (lambda: datetime.now(UTC))

    def rules_for(code: str, channel: str | None = None) -> policy.Rules:
        """The operator's rules; given the channel, the first check follows the data."""
        rules = defaults.with_overrides(operators.for_request(code).followup)
        if channel is None:
            return rules
        measured = measurements.measured(code, channel, clock())
        return dataclasses.replace(rules, processing_days=stats.first_check_days(
            measured, rules.processing_days))

    return Postman(
        store=store,
        mailer=mail.SesMailer(lambda: aws.client("sesv2", max_attempts=aws.SEND.attempts),
                              configuration_set=cfg.get("SES_CONFIGURATION_SET")),
        compose=compose, rules_for=rules_for, mail_from=cfg["MAIL_FROM"],
        send_rate=cfg["SEND_RATE"], max_attempts=cfg["MAX_SEND_ATTEMPTS"],
        reserve_millis=cfg["RESERVE_MILLIS"], **_lease_clock(cfg))


def _lease_clock(cfg) -> dict:
    """Tests may hand the leases a clock of their own (``LEASE_CLOCK``); else the real one."""
    return {"clock": cfg["LEASE_CLOCK"]} if cfg.get("LEASE_CLOCK") else {}


class _LazyTable:
    """The boto3 Table, built on first use so importing the app costs no boto3."""

    def __init__(self, name: str):
        self.name = name

    def __getattr__(self, attr):
        return getattr(aws.table(self.name), attr)


def _page_language() -> dict:
    """Every page knows its language; emails pass theirs explicitly."""
    return {"lang": i18n.select_locale()} if has_request_context() else {}


def _count_form_posts(response):
    """Each POST of the form is one EMF metric: accepted (303) or rejected (anything else)."""
    if request.method == "POST" and request.endpoint == "web.form":
        accepted = response.status_code == 303
        metrics.emit({metrics.FORM_ACCEPTED: float(accepted),
                      metrics.FORM_REJECTED: float(not accepted)})
    return response


def _error_page(error):
    code = getattr(error, "code", 500) or 500
    if code == 500:
        # What failed and where, never what it said: an exception's text may hold an
        # address or a token. The endpoint names the route (``web.check``), never the
        # path, which carries tokens; ``where`` is the innermost frame of the raise.
        # The tracker's own logger, so the line is JSON on Lambda too.
        original = getattr(error, "original_exception", None) or error
        found = {"error": type(original).__name__,
                 "endpoint": request.endpoint if has_request_context() else None,
                 "where": _where(original.__traceback__)}
        logging.getLogger("tracker.errors").error(
            "unhandled error {error} in {endpoint} at {where}".format(**found), extra=found)
    return render_template("error.html", code=code), code


def _where(tb) -> str | None:
    """``file:line:function`` of a traceback's innermost frame, the file relative to the
    project (or to site-packages) so the line names code, never a machine's paths."""
    if tb is None:
        return None
    frame = traceback.extract_tb(tb)[-1]
    path = Path(frame.filename)
    try:
        name = path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        name = path.as_posix().rpartition("site-packages/")[2] or path.name
    return f"{name}:{frame.lineno}:{frame.name}"


def _store_unavailable(error):
    """DynamoDB failed after botocore's retries: a 503 the traveller can retry, not a 500."""
    logging.getLogger(__name__).error("store unavailable: %s", error)
    return render_template("error.html", code=503), 503, {"Retry-After": "30"}


app = create_app()
