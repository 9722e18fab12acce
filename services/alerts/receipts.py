"""One-click receipt links: the signed token in `/r/{token}` with which a notified body confirms receipt of an alert
without signing in.

A token names one (alert, body) pair, the alert's level it was sent for and when it stops working; it is
HMAC-SHA256-signed with the service's link secret (`ALERTS_LINK_SECRET`), so it cannot be forged or altered.
What the token cannot know is decided by the service at use: it is single-use because a body's receipt at that
level, once recorded (by this link or by the API), makes it used; it dies with the alert (resolved) and is
superseded when the alert's level was raised since (the newer message carries a newer link).

Layout (72 characters of unpadded base64url): version (1 byte) · alert id (16, a UUID) · body id (16, a UUID) ·
level (1, its rank) · expiry (4, unix seconds) · MAC (the first 16 bytes of the HMAC-SHA256 of all before it).
Pure functions: no clock, no database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from shared.events import RiskLevel

VERSION = 1
_BODY = struct.Struct(">B16s16sBI")
_MAC_BYTES = 16
_CONTEXT = b"alerts.receipt.v1:"  # domain separation: this secret signs nothing else
_LEVELS = {level.rank: level for level in RiskLevel}
TOKEN_LENGTH = len(base64.urlsafe_b64encode(bytes(_BODY.size + _MAC_BYTES)).rstrip(b"="))


@dataclass(frozen=True)
class ReceiptClaim:
    """What a receipt token says: body `body_id` may confirm alert `alert_id` (sent at `level`) until `expires_at`."""

    alert_id: str
    body_id: str
    level: RiskLevel
    expires_at: datetime


class TokenProblem(StrEnum):
    """Why a token is refused before the alert is even looked at."""

    invalid = "invalid"  # malformed, forged or altered: 403
    expired = "expired"  # past its expiry: 410


def sign(secret: str, claim: ReceiptClaim) -> str:
    """The token for `claim` (alert and body ids must be UUIDs, as this service makes them)."""
    expires = int(claim.expires_at.timestamp())
    body = _BODY.pack(VERSION, uuid.UUID(claim.alert_id).bytes, uuid.UUID(claim.body_id).bytes, claim.level.rank,
                      expires)
    return base64.urlsafe_b64encode(body + _mac(secret, body)).rstrip(b"=").decode()


def verify(secret: str, token: str, now: datetime) -> ReceiptClaim | TokenProblem:
    """The claim of a genuine, unexpired token, or why it is refused."""
    if len(token) != TOKEN_LENGTH:
        return TokenProblem.invalid
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return TokenProblem.invalid
    body, mac = raw[: _BODY.size], raw[_BODY.size :]
    if len(body) != _BODY.size or not hmac.compare_digest(mac, _mac(secret, body)):
        return TokenProblem.invalid
    version, alert_id, body_id, rank, expires = _BODY.unpack(body)
    if version != VERSION or rank not in _LEVELS:
        return TokenProblem.invalid
    expires_at = datetime.fromtimestamp(expires, UTC)
    if expires_at <= now:
        return TokenProblem.expired
    return ReceiptClaim(alert_id=str(uuid.UUID(bytes=alert_id)), body_id=str(uuid.UUID(bytes=body_id)),
                        level=_LEVELS[rank], expires_at=expires_at)


def expiry(issued_at: datetime, days: float) -> datetime:
    """When a link issued at `issued_at` stops working at the latest (the alert's resolution ends it sooner)."""
    return issued_at + timedelta(days=days)


def receipt_url(inbox_url: str, token: str) -> str:
    """The receipt page lives beside the inbox on the alerts service: `<inbox_url's parent>/r/<token>`."""
    return f"{inbox_url.rstrip('/').rsplit('/', 1)[0]}/r/{token}"


def alert_url(inbox_url: str, alert_id: str) -> str:
    """The alert's page in the inbox: a fragment, so the id never reaches a server log or a proxy."""
    return f"{inbox_url}#/alerts/{alert_id}"


def _mac(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), _CONTEXT + body, hashlib.sha256).digest()[:_MAC_BYTES]
