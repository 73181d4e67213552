"""The Docker secrets of `docker-compose.yml`: `python stack/compose_secrets.py` (once).

Writes, under `stack/secrets/` (git-ignored, 0700): the CA certificate and the Kafka node's
key and certificate for the host names `kafka` (inside the compose network) and
`localhost` (the host listener), made by `hub.stack.tls`; and one random SCRAM password per
principal of the installed agencies (`<principal>.password`, 0600). Existing files are
kept, so running it again changes nothing. Compose mounts each file as a secret, and each
container gets only the ones it needs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hub.acl import principals
from hub.kafka_credentials import ensure_password
from hub.registry import installed
from hub.settings import Settings
from hub.stack.tls import ensure_node_tls

SECRETS = Path(__file__).resolve().parent / "secrets"
HOSTS = ("kafka", "localhost", "127.0.0.1")


def main() -> int:
    """Make what is missing and list what the compose file expects."""
    SECRETS.mkdir(mode=0o700, exist_ok=True)
    tls = ensure_node_tls(SECRETS / "tls", HOSTS)
    settings = Settings(kafka_credentials_dir=SECRETS / "kafka")
    made = [p for p in principals(installed()) if ensure_password(settings, p)[1]]
    print(f"{tls.ca_cert}\n{tls.node_pem}")
    print(f"passwords in {SECRETS / 'kafka'}; new: {', '.join(made) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
