"""The shape of the code: agencies are declarations, the hub names none, layers hold.

The import rules themselves are import-linter contracts in pyproject.toml (run by `make
lint`); the test runs them too, so CI enforces them with the rest of the suite.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hub.agency import Agency, Channel
from hub.ops.asyncapi import describe
from hub.registry import Registry, TopologyError, installed
from hub.settings import Settings
from schemas import PERMIT_EVENT_TYPES
from schemas.card import CARD_REQUEST_TYPES

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contracts_hold() -> None:
    """lint-imports keeps every layer contract (no agency in the runtime, no cycles, ...)."""
    tool = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert tool is not None, "import-linter is a dev dependency: pip install -e '.[dev]'"
    done = subprocess.run([tool, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-4000:]


def test_no_file_under_hub_names_an_agency_or_its_topics() -> None:
    """The runtime, the composition root and the ops commands know agencies only from the
    registry: neither an agency's name nor a topic it owns is written under hub/."""
    settings = Settings(topic_prefix="")
    words: set[str] = set()
    for agency in installed():
        words.add(agency.name)
        words.update(c.topic for c in (agency.publishes, agency.requests) if c)
        words.update(t.split(".")[0] for t in agency.owned_topics(settings))
    pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, sorted(words))) + r")(?![\w-])")
    found = [f"{path.relative_to(ROOT)}:{n}: {m.group(1)}"
             for path in sorted((ROOT / "hub").rglob("*")) if path.suffix in (".py", ".sql")
             for n, line in enumerate(path.read_text().splitlines(), 1)
             for m in pattern.finditer(line)]
    assert found == []


def test_reading_the_declarations_creates_nothing(tmp_path: Path) -> None:
    """Declaring is not building: listing agencies, their topics, rights, codecs and the
    AsyncAPI document writes no key and no file, and opens no connection."""
    settings = Settings(home=tmp_path, topic_prefix="")
    for agency in installed():
        agency.kafka_needs(settings)
        agency.owned_topics(settings)
        if agency.consumes:
            agency.codec()
        dict(agency.expectations)
    describe(settings)
    assert list(tmp_path.iterdir()) == []


def _agency(name: str, **fields: object) -> Agency:
    return Agency(name=name, title=name, package=name, **fields)  # type: ignore[arg-type]


def test_the_registry_refuses_a_topology_that_does_not_fit() -> None:
    """Two agencies of one name, one topic owned twice, or a read topic nobody owns."""
    source = _agency("source", publishes=Channel("a.v1", PERMIT_EVENT_TYPES, "a"))
    reader = _agency("reader", reads=("a.v1",), accepts=PERMIT_EVENT_TYPES,
                     build=lambda settings: None)
    assert Registry([source, reader]).names() == ("source", "reader")
    with pytest.raises(TopologyError, match="two agencies"):
        Registry([source, _agency("source")])
    with pytest.raises(TopologyError, match="declared by"):
        Registry([source, _agency("other", requests=Channel("a.v1", CARD_REQUEST_TYPES, "b"))])
    with pytest.raises(TopologyError, match="no agency owns"):
        Registry([reader])


def test_a_consumer_needs_topics_a_build_and_types() -> None:
    """A declaration that reads topics without handlers (or the reverse) is refused."""
    with pytest.raises(ValueError, match="both topics and a build"):
        _agency("half", reads=("a.v1",), accepts=PERMIT_EVENT_TYPES)
    with pytest.raises(ValueError, match="accepts no event type"):
        _agency("blind", reads=("a.v1",), build=lambda settings: None)


def test_each_agency_asks_kafka_for_its_own_topics_only() -> None:
    """The rights an agency's principal needs: its group, what it reads, what it writes."""
    settings = Settings(topic_prefix="t.")
    for agency in installed():
        needs = agency.kafka_needs(settings)
        assert set(needs.read) == {settings.topic(t) for t in agency.reads}
        assert (needs.group is not None) == agency.consumes
        own = ({*(settings.topic(c.topic) for c in agency.publications()),
                settings.topic(f"{agency.name}.evidence-heads.v1")}
               if agency.publishes else set())
        dead = {t for t in needs.write if t.startswith(agency.dead_letter_topic(settings))}
        assert set(needs.write) == own | dead


@pytest.mark.parametrize("args", [["--help"], ["qr", "verify", "--help"], ["run", "--help"]])
def test_the_hub_command_mounts_what_the_agencies_declare(args: list[str]) -> None:
    """`hub` starts with every agency's own commands mounted (`hub qr`, `hub card`)."""
    done = subprocess.run([sys.executable, "-m", "hub", *args], capture_output=True, text=True,
                          timeout=60, check=False, env={"COLUMNS": "200", "PATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    if args == ["--help"]:
        assert {"qr", "card", "run", "replay", "agencies"} <= set(re.findall(r"│ (\w+) ",
                                                                              done.stdout))
