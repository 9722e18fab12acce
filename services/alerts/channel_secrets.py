"""Channel secrets at rest: the HMAC secret of a webhook and the signing secret of a DingTalk robot are stored
encrypted (Fernet: AES-128-CBC + HMAC-SHA256, with a key from `ALERTS_SECRET_KEY`), never in plain text.

A stored channel (the JSON kept in `bodies.channels`) carries `secret_encrypted` (a Fernet token) instead of
`secret`. `seal_channel` turns a channel as the API received it into its stored form; `channel_secret` gives the
plain secret back for a send, `unseal_channel` the whole channel as the API received it (in memory only). A stored
channel that still has a plain `secret` (written before the migration that encrypts them) is read as it is, so a
delivery never fails during a rolling upgrade.

Key rotation: `ALERTS_SECRET_KEY` may list several keys separated by commas; the first encrypts, all decrypt
(`MultiFernet`), so a new key goes first and the old one stays until the rows were re-encrypted.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

SECRET_FIELD = "secret"
ENCRYPTED_FIELD = "secret_encrypted"

# Development only (refused elsewhere by the settings): derived from a fixed phrase so that a developer's stored
# secrets stay readable across restarts without configuring anything.
DEVELOPMENT_SECRET_KEY = base64.urlsafe_b64encode(
    hashlib.sha256(b"labour-risk alerts development channel secrets").digest()
).decode()


class SecretUnreadable(Exception):
    """A stored secret that none of the configured keys decrypts (the key was changed without keeping the old)."""


def cipher_for(keys: str) -> MultiFernet:
    """The cipher of a comma-separated list of Fernet keys (the first encrypts); ValueError if one is malformed."""
    fernets = [Fernet(key.strip().encode()) for key in keys.split(",") if key.strip()]
    if not fernets:
        raise ValueError("no key")
    return MultiFernet(fernets)


def seal_channel(channel: Mapping[str, Any], cipher: MultiFernet) -> dict[str, Any]:
    """The stored form of `channel`: its plain `secret` (if any) replaced by `secret_encrypted`."""
    stored = {key: value for key, value in channel.items() if key != SECRET_FIELD}
    secret = channel.get(SECRET_FIELD)
    if secret is not None:
        stored[ENCRYPTED_FIELD] = cipher.encrypt(str(secret).encode()).decode()
    return stored


def channel_secret(channel: Mapping[str, Any], cipher: MultiFernet) -> str | None:
    """The plain secret of a stored channel (None if it has none). Raises `SecretUnreadable` if no key fits."""
    token = channel.get(ENCRYPTED_FIELD)
    if token is None:
        plain = channel.get(SECRET_FIELD)
        return None if plain is None else str(plain)
    try:
        return cipher.decrypt(str(token).encode()).decode()
    except InvalidToken as error:
        raise SecretUnreadable("a channel secret cannot be decrypted with the configured ALERTS_SECRET_KEY") from error


def public_channel(channel: Mapping[str, Any]) -> dict[str, Any]:
    """A stored channel as the API shows it: no secret in any form."""
    return {key: value for key, value in channel.items() if key not in (SECRET_FIELD, ENCRYPTED_FIELD)}


def unseal_channel(channel: Mapping[str, Any], cipher: MultiFernet) -> dict[str, Any]:
    """A stored channel with its plain `secret` again, as the API received it: for a sender, in memory only (never
    store or log it). Raises `SecretUnreadable` if no configured key decrypts it."""
    secret = channel_secret(channel, cipher)
    plain = public_channel(channel)
    if secret is not None:
        plain[SECRET_FIELD] = secret
    return plain


def reseal_channel(channel: Mapping[str, Any], cipher: MultiFernet) -> dict[str, Any]:
    """`channel` with its secret encrypted under the first key (plain or under an older key before)."""
    return seal_channel(unseal_channel(channel, cipher), cipher)
