"""Foreign clients on the real broker: kcat (librdkafka, no Python) produces the golden
examples as a Java or Go agency system would, and the hub applies them; kcat reads what the
hub's relay publishes, and the JSON validates against the committed schemas. kcat logs in
over SASL_SSL like every client: as the authority to write, as ops to read."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from consumers.card.handlers import card_permit
from hub import bootstrap
from hub.evidence_chain import tree_root
from hub.kafka import end_offsets
from hub.kafka_credentials import OPS
from hub.ops.lag import caught_up
from hub.registry import installed
from hub.settings import Settings
from producers.work_permit import authority
from schemas import CONTENT_TYPE, Codec
from schemas.registry import ALL_EVENT_TYPES
from tests.integration.hub_fixtures import (
    AUTHORITY,
    OBSERVER,
    eventually,
    expected_rows,
    permit_topic,
    read_topic,
    view_rows,
)
from tests.integration.stack_fixtures import kcat_login
from tests.integration.test_lifecycle import random_lifecycles

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"
BY_TYPE = {t.EVENT_TYPE: t for t in ALL_EVENT_TYPES}
CARD_RECEIVES = {t.EVENT_TYPE: t for t in installed().get("card").accepts}


async def _kcat(kcat: str, *args: str) -> str:
    """Run kcat in a worker thread (the event loop keeps serving the hub's clients)."""

    def run() -> str:
        done = subprocess.run([kcat, *args], check=True, timeout=60, capture_output=True,
                              text=True)
        return done.stdout

    return await asyncio.to_thread(run)


async def _openssl_jws(pem: Path, kid: str, value: bytes) -> str:
    """A detached JWS (RFC 7515 Appendix F) made by openssl alone: Ed25519 over
    BASE64URL(header) "." BASE64URL(value)."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    protected = b64(json.dumps({"alg": "EdDSA", "kid": kid}).encode())

    def sign() -> bytes:
        # Ed25519 is a one-shot operation: openssl wants its input in a file, not a pipe.
        with tempfile.NamedTemporaryFile() as signing_input:
            signing_input.write(f"{protected}.{b64(value)}".encode())
            signing_input.flush()
            done = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", str(pem),
                                   "-in", signing_input.name], check=True, timeout=30,
                                  capture_output=True)
        return done.stdout

    return f"{protected}..{b64(await asyncio.to_thread(sign))}"


def _examples_in_order() -> list[tuple[Path, dict[str, Any]]]:
    """The permit examples, each permit's in sequence order."""
    found = [(p, json.loads(p.read_text())) for p in EXAMPLES.glob("*.json")]
    permits = [(p, b) for p, b in found if b["type"].startswith("cn.mohrss.workpermit.")]
    return sorted(permits, key=lambda pb: (pb[1]["subject"], pb[1]["sequence"]))


async def test_kcat_produces_the_golden_examples_and_the_hub_applies_them(
    kcat: str, hub_settings: Settings
) -> None:
    """Each example file sent by `kcat -P` with key = permit number reaches the card view
    as the newest row per permit, and nothing is dead-lettered."""
    topic = permit_topic(hub_settings, "card")
    examples = _examples_in_order()
    key = bootstrap.signing_key(hub_settings, "workpermit")  # the authority's key file
    pem = hub_settings.keys / "private" / "workpermit" / f"{key.kid}.pem"
    for path, body in examples:
        # One file = one message; kcat keys it and partitions with librdkafka's own hash;
        # openssl signs it, as a system without the hub's code would.
        jws = await _openssl_jws(pem, key.kid, path.read_bytes())
        await _kcat(kcat, "-P", *kcat_login(hub_settings, AUTHORITY), "-t", topic,
                    "-k", body["subject"], "-H", f"content-type={CONTENT_TYPE}",
                    "-H", f"jws={jws}", str(path))
    records = await read_topic(hub_settings, topic)
    assert len(records) == len(examples)
    assert {r.key.decode() for r in records} == {b["subject"] for _, b in examples}

    async with bootstrap.running_consumer(hub_settings, "card") as consumer:
        await eventually(lambda: caught_up(hub_settings, "card"), what="card to apply kcat's")
    assert consumer.stats.dead_lettered == 0
    codec = Codec(ALL_EVENT_TYPES)
    events = [codec.decode(path.read_bytes()) for path, _ in examples]
    assert await view_rows(hub_settings, "card") == expected_rows(events, card_permit)


ED25519_SPKI = bytes.fromhex("302a300506032b6570032100")
"""The DER prefix of an Ed25519 public key's SubjectPublicKeyInfo (RFC 8410)."""


async def _openssl_verifies(jws: str, payload: bytes, jwks: list[dict[str, Any]]) -> bool:
    """Whether openssl alone verifies a detached JWS over `payload` with the key it names."""
    protected, _, signature = jws.partition("..")
    header = json.loads(base64.urlsafe_b64decode(protected + "=="))
    [jwk] = [k for k in jwks if k["kid"] == header["kid"]]
    raw = base64.urlsafe_b64decode(jwk["x"] + "==")

    def run() -> bool:
        with tempfile.TemporaryDirectory() as tmp:
            der = Path(tmp) / "key.der"
            der.write_bytes(ED25519_SPKI + raw)
            data = Path(tmp) / "input"
            data.write_bytes(protected.encode() + b"."
                             + base64.urlsafe_b64encode(payload).rstrip(b"="))
            sig = Path(tmp) / "sig"
            sig.write_bytes(base64.urlsafe_b64decode(signature + "=="))
            done = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-keyform", "DER",
                                   "-inkey", str(der), "-rawin", "-in", str(data),
                                   "-sigfile", str(sig)], capture_output=True, timeout=30,
                                  check=False)
            return done.returncode == 0

    return await asyncio.to_thread(run)


