"""The ops console's guards without a stack: operators' passwords kept as scrypt hashes in
private files, signed sessions, CSRF and login required before any change, hostile input
escaped, failed logins logged without the password (hub/ops/console)."""

from __future__ import annotations

import contextlib
import re
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from hub.errors import BadTarget
from hub.ops.console.auth import (
    Sessions,
    add_operator,
    console_dir,
    hash_password,
    operators,
    verify_password,
)
from hub.ops.console.server import SETTINGS, build_app
from hub.settings import Settings

HOSTILE = '<script>alert("x")</script>'


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    async with TestClient(TestServer(build_app(settings))) as c:
        yield c


async def csrf_of(client: TestClient, path: str = "/login") -> str:  # type: ignore[type-arg]
    page = await (await client.get(path)).text()
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def test_a_password_is_stored_only_as_a_scrypt_hash_in_a_private_file(
    settings: Settings,
) -> None:
    password = add_operator(settings, "alice")
    stored = operators(settings)["alice"]
    assert stored.startswith("scrypt$")
    assert password not in (console_dir(settings) / "operators.json").read_text()
    assert verify_password(password, stored)
    assert not verify_password(password + "x", stored)
    assert not verify_password(password, "scrypt$broken")
    assert stat.S_IMODE(console_dir(settings).stat().st_mode) == 0o700
    assert stat.S_IMODE((console_dir(settings) / "operators.json").stat().st_mode) == 0o600
    assert hash_password(password) != stored  # salted


def test_an_operator_id_must_be_plain(settings: Settings) -> None:
    with pytest.raises(BadTarget):
        add_operator(settings, HOSTILE)


def test_a_session_cookie_altered_or_signed_with_another_secret_is_no_session() -> None:
    sessions = Sessions(b"secret")
    cookie = sessions.dump(sessions.new("alice"))
    assert sessions.load(cookie) is not None
    payload, signature = cookie.rsplit(".", 1)
    forged = Sessions(b"other").dump(sessions.new("mallory"))
    assert sessions.load(forged) is None
    assert sessions.load(f"{payload}x.{signature}") is None
    assert sessions.load("garbage") is None


async def test_pages_forbid_scripts_and_caching_and_the_cookie_is_strict(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    response = await client.get("/login")
    secret = console_dir(client.app[SETTINGS]).joinpath("console.secret")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie


async def test_a_redrive_without_csrf_token_or_without_login_is_refused(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    """Both refusals come before anything is read or sent (there is no stack here)."""
    no_token = await client.post("/dlq/card/0:0/redrive", data={"purpose": "T-1 redrive"})
    assert no_token.status == 403
    assert "CSRF" in await no_token.text()
    token = await csrf_of(client)
    anonymous = await client.post("/dlq/card/0:0/redrive",
                                  data={"purpose": "T-1 redrive", "csrf": token})
    assert anonymous.status == 403
    assert "log in" in await anonymous.text()
    wrong = await client.post("/permit/123456789012345678",
                              data={"purpose": "T-1 look", "csrf": token + "x"})
    assert wrong.status == 403


async def test_a_hostile_permit_number_is_escaped_and_shows_nothing(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    from urllib.parse import quote

    asked = await client.get(f"/permit/{quote(HOSTILE, safe='')}")
    page = await asked.text()
    assert HOSTILE not in page
    assert "&lt;script&gt;" in page
    token = await csrf_of(client)
    shown = await client.post(f"/permit/{quote(HOSTILE, safe='')}",
                              data={"purpose": f"T-2 {HOSTILE}", "csrf": token})
    assert shown.status == 404  # not a permit number: refused before any look or read
    assert HOSTILE not in await shown.text()


async def test_a_purpose_too_short_shows_the_form_again(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    token = await csrf_of(client)
    shown = await client.post("/permit/123456789012345678", data={"purpose": "x", "csrf": token})
    assert shown.status == 400
    assert "--purpose must say why" in await shown.text()


@contextlib.contextmanager
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """The console's log lines while in the block. Its module logger may have been cached
    by an earlier test of the session (`cache_logger_on_first_use`), which `capture_logs`
    cannot reach: a fresh one stands in for it until the test ends."""
    from hub.ops.console import server

    with capture_logs() as logs:
        monkeypatch.setattr(server, "log", structlog.get_logger(server.__name__))
        yield logs


async def test_a_failed_login_is_logged_without_the_password_and_a_good_one_logs_in(
    settings: Settings, client: TestClient,  # type: ignore[type-arg]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = add_operator(settings, "alice")
    token = await csrf_of(client)
    with captured(monkeypatch) as logs:
        bad = await client.post("/login", data={"operator": "alice", "password": "wrong-pw",
                                                "csrf": token})
        pasted = await client.post("/login", data={"operator": password, "password": "",
                                                   "csrf": token})
    assert (bad.status, pasted.status) == (401, 401)
    assert [(e["event"], e["operator"]) for e in logs
            if e["event"] == "console login refused"] == [
        ("console login refused", "alice"), ("console login refused", None)]
    assert "wrong-pw" not in repr(logs)
    assert password not in repr(logs)
    good = await client.post("/login", data={"operator": "alice", "password": password,
                                             "csrf": token}, allow_redirects=False)
    assert good.status == 303
    page = await (await client.get("/login")).text()
    assert 'id="operator">alice<' in page
    # The session changed at login: the token of before is worth nothing now.
    stale = await client.post("/logout", data={"csrf": token})
    assert stale.status == 403


async def test_a_failing_page_shows_and_logs_no_value(
    client: TestClient, monkeypatch: pytest.MonkeyPatch,  # type: ignore[type-arg]
) -> None:
    """The error page names the kind of error; the log names the route, not the path, and
    describes the error without its text."""
    from hub.ops.console import data

    async def failing(*_: object) -> None:
        raise ValueError("Anna Schmidt")

    monkeypatch.setattr(data, "side_by_side", failing)
    token = await csrf_of(client)
    with captured(monkeypatch) as logs:
        shown = await client.post("/permit/156000000000000001",
                                  data={"purpose": "T-3 Anna Schmidt's case", "csrf": token})
    assert shown.status == 500
    page = await shown.text()
    assert "ValueError" in page
    assert "Anna" not in page
    [failed] = [e for e in logs if e["event"] == "console page failed"]
    assert failed["route"] == "/permit/{no}"
    assert "Anna" not in repr(logs)


async def test_an_operator_failing_too_often_is_throttled_even_with_the_right_password(
    settings: Settings, client: TestClient,  # type: ignore[type-arg]
) -> None:
    password = add_operator(settings, "bob")
    token = await csrf_of(client)
    for _ in range(5):
        failed = await client.post("/login", data={"operator": "bob", "password": "guess",
                                                   "csrf": token})
        assert failed.status == 401
    right = await client.post("/login", data={"operator": "bob", "password": password,
                                              "csrf": token}, allow_redirects=False)
    assert right.status == 429
