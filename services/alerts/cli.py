"""Operator commands of the alerts service: `python -m services.alerts.cli reseal-secrets`.

`reseal-secrets` finishes a rotation of the key that encrypts channel secrets at rest (webhook HMAC secrets, robot
signing secrets). The steps:

1. generate a key: `python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`;
2. put it FIRST in `ALERTS_SECRET_KEY`, the old key after a comma, and restart the alerts replicas (the first key
   encrypts, all keys decrypt, so deliveries keep working throughout);
3. run this command with the same `ALERTS_SECRET_KEY`: every secret is re-encrypted under the new key, in one
   transaction;
4. remove the old key from `ALERTS_SECRET_KEY` and restart again.

It prints a JSON summary and exits 1 when a secret could not be opened with any configured key (those channels are
left as they were: their deliveries fail until the body's channel is saved again with its secret).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Sequence

from services.alerts import service
from services.alerts.channel_secrets import DEVELOPMENT_SECRET_KEY
from services.alerts.service import ResealCounts
from services.alerts.settings import AlertsSettings
from shared.db import create_engine, session_factory, transaction


async def reseal(settings: AlertsSettings) -> ResealCounts:
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with transaction(session_factory(engine)) as session:
            return await service.reseal_channel_secrets(session, settings.secret_key or DEVELOPMENT_SECRET_KEY)
    finally:
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.alerts.cli", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("reseal-secrets", help="re-encrypt every channel secret under the first ALERTS_SECRET_KEY")
    parser.parse_args(argv)
    counts = asyncio.run(reseal(AlertsSettings()))
    sys.stdout.write(json.dumps(dataclasses.asdict(counts)) + "\n")
    return 1 if counts.unreadable else 0


if __name__ == "__main__":
    sys.exit(main())
