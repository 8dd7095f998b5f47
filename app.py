"""The app factory and the module-level WSGI app Zappa serves (``app.app``)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from flask import Flask, has_request_context, render_template, request
from flask_babel import Babel
from jinja2 import ChoiceLoader, ModuleLoader

import operators
from tracker import aws, config, i18n, logs, mail, metrics, policy, security, suppression
from tracker.emails import compose
from tracker.followups import Postman
from tracker.store import Store, StoreError

ROOT = Path(__file__).resolve().parent
# The templates compiled to Python by deploy/prebuild.py (only in the Lambda package):
# the first request imports their bytecode instead of lexing, parsing and compiling.
COMPILED_TEMPLATES = ROOT / "templates_compiled"
ERRORS = (400, 403, 404, 405, 409, 410, 413, 429, 500)


def create_app(overrides: dict | None = None) -> Flask:
    """Build the app: defaults, then the environment, then ``overrides``."""
    app = Flask(__name__, template_folder=str(ROOT / "templates"),
                static_folder=str(ROOT / "static"))
    app.config.update(config.from_environment())
    app.config.update(overrides or {})
    logs.configure()
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


def _postman(app: Flask) -> Postman:
    """Wire the store, SES and the rules; boto3 clients are built on first use."""
    cfg = app.config
    defaults = policy.Rules()

    def rules_for(code: str) -> policy.Rules:
        return defaults.with_overrides(operators.get(code).followup)

    return Postman(
        store=Store(_LazyTable(cfg["TABLE_NAME"]), lease_seconds=cfg["LEASE_SECONDS"],
                    address_key=functools.partial(suppression.address_key, cfg["SECRET_KEY"])),
        mailer=mail.SesMailer(lambda: aws.client("sesv2", max_attempts=1),
                              configuration_set=cfg.get("SES_CONFIGURATION_SET")),
        compose=compose, rules_for=rules_for, mail_from=cfg["MAIL_FROM"],
        send_rate=cfg["SEND_RATE"], max_attempts=cfg["MAX_SEND_ATTEMPTS"],
        reserve_millis=cfg["RESERVE_MILLIS"])


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
        logging.getLogger(__name__).exception("unhandled error")
    return render_template("error.html", code=code), code


def _store_unavailable(error):
    """DynamoDB failed after botocore's retries: a 503 the traveller can retry, not a 500."""
    logging.getLogger(__name__).error("store unavailable: %s", error)
    return render_template("error.html", code=503), 503, {"Retry-After": "30"}


app = create_app()
