"""`python -m demo` (what `make demo` runs): start the local stack and play the seed story;
exit non-zero if any view disagrees with the authority."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from demo.story import play
from hub.logging import configure_logging
from hub.settings import Settings
from hub.stack.local import STACK_ERRORS
from hub.stack.ports import PortInUse


def main(argv: list[str] | None = None) -> int:
    """Play the story under the `HUB_*` settings; the exit code says whether views agree."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stop", action="store_true",
                        help="stop the local stack after the story (default: leave it up)")
    args = parser.parse_args(argv)
    settings = Settings()
    if "HUB_EVIDENCE_HEAD_INTERVAL_S" not in os.environ:
        # A story of seconds: chain heads every second, so the others record them in time.
        settings = settings.model_copy(update={"evidence_head_interval_s": 1.0})
    # The story's table is the output; keep the services' routine lines out of its way.
    configure_logging(settings.log_format, os.environ.get("HUB_LOG_LEVEL", "WARNING"))
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return asyncio.run(play(settings, keep_running=not args.stop))
    except PortInUse as error:  # a second checkout's stack: one line naming the setting
        print(f"error: {error}", file=sys.stderr)
        return 2
    except STACK_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
