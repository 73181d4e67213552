"""The seed's procedures in the demo: e-card with a permit QR code, residence permit by QR
scan, social insurance and SSN, physical card, the expiry reminder that opens the extension
window, and the consequences of extension and cancellation, as front-door requests to each
agency and the outcomes they publish."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from consumers.card import qr
from consumers.card.cli import permit_download, verify_image
from consumers.card.requests import registration_request, sweep_request
from consumers.public_security import cli as ps_desk
from consumers.social_insurance import cli as si_desk
from hub import bootstrap
from hub.kafka import publish
from hub.kafka_credentials import front_door
from hub.ops.lag import caught_up
from hub.registry import installed
from hub.settings import Settings
from schemas import CloudEvent, topics
from schemas.public_security import (
    PresentedPermitNo,
    PresentedQrToken,
    ResidencePermitApplied,
    ResidencePermitAppliedData,
)
from schemas.social_insurance import (
    ByECard,
    ByLetterNo,
    ByPermitNo,
    Insurance,
    InsuranceRegistrationRequested,
    InsuranceRegistrationRequestedData,
    Requester,
    ReviewDecision,
)


@dataclass
class Casebook:
    """What the story asked each agency for, to report it side by side at the end."""

    names: dict[str, str] = field(default_factory=dict)
    qr_png: Path | None = None
    qr_verdict: str = ""
    reminder_day: date | None = None
    reminder: str = ""
    held: str = ""
    """What happened to the e-card request that reached the card before its permit."""
    reviewed: str = ""
    """The reviewer's decision on the registration referred to manual review."""
    closed: str = ""
    """The officer's closing of a residence-permit cancellation case."""
    new_employer: str = ""
    """The SSN and the cards after a change of employer."""


async def send(settings: Settings, topic: str, events: Iterable[CloudEvent[Any]]) -> None:
    """Publish requests as the front-door system of the agency that takes them would: it
    logs in and signs as itself."""
    owner = next(a.name for a in installed() if a.requests and a.requests.topic == topic)
    await publish(settings, topic, events,
                  signer=bootstrap.signing_key(settings, front_door(owner)))


async def synced(settings: Settings, within: float = 60.0) -> None:
    """Wait until every agency has applied everything on its topics (outcomes included)."""
    deadline = time.monotonic() + within
    agencies = installed()
    while time.monotonic() < deadline:
        done = [await caught_up(settings, a.name) for a in agencies.consumers()]
        outboxes = 0
        for a in agencies:
            async with bootstrap.pool(settings, a.name, max_size=1) as p:
                outboxes += await p.fetchval("SELECT count(*) FROM hub_outbox")
        if outboxes == 0 and all(done):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("the agencies did not settle")


def _apply(no: str, app_id: str, presented: Any, entry: date, until: date) -> CloudEvent[Any]:
    data = ResidencePermitAppliedData(
        application_id=app_id, presented=presented, entry_date=entry,
        applied_on=entry + timedelta(days=5), requested_until=until,
    )
    return ResidencePermitApplied.create(subject=no, sequence=1, data=data)


def _insure(subject: str, req_id: str, reference: Any, employer: str, on: date,
            certificate: bool = False, requester: Requester = Requester.EMPLOYER) -> Any:
    data = InsuranceRegistrationRequestedData(
        request_id=req_id, requester=requester, reference=reference,
        employer_credit_code=employer, requested_on=on, certificate_of_coverage=certificate,
    )
    return InsuranceRegistrationRequested.create(subject=subject, sequence=1, data=data)


