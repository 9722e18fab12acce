"""Credentials: random bearer tokens shown once and stored only as SHA-256 hashes.

Tokens are 256-bit random strings, so a fast hash is enough (no password stretching is needed) and lets a
token be looked up by its hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token(prefix: str) -> str:
    """A fresh token such as `unit_3Jx…`: the prefix tells a person what the token is for."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def is_admin_token(token: str | None, admin_token: str) -> bool:
    return token is not None and hmac.compare_digest(token.encode(), admin_token.encode())
