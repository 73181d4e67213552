"""Loading migration files: names, numbering and checksums, from throwaway packages (no DB)."""

from __future__ import annotations

import hashlib
import re
import secrets
from pathlib import Path
from typing import Protocol

import pytest

from hub.migrate import Migration, MigrationError, apply, load, status

SOURCES = {
    "hub": "hub",
    "card": "consumers.card",
    "public_security": "consumers.public_security",
    "social_insurance": "consumers.social_insurance",
    "workpermit": "producers.work_permit",
}
BASELINE = {"hub": 4, "card": 1, "public_security": 1, "social_insurance": 1, "workpermit": 1}
"""The last step of each source that adopts tables the code before migrations created."""


class MakePackage(Protocol):
    def __call__(self, files: dict[str, str], *, folder: bool = ...) -> str: ...


@pytest.fixture
def make_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MakePackage:
    """A function that writes an importable package with the given migrations/ files."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(files: dict[str, str], *, folder: bool = True) -> str:
        name = f"migtest_{secrets.token_hex(4)}"  # a new name each time: no import cache
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
        if folder:
            (tmp_path / name / "migrations").mkdir()
        for file, text in files.items():
            (tmp_path / name / "migrations" / file).write_text(text)
        return name

    return make


def test_loads_steps_in_version_order(make_package: MakePackage) -> None:
    package = make_package({"0002_add_b.sql": "CREATE TABLE b ();",
                            "0001_add_a.sql": "CREATE TABLE a ();"})
    steps = load("demo", package)
    assert [(m.source, m.version, m.name, m.sql) for m in steps] == [
        ("demo", 1, "add_a", "CREATE TABLE a ();"),
        ("demo", 2, "add_b", "CREATE TABLE b ();"),
    ]
    assert steps[0].filename == "0001_add_a.sql"


def test_checksum_is_the_sha256_of_the_text(make_package: MakePackage) -> None:
    text = "-- a comment counts too\nCREATE TABLE a ();\n"
    (step,) = load("demo", make_package({"0001_add_a.sql": text}))
    assert step.checksum == hashlib.sha256(text.encode()).hexdigest()
    (edited,) = load("demo", make_package({"0001_add_a.sql": text + " "}))
    assert edited.checksum != step.checksum


@pytest.mark.parametrize("bad", [
    "1_add_a.sql", "0001_Add_a.sql", "0001-add-a.sql", "0001_add a.sql", "00001_add_a.sql",
    "0001_add_a.SQL", "0001_add_a.sql~", "0001_.txt", "add_a.sql", "README",
])
def test_a_badly_named_file_is_refused_by_name(make_package: MakePackage, bad: str) -> None:
    package = make_package({"0001_add_a.sql": "SELECT 1;", bad: "SELECT 1;"})
    with pytest.raises(MigrationError, match=re.escape(f"migrations/{bad}")):
        load("demo", package)


def test_dotfiles_and_folders_are_not_steps(make_package: MakePackage, tmp_path: Path) -> None:
    package = make_package({"0001_add_a.sql": "SELECT 1;", ".0002_add_b.sql.swp": "x"})
    (tmp_path / package / "migrations" / "__pycache__").mkdir()
    assert [m.version for m in load("demo", package)] == [1]


@pytest.mark.parametrize(("files", "message"), [
    (["0001_a.sql", "0003_c.sql"], "0003_c.sql: expected demo version 2"),
    (["0002_b.sql"], "0002_b.sql: expected demo version 1"),
    (["0000_zero.sql", "0001_a.sql"], "0000_zero.sql: expected demo version 1"),
    (["0001_a.sql", "0002_b.sql", "0002_other_b.sql"],
     "0002_b.sql and 0002_other_b.sql both claim demo version 2"),
])
def test_versions_start_at_one_without_gaps_or_duplicates(
    make_package: MakePackage, files: list[str], message: str
) -> None:
    package = make_package(dict.fromkeys(files, "SELECT 1;"))
    with pytest.raises(MigrationError, match=re.escape(message)):
        load("demo", package)


def test_a_package_without_migrations_is_refused(make_package: MakePackage) -> None:
    # Usually package data that forgot migrations/*.sql: applying nothing would hide it.
    with pytest.raises(MigrationError, match="no migrations/ folder"):
        load("demo", make_package({}, folder=False))
    with pytest.raises(MigrationError, match="holds no migration files"):
        load("demo", make_package({}))


def step(source: str, version: int) -> Migration:
    return Migration(source, version, f"step_{version}", "SELECT 1;", "0" * 64)


@pytest.mark.parametrize("sources", [
    [[step("a", 1), step("a", 3)]],
    [[step("a", 2), step("a", 1)]],
    [[step("a", 1), step("b", 2)]],
    [[step("a", 1)], [step("a", 1)]],
])
async def test_apply_and_status_refuse_a_malformed_list_before_touching_the_database(
    sources: list[list[Migration]],
) -> None:
    with pytest.raises(MigrationError):
        await apply(None, sources)  # type: ignore[arg-type]
    with pytest.raises(MigrationError):
        await status(None, sources)  # type: ignore[arg-type]


@pytest.mark.parametrize("source", SOURCES)
def test_the_repository_migrations_load(source: str) -> None:
    steps = load(source, SOURCES[source])
    assert steps
    assert all(m.source == source for m in steps)


@pytest.mark.parametrize("source", SOURCES)
def test_only_baseline_steps_use_if_not_exists(source: str) -> None:
    """Later steps are plain DDL: a step that must be idempotent hides a drifted schema."""
    for m in load(source, SOURCES[source]):
        sql = re.sub(r"--.*", "", m.sql)  # comments may explain what the DDL avoids
        assert not re.search(r"ADD\s+COLUMN\s+IF\s+NOT\s+EXISTS", sql, re.I), m.filename
        if m.version > BASELINE[source]:
            assert not re.search(r"CREATE\s[\w\s]*\sIF\s+NOT\s+EXISTS", sql, re.I), m.filename
