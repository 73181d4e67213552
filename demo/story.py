"""`make demo`: the seed story on the local stack, with every agency's view side by side.

Several foreigners go through notification letter, issue, the expiry reminder that opens
the extension window, extension, change and cancellation; a holder of a pre-integration
physical permit stays legacy until the extension moves them onto the integrated standard.
An e-card request that overtakes its permit is held, then decided; a reviewer and an officer
decide what the rules refer to people; a change of employer keeps the permit number and the
SSN.
The run exits non-zero if any agency's view disagrees with the authority once the stream
has settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from demo.procedures import (
    Casebook,
    Pausable,
    apply_for_everything,
    casebook,
    change_employer,
    held_request,
    officers_decide,
    register_john_again,
    remind,
    synced,
)
from hub import bootstrap
from hub.logging import get_logger
from hub.ops.evidence import uncovered, verify_log
from hub.ops.views import Drift, drifts
from hub.projection import fetch_all
from hub.registry import installed
from hub.settings import Settings
from hub.stack.local import LocalStack
from producers.work_permit import Authority, authority
from schemas.permits import (
    EXTENSION_WINDOW,
    CancellationReason,
    Category,
    Employer,
    Holder,
    PermitRecord,
    PermitStandard,
    PermitStatus,
)

log = get_logger(__name__)

ACME = Employer(
    name="Acme Precision (Beijing) Co., Ltd.",
    credit_code="91110105MA01ABCD3X",
    province="Beijing",
    city="Beijing",
)
HANSA = Employer(
    name="Hansa Automotive Systems (Shanghai) Co., Ltd.",
    credit_code="91310115MA1K4XYW8B",
    province="Shanghai",
    city="Shanghai",
)


@dataclass(frozen=True)
class Person:
    """A foreigner in the story, and the employer that hires them."""

    holder: Holder
    employer: Employer
    category: Category
    position: str
    months: int


PEOPLE = (
    Person(
        Holder(
            name="Anna Schmidt",
            sex="F",
            date_of_birth=date(1988, 3, 14),
            nationality="DE",
            passport_no="C4J7KL921",
            passport_expiry=date(2032, 5, 1),
        ),
        HANSA,
        Category.B,
        "Powertrain engineer",
        12,
    ),
    Person(
        Holder(
            name="Kenji Sato",
            sex="M",
            date_of_birth=date(1979, 11, 2),
            nationality="JP",
            passport_no="TZ1048837",
            passport_expiry=date(2031, 8, 20),
        ),
        ACME,
        Category.A,
        "Chief scientist",
        36,
    ),
    Person(
        Holder(
            name="Maria Garcia Lopez",
            sex="F",
            date_of_birth=date(1993, 6, 30),
            nationality="ES",
            passport_no="PAB204711",
            passport_expiry=date(2030, 1, 9),
        ),
        ACME,
        Category.B,
        "Product designer",
        12,
    ),
    Person(
        Holder(
            name="Kim Min-jun",
            sex="M",
            date_of_birth=date(1985, 5, 21),
            nationality="KR",
            passport_no="M12345678",
            passport_expiry=date(2033, 9, 30),
        ),
        HANSA,
        Category.B,
        "Battery chemist",
        12,
    ),
    Person(
        Holder(
            name="Ngozi Okafor",
            sex="F",
            date_of_birth=date(2001, 2, 17),
            nationality="NG",
            passport_no="A07734120",
            passport_expiry=date(2029, 4, 4),
        ),
        HANSA,
        Category.C,
        "Engineering intern",
        6,
    ),
)

LATE = Person(
    Holder(
        name="Priya Raman",
        sex="F",
        date_of_birth=date(1990, 12, 5),
        nationality="IN",
        passport_no="Z4417260",
        passport_expiry=date(2034, 2, 14),
    ),
    ACME,
    Category.B,
    "Data engineer",
    24,
)
"""Her e-card request reaches the card service before her permit does."""

LEGACY_HOLDER = PermitRecord(
    permit_no="110000201900000000",  # each run registers him under a number of its own
    status=PermitStatus.ACTIVE,
    standard=PermitStandard.LEGACY,
    holder=Holder(
        name="John Smith",
        sex="M",
        date_of_birth=date(1975, 9, 9),
        nationality="CA",
        passport_no="GA4431907",
        passport_expiry=date(2033, 3, 3),
    ),
    category=Category.B,
    employer=ACME,
    position="Senior English teacher",
    approved_months=24,
    issued_on=date(2024, 3, 1),
    valid_from=date(2024, 3, 1),
    valid_until=date(2026, 2, 28),
)


async def open_permits(auth: Authority, start: date) -> dict[str, PermitRecord]:
    """Letters, then issue after entry; and John's pre-2024 physical permit, registered as is."""
    keys = ("anna", "kenji", "maria", "minjun", "ngozi")
    people = {}
    for key, p in zip(keys, PEOPLE, strict=True):
        people[key] = await auth.apply(holder=p.holder, employer=p.employer, category=p.category,
                                       position=p.position, approved_months=p.months, today=start)
    entry = start + timedelta(days=21)
    for key in keys:
        people[key] = await auth.issue(people[key].permit_no, valid_from=entry, today=entry)
    people["john"] = await _legacy(auth)
    return people


