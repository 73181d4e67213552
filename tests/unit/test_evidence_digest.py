"""The evidence log's append computes each entry's digest without the general JSON encoder
(hub/evidence.py); it must be byte for byte the digest `hub evidence verify` and an
auditor's `verify.py` recompute (hub/evidence_chain.py), or every new row would fail them."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.evidence import Entry, _entry_digest, _json, _stamp
from hub.evidence_chain import entry_digest

TEXT = st.text(alphabet=st.characters(), max_size=40)  # any code point: quotes, controls, CJK
MAYBE = st.none() | TEXT
OFFSET = st.integers(min_value=0, max_value=2**63 - 1)


@settings(max_examples=400, deadline=None)
@given(direction=st.sampled_from(["received", "sent"]), outcome=TEXT, topic=TEXT,
       partition=st.integers(min_value=0, max_value=2**31 - 1), offset=OFFSET,
       value=st.binary(max_size=64), jws=MAYBE, tree=MAYBE, event_id=MAYBE,
       event_type=MAYBE, subject=MAYBE, signer=MAYBE, kid=MAYBE, seq=OFFSET)
def test_an_appended_entrys_digest_is_the_canonical_json_digest_the_verifiers_compute(
    direction: str, outcome: str, topic: str, partition: int, offset: int, value: bytes,
    jws: str | None, tree: str | None, event_id: str | None, event_type: str | None,
    subject: str | None, signer: str | None, kid: str | None, seq: int,
) -> None:
    e = Entry(direction, outcome, topic, partition, offset, value, jws, tree,  # type: ignore[arg-type]
              event_id, event_type, subject, signer, kid)
    stamp = "2026-11-30T08:00:01.000001Z"
    digest = hashlib.sha256(value).hexdigest()
    fields = {"seq": seq, "recorded_at": stamp, "direction": direction, "outcome": outcome,
              "topic": topic, "partition": partition, "offset": offset, "event_id": event_id,
              "event_type": event_type, "subject": subject, "signer": signer, "kid": kid,
              "jws": jws, "tree": tree, "digest": digest}
    assert _entry_digest(e, seq, _json(stamp), digest) == entry_digest(fields)


def test_the_recorded_time_is_written_as_the_verifiers_read_it_back() -> None:
    from datetime import UTC, datetime

    stamp = _stamp(datetime(2026, 11, 30, 8, 0, 1, 1, tzinfo=UTC))
    assert _json(stamp) == '"2026-11-30T08:00:01.000001Z"'
