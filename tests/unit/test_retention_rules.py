"""Which rows retention takes, the pure parts (hub/retention.py): a period counted from a
time or from the end of a day, a permit's end from its view row, an agency's own period
over the hub's, every agency table named in the policy, and an erased value in a bundle."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from hub.evidence_chain import check_bundle
from hub.ops.retention_cli import policy_lines
from hub.ops.views import compare
from hub.registry import installed
from hub.retention import Period, ended_due, ended_on, periods
from hub.settings import Settings

AS_OF = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
YEAR = Period("ended_permits", 365, "HUB_RETENTION_ENDED_PERMITS_DAYS")


def test_a_time_is_due_once_the_whole_period_passed() -> None:
    """A token that expired exactly the period before `as_of` is due; a second later not."""
    week = Period("qr_tokens", 7, "HUB_RETENTION_QR_TOKENS_DAYS")
    assert week.due(AS_OF - timedelta(days=7), AS_OF)
    assert not week.due(AS_OF - timedelta(days=7) + timedelta(seconds=1), AS_OF)
    assert week.cutoff(AS_OF) == AS_OF - timedelta(days=7)


def test_a_day_counts_from_its_end() -> None:
    """A permit valid until D ended at D's midnight: due when D+1 00:00 is a period ago."""
    one = Period("ended_permits", 1, "X")
    assert not one.due(date(2027, 5, 31), datetime(2027, 6, 1, 23, 59, tzinfo=UTC))
    assert one.due(date(2027, 5, 31), datetime(2027, 6, 2, 0, 0, tzinfo=UTC))


@pytest.mark.parametrize(("status", "valid_until", "cancelled_on", "end"), [
    ("expired", date(2026, 1, 31), None, date(2026, 1, 31)),
    ("cancelled", date(2027, 1, 31), date(2026, 3, 1), date(2026, 3, 1)),
    ("active", date(2026, 1, 31), None, None),
    ("letter_issued", None, None, None),
    ("cancelled", None, None, None),
    ("lapsed", None, date(2026, 7, 1), date(2026, 7, 1)),
])
def test_a_permit_ends_on_expiry_cancellation_or_lapse_only(
    status: str, valid_until: date | None, cancelled_on: date | None, end: date | None,
) -> None:
    """Expired: its last valid day; cancelled or lapsed: the day that was applied;
    otherwise not ended."""
    assert ended_on(status, valid_until, cancelled_on) == end


def test_an_ended_permit_is_due_a_period_after_its_end_and_never_without_an_end() -> None:
    """Ended 366 days before: due; 364 days before: kept; an active permit whose validity
    lies long behind is kept (its expiry event has not come); no end day: kept."""
    today = AS_OF.date()
    assert ended_due(YEAR, "expired", today - timedelta(days=366), None, AS_OF) is not None
    assert ended_due(YEAR, "expired", today - timedelta(days=364), None, AS_OF) is None
    assert ended_due(YEAR, "active", today - timedelta(days=900), None, AS_OF) is None
    assert ended_due(YEAR, "cancelled", None, None, AS_OF) is None
    cancelled = today - timedelta(days=400)
    assert ended_due(YEAR, "cancelled", today + timedelta(days=30), cancelled,
                     AS_OF) == cancelled


def test_an_agency_sets_its_own_period_the_others_take_the_hubs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HUB_PUBLIC_SECURITY_RETENTION_ENDED_PERMITS_DAYS holds for public security only,
    and the period says which setting it came from."""
    monkeypatch.setenv("HUB_PUBLIC_SECURITY_RETENTION_ENDED_PERMITS_DAYS", "1825")
    settings = Settings(retention_ended_permits_days=200)
    own = periods(settings, "public_security")["ended_permits"]
    assert (own.days, own.setting) == (
        1825, "HUB_PUBLIC_SECURITY_RETENTION_ENDED_PERMITS_DAYS")
    card = periods(settings, "card")["ended_permits"]
    assert (card.days, card.setting) == (200, "HUB_RETENTION_ENDED_PERMITS_DAYS")
    assert periods(settings, "card")["qr_tokens"].days == 7


def test_the_policy_names_every_table_of_every_agency(tmp_path: Path) -> None:
    """Each table an agency's migrations create is in `hub retention policy` (deleted,
    anonymised, or kept with a reason): a new table cannot be forgotten silently."""
    import re
    from importlib import resources

    lines = policy_lines(Settings())
    for agency in installed():
        if agency.retention is None:
            continue
        named = {x.what for x in lines if x.where == agency.name}
        sql = "".join(f.read_text() for f in resources.files(agency.package)
                      .joinpath("migrations").iterdir() if f.name.endswith(".sql"))
        tables = set(re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", sql))
        assert tables <= named, (agency.name, tables - named)


def test_a_bundle_with_an_erased_value_still_verifies_its_chain(tmp_path: Path) -> None:
    """An entry whose value retention erased (null) is checked for its place in the chain
    only; changing its entry is still found."""
    from tests.unit.test_evidence_chain import bundle as make_bundle

    root = make_bundle.__wrapped__(tmp_path)  # type: ignore[attr-defined]
    path = root / "agencies" / "public_security.json"
    log = json.loads(path.read_text())
    assert base64.b64decode(log["entries"][0]["value"])
    log["entries"][0]["value"] = None
    path.write_text(json.dumps(log))
    assert check_bundle(root) == []
    log["entries"][0]["outcome"] = "forged"
    path.write_text(json.dumps(log))
    assert any("row 2: the entry is not the one the chain holds" in p
               for p in check_bundle(root))


def test_an_erased_permit_is_no_drift_unless_the_authority_moved_on() -> None:
    """`hub reconcile`: a permit erased at sequence 3 is not missing from the view while
    the authority holds sequence 3; at sequence 4 (news the view must apply) it is."""
    from demo import synthetic

    events = list(synthetic.stream(1, seed=3, max_events=3))
    record, seq = events[-1].data.permit, events[-1].sequence
    truth = {events[-1].subject: (record, seq)}
    assert compare("card", truth, {}, {events[-1].subject: seq}) == []
    [drift] = compare("card", truth, {}, {events[-1].subject: seq - 1})
    assert drift.field == "missing"
