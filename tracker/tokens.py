"""Opaque, expiring links: one key per purpose, so a token does one thing only.

A token is ``base64url(tag ‖ ciphertext)`` of the payload ``version ‖ issued-at ‖ id``,
sealed with a deterministic authenticated encryption built from HMAC-SHA256 alone (SIV:
the tag is a MAC of the plaintext and also the IV of an HMAC-counter keystream). Reading
one needs the secret: without it a token shows neither the request id nor its age, and
two tokens for one request share nothing visible. Any change to it fails the tag check.
The standard library does it all, so the Lambda package gains no crypto wheel.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
import time

PURPOSES = frozenset({"check", "manage", "unsubscribe"})
_VERSION = 1
_HEADER = struct.Struct(">BI")  # format version, issued at (Unix seconds)
_TAG = 16  # bytes of HMAC-SHA256 kept: 128-bit forgery resistance
_MAX_TOKEN = 200  # characters; longer is not ours, whatever it holds
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")


class BadToken(Exception):
    """The token is forged, truncated, or made for another purpose."""


class ExpiredToken(BadToken):
    """The token was genuine but is too old; ``request_id`` says whose it was."""

    def __init__(self, request_id: str | None):
        super().__init__("expired")
        self.request_id = request_id


def _keys(secret: str, purpose: str) -> tuple[bytes, bytes]:
    """Derive the purpose's MAC key and encryption key from the app secret."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    root = hmac.new(secret.encode(), b"esim-tracker/link/" + purpose.encode(), hashlib.sha256)
    mac_key = hmac.new(root.digest(), b"mac", hashlib.sha256).digest()
    enc_key = hmac.new(root.digest(), b"enc", hashlib.sha256).digest()
    return mac_key, enc_key


def _keystream(enc_key: bytes, iv: bytes, length: int) -> bytes:
    blocks = (hmac.new(enc_key, iv + struct.pack(">I", i), hashlib.sha256).digest()
              for i in range(-(-length // 32)))
    return b"".join(blocks)[:length]


def _xor(data: bytes, stream: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, stream, strict=True))


def make(secret: str, purpose: str, request_id: str, *, now: float | None = None) -> str:
    """Seal ``request_id`` for one purpose, stamped with the time it was made."""
    mac_key, enc_key = _keys(secret, purpose)
    issued = int(time.time() if now is None else now)
    plain = _HEADER.pack(_VERSION, issued) + request_id.encode()
    tag = hmac.new(mac_key, plain, hashlib.sha256).digest()[:_TAG]
    sealed = tag + _xor(plain, _keystream(enc_key, tag, len(plain)))
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def read(secret: str, purpose: str, token: str, *, max_age_seconds: int,
         now: float | None = None) -> str:
    """Return the request id in ``token``, or raise BadToken / ExpiredToken."""
    mac_key, enc_key = _keys(secret, purpose)
    if len(token) > _MAX_TOKEN or not _ALPHABET.fullmatch(token):
        raise BadToken("not a token")
    try:
        sealed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except binascii.Error as exc:
        raise BadToken("not base64") from exc
    if base64.urlsafe_b64encode(sealed).decode().rstrip("=") != token:
        raise BadToken("not canonical")  # unused low bits changed: still a changed token
    if len(sealed) <= _TAG + _HEADER.size:
        raise BadToken("too short")
    tag, body = sealed[:_TAG], sealed[_TAG:]
    plain = _xor(body, _keystream(enc_key, tag, len(body)))
    if not hmac.compare_digest(tag, hmac.new(mac_key, plain, hashlib.sha256).digest()[:_TAG]):
        raise BadToken("bad tag")
    version, issued = _HEADER.unpack_from(plain)
    try:
        request_id = plain[_HEADER.size:].decode()
    except UnicodeDecodeError as exc:  # only a key holder could seal this
        raise BadToken("bad payload") from exc
    if version != _VERSION:
        raise BadToken("unknown version")
    if (time.time() if now is None else now) - issued > max_age_seconds:
        raise ExpiredToken(request_id)
    return request_id


def owner(secret: str, purpose: str, token: str) -> str | None:
    """The request id of a genuine token, however old; None for anything else."""
    try:
        return read(secret, purpose, token, max_age_seconds=2**62)
    except BadToken:
        return None