async def consequences(auth: Authority, people: dict[str, PermitRecord]) -> None:
    """Extension, change, cancellation and expiry, each with its consequences downstream."""
    anna, kenji, maria, ngozi, john = (people[k] for k in ("anna", "kenji", "maria", "ngozi",
                                                           "john"))
    # Anna: 60 days before the end (30 days after the reminder that the extension window
    # opened) she applies to extend by a year, then renews her passport.
    assert anna.valid_until is not None
    await auth.extend(anna.permit_no, new_valid_until=anna.valid_until + timedelta(days=365),
                      today=anna.valid_until - timedelta(days=60))
    await auth.change(anna.permit_no, passport_no="C9R2MN018", passport_expiry=date(2036, 4, 1))
    # Kenji is promoted; Maria's contract ends; Ngozi's internship ends without extension.
    await auth.change(kenji.permit_no, position="Vice president, research")
    assert maria.valid_from is not None
    assert ngozi.valid_until is not None
    await auth.cancel(maria.permit_no, reason=CancellationReason.CONTRACT_ENDED,
                      today=maria.valid_from + timedelta(days=200))
    await auth.expire(ngozi.permit_no, today=ngozi.valid_until + timedelta(days=1))
    # Only John's extension moves him onto the integrated standard.
    assert john.valid_until is not None
    await auth.extend(john.permit_no, new_valid_until=john.valid_until + timedelta(days=730),
                      today=john.valid_until - timedelta(days=60))


async def _legacy(auth: Authority) -> PermitRecord:
    # A number of its own on every run, so a second demo on the same stack tells it again.
    while True:
        permit_no = f"110000{random.randrange(10**12):012d}"
        if await auth.get(permit_no) is None:
            break
    today = date.today()
    record = LEGACY_HOLDER.model_copy(update={
        "permit_no": permit_no, "issued_on": today - timedelta(days=500),
        "valid_from": today - timedelta(days=500), "valid_until": today + timedelta(days=200),
    })
    return await auth.register_legacy(PermitRecord.model_validate(record.model_dump()))


async def card_standard(settings: Settings, permit_no: str) -> str | None:
    """The standard the card service shows for a permit."""
    async with bootstrap.pool(settings, "card", max_size=1) as p:
        value: str | None = await p.fetchval(
            "SELECT standard FROM card_permits WHERE permit_no = $1", permit_no
        )
        return value


async def settle(settings: Settings, within: float = 60.0) -> list[Drift]:
    """Wait until every view agrees with the authority, or the timeout; return what differs."""
    deadline = time.monotonic() + within
    while True:
        found = await drifts(settings)
        if not found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def committed(settings: Settings, within: float = 30.0) -> None:
    """Wait until every agency's history so far is covered by chain heads the others
    recorded (they are sent every `evidence_head_interval_s`)."""
    deadline = time.monotonic() + within
    while True:
        if not await uncovered(settings) or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.2)


async def side_by_side(settings: Settings, permit_nos: list[str]) -> str:
    """A table of what the authority and each agency hold for these permits."""
    async with authority(settings) as auth:
        truth = {p: await auth.get(p) for p in permit_nos}
    views = {}
    for agency in installed().with_views():
        assert agency.view is not None
        async with bootstrap.pool(settings, agency.name, max_size=1) as p:
            views[agency.name] = await fetch_all(p, agency.view.table)
    head = f"{'permit':<19}{'holder':<20}{'authority':<26}" + "".join(f"{a:<26}" for a in views)
    lines = [head, "-" * len(head)]
    for permit_no, found in truth.items():
        if found is None:
            continue
        record, seq = found
        cells = [f"{record.status.value} #{seq} ..{record.valid_until}"]
        for view in views.values():
            row = view.get(permit_no)
            cells.append(
                f"{row['status']} #{row['sequence']} ..{row['valid_until']}" if row else "(missing)"
            )
        lines.append(
            f"{permit_no:<19}{record.holder.name[:18]:<20}" + "".join(f"{c:<26}" for c in cells)
        )
    return "\n".join(lines)


@dataclass
class Told:
    """What the story did and what the agencies hold after it, to print."""

    people: dict[str, PermitRecord]
    book: Casebook
    before: str | None
    after: str | None
    found: list[Drift]
    table: str
    cases: str