async def apply_for_everything(
    settings: Settings, people: dict[str, Any], entry: date, out_dir: Path, book: Casebook
) -> None:
    """e-cards, the QR scan at the entry-exit counter, and social insurance registrations."""
    anna, kenji, maria, minjun, john = (people[k] for k in ("anna", "kenji", "maria", "minjun",
                                                            "john"))
    book.names = {p.permit_no: p.holder.name for p in people.values()}
    await send(settings, topics.CARD_REQUESTS, [
        registration_request(p.holder.name, permit_no=p.permit_no)
        for p in (anna, kenji, maria, minjun, john)
    ] + [registration_request("Someone Else", permit_no=kenji.permit_no)])
    await synced(settings)
    # Anna downloads her permit with its QR code; the counter scans the PNG.
    book.qr_png = out_dir / f"permit-{anna.permit_no}.png"
    await permit_download(settings, anna.permit_no, png=book.qr_png)
    verdict = await verify_image(bootstrap.command_context(), settings, book.qr_png,
                                 view="public_security")
    book.qr_verdict = f"{'accepted' if verdict.accepted else 'refused'} ({verdict.reason})"
    token = await asyncio.to_thread(qr.decode_png, book.qr_png)
    now = datetime.now(UTC)
    year = entry + timedelta(days=365)
    maria_card = await _card_id(settings, maria.permit_no)
    await send(settings, topics.PUBLIC_SECURITY_REQUESTS, [
        _apply(anna.permit_no, f"EXC-{anna.permit_no}",
               PresentedQrToken(token=token, scanned_at=now), entry, year),
        _apply(maria.permit_no, f"EXC-{maria.permit_no}",
               PresentedPermitNo(permit_no=maria.permit_no), entry, year),
        _apply(john.permit_no, f"EXC-{john.permit_no}",
               PresentedPermitNo(permit_no=john.permit_no), date.today() - timedelta(days=10),
               date.today() + timedelta(days=365)),
    ])
    on = entry + timedelta(days=10)
    requests = [
        _insure(anna.permit_no, f"SI-{anna.permit_no}", ByPermitNo(permit_no=anna.permit_no),
                anna.employer.credit_code, on, certificate=True),
        _insure(f"NL{kenji.permit_no}", f"SI-{kenji.permit_no}",
                ByLetterNo(letter_no=f"NL{kenji.permit_no}"), kenji.employer.credit_code, on,
                requester=Requester.FOREIGNER),
        _insure(minjun.permit_no, f"SI-{minjun.permit_no}",
                ByPermitNo(permit_no=minjun.permit_no), minjun.employer.credit_code, on,
                certificate=True),
    ]
    if maria_card:
        requests.append(_insure(maria_card, f"SI-{maria.permit_no}", ByECard(card_id=maria_card),
                                maria.employer.credit_code, on))
    await send(settings, topics.SOCIAL_INSURANCE_REQUESTS, requests)
    await synced(settings)


async def remind(settings: Settings, permit_no: str, as_of: date, book: Casebook) -> None:
    """The scheduler's daily sweep on `as_of`, and the expiry reminder it sent the holder."""
    await send(settings, topics.CARD_REQUESTS, [sweep_request(as_of)])
    await synced(settings)
    async with bootstrap.pool(settings, "card", max_size=1) as p:
        message: str | None = await p.fetchval(
            "SELECT message FROM card_notifications WHERE permit_no = $1"
            " AND kind = 'expiry_reminder' AND notified_on = $2", permit_no, as_of)
    book.reminder_day, book.reminder = as_of, message or "(none sent)"


