"""Signed, expiring links: one salt per purpose, so a token does one thing only.

A token is itsdangerous's ``URLSafeTimedSerializer`` output: the request id, the time it
was issued and an HMAC-SHA256 over both, under a salt per purpose. It is signed, not
hidden: anyone holding a link can read its request id and its age. That is safe because
a request id is 128 random bits that grants nothing by itself; every page and every
action takes a token whose signature is valid for that page's purpose, and only the
server's key can make one.

Keys rotate: the first key of the ring signs, every key of the ring verifies (the app's
``SECRET_KEY`` and its ``SECRET_KEY_FALLBACKS``).

Tokens of the previous format (an SIV-like construction built from HMAC, before
itsdangerous) are still *read*, never made: unsubscribe links never expire, and emails
already sent carry them. See ``_read_legacy``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
import time
from collections.abc import Sequence

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode, base64_encode

PURPOSES = frozenset({"check", "manage", "unsubscribe"})
_MAX_TOKEN = 200  # characters; longer is not ours, whatever it holds
_NEVER = 2**62


class BadToken(Exception):
    """The token is forged, truncated, or made for another purpose."""


class ExpiredToken(BadToken):
    """The token was genuine but is too old; ``request_id`` says whose it was."""

    def __init__(self, request_id: str | None):
        super().__init__("expired")
        self.request_id = request_id


class _ClockedSigner(TimestampSigner):
    """itsdangerous's timestamp signer, stamping the time it is told (tests, old links)."""

    def __init__(self, *args, now: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._now = now

    def get_timestamp(self) -> int:
        return int(time.time() if self._now is None else self._now)


def _ring(keys: str | Sequence[str]) -> list[str]:
    """The keys, current first; a single string is a ring of one."""
    ring = [keys] if isinstance(keys, str) else [k for k in keys if k]
    if not ring:
        raise ValueError("no signing key")
    return ring


def _serializer(keys: str | Sequence[str], purpose: str,
                now: float | None = None) -> URLSafeTimedSerializer:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    # itsdangerous signs with the *last* key of its list and verifies with all of them.
    return URLSafeTimedSerializer(
        list(reversed(_ring(keys))), salt=f"esim-tracker/link/{purpose}",
        signer=_ClockedSigner, signer_kwargs={"digest_method": hashlib.sha256, "now": now})


# A link put in an email carries this mark beside its request id: only such a link
# proves its holder reads the request's mailbox (the stats count only answers given
# through one). A page's link (the confirmation page's check link) has none.
_MAILED = "mail"


def make(keys: str | Sequence[str], purpose: str, request_id: str, *,
         now: float | None = None, mailed: bool = False) -> str:
    """Sign ``request_id`` for one purpose with the ring's first key, stamped with ``now``;
    ``mailed`` for a link that goes into an email."""
    return _serializer(keys, purpose, now).dumps([request_id, _MAILED] if mailed
                                                 else request_id)


def read(keys: str | Sequence[str], purpose: str, token: str, *, max_age_seconds: int,
         now: float | None = None) -> str:
    """Return the request id in ``token``, or raise BadToken / ExpiredToken."""
    return read_link(keys, purpose, token, max_age_seconds=max_age_seconds, now=now)[0]


def read_link(keys: str | Sequence[str], purpose: str, token: str, *,
              max_age_seconds: int, now: float | None = None) -> tuple[str, bool]:
    """The request id in ``token`` and whether the link was made for an email (links of
    the previous format: no), or raise BadToken / ExpiredToken."""
    serializer = _serializer(keys, purpose)
    mailed = False
    if len(token) > _MAX_TOKEN:
        raise BadToken("too long")
    if "." not in token:
        request_id, issued = _read_legacy(_ring(keys), purpose, token)
    else:
        try:
            signature = token.rsplit(".", 1)[1]
            if base64_encode(base64_decode(signature)).decode() != signature:
                # The signature's last character has spare bits: a changed one that
                # decodes to the same bytes is still a changed token.
                raise BadToken("not canonical")
            request_id, stamped = serializer.loads(token, return_timestamp=True)
        except BadData as exc:
            raise BadToken("bad signature") from exc
        issued = stamped.timestamp()
        if isinstance(request_id, list) and len(request_id) == 2 and (
                request_id[1] == _MAILED):
            request_id, mailed = request_id[0], True
        if not isinstance(request_id, str):
            raise BadToken("bad payload")  # only a key holder could sign this
    if (time.time() if now is None else now) - issued > max_age_seconds:
        raise ExpiredToken(request_id)
    return request_id, mailed


def owner(keys: str | Sequence[str], purpose: str, token: str) -> str | None:
    """The request id of a genuine token, however old; None for anything else."""
    try:
        return read(keys, purpose, token, max_age_seconds=_NEVER)
    except BadToken:
        return None


# --- the previous format, read only ---------------------------------------------------
# Kept because unsubscribe links never expire (RFC 8058 clients POST them unattended, and
# stopping email must work from any email ever sent) and check/manage links in emails
# already sent live for LINK_MAX_AGE_DAYS. Nothing new is ever sealed this way. It is
# verified with every key of the ring, so these links survive a rotation too.
_LEGACY_VERSION = 1
_LEGACY_HEADER = struct.Struct(">BI")  # format version, issued at (Unix seconds)
_LEGACY_TAG = 16
_LEGACY_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")


def _read_legacy(ring: list[str], purpose: str, token: str) -> tuple[str, float]:
    """The request id and issue time of a token of the previous format, or BadToken."""
    if not _LEGACY_ALPHABET.fullmatch(token):
        raise BadToken("not a token")
    try:
        sealed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except binascii.Error as exc:
        raise BadToken("not base64") from exc
    if base64.urlsafe_b64encode(sealed).decode().rstrip("=") != token:
        raise BadToken("not canonical")  # unused low bits changed: still a changed token
    if len(sealed) <= _LEGACY_TAG + _LEGACY_HEADER.size:
        raise BadToken("too short")
    tag, body = sealed[:_LEGACY_TAG], sealed[_LEGACY_TAG:]
    for secret in ring:
        root = hmac.new(secret.encode(), b"esim-tracker/link/" + purpose.encode(),
                        hashlib.sha256).digest()
        mac_key = hmac.new(root, b"mac", hashlib.sha256).digest()
        enc_key = hmac.new(root, b"enc", hashlib.sha256).digest()
        stream = b"".join(hmac.new(enc_key, tag + struct.pack(">I", i), hashlib.sha256).digest()
                          for i in range(-(-len(body) // 32)))
        plain = bytes(a ^ b for a, b in zip(body, stream, strict=False))
        expected = hmac.new(mac_key, plain, hashlib.sha256).digest()[:_LEGACY_TAG]
        if hmac.compare_digest(tag, expected):
            break
    else:
        raise BadToken("bad tag")
    version, issued = _LEGACY_HEADER.unpack_from(plain)
    if version != _LEGACY_VERSION:
        raise BadToken("unknown version")
    try:
        return plain[_LEGACY_HEADER.size:].decode(), float(issued)
    except UnicodeDecodeError as exc:  # only a key holder could seal this
        raise BadToken("bad payload") from exc
