"""The cost of event signatures (hub/signing.py), measured in-process on one core.

Signs and verifies `n` synthetic permit events (the fill's values, ~1 KB each) one by one
(a front door, a foreign producer: a detached JWS over the record's exact bytes) and in
batches (the outbox relay: one JWS over the Merkle root of a batch, each record carrying
its inclusion path), the verifier's registry lookup and rights included.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from demo.synthetic import stream
from hub.evidence_chain import TREE_HEADER
from hub.signing import SIGNATURE_HEADER, KeyStore, Verifier

BATCH = 1000


def measure(n: int = 5000) -> dict[str, Any]:
    """Per-record sign and verify times, and what one core can verify per second."""
    values = [e.to_json() for e in stream(max(1, n // 4), seed=11)][:n]
    with tempfile.TemporaryDirectory() as home:
        store = KeyStore(Path(home))
        key = store.signing_key("workpermit")
        start = time.perf_counter()
        signed = [[(SIGNATURE_HEADER, key.sign(v))] for v in values]
        sign_s = time.perf_counter() - start
        verifier = Verifier(store, {"workpermit": frozenset()})
        start = time.perf_counter()
        for headers, value in zip(signed, values, strict=True):
            verifier.signer_of(headers, value)
        verify_s = time.perf_counter() - start
        # As the relay signs now: one JWS per batch of 1,000 over their Merkle root, and
        # each record verified on its own (path + the batch's one Ed25519 check, cached).
        start = time.perf_counter()
        batches = [(key.sign_batch(values[i:i + BATCH]), values[i:i + BATCH])
                   for i in range(0, len(values), BATCH)]
        batch_sign_s = time.perf_counter() - start
        verifier = Verifier(store, {"workpermit": frozenset()})
        start = time.perf_counter()
        for (jws, places), chunk in batches:
            for place, value in zip(places, chunk, strict=True):
                verifier.signer_of([(SIGNATURE_HEADER, jws), (TREE_HEADER, place)], value)
        batch_verify_s = time.perf_counter() - start
    count = len(values)
    return {
        "records": count,
        "mean_bytes": round(sum(map(len, values)) / count),
        "sign_us": round(sign_s / count * 1e6, 1),
        "verify_us": round(verify_s / count * 1e6, 1),
        "verify_per_s_one_core": round(count / verify_s),
        "batch": BATCH,
        "batch_sign_us": round(batch_sign_s / count * 1e6, 1),
        "batch_verify_us": round(batch_verify_s / count * 1e6, 1),
        "batch_verify_per_s_one_core": round(count / batch_verify_s),
    }


def render(result: dict[str, Any]) -> str:
    """One paragraph for the report."""
    return (f"\nSignatures (Ed25519 detached JWS, {result['records']:,} records of "
            f"~{result['mean_bytes']} B): sign {result['sign_us']} µs, verify "
            f"{result['verify_us']} µs per record, {result['verify_per_s_one_core']:,} "
            "verifications/s on one core; signed in batches of "
            f"{result['batch']:,} (one JWS over a Merkle root, as the relay signs): sign "
            f"{result['batch_sign_us']} µs, verify {result['batch_verify_us']} µs per record, "
            f"{result['batch_verify_per_s_one_core']:,} records/s on one core")
