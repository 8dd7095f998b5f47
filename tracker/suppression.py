"""Addresses that must never be mailed again (hard bounces, complaints).

Stored as a keyed hash, never in clear: ``pk = "SUPP#<hmac-sha256 hex>"``.
"""

from __future__ import annotations

import hashlib
import hmac


def address_key(secret: str, address: str) -> str:
    """The table key of an address's suppression item (case-insensitive)."""
    digest = hmac.new(secret.encode(), address.strip().lower().encode(), hashlib.sha256)
    return f"SUPP#{digest.hexdigest()}"
