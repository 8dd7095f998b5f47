"""Headers every response carries: a strict CSP, HSTS, no sniffing, no referrer, no frames.

Pages carry signed links in their URLs, so no page may leak its address to another site
(``Referrer-Policy: no-referrer``), be framed (clickjacking the "delete" button), or run
script that is not our own file. The one inline ``<style>`` in the base template is
allowed by a per-response nonce; inline script is never allowed.
"""

from __future__ import annotations

import secrets

from flask import Flask, current_app, g, has_request_context, request

HSTS = "max-age=63072000; includeSubDomains"


def csp_nonce() -> str:
    """This response's nonce, for the ``<style nonce>`` of the base template."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


def _template_nonce() -> dict:
    """Pages get ``csp_nonce``; emails (rendered outside a request) need none."""
    return {"csp_nonce": csp_nonce()} if has_request_context() else {}


def content_security_policy(nonce: str | None, *, relaxed_styles: bool = False) -> str:
    """The policy: our own script file only, our styles only, no frames, no plugins."""
    style = "'self' 'unsafe-inline'" if relaxed_styles else "'self'"
    if nonce and not relaxed_styles:
        style += f" 'nonce-{nonce}'"
    return "; ".join((
        "default-src 'none'", "script-src 'self'", f"style-src {style}",
        "img-src 'self' data:", "form-action 'self'", "base-uri 'none'",
        "frame-ancestors 'none'"))


def _harden(response):
    headers = response.headers
    # The sandbox's outbox shows emails, whose HTML styles itself inline by necessity.
    relaxed = request.blueprint == "local"
    headers.setdefault("Content-Security-Policy",
                       content_security_policy(g.get("csp_nonce"), relaxed_styles=relaxed))
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if not current_app.config["LOCAL_MODE"]:
        # Over plain http://127.0.0.1 browsers ignore it anyway; there it would only
        # confuse someone who later serves something else from that host with TLS.
        headers.setdefault("Strict-Transport-Security", HSTS)
    if request.endpoint != "static":
        # Pages hold CSRF tokens and links that act on a request: no shared cache.
        headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app: Flask) -> None:
    """Add the headers to every response and the nonce to every template."""
    app.after_request(_harden)
    app.context_processor(_template_nonce)