async def tell(settings: Settings, out_dir: Path) -> Told:
    """The story on an initialised stack, with every agency's consumer and relay running in
    this process while it is told (the privacy test tells it too, reading every line)."""
    book = Casebook()
    async with contextlib.AsyncExitStack() as running:
        # Every agency's consumer and relay; the authority's apart, so it can be paused.
        relay = Pausable(settings, installed().authority().name)
        for agency in installed().names():
            if agency != relay.agency:
                await running.enter_async_context(bootstrap.running_agency(settings, agency))
        await relay.resume()
        running.push_async_callback(relay.pause)
        auth = await running.enter_async_context(authority(settings))
        people = await open_permits(auth, start=date.today() - timedelta(days=30))
        john = people["john"].permit_no
        await synced(settings)
        await apply_for_everything(settings, people, date.today() - timedelta(days=9),
                                   out_dir, book)
        # Priya's permit is decided while the authority's relay is down; her e-card request
        # overtakes it.
        await relay.pause()
        entry = date.today() - timedelta(days=2)
        priya = await auth.apply(holder=LATE.holder, employer=LATE.employer,
                                 category=LATE.category, position=LATE.position,
                                 approved_months=LATE.months, today=entry - timedelta(days=21))
        people["priya"] = await auth.issue(priya.permit_no, valid_from=entry, today=entry)
        await held_request(settings, people["priya"], book, relay)
        before = await card_standard(settings, john)
        # The scheduler's sweep on the day Anna's extension window opens (90 days left).
        anna = people["anna"]
        assert anna.valid_until is not None
        await remind(settings, anna.permit_no,
                     anna.valid_until - EXTENSION_WINDOW[1], book)
        await consequences(auth, people)
        await synced(settings)
        await officers_decide(settings, people, book)
        await change_employer(settings, auth, people["maria"], HANSA, book)
        await register_john_again(settings, people["john"])
        after = await card_standard(settings, john)
        found = await settle(settings)
        await committed(settings)
        table = await side_by_side(settings, [p.permit_no for p in people.values()])
        cases = await casebook(settings, book)
    return Told(people, book, before, after, found, table, cases)


async def play(settings: Settings, *, keep_running: bool = True) -> int:
    """Start the stack, run the services, tell the story, compare the views."""
    stack = LocalStack(settings)
    stack.up()
    out_dir = settings.home / "demo"
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        await bootstrap.init_all(settings)
        told = await tell(settings, out_dir)
        people, book, found = told.people, told.book, told.found
        john = people["john"].permit_no
        permit_nos = [p.permit_no for p in people.values()]
        print(told.table)
        print("\nEach agency's records:\n" + told.cases)
        print(f"\n{LEGACY_HOLDER.holder.name}'s physical permit {john}: the card showed"
              f" standard {told.before!r}; after his extension, {told.after!r}"
              " (No Change, No Replacement)")
        png = book.qr_png.resolve() if book.qr_png else "-"
        print(f"\nAnna's e-card, on {book.reminder_day} (the extension window opens):"
              f"\n  {book.reminder}"
              "\n  she applies 30 days later, within the window, and the extension is granted")
        print(f"\n{LATE.holder.name}'s e-card request reached the card before her permit:"
              f"\n  {book.held}")
        print(f"\nDecisions taken by people, through each agency's desk:"
              f"\n  Kim Min-jun's registration, referred to manual review: {book.reviewed}"
              f"\n  Maria's residence permit cancellation case: {book.closed}")
        print(f"\nMaria changes employer after her contract ended:\n  {book.new_employer}")
        print(f"\nAnna's permit with its QR code: {png}"
              f"\n  scanned by public security: {book.qr_verdict}"
              f"\n  check it yourself: .venv/bin/hub qr verify {book.qr_png}")
        verdicts = [await verify_log(settings, a) for a in installed().names()]
    finally:
        if not keep_running:
            stack.down()
    print("\nEach agency's evidence log (hub evidence verify):")
    for v in verdicts:
        state = "verifies" if v.ok else f"FAILS at row {v.first_bad_row}: {v.problems[0]}"
        print(f"  {v.agency:<18} {v.rows:>5} rows, {v.heads_compared} chain head(s) recorded"
              f" by others match: {state}")
    if not all(v.ok for v in verdicts):
        return 1
    if found:
        print(f"\n{len(found)} disagreement(s) between the authority and the views:")
        for drift in found[:50]:
            print(f"  {drift}")
        return 1
    print("\nevery agency view agrees with the authority.")
    print(f"try: .venv/bin/hub views show {permit_nos[0]} --purpose demo --json")
    return 0
