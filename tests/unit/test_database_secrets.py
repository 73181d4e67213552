"""Password files, the connection URLs built from them, SCRAM verifiers, and the embedded
server's refusal of a data directory made before passwords; no server needed."""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from hub.credentials import ensure_secret, read_secret
from hub.errors import NotReady
from hub.roles import scram_verifier
from hub.settings import SUPERUSER, Settings
from hub.stack.local import LocalStack
from hub.stack.postgres import EmbeddedPostgres, PostgresServerError


def test_a_generated_secret_is_private_and_kept(tmp_path: Path) -> None:
    """Generated once into a 0600 file in a 0700 directory, then read back unchanged."""
    path = tmp_path / "secrets" / "postgres" / "role"
    first = ensure_secret(path)
    assert len(first) >= 40
    assert ensure_secret(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["role"]


def test_a_missing_secret_names_its_file_and_what_to_do(tmp_path: Path) -> None:
    """The error says where the password should be and which command makes it."""
    with pytest.raises(NotReady, match=r"no password file .*/role; run `hub init`"):
        read_secret(tmp_path / "role", hint="run `hub init`")


def _with_secrets(tmp_path: Path, **fields: object) -> Settings:
    settings = Settings(home=tmp_path, **fields)  # type: ignore[arg-type]
    for name in (SUPERUSER, "permithub_card_app", "permithub_card_owner"):
        ensure_secret(settings.secret_file(name))
    return settings


def test_the_embedded_server_url_carries_the_superuser_password(tmp_path: Path) -> None:
    """Without HUB_DATABASE_URL the administrator's URL holds the generated password."""
    settings = _with_secrets(tmp_path, postgres_port=15999)
    url = urlsplit(settings.server_url())
    assert (url.username, url.hostname, url.port, url.path) == (
        SUPERUSER, "127.0.0.1", 15999, "/postgres")
    assert url.password == read_secret(settings.secret_file(SUPERUSER), hint="")


@pytest.mark.parametrize("server", [None, "postgresql://admin:pw@db.example:6543/postgres"
                                          "?sslmode=require"])
def test_an_agency_dsn_is_one_of_its_roles_on_its_own_database(
    tmp_path: Path, server: str | None
) -> None:
    """The runtime role by default, the owner on request: each with its own password, on
    the agency's database, keeping the server's address and options, never the admin."""
    settings = _with_secrets(tmp_path, database_url=server)
    for role, user in (("app", "permithub_card_app"), ("owner", "permithub_card_owner")):
        url = urlsplit(settings.dsn("card", role=role))  # type: ignore[arg-type]
        assert (url.username, url.path) == (user, "/permithub_card")
        assert url.password == read_secret(settings.secret_file(user), hint="")
        if server is not None:
            assert (url.hostname, url.port, url.query) == ("db.example", 6543, "sslmode=require")
    assert settings.dsn("card") == settings.dsn("card", role="app")


def test_an_agency_with_its_own_url_uses_it_as_is(tmp_path: Path) -> None:
    """HUB_DATABASE_URLS: that server manages the agency's roles; no password file read."""
    own = "postgresql://tax@db.tax.example/permits"
    settings = Settings(home=tmp_path, database_urls={"tax": own})
    assert settings.dsn("tax") == settings.dsn("tax", role="owner") == own


def test_a_role_without_a_password_file_says_run_hub_init(tmp_path: Path) -> None:
    """Before `hub init` there is no role password: one clear error, no URL."""
    with pytest.raises(NotReady, match="run `hub init`"):
        Settings(home=tmp_path).dsn("card")


def test_a_mounted_secret_is_read_without_touching_its_directory(tmp_path: Path) -> None:
    """A Docker secret's directory belongs to someone else: an existing file is only read."""
    mounted = tmp_path / "run-secrets"
    mounted.mkdir(mode=0o755)
    mounted.chmod(0o755)
    (mounted / "permithub_card_app").write_text("given\n")
    assert ensure_secret(mounted / "permithub_card_app") == "given"
    assert stat.S_IMODE(mounted.stat().st_mode) == 0o755


def test_role_passwords_and_the_administrator_s_may_be_secret_files(tmp_path: Path) -> None:
    """HUB_DATABASE_SECRETS_DIR holds the roles' files; HUB_DATABASE_PASSWORD_FILE the
    password of HUB_DATABASE_URL's user, which then names none (Docker secrets)."""
    (tmp_path / "permithub_card_app").write_text("app pw\n")
    (tmp_path / "admin").write_text("admin/pw\n")
    settings = Settings(home=tmp_path / "home", database_secrets_dir=tmp_path,
                        database_url="postgresql://postgres@db:5432/postgres",
                        database_password_file=tmp_path / "admin")
    assert settings.secret_file("permithub_card_app") == tmp_path / "permithub_card_app"
    assert settings.server_url() == "postgresql://postgres:admin%2Fpw@db:5432/postgres"
    card = urlsplit(settings.dsn("card"))
    assert (card.username, unquote(card.password or ""), card.hostname, card.path) == (
        "permithub_card_app", "app pw", "db", "/permithub_card")
    with_password = settings.model_copy(
        update={"database_url": "postgresql://postgres:inline@db/postgres"})
    with pytest.raises(ValueError, match="no password"):
        with_password.server_url()


def test_a_role_name_postgres_would_truncate_is_refused() -> None:
    """Names over 63 bytes would be cut by Postgres, maybe into another agency's role."""
    with pytest.raises(ValueError, match="HUB_DATABASE_PREFIX"):
        Settings(database_prefix="p" * 60).role_name("card", "owner")


def test_a_scram_verifier_has_postgres_form() -> None:
    """SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey, new salt each time."""
    verifier = scram_verifier("pencil", salt=b"0123456789abcdef")
    head, keys = verifier.rsplit("$", 1)
    algorithm, iterations_salt = head.split("$")
    iterations, salt = iterations_salt.split(":")
    assert (algorithm, iterations, base64.b64decode(salt)) == (
        "SCRAM-SHA-256", "4096", b"0123456789abcdef")
    assert [len(base64.b64decode(k)) for k in keys.split(":")] == [32, 32]
    assert "pencil" not in verifier
    assert scram_verifier("pencil") != scram_verifier("pencil")


def _old_data_dir(tmp_path: Path, hba: str) -> EmbeddedPostgres:
    data = tmp_path / "stack" / "postgres"
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("18\n")
    (data / "pg_hba.conf").write_text(hba)
    return EmbeddedPostgres(data, 15999, password_file=tmp_path / "secrets" / "postgres" / "pg")


def test_a_data_dir_made_with_trust_is_refused_with_one_line(tmp_path: Path) -> None:
    """A cluster initialised before passwords is not started: one line says to re-create."""
    postgres = _old_data_dir(tmp_path, "# comment trust\nlocal all all trust\n"
                                       "host all all 127.0.0.1/32 trust\n")
    with pytest.raises(PostgresServerError, match="trust") as refused:
        postgres.start()
    assert "`hub stack down`" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_data_dir_without_its_password_file_is_refused(tmp_path: Path) -> None:
    """scram rules but the superuser password lost: nobody could connect, say so."""
    postgres = _old_data_dir(tmp_path, "local all all scram-sha-256\n")
    with pytest.raises(PostgresServerError, match=r"password file .* is missing"):
        postgres.check_auth()


def test_stack_up_refuses_a_trust_data_dir_before_starting_anything(tmp_path: Path) -> None:
    """The check runs with the port checks, so no Kafka is started beside a refused Postgres."""
    _old_data_dir(tmp_path, "local all all trust\n")
    stack = LocalStack(Settings(home=tmp_path, kafka_bootstrap="127.0.0.1:1"))
    with pytest.raises(PostgresServerError, match="re-create it"):
        stack.up()
