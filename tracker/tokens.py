"""Signed, expiring links: one salt per purpose, so a token does one thing only."""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

PURPOSES = frozenset({"check", "manage", "unsubscribe"})


class BadToken(Exception):
    """The token is forged, truncated, or made for another purpose."""


class ExpiredToken(BadToken):
    """The token was genuine but is too old; ``request_id`` says whose it was."""

    def __init__(self, request_id: str | None):
        super().__init__("expired")
        self.request_id = request_id


def _serializer(secret: str, purpose: str) -> URLSafeTimedSerializer:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    return URLSafeTimedSerializer(secret, salt=f"esim-tracker-{purpose}")


def make(secret: str, purpose: str, request_id: str) -> str:
    """Sign ``request_id`` for one purpose."""
    return _serializer(secret, purpose).dumps(request_id)


def read(secret: str, purpose: str, token: str, *, max_age_seconds: int) -> str:
    """Return the request id in ``token``, or raise BadToken / ExpiredToken."""
    serializer = _serializer(secret, purpose)
    try:
        value = serializer.loads(token, max_age=max_age_seconds)
    except SignatureExpired as exc:
        try:
            payload = serializer.load_payload(exc.payload)
        except BadSignature:
            payload = None
        raise ExpiredToken(payload if isinstance(payload, str) else None) from exc
    except BadSignature as exc:
        raise BadToken("bad signature") from exc
    if not isinstance(value, str):
        raise BadToken("bad payload")
    return value
