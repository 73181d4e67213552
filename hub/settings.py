"""Settings for every hub process, read once from `HUB_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.credentials import read_secret

Role = Literal["app", "owner"]
"""An agency's two Postgres roles: `owner` owns its database and runs the migrations (and
the ops commands that change tables); `app` may only read and write rows (`hub run`)."""

SUPERUSER = "postgres"
"""The embedded server's superuser, whose password `hub stack up` generates."""
MAX_IDENTIFIER = 63
"""Postgres silently truncates longer names, which could make two roles one."""
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
NODE_PORT_STEP = 10
"""The distance between the ports of two nodes of the local stack's cluster."""


class Settings(BaseSettings):
    """Where the hub finds Kafka and Postgres, and how it names and sizes what it creates.

    The same names are used by `docker-compose.yml`, so a setting means one thing everywhere.
    """

    model_config = SettingsConfigDict(env_prefix="HUB_", frozen=True, extra="ignore")

    # Kafka
    kafka_bootstrap: str | None = Field(
        default=None,
        description="host:port list of a running Kafka; unset means the local stack's broker",
    )
    kafka_port: int = Field(default=19092, description="local stack broker port")
    kafka_controller_port: int = Field(default=19093, description="local stack controller port")
    kafka_replication_port: int = Field(
        default=19094,
        description="local stack replication port (the listener brokers fetch replicas from; "
        "only a cluster of several nodes has one)",
    )
    kafka_brokers: int = Field(
        default=1, ge=1, le=9,
        description="how many KRaft nodes the local stack runs (`hub stack up --brokers N`), "
        "each broker and controller; node n listens on the three local ports plus "
        f"{NODE_PORT_STEP} x (n-1). With 3, set replication_factor 3 and min_insync_replicas 2",
    )
    topic_prefix: str = Field(
        default="", description="prefix of every topic and group, so two hubs can share a broker"
    )
    kafka_security_protocol: Literal["sasl_ssl", "plaintext"] = Field(
        default="sasl_ssl",
        description="how clients reach Kafka: `sasl_ssl` (SCRAM-SHA-512 over TLS, one principal "
        "per process, ACLs) or `plaintext` (no encryption, no identity: only for a trusted "
        "development cluster; the local stack then runs without authorizer)",
    )
    kafka_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CA that signed the brokers' certificates; unset means the "
        "local stack's own CA, <home>/tls/ca.crt",
    )
    kafka_credentials_dir: Path | None = Field(
        default=None,
        description="directory of the SCRAM passwords, one file <principal>.password each "
        "(0600); unset means <home>/secrets/kafka, where the local stack and `hub init` "
        "write the ones they create",
    )
    kafka_password_files: dict[str, Path] = Field(
        default_factory=dict,
        description="per principal (an agency's name, <agency>-front-door, ops, admin), the "
        'file holding its SCRAM password, as a JSON object (e.g. {"tax": '
        '"/run/secrets/tax.password"}); a principal not named here reads its file in '
        "kafka_credentials_dir",
    )
    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int = Field(default=1, ge=1)
    kafka_max_request_bytes: int = Field(
        default=1024 * 1024, ge=64 * 1024,
        description="the largest request a hub producer sends (aiokafka's max_request_size,"
        " Kafka's default record limit); an outbox row larger than that is parked, not sent"
        " (`hub outbox parked`)",
    )
    topic_retention_ms: int = Field(
        default=30 * DAY_MS, ge=HOUR_MS,
        description="how long Kafka keeps the records of a topic that is neither compacted "
        "nor a dead-letter topic (outcomes, requests, chain heads): a consumer stopped longer "
        "than this misses records, and says so (`hub run` names the partition)",
    )
    dead_letter_retention_ms: int = Field(
        default=14 * DAY_MS, ge=HOUR_MS,
        description="how long Kafka keeps dead letters and quarantined ones: they hold "
        "personal data, so they are kept only long enough to be fixed and redriven",
    )
    compaction_lag_ms: int = Field(
        default=7 * DAY_MS, ge=0,
        description="how long a compacted topic (the permit events) keeps an event after a "
        "newer one of the same permit arrived: the agencies' handlers act on each event, so "
        "a consumer must read it before compaction may remove it",
    )

    # Postgres
    database_url: str | None = Field(
        default=None,
        description="postgresql:// URL of a real server, with a user that may create roles "
        "and databases (only `hub init` and `hub stack up` connect with it); unset means the "
        "embedded server. Each agency gets its own database on it, named database_prefix + "
        "agency, and two roles",
    )
    database_urls: dict[str, str] = Field(
        default_factory=dict,
        description="per agency, the postgresql:// URL of its own database, as a JSON object "
        '(e.g. {"tax": "postgresql://tax@db.tax.example/permits"}); used as is for its '
        "migrations and its processes (that server manages its roles); an agency not named "
        "here gets its database and roles on the shared server",
    )
    database_password_file: Path | None = Field(
        default=None,
        description="file holding the password of database_url's user when the URL carries "
        "none (a Docker secret, so the administrator's password is never in the environment)",
    )
    database_secrets_dir: Path | None = Field(
        default=None,
        description="directory of the agency roles' password files, one per role named as "
        "the role (0600); unset means <home>/secrets/postgres, where `hub init` writes the "
        "ones that are missing",
    )
    postgres_port: int = Field(default=15432, description="embedded server port")
    database_prefix: str = Field(default="permithub_")

    # Local state (jars, data directories, pid files)
    kafka_libs: Path = Field(
        default=Path(__file__).resolve().parents[1] / ".cache" / "kafka-libs",
        description="the Kafka jars `make setup` resolves; by default the repository's own",
    )
    home: Path = Field(default=Path(".cache"), description="where the local stack keeps its files")
    keys_dir: Path | None = Field(
        default=None,
        description="the event-signing keys: `registry/` (every signer's public keys, shared "
        "with every service) and `private/<signer>/` (0600); unset means HUB_HOME/keys",
    )
    keys_registry_dir: Path | None = Field(
        default=None,
        description="the key registry, every signer's published keys (readable by every "
        "service, written only by `hub init` and `hub keys`); unset means <keys_dir>/registry",
    )
    keys_private_dir: Path | None = Field(
        default=None,
        description="this host's private keys, one 0700 directory per signer; unset means "
        "<keys_dir>/private",
    )

    # Consumer runtime
    batch_max_records: int = Field(default=2000, ge=1)
    batch_timeout_ms: int = Field(default=100, ge=0)
    retry_window_s: float = Field(
        default=60.0, gt=0,
        description="how long a consumer retries a batch failing with a fault that may pass (a"
        " deadlock, the server out of resources) before it applies the batch message by message"
        " and dead-letters the one that keeps failing; a connection fault is waited out however"
        " long it lasts",
    )

    # Evidence log
    evidence_head_interval_s: float = Field(
        default=30.0, gt=0,
        description="how often a publishing agency sends its evidence log's chain head (when"
        " the chain moved)",
    )

    # Metrics (`hub.metrics`)
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535,
        description="the port `hub run` serves Prometheus metrics on (`/metrics`); unset: no"
        " endpoint; 0: a free port, logged at start. One per process: give each agency's"
        " process its own (`hub run AGENCY --metrics-port`)",
    )
    metrics_address: str = Field(
        default="127.0.0.1",
        description="the address the metrics endpoint listens on: loopback unless the"
        " Prometheus agent scrapes from elsewhere",
    )

    # Calendar (`hub.clock`)
    clock_interval_s: float = Field(
        default=3600.0, gt=0,
        description="how often an agency with a calendar (the work-permit authority) does what"
        " has fallen due on the day, e.g. expires the permits whose end has passed; each run"
        " is idempotent, so a short interval costs only a query",
    )

    # Retention (`hub retention`, docs/privacy.md §5); each agency may override a period
    # with HUB_<AGENCY>_RETENTION_<NAME> (`hub.retention.periods`)
    retention_replaced_tables_days: int = Field(
        default=30, ge=1,
        description="days a view table replaced by `hub replay` (<table>__replaced_<id>) is"
        " kept for inspection after the switch, then dropped: it is a full copy of the view",
    )
    retention_qr_tokens_days: int = Field(
        default=7, ge=0,
        description="days a QR token's row (card_qr_tokens, ps_accepted_tokens) is kept after"
        " the token expired, then deleted: a token is refused after its expiry anyway",
    )
    retention_ended_permits_days: int = Field(
        default=365, ge=1,
        description="days an agency keeps a cancelled or expired permit in its view (and the"
        " rows that only serve it) after the permit's end, then erases it",
    )
    retention_evidence_values_days: int = Field(
        default=3 * 365, ge=1,
        description="days the evidence log keeps a record's exact bytes, then erases them;"
        " the row, its digest and the chain stay, so the log still verifies",
    )

    # Logging
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"

    @property
    def bootstrap(self) -> str:
        """The Kafka bootstrap servers the hub's clients connect to: every node of the local
        stack, so a client starts while any of them lives."""
        if self.kafka_bootstrap:
            return self.kafka_bootstrap
        return ",".join(f"127.0.0.1:{self.kafka_node_ports(n)[0]}"
                        for n in range(1, self.kafka_brokers + 1))

    def kafka_node_ports(self, node: int) -> tuple[int, int, int]:
        """The client, controller and replication ports of the local stack's node `node`
        (from 1)."""
        step = NODE_PORT_STEP * (node - 1)
        return (self.kafka_port + step, self.kafka_controller_port + step,
                self.kafka_replication_port + step)

    @property
    def secrets_dir(self) -> Path:
        """Where the Postgres passwords live, one 0600 file per role."""
        return self.database_secrets_dir or self.home / "secrets" / "postgres"

    def secret_file(self, role: str) -> Path:
        """The file holding one Postgres role's password."""
        return self.secrets_dir / role

    @property
    def kafka_tls_dir(self) -> Path:
        """Where the local stack keeps its CA and the Kafka node's key and certificate."""
        return self.home / "tls"

    def kafka_ca(self) -> Path:
        """The CA file clients verify the brokers with."""
        return self.kafka_ca_file or self.kafka_tls_dir / "ca.crt"

    def kafka_password_file(self, principal: str) -> Path:
        """The file holding one principal's SCRAM password."""
        if principal in self.kafka_password_files:
            return self.kafka_password_files[principal]
        directory = self.kafka_credentials_dir or self.home / "secrets" / "kafka"
        return directory / f"{principal}.password"

    def server_url(self) -> str:
        """URL of the shared server's maintenance database `postgres`, as its administrator
        (for `hub init` and the stack, never for an agency's processes)."""
        if self.database_url:
            return self._with_admin_password(self.database_url)
        password = read_secret(self.secret_file(SUPERUSER),
                               hint="start the embedded Postgres with `hub stack up`")
        return (f"postgresql://{SUPERUSER}:{quote(password, safe='')}"
                f"@127.0.0.1:{self.postgres_port}/postgres")

    def _with_admin_password(self, url: str) -> str:
        if self.database_password_file is None:
            return url
        parts = urlsplit(url)
        user, at, host = parts.netloc.rpartition("@")
        if not at or ":" in user:
            raise ValueError("HUB_DATABASE_PASSWORD_FILE needs HUB_DATABASE_URL to name a user "
                             "and no password, e.g. postgresql://postgres@db:5432/postgres")
        password = read_secret(self.database_password_file,
                               hint="it holds the password of HUB_DATABASE_URL's user")
        netloc = f"{user}:{quote(password, safe='')}@{host}"
        return urlunsplit(parts._replace(netloc=netloc))

    def database_name(self, agency: str) -> str:
        """The name of one agency's own database on the shared server."""
        return f"{self.database_prefix}{agency}"

    def role_name(self, agency: str, role: Role) -> str:
        """The name of one of an agency's two roles on the shared server."""
        name = f"{self.database_name(agency)}_{role}"
        if len(name.encode()) > MAX_IDENTIFIER:
            raise ValueError(f"role name {name!r} is longer than {MAX_IDENTIFIER} bytes;"
                             " shorten HUB_DATABASE_PREFIX")
        return name

    def has_own_server(self, agency: str) -> bool:
        """Whether the agency's database is given by its own URL (not created by the hub)."""
        return agency in self.database_urls

    def dsn(self, agency: str, role: Role = "app") -> str:
        """Connection URL of one agency's own database, as its runtime role unless `owner` is
        asked for; an agency with its own URL gets that URL for both."""
        if agency in self.database_urls:
            return self.database_urls[agency]
        user = self.role_name(agency, role)
        password = read_secret(self.secret_file(user), hint="run `hub init`")
        # Only the server's address is taken from its URL: a process never reads the
        # administrator's password to reach its own database.
        parts = urlsplit(self.database_url or f"postgresql://127.0.0.1:{self.postgres_port}")
        host = parts.netloc.rpartition("@")[2]
        netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
        return urlunsplit(parts._replace(netloc=netloc, path=f"/{self.database_name(agency)}"))

    @property
    def keys(self) -> Path:
        """Where the signing keys live (the registry and private keys, unless set apart)."""
        return self.keys_dir or self.home / "keys"

    @property
    def keys_registry(self) -> Path:
        """The key registry: every signer's published keys."""
        return self.keys_registry_dir or self.keys / "registry"

    @property
    def keys_private(self) -> Path:
        """This host's private keys, `<signer>/<kid>.pem`."""
        return self.keys_private_dir or self.keys / "private"

    def topic(self, name: str) -> str:
        """A topic or consumer-group name with this hub's prefix."""
        return f"{self.topic_prefix}{name}"
