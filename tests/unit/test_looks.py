"""What the commands that show personal data mask unless `--reveal` (hub/reveal.py), and
what they record of a look (hub/looks.py): the purpose, the permit, field names only."""

from __future__ import annotations

import json
from datetime import date

import pytest

from hub.errors import BadTarget
from hub.looks import Look, Seen
from hub.ops.dlq import DeadLetterMessage
from hub.ops.reconcile import drift_dict, looks_of, masked
from hub.ops.views import Drift
from hub.reveal import (
    PERSONAL_KEYS,
    REDACTED,
    is_personal,
    mask,
    redact,
    redact_error,
    shown_fields,
)
from producers.work_permit import domain
from tests.factories import active_record, holder, issued_event

PERMIT = "156000000000000001"


def _record_json() -> dict[str, object]:
    record = active_record(PERMIT, holder=holder(name="Anna Maria Schmidt",
                                                 passport_no="P12345678",
                                                 date_of_birth=date(1990, 5, 4)))
    return record.model_dump(mode="json") | {"family": [{"name": "Jonas Schmidt",
                                                         "relationship": "child"}]}


def test_a_permit_record_shows_no_personal_value_unless_revealed() -> None:
    """Name to initials, passport number, birth date and family to [redacted]; the permit
    number, the status and the employer's (a company's) name stay as they are."""
    record = _record_json()
    shown = redact(record)
    text = json.dumps(shown, ensure_ascii=False)
    for secret in ("Anna", "Schmidt", "P12345678", "1990-05-04", "Jonas"):
        assert secret not in text
    assert shown["holder"]["name"] == "A••• M•••• S••••••"
    assert shown["holder"]["passport_no"] == REDACTED
    assert shown["family"] == REDACTED
    assert (shown["permit_no"], shown["status"]) == (PERMIT, "active")
    assert shown["employer"]["name"] == record["employer"]["name"]  # type: ignore[index]
    assert redact(record, reveal=True) == record


def test_a_field_change_masks_its_old_and_new_values_when_the_field_is_personal() -> None:
    """PermitChanged carries a renamed holder's names in `changes`: both are masked."""
    record = active_record(PERMIT, holder=holder(name="Anna Schmidt"))
    changed = domain.change(record, name="Anna Weber")
    shown = redact(changed.model_dump(mode="json"))
    assert "Weber" not in json.dumps(shown)
    assert "Schmidt" not in json.dumps(shown)
    assert {"field": "holder.name", "old": "A••• S••••••", "new": "A••• W••••"} in shown["changes"]


def test_personal_keys_are_known_by_name_wherever_they_are() -> None:
    """The one constant names them; a path's last key decides, except a company's name."""
    assert {"name", "holder_name", "passport_no", "date_of_birth", "ssn", "family",
            "token"} <= PERSONAL_KEYS
    assert is_personal("data.permit.holder.name")
    assert is_personal("data.name")
    assert is_personal("ssn")
    assert is_personal("data.presented.token")
    assert not is_personal("employer.name")
    assert not is_personal("permit_no")
    assert not is_personal("status")
    assert not is_personal("holder_name_length")
    assert mask("ssn", None) is None


def test_a_look_records_field_names_never_values() -> None:
    """`shown_fields` names each field as a dotted path; a list (family) is one field."""
    fields = shown_fields(_record_json())
    assert {"permit_no", "holder.name", "holder.passport_no", "family"} <= set(fields)
    assert not any("Anna" in f or "P1234" in f for f in fields)
    assert shown_fields(None) == []


@pytest.mark.parametrize("purpose", ["", "   ", "why", " x\t "])
def test_a_look_without_a_real_purpose_is_refused(purpose: str) -> None:
    """An empty or three-letter purpose says nothing: refused before anything is read."""
    with pytest.raises(BadTarget, match="--purpose"):
        Look("views show", purpose, False)


def test_a_look_keeps_its_purpose_stripped_and_an_empty_operator_as_none() -> None:
    """The purpose as typed without its blanks; the operator id only when one is given."""
    look = Look("views show", "  case 2026-117 ", True, operator=" ")
    assert (look.purpose, look.operator, look.revealed) == ("case 2026-117", None, True)
    assert look.looked_by