async def held_request(settings: Settings, person: Any, book: Casebook,
                       authority_relay: Pausable) -> None:
    """Her e-card request reaches the card service before her permit does (the authority's
    relay is paused, as when it is down or slow): the card holds the request, then decides
    it as soon as the permit arrives, with no resubmission."""
    book.names[person.permit_no] = person.holder.name
    request = registration_request(person.holder.name, permit_no=person.permit_no)
    await send(settings, topics.CARD_REQUESTS, [request])
    async with bootstrap.pool(settings, "card", max_size=1) as p:
        deadline = time.monotonic() + 60
        while (held := await p.fetchrow(
                "SELECT reason, hold_until FROM hub_held_requests WHERE event_id = $1",
                request.id)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError("the card did not hold the early request")
            await asyncio.sleep(0.1)
    await authority_relay.resume()
    await synced(settings)
    card = await _card_id(settings, person.permit_no)
    book.held = (f"held by the card ({held['reason']}, until {held['hold_until']:%Y-%m-%d %H:%M}"
                 f" UTC at the latest); decided when her permit arrived: "
                 + (f"e-card {card}" if card else "refused"))


async def officers_decide(settings: Settings, people: dict[str, Any], book: Casebook) -> None:
    """Decisions taken by people, through each agency's desk: social insurance's reviewer
    approves Min-jun's referred registration (his home country's agreement is not confirmed
    in the table: a person checks his certificate of coverage); public security's officer
    closes the cancellation case of Maria's residence permit."""
    minjun, maria = people["minjun"], people["maria"]
    review = await si_desk.decision_for(
        settings, f"SI-{minjun.permit_no}", officer="si-reviewer-17",
        decision=ReviewDecision.APPROVE, exempt=(Insurance.PENSION, Insurance.UNEMPLOYMENT),
        reason="Certificate of coverage checked against the China-Korea agreement")
    await bootstrap.submit_decisions(settings, "social_insurance", [review])
    async with bootstrap.pool(settings, "public_security", max_size=1) as p:
        residence = await p.fetchval(
            "SELECT residence_permit_no FROM ps_residence_permits WHERE permit_no = $1"
            " AND status = 'cancellation_required'", maria.permit_no)
    cancelled = maria.valid_from + timedelta(days=200)  # as `consequences` cancelled it
    if residence is not None:
        await ps_desk.close(
            bootstrap.command_context(), settings, residence, cancelled_on=cancelled,
            officer="ps-officer-204", reason="Work permit cancelled: residence permit cancelled",
            now=datetime.combine(cancelled + timedelta(days=3), datetime.min.time(), UTC))
    await synced(settings)
    async with bootstrap.pool(settings, "social_insurance", max_size=1) as p:
        reg = await p.fetchrow("SELECT insured, exempt FROM si_registrations"
                               " WHERE permit_no = $1", minjun.permit_no)
    book.reviewed = (f"approved by si-reviewer-17: insured {','.join(reg['insured'])}, exempt"
                     f" {','.join(reg['exempt'])}" if reg else "no registration (see the log)")
    async with bootstrap.pool(settings, "public_security", max_size=1) as p:
        status = await p.fetchval("SELECT status FROM ps_residence_permits"
                                  " WHERE residence_permit_no = $1", residence)
    book.closed = (f"residence permit {residence}: closed by ps-officer-204, now {status}"
                   if residence else "no open case")


async def change_employer(settings: Settings, auth: Any, maria: Any, employer: Any,
                          book: Casebook) -> None:
    """Maria's contract ended and her permit was cancelled; a new employer hires her. She
    keeps her permit number (the person's for life) and her SSN: the new registration
    reuses her account, and the card links the SSN to her e-card of the new period."""
    async with bootstrap.pool(settings, "social_insurance", max_size=1) as p:
        before = await p.fetchval("SELECT ssn FROM si_registrations WHERE permit_no = $1"
                                  " ORDER BY registered_on LIMIT 1", maria.permit_no)
    cancelled = maria.valid_from + timedelta(days=200)
    await auth.apply(holder=maria.holder, employer=employer, category=maria.category,
                     position="Lead product designer", approved_months=24,
                     today=cancelled + timedelta(days=14), previous_permit_no=maria.permit_no)
    entry = cancelled + timedelta(days=21)
    await auth.issue(maria.permit_no, valid_from=entry, today=entry)
    await synced(settings)
    await send(settings, topics.SOCIAL_INSURANCE_REQUESTS, [
        _insure(maria.permit_no, f"SI-{maria.permit_no}-2", ByPermitNo(permit_no=maria.permit_no),
                employer.credit_code, entry + timedelta(days=3))])
    await synced(settings)
    async with bootstrap.pool(settings, "social_insurance", max_size=1) as p:
        after = await p.fetchrow("SELECT ssn, employer_credit_code FROM si_registrations"
                                 " WHERE permit_no = $1 AND status = 'active'", maria.permit_no)
    async with bootstrap.pool(settings, "card", max_size=1) as p:
        card = await p.fetchrow("SELECT card_id, ssn FROM card_ecards WHERE permit_no = $1",
                                maria.permit_no)
    same = after is not None and after["ssn"] == before
    book.new_employer = (
        f"permit {maria.permit_no} kept; SSN before {before}, with {employer.name}:"
        f" {after['ssn'] if after else '(not registered)'}"
        f" ({'the same' if same else 'DIFFERENT'}); her e-card {card['card_id'] if card else '-'}"
        f" now carries SSN {card['ssn'] if card else '-'}")


class Pausable:
    """An agency's processes that the story can stop and start again."""

    def __init__(self, settings: Settings, agency: str) -> None:
        self.settings, self.agency = settings, agency
        self._running: contextlib.AsyncExitStack | None = None

    async def resume(self) -> None:
        """Start them (again)."""
        if self._running is None:
            self._running = contextlib.AsyncExitStack()
            await self._running.enter_async_context(
                bootstrap.running_agency(self.settings, self.agency))

    async def pause(self) -> None:
        """Stop them; what they would have done waits (an outbox keeps its rows)."""
        if self._running is not None:
            running, self._running = self._running, None
            await running.aclose()


async def register_john_again(settings: Settings, john: Any) -> None:
    """After his extension moved him onto the integrated standard, John asks again."""
    await send(settings, topics.CARD_REQUESTS,
               [registration_request(john.holder.name, permit_no=john.permit_no)])
    await synced(settings)


async def _card_id(settings: Settings, permit_no: str) -> str | None:
    async with bootstrap.pool(settings, "card", max_size=1) as p:
        value: str | None = await p.fetchval(
            "SELECT card_id FROM card_ecards WHERE permit_no = $1", permit_no)
        return value


async def casebook(settings: Settings, book: Casebook) -> str:
    """Each person's records at each agency, one block per person."""
    nos = list(book.names)
    async with bootstrap.pool(settings, "card", max_size=1) as p:
        cards = {r["permit_no"]: r for r in await p.fetch(
            "SELECT permit_no, card_id, ssn FROM card_ecards WHERE permit_no = ANY($1)", nos)}
        refusals = {r["subject"]: r["reason"] for r in await p.fetch(
            "SELECT subject, reason FROM card_requests WHERE outcome = 'rejected'"
            " AND subject = ANY($1) ORDER BY decided_at", nos)}
        physical = {r["permit_no"]: r["card_no"] for r in await p.fetch(
            "SELECT permit_no, card_no FROM card_physical_cards WHERE permit_no = ANY($1)", nos)}
        notices = {r["permit_no"]: r["n"] for r in await p.fetch(
            "SELECT permit_no, count(*) AS n FROM card_notifications WHERE permit_no = ANY($1)"
            " GROUP BY permit_no", nos)}
    async with bootstrap.pool(settings, "public_security", max_size=1) as p:
        residence = {r["permit_no"]: r for r in await p.fetch(
            "SELECT * FROM ps_residence_permits WHERE permit_no = ANY($1)", nos)}
        ps_refused = {r["permit_no"]: r["reason"] for r in await p.fetch(
            "SELECT permit_no, reason FROM ps_applications WHERE outcome = 'rejected'"
            " AND permit_no = ANY($1)", nos)}
    async with bootstrap.pool(settings, "social_insurance", max_size=1) as p:
        insured = {r["permit_no"]: r for r in await p.fetch(
            "SELECT * FROM si_registrations WHERE permit_no = ANY($1)", nos)}
        si_other = {r["permit_no"]: (r["outcome"], r["reason"]) for r in await p.fetch(
            "SELECT permit_no, outcome, reason FROM si_requests WHERE outcome <> 'registered'"
            " AND permit_no = ANY($1)", nos)}
    lines = []
    for no, name in book.names.items():
        card = cards.get(no)
        refused = refusals.get(no)
        if card:
            ecard = f"e-card {card['card_id']}" + (f" (a request refused: {refused})" if refused
                                                    else "")
        else:
            ecard = f"e-card refused: {refused}" if refused else "e-card: not requested"
        if no in physical:
            ecard += f", physical card {physical[no]}"
        if notices.get(no):
            ecard += f", {notices[no]} notice(s)"
        rp = residence.get(no)
        ps = (f"residence permit {rp['residence_permit_no']}"
              f" {rp['valid_from']}..{rp['valid_until']}"
              f" [{rp['status']}]" + (f" may extend to {rp['extension_available_until']}"
                                      if rp["extension_available_until"] else "")
              if rp else f"residence permit: {ps_refused.get(no, 'not applied')}")
        reg = insured.get(no)
        si = (f"insured {','.join(reg['insured'])} exempt {','.join(reg['exempt']) or '-'}"
              f" ssn {reg['ssn']} [{reg['status']}]" if reg
              else "insurance: " + ("/".join(str(x) for x in si_other[no] if x)
                                    if no in si_other else "not requested"))
        lines.append(f"{name} ({no})\n  card:             {ecard}\n"
                     f"  public security:  {ps}\n  social insurance: {si}")
    return "\n".join(lines)