async def test_kcat_reads_what_the_relay_publishes_and_it_validates_against_the_schemas(
    kcat: str, hub_settings: Settings
) -> None:
    """`kcat -C -J -e` reads every message the authority's relay published: keyed by the
    permit number, with the CloudEvents content type, valid against the committed schema
    of its type, and signed: openssl verifies each batch's JWS over the Merkle root the
    record's `jws-tree` path leads to."""
    topic = permit_topic(hub_settings, "card")
    async with bootstrap.running_relay(hub_settings, "workpermit"), authority(hub_settings) as auth:
        await random_lifecycles(auth, random.Random(5), permits=15)

        async def relayed() -> bool:
            async with bootstrap.pool(hub_settings, "workpermit", max_size=1) as p:
                return await p.fetchval("SELECT count(*) FROM hub_outbox") == 0

        await eventually(relayed, what="the outbox to drain")
    published = sum((await end_offsets(hub_settings, [topic], OBSERVER)).values())
    out = await _kcat(kcat, "-C", *kcat_login(hub_settings, OPS), "-t", topic,
                      "-o", "beginning", "-e", "-J", "-q")
    messages = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(messages) == published >= 15
    validators: dict[str, jsonschema.Draft202012Validator] = {}
    seen = set()
    roots: set[tuple[str, bytes]] = set()
    for m in messages:
        body = json.loads(m["payload"])
        if body["type"] not in validators:
            # What the card receives: the schema of the AsyncAPI document's channel, the
            # committed schema cut to the card's reads (schemas.audiences).
            schema = CARD_RECEIVES[body["type"]].model_json_schema()
            validators[body["type"]] = jsonschema.Draft202012Validator(schema)
        validators[body["type"]].validate(body)
        assert m["key"] == body["subject"]
        headers = dict(zip(m["headers"][::2], m["headers"][1::2], strict=True))
        assert headers["content-type"] == CONTENT_TYPE
        seen.add(BY_TYPE[body["type"]].__name__)
        # The relay's batch signature: the record's inclusion path leads to a root that
        # openssl verifies the JWS over, as a system without the hub's code would.
        root = tree_root(m["payload"].encode(), headers["jws-tree"])
        assert root is not None
        roots.add((headers["jws"], root))
    assert {"NotificationLetterIssued", "PermitIssued"} <= seen
    registry = json.loads((hub_settings.keys / "registry" / "workpermit.jwks.json").read_text())
    for jws, root in roots:
        assert await _openssl_verifies(jws, root, registry["keys"])
