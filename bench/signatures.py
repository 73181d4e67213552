"""The cost of event signatures (hub/signing.py), measured in-process on one core.

Signs and verifies `n` synthetic permit events (the fill's values, ~1 KB each) the way the
outbox relay signs and `hub.delivery.accept` verifies them: the detached JWS over the
record's exact bytes, the verifier's registry lookup and rights included.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from demo.synthetic import stream
from hub.signing import SIGNATURE_HEADER, KeyStore, Verifier


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
    count = len(values)
    return {
        "records": count,
        "mean_bytes": round(sum(map(len, values)) / count),
        "sign_us": round(sign_s / count * 1e6, 1),
        "verify_us": round(verify_s / count * 1e6, 1),
        "verify_per_s_one_core": round(count / verify_s),
    }


def render(result: dict[str, Any]) -> str:
    """One paragraph for the report."""
    return (f"\nSignatures (Ed25519 detached JWS, {result['records']:,} records of "
            f"~{result['mean_bytes']} B): sign {result['sign_us']} µs, verify "
            f"{result['verify_us']} µs per record, {result['verify_per_s_one_core']:,} "
            "verifications/s on one core")
