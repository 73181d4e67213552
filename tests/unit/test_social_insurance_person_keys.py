"""Social insurance's person keys: HMAC-SHA256 under the deployment's pepper, never a plain
hash of guessable input, and a pepper file the agency refuses unless it is private and long
enough (docs/privacy.md §6)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import date
from pathlib import Path

import pytest

from consumers.social_insurance import service
from consumers.social_insurance.identity import PersonKeys
from consumers.social_insurance.pepper import load_person_keys
from consumers.social_insurance.settings import SocialInsuranceSettings
from hub.bootstrap import init_secrets
from hub.credentials import ensure_secret
from hub.errors import NotReady
from hub.registry import installed
from hub.settings import Settings

PEPPER = bytes(range(32))
BIRTH = date(1988, 3, 14)


def test_the_same_input_under_the_same_pepper_gives_the_same_key() -> None:
    """Stable across processes: the key depends on the input and the pepper only (case of
    the passport's letters aside, as a counter may type them)."""
    key = PersonKeys(PEPPER).passport("DE", "C4J7KL921", BIRTH)
    assert key == PersonKeys(bytes(PEPPER)).passport("de", "c4j7kl921", BIRTH)
    assert key != PersonKeys(PEPPER).passport("DE", "C4J7KL921", date(1988, 3, 15))
    assert PersonKeys(PEPPER).permit("156000000000000042") == \
        PersonKeys(PEPPER).permit("156000000000000042")


def test_another_pepper_gives_another_key_and_names_itself() -> None:
    """Two deployments never share keys, and each key says which pepper made it."""
    ours, theirs = PersonKeys(PEPPER), PersonKeys(secrets.token_bytes(32))
    assert ours.passport("DE", "C4J7KL921", BIRTH) != theirs.passport("DE", "C4J7KL921", BIRTH)
    assert ours.permit("156000000000000042") != theirs.permit("156000000000000042")
    assert ours.kid != theirs.kid
    kind, kid, digest = ours.passport("DE", "C4J7KL921", BIRTH).split(":")
    assert (kind, kid, len(digest)) == ("passport", ours.kid, 64)


def test_the_key_is_not_the_unsalted_hash_nor_holds_the_passport() -> None:
    """What the keys were before: SHA-256 of the input, which a dictionary of passport
    numbers and birth dates reverses. The keyed one is neither that nor contains it."""
    keys = PersonKeys(PEPPER)
    key = keys.passport("DE", "C4J7KL921", BIRTH)
    unsalted = hashlib.sha256(b"DE|C4J7KL921|1988-03-14").hexdigest()
    assert unsalted not in key
    assert "C4J7KL921" not in key
    assert hashlib.sha256(b"156000000000000042").hexdigest() not in keys.permit(
        "156000000000000042")


def test_a_passport_and_a_permit_never_share_a_key() -> None:
    """The kind of input is part of what is keyed."""
    keys = PersonKeys(PEPPER)
    assert keys.permit("X").split(":")[2] != keys.passport("X", "", BIRTH).split(":")[2]


def test_a_pepper_shorter_than_32_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        PersonKeys(b"x" * 31)


def _write(path: Path, text: str, mode: int) -> Path:
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def test_a_generated_pepper_file_loads(tmp_path: Path) -> None:
    """What `hub init` writes (`hub.credentials.ensure_secret`) is a pepper the agency takes."""
    path = tmp_path / "secrets" / "social_insurance" / "person-key.pepper"
    ensure_secret(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    keys = load_person_keys(path)
    assert keys.pepper == base64.urlsafe_b64decode(path.read_text().strip() + "=")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_pepper_file_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = _write(tmp_path / "pepper", secrets.token_urlsafe(32), mode)
    with pytest.raises(NotReady, match=r"readable by others.*chmod 600") as refused:
        load_person_keys(path)
    assert path.read_text().strip() not in str(refused.value), "never the secret itself"


@pytest.mark.parametrize("text", ["", "c2hvcnQ", secrets.token_urlsafe(31), "!!!!"])
def test_a_short_or_empty_pepper_file_is_refused(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path / "pepper", text, 0o600)
    with pytest.raises(NotReady, match="fewer than 32 random bytes"):
        load_person_keys(path)


def test_a_missing_pepper_file_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(NotReady, match="no person-key pepper file") as refused:
        load_person_keys(tmp_path / "nope")
    assert "\n" not in str(refused.value)


def test_the_pepper_is_per_agency_setting_under_the_secrets_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unset, the pepper is <home>/secrets/social_insurance/; HUB_SOCIAL_INSURANCE_PEPPER_FILE
    moves it (a mounted secret). `hub init` makes the default one, and the service refuses
    to be built without it."""
    settings = Settings(home=tmp_path)
    monkeypatch.delenv("HUB_SOCIAL_INSURANCE_PEPPER_FILE", raising=False)
    default = tmp_path / "secrets" / "social_insurance" / "person-key.pepper"
    assert SocialInsuranceSettings().pepper_path(settings) == default
    with pytest.raises(NotReady, match="no person-key pepper file"):
        service.build(settings)
    init_secrets(settings, installed())
    assert default.stat().st_mode & 0o777 == 0o600
    first = default.read_text()
    init_secrets(settings, installed())
    assert default.read_text() == first, "an existing pepper is never replaced"
    service.build(settings)
    monkeypatch.setenv("HUB_SOCIAL_INSURANCE_PEPPER_FILE", str(tmp_path / "mounted"))
    assert SocialInsuranceSettings().pepper_path(settings) == tmp_path / "mounted"
