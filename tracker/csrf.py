"""CSRF tokens checked against the whole key ring, as links and sessions are.

Flask-WTF signs a form's token with ``SECRET_KEY`` and checks it with that key alone, so a
page rendered before a key rotation, or by a container that signs with another key of the
ring, would fail its CSRF check (a 400, the form sent again). During a rotation two keys
sign at once on different containers (README, "The key ring and its rotation"): every key
of the ring must verify. Tokens are still made by Flask-WTF, with the current key.
"""

from __future__ import annotations

from flask import current_app
from flask_wtf.csrf import _FlaskFormCSRF  # private, but the only hook for the check
from flask_wtf.csrf import validate_csrf as _validate_one
from wtforms.validators import ValidationError

from tracker import config


def validate_csrf(data: str | None) -> None:
    """Raise ValidationError unless ``data`` is this session's token under a ring key."""
    error = None
    for key in config.signing_keys(current_app.config):
        try:
            _validate_one(data, secret_key=key)
            return
        except ValidationError as exc:
            error = error or exc  # the current key's reason, as Flask-WTF would give
    raise error


class RingCSRF(_FlaskFormCSRF):
    """Flask-WTF's form CSRF, checked against every key of the ring."""

    def validate_csrf_token(self, form, field):
        validate_csrf(field.data)


class RingMeta:
    """A FlaskForm ``Meta`` whose CSRF check takes every key of the ring."""

    csrf_class = RingCSRF
