"""How `hub replay` reads its --from / --to bounds (hub/ops/replay.py `parse_bound`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.errors import BadTarget
from hub.ops.replay import parse_bound


def test_earliest_is_a_start_but_not_an_end() -> None:
    """--from earliest reads the whole log; --to earliest means nothing and is refused."""
    assert parse_bound(" earliest ", allow_earliest=True) == "earliest"
    with pytest.raises(BadTarget, match="a datetime or P:OFFSET"):
        parse_bound("earliest", allow_earliest=False)


@pytest.mark.parametrize(("text", "offsets"), [
    ("0:10", {0: 10}),
    ("0:10,1:0,2:7", {0: 10, 1: 0, 2: 7}),
    (" 0:5 , 1:6 ", {0: 5, 1: 6}),
])
def test_partition_offsets_are_read_per_partition(text: str, offsets: dict[int, int]) -> None:
    """`P:OFFSET,...` gives each partition its own offset."""
    assert parse_bound(text, allow_earliest=True) == offsets


@given(st.dictionaries(st.integers(0, 999), st.integers(0, 10**12), min_size=1, max_size=8))
def test_any_partition_offset_list_reads_back_as_written(offsets: dict[int, int]) -> None:
    """Formatting offsets as P:OFFSET,... and parsing them gives the same mapping."""
    text = ",".join(f"{p}:{o}" for p, o in offsets.items())
    assert parse_bound(text, allow_earliest=False) == offsets


@pytest.mark.parametrize("text", ["0:abc", "0:", "a:1", "0:1,", "0:-1", "-1:5", "0:1:2"])
def test_a_malformed_or_negative_offset_list_is_refused(text: str) -> None:
    """Anything but non-negative integers in P:OFFSET pairs: BadTarget, nothing replayed."""
    with pytest.raises(BadTarget, match="nothing was replayed"):
        parse_bound(text, allow_earliest=True)


def test_a_naive_datetime_is_read_as_utc() -> None:
    """No offset given: UTC."""
    assert parse_bound("2026-01-01T08:30:00", allow_earliest=True) == datetime(
        2026, 1, 1, 8, 30, tzinfo=UTC)


def test_a_datetime_keeps_the_offset_it_was_given() -> None:
    """08:00 in China is midnight UTC."""
    when = parse_bound("2026-01-01T08:00:00+08:00", allow_earliest=True)
    assert when == datetime(2026, 1, 1, tzinfo=UTC)
    assert isinstance(when, datetime)
    assert when.utcoffset() == timezone(timedelta(hours=8)).utcoffset(None)


def test_a_date_alone_is_its_midnight_utc() -> None:
    """A day names its first instant."""
    assert parse_bound("2026-01-01", allow_earliest=False) == datetime(2026, 1, 1, tzinfo=UTC)


def test_a_time_in_the_future_is_refused() -> None:
    """Nothing was written yet at a future time."""
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    with pytest.raises(BadTarget, match="in the future"):
        parse_bound(future, allow_earliest=True)


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01", "now"])
def test_text_that_is_no_bound_is_refused(text: str) -> None:
    """Neither earliest, a datetime nor an offset list: BadTarget naming what is accepted."""
    with pytest.raises(BadTarget, match="is not earliest, a datetime or P:OFFSET"):
        parse_bound(text, allow_earliest=True)
