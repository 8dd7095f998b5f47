"""Addresses that must never be mailed again (hard bounces, complaints).

Stored as a keyed hash, never in clear: ``pk = "SUPP#<hmac-sha256 hex>"``, keyed with
``ADDRESS_PEPPER`` (``config.address_pepper``), which never rotates, so rotating
``SECRET_KEY`` forgets no suppression. The exact address is hashed (case aside), not its
mailbox: a bounce of one alias says nothing of another.
"""

from __future__ import annotations

import hashlib
import hmac


def address_key(pepper: str, address: str) -> str:
    """The table key of an address's suppression item (case-insensitive)."""
    digest = hmac.new(pepper.encode(), address.strip().lower().encode(), hashlib.sha256)
    return f"SUPP#{digest.hexdigest()}"
