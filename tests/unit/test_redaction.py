"""Personal data stays out of log lines, dead-letter headers and error texts (issue 10, 3)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import asyncpg
import pytest
import structlog
from pydantic import BaseModel, ValidationError

from hub.delivery import Delivery
from hub.kafka import DeadLetter, dead_letter_headers
from hub.logging import configure_logging, redact_personal_data
from hub.redaction import REDACTED, NoPersonalData, describe_error, redact, scrub_text
from schemas import PERMIT_EVENT_TYPES, Codec, DecodeError, DecodeFailure, Holder
from tests.factories import active_record, holder, issued_event
from tests.privacy import demo_holders, needles, personal_data_in

ANNA = demo_holders()[0]
SSN = "F0123456789ABCDEF"  # F and 16 Crockford base32 characters, as social insurance makes
SEARCH = needles(demo_holders(), [SSN])


def test_the_checker_finds_a_planted_name_deep_in_a_structure() -> None:
    """The search the integration test relies on can fail: a name three levels down in a
    header list, or a date of birth in bytes, is found; clean data yields nothing."""
    planted = {"records": [("dlq.error.message", b"ok"), {"deep": ["x", f"hi {ANNA.name}"]}]}
    assert personal_data_in(planted, SEARCH) != []
    assert personal_data_in([b"born " + ANNA.date_of_birth.isoformat().encode()], SEARCH)
    assert personal_data_in({"event": "dead-lettered", "offset": 7}, SEARCH) == []


def test_nested_personal_keys_are_masked_and_the_rest_stays() -> None:
    """A permit logged whole keeps its number and status; its holder, an SSN and a QR token
    inside lists and dicts are masked; `event`, `type` and `topic` stay."""
    record = active_record(holder=Holder.model_validate(ANNA.model_dump()))
    event = {"event": "applied", "type": "cn.mohrss.workpermit.PermitIssued",
             "topic": "permits", "permit": record.model_dump(mode="json"),
             "cards": [{"ssn": SSN, "token": "eyJhbGciOi.x.y", "card_id": "ESSC0123456789ABCDEF"}]}
    out = redact_personal_data(None, "info", dict(event))
    assert out["event"] == "applied"
    assert out["type"] == event["type"]
    assert out["topic"] == "permits"
    assert out["permit"]["permit_no"] == record.permit_no
    assert out["permit"]["holder"] == REDACTED
    assert out["cards"] == [{"ssn": REDACTED, "token": REDACTED,
                             "card_id": "ESSC0123456789ABCDEF"}]
    assert personal_data_in(out, SEARCH) == []
    assert personal_data_in(event, SEARCH) != []  # the caller's objects are not changed


@dataclass
class _Case:
    permit_no: str
    applicant: Holder
    names: tuple[str, ...]


def test_models_dataclasses_and_tuples_are_redacted_at_any_depth() -> None:
    """A pydantic model and a dataclass holding one are walked like dicts."""

    class Wrapper(BaseModel):
        holder: Holder
        note: str

    case = _Case("156000000000000001", ANNA, ("x", f"passport {ANNA.passport_no}"))
    assert personal_data_in(redact({"w": Wrapper(holder=ANNA, note="n"), "c": case}),
                            SEARCH) == []
    assert redact(case)["permit_no"] == "156000000000000001"


def test_free_text_loses_ssn_and_passport_tokens_and_keeps_ordinary_ids() -> None:
    """SSN- and passport-like tokens are masked in a sentence; permit numbers, e-card ids,
    credit codes, SQLSTATEs, uuids and event types are left as they are."""
    text = (f"ssn {SSN} passport {ANNA.passport_no}, also TZ1048837; permit 156000000000000001"
            " card ESSC0123456789ABCDEF credit 91110105MA01ABCD3X SQLSTATE 22021 id"
            " b83d39bd-98b8-493d-8d7a-5eac45df2b75 type cn.mohrss.workpermit.PermitIssued")
    out = scrub_text(text)
    assert SSN not in out
    assert ANNA.passport_no not in out
    assert "TZ1048837" not in out
    for kept in ("156000000000000001", "ESSC0123456789ABCDEF", "91110105MA01ABCD3X", "22021",
                 "b83d39bd-98b8-493d-8d7a-5eac45df2b75", "cn.mohrss.workpermit.PermitIssued"):
        assert kept in out
    assert scrub_text("consumer started") == "consumer started"


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """What the process writes to stderr (where both logging paths go) during the test;
    logging as it was before afterwards."""
    yield lambda: capsys.readouterr().err
    structlog.reset_defaults()
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "_hub_logging", False)]:
        root.removeHandler(h)


def _fails_with_personal_locals() -> None:
    name = ANNA.name  # a local a traceback with locals would show
    passport_no = ANNA.passport_no
    raise ValueError(f"no permit for {name} ({passport_no})")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_traceback_shows_neither_locals_nor_a_message_that_may_echo_them(
    fmt: str, stderr: Callable[[], str]
) -> None:
    """`log.exception` renders frames and the exception's class, never a local's value or
    the text of an exception the hub does not know to be clean."""
    configure_logging(fmt, "INFO")
    try:
        _fails_with_personal_locals()
    except ValueError:
        structlog.get_logger("t").exception("consumer failed", holder=ANNA)
    out = stderr()
    assert "consumer failed" in out
    assert "_fails_with_personal_locals" in out  # the frames are there
    assert "ValueError" in out
    assert personal_data_in(out, SEARCH) == []


def test_standard_library_lines_are_rendered_and_redacted_like_ours(
    stderr: Callable[[], str],
) -> None:
    """An aiokafka-style warning through `logging` comes out as one JSON line, its SSN
    scrubbed and its traceback without the exception's text."""
    configure_logging("json", "INFO")
    try:
        _fails_with_personal_locals()
    except ValueError:
        logging.getLogger("aiokafka.consumer").warning("fetch for %s failed", SSN, exc_info=True)
    [line] = [json.loads(x) for x in stderr().splitlines() if x.startswith("{")]
    assert line["logger"] == "aiokafka.consumer"
    assert line["level"] == "warning"
    assert line["event"] == f"fetch for {REDACTED} failed"
    assert "Traceback" in line["exception"]
    assert personal_data_in(line, SEARCH) == []


