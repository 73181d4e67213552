"""Forged records never reach a view: each is dead-lettered as `unauthenticated`.

The attacks measured on the unsigned hub: a `PermitCancelled` with sequence 2147483647 sent
with kcat cancelled a person everywhere and poisoned the sequence guard; a forged
`SocialSecurityNumberIssued` made the card service issue a physical card; a forged e-card
request got a genuinely signed QR token. With signatures, whoever reaches the broker still
cannot speak for an agency.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import date, timedelta

import pytest

from hub import bootstrap
from hub.ops.lag import caught_up
from hub.settings import Settings
from producers.work_permit import authority
from schemas import CONTENT_TYPE, topics
from schemas.permits import CancellationReason, Category
from tests.factories import employer, holder
from tests.integration.hub_fixtures import eventually, permit_topic, read_topic
from tests.integration.stack_fixtures import kcat_login

pytestmark = pytest.mark.integration

MAX_SEQUENCE = 2147483647


def _forged_cancellation(genuine: bytes) -> bytes:
    """The genuine PermitIssued turned into a cancellation far in the future."""
    body = json.loads(genuine)
    body["type"] = "cn.mohrss.workpermit.PermitCancelled"
    body["sequence"] = MAX_SEQUENCE
    body["id"] = "00000000-0000-4000-8000-000000000001"
    body["data"]["permit"]["status"] = "cancelled"
    body["data"]["permit"]["cancelled_on"] = body["data"]["permit"]["valid_from"]
    body["data"]["reason"] = CancellationReason.EMPLOYER_APPLICATION.value
    return json.dumps(body).encode()


async def _kcat_unsigned(kcat: str, settings: Settings, principal: str, topic: str, key: str,
                         value: bytes) -> None:
    """Produce with a foreign client and no signature, logged in with a stolen password of a
    principal the broker lets write the topic: only the signature tells the forgery apart."""
    await asyncio.to_thread(
        subprocess.run, [kcat, "-P", *kcat_login(settings, principal), "-t", topic, "-k", key,
                         "-H", f"content-type={CONTENT_TYPE}"],
        input=value, check=True, timeout=60)


async def test_forged_and_wrongly_signed_records_are_dead_lettered_and_change_nothing(
    kcat: str, hub_settings: Settings
) -> None:
    """Unsigned (kcat), signed by an agency that may not emit the type, and signed by a
    revoked key: all `unauthenticated`; the genuine next event still applies."""
    settings = hub_settings
    # Each agency's own permit topic: the forger tries both.
    targets = [permit_topic(settings, a) for a in ("card", "public_security")]
    start = date(2025, 5, 1)
    async with (
        bootstrap.running_relay(settings, "workpermit"),
        authority(settings) as auth,
        bootstrap.running_consumer(settings, "card"),
        bootstrap.running_consumer(settings, "public_security"),
    ):
        letter = await auth.apply(holder=holder(), employer=employer(), category=Category.B,
                                  position="Engineer", approved_months=12, today=start)
        issued = await auth.issue(letter.permit_no, valid_from=start, today=start)
        no = issued.permit_no
        await eventually(lambda: _has(settings, no, ("active", 2)), what="the genuine permit")
        # Each forgery made from the genuine record on its target topic, so that it
        # decodes there: only its signature gives it away.
        forged = {t: _forged_cancellation((await read_topic(settings, t))[-1].value)
                  for t in targets}

        # 1. No signature at all, from a foreign client.
        for target in targets:
            await _kcat_unsigned(kcat, settings, "workpermit", target, no, forged[target])
        # 2. A genuine signature, by an agency whose key may not emit permit events.
        # 3. The authority's own key, revoked after it was stolen (rotated first, so the
        #    authority goes on signing).
        stolen = bootstrap.signing_key(settings, "workpermit")
        bootstrap.key_store(settings).rotate("workpermit")
        bootstrap.key_store(settings).revoke(stolen.kid, by="ops-tester")
        await asyncio.sleep(1)  # past hub.signing.CHECK_EVERY_S: the consumers have seen it
        card_key = bootstrap.signing_key(settings, "card")
        async with bootstrap.producer(settings, "attacker", principal="workpermit") as prod:
            for key in (card_key, stolen):
                for target in targets:
                    await prod.send_and_wait(
                        target, key=no.encode(), value=forged[target], headers=[
                            ("content-type", CONTENT_TYPE.encode()),
                            ("jws", key.sign(forged[target]))])
        # 4. A forged SSN for the card service, unsigned.
        ssn = json.dumps({"specversion": "1.0", "id": "00000000-0000-4000-8000-000000000002",
                          "source": "/cn/gov/mohrss/social-insurance", "subject": no,
                          "type": "cn.mohrss.socialinsurance.SocialSecurityNumberIssued",
                          "sequence": 1, "data": {}}).encode()
        await _kcat_unsigned(kcat, settings, "social_insurance",
                             settings.topic(topics.INSURANCE_EVENTS), no, ssn)
        for agency in ("card", "public_security"):
            await eventually(lambda a=agency: caught_up(settings, a),  # type: ignore[misc]
                             what=f"{agency} to pass the forgeries")
        assert await _has(settings, no, ("active", 2))

        # The genuine next event, signed by the new key, is applied after them: the forged
        # sequence poisoned nothing.
        until = issued.valid_until
        assert until is not None
        await auth.extend(no, new_valid_until=until + timedelta(days=365),
                          today=until - timedelta(days=60))
        await eventually(lambda: _has(settings, no, ("active", 3)),
                         what="the genuine extension in both views")

    dead = await read_topic(settings, f"{settings.topic('card')}.dlq")
    reasons = [dict(r.headers)["dlq.reason"].decode() for r in dead]
    assert reasons == ["unauthenticated"] * 4
    messages = sorted(dict(r.headers)["dlq.error.message"].decode() for r in dead)
    assert any("not signed" in m for m in messages)
    assert any("may not emit" in m for m in messages)
    assert any("revoked" in m for m in messages)
    ps_dead = await read_topic(settings, f"{settings.topic('public_security')}.dlq")
    assert [dict(r.headers)["dlq.reason"].decode() for r in ps_dead] == ["unauthenticated"] * 3


async def _has(settings: Settings, permit_no: str, want: tuple[str, int]) -> bool:
    """Whether card and public security both hold the permit with this status and sequence."""
    return all([await _status(settings, a, permit_no) == want
                for a in ("card", "public_security")])


async def _status(settings: Settings, agency: str, permit_no: str) -> tuple[str, int] | None:
    table = {"card": "card_permits", "public_security": "ps_permits"}[agency]
    async with bootstrap.pool(settings, agency, max_size=1) as p:
        row = await p.fetchrow(f"SELECT status, sequence FROM {table} WHERE permit_no = $1",
                               permit_no)
    return None if row is None else (row["status"], row["sequence"])

