"""Give kcat a librdkafka that can log in to Kafka 4 with SCRAM: `python stack/kcat_runtime.py`.

librdkafka before 2.6.1 repeats the client nonce in the SCRAM client-final message; Kafka 4
compares the nonce strictly (RFC 5802) and answers "invalid credentials" (fixed upstream in
confluentinc/librdkafka#4895, 2.6.1). Debian 12's kcat links librdkafka 2.0.2. Where the
system's kcat reports an older librdkafka, this takes the librdkafka that the
confluent-kafka wheel ships (PyPI, `pip download`, nothing installed) and writes
`.cache/kcat/kcat`: the system's kcat run on it (LD_LIBRARY_PATH). The tests use that
wrapper when it exists (`tests/integration/stack_fixtures.py`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "confluent-kafka==2.16.1"
"""Bundles librdkafka 2.16.0."""
FIXED_IN = (2, 6, 1)
TARGET = Path(__file__).resolve().parents[1] / ".cache" / "kcat"


def librdkafka_version(kcat: str, env: dict[str, str] | None = None) -> tuple[int, ...]:
    """The librdkafka version `kcat -V` reports."""
    out = subprocess.run([kcat, "-V"], capture_output=True, text=True, check=True, env=env)
    found = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", out.stdout + out.stderr)
    if found is None:
        raise RuntimeError(f"`{kcat} -V` names no librdkafka version")
    return tuple(int(n) for n in found.groups())


def fetch_library(into: Path) -> Path:
    """Extract the wheel's librdkafka into `into` as librdkafka.so.1; return its path."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary=:all:", "-d", tmp, WHEEL], check=True)
        wheel = next(Path(tmp).glob("confluent_kafka-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist()
                        if re.fullmatch(r"confluent_kafka\.libs/librdkafka-[^/]+\.so\.1", n))
            target = into / "librdkafka.so.1"
            target.write_bytes(archive.read(name))
    return target


def write_wrapper(kcat: str, lib_dir: Path) -> Path:
    """`.cache/kcat/kcat`: the system's kcat on the librdkafka in `lib_dir`."""
    wrapper = lib_dir / "kcat"
    wrapper.write_text(f'#!/bin/sh\nLD_LIBRARY_PATH="{lib_dir}" exec "{kcat}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def main() -> int:
    """Write the wrapper where the system's kcat is too old; say what was done."""
    kcat = shutil.which("kcat")
    if kcat is None:
        print("kcat is not installed; nothing to do")
        return 0
    if librdkafka_version(kcat) >= FIXED_IN:
        print("kcat's librdkafka logs in to Kafka 4 with SCRAM; nothing to do")
        return 0
    TARGET.mkdir(parents=True, exist_ok=True)
    if not (TARGET / "librdkafka.so.1").exists():
        fetch_library(TARGET)
    wrapper = write_wrapper(kcat, TARGET)
    version = ".".join(map(str, librdkafka_version(str(wrapper))))
    print(f"{wrapper}: kcat on librdkafka {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