def test_a_pydantic_error_raised_in_a_handler_is_described_without_input_values() -> None:
    """A ValidationError's own text shows `input_value=...`; the dead letter's message and
    the log's `error` name the field and the kind of error only."""
    try:
        Holder.model_validate(ANNA.model_dump() | {"nationality": ANNA.name,
                                                   "passport_no": ANNA.passport_no.lower()})
    except ValidationError as exc:
        raised = exc
    assert ANNA.name in str(raised)  # what the hub used to log and dead-letter
    event = issued_event()
    letter = DeadLetter.of_delivery(Delivery("permits", 0, 1, 0, event), "handler_error", raised)
    assert "nationality" in letter.error_message
    assert "passport_no" in letter.error_message
    assert personal_data_in(letter.error_message, SEARCH) == []
    headers = dead_letter_headers(letter, "card", event.time)
    assert personal_data_in(headers, SEARCH) == []


def test_a_message_that_echoes_input_is_withheld_and_one_naming_a_rule_is_kept() -> None:
    """Our validators' messages are shown when no input value occurs in them: the rule
    about valid_from and valid_until is; "a permit with status active needs ..." repeats
    the status sent, so only its kind is."""
    anna = holder(name=ANNA.name, passport_no=ANNA.passport_no)
    with pytest.raises(ValidationError) as rule:
        active_record(holder=anna, valid_until=None)
    assert "given together or not at all" in describe_error(rule.value)
    with pytest.raises(ValidationError) as echo:
        active_record(holder=anna, valid_from=None, valid_until=None)
    assert describe_error(echo.value) == "message: value_error"
    assert personal_data_in([describe_error(rule.value), describe_error(echo.value)],
                            SEARCH) == []


def test_only_errors_known_to_be_clean_keep_their_message() -> None:
    """A hub error marked NoPersonalData keeps its text; Postgres's is reduced to its
    SQLSTATE; any other error to its class."""

    class Refused(NoPersonalData, ValueError):
        pass

    assert describe_error(Refused("key mismatch on permit 156000000000000001")) == (
        "key mismatch on permit 156000000000000001")
    pg = asyncpg.exceptions.InvalidDatetimeFormatError(
        f'invalid input syntax for type date: "{ANNA.name}"')
    assert ANNA.name not in describe_error(pg)
    assert "SQLSTATE 22007" in describe_error(pg)
    check = asyncpg.exceptions.CheckViolationError(
        f'new row violates check constraint "no_nul" with value "{ANNA.name}"')
    check.constraint_name, check.table_name = "no_nul", "card_permits"
    assert describe_error(check).startswith(
        "SQLSTATE 23514 (table card_permits, constraint no_nul)")
    assert ANNA.name not in describe_error(check)
    assert ANNA.name not in describe_error(KeyError(ANNA.name))


@pytest.mark.parametrize("sent", ["Anna Schmidt", "cn.mohrss.workpermit.AnnaSchmidt x",
                                  "x" * 5000])
def test_an_unknown_type_that_is_not_an_event_name_is_never_echoed(sent: str) -> None:
    """The sender's `type` is repeated only when it is an event name in a known namespace;
    otherwise its length and digest stand for it."""
    body = json.loads(issued_event().to_json())
    body["type"] = sent
    with pytest.raises(DecodeError) as caught:
        Codec(PERMIT_EVENT_TYPES).decode(json.dumps(body).encode())
    assert caught.value.failure is DecodeFailure.UNKNOWN_TYPE
    assert sent not in str(caught.value)
    assert "sha256" in caught.value.detail
    assert len(str(caught.value)) < 300