def test_reconcile_records_one_look_per_permit_shown_on_each_side() -> None:
    """A wrong value is a look at the view's agency and the authority; a permit the view
    lacks shows no value but is still named; a permit only the view holds is not the
    authority's."""
    found = [Drift("card", "1", "holder_name", "Anna Schmidt", "Anna Weber"),
             Drift("card", "1", "status", "active", "cancelled"),
             Drift("card", "2", "missing", "present", None),
             Drift("public_security", "3", "unknown", None, "present")]
    assert looks_of(found, "workpermit") == {
        "card": [Seen("1", "1", ["holder_name", "status"]), Seen("2", "2", [])],
        "workpermit": [Seen("1", "1", ["holder_name", "status"]), Seen("2", "2", [])],
        "public_security": [Seen("3", "3", [])],
    }


def test_a_drift_of_a_personal_field_is_masked_unless_revealed() -> None:
    """Both values of a holder-name drift are masked; a status drift is shown as it is."""
    name = Drift("card", "1", "holder_name", "Anna Schmidt", "Anna Weber")
    status = Drift("card", "1", "status", "active", "cancelled")
    assert drift_dict(masked(name))["authority"] == "A••• S••••••"
    assert "Weber" not in str(masked(name))
    assert masked(status) == status
    assert masked(name, reveal=True) == name


def test_a_dead_letter_names_its_permit_and_masks_its_body() -> None:
    """A permit event's subject names the permit it is about; the holder in its value is
    masked, its headers and key stay; a value that is not JSON is masked whole."""
    event = issued_event(PERMIT)
    letter = DeadLetterMessage("hub.card.dlq", 0, 7, 0, PERMIT.encode(),
                               event.model_dump_json().encode(), [("dlq.reason", b"x")])
    assert letter.permit_no() == PERMIT
    shown = letter.detail()
    assert event.data.permit.holder.name not in json.dumps(shown, ensure_ascii=False)
    assert shown["value"]["data"]["permit"]["permit_no"] == PERMIT
    assert letter.detail(reveal=True)["value"]["data"]["permit"]["holder"]["name"] == (
        event.data.permit.holder.name)
    seen = letter.seen()
    assert (seen.subject, seen.permit_no) == ("hub.card.dlq:0:7", PERMIT)
    assert "value.data.permit.holder.name" in seen.fields

    raw = DeadLetterMessage("hub.card.dlq", 0, 8, 0, b"not-a-permit", b"Anna;P1234", [])
    assert (raw.permit_no(), raw.detail()["value"]) == (None, REDACTED)
    assert raw.detail(reveal=True)["value"] == "Anna;P1234"
    assert raw.seen().fields == ["key", "headers", "value"]


def test_the_values_an_error_message_quotes_are_masked_unless_revealed() -> None:
    """Postgres's DETAIL line quotes the failing row, pydantic the failing input: both are
    masked in a dead letter's error message; what failed, and where, stays readable."""
    pg = ('new row for relation "card_permits" violates check constraint "block"\n'
          "DETAIL:  Failing row contains (156000000000000001, 3, Anna Schmidt).")
    shown = redact_error(pg)
    assert shown is not None
    assert "Anna" not in shown
    assert shown.startswith('new row for relation "card_permits" violates check constraint')
    assert redact_error(pg, reveal=True) == pg
    pydantic = ("1 validation error for PermitIssued\ndata.permit.holder.name\n  String should"
                " have at most 200 characters [type=string_too_long,"
                " input_value='Anna Schmidt, Anna Schmidt', input_type=str]")
    masked_text = redact_error(pydantic)
    assert masked_text is not None
    assert "Anna" not in masked_text
    assert "data.permit.holder.name" in masked_text
    letter = DeadLetterMessage("hub.card.dlq", 0, 9, 0, None, b"{}",
                               [("dlq.error.message", pg.encode())])
    assert "Anna" not in json.dumps(letter.detail())
    assert "Anna" in json.dumps(letter.detail(reveal=True))
