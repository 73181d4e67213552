"""Early applications are held at public security, not refused (hub `Hold`).

An application naming a work permit public security does not know yet waits for it: the
authority's event and the counter's request travel on different topics. The permit's event
releases it and it is decided; at the end of the hold period (`HUB_PUBLIC_SECURITY_HOLD_HOURS`,
72 h by default) it is refused as permit_unknown, saying since when it waited. One
application id gets one answer (`Router.on_request`).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from consumers.public_security import handlers, service
from consumers.public_security.settings import PublicSecuritySettings
from hub.dispatch import Hold
from hub.settings import Settings
from schemas.public_security import (
    ResidencePermitApplied,
    ResidencePermitIssued,
    ResidenceRejection,
)
from tests.memory_views import MemoryPublicSecurityView
from tests.unit.test_public_security_handlers import (
    FORGER,
    PERMIT,
    POLICY,
    SCANNED,
    Authority,
    applied,
    by_token,
    only,
    rejected,
    token,
)

RECEIVED = SCANNED + timedelta(seconds=2)


async def test_an_application_for_an_unknown_permit_is_held_and_nothing_is_stored() -> None:
    """While the hold period lasts: Hold on the permit number, reason permit_unknown."""
    view = MemoryPublicSecurityView()
    held = await handlers.on_application(applied(), view, POLICY, received_at=RECEIVED,
                                         may_hold=True)
    assert held == Hold(PERMIT, "permit_unknown")
    assert view.applications == []


async def test_a_held_application_is_decided_when_its_permit_arrives() -> None:
    """The permit's event released it: decided as if it had arrived after the permit."""
    view = MemoryPublicSecurityView()
    event = applied()
    assert isinstance(await handlers.on_application(
        event, view, POLICY, received_at=RECEIVED, may_hold=True), Hold)
    Authority(view).issued()
    emits = await handlers.on_application(event, view, POLICY, received_at=RECEIVED,
                                          may_hold=True, held_since=RECEIVED)
    assert not isinstance(emits, Hold)
    only(emits, ResidencePermitIssued)


async def test_a_held_application_is_refused_at_the_deadline_saying_how_long_it_waited() -> None:
    """Final: refused as permit_unknown, with since when it waited."""
    view = MemoryPublicSecurityView()
    emits = await handlers.on_application(applied(), view, POLICY, received_at=RECEIVED,
                                          may_hold=False, held_since=RECEIVED)
    assert not isinstance(emits, Hold)
    data = rejected(emits)
    assert data.reason is ResidenceRejection.PERMIT_UNKNOWN
    assert f"since {RECEIVED:%Y-%m-%d %H:%M} UTC" in data.message
    assert [a.reason for a in view.applications] == ["permit_unknown"]


async def test_a_forged_token_is_refused_at_once_not_held() -> None:
    """The signature first: a token nobody published is refused without waiting."""
    view = MemoryPublicSecurityView()
    emits = await handlers.on_application(by_token("T-1", PERMIT, token(PERMIT, FORGER)), view,
                                          POLICY, received_at=RECEIVED, may_hold=True)
    assert not isinstance(emits, Hold)
    assert rejected(emits).reason is ResidenceRejection.TOKEN_INVALID


def test_the_router_holds_applications_for_the_configured_period_one_answer_per_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """72 hours by default, from HUB_PUBLIC_SECURITY_HOLD_HOURS; the application id names
    the request."""
    settings = Settings(keys_registry=tmp_path)
    assert PublicSecuritySettings().hold_hours == 72
    monkeypatch.setenv("HUB_PUBLIC_SECURITY_HOLD_HOURS", "0")
    with pytest.raises(ValueError, match="greater than 0"):
        PublicSecuritySettings()
    monkeypatch.setenv("HUB_PUBLIC_SECURITY_HOLD_HOURS", "6")
    r = service.router(settings, PublicSecuritySettings())
    assert r.hold_periods[ResidencePermitApplied.EVENT_TYPE] == (
        ResidencePermitApplied, timedelta(hours=6))
    assert r.request_ids[ResidencePermitApplied.EVENT_TYPE](applied("A-9")) == "A-9"
