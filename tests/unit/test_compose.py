"""docker-compose.yml against the hub it runs: no Docker needed, so the file cannot rot.

Every reference resolves (services, secrets, volumes); every HUB_* variable is a setting the
hub reads; every installed agency runs, logs in and signs as itself with only its own
secrets and private keys; `init` holds them all; the key registry is shared read-only; and
`make compose-secrets` (stack/compose_secrets.py) makes exactly the files compose mounts,
0600, where git ignores them.
"""

from __future__ import annotations

import importlib.util
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

import pytest

from hub.acl import principals
from hub.agency import Agency
from hub.registry import installed
from hub.settings import SUPERUSER, Settings

yaml = pytest.importorskip("yaml", reason="PyYAML is a dev dependency: pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SECRETS_DIR = "./stack/secrets/"
INIT = "init"
RUN_SECRETS = PurePosixPath("/run/secrets")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def hub_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services running the hub image (the hub's own processes)."""
    return {n: s for n, s in compose["services"].items()
            if s.get("image") == "permithub/hub:local"}


def secret_targets(service: dict[str, Any]) -> dict[str, str]:
    """Where each of a service's secrets is mounted (file name under /run/secrets) → source."""
    out = {}
    for s in service.get("secrets", []):
        if isinstance(s, str):
            out[s] = s
        else:
            out[s.get("target", s["source"])] = s["source"]
    return out


def mounts(service: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """A service's volume mounts: (source, container path, read-only)."""
    for v in service.get("volumes", []):
        source, target, *mode = v.split(":")
        yield source, target, mode == ["ro"]


def env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def the_settings(service: dict[str, Any]) -> Settings:
    """The hub's settings as that container reads them (its environment only)."""
    return Settings.model_validate({k.removeprefix("HUB_").lower(): v
                                    for k, v in env(service).items() if k.startswith("HUB_")})


def own_secrets(agency: Agency, service: dict[str, Any]) -> set[PurePosixPath]:
    """Where the container finds the secrets the agency declares of its own (its pepper)."""
    if agency.secret_files is None:
        return set()
    with pytest.MonkeyPatch.context() as patch:  # its settings read the container's variables
        for name, value in env(service).items():
            patch.setenv(name, value)
        return {PurePosixPath(p) for p in agency.secret_files(the_settings(service))}


def test_every_reference_resolves_and_nothing_is_left_unused(compose: dict[str, Any]) -> None:
    """Secrets, named volumes and dependencies name what the file defines, and everything
    defined is used."""
    services, secrets, volumes = compose["services"], compose["secrets"], compose["volumes"]
    used_secrets: set[str] = set()
    used_volumes: set[str] = set()
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name
        for target, source in secret_targets(service).items():
            assert source in secrets, f"{name}: secret {source} is not defined"
            assert "/" not in target, f"{name}: secret target {target} must be a file name"
            used_secrets.add(source)
        for source, _, _ in mounts(service):
            if not source.startswith((".", "/")):
                assert source in volumes, f"{name}: volume {source} is not defined"
                used_volumes.add(source)
    assert set(secrets) == used_secrets
    assert set(volumes) == used_volumes


def test_every_hub_variable_is_a_setting_the_hub_reads(compose: dict[str, Any]) -> None:
    """A HUB_* name that no settings class reads would be silently ignored."""
    known = {f"HUB_{f}".upper() for f in Settings.model_fields}
    for agency in installed():
        if agency.settings is not None:
            prefix = str(agency.settings.model_config.get("env_prefix", ""))
            known |= {f"{prefix}{f}".upper() for f in agency.settings.model_fields}
    for name, service in hub_services(compose).items():
        unknown = {k for k in env(service) if k.startswith("HUB_")} - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which no settings read"
        the_settings(service)  # and their values are valid


def test_kafka_is_sasl_ssl_and_every_file_a_setting_names_is_a_mounted_secret(
    compose: dict[str, Any],
) -> None:
    """Each hub container reaches Kafka over SASL_SSL with the CA and its password mounted
    as secrets, and Postgres with its role's password mounted where the settings look."""
    for name, service in hub_services(compose).items():
        settings, targets = the_settings(service), secret_targets(service)
        assert settings.kafka_security_protocol == "sasl_ssl"
        for path in (settings.kafka_ca(), settings.secrets_dir / "x",
                     settings.kafka_password_file("x")):
            assert PurePosixPath(path).parent == RUN_SECRETS, (name, path)
        assert settings.kafka_ca().name in targets, name
        if settings.database_password_file is not None:
            assert PurePosixPath(settings.database_password_file).parent == RUN_SECRETS
            assert settings.database_password_file.name in targets, name
        url = settings.database_url or ""
        login = url.split("//", 1)[1].rpartition("@")[0]
        assert ":" not in login, f"{name}: a password in HUB_DATABASE_URL"
        if name != INIT:
            assert login == "", f"{name}: a runtime container logs in as its role only"


def test_each_agency_runs_as_itself_with_only_its_own_secrets(compose: dict[str, Any]) -> None:
    """Per installed agency, one `hub run AGENCY` service holding its Kafka password, its
    runtime role's password and the secrets it declares of its own (mounted where its
    settings look), nothing else: not its owner role's, no other agency's."""
    services = hub_services(compose)
    runners = {tuple(s["command"]): n for n, s in services.items()}
    for agency in installed():
        name = runners.get(("run", agency.name))
        assert name is not None, f"no service runs `hub run {agency.name}`"
        settings = the_settings(services[name])
        targets = secret_targets(services[name])
        own = own_secrets(agency, services[name])
        assert all(p.parent == RUN_SECRETS for p in own), (name, own)
        assert set(targets) == {
            settings.kafka_ca().name,
            settings.kafka_password_file(agency.name).name,
            settings.role_name(agency.name, "app"),
            *(p.name for p in own),
        }, name
        assert not settings.has_own_server(agency.name)  # its roles are on the shared server


def test_init_holds_every_password_and_logs_in_as_the_administrator(
    compose: dict[str, Any],
) -> None:
    """`hub init` registers every principal and every role, and is the only hub service
    with the superuser's password; the server reads the same secret."""
    init = compose["services"][INIT]
    assert init["command"] == ["init"]
    settings, targets = the_settings(init), secret_targets(init)
    registry = installed()
    for principal in principals(registry):
        assert settings.kafka_password_file(principal).name in targets, principal
    for agency in registry:
        for role in ("owner", "app"):
            assert settings.role_name(agency.name, role) in targets
        for path in own_secrets(agency, init):  # a migration may need them (a re-key)
            assert path.parent == RUN_SECRETS
            assert path.name in targets, path
    assert settings.database_password_file is not None
    superuser = targets[settings.database_password_file.name]
    url = settings.database_url or ""
    assert url.startswith(f"postgresql://{SUPERUSER}@")
    holders = [n for n, s in compose["services"].items() if superuser in
               secret_targets(s).values()]
    assert sorted(holders) == sorted([INIT, "postgres"])
    postgres = compose["services"]["postgres"]
    password_file = PurePosixPath(env(postgres)["POSTGRES_PASSWORD_FILE"])
    assert password_file.parent == RUN_SECRETS
    assert secret_targets(postgres)[password_file.name] == superuser
    assert "POSTGRES_PASSWORD" not in env(postgres)
    for name, service in hub_services(compose).items():
        depends = service.get("depends_on", {})
        if name != INIT:
            assert depends[INIT]["condition"] == "service_completed_successfully", name


def test_the_key_registry_is_shared_read_only_and_private_keys_stay_with_their_signer(
    compose: dict[str, Any],
) -> None:
    """Every hub service mounts the registry where HUB_KEYS_REGISTRY_DIR says, read-only but
    in `init`; each signer's private keys are one volume, mounted into `init` and into the
    service that signs with them only (an agency: its outcomes and its token keys)."""
    registry = installed()
    purposes = registry.key_purposes()
    services = hub_services(compose)
    registry_volume = None
    signed_by: dict[str, set[str]] = {s: set() for s in purposes}
    for name, service in services.items():
        settings = the_settings(service)
        by_target = {PurePosixPath(t): (src, ro) for src, t, ro in mounts(service)}
        source, read_only = by_target.pop(PurePosixPath(settings.keys_registry))
        registry_volume = registry_volume or source
        assert source == registry_volume
        assert read_only == (name != INIT), name
        for target, (source, read_only) in by_target.items():
            assert target.parent == PurePosixPath(settings.keys_private), (name, target)
            assert target.name in purposes, f"{name}: {target.name} is no signer"
            assert source == f"keys-{target.name}"
            assert not read_only
            signed_by[target.name].add(name)
    runners = {s["command"][1]: n for n, s in services.items() if s["command"][0] == "run"}
    needs: dict[str, set[str]] = {s: {INIT} for s in purposes}
    for agency in registry:
        own = [agency.name] if agency.publishes else []
        for signer in (*own, *(k.signer for k in agency.token_keys)):
            needs[signer].add(runners[agency.name])
    assert signed_by == needs


def test_the_hub_image_makes_a_mount_point_per_signer_and_runs_unprivileged() -> None:
    """The Dockerfile creates each signer's private directory from the registry (so a new
    volume starts owned by `hub`), and keeps secrets out of its build context."""
    dockerfile = (ROOT / "stack" / "Dockerfile").read_text()
    assert "installed().key_purposes()" in dockerfile
    assert "USER hub" in dockerfile
    ignored = (ROOT / "stack" / "Dockerfile.dockerignore").read_text().split()
    assert "stack/secrets" in ignored


def _compose_secrets() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compose_secrets",
                                                  ROOT / "stack" / "compose_secrets.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_compose_secrets_makes_every_secret_file_0600_and_git_ignores_them(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """Every file compose mounts is made by stack/compose_secrets.py, 0600 in 0700
    directories, nothing more; they live where git ignores them."""
    files = {Path(s["file"]) for s in compose["secrets"].values()}
    assert all(str(f).startswith(SECRETS_DIR.removeprefix("./")) for f in files)
    made = _compose_secrets().make(tmp_path / "secrets")
    relative = {Path(SECRETS_DIR) / p.relative_to(tmp_path / "secrets") for p in made}
    assert relative == files
    for path in made:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, path.parent
    again = _compose_secrets().make(tmp_path / "secrets")
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in made]
    probe = SECRETS_DIR.removeprefix("./") + "kafka/admin.password"
    ignored = subprocess.run(["git", "check-ignore", "-q", probe], cwd=ROOT, check=False)
    assert ignored.returncode == 0, f"{probe} is not git-ignored"
