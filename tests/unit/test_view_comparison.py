"""How `hub reconcile` compares an agency view with the authority (hub/ops/views.py)."""

from __future__ import annotations

from datetime import date
from typing import Any

from hub.ops.views import Drift, authority_fields, compare
from schemas.permits import PermitRecord
from tests.factories import active_record


def _row(record: PermitRecord, sequence: int, **changes: Any) -> dict[str, Any]:
    """The row a view holding this record would have, with any field changed."""
    return {**authority_fields(record, sequence), "position": "not compared", **changes}


def test_a_view_equal_to_the_authority_has_no_drift() -> None:
    """Every compared field equal, extra columns ignored: nothing to report."""
    record = active_record()
    assert compare("tax", {record.permit_no: (record, 3)},
                   {record.permit_no: _row(record, 3)}) == []


def test_each_differing_field_is_one_drift_with_both_values() -> None:
    """A stale sequence and a wrong end date are reported field by field."""
    record = active_record()
    wrong = _row(record, 2, valid_until=date(2020, 1, 1))
    found = compare("tax", {record.permit_no: (record, 3)}, {record.permit_no: wrong})
    assert found == [
        Drift("tax", record.permit_no, "sequence", 3, 2),
        Drift("tax", record.permit_no, "valid_until", record.valid_until, date(2020, 1, 1)),
    ]


def test_a_missing_and_an_unknown_permit_are_drifts_too() -> None:
    """A permit the view lacks, and one only the view holds, each count once."""
    record = active_record()
    other = active_record("156000000000000002")
    found = compare("tax", {record.permit_no: (record, 1)}, {other.permit_no: _row(other, 1)})
    assert found == [
        Drift("tax", record.permit_no, "missing", "present", None),
        Drift("tax", other.permit_no, "unknown", None, "present"),
    ]


def test_the_compared_fields_come_from_the_record() -> None:
    """Status as its value, the holder's name and nationality, the validity and sequence."""
    record = active_record()
    assert authority_fields(record, 7) == {
        "sequence": 7, "status": record.status.value, "valid_from": record.valid_from,
        "valid_until": record.valid_until, "holder_name": record.holder.name,
        "nationality": record.holder.nationality,
    }
