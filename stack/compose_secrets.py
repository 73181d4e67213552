"""The Docker secrets of `docker-compose.yml`: `make compose-secrets` (once, before
`docker compose up`).

Writes, under `stack/secrets/` (git-ignored and outside the image's build context; every
directory 0700, every file 0600):

- `tls/`: the CA certificate and the Kafka node's key and certificate for the host names
  `kafka` (inside the compose network) and `localhost` (the host listener), made by
  `hub.stack.tls`;
- `kafka/<principal>.password`: one random SCRAM password per Kafka principal of the
  installed agencies;
- `postgres/postgres`: the Postgres superuser's password (only the server and `init` get
  it), and `postgres/<role>`: each agency's owner and runtime role passwords, named as the
  roles are (`hub.settings.Settings.role_name`), which is how the hub finds them in
  HUB_DATABASE_SECRETS_DIR;
- the secrets agencies declare of their own (`Agency.secret_files`), where they are by
  default under a home whose `secrets/` is this directory: social insurance's
  `social_insurance/person-key.pepper`.

Existing files are kept, so running it again changes nothing. Compose mounts each file as a
secret, and each container gets only the ones it needs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hub.acl import principals
from hub.credentials import ensure_secret
from hub.kafka_credentials import ensure_password
from hub.registry import installed
from hub.settings import SUPERUSER, Settings
from hub.stack.tls import ensure_node_tls

SECRETS = Path(__file__).resolve().parent / "secrets"
HOSTS = ("kafka", "localhost", "127.0.0.1")
CONTAINER_UID = 1000
"""The uid the Kafka and hub containers run as (apache/kafka's appuser; the hub image's
default HUB_UID): compose mounts file secrets with the host's owner and mode."""


def make(root: Path) -> list[Path]:
    """Make what is missing under `root` (`<home>/secrets`); every secret file it holds,
    made now or before."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    tls = ensure_node_tls(root / "tls", HOSTS)
    settings = Settings(kafka_credentials_dir=root / "kafka",
                        database_secrets_dir=root / "postgres")
    registry = installed()
    for principal in principals(registry):
        ensure_password(settings, principal)
    roles = [SUPERUSER, *(settings.role_name(a.name, role)
                          for a in registry for role in ("owner", "app"))]
    for role in roles:
        ensure_secret(settings.secret_file(role))
    own = [path for a in registry if a.secret_files
           for path in a.secret_files(Settings(home=root.parent))]
    for path in own:
        ensure_secret(path)
    files = [tls.ca_cert, tls.node_pem,
             *(settings.kafka_password_file(p) for p in principals(registry)),
             *(settings.secret_file(r) for r in roles), *own]
    for path in files:
        # The CA certificate is public, but compose mounts every secret alike: 0600 all.
        path.chmod(0o600)
    return files


def main() -> int:
    """Make what is missing and say where it is."""
    files = make(SECRETS)
    print(f"{len(files)} secret files under {SECRETS} (0600)")
    if hasattr(os, "getuid") and os.getuid() != CONTAINER_UID:
        print(f"note: they belong to uid {os.getuid()}, the containers run as uid "
              f"{CONTAINER_UID}: run this as uid {CONTAINER_UID}, or build with "
              f"HUB_UID={os.getuid()} (the Kafka image's user stays {CONTAINER_UID})",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
